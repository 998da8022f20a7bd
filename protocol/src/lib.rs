//! Sigil's threshold protocols as pure, sans-I/O state machines.
//!
//! Nothing in this crate performs I/O, spawns tasks or reads a clock: every
//! protocol takes messages and returns messages. The node wraps a protocol
//! with transport, storage and policy; the coordinator only routes the
//! messages it returns (see [`relay`]). This keeps the cryptographic logic
//! testable in-process (see the simulation tests) and keeps the transport
//! replaceable.
//!
//! Core vocabulary:
//! - [`NodeId`]: a signer node, also its protocol participant identifier (never 0);
//! - [`SessionId`]: one run of one protocol, chosen by the coordinator;
//! - [`Message`]: what one party sends in one round, to everyone, one node or the coordinator;
//! - [`Protocol`]: the state machine trait every protocol implements;
//! - [`Scheme`]: which signature scheme a key and a session use.
//!
//! Protocols: [`frost`] (DKG, signing, aggregation, verification for
//! FROST secp256k1, Taproot and Ed25519), [`ecdsa`] (threshold ECDSA over
//! secp256k1 with DKLs23, with non-hardened BIP-32 derivation) and
//! `reshare`: verifiable secret redistribution (refresh, or reshare to a new
//! participant set and threshold), generic over the group and reached through
//! [`engine::new_reshare`]. Transport security:
//! [`envelope`] (sender signatures and end-to-end encryption between nodes)
//! and [`relay`] (the coordinator's pure routing of one round).

mod codec;
pub mod ecdsa;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod frost;
pub mod ids;
pub mod message;
pub mod protocol;
pub mod relay;
mod reshare;
mod rounds;
pub mod scheme;

pub use error::ProtocolError;
pub use ids::{NodeId, SessionId};
pub use message::{Message, Recipient};
pub use protocol::{Protocol, Transition};
pub use scheme::Scheme;
