//! The bytes that requesters, approvers, nodes and security officers sign.
//!
//! Every signed object travels as bytes (a serialized protobuf message or a
//! JSON document) and is verified over exactly those bytes, prefixed with a
//! domain that names what they are. Nobody re-serializes before verifying,
//! so any language can produce the signatures, and the prefixes keep a
//! signature made for one purpose from being accepted for another:
//!
//! | object | signed bytes |
//! |---|---|
//! | intent (requester) | `"sigil.v1.Intent\0"` ‖ `SignedIntent.intent` |
//! | approval (approver) | `"sigil.v1.Approval\0"` ‖ SHA-256(`SignedIntent.intent`) |
//! | spend receipt (node) | `"sigil.v1.SpendReceipt\0"` ‖ `SpendReceipt.body` |
//! | policy document (officer) | `"sigil.v1.Policy\0"` ‖ `SignedPolicy.document` |
//! | key operation (officer) | `"sigil.v1.KeyOperation\0"` ‖ `SignedOperation.document` ([`crate::operation`]) |
//! | epoch acknowledgement (node) | `"sigil.v1.EpochAck\0"` ‖ `EpochAck.body` |
//! | epoch test signature (threshold key) | `"sigil.v1.EpochTest\0"` ‖ key id ‖ epoch ‖ session id ([`epoch_test_message`]) |
//! | recovery drill signature (threshold key) | `"sigil.v1.Drill\0"` ‖ key id ‖ epoch ‖ session id ([`drill_message`]) |
//!
//! Each domain ends in a NUL byte, which no domain contains elsewhere, so no
//! domain is a prefix of another.

use sha2::{Digest, Sha256};

/// Domain of a requester's signature over an intent.
pub const INTENT_DOMAIN: &[u8] = b"sigil.v1.Intent\0";
/// Domain of an approver's signature over an intent's SHA-256.
pub const APPROVAL_DOMAIN: &[u8] = b"sigil.v1.Approval\0";
/// Domain of a node's signature over a spend receipt body.
pub const RECEIPT_DOMAIN: &[u8] = b"sigil.v1.SpendReceipt\0";
/// Domain of a security officer's signature over a policy document.
pub const POLICY_DOMAIN: &[u8] = b"sigil.v1.Policy\0";

/// Domain of a node's acknowledgement of a redistributed epoch.
pub const EPOCH_ACK_DOMAIN: &[u8] = b"sigil.v1.EpochAck\0";
/// Domain of the message a key's `next` epoch signs before its commit.
pub const EPOCH_TEST_DOMAIN: &[u8] = b"sigil.v1.EpochTest\0";
/// Domain of the message a recovery drill signs.
pub const DRILL_DOMAIN: &[u8] = b"sigil.v1.Drill\0";

/// What a node signs to acknowledge an epoch: [`EPOCH_ACK_DOMAIN`] ‖ the serialized `EpochAckBody`.
pub fn epoch_ack_signing_bytes(body: &[u8]) -> Vec<u8> {
    prefixed(EPOCH_ACK_DOMAIN, body)
}

/// The message a test signature of a `next` epoch signs: never a payload
/// any chain accepts. Fields are length-prefixed (key id) or fixed-width.
pub fn epoch_test_message(key_id: &str, epoch: u64, session_id: &[u8]) -> Vec<u8> {
    let mut m = EPOCH_TEST_DOMAIN.to_vec();
    m.extend_from_slice(&(key_id.len() as u32).to_be_bytes());
    m.extend_from_slice(key_id.as_bytes());
    m.extend_from_slice(&epoch.to_be_bytes());
    m.extend_from_slice(session_id);
    m
}

/// The message a recovery drill signs (a node restored from a backup with
/// live nodes): never a payload any chain accepts. Laid out like
/// [`epoch_test_message`] under its own domain.
pub fn drill_message(key_id: &str, epoch: u64, session_id: &[u8]) -> Vec<u8> {
    let mut m = DRILL_DOMAIN.to_vec();
    m.extend_from_slice(&(key_id.len() as u32).to_be_bytes());
    m.extend_from_slice(key_id.as_bytes());
    m.extend_from_slice(&epoch.to_be_bytes());
    m.extend_from_slice(session_id);
    m
}

