//! Threshold ECDSA (DKLs23) end to end and under attack: DKG, signing,
//! aggregation and BIP-32 derivation with every message signed, sealed and
//! routed through `SecureSession` + `RoundRelay` as in the cluster, checked
//! with k256's own ECDSA verification and public-key recovery; then
//! malformed input, misbehaving parties and a misbehaving relay, each
//! asserting the exact typed error, the culprit where there is one, and that
//! no key or signature results.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::*;
use dkls23::protocols::dkg::{TransmitInitMulPhase3to4, TransmitInitZeroSharePhase3to4};
use dkls23::protocols::signing::{TransmitPhase1to2, TransmitPhase2to3};
use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};
use sigil_protocol::ecdsa::{
    self, DerivationPath, EcdsaAggregator, EcdsaDkgOutput, EcdsaDkgProtocol, EcdsaKeyShare,
    EcdsaPublicKeyPackage, EcdsaSignature, EcdsaSignerProtocol,
};
use sigil_protocol::{Message, NodeId, Protocol, ProtocolError, Recipient, Scheme, Transition};

type Curve = k256_dkls23::Secp256k1;

fn expect_err<T>(result: Result<T, ProtocolError>) -> ProtocolError {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn path(s: &str) -> DerivationPath {
    s.parse().expect("path")
}

fn master() -> DerivationPath {
    DerivationPath::master()
}

/// A cluster and a 2-of-3 key on sparse node ids (2, 5, 9), generated once
/// through the envelope and the relay and shared by the tests (an ECDSA DKG
/// takes seconds in a debug build).
struct Fixture {
    cluster: Cluster,
    dkg: BTreeMap<NodeId, EcdsaDkgOutput>,
}

fn key_2_of_3() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = rng(1);
        let cluster = Cluster::with_nodes(&[n(9), n(2), n(5)], &mut rng);
        let dkg = run_ecdsa_dkg(&cluster, 2, &mut rng);
        Fixture { cluster, dkg }
    })
}

fn public_key_package(dkg: &BTreeMap<NodeId, EcdsaDkgOutput>) -> Vec<u8> {
    dkg.values()
        .next()
        .expect("output")
        .public_key_package
        .clone()
}

/// Checks a DKG's outputs: one key, one package, consistent shares.
fn check_dkg(dkg: &BTreeMap<NodeId, EcdsaDkgOutput>, nodes: &[NodeId], threshold: u16) {
    assert_eq!(dkg.keys().copied().collect::<Vec<_>>(), nodes);
    let first = dkg.values().next().expect("output");
    assert_eq!(first.public_key.len(), 33);
    VerifyingKey::from_sec1_bytes(&first.public_key).expect("a valid secp256k1 key");
    let package = EcdsaPublicKeyPackage::from_bytes(&first.public_key_package).expect("package");
    assert_eq!(package.public_key().as_slice(), first.public_key.as_slice());
    assert_eq!(package.threshold(), threshold);
    assert_eq!(package.participants(), nodes);
    for (node, out) in dkg {
        assert_eq!(out.public_key, first.public_key);
        assert_eq!(out.public_key_package, first.public_key_package);
        let share = &out.key_share;
        assert_eq!(share.node_id(), *node);
        assert_eq!(share.scheme(), Scheme::EcdsaSecp256k1);
        assert_eq!(share.threshold(), threshold);
        assert_eq!(share.participants(), nodes);
        assert_eq!(share.public_key(), first.public_key.as_slice());
        assert_eq!(share.public_key_package(), first.public_key_package);
        assert_eq!(share.chain_code(), package.chain_code());
        // The at-rest encoding round-trips; Debug never prints the secret.
        let restored = EcdsaKeyShare::from_bytes(&share.to_bytes()).expect("decode");
        assert_eq!(&restored, share);
        let debug = format!("{share:?}");
        assert!(debug.contains("redacted"), "{debug}");
    }
}

/// Checks a signature with k256 (no Sigil code), its low S, its recovery
/// id, and that it is bound to the digest and the key.
fn check_signature(expected_key: &[u8], digest: &[u8; 32], signature: &EcdsaSignature) {
    assert_eq!(signature.public_key, expected_key);
    let key = VerifyingKey::from_sec1_bytes(expected_key).expect("key");
    let sig = Signature::from_slice(&signature.to_bytes()).expect("r||s");
    key.verify_prehash(digest, &sig).expect("k256 verifies");
    assert!(sig.normalize_s().is_none(), "low S");
    let recovery_id = RecoveryId::from_byte(signature.recovery_id).expect("recovery id");
    let recovered = VerifyingKey::recover_from_prehash(digest, &sig, recovery_id).expect("recover");
    assert_eq!(recovered, key, "the recovery id recovers the key");
    ecdsa::verify(expected_key, digest, &signature.to_bytes()).expect("Sigil verifies");
    let mut other = *digest;
    other[0] ^= 1;
    assert!(matches!(
        ecdsa::verify(expected_key, &other, &signature.to_bytes()),
        Err(ProtocolError::InvalidSignature(_))
    ));
    assert!(key.verify_prehash(&other, &sig).is_err());
}

