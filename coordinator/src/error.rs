//! Coordinator errors and their deliberate mapping to gRPC status codes.
//! Internal details are logged; clients get a stable, non-revealing message.

use tonic::Status;

use crate::store::StoreError;

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
    /// A protocol failed and named the nodes responsible.
    #[error("{message}")]
    Misbehaviour { culprits: Vec<u16>, message: String },
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
            CoordinatorError::Misbehaviour { culprits, message } => {
                let mut status = Status::aborted(message);
                let list: Vec<String> = culprits.iter().map(u16::to_string).collect();
                if let Ok(v) = list.join(",").parse() {
                    status.metadata_mut().insert("sigil-culprits", v);
                }
                status
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
