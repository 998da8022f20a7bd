//! Signed heads: a process's statement, signed with its certificate key,
//! that its log had `sequence` records ending in `head_hash` at `timestamp`.
//!
//! A head held by someone else (the coordinator collecting nodes' heads, an
//! auditor's export) makes the log up to that point immutable: truncating
//! the log, or rewriting it and recomputing the chain, no longer matches a
//! head that verifies. Signing and verifying sit behind two small traits so
//! that the log does not depend on how keys are held; [`crate::identity`]
//! implements both on top of `sigil-tls`.
//!
//! # The head chain
//!
//! Heads form a chain of their own: each carries a [`HeadLink`], its index
//! among the process's heads (1, 2, 3, …) and the [`SignedHead::id`] of the
//! head before it (all zeros for the first). Deleting heads shows as a gap
//! in the indices, replacing one as a broken link. Heads signed before the
//! chain existed have no link ("legacy" heads): they are signed under the
//! `v1` layout and still verify, but take no part in the head chain.

use std::io::BufRead;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ParseError;
use crate::record::{Hash, parse_lines};

const HEAD_DOMAIN: &str = "sigil/audit/v1/head";
const LINKED_HEAD_DOMAIN: &str = "sigil/audit/v2/head";

/// A head's place in its process's chain of heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadLink {
    /// 1 for the process's first linked head, then 2, 3, … without gaps.
    pub index: u64,
    /// [`SignedHead::id`] of head `index - 1`; all zeros for index 1.
    #[serde(with = "crate::serde_hex::hash")]
    pub previous: Hash,
}

impl HeadLink {
    /// The link of a process's first head.
    pub const FIRST: HeadLink = HeadLink {
        index: 1,
        previous: [0; 32],
    };

    /// The link of the head after the one whose id is `id` and link `self`.
    pub fn next(self, id: Hash) -> HeadLink {
        HeadLink {
            index: self.index.saturating_add(1),
            previous: id,
        }
    }
}

/// A signed statement of a log's head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    pub process: String,
    /// Number of records covered (the last record's sequence; 0 for an empty log).
    pub sequence: u64,
    /// `record_hash` of record `sequence`, or the genesis hash for 0.
    #[serde(with = "crate::serde_hex::hash")]
    pub head_hash: Hash,
    /// When it was signed (canonical RFC 3339 UTC, milliseconds).
    pub timestamp: String,
    /// Signature over [`SignedHead::signing_bytes`].
    #[serde(with = "crate::serde_hex::bytes")]
    pub signature: Vec<u8>,
    /// DER certificates of the signer, end-entity first.
    #[serde(with = "crate::serde_hex::list")]
    pub certificate_chain: Vec<Vec<u8>>,
    /// Its place in the chain of heads; `None` for a legacy head (signed
    /// before heads were chained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<HeadLink>,
}

impl SignedHead {
    /// The bytes the signature covers: [`linked_head_signing_bytes`], or
    /// [`head_signing_bytes`] for a legacy head.
    pub fn signing_bytes(&self) -> Vec<u8> {
        match &self.link {
            Some(link) => linked_head_signing_bytes(
                &self.process,
                self.sequence,
                &self.head_hash,
                &self.timestamp,
                link,
            ),
            None => head_signing_bytes(
                &self.process,
                self.sequence,
                &self.head_hash,
                &self.timestamp,
            ),
        }
    }

    /// What the next head's [`HeadLink::previous`] names:
    /// SHA-256 of [`SignedHead::signing_bytes`].
    pub fn id(&self) -> Hash {
        Sha256::digest(self.signing_bytes()).into()
    }

    /// This head as one line of JSON (without the newline).
    pub fn to_json_line(&self) -> String {
        // Plain strings, integers and hex: serialization cannot fail.
        serde_json::to_string(self).expect("a signed head always serializes")
    }

