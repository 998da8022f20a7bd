//! Node errors and their deliberate mapping to gRPC status codes. Internal
//! details (SQL errors, paths) are logged, never sent to the caller.

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

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("configuration: {0}")]
    Config(String),
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
    #[error("session {0} expired")]
    SessionExpired(String),
    #[error("key {0} already exists on this node")]
    KeyExists(String),
    #[error("unknown key {0}")]
    UnknownKey(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    /// The audit record of an operation could not be committed, so the
    /// operation is refused (fail closed).
    #[error("audit log unavailable: {0}")]
    AuditUnavailable(String),
    /// The audit log failed in a way that is not a refusal (a bug, a corrupt row).
    #[error("audit: {0}")]
    Audit(String),
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Status {
        match e {
            NodeError::InvalidRequest(m) => Status::invalid_argument(m),
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
            NodeError::Unsupported(m) => Status::unimplemented(m),
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

/// gRPC metadata naming the nodes a protocol error blames (comma-separated ids).
pub const CULPRITS_METADATA: &str = "sigil-culprits";
/// gRPC metadata set when a protocol error implicates the relay (the coordinator).
pub const RELAY_SUSPECTED_METADATA: &str = "sigil-relay-suspected";

/// A protocol failure: `FAILED_PRECONDITION` with the culprits in metadata, so
/// the coordinator can exclude them without parsing messages.
fn protocol_status(e: &ProtocolError) -> Status {
    let mut status = Status::failed_precondition(e.to_string());
    let culprits: Vec<String> = e.culprits().iter().map(|c| c.get().to_string()).collect();
    if !culprits.is_empty()
        && let Ok(v) = culprits.join(",").parse()
    {
        status.metadata_mut().insert(CULPRITS_METADATA, v);
    }
    if e.implicates_relay() {
        status.metadata_mut().insert(
            RELAY_SUSPECTED_METADATA,
            tonic::metadata::MetadataValue::from_static("true"),
        );
    }
    status
}