#[test]
fn dkg_2_of_3_on_sparse_ids_and_every_pair_signs() {
    let fixture = key_2_of_3();
    check_dkg(&fixture.dkg, &[n(2), n(5), n(9)], 2);
    let key = fixture.dkg[&n(2)].public_key.clone();
    let mut rng = rng(2);
    for signers in [[n(2), n(5)], [n(2), n(9)], [n(9), n(5)]] {
        let digest = digest(&format!("pay bob, signed by {signers:?}"));
        let signature = run_ecdsa_sign(
            &fixture.cluster,
            &signers,
            &fixture.dkg,
            digest,
            &master(),
            &mut rng,
        )
        .expect("signature");
        check_signature(&key, &digest, &signature);
    }
}

#[test]
fn dkg_3_of_5_signs_with_any_three() {
    let mut rng = rng(3);
    let nodes = [n(1), n(3), n(4), n(8), n(12)];
    let cluster = Cluster::with_nodes(&nodes, &mut rng);
    let dkg = run_ecdsa_dkg(&cluster, 3, &mut rng);
    check_dkg(&dkg, &nodes, 3);
    let key = dkg[&n(1)].public_key.clone();
    for signers in [[n(1), n(3), n(4)], [n(12), n(8), n(4)], [n(1), n(8), n(12)]] {
        let digest = digest(&format!("3-of-5 {signers:?}"));
        let signature = run_ecdsa_sign(&cluster, &signers, &dkg, digest, &master(), &mut rng)
            .expect("signature");
        check_signature(&key, &digest, &signature);
    }
    // Two signers are not enough, four are too many for DKLs23.
    let shares = ecdsa_shares(&dkg);
    for signers in [&[n(1), n(3)][..], &[n(1), n(3), n(4), n(8)]] {
        let err = expect_err(ecdsa::new_signer(
            session(1),
            n(1),
            signers,
            &shares[&n(1)],
            [1; 32],
            &master(),
        ));
        assert!(
            matches!(err, ProtocolError::InvalidParameters(ref m) if m.contains("exactly the threshold of 3")),
            "{err}"
        );
    }
}

#[test]
fn derived_child_keys_sign_and_recover() {
    let fixture = key_2_of_3();
    let package =
        EcdsaPublicKeyPackage::from_bytes(&public_key_package(&fixture.dkg)).expect("package");
    let master_key = fixture.dkg[&n(5)].public_key.clone();
    let mut rng = rng(4);
    for (p, signers) in [("m/0/42", [n(2), n(9)]), ("m/44/60/0/0/7", [n(5), n(9)])] {
        let path = path(p);
        let (child, chain_code) = ecdsa::derive_public_key(&package, &path).expect("derive");
        assert_ne!(child, master_key);
        assert_ne!(&chain_code, package.chain_code());
        let digest = digest(p);
        let signature = run_ecdsa_sign(
            &fixture.cluster,
            &signers,
            &fixture.dkg,
            digest,
            &path,
            &mut rng,
        )
        .expect("signature");
        check_signature(&child, &digest, &signature);
        // Not a signature of the master key.
        assert!(matches!(
            ecdsa::verify(&master_key, &digest, &signature.to_bytes()),
            Err(ProtocolError::InvalidSignature(_))
        ));
    }
}

/// Decodes a Base58Check xpub: (depth, child number, chain code, key).
fn xpub(s: &str) -> (u8, u32, [u8; 32], Vec<u8>) {
    let raw = bs58::decode(s).into_vec().expect("base58");
    assert_eq!(raw.len(), 82, "{s}");
    let checksum = Sha256::digest(Sha256::digest(&raw[..78]));
    assert_eq!(&raw[78..], &checksum[..4], "checksum of {s}");
    assert_eq!(&raw[..4], &[0x04, 0x88, 0xb2, 0x1e], "mainnet xpub");
    let child = u32::from_be_bytes(raw[9..13].try_into().expect("4 bytes"));
    let chain_code = raw[13..45].try_into().expect("32 bytes");
    (raw[4], child, chain_code, raw[45..78].to_vec())
}

