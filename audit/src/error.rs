//! Errors of the audit log.
//!
//! The one a daemon must act on is [`AuditError::Unavailable`]: the record
//! of an operation could not be made durable, so the operation must be
//! refused (gRPC `UNAVAILABLE`). [`AuditError::is_unavailable`] says so
//! without matching on variants.

/// Why the audit log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The record (or signed head) is not durably stored: the database is
    /// locked, full, read-only or failing, or the log has been stopped.
    /// The operation being audited must be refused.
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
    /// The entry breaks the record rules (empty or malformed action or
    /// outcome, oversized field); a bug in the caller.
    #[error("invalid audit entry: {0}")]
    InvalidEntry(String),
    /// A query filter that cannot be applied (unparsable time bound).
    #[error("invalid audit query: {0}")]
    InvalidFilter(String),
    /// Unusable [`crate::AuditOptions`].
    #[error("invalid audit log options: {0}")]
    InvalidOptions(String),
    /// The database already holds the log of another process.
    #[error("audit database holds the log of {found:?}, not {expected:?}")]
    ProcessMismatch { expected: String, found: String },
    /// A database opened for reading holds no audit log.
    #[error("no audit log in this database ({0})")]
    NoLog(String),
    /// A stored row does not decode (wrong column types or lengths).
    #[error("corrupt audit row (sequence {sequence}): {reason}")]
    Corrupt { sequence: i64, reason: String },
    /// The head signer failed.
    #[error("signing the audit head failed: {0}")]
    Signing(String),
    /// Opening or reading the database failed.
    #[error("audit database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("audit schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Writing an export failed.
    #[error("audit export: {0}")]
    Io(#[from] std::io::Error),
}

impl AuditError {
    /// True when the audited operation must be refused because its record
    /// could not be committed (map to gRPC `UNAVAILABLE`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Why an exported JSON-lines file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("reading audit export: {0}")]
    Io(#[from] std::io::Error),
    /// Line `line` (1-based) is not a valid record or head.
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
}