    /// Parses one line written by [`SignedHead::to_json_line`].
    pub fn from_json_line(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// `lp("sigil/audit/v1/head") ‖ lp(process) ‖ u64be(sequence) ‖ head_hash ‖
/// lp(timestamp)`, where `lp(x) = u64be(len(x)) ‖ x`.
pub fn head_signing_bytes(
    process: &str,
    sequence: u64,
    head_hash: &Hash,
    timestamp: &str,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(8 * 4 + HEAD_DOMAIN.len() + process.len() + 32 + timestamp.len());
    let lp = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    lp(&mut out, HEAD_DOMAIN.as_bytes());
    lp(&mut out, process.as_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(head_hash);
    lp(&mut out, timestamp.as_bytes());
    out
}

/// `lp("sigil/audit/v2/head") ‖ lp(process) ‖ u64be(sequence) ‖ head_hash ‖
/// lp(timestamp) ‖ u64be(link.index) ‖ link.previous`: the signing bytes
/// of a head in the head chain.
pub fn linked_head_signing_bytes(
    process: &str,
    sequence: u64,
    head_hash: &Hash,
    timestamp: &str,
    link: &HeadLink,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(8 * 5 + LINKED_HEAD_DOMAIN.len() + process.len() + 64 + timestamp.len());
    let lp = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    lp(&mut out, LINKED_HEAD_DOMAIN.as_bytes());
    lp(&mut out, process.as_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(head_hash);
    lp(&mut out, timestamp.as_bytes());
    out.extend_from_slice(&link.index.to_be_bytes());
    out.extend_from_slice(&link.previous);
    out
}

/// Reads heads written one per line by [`SignedHead::to_json_line`].
pub fn parse_heads_jsonl(reader: impl BufRead) -> Result<Vec<SignedHead>, ParseError> {
    parse_lines(reader, SignedHead::from_json_line)
}

/// A signature and the certificate chain that verifies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadSignature {
    pub signature: Vec<u8>,
    /// DER, end-entity first.
    pub certificate_chain: Vec<Vec<u8>>,
}

/// Why a head could not be signed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SignError(pub String);

/// Signs heads with the process's identity.
pub trait HeadSigner: Send + Sync + 'static {
    /// Signs `message` (the [`head_signing_bytes`]); returns the signature
    /// with the chain of the key that made it.
    fn sign_head(&self, message: &[u8]) -> Result<HeadSignature, SignError>;
}

/// Why a signed head is not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadVerifyError {
    /// The verifier does not know whose identity may sign for this process.
    #[error("no signing identity is known for process {0:?}")]
    UnknownProcess(String),
    /// The chain is empty, unparsable, not from the trusted CA, or was not
    /// valid at the head's timestamp.
    #[error("certificate chain refused: {0}")]
    Certificate(String),
    /// A valid chain, but of the wrong identity (e.g. node 2 signing for node-3).
    #[error("head of {process:?} must be signed by {expected}, but is signed by {got}")]
    WrongIdentity {
        process: String,
        expected: String,
        got: String,
    },
    /// The signature does not verify under the chain's key.
    #[error("signature does not verify")]
    BadSignature,
    #[error("head timestamp {0:?} is not a canonical RFC 3339 UTC time")]
    Timestamp(String),
}

/// Checks the signature of a head and that it was made by the identity
/// expected for `head.process`.
pub trait HeadVerifier {
    fn verify_head(&self, head: &SignedHead) -> Result<(), HeadVerifyError>;
}

impl<T: HeadVerifier + ?Sized> HeadVerifier for &T {
    fn verify_head(&self, head: &SignedHead) -> Result<(), HeadVerifyError> {
        (**self).verify_head(head)
    }
}

impl<T: HeadVerifier + ?Sized> HeadVerifier for std::sync::Arc<T> {
    fn verify_head(&self, head: &SignedHead) -> Result<(), HeadVerifyError> {
        (**self).verify_head(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_bytes_bind_every_field() {
        let base = head_signing_bytes("node-3", 7, &[1; 32], "2025-01-31T12:00:00.000Z");
        assert!(base.starts_with(&(HEAD_DOMAIN.len() as u64).to_be_bytes()));
        for other in [
            head_signing_bytes("node-4", 7, &[1; 32], "2025-01-31T12:00:00.000Z"),
            head_signing_bytes("node-3", 8, &[1; 32], "2025-01-31T12:00:00.000Z"),
            head_signing_bytes("node-3", 7, &[2; 32], "2025-01-31T12:00:00.000Z"),
            head_signing_bytes("node-3", 7, &[1; 32], "2025-01-31T12:00:00.001Z"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn heads_round_trip_as_json_lines() {
        let head = SignedHead {
            process: "coordinator".into(),
            sequence: 3,
            head_hash: [0xab; 32],
            timestamp: "2025-01-31T12:00:00.000Z".into(),
            signature: vec![1, 2],
            certificate_chain: vec![vec![3], vec![4, 5]],
            link: None,
        };
        let line = head.to_json_line();
        assert!(line.contains("\"certificate_chain\":[\"03\",\"0405\"]"));
        assert!(line.contains("\"signature\":\"0102\""));
        assert!(!line.contains("link"), "a legacy head is written as before");
        let linked = SignedHead {
            link: Some(HeadLink {
                index: 2,
                previous: [7; 32],
            }),
            ..head.clone()
        };
        let linked_line = linked.to_json_line();
        assert!(linked_line.contains(&format!(
            "\"link\":{{\"index\":2,\"previous\":\"{}\"}}",
            hex::encode([7; 32])
        )));
        let text = format!("{line}\n{line}\n{linked_line}\n");
        assert_eq!(
            parse_heads_jsonl(text.as_bytes()).expect("parse"),
            vec![head.clone(), head, linked]
        );
    }

    #[test]
    fn linked_signing_bytes_bind_the_link() {
        let head = SignedHead {
            process: "node-1".into(),
            sequence: 3,
            head_hash: [1; 32],
            timestamp: "2025-01-31T12:00:00.000Z".into(),
            signature: vec![],
            certificate_chain: vec![],
            link: Some(HeadLink::FIRST),
        };
        let legacy = SignedHead {
            link: None,
            ..head.clone()
        };
        assert_ne!(head.signing_bytes(), legacy.signing_bytes());
        assert_ne!(head.id(), legacy.id());
        let next = SignedHead {
            link: Some(HeadLink::FIRST.next(head.id())),
            ..head.clone()
        };
        assert_eq!(next.link.map(|l| l.index), Some(2));
        assert_ne!(next.signing_bytes(), head.signing_bytes());
        let other_previous = SignedHead {
            link: Some(HeadLink {
                index: 2,
                previous: [9; 32],
            }),
            ..head.clone()
        };
        assert_ne!(other_previous.signing_bytes(), next.signing_bytes());
    }
}
