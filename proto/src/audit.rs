//! Exact, lossless conversions between the audit log's [`Record`] and
//! [`SignedHead`] and their `sigil.v1` wire forms, `AuditRecord` and
//! `SignedHead`; and the one conversion between an audit query on the wire
//! (`QueryRecordsRequest` from auditors, `ExportAuditRequest` relayed to
//! nodes) and the log's [`Filter`], so the coordinator and the nodes read
//! the same request the same way.
//!
//! Every field of a record is covered by its hash, so a conversion that
//! dropped or normalized anything would make relayed records fail
//! verification. Wire values that do not fit the record's types (a hash
//! that is not 32 bytes, a node id above 65535) are refused, never
//! truncated: the auditor then reports the record as undecodable.

use sigil_audit::{Filter, Record, SignedHead};

use crate::v1 as pb;

/// Why a wire record or head is not a valid [`Record`] or [`SignedHead`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{process} #{sequence}: {reason}")]
pub struct WireAuditError {
    pub process: String,
    pub sequence: u64,
    pub reason: String,
}

fn nodes_to_wire(nodes: &[u16]) -> Vec<u32> {
    nodes.iter().copied().map(u32::from).collect()
}

fn nodes_from_wire(nodes: &[u32]) -> Result<Vec<u16>, String> {
    nodes
        .iter()
        .map(|&n| u16::try_from(n).map_err(|_| format!("node id {n} out of range")))
        .collect()
}

fn hash_from_wire(what: &str, bytes: &[u8]) -> Result<[u8; 32], String> {
    bytes
        .try_into()
        .map_err(|_| format!("{what} is {} bytes, not 32", bytes.len()))
}

/// The wire form of a record.
pub fn record_to_wire(r: &Record) -> pb::AuditRecord {
    pb::AuditRecord {
        process: r.process.clone(),
        sequence: r.sequence,
        timestamp: r.timestamp.clone(),
        actor: r.actor.clone(),
        action: r.action.clone(),
        key_id: r.key_id.clone(),
        request_id: r.request_id.clone(),
        digest: r.digest.clone(),
        quorum: nodes_to_wire(&r.quorum),
        session_id: r.session_id.clone(),
        outcome: r.outcome.clone(),
        previous_hash: r.previous_hash.to_vec(),
        record_hash: r.record_hash.to_vec(),
        detail: r.detail.clone(),
        culprits: nodes_to_wire(&r.culprits),
    }
}

/// A record from the wire, exactly as sent (its hash is not checked here;
/// that is what verification is for).
pub fn record_from_wire(r: pb::AuditRecord) -> Result<Record, WireAuditError> {
    let fail = |reason: String| WireAuditError {
        process: r.process.clone(),
        sequence: r.sequence,
        reason,
    };
    let quorum = nodes_from_wire(&r.quorum).map_err(|e| fail(format!("quorum: {e}")))?;
    let culprits = nodes_from_wire(&r.culprits).map_err(|e| fail(format!("culprits: {e}")))?;
    let previous_hash = hash_from_wire("previous_hash", &r.previous_hash).map_err(fail)?;
    let record_hash = hash_from_wire("record_hash", &r.record_hash).map_err(fail)?;
    Ok(Record {
        process: r.process,
        sequence: r.sequence,
        timestamp: r.timestamp,
        actor: r.actor,
        action: r.action,
        key_id: r.key_id,
        request_id: r.request_id,
        digest: r.digest,
        quorum,
        session_id: r.session_id,
        outcome: r.outcome,
        culprits,
        detail: r.detail,
        previous_hash,
        record_hash,
    })
}

/// The wire form of a signed head (`root_hash` carries the head hash).
pub fn head_to_wire(h: &SignedHead) -> pb::SignedHead {
    pb::SignedHead {
        process: h.process.clone(),
        sequence: h.sequence,
        root_hash: h.head_hash.to_vec(),
        timestamp: h.timestamp.clone(),
        signature: h.signature.clone(),
        certificate_chain: h.certificate_chain.clone(),
        head_index: h.link.map(|l| l.index).unwrap_or(0),
        previous_head: h.link.map(|l| l.previous.to_vec()).unwrap_or_default(),
    }
}

