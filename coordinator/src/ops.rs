//! The coordinator's operations behind the gRPC handlers: creating a key by
//! distributed key generation, and signing with a quorum of its nodes.
//!
//! Signing is idempotent per (requester, idempotency key), prefers quorums
//! across distinct zones, verifies the aggregate signature before returning
//! it, and when a node misbehaves (a bad share, a malformed message) records
//! it and retries once with a quorum that excludes it. Nodes that do not
//! answer are excluded too; when fewer than the threshold remain, the
//! request fails `UNAVAILABLE`, naming the nodes it waited on.
//!
//! Audit (fail closed, see [`crate::audit`]): each signing session is
//! recorded before any node is asked for its share, and a signature is returned — and
//! stored for idempotent replays — only once its `signature_returned`
//! record is committed; otherwise the request fails `UNAVAILABLE` and its
//! idempotency claim is released.

use std::collections::BTreeSet;

use prost::Message as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sigil_proto::convert::encoding_to_wire;
use sigil_proto::convert::{scheme_from_wire, scheme_to_wire};
use sigil_proto::v1 as pb;
use sigil_protocol::engine::{self, Aggregator};
use sigil_protocol::{NodeId, ProtocolError, Scheme, SessionId};

use crate::CoordinatorError;
use crate::audit::{SignAudit, error_kind, signed_digest};
use crate::driver::{DriveError, drive, drive_gated};
use crate::intents::{ReceiptFailure, SignJob};
use crate::service::Coordinator;
use crate::store::{KeyRecord, Misbehaviour, SignClaim};

/// How long an unfinished idempotency claim blocks a retry (a crashed coordinator's).
const STALE_CLAIM_SECS: i64 = 120;
/// Signing attempts per request (the first, plus retries after unavailable or misbehaving nodes).
const MAX_ATTEMPTS: usize = 3;

