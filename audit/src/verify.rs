//! Verification of audit logs, as pure functions over records and heads
//! (from a database or from exported JSON-lines files).
//!
//! [`verify_log`] checks one process's log on its own: that every record
//! hashes to its `record_hash`, that sequences run 1, 2, 3, … without gaps
//! or repeats, that each record chains to the one before (the first to the
//! process's genesis hash), that timestamps never decrease, and that every
//! signed head verifies, was made by the right identity and matches the
//! record at its sequence. Tampering shows as:
//!
//! | tampering | finding, at `(process, sequence)` |
//! |---|---|
//! | a field edited | [`FindingKind::HashMismatch`] at the record |
//! | a field edited and its hash recomputed | [`FindingKind::ChainBreak`] at the next record, or [`FindingKind::HeadMismatch`] at a head covering it |
//! | records deleted | [`FindingKind::Missing`] at the first missing sequence |
//! | the tail deleted | [`FindingKind::Truncated`] at the first missing sequence (needs a head beyond it) |
//! | sequences swapped | [`FindingKind::HashMismatch`] at both |
//! | lines of an export reordered | [`FindingKind::OutOfOrder`] |
//! | a record inserted or replaced | [`FindingKind::ChainBreak`] (and [`FindingKind::Duplicate`] if its sequence repeats) |
//! | a head edited or forged | [`FindingKind::HeadSignature`] |
//!
//! [`cross_check`] compares the coordinator's log with the nodes' logs: a
//! node that issued a signature share must have been asked by the
//! coordinator for that session, and every signature the coordinator
//! returned must be backed by shares on `t` nodes of its quorum. It catches
//! a coordinator that signs without recording it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::head::{HeadVerifier, SignedHead};
use crate::record::{Hash, Record, action, genesis_hash};
use crate::{COORDINATOR_PROCESS, node_process, timefmt};

/// What is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A stored row does not decode (only from [`crate::AuditLog::verify`]).
    Undecodable,
    /// The record names another process.
    WrongProcess,
    /// The record's fields do not hash to its `record_hash`: edited.
    HashMismatch,
    /// `previous_hash` is not the previous record's hash: inserted,
    /// replaced, or the previous record was rewritten.
    ChainBreak,
    /// Sequences are missing: records deleted.
    Missing,
    /// The same sequence appears twice.
    Duplicate,
    /// Records are not in ascending sequence order.
    OutOfOrder,
    /// Sequence 0 (records start at 1).
    BadSequence,
    /// The timestamp is not canonical RFC 3339 UTC with milliseconds.
    BadTimestamp,
    /// The timestamp is before the previous record's.
    TimestampRegression,
    /// A head names another process.
    HeadProcess,
    /// A head's signature or signer is refused.
    HeadSignature,
    /// A valid head covers records the log does not have: tail deleted.
    Truncated,
    /// A valid head's hash differs from the record at its sequence.
    HeadMismatch,
    /// A valid head commits to fewer records than an earlier valid head.
    HeadRegression,
    /// A node issued a share for a session the coordinator's log does not
    /// show it taking part in.
    UnknownSession,
    /// A node's share record disagrees with the coordinator's session
    /// record (key or digest).
    SessionMismatch,
    /// The coordinator returned a signature without shares from `t` nodes
    /// of its quorum.
    UnbackedSignature,
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{self:?}"));
        f.write_str(&s)
    }
}

/// One inconsistency, located at a record (or head) of a process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub process: String,
    pub sequence: u64,
    pub kind: FindingKind,
    pub reason: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} #{}: {}: {}",
            self.process, self.sequence, self.kind, self.reason
        )
    }
}

/// The result of a verification: every finding, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Records examined.
    pub records: u64,
    /// Signed heads examined.
    pub heads: u64,
    /// Signed heads that verified and matched the log.
    pub heads_matched: u64,
}

impl Report {
    /// True if nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings about `process`.
    pub fn findings_for<'a>(&'a self, process: &'a str) -> impl Iterator<Item = &'a Finding> {
        self.findings.iter().filter(move |f| f.process == process)
    }

    /// The first finding about `process`.
    pub fn first_for(&self, process: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.process == process)
    }

    /// Adds the findings and counts of `other`.
    pub fn merge(&mut self, other: Report) {
        self.findings.extend(other.findings);
        self.records += other.records;
        self.heads += other.heads;
        self.heads_matched += other.heads_matched;
    }

    fn add(&mut self, process: &str, sequence: u64, kind: FindingKind, reason: String) {
        self.findings.push(Finding {
            process: process.to_owned(),
            sequence,
            kind,
            reason,
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} records, {} signed heads ({} matched), {} findings",
            self.records,
            self.heads,
            self.heads_matched,
            self.findings.len()
        )?;
        for finding in &self.findings {
            writeln!(f, "  {finding}")?;
        }
        Ok(())
    }
}

