//! The prost types of TRON's own protocol definitions (protobuf package
//! `protocol`), generated at build time by `build.rs` from the `.proto`
//! files vendored unmodified in `chains/proto/tron` (github.com/tronprotocol/protocol,
//! LGPL-3.0; see `chains/proto/tron/README.md`).
//!
//! Sigil uses [`Transaction`], [`transaction::Raw`] (`Transaction.raw`),
//! [`transaction::Contract`] with its
//! [`ContractType`](transaction::contract::ContractType),
//! [`TransferContract`] and [`TriggerSmartContract`]; the rest is generated
//! because it lives in the same files. `google.protobuf.Any` is
//! [`prost_types::Any`].

// Generated code: its names and docs are TRON's, not Sigil's.
#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    rustdoc::all
)]

include!(concat!(env!("OUT_DIR"), "/protocol.rs"));

/// `google.protobuf.Any`, as the generated types use it (re-exported so
/// callers can build a contract's `parameter` without naming prost-types).
pub use prost_types::Any;
