//! The node's own decision whether to sign: made before any nonce is drawn,
//! on nothing but what the node verifies itself.
//!
//! A signing session is accepted only when
//!
//! | check | refusal |
//! |---|---|
//! | the session carries a signed intent that decodes | `PERMISSION_DENIED` |
//! | the requester is a client identity of this trust domain, its chain verifies against this node's CA and its certificate key signed the intent bytes as received | `PERMISSION_DENIED` |
//! | every approval verifies (approver's chain, signature over the intent's hash) | `PERMISSION_DENIED` |
//! | the intent has not expired and its window is not longer than allowed | `FAILED_PRECONDITION` |
//! | the intent is for this key and derivation path; the session's message, encoding and path are exactly what the intent's payload yields | `FAILED_PRECONDITION` |
//! | the payload parses (deny by default) and this node's copy of the key's policy allows it: requester, raw signing, destinations, contracts, per-transaction and rolling 24-hour limits, approvals | `FAILED_PRECONDITION` with `sigil-policy-rule` or `sigil-approval-required` |
//! | spend receipts from the policy's accounting quorum of distinct participants (this node's own count is one): at the start, or else at the first step, before anything that depends on the share leaves | `FAILED_PRECONDITION` |
//! | the intent has not opened its allowance of sessions here (replay) | `FAILED_PRECONDITION` |
//!
//! The spend is counted once per intent in the node's [`Ledger`], durably
//! with its `spend_counted` audit record committed before any receipt or
//! nonce follows, at session start (in the
//! same transaction that opens one more session of the intent) or by
//! `ReserveSpend` on a node outside the signing quorum. Either way the node
//! signs a [`pb::SpendReceipt`] for the other signers: a signer's travels
//! back in its `StartSession` response and reaches the others with round
//! 1, so the accounting quorum adds no round trip unless it exceeds the
//! signing quorum. Counting happens before any share can exist, so a crash
//! can over-count a spend that was never signed, never under-count one that
//! was. The evaluation itself is `sigil_policy::evaluate`, a pure function.
//!
//! Policy documents take effect only with the signatures of this node's
//! configured officer quorum ([`NodePolicy::apply`]); a key without one
//! runs on the configured default rules, or signs nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use sigil_audit::Entry;
use sigil_policy::{
    ApprovalNeed, Decision, EvalRequest, IntentLimits, Officers, PolicyDocument, PolicyRules,
};
use sigil_proto::v1 as pb;
use sigil_protocol::NodeId;
use sigil_protocol::engine::SignInput;
use sigil_tls::{Identity, ReloadableTls};

use crate::NodeError;
use crate::audit::{NodeAudit, actions};
use crate::config::PolicyConfig;
use crate::ledger::{IntentRecord, IntentUse, Ledger, SessionUse, StoredPolicy, now_ms};
use crate::store::{StoreError, StoredShare};

/// The rolling window of the per-day limits.
const DAY: Duration = Duration::from_secs(24 * 3600);

pub use sigil_policy::verify::{Refusal, VerifiedIntent};

/// The ledger row of a verified intent.
fn record_of(verified: &VerifiedIntent) -> IntentRecord {
    IntentRecord {
        requester: verified.requester.clone(),
        intent_id: verified.intent.intent_id.clone(),
        intent_sha256: verified.sha256.to_vec(),
        key_id: verified.intent.key_id.clone(),
        not_after_ms: verified.intent.not_after_unix_ms,
        counted: false,
        sessions: 0,
    }
}

impl From<Refusal> for NodeError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Unauthorized(m) => NodeError::Unauthorized(m),
            Refusal::Refused(m) => NodeError::Refused(m),
            Refusal::Denied { rule, reason } => NodeError::PolicyDenied { rule, reason },
            Refusal::Invalid(m) => NodeError::InvalidRequest(m),
        }
    }
}

/// Receipts a signer still needs before it releases anything beyond its
/// first round: the policy's accounting quorum of distinct participants
/// that counted the spend (this node is one).
#[derive(Debug, Clone)]
pub struct ReceiptGate {
    pub key_id: String,
    pub participants: Vec<u16>,
    pub intent_sha256: [u8; 32],
    pub quorum: u16,
    pub counted: BTreeSet<u16>,
}

/// What a signing session may go ahead with.
#[derive(Debug)]
pub struct SignCheck {
    /// Exactly what is signed, from the intent.
    pub input: SignInput,
    pub verified: VerifiedIntent,
    /// This node's receipt, for the other signers.
    pub receipt: pb::SpendReceipt,
    /// `Some` while the accounting quorum is not met: checked at the first step.
    pub gate: Option<ReceiptGate>,
}

