//! The coordinator's side of signed intents, policies and approvals.
//!
//! The coordinator checks an intent before it asks any node — the
//! requester's signature and certificate, expiry, that the submitting client
//! is the requester and is allowed on the key, and the key's policy (its own
//! copy) — so a client gets a clear, early error. None of this is trusted by
//! the nodes: each verifies the same intent itself and enforces its own copy
//! of the policy, and the coordinator forwards the intent bytes unchanged.
//!
//! When a policy's approval tier applies, the request is held
//! ([`PendingApproval`]) and `Sign` answers `FAILED_PRECONDITION` with the
//! metadata `sigil-approval-id`; approvers approve over gRPC
//! ([`Coordinator::approve`]); the payment service retries with the same
//! idempotency key and the coordinator attaches the approvals it collected.
//!
//! Before a signing session the coordinator collects spend receipts
//! ([`Coordinator::collect_receipts`]) from the policy's accounting quorum:
//! each node checks and counts the spend against its own limits.
//!
//! Policy documents are relayed to every node of the key; the coordinator
//! keeps the copy the nodes accepted ([`Coordinator::apply_policy`]).

use std::collections::BTreeSet;

use prost::Message as _;
use sigil_policy::verify::{Refusal, VerifiedIntent};
use sigil_policy::{Decision, EvalRequest, IntentLimits, PolicyDocument, PolicyRules, Usage};
use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;
use sigil_protocol::engine::SignInput;
use tonic::Code;

use crate::CoordinatorError;
use crate::service::Coordinator;
use crate::store::{KeyRecord, PendingApproval};

use sigil_proto::convert::metadata::{
    APPROVAL_ID as APPROVAL_ID_METADATA, APPROVAL_REQUIRED as APPROVAL_REQUIRED_METADATA,
    POLICY_RULE as POLICY_RULE_METADATA,
};

/// A sign request whose intent verified (signature, expiry, requester, key).
#[derive(Debug)]
pub struct Verified {
    pub key: KeyRecord,
    pub scheme: Scheme,
    /// The intent as forwarded: the requester's bytes and signature
    /// unchanged, with the approvals collected for it attached.
    pub signed: pb::SignedIntent,
    pub verified: VerifiedIntent,
}

/// A sign request that passed the coordinator's checks.
#[derive(Debug)]
pub struct SignJob {
    pub key: KeyRecord,
    pub scheme: Scheme,
    /// The intent as forwarded: the requester's bytes and signature
    /// unchanged, with the approvals collected for it attached.
    pub signed: pb::SignedIntent,
    pub verified: VerifiedIntent,
    /// One engine input per signature the payload needs (a PSBT: one per
    /// input), in order; every other payload has one.
    pub inputs: Vec<SignInput>,
    /// Distinct nodes that must count the spend before any share is issued.
    pub accounting_quorum: u16,
}

/// The rules the coordinator believes are in force for a key.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub version: u64,
    pub rules: PolicyRules,
    pub signed: Option<pb::SignedPolicy>,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn refusal(r: Refusal) -> CoordinatorError {
    match r {
        Refusal::Unauthorized(m) => CoordinatorError::PermissionDenied(m),
        Refusal::Refused(m) => CoordinatorError::FailedPrecondition {
            message: m,
            metadata: Vec::new(),
        },
        Refusal::Denied { rule, reason } => denied(rule, reason),
        Refusal::Invalid(m) => CoordinatorError::InvalidRequest(m),
    }
}

fn denied(rule: String, reason: String) -> CoordinatorError {
    CoordinatorError::FailedPrecondition {
        message: format!("policy: {reason} (rule {rule})"),
        metadata: vec![(POLICY_RULE_METADATA, rule)],
    }
}

/// A node's refusal of an intent or policy, passed on to the client with its
/// code, its machine-readable details and the node named.
pub(crate) fn node_refusal(node: u16, status: &tonic::Status) -> Option<CoordinatorError> {
    let details = sigil_proto::convert::metadata::refusal_details(status.metadata());
    refused_by_node(node, status.code(), status.message(), details)
}