pub(crate) fn random_session() -> SessionId {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    SessionId::from_bytes(b)
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn invalid(e: ProtocolError) -> CoordinatorError {
    CoordinatorError::InvalidRequest(e.to_string())
}

/// Key ids and idempotency keys: 1-128 printable ASCII without spaces.
fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// What one signing attempt ended with.
enum Attempt {
    Signed {
        signature: engine::Signature,
        signers: Vec<u16>,
        session: SessionId,
    },
    /// Exclude these nodes and try again.
    Exclude {
        nodes: Vec<u16>,
        misbehaved: bool,
        reason: String,
    },
    /// The quorum's output did not combine and the engine cannot say who
    /// is at fault (DKLs23 final values): try a different quorum.
    Unattributed {
        quorum: Vec<u16>,
        session: SessionId,
        reason: String,
    },
    Fatal(CoordinatorError),
}

impl Coordinator {
    /// Runs a DKG among the requested nodes and records the new key.
    pub async fn create_key(
        &self,
        actor: &str,
        req: pb::CreateKeyRequest,
    ) -> Result<KeyRecord, CoordinatorError> {
        let scheme = scheme_from_wire(req.scheme).map_err(invalid)?;
        let mut ids: Vec<u16> = if req.nodes.is_empty() {
            self.nodes.nodes().iter().map(|n| n.endpoint.id).collect()
        } else {
            req.nodes
                .iter()
                .map(|&n| {
                    u16::try_from(n).map_err(|_| {
                        CoordinatorError::InvalidRequest(format!("node id {n} out of range"))
                    })
                })
                .collect::<Result<_, _>>()?
        };
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(CoordinatorError::InvalidRequest(
                "a node is listed twice".into(),
            ));
        }
        let conns = ids
            .iter()
            .map(|id| {
                self.nodes.get(*id).cloned().ok_or_else(|| {
                    CoordinatorError::InvalidRequest(format!("node {id} is not configured"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let threshold = u16::try_from(req.threshold)
            .map_err(|_| CoordinatorError::InvalidRequest("threshold out of range".into()))?;
        if threshold < 2 || usize::from(threshold) > ids.len() {
            return Err(CoordinatorError::InvalidRequest(format!(
                "threshold must be between 2 and the number of nodes ({}), got {threshold}",
                ids.len()
            )));
        }
        let key_id = format!("key-{}", uuid::Uuid::new_v4().simple());
        let session = random_session();
        let start = pb::StartSessionRequest {
            request_id: key_id.clone(),
            kind: Some(pb::start_session_request::Kind::Dkg(pb::DkgSession {
                key_id: key_id.clone(),
                scheme: scheme_to_wire(scheme) as i32,
                threshold: u32::from(threshold),
            })),
            ..Default::default()
        };
        tracing::info!(%key_id, %scheme, threshold, nodes = ?ids, session = %session, "creating key");
        let steps = engine::dkg_steps(scheme) as u16;
        let transcript = drive(
            &self.nodes,
            &conns,
            session,
            start,
            steps,
            self.dkg_timeout(scheme),
        )
        .await
        .map_err(|e| self.drive_failure("key creation", &key_id, session, e))?;

        // Every node must report the same group key and public key package.
        let mut agreed: Option<pb::DkgOutput> = None;
        for id in &ids {
            let out = match transcript.outputs.get(id).and_then(|o| o.output.clone()) {
                Some(pb::session_output::Output::Dkg(d)) => d,
                _ => {
                    return Err(CoordinatorError::Aborted(format!(
                        "node {id} reported no key after the DKG"
                    )));
                }
            };
            match &agreed {
                None => agreed = Some(out),
                Some(a) if *a == out => {}
                Some(_) => {
                    return Err(CoordinatorError::Aborted(format!(
                        "node {id} reports a different group key; key not created"
                    )));
                }
            }
        }
        let out = agreed.ok_or_else(|| CoordinatorError::Aborted("no DKG output".into()))?;
        let record = KeyRecord {
            key_id: key_id.clone(),
            scheme,
            threshold,
            participants: ids,
            public_key: out.public_key,
            public_key_package: out.public_key_package,
            epoch: 0,
            label: req.label,
            created_at: now_rfc3339(),
        };
        // Fail closed: the key becomes usable (committed, stored) only once recorded.
        self.audit
            .key_created(
                actor.to_owned(),
                &key_id,
                &record.participants,
                &session.to_string(),
                Sha256::digest(&record.public_key_package).to_vec(),
                format!(
                    "{scheme} {threshold}-of-{}, public key {}",
                    record.participants.len(),
                    hex::encode(&record.public_key)
                ),
            )
            .await?;
        self.commit_on_nodes(&conns, &key_id, &record.public_key_package)
            .await?;
        self.store.insert_key(&record).await?;
        tracing::info!(%key_id, public_key = %hex::encode(&record.public_key), "key created");
        Ok(record)
    }

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

    /// Signs part `part` of the job's payload, retrying with other quorums.
    async fn sign_part(
        &self,
        job: &SignJob,
        part: usize,
        audit: &SignAudit,
    ) -> Result<(pb::PartSignature, Vec<u16>), CoordinatorError> {
        let key = &job.key;
        // Nodes a protocol named as cheaters stay out of this key's quorums
        // until an operator clears them; DKLs23 bans until a refresh or reshare.
        let records = self.store.list_exclusions(Some(&key.key_id)).await?;
        let bans: BTreeSet<u16> = records
            .iter()
            .filter(|m| m.ban)
            .map(|m| m.node_id)
            .collect();
        let standing: BTreeSet<u16> = records.into_iter().map(|m| m.node_id).collect();
        let mut excluded = standing.clone();
        let mut culprits = BTreeSet::new();
        let mut retried_after_misbehaviour = false;
        let mut last_reason = String::new();
        // Quorums whose output did not combine, with nobody to blame.
        let mut unattributed: Vec<(Vec<u16>, SessionId)> = Vec::new();
        for _ in 0..MAX_ATTEMPTS {
            let selected = match unattributed.first() {
                Some((failed, _)) => {
                    let tried: Vec<&Vec<u16>> = unattributed.iter().map(|(q, _)| q).collect();
                    self.untried_quorum(key, &excluded, failed, &tried)
                }
                None => self.nodes.select_quorum(
                    &key.participants,
                    usize::from(key.threshold),
                    &excluded,
                ),
            };
            let quorum = match selected {
                Ok(q) => q,
                Err(_) if !unattributed.is_empty() => {
                    return Err(CoordinatorError::Aborted(format!(
                        "signing failed and no other quorum is available: {last_reason}"
                    )));
                }
                Err(_) if !culprits.is_empty() => {
                    return Err(CoordinatorError::Misbehaviour {
                        culprits: culprits.into_iter().collect(),
                        message: format!("no honest quorum remains: {last_reason}"),
                    });
                }
                Err(unusable) => {
                    let (banned, barred): (Vec<u16>, Vec<u16>) = unusable
                        .iter()
                        .copied()
                        .filter(|n| standing.contains(n))
                        .partition(|n| bans.contains(n));
                    let mut barred = if barred.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; nodes {barred:?} are excluded after misbehaviour until an operator clears them"
                        )
                    };
                    if !banned.is_empty() {
                        barred.push_str(&format!(
                            "; nodes {banned:?} are banned (DKLs23) until a key refresh or reshare"
                        ));
                    }
                    return Err(CoordinatorError::Unavailable(format!(
                        "fewer than {} of the key's nodes can sign; waited on nodes {unusable:?} ({last_reason}){barred}",
                        key.threshold
                    )));
                }
            };
            match self
                .sign_attempt(job, part, &quorum, &excluded, audit)
                .await
            {
                Attempt::Signed {
                    signature,
                    signers,
                    session,
                } => {
                    if !unattributed.is_empty() {
                        self.pin_unattributed_failure(key, &unattributed, &signers, &last_reason)
                            .await;
                    }
                    let signed = pb::PartSignature {
                        part: u32::try_from(part).unwrap_or(u32::MAX),
                        signature: signature.bytes,
                        public_key: signature.public_key,
                        recovery_id: signature.recovery_id.map(u32::from).unwrap_or(0),
                        session_id: session.to_string(),
                    };
                    return Ok((signed, signers));
                }
                Attempt::Exclude {
                    nodes,
                    misbehaved,
                    reason,
                } => {
                    if misbehaved {
                        culprits.extend(nodes.iter().copied());
                        if retried_after_misbehaviour {
                            return Err(CoordinatorError::Misbehaviour {
                                culprits: culprits.into_iter().collect(),
                                message: reason,
                            });
                        }
                        retried_after_misbehaviour = true;
                    }
                    excluded.extend(nodes);
                    last_reason = reason;
                }
                Attempt::Unattributed {
                    quorum,
                    session,
                    reason,
                } => {
                    tracing::warn!(key_id = %key.key_id, ?quorum, %reason, "output of a quorum did not combine; retrying with another quorum");
                    unattributed.push((quorum, session));
                    last_reason = reason;
                }
                Attempt::Fatal(e) => return Err(e),
            }
        }
        Err(CoordinatorError::Unavailable(format!(
            "signing did not complete after {MAX_ATTEMPTS} attempts: {last_reason}"
        )))
    }

    async fn sign_attempt(
        &self,
        job: &SignJob,
        part: usize,
        quorum: &[crate::nodes::NodeConn],
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
            return Attempt::Fatal(e);
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
            Attempt::Signed { .. } => return,
            Attempt::Exclude {
                nodes,
                misbehaved: true,
                reason,
            } => ("misbehaviour", nodes, reason.clone()),
            Attempt::Exclude { reason, .. } => ("unavailable", &[], reason.clone()),
            Attempt::Unattributed { reason, .. } => ("unattributed", &[], reason.clone()),
            Attempt::Fatal(CoordinatorError::Misbehaviour { culprits, message }) => {
                ("misbehaviour", culprits, message.clone())
            }
            Attempt::Fatal(e) => (error_kind(e), &[], e.to_string()),
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
        quorum: &[crate::nodes::NodeConn],
        excluded: &BTreeSet<u16>,
        session: SessionId,
        signers: &[u16],
        gate: tokio::sync::oneshot::Receiver<bool>,
    ) -> Attempt {
        let (key, scheme) = (&job.key, job.scheme);
        let (Some(input), Some(wire)) = (job.inputs.get(part), job.verified.parsed.parts.get(part))
        else {
            return Attempt::Fatal(CoordinatorError::InvalidRequest(format!(
                "the payload has no part {part}"
            )));
        };
        let signers = signers.to_vec();
        let ids: Vec<NodeId> = match signers.iter().map(|s| NodeId::new(*s)).collect() {
            Ok(ids) => ids,
            Err(e) => return Attempt::Fatal(invalid(e)),
        };
        // The accounting quorum counts the spend before any node starts.
        let receipts = match self.collect_receipts(job, &signers, excluded).await {
            Ok(r) => r,
            Err(ReceiptFailure::Refused(e)) => return Attempt::Fatal(e),
            Err(ReceiptFailure::Unavailable(down)) => {
                let nodes: Vec<u16> = down.iter().map(|(id, _)| *id).collect();
                self.nodes.mark_down(&nodes);
                return Attempt::Exclude {
                    reason: format!("nodes {nodes:?} did not count the spend: {down:?}"),
                    nodes,
                    misbehaved: false,
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
            Err(e) => return Attempt::Fatal(CoordinatorError::Config(format!("aggregator: {e}"))),
        };
        let result = transcript.aggregate(&mut aggregator);
        match result {
            Ok(signature) => {
                tracing::info!(key_id = %key.key_id, session = %session, signers = ?signers, "signature issued");
                Attempt::Signed {
                    signature,
                    signers,
                    session,
                }
            }
            Err(e) => {
                let culprits: Vec<u16> = e.culprits().iter().map(|c| c.get()).collect();
                let banned: Vec<u16> = e.banned().map(|b| b.get()).into_iter().collect();
                self.record_culprits(&key.key_id, session, &culprits, &e.to_string(), &banned)
                    .await;
                if culprits.is_empty() {
                    Attempt::Unattributed {
                        quorum: signers,
                        session,
                        reason: format!("signing failed: {e}"),
                    }
                } else {
                    Attempt::Exclude {
                        nodes: culprits,
                        misbehaved: true,
                        reason: e.to_string(),
                    }
                }
            }
        }
    }

    /// A quorum not tried yet that leaves out one member of `failed` (each
    /// in turn), so an unattributable fault of one signer is avoided.
    fn untried_quorum(
        &self,
        key: &KeyRecord,
        excluded: &BTreeSet<u16>,
        failed: &[u16],
        tried: &[&Vec<u16>],
    ) -> Result<Vec<crate::nodes::NodeConn>, Vec<u16>> {
        for node in failed {
            let mut without = excluded.clone();
            without.insert(*node);
            if let Ok(quorum) =
                self.nodes
                    .select_quorum(&key.participants, usize::from(key.threshold), &without)
            {
                let ids: Vec<u16> = quorum.iter().map(|n| n.endpoint.id).collect();
                if !tried.contains(&&ids) {
                    return Ok(quorum);
                }
            }
        }
        Err(failed.to_vec())
    }

    /// After the quorums in `failed` did not combine and `signers` then
    /// signed: if exactly one node is in every failed quorum and not among
    /// `signers`, its values were the bad ones — record it (which excludes
    /// it from the key's quorums until an operator clears it). Otherwise the
    /// fault cannot be pinned on one node; it is only logged.
    async fn pin_unattributed_failure(
        &self,
        key: &KeyRecord,
        failed: &[(Vec<u16>, SessionId)],
        signers: &[u16],
        reason: &str,
    ) {
        let Some((first, session)) = failed.first() else {
            return;
        };
        let suspects: Vec<u16> = first
            .iter()
            .copied()
            .filter(|n| !signers.contains(n) && failed.iter().all(|(q, _)| q.contains(n)))
            .collect();
        let quorums: Vec<&Vec<u16>> = failed.iter().map(|(q, _)| q).collect();
        if let [suspect] = suspects.as_slice() {
            let why = format!(
                "quorums {quorums:?} failed ({reason}); quorum {signers:?} without node {suspect} signed"
            );
            self.record_culprits(&key.key_id, *session, &[*suspect], &why, &[])
                .await;
        } else {
            tracing::warn!(key_id = %key.key_id, ?quorums, ?signers, "an unattributable signing fault could not be pinned on one node");
        }
    }

    async fn attempt_failure(&self, key_id: &str, session: SessionId, e: DriveError) -> Attempt {
        match e {
            DriveError::Unavailable { nodes, detail } => {
                self.nodes.mark_down(&nodes);
                tracing::warn!(%key_id, %session, ?nodes, %detail, "nodes unavailable; retrying without them");
                Attempt::Exclude {
                    reason: format!("nodes {nodes:?} unavailable: {detail}"),
                    nodes,
                    misbehaved: false,
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
                Attempt::Fatal(
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
                Attempt::Exclude {
                    nodes: vec![node],
                    misbehaved: false,
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
                    Attempt::Fatal(CoordinatorError::Aborted(format!(
                        "signing failed: {reason}"
                    )))
                } else {
                    Attempt::Exclude {
                        nodes: culprits,
                        misbehaved: true,
                        reason,
                    }
                }
            }
        }
    }

    fn record_culprits_later(
        &self,
        key_id: &str,
        session: SessionId,
        culprits: &[u16],
        reason: &str,
        banned: &[u16],
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let store = self.store.clone();
        let audit = self.audit.clone();
        let (audit_key, audit_session, audit_culprits, audit_reason) = (
            key_id.to_owned(),
            session.to_string(),
            culprits.to_vec(),
            reason.to_owned(),
        );
        let records: Vec<Misbehaviour> = culprits
            .iter()
            .map(|c| Misbehaviour {
                node_id: *c,
                key_id: key_id.to_owned(),
                session_id: session.to_string(),
                reason: reason.to_owned(),
                created_at: now_rfc3339(),
                ban: banned.contains(c),
            })
            .collect();
        async move {
            for m in records {
                if m.ban {
                    tracing::error!(node = m.node_id, key_id = %m.key_id, session = %m.session_id, reason = %m.reason, "DKLs23 ban: node excluded from the key until a refresh or reshare");
                } else {
                    tracing::warn!(node = m.node_id, key_id = %m.key_id, session = %m.session_id, reason = %m.reason, "node misbehaved");
                }
                if let Err(e) = store.record_misbehaviour(&m).await {
                    tracing::error!(error = %e, "could not record misbehaviour");
                }
            }
            if !audit_culprits.is_empty() {
                audit
                    .misbehaviour(&audit_key, &audit_session, &audit_culprits, &audit_reason)
                    .await;
            }
        }
    }

    async fn record_culprits(
        &self,
        key_id: &str,
        session: SessionId,
        culprits: &[u16],
        reason: &str,
        banned: &[u16],
    ) {
        self.record_culprits_later(key_id, session, culprits, reason, banned)
            .await;
    }

    pub(crate) fn drive_failure(
        &self,
        what: &str,
        key_id: &str,
        session: SessionId,
        e: DriveError,
    ) -> CoordinatorError {
        tracing::warn!(%key_id, %session, error = %e, "{what} failed");
        match e {
            DriveError::Unavailable { nodes, detail } => {
                self.nodes.mark_down(&nodes);
                CoordinatorError::Unavailable(format!(
                    "{what} needs every participant; nodes {nodes:?} did not answer: {detail}"
                ))
            }
            DriveError::Denied {
                node,
                code,
                message,
                metadata,
            } => crate::intents::refused_by_node(node, code, &message, metadata).unwrap_or(
                CoordinatorError::Aborted(format!("node {node} refused {what}: {message}")),
            ),
            DriveError::Refused { node, message, .. } => {
                CoordinatorError::Aborted(format!("node {node} refused {what}: {message}"))
            }
            e => {
                let culprits = e.culprits();
                tokio::spawn(self.record_culprits_later(
                    key_id,
                    session,
                    &culprits,
                    &e.to_string(),
                    &e.banned(),
                ));
                CoordinatorError::Misbehaviour {
                    culprits,
                    message: format!("{what} aborted: {e}"),
                }
            }
        }
    }

    /// Promotes the DKG output to current on every participant (idempotent on the nodes).
    async fn commit_on_nodes(
        &self,
        conns: &[crate::nodes::NodeConn],
        key_id: &str,
        package: &[u8],
    ) -> Result<(), CoordinatorError> {
        let digest = Sha256::digest(package).to_vec();
        let calls = conns.iter().map(|n| {
            let mut client = n.client.clone();
            let mut req = tonic::Request::new(pb::CommitKeyRequest {
                key_id: key_id.to_owned(),
                epoch: 0,
                public_key_package_sha256: digest.clone(),
            });
            req.set_timeout(self.nodes.timeout());
            async move { (n.endpoint.id, client.commit_key(req).await) }
        });
        let failed: Vec<String> = futures::future::join_all(calls)
            .await
            .into_iter()
            .filter_map(|(id, r)| r.err().map(|s| format!("node {id}: {}", s.message())))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(CoordinatorError::Unavailable(format!(
                "key {key_id} not committed on every node: {}",
                failed.join("; ")
            )))
        }
    }

    /// Lets `node_id` sign with `key_id` again after an operator investigated it.
    pub async fn clear_exclusion(
        &self,
        operator: &str,
        actor: &str,
        key_id: &str,
        node_id: u32,
        reason: &str,
    ) -> Result<u32, CoordinatorError> {
        let key = self.key(key_id).await?;
        let node = u16::try_from(node_id)
            .ok()
            .filter(|n| key.participants.contains(n))
            .ok_or_else(|| {
                CoordinatorError::InvalidRequest(format!(
                    "node {node_id} holds no share of key {key_id}"
                ))
            })?;
        if reason.trim().is_empty() {
            return Err(CoordinatorError::InvalidRequest(
                "a reason is required to clear an exclusion".into(),
            ));
        }
        let banned = self
            .store
            .list_exclusions(Some(key_id))
            .await?
            .into_iter()
            .any(|m| m.node_id == node && m.ban);
        if banned {
            return Err(CoordinatorError::FailedPrecondition {
                message: format!(
                    "node {node} is banned from key {key_id}: a DKLs23 ban is lifted only by a refresh or reshare that gives every party fresh pairwise state or removes the banned node"
                ),
                metadata: Vec::new(),
            });
        }
        // Fail closed: the node is let back in only once this is on record.
        self.audit
            .exclusion_cleared(actor.to_owned(), key_id, node, reason)
            .await?;
        let cleared = self
            .store
            .clear_exclusion(key_id, node, reason, &now_rfc3339())
            .await?;
        tracing::warn!(%operator, %key_id, node, %reason, cleared, "exclusion cleared");
        Ok(u32::try_from(cleared).unwrap_or(u32::MAX))
    }

    /// The DKG deadline per round: ECDSA's OT setup is far heavier than FROST's.
    pub(crate) fn dkg_timeout(&self, scheme: Scheme) -> std::time::Duration {
        let base = self.nodes.timeout();
        match scheme {
            Scheme::EcdsaSecp256k1 => base.max(std::time::Duration::from_secs(30)),
            _ => base,
        }
    }

    /// A key's public key (the child key for an ECDSA derivation path) and its addresses.
    pub async fn public_key(
        &self,
        key_id: &str,
        path: &str,
    ) -> Result<pb::GetPublicKeyResponse, CoordinatorError> {
        let key = self.key(key_id).await?;
        let scheme = key.scheme;
        let public_key =
            engine::public_key_for(scheme, &key.public_key, &key.public_key_package, path)
                .map_err(invalid)?;
        Ok(pb::GetPublicKeyResponse {
            addresses: addresses(scheme, &public_key),
            public_key,
            scheme: scheme_to_wire(scheme) as i32,
        })
    }

    pub(crate) async fn key(&self, key_id: &str) -> Result<KeyRecord, CoordinatorError> {
        if !valid_token(key_id) {
            return Err(CoordinatorError::InvalidRequest(
                "key_id is required".into(),
            ));
        }
        self.store
            .get_key(key_id)
            .await?
            .ok_or_else(|| CoordinatorError::NotFound(format!("key {key_id}")))
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

/// Chain addresses of a key, by chain name (`sigil_chains::addresses`
/// names them). A key that yields no address (it should not happen for a
/// stored key) is logged and shown with none.
pub fn addresses(scheme: Scheme, public_key: &[u8]) -> std::collections::HashMap<String, String> {
    match sigil_chains::addresses(scheme, public_key) {
        Ok(addresses) => addresses.into_iter().collect(),
        Err(e) => {
            tracing::warn!(%scheme, error = %e, "no chain addresses for a key");
            std::collections::HashMap::new()
        }
    }
}