/// A signed head from the wire (its signature is not checked here).
pub fn head_from_wire(h: pb::SignedHead) -> Result<SignedHead, WireAuditError> {
    let head_hash = hash_from_wire("head hash", &h.root_hash).map_err(|reason| WireAuditError {
        process: h.process.clone(),
        sequence: h.sequence,
        reason,
    })?;
    // Index 0: a legacy head, signed before heads were chained.
    let link = if h.head_index == 0 {
        None
    } else {
        let previous =
            hash_from_wire("previous head", &h.previous_head).map_err(|reason| WireAuditError {
                process: h.process.clone(),
                sequence: h.sequence,
                reason,
            })?;
        Some(sigil_audit::HeadLink {
            index: h.head_index,
            previous,
        })
    };
    Ok(SignedHead {
        process: h.process,
        sequence: h.sequence,
        head_hash,
        timestamp: h.timestamp,
        signature: h.signature,
        certificate_chain: h.certificate_chain,
        link,
    })
}

/// The conditions of an audit query as the wire carries them: empty
/// strings and zeros mean "unset".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireConditions<'a> {
    pub from_time: &'a str,
    pub to_time: &'a str,
    pub key_id: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub outcome: &'a str,
    pub after_sequence: u64,
    pub limit: u32,
}

/// A wire message that carries an audit query.
pub trait WireQuery {
    fn conditions(&self) -> WireConditions<'_>;
}

impl WireQuery for pb::QueryRecordsRequest {
    fn conditions(&self) -> WireConditions<'_> {
        WireConditions {
            from_time: &self.from_time,
            to_time: &self.to_time,
            key_id: &self.key_id,
            actor: &self.actor,
            action: &self.action,
            outcome: &self.outcome,
            after_sequence: self.after_sequence,
            limit: self.limit,
        }
    }
}

impl WireQuery for pb::ExportAuditRequest {
    fn conditions(&self) -> WireConditions<'_> {
        WireConditions {
            from_time: &self.from_time,
            to_time: &self.to_time,
            key_id: &self.key_id,
            actor: &self.actor,
            action: &self.action,
            outcome: &self.outcome,
            after_sequence: self.after_sequence,
            limit: self.limit,
        }
    }
}

/// The log filter of a wire query. Empty strings are unset conditions;
/// `after_sequence` 0 is no lower bound (sequences start at 1, so "after 0"
/// and "from the start" are the same records); `limit` 0 is unset (whose
/// meaning, a default page or every record, is the caller's: `query` or
/// `export`).
pub fn filter_from_wire(req: &impl WireQuery) -> Filter {
    let c = req.conditions();
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Filter {
        from_time: opt(c.from_time),
        to_time: opt(c.to_time),
        key_id: opt(c.key_id),
        actor: opt(c.actor),
        action: opt(c.action),
        outcome: opt(c.outcome),
        after_sequence: (c.after_sequence > 0).then_some(c.after_sequence),
        limit: (c.limit > 0).then_some(c.limit),
    }
}

/// The wire form of a filter as a query of `process`'s log (empty: the
/// coordinator's); [`filter_from_wire`] reads it back.
pub fn query_request(filter: &Filter, process: &str) -> pb::QueryRecordsRequest {
    pb::QueryRecordsRequest {
        from_time: filter.from_time.clone().unwrap_or_default(),
        to_time: filter.to_time.clone().unwrap_or_default(),
        key_id: filter.key_id.clone().unwrap_or_default(),
        actor: filter.actor.clone().unwrap_or_default(),
        action: filter.action.clone().unwrap_or_default(),
        outcome: filter.outcome.clone().unwrap_or_default(),
        limit: filter.limit.unwrap_or(0),
        process: process.to_owned(),
        after_sequence: filter.after_sequence.unwrap_or(0),
    }
}