/// The rules in force for one key.
#[derive(Debug, Clone)]
pub struct InForce {
    /// 0 for the configured default.
    pub version: u64,
    pub rules: PolicyRules,
    pub document_sha256: Vec<u8>,
    pub signed: Option<pb::SignedPolicy>,
}

/// The node's policy decision point: intents, receipts, counters, governance.
pub struct NodePolicy {
    node_id: u16,
    tls: Arc<ReloadableTls>,
    ledger: Arc<dyn Ledger>,
    audit: NodeAudit,
    config: PolicyConfig,
    limits: IntentLimits,
    officers: Option<Officers>,
    /// Serializes evaluate-then-count, so two intents cannot both pass a limit
    /// that only one of them fits under.
    counting: tokio::sync::Mutex<()>,
    /// The rules in force per key, parsed once: this node is the only writer
    /// of its ledger's policies, and [`NodePolicy::apply`] replaces the entry.
    in_force: std::sync::RwLock<std::collections::HashMap<String, Arc<InForce>>>,
}

impl std::fmt::Debug for NodePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePolicy")
            .field("node_id", &self.node_id)
            .field("officers", &self.config.officers)
            .finish_non_exhaustive()
    }
}

fn store_error(e: StoreError) -> NodeError {
    NodeError::Store(e)
}

fn intent_use(e: IntentUse) -> NodeError {
    match e {
        IntentUse::Store(e) => NodeError::Store(e),
        // Worded as the in-memory session table words it.
        e @ IntentUse::SessionReused { .. } => NodeError::InvalidRequest(e.to_string()),
        e @ (IntentUse::Forged { .. } | IntentUse::Replayed { .. }) => {
            NodeError::Refused(format!("replayed intent: {e}"))
        }
    }
}

impl NodePolicy {
    pub fn new(
        node_id: u16,
        tls: Arc<ReloadableTls>,
        ledger: Arc<dyn Ledger>,
        audit: NodeAudit,
        config: PolicyConfig,
    ) -> Result<Self, NodeError> {
        let officers = if config.officers.is_empty() {
            None
        } else {
            Some(
                Officers::new(
                    config.officers.iter().cloned().collect(),
                    config.officer_quorum,
                )
                .map_err(|e| NodeError::Config(format!("policy officers: {e}")))?,
            )
        };
        let limits = IntentLimits {
            max_window: config.intent_max_window,
            clock_skew: config.clock_skew,
        };
        Ok(Self {
            node_id,
            tls,
            ledger,
            audit,
            config,
            limits,
            officers,
            counting: tokio::sync::Mutex::new(()),
            in_force: Default::default(),
        })
    }

    /// Verifies a signed intent for `share`'s key and parses its payload
    /// for that key.
    pub fn verify_intent(
        &self,
        signed: Option<&pb::SignedIntent>,
        share: &StoredShare,
    ) -> Result<VerifiedIntent, NodeError> {
        Ok(sigil_policy::verify::verify_signed_intent(
            &self.tls,
            signed,
            &share.key_id,
            sigil_policy::KeyView::new(share.scheme, &share.public_key, &share.public_key_package),
            &self.limits,
            now_ms(),
        )?)
    }

    /// The rules in force for `key_id`: the newest signed document, else the
    /// configured default, else nothing is allowed.
    pub async fn in_force(&self, key_id: &str) -> Result<Arc<InForce>, NodeError> {
        if let Some(cached) = self
            .in_force
            .read()
            .ok()
            .and_then(|c| c.get(key_id).cloned())
        {
            return Ok(cached);
        }
        let loaded = Arc::new(self.load_in_force(key_id).await?);
        if let Ok(mut cache) = self.in_force.write() {
            cache.insert(key_id.to_owned(), loaded.clone());
        }
        Ok(loaded)
    }

