//! Audit records: what is recorded ([`Entry`]), what is stored and exported
//! ([`Record`]), and the hash chain that binds them.
//!
//! A record's hash covers every field, length-prefixed and domain-separated,
//! plus the previous record's hash (layout in the [crate docs](crate)).
//! Changing, removing, inserting or reordering records therefore breaks the
//! chain at that point; only the last record can be rewritten without a
//! trace in the chain itself, which is what signed heads are for.
//!
//! Records export as JSON lines ([`Record::to_json_line`], [`parse_jsonl`]):
//! one object per line, snake_case field names in a fixed order, bytes as
//! lowercase hex, unknown fields refused (they would not be covered by the
//! hash).

use std::io::BufRead;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AuditError, ParseError};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

const RECORD_DOMAIN: &str = "sigil/audit/v1/record";
const GENESIS_DOMAIN: &str = "sigil/audit/v1/genesis";

/// Longest `actor` and `request_id`, in bytes.
pub const MAX_ID_LEN: usize = 512;
/// Longest `key_id` and `session_id`, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Longest `digest`, in bytes.
pub const MAX_DIGEST_LEN: usize = 1024;
/// Most node ids in `quorum` or `culprits`.
pub const MAX_NODES: usize = 1024;
/// `detail` is cut (at a character boundary) to this many bytes.
pub const MAX_DETAIL_LEN: usize = 1024;
/// Longest action name and outcome kind, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Stable action names. Daemons may add others (lowercase `[a-z0-9_.-]`),
/// but never rename one: auditors filter on them.
pub mod action {
    /// A client request reached the coordinator (before it is acted on).
    pub const REQUEST: &str = "request";
    /// The coordinator opened a signing session on a quorum of nodes.
    pub const SIGN_SESSION: &str = "sign_session";
    /// A signing session failed (coordinator; outcome `error:<kind>`, culprits).
    pub const SIGN_SESSION_FAILED: &str = "sign_session_failed";
    /// The coordinator returned a signature to the client.
    pub const SIGNATURE_RETURNED: &str = "signature_returned";
    /// A node released its signature share for a session.
    pub const SHARE_ISSUED: &str = "share_issued";
    /// A key was created (DKG finished and committed).
    pub const KEY_CREATED: &str = "key_created";
    /// A node stored its share of a new key.
    pub const DKG_SHARE_STORED: &str = "dkg_share_stored";
    pub const CONFIG_RELOAD: &str = "config_reload";
    pub const CERT_RELOAD: &str = "cert_reload";
    pub const PROCESS_START: &str = "process_start";
    pub const PROCESS_STOP: &str = "process_stop";
    /// A caller was refused by authorization.
    pub const AUTHZ_DENIED: &str = "authz_denied";
    /// This process saw a signed head of another process (see [`crate::seen`]).
    pub const HEAD_SEEN: &str = "head_seen";
}

/// Stable outcomes: `ok`, or `refused` / `error`, optionally followed by
/// `:<kind>` (lowercase `[a-z0-9_.-]`), e.g. `refused:policy`,
/// `error:node_unavailable`.
pub mod outcome {
    pub const OK: &str = "ok";
    pub const REFUSED: &str = "refused";
    pub const ERROR: &str = "error";

    /// `refused:<kind>`.
    pub fn refused(kind: &str) -> String {
        format!("{REFUSED}:{kind}")
    }

    /// `error:<kind>`.
    pub fn error(kind: &str) -> String {
        format!("{ERROR}:{kind}")
    }

    /// True for a well-formed outcome string.
    pub fn is_valid(outcome: &str) -> bool {
        if outcome == OK {
            return true;
        }
        let (class, kind) = match outcome.split_once(':') {
            Some((class, kind)) => (class, Some(kind)),
            None => (outcome, None),
        };
        (class == REFUSED || class == ERROR) && kind.is_none_or(super::valid_name)
    }
}

/// `[a-z0-9_.-]{1,64}`.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
        })
}

