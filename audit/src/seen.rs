//! Heads seen by other processes: `head_seen` records.
//!
//! A process's own heads pin its log only as long as they exist: an
//! attacker with the database who truncates the log's tail deletes the
//! heads covering it too. So when a process sees another process's signed
//! head (the coordinator, each time it fetches the nodes' heads for the
//! `Audit` service), it appends a `head_seen` record of it to its **own**
//! log, where it is chained and covered by its own signed heads like any
//! other record. [`crate::check_seen_heads`] then holds every log against
//! the heads other processes saw of it: a log that ends before a head
//! someone saw, or is empty although someone saw a head of it, was
//! truncated.
//!
//! A `head_seen` record: action `head_seen`, actor the seeing process's
//! identity, `request_id` the seen process (`node-3`), `digest` the seen
//! head's hash, `detail` a JSON object with the head's `sequence`,
//! `timestamp`, `index` and `previous` (its [`HeadLink`], absent for a
//! legacy head) and `signature` (hex; left out if it would not fit), so an
//! auditor can check the signature against the seen process's certificate.

use serde::{Deserialize, Serialize};

use crate::head::{HeadLink, SignedHead};
use crate::record::{Entry, Hash, MAX_DETAIL_LEN, Record, action};

/// What a `head_seen` record's `detail` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SeenDetail {
    sequence: u64,
    timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_hash")]
    previous: Option<Hash>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    signature: String,
}

mod opt_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(h) => s.serialize_str(&hex::encode(h)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        let Some(s) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Some(out))
    }
}

/// A head of another process, as a `head_seen` record states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenHead {
    /// Who saw it (the process whose log holds the record).
    pub seen_by: String,
    /// The `head_seen` record's sequence in `seen_by`'s log.
    pub record: u64,
    /// Whose head it is.
    pub process: String,
    pub sequence: u64,
    pub head_hash: Hash,
    pub timestamp: String,
    /// `None` for a legacy head.
    pub link: Option<HeadLink>,
    /// The head's signature (empty if it did not fit in the record).
    pub signature: Vec<u8>,
}

/// The `head_seen` entry recording `head` (of another process), made by `actor`.
pub fn head_seen_entry(actor: impl Into<String>, head: &SignedHead) -> Entry {
    let mut detail = SeenDetail {
        sequence: head.sequence,
        timestamp: head.timestamp.clone(),
        index: head.link.map(|l| l.index),
        previous: head.link.map(|l| l.previous),
        signature: hex::encode(&head.signature),
    };
    let mut json = serde_json::to_string(&detail).unwrap_or_default();
    if json.len() > MAX_DETAIL_LEN {
        detail.signature.clear();
        json = serde_json::to_string(&detail).unwrap_or_default();
    }
    Entry::new(actor, action::HEAD_SEEN)
        .request_id(head.process.clone())
        .digest(head.head_hash.to_vec())
        .detail(json)
}

/// The head a `head_seen` record states, or `None` if `record` is not an
/// `ok` `head_seen` record or does not decode.
pub fn parse_head_seen(record: &Record) -> Option<SeenHead> {
    if record.action != action::HEAD_SEEN || !record.is_ok() {
        return None;
    }
    let detail: SeenDetail = serde_json::from_str(&record.detail).ok()?;
    let head_hash: Hash = record.digest.as_slice().try_into().ok()?;
    let link = match (detail.index, detail.previous) {
        (Some(index), Some(previous)) => Some(HeadLink { index, previous }),
        _ => None,
    };
    Some(SeenHead {
        seen_by: record.process.clone(),
        record: record.sequence,
        process: record.request_id.clone(),
        sequence: detail.sequence,
        head_hash,
        timestamp: detail.timestamp,
        link,
        signature: hex::decode(&detail.signature).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::genesis_hash;

    #[test]
    fn head_seen_records_round_trip() {
        let head = SignedHead {
            process: "node-2".into(),
            sequence: 41,
            head_hash: [3; 32],
            timestamp: "2025-01-31T12:00:00.000Z".into(),
            signature: vec![0xaa; 72],
            certificate_chain: vec![vec![1; 600]],
            link: Some(HeadLink {
                index: 5,
                previous: [4; 32],
            }),
        };
        let entry = head_seen_entry("spiffe://sigil.local/coordinator", &head)
            .normalize()
            .expect("valid");
        let record = Record::chain(
            "coordinator",
            7,
            "2025-01-31T12:00:01.000Z".into(),
            entry,
            genesis_hash("coordinator"),
        );
        let seen = parse_head_seen(&record).expect("parse");
        assert_eq!(seen.seen_by, "coordinator");
        assert_eq!(seen.record, 7);
        assert_eq!(seen.process, "node-2");
        assert_eq!(seen.sequence, 41);
        assert_eq!(seen.head_hash, [3; 32]);
        assert_eq!(seen.link, head.link);
        assert_eq!(seen.signature, head.signature);

        // A signature too long for the detail is left out, the rest kept.
        let long = SignedHead {
            signature: vec![0xbb; 600],
            link: None,
            ..head
        };
        let entry = head_seen_entry("c", &long).normalize().expect("valid");
        let record = Record::chain(
            "coordinator",
            1,
            "2025-01-31T12:00:01.000Z".into(),
            entry,
            genesis_hash("coordinator"),
        );
        let seen = parse_head_seen(&record).expect("parse");
        assert!(seen.signature.is_empty());
        assert_eq!((seen.sequence, seen.link), (41, None));
    }
}