/// BIP-32 test vectors 1 and 2: every published non-hardened step whose
/// parent xpub is published too.
#[test]
fn bip32_test_vectors_public_derivation() {
    let steps = [
        // Vector 1: m/0H → m/0H/1.
        (
            "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw",
            1,
            "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ",
        ),
        // Vector 1: m/0H/1/2H/2 → m/0H/1/2H/2/1000000000.
        (
            "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV",
            1_000_000_000,
            "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy",
        ),
        // Vector 2: m → m/0.
        (
            "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB",
            0,
            "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH",
        ),
    ];
    for (parent, index, child) in steps {
        let (depth, _, chain_code, key) = xpub(parent);
        let (child_depth, child_number, child_chain_code, child_key) = xpub(child);
        assert_eq!((child_depth, child_number), (depth + 1, index));
        // Threshold and participants do not enter derivation.
        let package =
            EcdsaPublicKeyPackage::new(&key, chain_code, 2, &[n(1), n(2)]).expect("package");
        let derived = ecdsa::derive_public_key(
            &package,
            &DerivationPath::from_indices(&[index]).expect("path"),
        )
        .expect("derive");
        assert_eq!(derived, (child_key, child_chain_code), "{child}");
    }
}

#[test]
fn hardened_and_malformed_paths_are_refused() {
    for p in ["m/0'", "m/0/1h", "m/2147483648"] {
        assert!(
            matches!(p.parse::<DerivationPath>(), Err(ProtocolError::InvalidParameters(ref m)) if m.contains("hardened")),
            "{p}"
        );
    }
    for p in ["", "m/", "m/x", "0/1", "m/-1"] {
        assert!(
            matches!(
                p.parse::<DerivationPath>(),
                Err(ProtocolError::InvalidParameters(_))
            ),
            "{p}"
        );
    }
    assert!(DerivationPath::from_indices(&[1 << 31]).is_err());
    assert_eq!(path("m/1/2").to_string(), "m/1/2");
}

#[test]
fn verify_refuses_high_s_and_malformed_input() {
    use k256::ecdsa::SigningKey;
    use k256::ecdsa::signature::hazmat::PrehashSigner as _;
    let key = SigningKey::from_bytes(&[0x11; 32].into()).expect("key");
    let public = key
        .verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec();
    let digest = digest("single-key control");
    let low: Signature = key.sign_prehash(&digest).expect("sign");
    let low = low.normalize_s().unwrap_or(low);
    ecdsa::verify(&public, &digest, &low.to_bytes()).expect("low S verifies");
    let (r, s) = low.split_scalars();
    let high = Signature::from_scalars(r, -*s).expect("high S");
    assert!(
        matches!(ecdsa::verify(&public, &digest, &high.to_bytes()), Err(ProtocolError::InvalidSignature(ref m)) if m.contains("high-S")),
    );
    let bytes = low.to_bytes();
    assert!(matches!(
        ecdsa::verify(&public, &digest, &bytes[..63]),
        Err(ProtocolError::InvalidSignature(_))
    ));
    assert!(matches!(
        ecdsa::verify(&public, &digest, &[0u8; 64]),
        Err(ProtocolError::InvalidSignature(_))
    ));
    let uncompressed = key.verifying_key().to_encoded_point(false);
    assert!(matches!(
        ecdsa::verify(uncompressed.as_bytes(), &digest, &bytes),
        Err(ProtocolError::InvalidParameters(_))
    ));
}

// ---------------------------------------------------------------------------
// Adversarial: signing
// ---------------------------------------------------------------------------

/// Bare signers (no envelope), started; returns them and their round-1 messages.
fn started_signers(
    signers: &[NodeId],
    digests: impl Fn(NodeId) -> [u8; 32],
    path: &DerivationPath,
) -> (BTreeMap<NodeId, EcdsaSignerProtocol>, Vec<Message>) {
    let shares = ecdsa_shares(&key_2_of_3().dkg);
    let mut parties = BTreeMap::new();
    let mut round1 = Vec::new();
    for &me in signers {
        let mut signer =
            ecdsa::new_signer(session(0x52), me, signers, &shares[&me], digests(me), path)
                .expect("signer");
        round1.extend(signer.start().expect("start"));
        parties.insert(me, signer);
    }
    (parties, round1)
}

fn inbound_for(messages: &[Message], me: NodeId) -> Vec<Message> {
    messages
        .iter()
        .filter(|m| m.from != me && (m.to == Recipient::Broadcast || m.to == Recipient::Node(me)))
        .cloned()
        .collect()
}

/// Steps every party with its share of `messages`; returns what they send.
fn step_all<P: Protocol>(parties: &mut BTreeMap<NodeId, P>, messages: &[Message]) -> Vec<Message> {
    let mut out = Vec::new();
    for (me, party) in parties.iter_mut() {
        match party.step(inbound_for(messages, *me)).expect("step") {
            Transition::Continue(m) | Transition::Finished { messages: m, .. } => out.extend(m),
        }
    }
    out
}

/// Signers 2 and 5 run to their final messages (to the coordinator).
fn signing_finals(digest: [u8; 32], path: &DerivationPath) -> Vec<Message> {
    let (mut parties, round1) = started_signers(&[n(2), n(5)], |_| digest, path);
    let round2 = step_all(&mut parties, &round1);
    let finals = step_all(&mut parties, &round2);
    assert!(
        finals
            .iter()
            .all(|m| m.to == Recipient::Coordinator && m.round == 3)
    );
    finals
}

