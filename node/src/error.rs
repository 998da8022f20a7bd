//! Node errors, by layer: [`ServerError`] — why the node could not start or
//! stopped serving (configuration, TLS material, key-encryption key,
//! stores, audit log, listener) — and [`NodeError`], the failure of one
//! request, with its deliberate mapping to gRPC status codes. Internal
//! details (SQL errors, paths) are logged, never sent to the caller.

use std::path::PathBuf;

use sigil_protocol::ProtocolError;
use tonic::Status;

use crate::seal::SealError;
use crate::store::StoreError;

impl From<sigil_audit::AuditError> for NodeError {
    fn from(e: sigil_audit::AuditError) -> Self {
        match e {
            sigil_audit::AuditError::Unavailable(_) => Self::AuditUnavailable(e.to_string()),
            sigil_audit::AuditError::InvalidFilter(m) => Self::InvalidRequest(m),
            other => Self::Audit(other.to_string()),
        }
    }
}

/// Why a node could not start (`NodeConfig::load`, `NodeServer::open`)
/// or stopped serving (`NodeServer::run`). No request produces one.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The certificate, its key or the CA cannot be loaded or do not fit.
    #[error("TLS: {0}")]
    Tls(#[from] sigil_tls::TlsError),
    /// The configured key-encryption key file does not exist. A node never
    /// creates its KEK.
    #[error(
        "key-encryption key file {} does not exist; the node does not create one. \
         For a local cluster, `sigil up` creates it. In production, provide 32 random bytes, \
         hex-encoded (64 characters), in a file only the node's user can read (mode 0600), \
         e.g. `openssl rand -hex 32`, at `kek_file` (default <key_dir>/kek.hex)",
        path.display()
    )]
    KekMissing { path: PathBuf },
    /// The key-encryption key file exists but is unusable.
    #[error("key-encryption key: {0}")]
    Kek(#[from] SealError),
    /// The node's sealed encryption key cannot be loaded or created.
    #[error("encryption key: {0}")]
    EncryptionKey(#[source] NodeError),
    /// The share store cannot be opened or migrated.
    #[error("share store: {0}")]
    Store(#[from] StoreError),
    /// The audit log cannot be opened, or its start record not written.
    #[error("audit log: {0}")]
    Audit(#[source] NodeError),
    /// The policy settings (officers) are unusable.
    #[error("policy: {0}")]
    Policy(#[source] NodeError),
    /// The gRPC server failed.
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The failure of one request.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A configuration problem met while serving a request. Mapped to
    /// `INTERNAL`; startup configuration errors are [`ServerError::Config`]
    /// and internal failures [`Self::Internal`].
    #[error("configuration: {0}")]
    Config(String),
    /// A failure inside the node (a bug, a broken invariant): logged,
    /// mapped to `INTERNAL` without details.
    #[error("internal: {0}")]
    Internal(String),
    #[error("TLS: {0}")]
    Tls(#[from] sigil_tls::TlsError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("sealing: {0}")]
    Seal(#[from] SealError),
    #[error("protocol: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("unknown session {0}")]
    UnknownSession(String),
    /// A bound on what the node holds is reached (open sessions, remembered
    /// session ids): `RESOURCE_EXHAUSTED`, retry later.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    #[error("session {0} expired")]
    SessionExpired(String),
    #[error("key {0} already exists on this node")]
    KeyExists(String),
    #[error("unknown key {0}")]
    UnknownKey(String),
    /// The coordinator asked for another epoch of the key than this node
    /// signs with (an epoch switch in progress): `ABORTED`, try other nodes.
    #[error("key {key_id} is at epoch {held} at this node; the request is for epoch {requested}")]
    EpochMismatch {
        key_id: String,
        requested: u64,
        held: u64,
    },
    #[error("not supported: {0}")]
    Unsupported(String),
    /// No backup recipient is configured (`[backup] recipient`).
    #[error("{0}")]
    BackupNotConfigured(String),
    /// The audit record of an operation could not be committed, so the
    /// operation is refused (fail closed).
    #[error("audit log unavailable: {0}")]
    AuditUnavailable(String),
    /// The audit log failed in a way that is not a refusal (a bug, a corrupt row).
    #[error("audit: {0}")]
    Audit(String),
    /// No valid signed intent or approval: missing, malformed, a bad
    /// signature, an unknown or unauthorized requester.
    #[error("not authorized: {0}")]
    Unauthorized(String),
    /// A valid intent this node will not act on: expired, replayed, for
    /// another key or path, or differing from the session it came with.
    #[error("refused: {0}")]
    Refused(String),
    /// A policy document or key operation the security officers' rules
    /// refuse: too few officer signatures, a version not newer than the one
    /// in force, an operation other than the one signed.
    #[error("refused by governance: {0}")]
    GovernanceRefused(String),
    /// The key's policy refuses the payload; `rule` names the rule.
    #[error("policy: {reason} (rule {rule})")]
    PolicyDenied { rule: String, reason: String },
    /// The key's policy asks for approvals the intent does not carry.
    #[error(
        "approval required: {required} approvals from group {group} ({have} valid so far; rule {rule})"
    )]
    ApprovalRequired {
        rule: String,
        group: String,
        required: u16,
        have: u16,
    },
    /// Another participant of the session is a node this node banned from
    /// the key (a DKLs23 ban, [`crate::bans`]): refused before any
    /// randomness is drawn. `banned` lists every such participant.
    #[error(
        "{} from key {key_id} by this node: {reason}",
        crate::bans::describe(banned)
    )]
    Banned {
        key_id: String,
        banned: Vec<u16>,
        reason: String,
    },
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        let refusal = match &e {
            NodeError::Unauthorized(_)
            | NodeError::Refused(_)
            | NodeError::GovernanceRefused(_)
            | NodeError::PolicyDenied { .. }
            | NodeError::ApprovalRequired { .. } => Some(crate::audit::refusal_kind(&e)),
            _ => None,
        };
        let mut status = status_of(e);
        if let Some(kind) = refusal {
            status.metadata_mut().insert(
                sigil_proto::convert::metadata::REFUSAL,
                tonic::metadata::MetadataValue::from_static(kind),
            );
        }
        status
    }
}

/// The status of an error, before refusal metadata.
fn status_of(e: NodeError) -> Status {
    {
        match e {
            NodeError::InvalidRequest(m) => Status::invalid_argument(m),
            NodeError::ResourceExhausted(m) => Status::resource_exhausted(m),
            NodeError::Protocol(p) => protocol_status(&p),
            NodeError::UnknownSession(s) => {
                Status::not_found(format!("unknown or finished session {s}"))
            }
            NodeError::SessionExpired(s) => {
                Status::deadline_exceeded(format!("session {s} expired"))
            }
            NodeError::KeyExists(k) => {
                Status::already_exists(format!("key {k} already exists on this node"))
            }
            NodeError::UnknownKey(k) => Status::not_found(format!("unknown key {k}")),
            e @ NodeError::EpochMismatch { .. } => Status::aborted(e.to_string()),
            NodeError::Unsupported(m) => Status::unimplemented(m),
            NodeError::BackupNotConfigured(m) => Status::failed_precondition(m),
            e @ NodeError::Unauthorized(_) => Status::permission_denied(e.to_string()),
            e @ (NodeError::Refused(_) | NodeError::GovernanceRefused(_)) => {
                Status::failed_precondition(e.to_string())
            }
            NodeError::PolicyDenied { rule, reason } => {
                let mut status =
                    Status::failed_precondition(format!("policy: {reason} (rule {rule})"));
                if let Ok(v) = rule.parse() {
                    status.metadata_mut().insert(POLICY_RULE_METADATA, v);
                }
                status
            }
            NodeError::ApprovalRequired {
                rule,
                group,
                required,
                have,
            } => {
                let mut status = Status::failed_precondition(format!(
                    "approval required: {required} approvals from group {group} ({have} valid so far; rule {rule})"
                ));
                if let Ok(v) = format!("{group}:{have}/{required}").parse() {
                    status.metadata_mut().insert(APPROVAL_REQUIRED_METADATA, v);
                }
                status
            }
            e @ NodeError::Banned { .. } => {
                // Not a refusal on the node's own authority over the request:
                // the coordinator excludes the banned nodes and retries.
                let mut status = Status::failed_precondition(e.to_string());
                if let NodeError::Banned { banned, .. } = &e {
                    sigil_proto::convert::metadata::insert_culprits(status.metadata_mut(), banned);
                    sigil_proto::convert::metadata::insert_banned(status.metadata_mut(), banned);
                }
                status
            }
            NodeError::AuditUnavailable(m) => {
                tracing::error!(reason = %m, "audit log unavailable; operation refused");
                Status::unavailable("audit log unavailable; operation refused")
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub use sigil_proto::convert::metadata::{
    APPROVAL_REQUIRED as APPROVAL_REQUIRED_METADATA, CULPRITS as CULPRITS_METADATA,
    POLICY_RULE as POLICY_RULE_METADATA, RELAY_SUSPECTED as RELAY_SUSPECTED_METADATA,
};

/// A protocol failure: `FAILED_PRECONDITION` with the culprits (and a
/// DKLs23 ban) in metadata, so the coordinator can exclude them without
/// parsing messages.
fn protocol_status(e: &ProtocolError) -> Status {
    use sigil_proto::convert::metadata;
    let mut status = Status::failed_precondition(e.to_string());
    let culprits: Vec<u16> = e.culprits().iter().map(|c| c.get()).collect();
    metadata::insert_culprits(status.metadata_mut(), &culprits);
    if let Some(banned) = e.banned() {
        metadata::insert_banned(status.metadata_mut(), &[banned.get()]);
    }
    if e.implicates_relay() {
        metadata::insert_relay_suspected(status.metadata_mut());
    }
    status
}