    /// [`Self::in_force`] from the ledger (or the configured default).
    async fn load_in_force(&self, key_id: &str) -> Result<InForce, NodeError> {
        if let Some(stored) = self.ledger.policy(key_id).await.map_err(store_error)? {
            let signed = pb::SignedPolicy::decode(stored.signed_policy.as_slice())
                .map_err(|e| NodeError::Store(StoreError::Corrupt(format!("policy: {e}"))))?;
            let doc = PolicyDocument::from_document_bytes(&signed.document)
                .map_err(|e| NodeError::Store(StoreError::Corrupt(format!("policy: {e}"))))?;
            return Ok(InForce {
                version: stored.version,
                rules: doc.rules,
                document_sha256: stored.document_sha256,
                signed: Some(signed),
            });
        }
        match &self.config.default {
            Some(rules) => Ok(InForce {
                version: 0,
                rules: rules.clone(),
                document_sha256: Vec::new(),
                signed: None,
            }),
            None => Err(NodeError::PolicyDenied {
                rule: "no_policy".into(),
                reason: format!(
                    "key {key_id} has no policy at this node; nothing is signed until security officers apply one"
                ),
            }),
        }
    }

    /// Evaluates `verified` against `policy` (the key's policy in force,
    /// read once by the caller) with this node's counters. Returns the
    /// spends to count — `None` when the intent was counted here before (it
    /// is not evaluated or counted again). The caller holds the counting
    /// lock until it has written the spends, and records them first
    /// ([`Self::record_count`]).
    async fn decide(
        &self,
        share: &StoredShare,
        verified: &VerifiedIntent,
        policy: &InForce,
    ) -> Result<Option<Vec<(String, sigil_policy::Amount)>>, NodeError> {
        let since = now_ms().saturating_sub(u64::try_from(DAY.as_millis()).unwrap_or(u64::MAX));
        let mut usage = BTreeMap::new();
        let parsed = &verified.parsed;
        let assets = parsed.movements.iter().map(|m| &m.asset);
        for asset in assets.chain(parsed.fee.iter().map(|f| &f.asset)) {
            if !usage.contains_key(asset) {
                let u = self
                    .ledger
                    .usage(&share.key_id, asset, since)
                    .await
                    .map_err(store_error)?;
                usage.insert(asset.clone(), u);
            }
        }
        let request = EvalRequest {
            requester: &verified.requester,
            parsed: &verified.parsed,
            approvers: &verified.approvers,
        };
        let decision = sigil_policy::evaluate(&policy.rules, &request, |asset: &str| {
            usage.get(asset).cloned().unwrap_or_default()
        });
        let refusal = match decision {
            // Counted here already or not, the ledger decides atomically.
            Decision::Allow { spends } => return Ok(Some(spends)),
            Decision::Deny(d) => NodeError::PolicyDenied {
                rule: d.rule,
                reason: d.reason,
            },
            Decision::NeedsApproval(ApprovalNeed {
                rule,
                group,
                required,
                have,
                ..
            }) => NodeError::ApprovalRequired {
                rule,
                group,
                required,
                have,
            },
        };
        // An intent counted here before (a later session of the same request)
        // is not evaluated again: its own spend is in the counters now.
        match self
            .ledger
            .intent(&verified.requester, &verified.intent.intent_id)
            .await
            .map_err(store_error)?
        {
            Some(known) if known.intent_sha256 != verified.sha256 => {
                Err(intent_use(IntentUse::Forged {
                    requester: known.requester,
                    intent_id: known.intent_id,
                }))
            }
            Some(known) if known.counted => Ok(None),
            _ => Err(refusal),
        }
    }

    /// The `spend_counted` record of spends just counted: committed before
    /// any receipt leaves or nonce is drawn (fail closed; its fsync rides on
    /// the next synced record).
    async fn record_count(
        &self,
        share: &StoredShare,
        verified: &VerifiedIntent,
        policy: &InForce,
        actor: &str,
    ) -> Result<(), NodeError> {
        let detail = format!("policy v{}: {}", policy.version, verified.parsed.summary());
        self.audit
            .record_deferred(
                Entry::new(actor, actions::SPEND_COUNTED)
                    .key_id(share.key_id.clone())
                    .request_id(verified.intent.idempotency_key.clone())
                    .digest(verified.sha256.to_vec())
                    .detail(truncate(detail)),
            )
            .await
    }

    /// This node's signed receipt for an intent it counted.
    fn receipt(
        &self,
        key_id: &str,
        intent_sha256: &[u8; 32],
        version: u64,
    ) -> Result<pb::SpendReceipt, NodeError> {
        let body = pb::SpendReceiptBody {
            node_id: u32::from(self.node_id),
            key_id: key_id.to_owned(),
            intent_sha256: intent_sha256.to_vec(),
            policy_version: version,
            issued_unix_ms: now_ms(),
        }
        .encode_to_vec();
        let key = self.tls.identity_key()?;
        let signature = key.sign(&sigil_policy::receipt_signing_bytes(&body))?;
        Ok(pb::SpendReceipt {
            body,
            signature,
            certificate_chain: key.chain().iter().map(|c| c.as_ref().to_vec()).collect(),
        })
    }