#[test]
fn signer_refuses_bad_round_inputs() {
    let signers = [n(2), n(5)];
    let me = n(2);
    let (_, round1) = started_signers(&signers, |_| [7; 32], &master());
    let from5 = round1
        .iter()
        .find(|m| m.from == n(5) && m.to == Recipient::Node(me))
        .expect("5→2")
        .clone();
    let own = round1.iter().find(|m| m.from == me).expect("own").clone();
    let with = |f: &dyn Fn(&mut Message)| {
        let mut m = from5.clone();
        f(&mut m);
        m
    };
    let cases: Vec<(Vec<Message>, ProtocolError)> = vec![
        (
            vec![with(&|m| m.session = session(0x99))],
            ProtocolError::WrongSession { from: n(5) },
        ),
        (
            vec![with(&|m| m.round = 2)],
            ProtocolError::WrongRound {
                from: n(5),
                expected: 1,
                got: 2,
            },
        ),
        // Node 9 holds a share of the key but is not a signer of this session.
        (
            vec![from5.clone(), with(&|m| m.from = n(9))],
            ProtocolError::UnknownSender { from: n(9) },
        ),
        (
            vec![from5.clone(), from5.clone()],
            ProtocolError::Duplicate { from: n(5) },
        ),
        (
            vec![from5.clone(), own],
            ProtocolError::FromSelf { claimed_from: me },
        ),
        (
            vec![],
            ProtocolError::Missing {
                missing: vec![n(5)],
            },
        ),
        (
            vec![with(&|m| m.to = Recipient::Node(n(9)))],
            ProtocolError::Misaddressed { from: n(5) },
        ),
        (
            vec![with(&|m| m.to = Recipient::Broadcast)],
            ProtocolError::Misaddressed { from: n(5) },
        ),
    ];
    for (i, (inbound, expected)) in cases.into_iter().enumerate() {
        // A fresh signer each time: any failure consumes its secrets.
        let (mut parties, _) = started_signers(&signers, |_| [7; 32], &master());
        let signer = parties.get_mut(&me).expect("signer");
        assert_eq!(expect_err(signer.step(inbound)), expected, "case {i}");
        let err = expect_err(signer.step(vec![from5.clone()]));
        assert!(
            matches!(err, ProtocolError::OutOfOrder(_)),
            "case {i}: {err}"
        );
    }
}

#[test]
fn corrupted_signing_payloads_blame_their_sender() {
    let signers = [n(2), n(5)];
    let me = n(2);

    // Round 1: a payload that does not decode.
    let (mut parties, round1) = started_signers(&signers, |_| [7; 32], &master());
    let mut inbound = inbound_for(&round1, me);
    let half = inbound[0].payload.len() / 2;
    inbound[0].payload.truncate(half);
    let err = expect_err(parties.get_mut(&me).expect("2").step(inbound));
    assert!(
        matches!(err, ProtocolError::Malformed { from, .. } if from == n(5)),
        "{err}"
    );
    assert_eq!(err.culprits(), vec![n(5)]);

    // Round 1: a payload naming another DKLs23 sender than its actual sender.
    let (mut parties, round1) = started_signers(&signers, |_| [7; 32], &master());
    let mut inbound = inbound_for(&round1, me);
    let mut m: TransmitPhase1to2 = postcard::from_bytes(&inbound[0].payload).expect("decode");
    m.parties.sender = m.parties.receiver;
    inbound[0].payload = postcard::to_allocvec(&m).expect("encode");
    let err = expect_err(parties.get_mut(&me).expect("2").step(inbound));
    assert!(
        matches!(err, ProtocolError::Malformed { from, .. } if from == n(5)),
        "{err}"
    );

    // Round 2: tampered values, checked by DKLs23 against the sender's own
    // commitment (psi) and its multiplication output (gamma_u, a ban).
    type Tamper = fn(&mut TransmitPhase2to3<Curve>);
    let cases: [(Tamper, &str); 2] = [
        (|m| m.psi = m.psi + m.psi, "commitment mismatch"),
        (|m| m.gamma_u = m.gamma_v, "future session"),
    ];
    for (tamper, reason) in cases {
        let (mut parties, round1) = started_signers(&signers, |_| [7; 32], &master());
        let mut round2 = step_all(&mut parties, &round1);
        let m5 = round2.iter_mut().find(|m| m.from == n(5)).expect("5→2");
        let mut decoded: TransmitPhase2to3<Curve> =
            postcard::from_bytes(&m5.payload).expect("decode");
        tamper(&mut decoded);
        m5.payload = postcard::to_allocvec(&decoded).expect("encode");
        let err = expect_err(
            parties
                .get_mut(&me)
                .expect("2")
                .step(inbound_for(&round2, me)),
        );
        assert_eq!(err.culprits(), vec![n(5)], "{err}");
        assert!(err.to_string().contains(reason), "{err}");
        // The tampered multiplication output is a DKLs23 ban; the commitment is not.
        let ban = reason == "future session";
        assert_eq!(err.banned(), ban.then_some(n(5)), "{err}");
        assert_eq!(matches!(err, ProtocolError::Banned { .. }), ban, "{err}");
    }
}

