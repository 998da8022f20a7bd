//! The node's audit log: every call into `sigil-audit` from the node goes
//! through [`NodeAudit`], so handlers stay thin and what is recorded is
//! visible in one place.
//!
//! What a node records (process `node-<id>`, see `docs/audit.md`):
//!
//! | action | when | fail closed |
//! |---|---|---|
//! | `process_start` / `process_stop` | start, graceful stop (then a final signed head) | start refused |
//! | `session_start` | a protocol session is accepted (before its first messages leave) | yes (deferred for signing) |
//! | `session_start` with `refused:<kind>` | a session start is refused | — |
//! | `share_issued` | a signing session is about to release its final message (the signature share) | yes |
//! | `session_failed` | a session step fails (with the culprits the protocol names) | — |
//! | `counterparty_banned` | a session failed with a DKLs23 ban; the ban was stored first (`culprits` = the banned node) | — (the ban stands without it) |
//! | `session_aborted` | the coordinator aborted a live session, or the node stopped with it open | — |
//! | `session_expired` | a session reached its deadline unfinished; its secrets were dropped | — |
//!
//! A signing session's `session_start` is appended with
//! [`Durability::Deferred`]: committed before its first round (nonce
//! commitments, which sign nothing) leaves, so a node whose log cannot be
//! written refuses the session before any node issues a share, but not
//! fsync'd on its own; the synced `share_issued` that must precede the share
//! makes it durable. One fsync per signature instead of two is most of what
//! keeps the audit cost low (`docs/performance.md`).
//! | `dkg_share_stored` | a DKG finished and this node stored its (pending) share | yes |
//! | `key_committed` | the coordinator commits a key; the share becomes usable | yes |
//! | `spend_counted` | an intent's spend was counted against this node's limits (a spend receipt or a signing session follows) | yes (deferred: committed after the count and before any receipt or nonce, synced with the next synced record) |
//! | `spend_refused` | `ReserveSpend` refused an intent (policy, approvals, signature, expiry...) | — |
//! | `policy_applied` / `policy_refused` | a policy document took effect (with its SHA-256) or was refused | applied: yes |
//! | `backup_exported` | a current share was sealed to the backup recipient (`ExportBackup`), one record per share, with the recipient's fingerprint | yes |
//! | `cert_reload` | the TLS certificate was reloaded | — |
//! | `authz_denied` | a caller other than the coordinator was refused | — |
//!
//! "Fail closed" means the record is durably committed before the
//! operation's result leaves the node; if it cannot be, the node answers
//! `UNAVAILABLE` and drops the session (its nonces with it), so no share
//! exists without its record. Heads are signed on a timer
//! (`audit.head_interval`), at start and at stop.

use std::sync::Arc;

use sigil_audit::{Durability, Entry, ProcessAudit, action, node_process};
use sigil_tls::{PeerInfo, ReloadableTls};

use crate::NodeError;
use crate::config::NodeConfig;

/// Node-specific action names (stable; auditors filter on them).
pub mod actions {
    /// A protocol session was accepted (outcome `ok`) or refused (`refused:<kind>`).
    pub const SESSION_START: &str = "session_start";
    /// A protocol step failed; the session was dropped.
    pub const SESSION_FAILED: &str = "session_failed";
    /// A pending key share became current.
    pub const KEY_COMMITTED: &str = "key_committed";
    /// The coordinator aborted a live session; its secrets were dropped.
    pub const SESSION_ABORTED: &str = "session_aborted";
    /// A session reached its deadline unfinished; its secrets were dropped.
    pub const SESSION_EXPIRED: &str = "session_expired";
    /// An intent's spend was counted against this node's limits.
    pub const SPEND_COUNTED: &str = "spend_counted";
    /// `ReserveSpend` refused an intent.
    pub const SPEND_REFUSED: &str = "spend_refused";
    /// A policy document took effect at this node.
    pub const POLICY_APPLIED: &str = "policy_applied";
    /// A policy document was refused.
    pub const POLICY_REFUSED: &str = "policy_refused";
    /// A session failed with a DKLs23 ban, which this node stored: it never
    /// runs a session of the key with the banned node again.
    pub const COUNTERPARTY_BANNED: &str = "counterparty_banned";
    /// A redistribution left this node a share of the key's next epoch (not signing yet).
    pub const EPOCH_STAGED: &str = "epoch_staged";
    /// This node dealt its share in a redistribution that leaves it no share.
    pub const EPOCH_DEALT: &str = "epoch_dealt";
    /// A commit certificate switched the key to its next epoch here.
    pub const EPOCH_COMMITTED: &str = "epoch_committed";
    /// A redistribution removed this node from a key: its shares were deleted.
    pub const SHARE_REMOVED: &str = "share_removed";
    /// Retired or abandoned shares were deleted.
    pub const SHARES_DELETED: &str = "shares_deleted";
    /// A current share was sealed to the backup recipient and exported.
    pub const BACKUP_EXPORTED: &str = "backup_exported";
}