    /// `ReserveSpend`: verify, evaluate and count, then sign a receipt.
    pub async fn reserve(
        &self,
        share: &StoredShare,
        signed: Option<&pb::SignedIntent>,
        actor: &str,
    ) -> Result<pb::SpendReceipt, NodeError> {
        let verified = self.verify_intent(signed, share)?;
        let policy = self.in_force(&share.key_id).await?;
        let serial = self.counting.lock().await;
        let spends = self.decide(share, &verified, &policy).await?;
        if let Some(spends) = spends
            && self
                .ledger
                .count_spend(&record_of(&verified), &spends, now_ms())
                .await
                .map_err(intent_use)?
        {
            // No receipt leaves unless the count is on record (a count
            // without its record errs on the side of spending less).
            self.record_count(share, &verified, &policy, actor).await?;
        }
        drop(serial);
        self.receipt(&share.key_id, &verified.sha256, policy.version)
    }

    /// The participants of `gate`'s key whose receipts for its intent verify.
    fn receipt_signers(
        &self,
        gate: &ReceiptGate,
        receipts: &[pb::SpendReceipt],
    ) -> Result<BTreeSet<u16>, NodeError> {
        let mut signers = BTreeSet::new();
        for (i, r) in receipts.iter().enumerate() {
            let body = pb::SpendReceiptBody::decode(r.body.as_slice())
                .map_err(|e| NodeError::Refused(format!("spend receipt {i} is malformed: {e}")))?;
            let node = u16::try_from(body.node_id)
                .ok()
                .filter(|n| gate.participants.contains(n))
                .ok_or_else(|| {
                    NodeError::Refused(format!(
                        "spend receipt {i} is from node {}, not a participant of key {}",
                        body.node_id, gate.key_id
                    ))
                })?;
            if node == self.node_id {
                // This node's own count is already in the gate; its receipt is for the others.
                continue;
            }
            if body.key_id != gate.key_id || body.intent_sha256 != gate.intent_sha256.as_slice() {
                return Err(NodeError::Refused(format!(
                    "spend receipt {i} from node {node} is for another key or intent"
                )));
            }
            let key = self
                .tls
                .verify_peer_chain(&r.certificate_chain, &Identity::Node(node))
                .map_err(|e| {
                    NodeError::Refused(format!("spend receipt {i} from node {node}: {e}"))
                })?;
            if !key.verify(&sigil_policy::receipt_signing_bytes(&r.body), &r.signature) {
                return Err(NodeError::Refused(format!(
                    "spend receipt {i} from node {node} does not verify"
                )));
            }
            signers.insert(node);
        }
        Ok(signers)
    }

    /// Adds `receipts` to `gate`; `Ok(true)` once the accounting quorum is met.
    fn admit_receipts(
        &self,
        gate: &mut ReceiptGate,
        receipts: &[pb::SpendReceipt],
    ) -> Result<bool, NodeError> {
        let signers = self.receipt_signers(gate, receipts)?;
        gate.counted.extend(signers);
        Ok(gate.counted.len() >= usize::from(gate.quorum))
    }

    /// The check a signer makes before its first step when the accounting
    /// quorum was not met at the start: the receipts the other signers
    /// returned, relayed with round 1.
    pub fn check_receipts(
        &self,
        mut gate: ReceiptGate,
        receipts: &[pb::SpendReceipt],
    ) -> Result<(), NodeError> {
        if self.admit_receipts(&mut gate, receipts)? {
            Ok(())
        } else {
            Err(NodeError::Refused(format!(
                "spend counted by {} of the {} participants the policy's accounting quorum needs ({:?})",
                gate.counted.len(),
                gate.quorum,
                gate.counted
            )))
        }
    }

