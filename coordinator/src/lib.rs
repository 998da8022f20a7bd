//! The Sigil coordinator.
//!
//! The coordinator serves clients (payment services, security operations,
//! auditors) and runs threshold protocols by relaying messages between
//! signer nodes. It holds public data only: key metadata, idempotency
//! records, audit records. It cannot read shares or the secret messages
//! nodes exchange, and nodes re-check everything it asks of them.
//!
//! Layout: [`config`], [`roles`] (client identity → role → services),
//! [`store`] (coordinator storage behind a trait, SQLite by default: keys,
//! idempotency claims, exclusions, policy copies, pending approvals),
//! [`nodes`] (mTLS channels to the nodes, health, quorum choice),
//! [`driver`] (one protocol session across its nodes), [`intents`] (signed
//! intents, per-key access, approvals, spend receipts and policy relay —
//! early checks the nodes repeat themselves), [`keygen`] (key generation:
//! the DKG and its commit on the nodes), [`signing`] (signing, one session
//! per part of a payload, with retries), [`retry`] (the retry, quorum and
//! blame policy of a signing request, without I/O), [`ops`] (what those
//! share: recording culprits, session failures, clearing exclusions, key
//! lookup, addresses), [`transactions`] (the signed chain transaction
//! returned with the signatures), [`epochs`] (refresh and reshare:
//! redistribution, test signatures, commit certificates, resumed switches),
//! [`drill`] (backups relayed from the nodes, recovery drills with a
//! restored node),
//! [`service`] (the client-facing gRPC services), [`limits`] (sign calls
//! in flight per client, lengths of request fields),
//! [`audit`] (the coordinator's audit log, fail closed, and the per-request
//! audit layer), [`audit_api`] (the Audit service, relaying node logs),
//! [`error`] and [`server`].

pub mod audit;
pub mod audit_api;
pub mod config;
pub mod drill;
pub mod driver;
pub mod epochs;
pub mod error;
pub mod intents;
pub mod keygen;
pub mod limits;
pub mod nodes;
pub mod ops;
pub mod retry;
pub mod roles;
pub mod server;
pub mod service;
pub mod signing;
pub mod store;
pub mod transactions;

pub use config::CoordinatorConfig;
pub use error::{CoordinatorError, ServerError};
pub use server::{CoordinatorHandle, CoordinatorServer};