/// What the log says about one session; kept with the session so that its
/// later records (`share_issued`, `session_failed`) carry the same fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionAudit {
    /// `dkg`, `sign`, `epoch_test`, `reshare` or `drill`.
    pub kind: &'static str,
    /// The caller (the coordinator's mTLS identity).
    pub actor: String,
    pub key_id: String,
    /// `StartSessionRequest.request_id`: the client's idempotency key for a
    /// signature, the key id for a DKG.
    pub request_id: String,
    /// Signing: SHA-256 of the bytes signed ([`signed_digest`]).
    pub digest: Vec<u8>,
    /// The session's participants.
    pub quorum: Vec<u16>,
    /// Hex.
    pub session_id: String,
}

impl SessionAudit {
    fn entry(&self, action: &str) -> Entry {
        Entry::new(self.actor.clone(), action)
            .key_id(self.key_id.clone())
            .request_id(self.request_id.clone())
            .digest(self.digest.clone())
            .quorum(self.quorum.clone())
            .session_id(self.session_id.clone())
            .detail(self.kind)
    }
}

pub use sigil_audit::{actor_of, signed_digest};

/// The refusal kind of an error, for `refused:<kind>` outcomes.
pub fn refusal_kind(e: &NodeError) -> &'static str {
    match e {
        NodeError::InvalidRequest(_) => "invalid_request",
        NodeError::Protocol(_) => "protocol",
        NodeError::UnknownSession(_) => "unknown_session",
        NodeError::SessionExpired(_) => "session_expired",
        NodeError::KeyExists(_) => "key_exists",
        NodeError::UnknownKey(_) => "unknown_key",
        NodeError::EpochMismatch { .. } => "epoch_mismatch",
        NodeError::Unsupported(_) => "unsupported",
        NodeError::BackupNotConfigured(_) => "backup_not_configured",
        NodeError::AuditUnavailable(_) => "audit_unavailable",
        NodeError::Unauthorized(_) => "permission_denied",
        NodeError::Refused(_) => "intent_refused",
        NodeError::GovernanceRefused(_) => "governance",
        NodeError::PolicyDenied { .. } => "policy_denied",
        NodeError::ApprovalRequired { .. } => "approval_required",
        NodeError::Banned { .. } => "banned",
        NodeError::ResourceExhausted(_) => "resource_exhausted",
        _ => "internal",
    }
}

/// The node's audit log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct NodeAudit {
    process: ProcessAudit,
}

impl std::ops::Deref for NodeAudit {
    type Target = ProcessAudit;
    fn deref(&self) -> &ProcessAudit {
        &self.process
    }
}

impl NodeAudit {
    /// A node log over an already opened process log (unit tests).
    #[cfg(test)]
    pub(crate) fn from_process(process: ProcessAudit) -> Self {
        Self { process }
    }

    /// Opens the log where `config.audit` says (by default `node-audit.db`
    /// beside the node's database), signing heads with the node's certificate key.
    pub async fn open(config: &NodeConfig, tls: Arc<ReloadableTls>) -> Result<Self, NodeError> {
        let process = ProcessAudit::open_configured(
            node_process(config.node_id),
            &config.audit,
            &config.database,
            tls,
        )
        .await?;
        Ok(Self { process })
    }

    /// Appends and waits for the commit; `UNAVAILABLE` when it cannot be made durable.
    async fn append(&self, entry: Entry) -> Result<(), NodeError> {
        Ok(self.process.append(entry).await?)
    }

    /// A session was accepted (fail closed: its first messages wait for
    /// this). A signing session's record is [`Durability::Deferred`]: its
    /// `share_issued` is synced before anything it signs leaves.
    pub async fn session_started(&self, session: &SessionAudit) -> Result<(), NodeError> {
        let durability = if session.kind == "sign" {
            Durability::Deferred
        } else {
            Durability::Synced
        };
        Ok(self
            .process
            .append_with(session.entry(actions::SESSION_START), durability)
            .await?)
    }