    /// Everything a signing session must pass before a nonce is drawn; returns
    /// what to sign. Counts the spend here if `ReserveSpend` did not, and
    /// records one more session of the intent (replays beyond the allowance
    /// are refused).
    pub async fn check_sign(
        &self,
        share: &StoredShare,
        session: &pb::SignSession,
        used: &SessionUse,
        signers: &[NodeId],
        actor: &str,
    ) -> Result<SignCheck, NodeError> {
        if session.epoch != share.epoch {
            return Err(NodeError::EpochMismatch {
                key_id: share.key_id.clone(),
                requested: session.epoch,
                held: share.epoch,
            });
        }
        if signers.len() < usize::from(share.threshold) {
            return Err(NodeError::InvalidRequest(format!(
                "{} signers for a {}-of-{} key",
                signers.len(),
                share.threshold,
                share.participants.len()
            )));
        }
        if let Some(outsider) = signers
            .iter()
            .find(|s| !share.participants.contains(&s.get()))
        {
            return Err(NodeError::InvalidRequest(format!(
                "{outsider} holds no share of key {}",
                share.key_id
            )));
        }
        let scheme = share.scheme;
        let verified = self.verify_intent(session.intent.as_ref(), share)?;
        // The node signs the intent's payload and nothing else.
        let intent_path = verified.intent.derivation_path.as_str();
        sigil_policy::check_matches(&verified.intent, &share.key_id, intent_path)
            .map_err(|e| NodeError::Refused(format!("session differs from its intent: {e}")))?;
        let parts = verified.parsed.parts.len();
        let part = usize::try_from(session.part)
            .ok()
            .and_then(|i| verified.parsed.parts.get(i))
            .ok_or_else(|| {
                NodeError::Refused(format!(
                    "session part {} of a payload with {parts} signatures",
                    session.part
                ))
            })?;
        let path = part.path(intent_path);
        if session.derivation_path != path {
            return Err(NodeError::Refused(format!(
                "session differs from its intent: derivation path {:?}, the payload signs at {path:?}",
                session.derivation_path
            )));
        }
        let encoding = sigil_proto::convert::encoding_to_wire(part.encoding) as i32;
        if session.message != part.message || session.encoding != encoding {
            return Err(NodeError::Refused(
                "session message differs from the intent's payload".into(),
            ));
        }
        let input = SignInput::new(scheme, &part.message, part.encoding, path)?;
        // Count (if not counted yet) and open one more session of the
        // intent: one transaction, after the count's audit record. Rolling
        // limits need the check and the count serialized; without them the
        // ledger's single statement is all there is to it.
        // The policy is read once: whether to serialize and what to
        // evaluate come from the same version.
        let policy = self.in_force(&share.key_id).await?;
        let serial = if policy.rules.has_rolling_limits() {
            Some(self.counting.lock().await)
        } else {
            None
        };
        let spends = self.decide(share, &verified, &policy).await?;
        let max_sessions = self
            .config
            .max_sessions_per_intent
            .saturating_mul(u32::try_from(parts).unwrap_or(u32::MAX));
        let (_, counted) = self
            .ledger
            .count_and_open(
                used,
                &record_of(&verified),
                spends.as_deref().filter(|s| !s.is_empty()),
                now_ms(),
                max_sessions,
            )
            .await
            .map_err(intent_use)?;
        drop(serial);
        if counted {
            // No nonce is drawn unless the count is on record.
            self.record_count(share, &verified, &policy, actor).await?;
        }
        let mut gate = ReceiptGate {
            key_id: share.key_id.clone(),
            participants: share.participants.clone(),
            intent_sha256: verified.sha256,
            // Receipts guard rolling limits only: without any, this node's
            // own count is all it needs (its receipt still goes out, for
            // nodes whose copy of the policy has limits).
            quorum: if policy.rules.has_rolling_limits() {
                policy.rules.accounting_quorum.unwrap_or(share.threshold)
            } else {
                1
            },
            counted: BTreeSet::from([self.node_id]),
        };
        let gate = if self.admit_receipts(&mut gate, &session.receipts)? {
            None
        } else {
            Some(gate)
        };
        let receipt = self.receipt(&share.key_id, &verified.sha256, policy.version)?;
        Ok(SignCheck {
            input,
            verified,
            receipt,
            gate,
        })
    }