#[test]
fn signers_shown_different_digests_abort_without_blame() {
    // The relay (or a coordinator bug) asks node 5 to sign something else:
    // DKLs23 binds every message to the digest, so signing aborts at the
    // first step, and nobody can tell which signer was misled.
    let (mut parties, round1) = started_signers(
        &[n(2), n(5)],
        |me| if me == n(5) { [8; 32] } else { [7; 32] },
        &master(),
    );
    let err = expect_err(
        parties
            .get_mut(&n(2))
            .expect("2")
            .step(inbound_for(&round1, n(2))),
    );
    assert!(
        matches!(err, ProtocolError::Misbehaviour { ref culprits, .. } if culprits.is_empty()),
        "{err}"
    );
    // Likewise for different derivation paths.
    let shares = ecdsa_shares(&key_2_of_3().dkg);
    let mut s2 = ecdsa::new_signer(
        session(3),
        n(2),
        &[n(2), n(5)],
        &shares[&n(2)],
        [7; 32],
        &path("m/1"),
    )
    .expect("signer");
    let mut s5 = ecdsa::new_signer(
        session(3),
        n(5),
        &[n(2), n(5)],
        &shares[&n(5)],
        [7; 32],
        &path("m/2"),
    )
    .expect("signer");
    s2.start().expect("start");
    let from5 = s5.start().expect("start");
    assert!(matches!(
        expect_err(s2.step(from5)),
        ProtocolError::Misbehaviour { ref culprits, .. } if culprits.is_empty()
    ));
}

#[test]
fn replayed_and_finished_signers_refuse_to_step() {
    // Started twice: refused, and (failing closed) the signer is spent.
    let (mut parties, round1) = started_signers(&[n(5), n(9)], |_| [3; 32], &master());
    let signer = parties.get_mut(&n(5)).expect("5");
    assert!(matches!(
        expect_err(signer.start()),
        ProtocolError::OutOfOrder(_)
    ));
    assert!(matches!(
        expect_err(signer.step(inbound_for(&round1, n(5)))),
        ProtocolError::OutOfOrder(_)
    ));

    let (mut parties, round1) = started_signers(&[n(5), n(9)], |_| [3; 32], &master());
    let signer = parties.get_mut(&n(5)).expect("5");
    let round2 = signer.step(inbound_for(&round1, n(5))).expect("round 1");
    assert!(matches!(round2, Transition::Continue(ref m) if m.len() == 1));
    // Round 1 replayed: refused, and the signer is spent.
    assert_eq!(
        expect_err(signer.step(inbound_for(&round1, n(5)))),
        ProtocolError::WrongRound {
            from: n(9),
            expected: 2,
            got: 1
        }
    );
    assert!(matches!(
        expect_err(signer.step(vec![])),
        ProtocolError::OutOfOrder(_)
    ));

    // A finished signer cannot be stepped again.
    let (mut parties, round1) = started_signers(&[n(5), n(9)], |_| [3; 32], &master());
    let round2 = step_all(&mut parties, &round1);
    let signer = parties.get_mut(&n(9)).expect("9");
    let done = signer.step(inbound_for(&round2, n(9))).expect("final");
    assert!(matches!(
        done,
        Transition::Finished { ref messages, .. } if messages.len() == 1 && messages[0].payload.len() == 96
    ));
    assert_eq!(
        expect_err(signer.step(inbound_for(&round2, n(9)))),
        ProtocolError::OutOfOrder(
            "signing already finished or failed: its secrets are gone".into()
        )
    );
}

