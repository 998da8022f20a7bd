//! Sigil's audit log: tamper-evident, fail-closed, embedded in every node and
//! in the coordinator.
//!
//! # Why
//!
//! Every security-relevant event (a signing request, a session, a share
//! issued, a key created, a refusal, a reload) is recorded by the process it
//! happened in, in that process's own SQLite database. An operator with
//! write access to one database must not be able to change history without
//! it showing, and a compromised coordinator must not be able to have nodes
//! sign without the coordinator's own log saying so. Hence:
//!
//! - **Hash chain** ([`record`]): each [`Record`] hashes every one of its
//!   fields together with the previous record's hash; the first record
//!   chains to a per-process genesis hash, so logs of different processes
//!   cannot be swapped.
//! - **Signed heads** ([`head`]): the process periodically signs
//!   `(process, sequence, head_hash, timestamp)` with its certificate key
//!   ([`HeadSigner`]; [`TlsHeadSigner`] on top of `sigil-tls`). Heads kept
//!   elsewhere (collected by the coordinator, exported by auditors) pin the
//!   log: truncating or rewriting it afterwards no longer verifies.
//! - **Fail closed** ([`AuditLog::append`]): an operation is audited before
//!   it is allowed; when the record cannot be made durable the caller gets
//!   [`AuditError::Unavailable`] and refuses the operation. Concurrent
//!   appends are group-committed by one writer task.
//! - **Offline verification** ([`verify_log`], [`cross_check`]): pure
//!   functions over exported records and heads, naming `(process, sequence)`
//!   for every inconsistency they find.
//!
//! This crate knows nothing of gRPC: converting to and from the `sigil.v1`
//! `AuditRecord`/`SignedHead` messages is the daemons' business.
//!
//! # Byte layouts
//!
//! All integers are big-endian. `lp(x)` is `u64be(len(x)) ‖ x` (strings as
//! UTF-8); `list(v)` is `u64be(count) ‖ u16be(v[0]) ‖ u16be(v[1]) ‖ …`.
//!
//! ```text
//! genesis(process)  = SHA-256( lp("sigil/audit/v1/genesis") ‖ lp(process) )
//!
//! record_hash       = SHA-256( lp("sigil/audit/v1/record")
//!                              ‖ lp(process)
//!                              ‖ u64be(sequence)
//!                              ‖ lp(timestamp)
//!                              ‖ lp(actor)
//!                              ‖ lp(action)
//!                              ‖ lp(key_id)
//!                              ‖ lp(request_id)
//!                              ‖ lp(digest)
//!                              ‖ list(quorum)
//!                              ‖ lp(session_id)
//!                              ‖ lp(outcome)
//!                              ‖ list(culprits)
//!                              ‖ lp(detail)
//!                              ‖ previous_hash            (32 bytes) )
//!
//! head signing bytes =  lp("sigil/audit/v2/head")
//!                     ‖ lp(process)
//!                     ‖ u64be(sequence)
//!                     ‖ head_hash                         (32 bytes)
//!                     ‖ lp(timestamp)
//!                     ‖ u64be(head_index)
//!                     ‖ previous_head                     (32 bytes)
//!
//! head id            = SHA-256( head signing bytes )
//!
//! legacy head        =  lp("sigil/audit/v1/head") ‖ lp(process)
//!                     ‖ u64be(sequence) ‖ head_hash ‖ lp(timestamp)
//! ```
//!
//! Heads are chained ([`HeadLink`]): `head_index` counts the process's
//! heads from 1, and `previous_head` is the id of head `head_index - 1`
//! (32 zero bytes for the first). Heads signed before the chain existed
//! (legacy heads, without a link) are signed with the legacy layout; they
//! still verify against the log but take no part in the head chain.
//!
//! The first record (sequence 1) has `previous_hash = genesis(process)`;
//! record `n + 1` has `previous_hash = record_hash(n)`. A head at sequence
//! `n` has `head_hash = record_hash(n)`, or `genesis(process)` for `n = 0`
//! (an empty log). Timestamps are RFC 3339 UTC with exactly three fraction
//! digits (`2025-01-31T12:00:00.123Z`), never decreasing along the chain.
//! `quorum` and `culprits` are sorted and free of duplicates.
//!
//! # Process names
//!
//! `"coordinator"` and `"node-<id>"` ([`COORDINATOR_PROCESS`],
//! [`node_process`]); the default identity check of [`TlsHeadVerifier`]
//! expects the head of `node-3` to be signed by `spiffe://…/node/3` and the
//! coordinator's by `spiffe://…/coordinator`.

/// The columns of `audit_records`, as a literal so queries stay static strings.
macro_rules! record_columns {
    () => {
        "sequence, process, timestamp, actor, action, key_id, request_id, digest, quorum, \
         session_id, outcome, culprits, detail, previous_hash, record_hash"
    };
}

/// The columns of `audit_heads`: all of them, so that a legacy database
/// opened read-only (without `head_index` and `previous_head`) still reads.
macro_rules! head_columns {
    () => {
        "*"
    };
}

pub mod error;
pub mod filter;
pub mod head;
pub mod identity;
pub mod log;
pub mod process;
pub mod record;
pub mod seen;
mod serde_hex;
mod timefmt;
pub mod verify;
mod writer;

pub use error::{AuditError, ParseError};
pub use filter::{DEFAULT_LIMIT, Filter, MAX_LIMIT};
pub use head::{
    HeadLink, HeadSignature, HeadSigner, HeadVerifier, HeadVerifyError, SignError, SignedHead,
    head_signing_bytes, linked_head_signing_bytes, parse_heads_jsonl,
};
pub use identity::{TlsHeadSigner, TlsHeadVerifier, TrustError, expected_identity};
pub use log::{AuditLog, AuditOptions, Durability, Head, WriterStats};
pub use process::{
    AuditConfig, MEMORY_DATABASE, ProcessAudit, actor_of, default_database, signed_digest,
};
pub use record::{Entry, Hash, Record, action, genesis_hash, outcome, parse_jsonl};
pub use seen::{SeenHead, head_seen_entry, parse_head_seen};
pub use verify::{
    Finding, FindingKind, NodeLog, ProcessLog, Report, check_seen_heads, cross_check, verify_log,
};

/// The process name of the coordinator's log.
pub const COORDINATOR_PROCESS: &str = "coordinator";

/// The process name of node `node_id`'s log: `node-<id>`.
pub fn node_process(node_id: u16) -> String {
    format!("node-{node_id}")
}

/// The node id in a process name `node-<id>` (decimal, no leading zeros, ≥ 1).
pub fn node_id_of(process: &str) -> Option<u16> {
    let digits = process.strip_prefix("node-")?;
    if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u16>().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_names_round_trip() {
        assert_eq!(node_process(3), "node-3");
        assert_eq!(node_id_of("node-3"), Some(3));
        assert_eq!(node_id_of("node-65535"), Some(65535));
        for bad in [
            "node-0",
            "node-03",
            "node-",
            "node-+3",
            "node-65536",
            "coordinator",
        ] {
            assert_eq!(node_id_of(bad), None, "{bad}");
        }
    }
}
