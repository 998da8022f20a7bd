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
//! | a head deleted (not the last) | [`FindingKind::HeadGap`] at the head after it |
//! | a head replaced, or re-linked | [`FindingKind::HeadChainBreak`] |
//!
//! Heads are chained ([`crate::HeadLink`]): indices 1, 2, 3, … each naming
//! the id of the head before. Legacy heads (without a link, signed before
//! heads were chained) are checked against the log as before and take no
//! part in the head chain.
//!
//! The tail of a log deleted together with the heads covering it leaves a
//! log that verifies on its own. [`check_seen_heads`] catches it when
//! another process recorded a head of it (`head_seen`, see [`crate::seen`]):
//!
//! | tampering | finding |
//! |---|---|
//! | the tail and its heads deleted | [`FindingKind::TruncatedSeenHead`] at the first missing sequence |
//! | every record and head deleted | [`FindingKind::EmptyLogSeenHead`] |
//! | the last heads deleted | [`FindingKind::SeenHeadMissing`] |
//! | the log rewritten and re-signed | [`FindingKind::SeenHeadMismatch`] |
//!
//! [`cross_check`] compares the coordinator's log with the nodes' logs: a
//! node that issued a signature share must have been asked by the
//! coordinator for that session, and every signature the coordinator
//! returned must be backed by shares on `t` nodes of its quorum. It catches
//! a coordinator that signs without recording it:
//!
//! | inconsistency | finding |
//! |---|---|
//! | a share issued for a session the coordinator does not record | [`FindingKind::UnknownSession`] |
//! | a share's key or digest differs from the coordinator's | [`FindingKind::SessionMismatch`] |
//! | a signature returned without `t` shares | [`FindingKind::UnbackedSignature`] |
//! | `t` shares issued for a session the coordinator records as failed (without culprits) | [`FindingKind::SharesForFailedSession`] |
//! | a session or signature record without key id or digest | [`FindingKind::EmptySessionField`] |

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::head::{HeadLink, HeadVerifier, SignedHead};
use crate::record::{Hash, Record, action, genesis_hash};
use crate::seen::parse_head_seen;
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
    /// A head's link does not name the head before it (same index twice,
    /// or `previous` is not that head's id): a head replaced.
    HeadChainBreak,
    /// Head indices skip: heads deleted.
    HeadGap,
    /// Another process saw a head of this log that covers records the log
    /// does not have: its tail was deleted with its own heads.
    TruncatedSeenHead,
    /// The log is empty, but another process saw a head of it with records.
    EmptyLogSeenHead,
    /// Another process saw a head of this log beyond the log's own last
    /// head: heads deleted.
    SeenHeadMissing,
    /// A head another process saw differs from this log (its record at that
    /// sequence, or its own head of that index): rewritten.
    SeenHeadMismatch,
    /// Shares were issued by `t` nodes for a session the coordinator records
    /// as failed without naming culprits: a signature may exist unrecorded.
    SharesForFailedSession,
    /// A coordinator session or signature record has no key id or digest.
    EmptySessionField,
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

    check_head_chain(process, &valid_heads, &mut report);

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

