//! End-to-end simulations: DKG, then signing, then verification, for every
//! FROST scheme at 2-of-3 and 3-of-5, with every message signed, sealed and
//! routed through `SecureSession` + `RoundRelay` as in the cluster. Final
//! signatures are checked with independent verifiers where one exists
//! (BIP-340 via `k256`, RFC 8032 via `ed25519-dalek`).

mod common;

use common::*;
use sigil_protocol::Scheme;
use sigil_protocol::frost::{self, KeyShare};

/// Verifies with a library that shares no code with frost.
fn verify_independently(scheme: Scheme, public_key: &[u8], message: &[u8], signature: &[u8]) {
    match scheme {
        Scheme::FrostTaproot => {
            let key = k256::schnorr::VerifyingKey::from_bytes(public_key).expect("x-only key");
            let sig = k256::schnorr::Signature::try_from(signature).expect("64-byte signature");
            key.verify_raw(message, &sig).expect("BIP-340 verification");
        }
        Scheme::FrostEd25519 => {
            let key =
                ed25519_dalek::VerifyingKey::from_bytes(public_key.try_into().expect("32 bytes"))
                    .expect("key");
            let sig = ed25519_dalek::Signature::from_bytes(signature.try_into().expect("64 bytes"));
            key.verify_strict(message, &sig)
                .expect("RFC 8032 strict verification");
        }
        Scheme::FrostSecp256k1 => {
            let key = frost_secp256k1::VerifyingKey::deserialize(public_key).expect("SEC1 key");
            let sig = frost_secp256k1::Signature::deserialize(signature).expect("R||z");
            key.verify(message, &sig).expect("RFC 9591 verification");
        }
        Scheme::EcdsaSecp256k1 => unreachable!(),
    }
}

fn expected_lengths(scheme: Scheme) -> (usize, usize) {
    match scheme {
        Scheme::FrostSecp256k1 => (33, 65),
        Scheme::FrostTaproot => (32, 64),
        Scheme::FrostEd25519 => (32, 64),
        Scheme::EcdsaSecp256k1 => unreachable!(),
    }
}

fn dkg_sign_verify(scheme: Scheme, threshold: u16, total: u16, seed: u64) {
    let mut rng = rng(seed);
    let cluster = Cluster::new(total, &mut rng);
    let dkg = run_dkg(&cluster, scheme, threshold, &mut rng);
    assert_eq!(dkg.len(), usize::from(total));

    // Everyone agrees on the group key and public key package.
    let first = dkg.values().next().expect("output");
    let (key_len, sig_len) = expected_lengths(scheme);
    assert_eq!(first.public_key.len(), key_len);
    for (node, out) in &dkg {
        assert_eq!(out.public_key, first.public_key);
        assert_eq!(out.public_key_package, first.public_key_package);
        assert_eq!(out.key_share.node_id(), *node);
        assert_eq!(out.key_share.scheme(), scheme);
        assert_eq!(out.key_share.threshold(), Ok(threshold));
        assert_eq!(out.key_share.public_key().as_ref(), Ok(&first.public_key));
        // The at-rest encoding round-trips.
        let restored = KeyShare::from_bytes(&out.key_share.to_bytes()).expect("decode");
        assert_eq!(&restored, &out.key_share);
        // Debug never prints the secret package.
        let debug = format!("{:?}", out.key_share);
        assert!(debug.contains("redacted"), "{debug}");
    }

    // Two different signer subsets of size `threshold` both produce valid signatures.
    let message = b"sigil: pay 1 BTC to bob (32 b)!!".as_slice();
    let subsets: [Vec<_>; 2] = [
        cluster.nodes[..usize::from(threshold)].to_vec(),
        cluster.nodes[usize::from(total - threshold)..].to_vec(),
    ];
    for signers in subsets {
        let signature =
            run_sign(&cluster, scheme, &signers, &dkg, message, &mut rng).expect("signature");
        assert_eq!(signature.len(), sig_len);
        frost::verify(scheme, &first.public_key, message, &signature).expect("verifies");
        verify_independently(scheme, &first.public_key, message, &signature);
        assert!(frost::verify(scheme, &first.public_key, b"another message", &signature).is_err());
    }
}

#[test]
fn frost_secp256k1_2_of_3() {
    dkg_sign_verify(Scheme::FrostSecp256k1, 2, 3, 1);
}

#[test]
fn frost_secp256k1_3_of_5() {
    dkg_sign_verify(Scheme::FrostSecp256k1, 3, 5, 2);
}

#[test]
fn frost_taproot_2_of_3() {
    dkg_sign_verify(Scheme::FrostTaproot, 2, 3, 3);
}

#[test]
fn frost_taproot_3_of_5() {
    dkg_sign_verify(Scheme::FrostTaproot, 3, 5, 4);
}

#[test]
fn frost_ed25519_2_of_3() {
    dkg_sign_verify(Scheme::FrostEd25519, 2, 3, 5);
}

#[test]
fn frost_ed25519_3_of_5() {
    dkg_sign_verify(Scheme::FrostEd25519, 3, 5, 6);
}

/// Many Taproot keys, to exercise both parities of the internal and output keys.
#[test]
fn frost_taproot_keys_of_both_parities_verify_under_bip340() {
    for seed in 100..108 {
        let mut rng = rng(seed);
        let cluster = Cluster::new(2, &mut rng);
        let dkg = run_dkg(&cluster, Scheme::FrostTaproot, 2, &mut rng);
        let key = &dkg.values().next().expect("output").public_key;
        let signature = run_sign(
            &cluster,
            Scheme::FrostTaproot,
            &cluster.nodes,
            &dkg,
            b"parity",
            &mut rng,
        )
        .expect("signature");
        verify_independently(Scheme::FrostTaproot, key, b"parity", &signature);
    }
}