#[test]
fn aggregator_refuses_tampered_finals() {
    let fixture = key_2_of_3();
    let pkp = public_key_package(&fixture.dkg);
    let signers = [n(2), n(5)];
    let digest = digest("aggregate me");
    let finals = signing_finals(digest, &master());
    let aggregator = || {
        EcdsaAggregator::new(session(0x52), &pkp, &signers, digest, &master()).expect("aggregator")
    };
    // Honest finals aggregate.
    let signature = aggregator().aggregate(finals.clone()).expect("signature");
    check_signature(&fixture.dkg[&n(2)].public_key, &digest, &signature);

    let from5 = |f: &dyn Fn(&mut Message)| {
        let mut finals = finals.clone();
        let m = finals.iter_mut().find(|m| m.from == n(5)).expect("5");
        f(m);
        finals
    };
    type Check = fn(&ProtocolError) -> bool;
    let cases: Vec<(Vec<Message>, Check)> = vec![
        // A valid scalar, but the wrong u (or w): no signature verifies.
        (
            from5(&|m| {
                let w = m.payload[64..].to_vec();
                m.payload[32..64].copy_from_slice(&w);
            }),
            |e| matches!(e, ProtocolError::InvalidSignature(_)),
        ),
        (from5(&|m| m.payload[95] ^= 1), |e| {
            matches!(e, ProtocolError::InvalidSignature(_))
        }),
        // Disagreeing on R: nobody can be blamed.
        (
            from5(&|m| m.payload[0] ^= 1),
            |e| matches!(e, ProtocolError::Misbehaviour { culprits, .. } if culprits.is_empty()),
        ),
        // Not a canonical scalar, or not 96 bytes: the sender's fault.
        (
            from5(&|m| m.payload[32..64].copy_from_slice(&[0xff; 32])),
            |e| matches!(e, ProtocolError::Malformed { from, .. } if *from == n(5)),
        ),
        (
            from5(&|m| {
                m.payload.pop();
            }),
            |e| matches!(e, ProtocolError::Malformed { from, .. } if *from == n(5)),
        ),
        (from5(&|m| m.round = 2), |e| {
            *e == ProtocolError::WrongRound {
                from: n(5),
                expected: 3,
                got: 2,
            }
        }),
        (from5(&|m| m.session = session(1)), |e| {
            *e == ProtocolError::WrongSession { from: n(5) }
        }),
        (from5(&|m| m.to = Recipient::Broadcast), |e| {
            *e == ProtocolError::Misaddressed { from: n(5) }
        }),
        (from5(&|m| m.from = n(9)), |e| {
            *e == ProtocolError::UnknownSender { from: n(9) }
        }),
        (finals[..1].to_vec(), |e| {
            matches!(e, ProtocolError::Missing { .. })
        }),
        ([finals.clone(), finals[..1].to_vec()].concat(), |e| {
            matches!(e, ProtocolError::Duplicate { .. })
        }),
    ];
    for (i, (inbound, expected)) in cases.into_iter().enumerate() {
        let err = expect_err(aggregator().aggregate(inbound));
        assert!(expected(&err), "case {i}: {err}");
    }

    // The same finals are no signature of another digest or another key.
    let mut other = EcdsaAggregator::new(session(0x52), &pkp, &signers, [0; 32], &master())
        .expect("aggregator");
    assert!(matches!(
        expect_err(other.aggregate(finals.clone())),
        ProtocolError::InvalidSignature(_)
    ));
    let mut child = EcdsaAggregator::new(session(0x52), &pkp, &signers, digest, &path("m/0"))
        .expect("aggregator");
    assert!(matches!(
        expect_err(child.aggregate(finals)),
        ProtocolError::InvalidSignature(_)
    ));
}

#[test]
fn bad_parameters_are_refused() {
    let shares = ecdsa_shares(&key_2_of_3().dkg);
    let sid = session(1);
    let nodes = [n(2), n(5), n(9)];
    let dkg_err =
        |me, participants: &[NodeId], t| expect_err(ecdsa::new_dkg(sid, me, participants, t));
    assert_eq!(
        dkg_err(n(2), &[n(2), n(5), n(5)], 2),
        ProtocolError::InvalidParameters("node-5 appears twice in the participant list".into())
    );
    assert_eq!(
        dkg_err(n(4), &nodes, 2),
        ProtocolError::InvalidParameters("node-4 is not in the participant list".into())
    );
    for t in [0, 1, 4] {
        assert!(matches!(
            dkg_err(n(2), &nodes, t),
            ProtocolError::InvalidParameters(_)
        ));
    }
    let many: Vec<NodeId> = (1..=256).map(n).collect();
    assert!(matches!(
        dkg_err(n(1), &many, 2),
        ProtocolError::InvalidParameters(_)
    ));

    let signer_err = |me, signers: &[NodeId], share: &EcdsaKeyShare| {
        expect_err(ecdsa::new_signer(
            sid,
            me,
            signers,
            share,
            [1; 32],
            &master(),
        ))
    };
    let cases: [(NodeId, &[NodeId], NodeId, &str); 5] = [
        (n(2), &[n(2), n(2)], n(2), "appears twice"),
        (n(2), &[n(2), n(4)], n(2), "holds no share"),
        (n(2), &[n(5), n(9)], n(2), "not in the signer list"),
        (n(2), &[n(2), n(5)], n(5), "belongs to node-5"),
        (n(2), &[n(2)], n(2), "exactly the threshold"),
    ];
    for (me, signers, holder, message) in cases {
        let err = signer_err(me, signers, &shares[&holder]);
        assert!(
            matches!(err, ProtocolError::InvalidParameters(ref m) if m.contains(message)),
            "{message}: {err}"
        );
    }
    let pkp = public_key_package(&key_2_of_3().dkg);
    assert!(EcdsaAggregator::new(sid, &pkp, &[n(2), n(2)], [1; 32], &master()).is_err());
    assert!(EcdsaAggregator::new(sid, &pkp, &[n(2), n(3)], [1; 32], &master()).is_err());
    assert!(EcdsaAggregator::new(sid, &pkp[1..], &[n(2), n(5)], [1; 32], &master()).is_err());
    // A FROST share is not an ECDSA share, and vice versa.
    let ecdsa_bytes = shares[&n(2)].to_bytes();
    assert!(matches!(
        sigil_protocol::frost::KeyShare::from_bytes(&ecdsa_bytes),
        Err(ProtocolError::InvalidParameters(_))
    ));
}

