//! Coordinator errors and their deliberate mapping to gRPC status codes.
//! Internal details are logged; clients get a stable, non-revealing message.

use tonic::Status;

use crate::store::StoreError;

impl From<sigil_audit::AuditError> for CoordinatorError {
    fn from(e: sigil_audit::AuditError) -> Self {
        match e {
            sigil_audit::AuditError::Unavailable(_) => Self::AuditUnavailable(e.to_string()),
            sigil_audit::AuditError::InvalidFilter(m) => Self::InvalidRequest(m),
            other => Self::Audit(other.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("TLS: {0}")]
    Tls(#[from] sigil_tls::TlsError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    Unimplemented(String),
    /// No valid signed intent, or a requester not allowed on the key.
    #[error("{0}")]
    PermissionDenied(String),
    /// Refused by an intent or policy check (at the coordinator or a node);
    /// `metadata` carries the machine-readable details (`sigil-policy-rule`,
    /// `sigil-approval-required`, `sigil-approval-id`).
    #[error("{message}")]
    FailedPrecondition {
        message: String,
        metadata: Vec<(&'static str, String)>,
    },
    /// A protocol failed and named the nodes responsible.
    #[error("{message}")]
    Misbehaviour { culprits: Vec<u16>, message: String },
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

impl From<CoordinatorError> for Status {
    fn from(e: CoordinatorError) -> Status {
        match e {
            CoordinatorError::InvalidRequest(m) => Status::invalid_argument(m),
            CoordinatorError::NotFound(m) => Status::not_found(m),
            CoordinatorError::Unavailable(m) => Status::unavailable(m),
            CoordinatorError::AlreadyExists(m) => Status::already_exists(m),
            CoordinatorError::Aborted(m) => Status::aborted(m),
            CoordinatorError::Unimplemented(m) => Status::unimplemented(m),
            CoordinatorError::PermissionDenied(m) => Status::permission_denied(m),
            CoordinatorError::FailedPrecondition { message, metadata } => {
                let mut status = Status::failed_precondition(message);
                for (key, value) in metadata {
                    if let Ok(v) = value.parse() {
                        status.metadata_mut().insert(key, v);
                    }
                }
                status
            }
            CoordinatorError::AuditUnavailable(m) => {
                tracing::error!(reason = %m, "audit log unavailable; request refused");
                Status::unavailable("audit log unavailable; request refused")
            }
            CoordinatorError::Misbehaviour { culprits, message } => {
                let mut status = Status::aborted(message);
                sigil_proto::convert::metadata::insert_culprits(status.metadata_mut(), &culprits);
                status
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