/// Verifies the log of `process`: `records` (normally in sequence order)
/// and its signed `heads`, whose signatures `verifier` checks. The log must
/// be complete from sequence 1; a filtered export reports the filtered-out
/// records as missing.
pub fn verify_log(
    process: &str,
    records: &[Record],
    heads: &[SignedHead],
    verifier: &dyn HeadVerifier,
) -> Report {
    let mut report = Report {
        records: records.len() as u64,
        heads: heads.len() as u64,
        ..Report::default()
    };

    for pair in records.windows(2) {
        if let [a, b] = pair
            && b.sequence < a.sequence
        {
            report.add(
                process,
                b.sequence,
                FindingKind::OutOfOrder,
                format!("record {} comes after record {}", b.sequence, a.sequence),
            );
        }
    }
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| r.sequence);

    let genesis = genesis_hash(process);
    let mut prev_seq = 0u64;
    let mut prev_hash = genesis;
    let mut prev_time: Option<&str> = None;
    let mut by_sequence: HashMap<u64, Hash> = HashMap::with_capacity(sorted.len());
    for r in sorted {
        let seq = r.sequence;
        if seq == 0 {
            report.add(
                process,
                0,
                FindingKind::BadSequence,
                "sequence 0 is not a record sequence (records start at 1)".into(),
            );
            continue;
        }
        if seq == prev_seq {
            report.add(
                process,
                seq,
                FindingKind::Duplicate,
                format!("a second record claims sequence {seq}"),
            );
            continue;
        }
        if r.process != process {
            report.add(
                process,
                seq,
                FindingKind::WrongProcess,
                format!("record names process {:?}", r.process),
            );
        }
        if !r.hash_is_valid() {
            report.add(
                process,
                seq,
                FindingKind::HashMismatch,
                "the record's fields do not match its record_hash (edited)".into(),
            );
        }
        if seq > prev_seq + 1 {
            let range = if seq - 1 == prev_seq + 1 {
                format!("record {} is", prev_seq + 1)
            } else {
                format!("records {}..={} are", prev_seq + 1, seq - 1)
            };
            report.add(
                process,
                prev_seq + 1,
                FindingKind::Missing,
                format!("{range} missing (deleted); the log resumes at {seq}"),
            );
        } else if r.previous_hash != prev_hash {
            let reason = if prev_seq == 0 {
                format!("the first record does not chain to the genesis hash of {process:?}")
            } else {
                format!(
                    "previous_hash does not match the record_hash of record {prev_seq} \
                     (inserted or replaced record, or record {prev_seq} rewritten)"
                )
            };
            report.add(process, seq, FindingKind::ChainBreak, reason);
        }
        match (timefmt::parse_canonical(&r.timestamp), prev_time) {
            (None, _) => report.add(
                process,
                seq,
                FindingKind::BadTimestamp,
                format!("timestamp {:?} is not canonical RFC 3339 UTC", r.timestamp),
            ),
            (Some(_), Some(prev)) if r.timestamp.as_str() < prev => report.add(
                process,
                seq,
                FindingKind::TimestampRegression,
                format!(
                    "timestamp {} is before the previous record's {prev}",
                    r.timestamp
                ),
            ),
            (Some(_), _) => prev_time = Some(&r.timestamp),
        }
        prev_seq = seq;
        prev_hash = r.record_hash;
        by_sequence.insert(seq, r.record_hash);
    }
    let last = prev_seq;

    let mut truncated_to: Option<u64> = None;
    let mut valid_heads: Vec<&SignedHead> = Vec::new();
    for head in heads {
        if head.process != process {
            report.add(
                process,
                head.sequence,
                FindingKind::HeadProcess,
                format!("signed head names process {:?}", head.process),
            );
            continue;
        }
        if let Err(e) = verifier.verify_head(head) {
            report.add(
                process,
                head.sequence,
                FindingKind::HeadSignature,
                format!(
                    "signed head at sequence {} (signed {}) refused: {e}",
                    head.sequence, head.timestamp
                ),
            );
            continue;
        }
        valid_heads.push(head);
        let expected = if head.sequence == 0 {
            Some(genesis)
        } else if head.sequence > last {
            truncated_to = truncated_to.max(Some(head.sequence));
            continue;
        } else {
            by_sequence.get(&head.sequence).copied()
        };
        match expected {
            Some(hash) if hash == head.head_hash => report.heads_matched += 1,
            Some(_) => report.add(
                process,
                head.sequence,
                FindingKind::HeadMismatch,
                format!(
                    "signed head at sequence {} (signed {}) does not match record {}: \
                     the log was rewritten",
                    head.sequence, head.timestamp, head.sequence
                ),
            ),
            None => report.add(
                process,
                head.sequence,
                FindingKind::HeadMismatch,
                format!(
                    "signed head at sequence {} (signed {}) covers a record that is missing",
                    head.sequence, head.timestamp
                ),
            ),
        }
    }
    if let Some(signed) = truncated_to {
        report.add(
            process,
            last + 1,
            FindingKind::Truncated,
            format!(
                "a signed head covers {signed} records but the log ends at {last}: \
                 records {}..={signed} were removed",
                last + 1
            ),
        );
    }

    valid_heads.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    let mut highest: Option<&SignedHead> = None;
    for head in valid_heads {
        if let Some(prev) = highest
            && head.sequence < prev.sequence
        {
            report.add(
                process,
                head.sequence,
                FindingKind::HeadRegression,
                format!(
                    "head signed {} covers {} records, but the head signed {} already covered {}",
                    head.timestamp, head.sequence, prev.timestamp, prev.sequence
                ),
            );
            continue;
        }
        highest = Some(head);
    }
    report
}