/// Checks the chain of `heads` (signatures already verified): indices
/// from 1 without gaps, each naming the id of the head before.
fn check_head_chain(process: &str, heads: &[&SignedHead], report: &mut Report) {
    let mut linked: Vec<(HeadLink, &SignedHead)> = heads
        .iter()
        .filter_map(|h| h.link.map(|l| (l, *h)))
        .collect();
    linked.sort_by_key(|(l, h)| (l.index, h.timestamp.clone()));
    let mut previous: Option<(HeadLink, &SignedHead, Hash)> = None;
    for (link, head) in linked {
        let id = head.id();
        match previous {
            None if link.index == 0 => {
                report.add(
                    process,
                    head.sequence,
                    FindingKind::HeadChainBreak,
                    format!(
                        "signed head {} has index 0 (heads count from 1)",
                        head.timestamp
                    ),
                );
                continue;
            }
            None if link.index > 1 => report.add(
                process,
                head.sequence,
                FindingKind::HeadGap,
                format!(
                    "the first signed head is #{} (signed {}): heads #1..=#{} are missing",
                    link.index,
                    head.timestamp,
                    link.index - 1
                ),
            ),
            None if link.previous != [0; 32] => report.add(
                process,
                head.sequence,
                FindingKind::HeadChainBreak,
                format!(
                    "signed head #1 (signed {}) names a previous head; the first names none",
                    head.timestamp
                ),
            ),
            None => {}
            Some((prev, _, prev_id)) if link.index == prev.index => {
                if id != prev_id {
                    report.add(
                        process,
                        head.sequence,
                        FindingKind::HeadChainBreak,
                        format!(
                            "two different signed heads claim index #{} (one signed {})",
                            link.index, head.timestamp
                        ),
                    );
                }
                continue;
            }
            Some((prev, _, _)) if link.index > prev.index + 1 => {
                let range = if link.index == prev.index + 2 {
                    format!("head #{} is", prev.index + 1)
                } else {
                    format!("heads #{}..=#{} are", prev.index + 1, link.index - 1)
                };
                report.add(
                    process,
                    head.sequence,
                    FindingKind::HeadGap,
                    format!(
                        "{range} missing (deleted): head #{} (signed {}) follows head #{}",
                        link.index, head.timestamp, prev.index
                    ),
                );
            }
            Some((prev, prev_head, prev_id)) if link.previous != prev_id => report.add(
                process,
                head.sequence,
                FindingKind::HeadChainBreak,
                format!(
                    "signed head #{} (signed {}) does not name head #{} (signed {}) as its \
                     previous: a head was replaced",
                    link.index, head.timestamp, prev.index, prev_head.timestamp
                ),
            ),
            Some(_) => {}
        }
        previous = Some((link, head, id));
    }
}

/// One process's log for [`check_seen_heads`].
#[derive(Clone, Copy, Debug)]
pub struct ProcessLog<'a> {
    pub process: &'a str,
    pub records: &'a [Record],
    pub heads: &'a [SignedHead],
}