// ---------------------------------------------------------------------------
// Adversarial: DKG
// ---------------------------------------------------------------------------

/// Bare DKG parties (no envelope) among `nodes`, started.
fn started_dkg(nodes: &[NodeId]) -> (BTreeMap<NodeId, EcdsaDkgProtocol>, Vec<Message>) {
    let mut parties: BTreeMap<NodeId, EcdsaDkgProtocol> = nodes
        .iter()
        .map(|&me| {
            (
                me,
                ecdsa::new_dkg(session(0xe1), me, nodes, 2).expect("dkg"),
            )
        })
        .collect();
    let round1 = parties
        .values_mut()
        .flat_map(|p| p.start().expect("start"))
        .collect();
    (parties, round1)
}

#[test]
fn corrupted_dkg_payloads_blame_their_sender() {
    let nodes = [n(2), n(5), n(9)];

    // Round 1: a polynomial evaluation that is not a canonical scalar.
    let (mut parties, mut round1) = started_dkg(&nodes);
    let m = round1
        .iter_mut()
        .find(|m| m.from == n(5) && m.to == Recipient::Node(n(9)))
        .expect("5→9");
    m.payload = vec![0xff; 32];
    let err = expect_err(
        parties
            .get_mut(&n(9))
            .expect("9")
            .step(inbound_for(&round1, n(9))),
    );
    assert!(
        matches!(err, ProtocolError::Malformed { from, .. } if from == n(5)),
        "{err}"
    );

    // Round 3: a zero-share seed that does not open its round-2 commitment.
    let (mut parties, round1) = started_dkg(&nodes);
    let round2 = step_all(&mut parties, &round1);
    let mut round3 = step_all(&mut parties, &round2);
    let m = round3
        .iter_mut()
        .find(|m| m.from == n(5) && m.to == Recipient::Node(n(9)))
        .expect("5→9");
    let (mut zero, mul): (
        TransmitInitZeroSharePhase3to4,
        TransmitInitMulPhase3to4<Curve>,
    ) = postcard::from_bytes(&m.payload).expect("decode");
    zero.seed[0] ^= 1;
    m.payload = postcard::to_allocvec(&(zero, mul)).expect("encode");
    let err = expect_err(
        parties
            .get_mut(&n(9))
            .expect("9")
            .step(inbound_for(&round3, n(9))),
    );
    assert!(
        matches!(err, ProtocolError::Misbehaviour { ref culprits, .. } if culprits == &[n(5)]),
        "{err}"
    );
    // The failed party is spent; the others finish round 3 but not round 4.
    assert!(matches!(
        expect_err(parties.get_mut(&n(9)).expect("9").step(vec![])),
        ProtocolError::OutOfOrder(_)
    ));
}

#[test]
fn sealed_dkg_share_that_does_not_decrypt_blames_its_signer() {
    let mut rng = rng(5);
    let cluster = Cluster::with_nodes(&[n(2), n(5), n(9)], &mut rng);
    let sessions = ecdsa_dkg_sessions(&cluster, session(0xe1), 2, &mut rng);
    let result = drive(session(0xe1), sessions, |round, deliveries| {
        if round == 1 {
            let inbound = deliveries.inbound.get_mut(&n(2)).expect("2");
            let signed = inbound
                .iter_mut()
                .find(|s| s.message.from == n(5))
                .expect("5→2");
            let last = signed.message.payload.len() - 1;
            signed.message.payload[last] ^= 1;
            *signed = cluster.sign_as(n(5), signed.message.clone());
        }
    });
    let Err((party, err)) = result else {
        panic!("DKG must fail")
    };
    assert_eq!(
        (party, err),
        (n(2), ProtocolError::Undecryptable { from: n(5) })
    );
}

/// Runs a DKG through the envelope and relay with `tamper` applied to each
/// round's deliveries; returns the first error and the last round delivered.
fn tampered_dkg(
    seed: u64,
    mut tamper: impl FnMut(&Cluster, u16, &mut sigil_protocol::relay::Deliveries),
) -> (NodeId, ProtocolError, u16) {
    let mut rng = rng(seed);
    let cluster = Cluster::with_nodes(&[n(2), n(5), n(9)], &mut rng);
    let sessions = ecdsa_dkg_sessions(&cluster, session(0xe1), 2, &mut rng);
    let mut last = 0;
    let result = drive(session(0xe1), sessions, |round, deliveries| {
        tamper(&cluster, round, deliveries);
        last = round;
    });
    match result {
        Ok(_) => panic!("DKG must fail"),
        Err((party, err)) => (party, err, last),
    }
}