/// What a caller records; the log adds process, sequence, timestamp and hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The mTLS identity of the caller (`spiffe://…/client/payments`), or the
    /// process's own identity for events it causes itself.
    pub actor: String,
    /// See [`action`].
    pub action: String,
    pub key_id: String,
    /// Idempotency key of a signing request, or the coordinator's request id.
    pub request_id: String,
    /// Digest of what was (to be) signed.
    pub digest: Vec<u8>,
    /// Node ids taking part; for `signature_returned`, exactly the signers
    /// (its length is the threshold `t`).
    pub quorum: Vec<u16>,
    /// Protocol session id (hex).
    pub session_id: String,
    /// See [`outcome`]; `ok` unless set.
    pub outcome: String,
    /// Node ids blamed for a failure.
    pub culprits: Vec<u16>,
    /// Short human-readable text. Never put secrets here.
    pub detail: String,
}

impl Entry {
    /// An entry with outcome `ok` and every other field empty.
    pub fn new(actor: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            key_id: String::new(),
            request_id: String::new(),
            digest: Vec::new(),
            quorum: Vec::new(),
            session_id: String::new(),
            outcome: outcome::OK.to_owned(),
            culprits: Vec::new(),
            detail: String::new(),
        }
    }

    pub fn key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = key_id.into();
        self
    }

    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = request_id.into();
        self
    }

    pub fn digest(mut self, digest: impl Into<Vec<u8>>) -> Self {
        self.digest = digest.into();
        self
    }

    pub fn quorum(mut self, quorum: impl Into<Vec<u16>>) -> Self {
        self.quorum = quorum.into();
        self
    }

    pub fn session_id(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = session_id.into();
        self
    }

    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = outcome.into();
        self
    }

    /// Outcome `refused:<kind>`.
    pub fn refused(self, kind: &str) -> Self {
        self.outcome(outcome::refused(kind))
    }

    /// Outcome `error:<kind>`.
    pub fn error(self, kind: &str) -> Self {
        self.outcome(outcome::error(kind))
    }

    pub fn culprits(mut self, culprits: impl Into<Vec<u16>>) -> Self {
        self.culprits = culprits.into();
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// Checks the entry and brings it to canonical form: node lists sorted
    /// and deduplicated, `detail` cut to [`MAX_DETAIL_LEN`].
    pub(crate) fn normalize(mut self) -> Result<Self, AuditError> {
        let invalid = |msg: String| Err(AuditError::InvalidEntry(msg));
        if !valid_name(&self.action) {
            return invalid(format!(
                "action {:?} must be 1-{MAX_NAME_LEN} of [a-z0-9_.-]",
                self.action
            ));
        }
        if !outcome::is_valid(&self.outcome) {
            return invalid(format!(
                "outcome {:?} must be \"ok\", \"refused[:kind]\" or \"error[:kind]\"",
                self.outcome
            ));
        }
        for (name, value, max) in [
            ("actor", &self.actor, MAX_ID_LEN),
            ("request_id", &self.request_id, MAX_ID_LEN),
            ("key_id", &self.key_id, MAX_KEY_LEN),
            ("session_id", &self.session_id, MAX_KEY_LEN),
        ] {
            if value.len() > max {
                return invalid(format!("{name} is longer than {max} bytes"));
            }
        }
        if self.digest.len() > MAX_DIGEST_LEN {
            return invalid(format!("digest is longer than {MAX_DIGEST_LEN} bytes"));
        }
        for (name, list) in [
            ("quorum", &mut self.quorum),
            ("culprits", &mut self.culprits),
        ] {
            list.sort_unstable();
            list.dedup();
            if list.len() > MAX_NODES {
                return invalid(format!("{name} names more than {MAX_NODES} nodes"));
            }
        }
        if self.detail.len() > MAX_DETAIL_LEN {
            let mut cut = MAX_DETAIL_LEN;
            while !self.detail.is_char_boundary(cut) {
                cut -= 1;
            }
            self.detail.truncate(cut);
        }
        Ok(self)
    }
}