/// The wire form of a filter as an export request to a node;
/// [`filter_from_wire`] reads it back.
pub fn export_request(filter: &Filter) -> pb::ExportAuditRequest {
    pb::ExportAuditRequest {
        from_time: filter.from_time.clone().unwrap_or_default(),
        to_time: filter.to_time.clone().unwrap_or_default(),
        key_id: filter.key_id.clone().unwrap_or_default(),
        actor: filter.actor.clone().unwrap_or_default(),
        action: filter.action.clone().unwrap_or_default(),
        outcome: filter.outcome.clone().unwrap_or_default(),
        after_sequence: filter.after_sequence.unwrap_or(0),
        limit: filter.limit.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_queries_become_the_same_filter() {
        let full = Filter::default()
            .from_time("2025-01-31T00:00:00Z")
            .to_time("2025-02-01T00:00:00Z")
            .key_id("key-1")
            .actor("spiffe://sigil.local/client/signer")
            .action("request")
            .outcome("refused")
            .after_sequence(41)
            .limit(7);
        for filter in [Filter::default(), full] {
            let query = query_request(&filter, "node-2");
            assert_eq!(query.process, "node-2");
            let export = export_request(&filter);
            assert_eq!(filter_from_wire(&query), filter);
            assert_eq!(filter_from_wire(&export), filter);
        }
    }

    #[test]
    fn zero_and_empty_mean_unset() {
        let export = pb::ExportAuditRequest {
            after_sequence: 0,
            limit: 0,
            ..Default::default()
        };
        let query = pb::QueryRecordsRequest {
            after_sequence: 0,
            limit: 0,
            ..Default::default()
        };
        // "After sequence 0" is the whole log, the same as no lower bound.
        assert_eq!(filter_from_wire(&export), Filter::default());
        assert_eq!(filter_from_wire(&query), Filter::default());
        let paged = pb::ExportAuditRequest {
            after_sequence: 1,
            ..Default::default()
        };
        assert_eq!(filter_from_wire(&paged).after_sequence, Some(1));
    }

    fn record() -> Record {
        Record {
            process: "node-2".into(),
            sequence: 7,
            timestamp: "2025-01-31T12:00:00.123Z".into(),
            actor: "spiffe://sigil.local/coordinator".into(),
            action: "share_issued".into(),
            key_id: "key-1".into(),
            request_id: "idem-1".into(),
            digest: vec![1, 2, 3],
            quorum: vec![1, 2, 65535],
            session_id: "00ff".into(),
            outcome: "error:protocol".into(),
            culprits: vec![3],
            detail: "d".into(),
            previous_hash: [4; 32],
            record_hash: [5; 32],
        }
    }

    #[test]
    fn records_and_heads_round_trip_exactly() {
        let r = record();
        assert_eq!(record_from_wire(record_to_wire(&r)), Ok(r));
        let h = SignedHead {
            process: "coordinator".into(),
            sequence: 3,
            head_hash: [9; 32],
            timestamp: "2025-01-31T12:00:00.000Z".into(),
            signature: vec![1],
            certificate_chain: vec![vec![2], vec![3, 4]],
            link: None,
        };
        assert_eq!(head_from_wire(head_to_wire(&h)), Ok(h.clone()));
        let linked = SignedHead {
            link: Some(sigil_audit::HeadLink {
                index: 4,
                previous: [8; 32],
            }),
            ..h
        };
        assert_eq!(head_from_wire(head_to_wire(&linked)), Ok(linked));
    }

    #[test]
    fn values_that_do_not_fit_are_refused() {
        let mut w = record_to_wire(&record());
        w.quorum.push(65536);
        assert!(record_from_wire(w).is_err());
        let mut w = record_to_wire(&record());
        w.record_hash.pop();
        let e = record_from_wire(w).expect_err("short hash");
        assert_eq!((e.process.as_str(), e.sequence), ("node-2", 7));
        let mut h = head_to_wire(&SignedHead {
            process: "node-1".into(),
            sequence: 0,
            head_hash: [0; 32],
            timestamp: String::new(),
            signature: vec![],
            certificate_chain: vec![],
            link: None,
        });
        h.root_hash.push(0);
        assert!(head_from_wire(h).is_err());
    }
}