/// One node's records for [`cross_check`].
#[derive(Clone, Copy, Debug)]
pub struct NodeLog<'a> {
    pub node_id: u16,
    pub records: &'a [Record],
}

/// Compares the coordinator's log with the nodes' logs (each should have
/// passed [`verify_log`] first):
///
/// - every `share_issued` record (outcome `ok`) on node `n` needs an `ok`
///   `sign_session` record in the coordinator's log with the same
///   `session_id` whose `quorum` contains `n` (and, where both record them,
///   the same `key_id` and `digest`);
/// - every `ok` `signature_returned` record of the coordinator needs `ok`
///   `share_issued` records with its `session_id` on at least `t` nodes of
///   its `quorum`, where `t` is the length of that quorum (the signers).
///   A node whose log is not supplied backs nothing.
pub fn cross_check(coordinator: &[Record], nodes: &[NodeLog<'_>]) -> Report {
    let mut report = Report {
        records: coordinator.len() as u64
            + nodes.iter().map(|n| n.records.len() as u64).sum::<u64>(),
        ..Report::default()
    };

    let mut sessions: HashMap<&str, Vec<&Record>> = HashMap::new();
    for r in coordinator {
        if r.action == action::SIGN_SESSION && r.is_ok() && !r.session_id.is_empty() {
            sessions.entry(r.session_id.as_str()).or_default().push(r);
        }
    }

    let mut shares: HashMap<u16, HashSet<&str>> = HashMap::new();
    for node in nodes {
        let process = node_process(node.node_id);
        let issued = shares.entry(node.node_id).or_default();
        for r in node.records {
            if r.action != action::SHARE_ISSUED || !r.is_ok() {
                continue;
            }
            issued.insert(r.session_id.as_str());
            if r.session_id.is_empty() {
                report.add(
                    &process,
                    r.sequence,
                    FindingKind::UnknownSession,
                    "share issued without a session id".into(),
                );
                continue;
            }
            let Some(candidates) = sessions.get(r.session_id.as_str()) else {
                report.add(
                    &process,
                    r.sequence,
                    FindingKind::UnknownSession,
                    format!(
                        "share issued for session {} of key {:?}, which the coordinator's log \
                         does not record",
                        r.session_id, r.key_id
                    ),
                );
                continue;
            };
            let Some(session) = candidates.iter().find(|s| s.quorum.contains(&node.node_id)) else {
                let quorums: Vec<String> = candidates
                    .iter()
                    .map(|s| format!("{:?}", s.quorum))
                    .collect();
                report.add(
                    &process,
                    r.sequence,
                    FindingKind::UnknownSession,
                    format!(
                        "share issued for session {}, but the coordinator's quorum {} does not \
                         include node {}",
                        r.session_id,
                        quorums.join(", "),
                        node.node_id
                    ),
                );
                continue;
            };
            if !r.key_id.is_empty() && !session.key_id.is_empty() && r.key_id != session.key_id {
                report.add(
                    &process,
                    r.sequence,
                    FindingKind::SessionMismatch,
                    format!(
                        "share issued for key {:?} in session {}, but the coordinator recorded \
                         key {:?} (its record {})",
                        r.key_id, r.session_id, session.key_id, session.sequence
                    ),
                );
            } else if !r.digest.is_empty()
                && !session.digest.is_empty()
                && r.digest != session.digest
            {
                report.add(
                    &process,
                    r.sequence,
                    FindingKind::SessionMismatch,
                    format!(
                        "share issued over digest {} in session {}, but the coordinator recorded \
                         digest {} (its record {})",
                        hex::encode(&r.digest),
                        r.session_id,
                        hex::encode(&session.digest),
                        session.sequence
                    ),
                );
            }
        }
    }

    for r in coordinator {
        if r.action != action::SIGNATURE_RETURNED || !r.is_ok() {
            continue;
        }
        let t = r.quorum.len();
        if t == 0 || r.session_id.is_empty() {
            report.add(
                COORDINATOR_PROCESS,
                r.sequence,
                FindingKind::UnbackedSignature,
                "signature returned without a session id or signers".into(),
            );
            continue;
        }
        let mut backed = 0;
        let mut missing = BTreeSet::new();
        for node in &r.quorum {
            match shares.get(node) {
                Some(sessions) if sessions.contains(r.session_id.as_str()) => backed += 1,
                Some(_) => {
                    missing.insert(format!("node {node}"));
                }
                None => {
                    missing.insert(format!("node {node} (no log supplied)"));
                }
            }
        }
        if backed < t {
            report.add(
                COORDINATOR_PROCESS,
                r.sequence,
                FindingKind::UnbackedSignature,
                format!(
                    "signature returned for session {} of key {:?} is backed by shares of \
                     {backed} of its {t} signers; none from {}",
                    r.session_id,
                    r.key_id,
                    missing.into_iter().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    }
    report
}