/// One stored record of a process's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// `coordinator` or `node-<id>`.
    pub process: String,
    /// 1, 2, 3, … without gaps.
    pub sequence: u64,
    /// RFC 3339 UTC with milliseconds, never decreasing.
    pub timestamp: String,
    pub actor: String,
    pub action: String,
    pub key_id: String,
    pub request_id: String,
    #[serde(with = "crate::serde_hex::bytes")]
    pub digest: Vec<u8>,
    pub quorum: Vec<u16>,
    pub session_id: String,
    pub outcome: String,
    pub culprits: Vec<u16>,
    pub detail: String,
    #[serde(with = "crate::serde_hex::hash")]
    pub previous_hash: Hash,
    #[serde(with = "crate::serde_hex::hash")]
    pub record_hash: Hash,
}

impl Record {
    /// Builds record `sequence` of `process` from `entry`, chained to `previous_hash`.
    pub(crate) fn chain(
        process: &str,
        sequence: u64,
        timestamp: String,
        entry: Entry,
        previous_hash: Hash,
    ) -> Self {
        let mut record = Self {
            process: process.to_owned(),
            sequence,
            timestamp,
            actor: entry.actor,
            action: entry.action,
            key_id: entry.key_id,
            request_id: entry.request_id,
            digest: entry.digest,
            quorum: entry.quorum,
            session_id: entry.session_id,
            outcome: entry.outcome,
            culprits: entry.culprits,
            detail: entry.detail,
            previous_hash,
            record_hash: [0; 32],
        };
        record.record_hash = record.compute_hash();
        record
    }

    /// The hash of this record's fields and `previous_hash` (what
    /// `record_hash` must be).
    pub fn compute_hash(&self) -> Hash {
        let mut h = Sha256::new();
        put_bytes(&mut h, RECORD_DOMAIN.as_bytes());
        put_bytes(&mut h, self.process.as_bytes());
        h.update(self.sequence.to_be_bytes());
        for field in [
            &self.timestamp,
            &self.actor,
            &self.action,
            &self.key_id,
            &self.request_id,
        ] {
            put_bytes(&mut h, field.as_bytes());
        }
        put_bytes(&mut h, &self.digest);
        put_nodes(&mut h, &self.quorum);
        put_bytes(&mut h, self.session_id.as_bytes());
        put_bytes(&mut h, self.outcome.as_bytes());
        put_nodes(&mut h, &self.culprits);
        put_bytes(&mut h, self.detail.as_bytes());
        h.update(self.previous_hash);
        h.finalize().into()
    }

    /// True if `record_hash` matches the fields.
    pub fn hash_is_valid(&self) -> bool {
        self.compute_hash() == self.record_hash
    }

    /// True if the outcome is `ok`.
    pub fn is_ok(&self) -> bool {
        self.outcome == outcome::OK
    }

    /// This record as one line of JSON (without the newline).
    pub fn to_json_line(&self) -> String {
        // Plain strings, integers and hex: serialization cannot fail.
        serde_json::to_string(self).expect("an audit record always serializes")
    }

    /// Parses one line written by [`Record::to_json_line`].
    pub fn from_json_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// The `previous_hash` of the first record of `process`.
pub fn genesis_hash(process: &str) -> Hash {
    let mut h = Sha256::new();
    put_bytes(&mut h, GENESIS_DOMAIN.as_bytes());
    put_bytes(&mut h, process.as_bytes());
    h.finalize().into()
}

/// Reads records written one per line by [`Record::to_json_line`]
/// (blank lines are skipped), in file order.
pub fn parse_jsonl(reader: impl BufRead) -> Result<Vec<Record>, ParseError> {
    parse_lines(reader, Record::from_json_line)
}

pub(crate) fn parse_lines<T>(
    reader: impl BufRead,
    parse: impl Fn(&str) -> Result<T, serde_json::Error>,
) -> Result<Vec<T>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        out.push(parse(line).map_err(|e| ParseError::Line {
            line: i + 1,
            reason: e.to_string(),
        })?);
    }
    Ok(out)
}