/// [`node_refusal`] from its parts; `None` for codes that are not a refusal.
pub(crate) fn refused_by_node(
    node: u16,
    code: Code,
    message: &str,
    metadata: Vec<(&'static str, String)>,
) -> Option<CoordinatorError> {
    let message = format!("node {node}: {message}");
    match code {
        Code::PermissionDenied => Some(CoordinatorError::PermissionDenied(message)),
        Code::FailedPrecondition | Code::NotFound => {
            Some(CoordinatorError::FailedPrecondition { message, metadata })
        }
        Code::InvalidArgument => Some(CoordinatorError::InvalidRequest(message)),
        _ => None,
    }
}

impl Coordinator {
    fn intent_limits(&self) -> IntentLimits {
        IntentLimits {
            max_window: self.policy.intent_max_window,
            clock_skew: self.policy.clock_skew,
        }
    }

    /// The coordinator's copy of `key_id`'s policy, else the configured
    /// default; read through a short-lived cache ([`POLICY_CACHE_TTL`]: the
    /// coordinator's checks only give early answers, the nodes enforce).
    pub async fn key_policy(&self, key_id: &str) -> Result<Option<KeyPolicy>, CoordinatorError> {
        if let Some(cached) = self.policy_cache.get(key_id) {
            return Ok(cached);
        }
        let loaded = self.load_key_policy(key_id).await?;
        self.policy_cache.put(key_id, loaded.clone());
        Ok(loaded)
    }

    async fn load_key_policy(&self, key_id: &str) -> Result<Option<KeyPolicy>, CoordinatorError> {
        if let Some((version, bytes)) = self.store.get_policy(key_id).await? {
            let signed = pb::SignedPolicy::decode(bytes.as_slice())
                .map_err(|e| CoordinatorError::Config(format!("stored policy: {e}")))?;
            let doc = PolicyDocument::from_document_bytes(&signed.document)
                .map_err(|e| CoordinatorError::Config(format!("stored policy: {e}")))?;
            return Ok(Some(KeyPolicy {
                version,
                rules: doc.rules,
                signed: Some(signed),
            }));
        }
        Ok(self.policy.default.clone().map(|rules| KeyPolicy {
            version: 0,
            rules,
            signed: None,
        }))
    }

    /// Verifies a sign request's intent: signature and certificate, expiry,
    /// key, that the caller (`actor`, its SPIFFE URI) is the requester, and
    /// that the request's own fields agree with it. Approvals collected for
    /// the request are attached (and verified) here.
    /// `requester` scopes idempotency keys (and held approvals).
    pub async fn verify_request(
        &self,
        requester: &str,
        actor: &str,
        req: &pb::SignRequest,
    ) -> Result<Verified, CoordinatorError> {
        let mut signed = req.intent.clone().ok_or_else(|| {
            CoordinatorError::PermissionDenied(
                "a signed intent is required: the payment service signs every request (docs/policy.md)"
                    .into(),
            )
        })?;
        let intent = sigil_policy::decode_intent(&signed.intent)
            .map_err(|e| CoordinatorError::PermissionDenied(format!("malformed intent: {e}")))?;
        let key = self.key(&intent.key_id).await?;
        let scheme = key.scheme;
        let sha256 = sigil_policy::intent_sha256(&signed.intent);
        // Approvals collected while the request was held (only a policy with
        // approval tiers holds requests).
        let tiers = self
            .key_policy(&key.key_id)
            .await?
            .is_some_and(|p| !p.rules.approval_tiers.is_empty());
        if tiers
            && let Some(pending) = self
                .store
                .pending_for_request(requester, &intent.idempotency_key)
                .await?
            && pending.intent_sha256 == sha256
        {
            for (_, bytes) in &pending.approvals {
                let approval = pb::Approval::decode(bytes.as_slice())
                    .map_err(|e| CoordinatorError::Config(format!("stored approval: {e}")))?;
                if !signed.approvals.contains(&approval) {
                    signed.approvals.push(approval);
                }
            }
        }
        let verified = sigil_policy::verify::verify_signed_intent(
            &self.tls,
            Some(&signed),
            &key.key_id,
            sigil_policy::KeyView::new(scheme, &key.public_key, &key.public_key_package),
            &self.intent_limits(),
            now_ms(),
        )
        .map_err(refusal)?;
        if verified.intent.requester != actor {
            return Err(CoordinatorError::PermissionDenied(format!(
                "the intent was signed by {} but submitted by {actor}",
                verified.intent.requester
            )));
        }
        self.check_request_agrees(req, &verified)?;
        Ok(Verified {
            key,
            scheme,
            signed,
            verified,
        })
    }

    /// Per-key access, the key's policy (the coordinator's copy, without
    /// counters) and approvals: a request held for approval is recorded and
    /// refused with its approval id. `requester` scopes idempotency keys.
    pub async fn authorize(
        &self,
        requester: &str,
        checked: Verified,
    ) -> Result<SignJob, CoordinatorError> {
        let Verified {
            key,
            scheme,
            signed,
            verified,
        } = checked;
        let sha256 = verified.sha256;
        let policy = self.key_policy(&key.key_id).await?.ok_or_else(|| {
            denied(
                "no_policy".into(),
                format!(
                    "key {} has no policy; nothing is signed until security officers apply one",
                    key.key_id
                ),
            )
        })?;
        // Per-key access, before any session: the policy names its requesters.
        if !policy.rules.requesters.contains(&verified.requester) {
            return Err(CoordinatorError::PermissionDenied(format!(
                "client {} may not use key {} (policy v{} allows {:?})",
                verified.requester, key.key_id, policy.version, policy.rules.requesters
            )));
        }
        // The coordinator has no counters: rolling limits are the nodes' to enforce.
        let request = EvalRequest {
            requester: &verified.requester,
            parsed: &verified.parsed,
            approvers: &verified.approvers,
        };
        match sigil_policy::evaluate(&policy.rules, &request, |_| Usage::default()) {
            Decision::Allow { .. } => {}
            Decision::Deny(d) => return Err(denied(d.rule, d.reason)),
            Decision::NeedsApproval(need) => {
                let held = self
                    .store
                    .hold_for_approval(&PendingApproval {
                        approval_id: format!("appr-{}", uuid::Uuid::new_v4().simple()),
                        key_id: key.key_id.clone(),
                        requester: requester.to_owned(),
                        idempotency_key: verified.intent.idempotency_key.clone(),
                        signed_intent: pb::SignedIntent {
                            approvals: Vec::new(),
                            ..signed.clone()
                        }
                        .encode_to_vec(),
                        intent_sha256: sha256.to_vec(),
                        rule: need.rule.clone(),
                        group: need.group.clone(),
                        required: need.required,
                        not_after_ms: verified.intent.not_after_unix_ms,
                        summary: verified.parsed.summary(),
                        created_at: crate::ops::now_rfc3339(),
                        approvals: Vec::new(),
                    })
                    .await?;
                if held.intent_sha256 != sha256 {
                    return Err(CoordinatorError::AlreadyExists(
                        "idempotency_key is held for approval of a different intent".into(),
                    ));
                }
                tracing::info!(key_id = %key.key_id, approval_id = %held.approval_id, group = %need.group, "sign request held for approval");
                return Err(CoordinatorError::FailedPrecondition {
                    message: format!(
                        "approval required: {} approvals from group {} ({} so far; rule {}); approval id {}",
                        need.required, need.group, need.have, need.rule, held.approval_id
                    ),
                    metadata: vec![
                        (
                            APPROVAL_REQUIRED_METADATA,
                            format!("{}:{}/{}", need.group, need.have, need.required),
                        ),
                        (APPROVAL_ID_METADATA, held.approval_id),
                    ],
                });
            }
        }
        let intent_path = verified.intent.derivation_path.as_str();
        let inputs = verified
            .parsed
            .parts
            .iter()
            .map(|part| {
                SignInput::new(scheme, &part.message, part.encoding, part.path(intent_path))
                    .map_err(|e| CoordinatorError::InvalidRequest(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if inputs.is_empty() {
            return Err(CoordinatorError::InvalidRequest(
                "the payload has nothing to sign".into(),
            ));
        }
        let accounting_quorum = policy.rules.accounting_quorum.unwrap_or(key.threshold);
        if usize::from(accounting_quorum) > key.participants.len() {
            return Err(denied(
                "accounting_quorum".into(),
                format!(
                    "accounting quorum {accounting_quorum} exceeds the key's {} participants",
                    key.participants.len()
                ),
            ));
        }
        Ok(SignJob {
            key,
            scheme,
            signed,
            verified,
            inputs,
            accounting_quorum,
        })
    }

    /// The request's own fields may be left empty; set, they must agree with the intent.
    fn check_request_agrees(
        &self,
        req: &pb::SignRequest,
        verified: &VerifiedIntent,
    ) -> Result<(), CoordinatorError> {
        let intent = &verified.intent;
        let disagree = |what: &str| {
            Err(CoordinatorError::InvalidRequest(format!(
                "the request's {what} differs from its signed intent's"
            )))
        };
        if !req.key_id.is_empty() && req.key_id != intent.key_id {
            return disagree("key_id");
        }
        if !req.idempotency_key.is_empty() && req.idempotency_key != intent.idempotency_key {
            return disagree("idempotency_key");
        }
        if !req.derivation_path.is_empty() && req.derivation_path != intent.derivation_path {
            return disagree("derivation_path");
        }
        if !req.message.is_empty() {
            // A message beside the intent must be its one and only part.
            let same = match verified.parsed.parts.as_slice() {
                [part] => {
                    req.message == part.message
                        && req.encoding
                            == sigil_proto::convert::encoding_to_wire(part.encoding) as i32
                }
                _ => false,
            };
            if !same {
                return disagree("message");
            }
        }
        Ok(())
    }

    /// Spend receipts the signers cannot give themselves: every signer
    /// counts the spend when its session starts and returns a receipt that
    /// the driver relays to the others with round 1, so only an accounting
    /// quorum larger than the signing quorum needs receipts from other
    /// healthy participants, asked here before the session. Each node checks
    /// and counts the spend itself (once per intent, so a retried attempt is
    /// not counted twice). A policy refusal by a node fails the request with
    /// the node's reason; unreachable nodes are returned to be excluded.
    pub(crate) async fn collect_receipts(
        &self,
        job: &SignJob,
        signers: &[u16],
        excluded: &BTreeSet<u16>,
    ) -> Result<Vec<pb::SpendReceipt>, ReceiptFailure> {
        let need = usize::from(job.accounting_quorum).saturating_sub(signers.len());
        if need == 0 {
            return Ok(Vec::new());
        }
        let mut asked: Vec<u16> = Vec::with_capacity(need);
        for id in &job.key.participants {
            if asked.len() >= need {
                break;
            }
            if !signers.contains(id) && !excluded.contains(id) && self.nodes.get(*id).is_some() {
                asked.push(*id);
            }
        }
        let calls = asked.iter().filter_map(|id| self.nodes.get(*id)).map(|n| {
            let mut client = n.client.clone();
            let mut req = tonic::Request::new(pb::ReserveSpendRequest {
                intent: Some(job.signed.clone()),
            });
            req.set_timeout(self.nodes.timeout());
            async move { (n.endpoint.id, client.reserve_spend(req).await) }
        });
        let mut receipts = Vec::new();
        let mut down = Vec::new();
        for (id, result) in futures::future::join_all(calls).await {
            match result {
                Ok(r) => receipts.push(r.into_inner()),
                Err(status) => match node_refusal(id, &status) {
                    Some(e) => return Err(ReceiptFailure::Refused(e)),
                    None => down.push((id, status.message().to_owned())),
                },
            }
        }
        if !down.is_empty() {
            return Err(ReceiptFailure::Unavailable(down));
        }
        if receipts.len() < need {
            return Err(ReceiptFailure::Refused(CoordinatorError::Unavailable(
                format!(
                    "the policy's accounting quorum needs {need} nodes to count the spend; {} can",
                    receipts.len()
                ),
            )));
        }
        Ok(receipts)
    }

    /// Relays a signed policy document to every node of its key and keeps the
    /// copy they accepted.
    pub async fn apply_policy(
        &self,
        signed: pb::SignedPolicy,
    ) -> Result<pb::ApplyPolicyResponse, CoordinatorError> {
        let doc = PolicyDocument::from_document_bytes(&signed.document)
            .map_err(|e| CoordinatorError::InvalidRequest(format!("policy document: {e}")))?;
        let key = self.key(&doc.key_id).await?;
        let calls = key
            .participants
            .iter()
            .map(|id| (*id, self.nodes.get(*id).cloned()))
            .map(|(id, conn)| {
                let signed = signed.clone();
                let timeout = self.nodes.timeout();
                async move {
                    let Some(conn) = conn else {
                        return (id, Err("node is not configured".to_owned()));
                    };
                    let mut client = conn.client.clone();
                    let mut req = tonic::Request::new(pb::NodeApplyPolicyRequest {
                        policy: Some(signed),
                    });
                    req.set_timeout(timeout);
                    (
                        id,
                        client
                            .apply_policy(req)
                            .await
                            .map(|_| ())
                            .map_err(|s| format!("{:?}: {}", s.code(), s.message())),
                    )
                }
            });
        let mut accepted = Vec::new();
        let mut failed = Vec::new();
        for (id, result) in futures::future::join_all(calls).await {
            match result {
                Ok(()) => accepted.push(u32::from(id)),
                Err(reason) => failed.push(pb::NodePolicyFailure {
                    node_id: u32::from(id),
                    reason,
                }),
            }
        }
        if accepted.is_empty() {
            let reasons: Vec<String> = failed
                .iter()
                .map(|f| format!("node {}: {}", f.node_id, f.reason))
                .collect();
            return Err(CoordinatorError::FailedPrecondition {
                message: format!(
                    "no node accepted policy v{} of key {}: {}",
                    doc.version,
                    doc.key_id,
                    reasons.join("; ")
                ),
                metadata: Vec::new(),
            });
        }
        self.store
            .put_policy(
                &doc.key_id,
                doc.version,
                &signed.encode_to_vec(),
                &crate::ops::now_rfc3339(),
            )
            .await?;
        self.policy_cache.forget(&doc.key_id);
        tracing::info!(key_id = %doc.key_id, version = doc.version, ?accepted, failed = failed.len(), "policy relayed");
        Ok(pb::ApplyPolicyResponse {
            version: doc.version,
            accepted,
            failed,
        })
    }

    /// The policy in force for a key, as the coordinator knows it.
    pub async fn get_policy(
        &self,
        key_id: &str,
    ) -> Result<pb::GetPolicyResponse, CoordinatorError> {
        let key = self.key(key_id).await?;
        let Some(policy) = self.key_policy(&key.key_id).await? else {
            return Ok(pb::GetPolicyResponse::default());
        };
        let document_json = match &policy.signed {
            Some(s) => String::from_utf8_lossy(&s.document).into_owned(),
            None => serde_json::to_string_pretty(&policy.rules)
                .map_err(|e| CoordinatorError::Config(e.to_string()))?,
        };
        Ok(pb::GetPolicyResponse {
            is_default: policy.signed.is_none(),
            policy: policy.signed,
            document_json,
            version: policy.version,
        })
    }

    /// Pending approvals (of `key_id`, or every key) that have not expired.
    pub async fn list_pending(
        &self,
        key_id: &str,
    ) -> Result<pb::ListPendingApprovalsResponse, CoordinatorError> {
        let filter = (!key_id.is_empty()).then_some(key_id);
        let pending = self.store.list_pending_approvals(filter, now_ms()).await?;
        Ok(pb::ListPendingApprovalsResponse {
            pending: pending
                .iter()
                .map(pending_to_wire)
                .collect::<Result<_, _>>()?,
        })
    }

    /// Records `approver`'s approval of a pending request after verifying it.
    pub async fn approve(
        &self,
        approver: &str,
        req: pb::ApproveRequest,
    ) -> Result<pb::ApproveResponse, CoordinatorError> {
        let pending = self
            .store
            .pending_approval(&req.approval_id)
            .await?
            .ok_or_else(|| {
                CoordinatorError::NotFound(format!("pending approval {}", req.approval_id))
            })?;
        if pending.not_after_ms < now_ms() {
            return Err(CoordinatorError::FailedPrecondition {
                message: format!(
                    "the intent of {} has expired; approvals expire with it",
                    req.approval_id
                ),
                metadata: Vec::new(),
            });
        }
        let approval = req.approval.ok_or_else(|| {
            CoordinatorError::InvalidRequest("an approval signature is required".into())
        })?;
        let sha: [u8; 32] = pending
            .intent_sha256
            .as_slice()
            .try_into()
            .map_err(|_| CoordinatorError::Config("stored intent hash".into()))?;
        let name =
            sigil_policy::verify::verify_approval(&self.tls, &approval, &sha).map_err(refusal)?;
        let uri = sigil_tls::Identity::Client(name.clone()).to_uri(self.tls.domain());
        if uri != approver {
            return Err(CoordinatorError::PermissionDenied(format!(
                "the approval is signed by {uri} but submitted by {approver}"
            )));
        }
        // Only members of the group count; the nodes check the same themselves.
        if let Some(policy) = self.key_policy(&pending.key_id).await?
            && !policy
                .rules
                .approver_groups
                .get(&pending.group)
                .is_some_and(|members| members.contains(&name))
        {
            return Err(CoordinatorError::PermissionDenied(format!(
                "{name} is not an approver of group {} on key {}",
                pending.group, pending.key_id
            )));
        }
        self.store
            .add_approval(
                &pending.approval_id,
                &uri,
                &approval.encode_to_vec(),
                &crate::ops::now_rfc3339(),
            )
            .await?;
        tracing::info!(approval_id = %pending.approval_id, approver = %uri, "intent approved");
        let updated = self
            .store
            .pending_approval(&pending.approval_id)
            .await?
            .ok_or_else(|| CoordinatorError::Config("pending approval vanished".into()))?;
        Ok(pb::ApproveResponse {
            pending: Some(pending_to_wire(&updated)?),
        })
    }
}

/// How long the coordinator trusts its cached copy of a key's policy.
pub const POLICY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Keys' policies as the coordinator last read them, for [`POLICY_CACHE_TTL`].
#[derive(Debug, Default)]
pub struct PolicyCache(
    std::sync::RwLock<std::collections::HashMap<String, (Option<KeyPolicy>, std::time::Instant)>>,
);

impl PolicyCache {
    fn get(&self, key_id: &str) -> Option<Option<KeyPolicy>> {
        let map = self.0.read().ok()?;
        map.get(key_id)
            .filter(|(_, at)| at.elapsed() < POLICY_CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, key_id: &str, policy: Option<KeyPolicy>) {
        if let Ok(mut map) = self.0.write() {
            map.insert(key_id.to_owned(), (policy, std::time::Instant::now()));
        }
    }

    fn forget(&self, key_id: &str) {
        if let Ok(mut map) = self.0.write() {
            map.remove(key_id);
        }
    }
}

/// Why receipts could not be collected.
#[derive(Debug)]
pub(crate) enum ReceiptFailure {
    /// A node refused the intent: the request fails with its reason.
    Refused(CoordinatorError),
    /// Nodes that did not answer (id, detail): retry without them.
    Unavailable(Vec<(u16, String)>),
}

fn pending_to_wire(p: &PendingApproval) -> Result<pb::PendingApproval, CoordinatorError> {
    let intent = pb::SignedIntent::decode(p.signed_intent.as_slice())
        .map_err(|e| CoordinatorError::Config(format!("stored intent: {e}")))?;
    let requester = sigil_policy::decode_intent(&intent.intent)
        .map(|i| i.requester)
        .unwrap_or_else(|_| p.requester.clone());
    Ok(pb::PendingApproval {
        approval_id: p.approval_id.clone(),
        key_id: p.key_id.clone(),
        intent: Some(intent),
        intent_sha256: p.intent_sha256.clone(),
        requester,
        rule: p.rule.clone(),
        group: p.group.clone(),
        required: u32::from(p.required),
        approved_by: p.approvals.iter().map(|(a, _)| a.clone()).collect(),
        not_after_unix_ms: p.not_after_ms,
        summary: p.summary.clone(),
        created_at: p.created_at.clone(),
    })
}
