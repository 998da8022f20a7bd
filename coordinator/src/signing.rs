//! Signing a request with a quorum of its key's nodes: idempotency, one
//! session per part of the payload, spend receipts, the sessions
//! themselves, and what each failed attempt means for the next.
//!
//! Signing is idempotent per (requester, idempotency key), prefers quorums
//! across distinct zones, and verifies the aggregate signature before
//! returning it. Which quorum comes next and when to give up is decided by
//! the I/O-free [`RetryPlan`] (see [`crate::retry`] for the rules); this
//! module runs the sessions and records what they showed: culprits a
//! protocol named (excluded from the key's quorums until an operator clears
//! them), nodes that did not answer (marked down), and quorums whose output
//! did not combine with nobody to blame (an `unattributed_fault` record,
//! excluding nobody).
//!
//! Audit (fail closed, see [`crate::audit`]): each signing session is
//! recorded before any node is asked for its share, and a signature is
//! returned — and stored for idempotent replays — only once its
//! `signature_returned` record is committed; otherwise the request fails
//! `UNAVAILABLE` and its idempotency claim is released.

use std::collections::BTreeSet;

use prost::Message as _;
use sha2::{Digest, Sha256};
use sigil_proto::convert::{encoding_to_wire, scheme_to_wire};
use sigil_proto::v1 as pb;
use sigil_protocol::engine::{self, Aggregator};
use sigil_protocol::{NodeId, SessionId};

use crate::CoordinatorError;
use crate::audit::{SignAudit, error_kind, signed_digest};
use crate::driver::{DriveError, drive_gated};
use crate::intents::{ReceiptFailure, SignJob};
use crate::nodes::NodeConn;
use crate::ops::{invalid, random_session};
use crate::retry::{Outcome, RetryPlan, UnattributedFault, Verdict};
use crate::service::Coordinator;
use crate::store::{KeyRecord, SignClaim};

/// How long an unfinished idempotency claim blocks a retry (a crashed coordinator's).
const STALE_CLAIM_SECS: i64 = 120;

/// A signing attempt that produced a verified signature.
#[derive(Debug)]
struct Signed {
    signature: engine::Signature,
    signers: Vec<u16>,
    session: SessionId,
}

/// What one signing attempt ended with.
type Attempt = Outcome<Signed>;