    /// Verifies the officers' authorization of a key operation (refresh,
    /// reshare) against this node's own officer configuration and checks
    /// that `requested` is exactly what they signed. Returns the document.
    pub fn authorize_operation(
        &self,
        signed: Option<&pb::SignedOperation>,
        requested: &sigil_policy::RequestedOperation<'_>,
        now: Option<u64>,
    ) -> Result<sigil_policy::KeyOperation, NodeError> {
        let officers = self.officers.as_ref().ok_or_else(|| {
            NodeError::Unauthorized("this node has no security officers configured".into())
        })?;
        let signed = signed.ok_or_else(|| {
            NodeError::Unauthorized(format!(
                "a {} of key {} needs the security officers' authorization",
                requested.kind, requested.key_id
            ))
        })?;
        let op = sigil_policy::KeyOperation::from_document_bytes(&signed.document)
            .map_err(|e| NodeError::InvalidRequest(e.to_string()))?;
        let signed_by = sigil_policy::verify::verify_operation_signatures(&self.tls, signed)?;
        sigil_policy::check_operation(officers, &signed_by, &op, requested, now).map_err(|e| {
            use sigil_policy::{GovernanceError, OperationError};
            match e {
                OperationError::Governance(GovernanceError::UnknownOfficer(_)) => {
                    NodeError::Unauthorized(e.to_string())
                }
                OperationError::Malformed(m) => NodeError::InvalidRequest(m),
                other => NodeError::GovernanceRefused(other.to_string()),
            }
        })?;
        Ok(op)
    }

    /// Verifies and applies a policy document signed by the officer quorum.
    pub async fn apply(
        &self,
        signed: &pb::SignedPolicy,
        key: Option<&StoredShare>,
        actor: &str,
    ) -> Result<StoredPolicy, NodeError> {
        let officers = self.officers.as_ref().ok_or_else(|| {
            NodeError::Unauthorized("this node has no security officers configured".into())
        })?;
        let doc = PolicyDocument::from_document_bytes(&signed.document)
            .map_err(|e| NodeError::InvalidRequest(format!("policy document: {e}")))?;
        let signed_by = sigil_policy::verify::verify_officer_signatures(&self.tls, signed)?;
        let current = self
            .ledger
            .policy(&doc.key_id)
            .await
            .map_err(store_error)?
            .map(|p| p.version);
        sigil_policy::check_update(officers, &signed_by, &doc, current, key.is_some()).map_err(
            |e| match e {
                sigil_policy::GovernanceError::UnknownOfficer(_) => {
                    NodeError::Unauthorized(e.to_string())
                }
                sigil_policy::GovernanceError::UnknownKey(_) => {
                    NodeError::UnknownKey(doc.key_id.clone())
                }
                other => NodeError::GovernanceRefused(other.to_string()),
            },
        )?;
        let sha = sigil_policy::document_sha256(&signed.document);
        let stored = StoredPolicy {
            key_id: doc.key_id.clone(),
            version: doc.version,
            document_sha256: sha.to_vec(),
            signed_policy: signed.encode_to_vec(),
            applied_at: crate::service::now_rfc3339(),
        };
        // Fail closed: the document takes effect only once on record.
        self.audit
            .record(
                Entry::new(actor, actions::POLICY_APPLIED)
                    .key_id(doc.key_id.clone())
                    .digest(sha.to_vec())
                    .detail(format!(
                        "version {} (was {}), signed by {}",
                        doc.version,
                        current.map_or("default".to_owned(), |v| v.to_string()),
                        signed_by.join(", ")
                    )),
            )
            .await?;
        self.ledger
            .insert_policy(&stored)
            .await
            .map_err(|e| match e {
                StoreError::Rollback { .. } => NodeError::GovernanceRefused(e.to_string()),
                other => NodeError::Store(other),
            })?;
        if let Ok(mut cache) = self.in_force.write() {
            cache.remove(&doc.key_id);
        }
        tracing::info!(key_id = %doc.key_id, version = doc.version, "policy applied");
        Ok(stored)
    }

    /// Records the id of a session that opens no intent (key generation,
    /// reshare, drill, epoch test) before it starts, durably: a restarted
    /// node refuses it too. Signing sessions record theirs with their
    /// intent ([`Self::check_sign`]).
    pub async fn remember_session(&self, used: &SessionUse) -> Result<(), NodeError> {
        self.ledger.remember_session(used).await.map_err(intent_use)
    }

    /// Forgets intents that expired (plus the tolerated clock skew) before now.
    pub async fn prune(&self) -> Result<u64, NodeError> {
        let skew = u64::try_from(self.config.clock_skew.as_millis()).unwrap_or(u64::MAX);
        self.ledger
            .prune_intents(now_ms().saturating_sub(skew))
            .await
            .map_err(store_error)
    }
}

/// Keeps an audit detail within the log's limit.
fn truncate(mut s: String) -> String {
    const MAX: usize = sigil_audit::record::MAX_DETAIL_LEN;
    if s.len() > MAX {
        let mut cut = MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