/// `u64be(len) ‖ bytes`.
pub(crate) fn put_bytes(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// `u64be(count) ‖ u16be…`.
fn put_nodes(h: &mut Sha256, nodes: &[u16]) {
    h.update((nodes.len() as u64).to_be_bytes());
    for n in nodes {
        h.update(n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let entry = Entry::new("spiffe://sigil.local/client/payments", action::REQUEST)
            .key_id("k1")
            .request_id("idem-1")
            .digest(vec![1, 2, 3])
            .quorum(vec![3, 1])
            .session_id("ab12")
            .detail("x")
            .normalize()
            .expect("valid");
        Record::chain(
            "coordinator",
            1,
            "2025-01-31T12:00:00.000Z".into(),
            entry,
            genesis_hash("coordinator"),
        )
    }

    #[test]
    fn every_field_is_hashed() {
        let r = sample();
        assert!(r.hash_is_valid());
        assert_eq!(r.quorum, vec![1, 3], "quorum is normalized");
        let edits: Vec<fn(&mut Record)> = vec![
            |r| r.process = "node-1".into(),
            |r| r.sequence = 2,
            |r| r.timestamp = "2025-01-31T12:00:00.001Z".into(),
            |r| r.actor.push('x'),
            |r| r.action = "sign_session".into(),
            |r| r.key_id.push('x'),
            |r| r.request_id.push('x'),
            |r| r.digest.push(0),
            |r| r.quorum.push(4),
            |r| r.session_id.push('0'),
            |r| r.outcome = "refused".into(),
            |r| r.culprits.push(2),
            |r| r.detail.push('x'),
            |r| r.previous_hash[0] ^= 1,
        ];
        for (i, edit) in edits.iter().enumerate() {
            let mut e = r.clone();
            edit(&mut e);
            assert!(!e.hash_is_valid(), "edit {i} not covered by the hash");
        }
    }

    #[test]
    fn length_prefixes_separate_fields() {
        let mut a = sample();
        a.key_id = "ab".into();
        a.request_id = "c".into();
        let mut b = sample();
        b.key_id = "a".into();
        b.request_id = "bc".into();
        assert_ne!(a.compute_hash(), b.compute_hash());
        assert_ne!(genesis_hash("node-1"), genesis_hash("node-2"));
    }

    #[test]
    fn json_lines_round_trip_with_hex_and_snake_case() {
        let r = sample();
        let line = r.to_json_line();
        assert!(!line.contains('\n'));
        assert!(line.starts_with("{\"process\":\"coordinator\",\"sequence\":1,"));
        assert!(line.contains("\"digest\":\"010203\""));
        assert!(line.contains(&format!(
            "\"record_hash\":\"{}\"",
            hex::encode(r.record_hash)
        )));
        assert_eq!(Record::from_json_line(&line).expect("parse"), r);
        let text = format!("{line}\n\n{line}\n");
        assert_eq!(
            parse_jsonl(text.as_bytes()).expect("parse").len(),
            2,
            "blank lines skipped"
        );
        let extra = line.replacen('{', "{\"extra\":1,", 1);
        assert!(matches!(
            parse_jsonl(extra.as_bytes()),
            Err(ParseError::Line { line: 1, .. })
        ));
    }

    #[test]
    fn entries_are_validated() {
        let ok = Entry::new("a", action::REQUEST);
        assert!(ok.clone().normalize().is_ok());
        assert!(ok.clone().refused("policy").normalize().is_ok());
        assert!(ok.clone().error("io").normalize().is_ok());
        assert!(ok.clone().outcome("refused").normalize().is_ok());
        for bad in ["", "fine", "refused:", "error:Bad Kind", "ok:x"] {
            assert!(ok.clone().outcome(bad).normalize().is_err(), "{bad:?}");
        }
        assert!(Entry::new("a", "").normalize().is_err());
        assert!(Entry::new("a", "Sign Now").normalize().is_err());
        assert!(
            ok.clone()
                .key_id("k".repeat(MAX_KEY_LEN + 1))
                .normalize()
                .is_err()
        );
        let long = ok
            .detail("é".repeat(MAX_DETAIL_LEN))
            .normalize()
            .expect("cut");
        assert!(long.detail.len() <= MAX_DETAIL_LEN);
        assert!(long.detail.chars().all(|c| c == 'é'));
    }
}