    /// A session start was refused.
    pub async fn session_refused(&self, session: &SessionAudit, e: &NodeError) {
        if matches!(e, NodeError::AuditUnavailable(_)) {
            return; // the log is what failed
        }
        self.note(
            session
                .entry(actions::SESSION_START)
                .refused(refusal_kind(e))
                .detail(format!("{}: {e}", session.kind)),
        )
        .await;
    }

    /// The signature share of `session` is about to leave this node (fail closed).
    pub async fn share_issued(&self, session: &SessionAudit) -> Result<(), NodeError> {
        self.append(session.entry(action::SHARE_ISSUED)).await
    }

    /// A session step failed and the session was dropped.
    pub async fn session_failed(&self, session: &SessionAudit, e: &NodeError) {
        if matches!(e, NodeError::AuditUnavailable(_)) {
            return;
        }
        let culprits: Vec<u16> = match e {
            NodeError::Protocol(p) => p.culprits().iter().map(|c| c.get()).collect(),
            _ => Vec::new(),
        };
        self.note(
            session
                .entry(actions::SESSION_FAILED)
                .error(refusal_kind(e))
                .culprits(culprits)
                .detail(format!("{}: {e}", session.kind)),
        )
        .await;
    }

    /// A session failed with a DKLs23 ban, already stored
    /// ([`crate::bans`]). Synced; the caller only logs a failure: bans fail
    /// safe, they do not wait for the log.
    pub async fn counterparty_banned(
        &self,
        session: &SessionAudit,
        ban: &crate::bans::Ban,
    ) -> Result<(), NodeError> {
        self.append(crate::bans::ban_entry(session, ban)).await
    }

    /// A session reached its deadline unfinished and was dropped.
    pub async fn session_expired(&self, session: &SessionAudit) {
        self.note(
            session
                .entry(actions::SESSION_EXPIRED)
                .error("session_expired")
                .detail(format!(
                    "{}: deadline passed before the session finished",
                    session.kind
                )),
        )
        .await;
    }

    /// The coordinator aborted a live session.
    pub async fn session_aborted(&self, session: &SessionAudit, reason: &str) {
        self.note(
            session
                .entry(actions::SESSION_ABORTED)
                .refused("aborted")
                .detail(format!("{}: {reason}", session.kind)),
        )
        .await;
    }

    /// A DKG finished and this node stored its pending share (fail closed:
    /// the DKG output is not reported without it). `digest` is the SHA-256
    /// of the public key package.
    pub async fn dkg_share_stored(
        &self,
        session: &SessionAudit,
        digest: Vec<u8>,
        detail: String,
    ) -> Result<(), NodeError> {
        self.append(
            session
                .entry(action::DKG_SHARE_STORED)
                .digest(digest)
                .detail(detail),
        )
        .await
    }

    /// A key share is about to become current (fail closed).
    pub async fn key_committed(
        &self,
        actor: String,
        key_id: &str,
        epoch: u64,
        digest: Vec<u8>,
        participants: Vec<u16>,
    ) -> Result<(), NodeError> {
        self.append(
            Entry::new(actor, actions::KEY_COMMITTED)
                .key_id(key_id)
                .request_id(key_id)
                .digest(digest)
                .quorum(participants)
                .detail(format!("epoch {epoch}")),
        )
        .await
    }

    /// Appends a policy-ledger record and waits for its durable commit (fail closed).
    pub async fn record(&self, entry: Entry) -> Result<(), NodeError> {
        self.append(entry).await
    }

    /// Appends a record and waits for its commit without an fsync of its own
    /// ([`Durability::Deferred`]): refused when the log is unwritable, made
    /// durable by the next synced record (a share's `share_issued`).
    pub async fn record_deferred(&self, entry: Entry) -> Result<(), NodeError> {
        Ok(self
            .process
            .append_with(entry, Durability::Deferred)
            .await?)
    }

    /// Appends a record of a refusal (best effort: the refusal stands either way).
    pub async fn record_refusal(&self, entry: Entry, e: &NodeError) {
        if matches!(e, NodeError::AuditUnavailable(_)) {
            return;
        }
        self.note(entry.refused(refusal_kind(e)).detail(e.to_string()))
            .await;
    }

    /// A caller was refused by authorization (recorded in the background:
    /// the refusal itself needs no permission).
    pub fn authz_denied(&self, peer: Option<&PeerInfo>, method: &str, reason: &str) {
        let entry = Entry::new(actor_of(peer, self.domain()), action::AUTHZ_DENIED)
            .refused("permission_denied")
            .detail(format!("{method}: {reason}"));
        let this = self.clone();
        tokio::spawn(async move { this.note(entry).await });
    }
}