/// Holds every log against the heads other processes saw of it
/// (`head_seen` records, [`crate::seen`]). Only logs supplied in `logs`
/// are checked (each should have passed [`verify_log`] first): a process
/// whose log is not supplied is not judged. For each log:
///
/// - the highest sequence any other process saw must be in the log
///   ([`FindingKind::TruncatedSeenHead`], or [`FindingKind::EmptyLogSeenHead`]
///   when the log is empty);
/// - a seen head within the log must match its record there
///   ([`FindingKind::SeenHeadMismatch`]);
/// - a seen head's index must be among the log's own heads, and be the
///   same head ([`FindingKind::SeenHeadMissing`], [`FindingKind::SeenHeadMismatch`]).
pub fn check_seen_heads(logs: &[ProcessLog<'_>]) -> Report {
    let mut report = Report::default();
    let by_process: HashMap<&str, &ProcessLog<'_>> = logs.iter().map(|l| (l.process, l)).collect();
    let mut seen_heads = Vec::new();
    for log in logs {
        for r in log.records {
            if let Some(seen) = parse_head_seen(r)
                && seen.process != log.process
                && by_process.contains_key(seen.process.as_str())
            {
                seen_heads.push(seen);
            }
        }
    }
    // The highest seen head of each process, for truncation.
    let mut highest: HashMap<&str, &crate::seen::SeenHead> = HashMap::new();
    for seen in &seen_heads {
        let entry = highest.entry(seen.process.as_str()).or_insert(seen);
        if seen.sequence > entry.sequence {
            *entry = seen;
        }
    }
    let mut processes: Vec<&str> = highest.keys().copied().collect();
    processes.sort_unstable();
    for process in processes {
        let seen = highest[process];
        let log = by_process[process];
        let last = log.records.iter().map(|r| r.sequence).max().unwrap_or(0);
        if seen.sequence <= last {
            continue;
        }
        let (kind, what) = if log.records.is_empty() {
            (FindingKind::EmptyLogSeenHead, "the log is empty".to_owned())
        } else {
            (
                FindingKind::TruncatedSeenHead,
                format!(
                    "the log ends at {last}: records {}..={} were removed with their heads",
                    last + 1,
                    seen.sequence
                ),
            )
        };
        report.add(
            process,
            last + 1,
            kind,
            format!(
                "{} saw a signed head of {process} covering {} records (signed {}; its record \
                 {}), but {what}",
                seen.seen_by, seen.sequence, seen.timestamp, seen.record
            ),
        );
    }
    for seen in &seen_heads {
        let log = by_process[seen.process.as_str()];
        let process = seen.process.as_str();
        let who = format!(
            "the head {} saw (its record {}, signed {})",
            seen.seen_by, seen.record, seen.timestamp
        );
        let expected = if seen.sequence == 0 {
            Some(genesis_hash(process))
        } else {
            log.records
                .iter()
                .find(|r| r.sequence == seen.sequence)
                .map(|r| r.record_hash)
        };
        if let Some(hash) = expected
            && hash != seen.head_hash
        {
            report.add(
                process,
                seen.sequence,
                FindingKind::SeenHeadMismatch,
                format!(
                    "{who} does not match record {}: the log was rewritten",
                    seen.sequence
                ),
            );
            continue;
        }
        let Some(link) = seen.link else { continue };
        let own_last = log
            .heads
            .iter()
            .filter(|h| h.process == process)
            .filter_map(|h| h.link.map(|l| l.index))
            .max()
            .unwrap_or(0);
        if link.index > own_last {
            report.add(
                process,
                seen.sequence,
                FindingKind::SeenHeadMissing,
                format!(
                    "{who} is head #{}, but the log's own heads end at #{own_last}: \
                     heads were deleted",
                    link.index
                ),
            );
            continue;
        }
        let seen_id = SignedHead {
            process: process.to_owned(),
            sequence: seen.sequence,
            head_hash: seen.head_hash,
            timestamp: seen.timestamp.clone(),
            signature: Vec::new(),
            certificate_chain: Vec::new(),
            link: Some(link),
        }
        .id();
        let same_index: Vec<&SignedHead> = log
            .heads
            .iter()
            .filter(|h| h.process == process && h.link.is_some_and(|l| l.index == link.index))
            .collect();
        if !same_index.is_empty() && same_index.iter().all(|h| h.id() != seen_id) {
            report.add(
                process,
                seen.sequence,
                FindingKind::SeenHeadMismatch,
                format!(
                    "{who} is head #{}, but the log's head #{} differs: heads were replaced",
                    link.index, link.index
                ),
            );
        }
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
///   A node whose log is not supplied backs nothing;
/// - a `sign_session_failed` record of the coordinator that names no
///   culprits and is not `error:unattributed` must not have `ok`
///   `share_issued` records on all `t` nodes of its quorum: with every
///   share issued, a signature could have been made
///   ([`FindingKind::SharesForFailedSession`]);
/// - every `sign_session`, `sign_session_failed` and `signature_returned`
///   record of the coordinator has a key id and a digest
///   ([`FindingKind::EmptySessionField`]).
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
        let session_record = [
            action::SIGN_SESSION,
            action::SIGN_SESSION_FAILED,
            action::SIGNATURE_RETURNED,
        ]
        .contains(&r.action.as_str());
        if session_record && (r.key_id.is_empty() || r.digest.is_empty()) {
            let missing = match (r.key_id.is_empty(), r.digest.is_empty()) {
                (true, true) => "key id and digest",
                (true, false) => "key id",
                _ => "digest",
            };
            report.add(
                COORDINATOR_PROCESS,
                r.sequence,
                FindingKind::EmptySessionField,
                format!(
                    "{} record of session {:?} has no {missing}",
                    r.action, r.session_id
                ),
            );
        }
        if r.action != action::SIGN_SESSION_FAILED
            || r.is_ok()
            || !r.culprits.is_empty()
            || r.outcome == crate::record::outcome::error("unattributed")
            || r.session_id.is_empty()
            || r.quorum.is_empty()
        {
            continue;
        }
        let issued: Vec<u16> = r
            .quorum
            .iter()
            .copied()
            .filter(|node| {
                shares
                    .get(node)
                    .is_some_and(|s| s.contains(r.session_id.as_str()))
            })
            .collect();
        if issued.len() == r.quorum.len() {
            report.add(
                COORDINATOR_PROCESS,
                r.sequence,
                FindingKind::SharesForFailedSession,
                format!(
                    "session {} of key {:?} is recorded as failed ({}) without culprits, but \
                     all {} signers {:?} issued their shares: a signature could have been made",
                    r.session_id,
                    r.key_id,
                    r.outcome,
                    issued.len(),
                    issued
                ),
            );
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