fn prefixed(domain: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + bytes.len());
    out.extend_from_slice(domain);
    out.extend_from_slice(bytes);
    out
}

/// What a requester signs: [`INTENT_DOMAIN`] ‖ the serialized intent.
pub fn intent_signing_bytes(intent: &[u8]) -> Vec<u8> {
    prefixed(INTENT_DOMAIN, intent)
}

/// What an approver signs: [`APPROVAL_DOMAIN`] ‖ SHA-256 of the serialized intent.
pub fn approval_signing_bytes(intent_sha256: &[u8; 32]) -> Vec<u8> {
    prefixed(APPROVAL_DOMAIN, intent_sha256)
}

/// What a node signs: [`RECEIPT_DOMAIN`] ‖ the serialized `SpendReceiptBody`.
pub fn receipt_signing_bytes(body: &[u8]) -> Vec<u8> {
    prefixed(RECEIPT_DOMAIN, body)
}

/// What a security officer signs: [`POLICY_DOMAIN`] ‖ the document's JSON bytes.
pub fn policy_signing_bytes(document: &[u8]) -> Vec<u8> {
    prefixed(POLICY_DOMAIN, document)
}

/// SHA-256 of the serialized intent: what approvals and receipts name it by.
pub fn intent_sha256(intent: &[u8]) -> [u8; 32] {
    Sha256::digest(intent).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAINS: [&[u8]; 8] = [
        INTENT_DOMAIN,
        APPROVAL_DOMAIN,
        RECEIPT_DOMAIN,
        POLICY_DOMAIN,
        crate::operation::OPERATION_DOMAIN,
        EPOCH_ACK_DOMAIN,
        EPOCH_TEST_DOMAIN,
        DRILL_DOMAIN,
    ];

    #[test]
    fn signing_bytes_are_the_domain_followed_by_the_bytes_as_given() {
        assert_eq!(
            intent_signing_bytes(b"\x0a\x01x"),
            b"sigil.v1.Intent\0\x0a\x01x"
        );
        assert_eq!(
            receipt_signing_bytes(b"body"),
            b"sigil.v1.SpendReceipt\0body"
        );
        assert_eq!(policy_signing_bytes(b"{}"), b"sigil.v1.Policy\0{}");
        let hash = [7u8; 32];
        let approval = approval_signing_bytes(&hash);
        assert_eq!(approval.len(), APPROVAL_DOMAIN.len() + 32);
        assert!(approval.starts_with(b"sigil.v1.Approval\0"));
        assert!(approval.ends_with(&hash));
    }

    #[test]
    fn no_domain_is_a_prefix_of_another() {
        for (i, a) in DOMAINS.iter().enumerate() {
            assert_eq!(a.last(), Some(&0), "domain {i} ends in NUL");
            assert_eq!(a.iter().filter(|b| **b == 0).count(), 1);
            for (j, b) in DOMAINS.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "domain {i} is a prefix of domain {j}");
                }
            }
        }
    }

    #[test]
    fn drill_and_epoch_test_messages_differ_only_in_their_domain() {
        let drill = drill_message("k", 3, &[9; 16]);
        let test = epoch_test_message("k", 3, &[9; 16]);
        assert!(drill.starts_with(b"sigil.v1.Drill\0\0\0\0\x01k"));
        assert_eq!(drill[DRILL_DOMAIN.len()..], test[EPOCH_TEST_DOMAIN.len()..]);
        assert_ne!(drill_message("k", 4, &[9; 16]), drill);
    }

    #[test]
    fn the_intent_hash_is_plain_sha256_of_the_intent_bytes() {
        // FIPS 180-2 test vector.
        assert_eq!(
            hex::encode(intent_sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
