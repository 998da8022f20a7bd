//! Known-answer test: the FROST(secp256k1, SHA-256) test vectors of
//! RFC 9591, Appendix E.5, fed through Sigil's own signer state machines and
//! coordinator aggregator.
//!
//! `tests/vectors/frost-secp256k1-sha256.json` is copied verbatim from
//! frost-secp256k1 3.0.0 (`tests/helpers/vectors.json`), which transcribes
//! the RFC's vectors. The key shares become Sigil `KeyShare`s, the fixed
//! nonces are injected through the test-only signer constructor, and the
//! commitments, signature shares and final signature are compared to the
//! vectors byte for byte. Everything else (building the signing package
//! from the other signers' commitments, signing, cheater-detecting
//! aggregation, verification, standard encoding) is the production path.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use frost_secp256k1::keys::{KeyPackage, PublicKeyPackage, SigningShare, VerifyingShare};
use frost_secp256k1::round1::SigningCommitments;
use frost_secp256k1::{Identifier, VerifyingKey};
use serde_json::Value;
use sigil_protocol::frost::{self, KeyShare, SigningAggregator};
use sigil_protocol::{Message, NodeId, Protocol, Scheme, SessionId, Transition};
use zeroize::Zeroizing;

const VECTORS: &str = include_str!("vectors/frost-secp256k1-sha256.json");

fn hex_field(v: &Value, key: &str) -> Vec<u8> {
    hex::decode(v[key].as_str().unwrap_or_else(|| panic!("field {key}"))).expect("hex")
}

fn node(v: &Value) -> NodeId {
    NodeId::new(u16::try_from(v.as_u64().expect("identifier")).expect("u16")).expect("nonzero")
}

#[test]
fn rfc9591_frost_secp256k1_sha256_vectors() {
    let v: Value = serde_json::from_str(VECTORS).expect("json");
    let inputs = &v["inputs"];
    let min_signers: u16 = v["config"]["MIN_PARTICIPANTS"]
        .as_str()
        .expect("min")
        .parse()
        .expect("number");
    let message = hex_field(inputs, "message");
    let verifying_key =
        VerifyingKey::deserialize(&hex_field(inputs, "verifying_key_key")).expect("group key");

    // Key shares as frost packages, then as Sigil key shares.
    let mut signing_shares = BTreeMap::new();
    for share in inputs["participant_shares"].as_array().expect("shares") {
        let signing_share =
            SigningShare::deserialize(&hex_field(share, "participant_share")).expect("share");
        signing_shares.insert(node(&share["identifier"]), signing_share);
    }
    let id = |n: NodeId| Identifier::try_from(n.get()).expect("identifier");
    let verifying_shares: BTreeMap<_, _> = signing_shares
        .iter()
        .map(|(n, s)| (id(*n), VerifyingShare::from(*s)))
        .collect();
    let public = PublicKeyPackage::new(verifying_shares.clone(), verifying_key, Some(min_signers));
    let public_bytes = public.serialize().expect("serialize");
    let key_shares: BTreeMap<NodeId, KeyShare> = signing_shares
        .iter()
        .map(|(n, s)| {
            let kp = KeyPackage::new(
                id(*n),
                *s,
                verifying_shares[&id(*n)],
                verifying_key,
                min_signers,
            );
            let bytes = Zeroizing::new(kp.serialize().expect("serialize"));
            let share = KeyShare::from_frost_packages(
                Scheme::FrostSecp256k1,
                *n,
                bytes,
                public_bytes.clone(),
            );
            (*n, share.expect("consistent key share"))
        })
        .collect();

    let signers: Vec<NodeId> = inputs["participant_list"]
        .as_array()
        .expect("list")
        .iter()
        .map(node)
        .collect();
    let session = SessionId::from_bytes([9; 16]);

    // Round 1 with the vectors' nonces: commitments must match.
    let mut parties = BTreeMap::new();
    let mut round1: Vec<Message> = Vec::new();
    for out in v["round_one_outputs"]["outputs"]
        .as_array()
        .expect("outputs")
    {
        let me = node(&out["identifier"]);
        let mut signer = frost::new_signer_with_fixed_nonces(
            Scheme::FrostSecp256k1,
            session,
            me,
            &signers,
            &key_shares[&me],
            &message,
            &hex_field(out, "hiding_nonce"),
            &hex_field(out, "binding_nonce"),
        )
        .expect("signer");
        let messages = signer.start().expect("round 1");
        assert_eq!(messages.len(), 1);
        let commitments =
            SigningCommitments::deserialize(&messages[0].payload).expect("commitments");
        assert_eq!(
            commitments.hiding().serialize().expect("ser"),
            hex_field(out, "hiding_nonce_commitment")
        );
        assert_eq!(
            commitments.binding().serialize().expect("ser"),
            hex_field(out, "binding_nonce_commitment")
        );
        round1.extend(messages);
        parties.insert(me, signer);
    }

    // Round 2: every signer builds the signing package itself; shares must match.
    let expected_shares: BTreeMap<NodeId, Vec<u8>> = v["round_two_outputs"]["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| (node(&o["identifier"]), hex_field(o, "sig_share")))
        .collect();
    let mut shares = Vec::new();
    for (me, signer) in parties.iter_mut() {
        let inbound = round1.iter().filter(|m| m.from != *me).cloned().collect();
        let Transition::Finished {
            messages,
            output: (),
        } = signer.step(inbound).expect("round 2")
        else {
            panic!("signer must finish after round 2");
        };
        assert_eq!(messages.len(), 1);
        assert_eq!(
            messages[0].payload, expected_shares[me],
            "signature share of {me}"
        );
        shares.extend(messages);
    }

    // Coordinator: aggregate and compare with the RFC's final signature.
    let mut aggregator = SigningAggregator::new(
        Scheme::FrostSecp256k1,
        session,
        &public_bytes,
        &signers,
        &message,
    )
    .expect("agg");
    aggregator.add_commitments(round1).expect("commitments");
    let signature = aggregator.aggregate(shares).expect("signature");
    assert_eq!(signature, hex_field(&v["final_output"], "sig"));
    frost::verify(
        Scheme::FrostSecp256k1,
        &verifying_key.serialize().expect("ser"),
        &message,
        &signature,
    )
    .expect("verifies");
}