/// Replaces `from`'s broadcast delivered to `to` with an altered copy,
/// validly signed by `from` (so `from` equivocates; a relay could do the
/// same with a message replayed from another run).
fn equivocate(
    cluster: &Cluster,
    deliveries: &mut sigil_protocol::relay::Deliveries,
    from: NodeId,
    to: NodeId,
    alter: impl Fn(&mut Vec<u8>),
) {
    let inbound = deliveries.inbound.get_mut(&to).expect("recipient");
    let slot = inbound
        .iter_mut()
        .find(|s| s.message.from == from && s.message.to == Recipient::Broadcast)
        .expect("broadcast");
    let mut message = slot.message.clone();
    alter(&mut message.payload);
    *slot = cluster.sign_as(from, message);
}

#[test]
fn equivocated_dkg_round2_broadcast_is_caught_by_the_round3_echo() {
    // Node 9 is shown a different round-2 commitment from node 2.
    let (party, err, round) = tampered_dkg(6, |cluster, round, deliveries| {
        if round == 2 {
            equivocate(cluster, deliveries, n(2), n(9), |p| p[0] ^= 1);
        }
    });
    // Node 2 (stepped first) sees that node 9's view of round 2 differs.
    assert_eq!(party, n(2));
    assert_eq!(
        err,
        ProtocolError::InconsistentBroadcast {
            parties: vec![n(9)]
        }
    );
    assert!(err.implicates_relay());
    assert_eq!(round, 3, "failed on round-3 input, before any share exists");
}

#[test]
fn equivocated_dkg_round3_broadcast_is_caught() {
    // Node 9 is shown node 2's round-3 broadcast with a different echo:
    // node 9 refuses before using any opening.
    let (party, err, round) = tampered_dkg(7, |cluster, round, deliveries| {
        if round == 3 {
            equivocate(cluster, deliveries, n(2), n(9), |p| p[0] ^= 1);
        }
    });
    assert_eq!(party, n(9));
    assert_eq!(
        err,
        ProtocolError::InconsistentBroadcast {
            parties: vec![n(2)]
        }
    );
    assert_eq!(round, 3);

    // Round 4 echoes round 3: a differing echo is caught before any party
    // outputs its share.
    let (party, err, round) = tampered_dkg(8, |cluster, round, deliveries| {
        if round == 4 {
            equivocate(cluster, deliveries, n(5), n(2), |p| p[31] ^= 1);
        }
    });
    assert_eq!(party, n(2));
    assert_eq!(
        err,
        ProtocolError::InconsistentBroadcast {
            parties: vec![n(5)]
        }
    );
    assert_eq!(round, 4);
}

#[test]
fn dkg_refuses_replays_and_steps_after_finishing() {
    let nodes = [n(2), n(5)];
    let (mut parties, round1) = started_dkg(&nodes);
    let party = parties.get_mut(&n(2)).expect("2");
    assert!(matches!(
        expect_err(party.start()),
        ProtocolError::OutOfOrder(_)
    ));
    assert!(matches!(
        expect_err(party.step(inbound_for(&round1, n(2)))),
        ProtocolError::OutOfOrder(_)
    ));

    let (mut parties, round1) = started_dkg(&nodes);
    let party = parties.get_mut(&n(2)).expect("2");
    party.step(inbound_for(&round1, n(2))).expect("round 1");
    assert_eq!(
        expect_err(party.step(inbound_for(&round1, n(2)))),
        ProtocolError::WrongRound {
            from: n(5),
            expected: 2,
            got: 1
        }
    );
    assert!(matches!(
        expect_err(party.step(vec![])),
        ProtocolError::OutOfOrder(_)
    ));

    // Run a 2-of-2 to completion, then step again.
    let (mut parties, round1) = started_dkg(&nodes);
    let mut messages = round1;
    let mut outputs = BTreeMap::new();
    while outputs.len() < nodes.len() {
        let mut next = Vec::new();
        for (me, party) in parties.iter_mut() {
            match party.step(inbound_for(&messages, *me)).expect("step") {
                Transition::Continue(m) => next.extend(m),
                Transition::Finished { output, .. } => {
                    outputs.insert(*me, output);
                }
            }
        }
        messages = next;
    }
    assert_eq!(outputs[&n(2)].public_key, outputs[&n(5)].public_key);
    for party in parties.values_mut() {
        assert_eq!(party.expected_round(), 5);
        assert_eq!(
            expect_err(party.step(vec![])),
            ProtocolError::OutOfOrder("DKG already finished or failed".into())
        );
    }
}
