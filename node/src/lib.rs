//! The Sigil signer node.
//!
//! A node holds one share of every key, sealed at rest under its
//! key-encryption key, and takes part in threshold protocols when — and only
//! when — the coordinator's mTLS identity asks it to. It checks every request
//! itself: the coordinator relays, it does not authorize.
//!
//! Layout: [`config`] (TOML + environment), [`seal`] (encryption of shares at
//! rest), [`store`] (the share store behind a trait, SQLite by default),
//! [`ledger`] (policies, intents, counted spends and used session ids,
//! same database; its session openings group-committed by one writer,
//! `group_commit`),
//! [`policy`] (signed intents, per-key policy, spend receipts, officer
//! governance — every check before a nonce is drawn), [`identity`] (the
//! node's encryption key and the verification of relayed participants),
//! [`sessions`] (open protocol sessions and their deadlines), [`epochs`]
//! (refresh and reshare: staging, acknowledging, test-signing and committing
//! a new epoch),
//! [`backup`] (shares sealed to the offline backup key, and the checks of a
//! recovery drill's signing session),
//! [`audit`] (the node's tamper-evident audit log, fail closed),
//! [`bans`] (DKLs23 bans this node holds and enforces itself),
//! [`service`] (the `sigil.v1.Node` gRPC service) and [`server`] (mTLS
//! listener, health, authorization, `run(listener, shutdown)`).

pub mod audit;
pub mod backup;
pub mod bans;
pub mod config;
pub mod epochs;
pub mod error;
mod group_commit;
pub mod identity;
pub mod ledger;
pub mod policy;
pub mod seal;
pub mod server;
pub mod service;
pub mod sessions;
pub mod store;

pub use config::NodeConfig;
pub use error::{NodeError, ServerError};
pub use server::{NodeHandle, NodeServer};
