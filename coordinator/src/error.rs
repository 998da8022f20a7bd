//! Coordinator errors, by layer: [`ServerError`] — why the coordinator
//! could not start or stopped serving (configuration, TLS material, store,
//! node channels, audit log, listener) — and [`CoordinatorError`], the
//! failure of one request, with its deliberate mapping to gRPC status
//! codes. Internal details are logged; clients get a stable, non-revealing
//! message.

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

/// Why the coordinator could not start (`CoordinatorConfig::load`,
/// `CoordinatorServer::open`) or stopped serving (`CoordinatorServer::run`).
/// No request produces one.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The certificate, its key or the CA cannot be loaded or do not fit.
    #[error("TLS: {0}")]
    Tls(#[from] sigil_tls::TlsError),
    /// The coordinator's database cannot be opened or migrated.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The channels to the configured nodes cannot be set up.
    #[error("nodes: {0}")]
    Nodes(#[source] CoordinatorError),
    /// The audit log cannot be opened, or its start record not written.
    #[error("audit log: {0}")]
    Audit(#[source] CoordinatorError),
    /// The gRPC server failed, or could not be assembled.
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// gRPC server reflection could not be set up.
    #[error("server reflection: {0}")]
    Reflection(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The failure of one request.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// A configuration problem met while serving a request. Mapped to
    /// `INTERNAL`; startup configuration errors are [`ServerError::Config`]
    /// and internal failures [`Self::Internal`].
    #[error("configuration: {0}")]
    Config(String),
    /// A failure inside the coordinator (a bug, undecodable stored data):
    /// logged, mapped to `INTERNAL` without details.
    #[error("internal: {0}")]
    Internal(String),
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