impl Coordinator {
    /// Signs `req` for `requester`, idempotently.
    /// `requester` keys idempotency records; `actor` (its SPIFFE URI) is
    /// what the audit log records.
    pub async fn sign(
        &self,
        requester: &str,
        actor: &str,
        req: pb::SignRequest,
        slot: Option<crate::audit::RequestSlot>,
    ) -> Result<pb::SignResponse, CoordinatorError> {
        // The intent and its requester, before anything is claimed; a
        // finished request is then replayed without another policy decision.
        let checked = self.verify_request(requester, actor, &req).await?;
        let idempotency_key = checked.verified.intent.idempotency_key.clone();
        let digest = request_digest(&checked.verified.intent);
        match self
            .store
            .claim_sign(
                requester,
                &idempotency_key,
                &checked.key.key_id,
                &digest,
                STALE_CLAIM_SECS,
            )
            .await?
        {
            SignClaim::New => {}
            SignClaim::Done(bytes) => {
                let mut resp = pb::SignResponse::decode(bytes.as_slice()).map_err(|e| {
                    CoordinatorError::Config(format!("stored response undecodable: {e}"))
                })?;
                resp.replayed = true;
                return Ok(resp);
            }
            SignClaim::Conflict => {
                return Err(CoordinatorError::AlreadyExists(
                    "idempotency_key was already used for a different request".into(),
                ));
            }
            SignClaim::InProgress => {
                return Err(CoordinatorError::Aborted(
                    "a request with this idempotency_key is in progress; retry later".into(),
                ));
            }
        }
        // Per-key access, policy and approvals, then the nodes (which check it all again).
        let attempt = async {
            let job = self.authorize(requester, checked).await?;
            let audit = SignAudit {
                actor: actor.to_owned(),
                key_id: job.key.key_id.clone(),
                request_id: idempotency_key.clone(),
                digest: signed_digest(
                    job.inputs
                        .first()
                        .map(engine::SignInput::signed_bytes)
                        .unwrap_or_default(),
                ),
            };
            let resp = self.sign_with_retries(&job, &audit).await?;
            Ok::<_, CoordinatorError>((resp, audit, !job.signed.approvals.is_empty()))
        };
        let mut approved = false;
        let result = match attempt.await {
            // Fail closed: not returned, nor stored for replays, unless recorded.
            Ok((resp, audit, with_approvals)) => {
                approved = with_approvals;
                let signers: Vec<u16> = resp
                    .signers
                    .iter()
                    .filter_map(|s| u16::try_from(*s).ok())
                    .collect();
                self.audit
                    .signature_returned(&audit, &signers, &resp.session_id, slot.as_ref())
                    .await
                    .map(|()| resp)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(resp) => {
                self.store
                    .finish_sign(requester, &idempotency_key, &resp.encode_to_vec())
                    .await?;
                // Approvals it waited for are done with.
                if approved
                    && let Err(e) = self
                        .store
                        .resolve_pending(requester, &idempotency_key)
                        .await
                {
                    tracing::warn!(error = %e, "could not clear a resolved pending approval");
                }
                Ok(resp)
            }
            Err(e) => {
                if let Err(release) = self.store.release_sign(requester, &idempotency_key).await {
                    tracing::error!(error = %release, "could not release idempotency claim");
                }
                Err(e)
            }
        }
    }

    /// Signs every part of the job's payload in order (one session each;
    /// see docs/chains.md) and assembles the chain's transaction.
    async fn sign_with_retries(
        &self,
        job: &SignJob,
        audit: &SignAudit,
    ) -> Result<pb::SignResponse, CoordinatorError> {
        let mut parts = Vec::with_capacity(job.inputs.len());
        let mut signers = Vec::new();
        for part in 0..job.inputs.len() {
            let (signed, by) = self.sign_part(job, part, audit).await?;
            if part == 0 {
                signers = by;
            }
            parts.push(signed);
        }
        let transaction = crate::transactions::assemble(job, &parts)?;
        let first = parts.first().cloned().unwrap_or_default();
        Ok(pb::SignResponse {
            signature: first.signature,
            public_key: first.public_key,
            scheme: scheme_to_wire(job.scheme) as i32,
            recovery_id: first.recovery_id,
            session_id: first.session_id,
            signers: signers.into_iter().map(u32::from).collect(),
            replayed: false,
            parts: if parts.len() > 1 { parts } else { Vec::new() },
            transaction,
        })
    }

    /// Signs part `part` of the job's payload, retrying with other quorums
    /// as the [`RetryPlan`] decides.
    async fn sign_part(
        &self,
        job: &SignJob,
        part: usize,
        audit: &SignAudit,
    ) -> Result<(pb::PartSignature, Vec<u16>), CoordinatorError> {
        let key = &job.key;
        // Nodes a protocol named as cheaters stay out of this key's quorums
        // until an operator clears them; DKLs23 bans until a refresh or reshare.
        let exclusions = self.store.list_exclusions(Some(&key.key_id)).await?;
        let mut plan = RetryPlan::new(key.threshold, exclusions.iter().map(|m| (m.node_id, m.ban)));
        let result = loop {
            let ids = match plan.next_quorum(|avoid| {
                self.nodes
                    .select_quorum(&key.participants, usize::from(key.threshold), avoid)
                    .map(|quorum| quorum.iter().map(|n| n.endpoint.id).collect())
            }) {
                Ok(ids) => ids,
                Err(e) => break Err(e),
            };
            let quorum: Vec<NodeConn> = ids
                .iter()
                .filter_map(|id| self.nodes.get(*id).cloned())
                .collect();
            let attempt = self
                .sign_attempt(job, part, &quorum, plan.avoid(), audit)
                .await;
            if let Outcome::Unattributed { quorum, reason, .. } = &attempt {
                tracing::warn!(key_id = %key.key_id, ?quorum, %reason, "output of a quorum did not combine; retrying with another quorum");
            }
            match plan.record(attempt) {
                Verdict::Done(signed) => break Ok(signed),
                Verdict::Retry => {}
                Verdict::Fail(e) => break Err(e),
            }
        };
        if let Some(fault) = plan.unattributed_fault() {
            let signers = result.as_ref().ok().map(|s| s.signers.as_slice());
            self.record_unattributed_fault(key, &fault, signers).await;
        }
        let Signed {
            signature,
            signers,
            session,
        } = result?;
        let signed = pb::PartSignature {
            part: u32::try_from(part).unwrap_or(u32::MAX),
            signature: signature.bytes,
            public_key: signature.public_key,
            recovery_id: signature.recovery_id.map(u32::from).unwrap_or(0),
            session_id: session.to_string(),
        };
        Ok((signed, signers))
    }

    /// Logs and audits quorums whose output did not combine with nobody to
    /// blame, and how the request went on (`signers`: the quorum that then
    /// signed, if one did). Nobody is excluded: a node common to the failed
    /// quorums is not thereby the one at fault.
    async fn record_unattributed_fault(
        &self,
        key: &KeyRecord,
        fault: &UnattributedFault,
        signers: Option<&[u16]>,
    ) {
        let UnattributedFault {
            quorums,
            session,
            reason,
        } = fault;
        let then = match signers {
            Some(signers) => format!("quorum {signers:?} then signed"),
            None => "no quorum signed".to_owned(),
        };
        tracing::warn!(key_id = %key.key_id, %session, ?quorums, ?signers, %reason, "unattributed signing fault: nobody can be named, nobody is excluded");
        self.audit
            .unattributed_fault(
                &key.key_id,
                &session.to_string(),
                quorums,
                &format!("{then}; nobody excluded; {reason}"),
            )
            .await;
    }

    async fn sign_attempt(
        &self,
        job: &SignJob,
        part: usize,
        quorum: &[NodeConn],
        excluded: &BTreeSet<u16>,
        audit: &SignAudit,
    ) -> Attempt {
        let session = random_session();
        let signers: Vec<u16> = quorum.iter().map(|n| n.endpoint.id).collect();
        // Fail closed: the session's record is committed while the nodes
        // run their first round (which carries no share); no node is asked
        // for its share before it is, and the session is aborted if it fails.
        let (gate, gated) = tokio::sync::oneshot::channel();
        let record = async {
            let recorded = self
                .audit
                .sign_session(audit, &signers, &session.to_string())
                .await;
            let _ = gate.send(recorded.is_ok());
            recorded
        };
        let (recorded, attempt) = tokio::join!(
            record,
            self.run_sign_attempt(job, part, quorum, excluded, session, &signers, gated)
        );
        if let Err(e) = recorded {
            return Outcome::Fatal(e);
        }
        self.audit_failed_attempt(audit, &signers, session, &attempt)
            .await;
        attempt
    }

    /// Records how a signing attempt failed (nothing for a signature: its
    /// `signature_returned` record follows).
    async fn audit_failed_attempt(
        &self,
        audit: &SignAudit,
        signers: &[u16],
        session: SessionId,
        attempt: &Attempt,
    ) {
        let (kind, culprits, reason): (&str, &[u16], String) = match attempt {
            Outcome::Signed(_) => return,
            Outcome::Misbehaved { nodes, reason } => ("misbehaviour", nodes, reason.clone()),
            Outcome::Unavailable { reason, .. } => ("unavailable", &[], reason.clone()),
            Outcome::Unattributed { reason, .. } => ("unattributed", &[], reason.clone()),
            Outcome::Fatal(CoordinatorError::Misbehaviour { culprits, message }) => {
                ("misbehaviour", culprits, message.clone())
            }
            Outcome::Fatal(e) => (error_kind(e), &[], e.to_string()),
        };
        self.audit
            .sign_session_failed(
                audit,
                signers,
                &session.to_string(),
                kind,
                culprits,
                &reason,
            )
            .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_sign_attempt(
        &self,
        job: &SignJob,
        part: usize,
        quorum: &[NodeConn],
        excluded: &BTreeSet<u16>,
        session: SessionId,
        signers: &[u16],
        gate: tokio::sync::oneshot::Receiver<bool>,
    ) -> Attempt {
        let (key, scheme) = (&job.key, job.scheme);
        let (Some(input), Some(wire)) = (job.inputs.get(part), job.verified.parsed.parts.get(part))
        else {
            return Outcome::Fatal(CoordinatorError::InvalidRequest(format!(
                "the payload has no part {part}"
            )));
        };
        let signers = signers.to_vec();
        let ids: Vec<NodeId> = match signers.iter().map(|s| NodeId::new(*s)).collect() {
            Ok(ids) => ids,
            Err(e) => return Outcome::Fatal(invalid(e)),
        };
        // The accounting quorum counts the spend before any node starts.
        let receipts = match self.collect_receipts(job, &signers, excluded).await {
            Ok(r) => r,
            Err(ReceiptFailure::Refused(e)) => return Outcome::Fatal(e),
            Err(ReceiptFailure::Unavailable(down)) => {
                let nodes: Vec<u16> = down.iter().map(|(id, _)| *id).collect();
                self.nodes.mark_down(&nodes);
                return Outcome::Unavailable {
                    reason: format!("nodes {nodes:?} did not count the spend: {down:?}"),
                    nodes,
                };
            }
        };
        let start = pb::StartSessionRequest {
            request_id: job.verified.intent.idempotency_key.clone(),
            kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
                key_id: key.key_id.clone(),
                epoch: key.epoch,
                message: wire.message.clone(),
                derivation_path: wire.path(&job.verified.intent.derivation_path).to_owned(),
                encoding: encoding_to_wire(wire.encoding) as i32,
                intent: Some(job.signed.clone()),
                receipts,
                epoch_test: false,
                part: u32::try_from(part).unwrap_or(u32::MAX),
            })),
            ..Default::default()
        };
        let steps = engine::sign_steps(scheme) as u16;
        let transcript = match drive_gated(
            &self.nodes,
            quorum,
            session,
            start,
            job.key.scheme,
            steps,
            self.nodes.timeout(),
            Some(gate),
        )
        .await
        {
            Ok(t) => t,
            Err(e) => return self.attempt_failure(&key.key_id, session, e).await,
        };
        let mut aggregator = match Aggregator::new(
            scheme,
            session,
            &key.public_key_package,
            &key.public_key,
            &ids,
            input,
        ) {
            Ok(a) => a,
            Err(e) => {
                return Outcome::Fatal(CoordinatorError::Config(format!("aggregator: {e}")));
            }
        };
        match transcript.aggregate(&mut aggregator) {
            Ok(signature) => {
                tracing::info!(key_id = %key.key_id, session = %session, signers = ?signers, "signature issued");
                Outcome::Signed(Signed {
                    signature,
                    signers,
                    session,
                })
            }
            Err(e) => {
                let culprits: Vec<u16> = e.culprits().iter().map(|c| c.get()).collect();
                let banned: Vec<u16> = e.banned().map(|b| b.get()).into_iter().collect();
                self.record_culprits(&key.key_id, session, &culprits, &e.to_string(), &banned)
                    .await;
                if culprits.is_empty() {
                    Outcome::Unattributed {
                        quorum: signers,
                        session,
                        reason: format!("signing failed: {e}"),
                    }
                } else {
                    Outcome::Misbehaved {
                        nodes: culprits,
                        reason: e.to_string(),
                    }
                }
            }
        }
    }

    /// What a session that did not complete means for the request.
    async fn attempt_failure(&self, key_id: &str, session: SessionId, e: DriveError) -> Attempt {
        match e {
            DriveError::Unavailable { nodes, detail } => {
                self.nodes.mark_down(&nodes);
                tracing::warn!(%key_id, %session, ?nodes, %detail, "nodes unavailable; retrying without them");
                Outcome::Unavailable {
                    reason: format!("nodes {nodes:?} unavailable: {detail}"),
                    nodes,
                }
            }
            DriveError::Denied {
                node,
                code,
                message,
                metadata,
            } => {
                // The node's own decision on the intent or policy: the client's answer.
                tracing::warn!(%key_id, %session, node, ?code, %message, "node refused the request");
                Outcome::Fatal(
                    crate::intents::refused_by_node(node, code, &message, metadata).unwrap_or(
                        CoordinatorError::Aborted(format!("node {node} refused: {message}")),
                    ),
                )
            }
            DriveError::Refused {
                node,
                code,
                message,
            } => {
                tracing::warn!(%key_id, %session, node, ?code, %message, "node refused; retrying without it");
                if code == tonic::Code::Aborted {
                    // A node still on another epoch: send it any certified
                    // switch it missed (it accepts it now, or tells why).
                    self.resume_commits_of(key_id).await;
                }
                Outcome::Unavailable {
                    nodes: vec![node],
                    reason: format!("node {node} refused: {message}"),
                }
            }
            e => {
                let culprits = e.culprits();
                let banned = e.banned();
                let reason = e.to_string();
                let recorded =
                    self.record_culprits_later(key_id, session, &culprits, &reason, &banned);
                if banned.is_empty() {
                    tokio::spawn(recorded);
                } else {
                    // A ban is on record before the request goes on (rare, and for good).
                    recorded.await;
                }
                if culprits.is_empty() {
                    Outcome::Fatal(CoordinatorError::Aborted(format!(
                        "signing failed: {reason}"
                    )))
                } else {
                    Outcome::Misbehaved {
                        nodes: culprits,
                        reason,
                    }
                }
            }
        }
    }
}

/// Binds an idempotency key to exactly one request: what its intent asks
/// to sign (key, path, payload). A retry with a freshly signed intent for
/// the same thing gets the stored signature; a different payload under the
/// same key is a conflict.
fn request_digest(intent: &pb::Intent) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"sigil/v1/sign-request/intent");
    for part in [
        intent.key_id.as_bytes(),
        intent.derivation_path.as_bytes(),
        &intent
            .payload
            .as_ref()
            .map(prost::Message::encode_to_vec)
            .unwrap_or_default(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().to_vec()
}
