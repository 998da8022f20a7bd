//! Threshold ECDSA share refresh (DKLs23 eprint 2023/765; dkls23's complete
//! refresh) end to end and under attack: a refresh of a DKG key keeps the
//! key and the chain code, re-randomizes every share and verifying share and
//! still signs (also along BIP-32 paths), while old and new shares no longer
//! sign together; a refresh from *hollow* shares (a Shamir sharing of the
//! key for a new participant set and threshold, as a redistribution leaves
//! it) yields shares every `t`-subset signs with; refused starts, tampered
//! messages and equivocation each end with the exact typed error and the
//! culprit where there is one. Messages are signed, sealed and routed
//! through `SecureSession` + `RoundRelay` as in the cluster, except where a
//! test tampers with plaintext payloads of bare parties.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use common::*;
use dkls23::protocols::dkg::{TransmitInitMulPhase3to4, TransmitInitZeroSharePhase3to4};
use dkls23::utilities::proofs::DLogProof;
use k256::ecdsa::VerifyingKey;
use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
use k256_dkls23::elliptic_curve::PrimeField as _;
use k256_dkls23::elliptic_curve::group::GroupEncoding as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sigil_protocol::ecdsa::{
    self, DerivationPath, EcdsaDkgOutput, EcdsaKeyShare, EcdsaPublicKeyPackage, EcdsaRefreshOutput,
    EcdsaRefreshProtocol, RefreshStart,
};
use sigil_protocol::{Message, NodeId, Protocol, ProtocolError, Recipient, SessionId, Transition};
use zeroize::Zeroizing;

type Curve = k256_dkls23::Secp256k1;
type Scalar = k256_dkls23::Scalar;
type Party = dkls23::protocols::Party<Curve>;

const REFRESH_SESSION: u8 = 0xf1;

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

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The dkls23 party inside a share's at-rest encoding
/// (`"SGKS" ‖ version ‖ tag ‖ node ‖ (u32 len ‖ part)*`, parts: package, party).
fn party_of(share: &EcdsaKeyShare) -> Party {
    let bytes = share.to_bytes();
    let mut rest = &bytes[8..];
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        parts.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    assert_eq!(parts.len(), 2);
    postcard::from_bytes(&parts[1]).expect("dkls23 party")
}

/// The share's encoding with its package replaced by `package` bytes.
fn with_package(share: &EcdsaKeyShare, package: &[u8]) -> Vec<u8> {
    let bytes = share.to_bytes();
    let package_len = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    let party = &bytes[12 + package_len..];
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(&(package.len() as u32).to_be_bytes());
    out.extend_from_slice(package);
    out.extend_from_slice(party);
    out
}

fn point_bytes(scalar: &Scalar) -> [u8; 33] {
    let point = (k256_dkls23::ProjectivePoint::GENERATOR * scalar).to_affine();
    point.to_bytes().as_slice().try_into().expect("33 bytes")
}

fn scalar_bytes(scalar: &Scalar) -> [u8; 32] {
    scalar.to_repr().as_slice().try_into().expect("32 bytes")
}

/// Lagrange coefficient at 0 of index `i` over `indices`.
fn lagrange(i: u64, indices: &[u64]) -> Scalar {
    let mut numerator = Scalar::ONE;
    let mut denominator = Scalar::ONE;
    for &k in indices.iter().filter(|k| **k != i) {
        numerator *= Scalar::from(k);
        denominator *= Scalar::from(k) - Scalar::from(i);
    }
    numerator * Option::<Scalar>::from(denominator.invert()).expect("invertible")
}

/// Every share's `p(i)·G` matches its verifying share in the package, and
/// all outputs agree on the key and the package.
fn check_outputs(
    outputs: &BTreeMap<NodeId, EcdsaRefreshOutput>,
    key: &[u8],
    chain_code: &[u8; 32],
) {
    let first = outputs.values().next().expect("output");
    let package = EcdsaPublicKeyPackage::from_bytes(&first.public_key_package).expect("package");
    assert_eq!(package.public_key().as_slice(), key);
    assert_eq!(package.chain_code(), chain_code);
    assert_eq!(
        package.participants(),
        outputs.keys().copied().collect::<Vec<_>>()
    );
    package
        .check_verifying_shares()
        .expect("verifying shares interpolate to the key");
    for (node, out) in outputs {
        assert_eq!(out.public_key, key);
        assert_eq!(out.public_key_package, first.public_key_package);
        let share = &out.key_share;
        assert_eq!(share.node_id(), *node);
        assert_eq!(share.public_key(), key);
        assert_eq!(share.chain_code(), chain_code);
        assert_eq!(share.package(), &package);
        let restored = EcdsaKeyShare::from_bytes(&share.to_bytes()).expect("decode");
        assert_eq!(&restored, share);
        let party = party_of(share);
        assert_eq!(
            Some(point_bytes(&party.poly_point)),
            package.verifying_share(*node),
            "{node}'s share matches its verifying share"
        );
    }
}

/// Refresh outputs as DKG outputs (the same shape), for the signing helpers.
fn as_dkg(outputs: &BTreeMap<NodeId, EcdsaRefreshOutput>) -> BTreeMap<NodeId, EcdsaDkgOutput> {
    outputs
        .iter()
        .map(|(n, o)| {
            (
                *n,
                EcdsaDkgOutput {
                    key_share: o.key_share.clone(),
                    public_key: o.public_key.clone(),
                    public_key_package: o.public_key_package.clone(),
                },
            )
        })
        .collect()
}

/// Verifies with k256 alone.
fn check_signature(key: &[u8], digest: &[u8; 32], signature: &ecdsa::EcdsaSignature) {
    assert_eq!(signature.public_key, key);
    let key = VerifyingKey::from_sec1_bytes(key).expect("key");
    let sig = k256::ecdsa::Signature::from_slice(&signature.to_bytes()).expect("r||s");
    key.verify_prehash(digest, &sig).expect("k256 verifies");
}

/// Refresh sessions, through the envelope, of every node in `starts`.
fn refresh_sessions(
    cluster: &Cluster,
    session: SessionId,
    threshold: u16,
    starts: BTreeMap<NodeId, RefreshStart>,
    rng: &mut rand::rngs::StdRng,
) -> BTreeMap<NodeId, sigil_protocol::envelope::SecureSession<EcdsaRefreshProtocol>> {
    let participants: Vec<NodeId> = starts.keys().copied().collect();
    starts
        .into_iter()
        .map(|(me, start)| {
            let refresh =
                ecdsa::new_refresh(session, me, &participants, threshold, start).expect("refresh");
            (me, cluster.secure(me, refresh, rng))
        })
        .collect()
}

fn run_refresh(
    cluster: &Cluster,
    threshold: u16,
    starts: BTreeMap<NodeId, RefreshStart>,
    rng: &mut rand::rngs::StdRng,
) -> BTreeMap<NodeId, EcdsaRefreshOutput> {
    let session = session(REFRESH_SESSION);
    let sessions = refresh_sessions(cluster, session, threshold, starts, rng);
    let run = drive(session, sessions, |_, _| {}).expect("honest refresh");
    assert_eq!(run.rounds.len(), ecdsa::refresh_steps() + 1);
    run.outputs
}

fn existing_starts(shares: &BTreeMap<NodeId, EcdsaKeyShare>) -> BTreeMap<NodeId, RefreshStart> {
    shares
        .iter()
        .map(|(n, s)| (*n, RefreshStart::Existing(s.clone())))
        .collect()
}

/// A 2-of-3 DKG key on nodes 2, 5, 9 and its refresh, computed once.
struct Fixture {
    cluster: Cluster,
    dkg: BTreeMap<NodeId, EcdsaDkgOutput>,
    refreshed: BTreeMap<NodeId, EcdsaRefreshOutput>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = rng(0xf0);
        let cluster = Cluster::with_nodes(&[n(2), n(5), n(9)], &mut rng);
        let dkg = run_ecdsa_dkg(&cluster, 2, &mut rng);
        let started = Instant::now();
        let refreshed = run_refresh(&cluster, 2, existing_starts(&ecdsa_shares(&dkg)), &mut rng);
        eprintln!(
            "2-of-3 refresh through the envelope: {:?}",
            started.elapsed()
        );
        Fixture {
            cluster,
            dkg,
            refreshed,
        }
    })
}

// ---------------------------------------------------------------------------
// Refresh of an existing key
// ---------------------------------------------------------------------------

#[test]
fn refresh_keeps_the_key_and_re_randomizes_every_share() {
    let fixture = fixture();
    let before = &fixture.dkg[&n(2)];
    let package_before =
        EcdsaPublicKeyPackage::from_bytes(&before.public_key_package).expect("package");
    // The DKG keeps its verifying shares now.
    let dkg_shares = package_before
        .verifying_shares()
        .expect("DKG verifying shares");
    assert_eq!(dkg_shares.len(), 3);
    package_before.check_verifying_shares().expect("consistent");
    for (node, out) in &fixture.dkg {
        let party = party_of(&out.key_share);
        assert_eq!(
            Some(point_bytes(&party.poly_point)),
            package_before.verifying_share(*node)
        );
    }

    check_outputs(
        &fixture.refreshed,
        &before.public_key,
        package_before.chain_code(),
    );
    let package_after = fixture.refreshed[&n(2)].key_share.package();
    assert_eq!(package_after.threshold(), 2);
    for node in [n(2), n(5), n(9)] {
        assert_ne!(
            package_after.verifying_share(node),
            package_before.verifying_share(node),
            "{node}'s verifying share moved"
        );
        assert_ne!(
            party_of(&fixture.refreshed[&node].key_share).poly_point,
            party_of(&fixture.dkg[&node].key_share).poly_point,
            "{node}'s share moved"
        );
    }
}

#[test]
fn refreshed_shares_sign_with_every_pair_and_along_paths() {
    let fixture = fixture();
    let refreshed = as_dkg(&fixture.refreshed);
    let key = fixture.dkg[&n(2)].public_key.clone();
    let package = fixture.refreshed[&n(9)].key_share.package().clone();
    let mut rng = rng(0xf2);
    for signers in [[n(2), n(5)], [n(2), n(9)], [n(5), n(9)]] {
        let digest = digest(&format!("refreshed {signers:?}"));
        let signature = run_ecdsa_sign(
            &fixture.cluster,
            &signers,
            &refreshed,
            digest,
            &DerivationPath::master(),
            &mut rng,
        )
        .expect("signature");
        check_signature(&key, &digest, &signature);
    }
    // A BIP-32 child key: the chain code survived the refresh.
    let child_path = path("m/44/60/0/0/7");
    let (child, _) = ecdsa::derive_public_key(&package, &child_path).expect("derive");
    let dkg_package =
        EcdsaPublicKeyPackage::from_bytes(&fixture.dkg[&n(2)].public_key_package).expect("pkg");
    assert_eq!(
        ecdsa::derive_public_key(&dkg_package, &child_path).expect("derive"),
        (
            child.clone(),
            ecdsa::derive_public_key(&package, &child_path)
                .expect("d")
                .1
        )
    );
    let digest = digest("child after refresh");
    let signature = run_ecdsa_sign(
        &fixture.cluster,
        &[n(5), n(9)],
        &refreshed,
        digest,
        &child_path,
        &mut rng,
    )
    .expect("signature");
    check_signature(&child, &digest, &signature);
}

#[test]
fn an_old_share_does_not_sign_with_a_refreshed_one() {
    let fixture = fixture();
    let mut shares = ecdsa_shares(&as_dkg(&fixture.refreshed));
    // Node 2 kept its share from before the refresh.
    shares.insert(n(2), fixture.dkg[&n(2)].key_share.clone());
    let signers = [n(2), n(5)];
    let sign_session = session(0x53);
    let mut rng = rng(0xf3);
    let sessions = ecdsa_sign_sessions(
        &fixture.cluster,
        sign_session,
        &signers,
        &shares,
        digest("mixed"),
        &DerivationPath::master(),
        &mut rng,
    );
    // The refreshed party's DKLs23 session id chains the refresh, so the
    // two parties' messages belong to different signing sessions: DKLs23
    // aborts (recoverably: no OT check ran) and nobody can be blamed.
    let Err((_, err)) = drive(sign_session, sessions, |_, _| {}) else {
        panic!("an old and a refreshed share must not sign together")
    };
    assert!(
        matches!(err, ProtocolError::Misbehaviour { ref culprits, ref reason }
            if culprits.is_empty() && reason.contains("different signing session")),
        "{err}"
    );

    // Nor can the old share take part in the next refresh: the parties'
    // views of the key (its verifying shares) differ.
    let mut starts = existing_starts(&shares);
    starts.insert(
        n(2),
        RefreshStart::Existing(fixture.dkg[&n(2)].key_share.clone()),
    );
    let sessions = refresh_sessions(&fixture.cluster, session(0xf4), 2, starts, &mut rng);
    let Err((party, err)) = drive(session(0xf4), sessions, |_, _| {}) else {
        panic!("refresh with a stale share must fail")
    };
    assert_eq!(party, n(2));
    assert!(
        matches!(err, ProtocolError::InvalidParameters(ref m) if m.contains("node-5, node-9 run this refresh")),
        "{err}"
    );
}

#[test]
fn version_1_shares_refresh_and_gain_verifying_shares() {
    let fixture = fixture();
    // The DKG shares as stored before packages kept verifying shares.
    let package =
        EcdsaPublicKeyPackage::from_bytes(&fixture.dkg[&n(2)].public_key_package).expect("package");
    let v1 = EcdsaPublicKeyPackage::new(
        package.public_key(),
        *package.chain_code(),
        package.threshold(),
        package.participants(),
    )
    .expect("v1 package")
    .to_bytes();
    assert_eq!(v1[4], 1);
    let shares: BTreeMap<NodeId, EcdsaKeyShare> = fixture
        .dkg
        .iter()
        .map(|(node, out)| {
            let share = EcdsaKeyShare::from_bytes(&with_package(&out.key_share, &v1))
                .expect("version-1 shares still decode");
            assert_eq!(share.package().verifying_shares(), None);
            (*node, share)
        })
        .collect();
    // Still signs as before.
    let mut rng = rng(0xf5);
    let mut v1_outputs = fixture.dkg.clone();
    for (node, share) in &shares {
        let out = v1_outputs.get_mut(node).expect("node");
        out.key_share = share.clone();
        out.public_key_package = v1.clone();
    }
    let digest1 = digest("v1 share");
    let signature = run_ecdsa_sign(
        &fixture.cluster,
        &[n(2), n(9)],
        &v1_outputs,
        digest1,
        &DerivationPath::master(),
        &mut rng,
    )
    .expect("signature");
    check_signature(package.public_key(), &digest1, &signature);

    // The refresh learns the verifying shares from the parties (checked
    // against the group key) and hands out a version-2 package.
    let refreshed = run_refresh(&fixture.cluster, 2, existing_starts(&shares), &mut rng);
    check_outputs(&refreshed, package.public_key(), package.chain_code());
    assert_eq!(refreshed[&n(5)].public_key_package[4], 2);
    let digest2 = digest("v1 share, refreshed");
    let signature = run_ecdsa_sign(
        &fixture.cluster,
        &[n(5), n(9)],
        &as_dkg(&refreshed),
        digest2,
        &DerivationPath::master(),
        &mut rng,
    )
    .expect("signature");
    check_signature(package.public_key(), &digest2, &signature);
}

#[test]
fn existing_starts_must_fit_the_session() {
    let fixture = fixture();
    let share = fixture.dkg[&n(2)].key_share.clone();
    let sid = session(REFRESH_SESSION);
    let nodes = [n(2), n(5), n(9)];
    let refuse = |me, participants: &[NodeId], threshold, share: &EcdsaKeyShare| {
        expect_err(ecdsa::new_refresh(
            sid,
            me,
            participants,
            threshold,
            RefreshStart::Existing(share.clone()),
        ))
    };
    for (err, message) in [
        (
            refuse(n(2), &[n(2), n(5), n(9), n(11)], 2, &share),
            "2-of-[node-2, node-5, node-9] key, not 2-of-[node-2, node-5, node-9, node-11]",
        ),
        (refuse(n(2), &nodes, 3, &share), "a refresh keeps"),
        (refuse(n(5), &nodes, 2, &share), "belongs to node-2"),
        (
            refuse(n(4), &nodes, 2, &share),
            "not in the participant list",
        ),
        (
            refuse(n(2), &[n(2), n(5), n(5)], 2, &share),
            "appears twice",
        ),
        (refuse(n(2), &nodes, 1, &share), "threshold"),
    ] {
        assert!(
            matches!(err, ProtocolError::InvalidParameters(ref m) if m.contains(message)),
            "{message}: {err}"
        );
    }
    // The order of the participant list does not matter.
    ecdsa::new_refresh(
        sid,
        n(2),
        &[n(9), n(2), n(5)],
        2,
        RefreshStart::Existing(share),
    )
    .expect("any order");
}

// ---------------------------------------------------------------------------
// Refresh from hollow shares (redistribution to a new set and threshold)
// ---------------------------------------------------------------------------

/// The new participants and their hollow 3-of-5 shares of the fixture's key:
/// the secret is reconstructed here, in the test only.
struct Hollow {
    nodes: Vec<NodeId>,
    shares: BTreeMap<NodeId, Scalar>,
    verifying_shares: BTreeMap<NodeId, [u8; 33]>,
    public_key: [u8; 33],
    chain_code: [u8; 32],
}

impl Hollow {
    fn new(seed: u64) -> Self {
        let fixture = fixture();
        let p2 = party_of(&fixture.dkg[&n(2)].key_share);
        let p9 = party_of(&fixture.dkg[&n(9)].key_share);
        // Nodes 2 and 9 are party indices 1 and 3.
        let secret = p2.poly_point * lagrange(1, &[1, 3]) + p9.poly_point * lagrange(3, &[1, 3]);
        let package = fixture.dkg[&n(2)].key_share.package();
        assert_eq!(&point_bytes(&secret), package.public_key());

        let mut rng = rng(seed);
        let coefficients = [
            secret,
            Scalar::from(rng.next_u64()),
            Scalar::from(rng.next_u64()),
        ];
        let nodes = vec![n(3), n(4), n(6), n(7), n(11)];
        let mut shares = BTreeMap::new();
        for (node, x) in nodes.iter().zip(1u64..) {
            let value = coefficients
                .iter()
                .rev()
                .fold(Scalar::ZERO, |acc, c| acc * Scalar::from(x) + c);
            shares.insert(*node, value);
        }
        let verifying_shares = shares.iter().map(|(n, s)| (*n, point_bytes(s))).collect();
        Self {
            nodes,
            shares,
            verifying_shares,
            public_key: *package.public_key(),
            chain_code: *package.chain_code(),
        }
    }

    fn start(&self, node: NodeId) -> RefreshStart {
        RefreshStart::Hollow {
            share: Zeroizing::new(scalar_bytes(&self.shares[&node])),
            public_key: self.public_key,
            chain_code: self.chain_code,
            verifying_shares: self.verifying_shares.clone(),
        }
    }

    fn starts(&self) -> BTreeMap<NodeId, RefreshStart> {
        self.nodes.iter().map(|n| (*n, self.start(*n))).collect()
    }
}

#[test]
fn hollow_shares_of_a_new_set_refresh_and_every_three_sign() {
    let hollow = Hollow::new(0xa1);
    let mut rng = rng(0xa2);
    let cluster = Cluster::with_nodes(&hollow.nodes, &mut rng);
    let started = Instant::now();
    let refreshed = run_refresh(&cluster, 3, hollow.starts(), &mut rng);
    eprintln!(
        "3-of-5 refresh from hollow shares through the envelope: {:?}",
        started.elapsed()
    );
    check_outputs(&refreshed, &hollow.public_key, &hollow.chain_code);
    let package = refreshed[&n(3)].key_share.package().clone();
    assert_eq!(package.threshold(), 3);
    assert_eq!(package.participants(), hollow.nodes.as_slice());
    for node in &hollow.nodes {
        assert_ne!(
            package.verifying_share(*node),
            hollow.verifying_shares.get(node).copied(),
            "re-randomized"
        );
    }

    let dkg = as_dkg(&refreshed);
    let nodes = &hollow.nodes;
    let mut subsets = 0;
    for a in 0..nodes.len() {
        for b in a + 1..nodes.len() {
            for c in b + 1..nodes.len() {
                let signers = [nodes[a], nodes[b], nodes[c]];
                let digest = digest(&format!("3-of-5 {signers:?}"));
                let signature = run_ecdsa_sign(
                    &cluster,
                    &signers,
                    &dkg,
                    digest,
                    &DerivationPath::master(),
                    &mut rng,
                )
                .expect("signature");
                check_signature(&hollow.public_key, &digest, &signature);
                subsets += 1;
            }
        }
    }
    assert_eq!(subsets, 10);
    // Along a BIP-32 path, the child key of the original chain code.
    let child_path = path("m/0/7");
    let (child, _) = ecdsa::derive_public_key(&package, &child_path).expect("derive");
    let dkg_package = fixture().dkg[&n(2)].key_share.package().clone();
    assert_eq!(
        child,
        ecdsa::derive_public_key(&dkg_package, &child_path)
            .expect("derive")
            .0
    );
    let digest = digest("hollow child");
    let signature = run_ecdsa_sign(
        &cluster,
        &[n(4), n(7), n(11)],
        &dkg,
        digest,
        &child_path,
        &mut rng,
    )
    .expect("signature");
    check_signature(&child, &digest, &signature);
    // Two signers are not enough for the new threshold.
    assert!(matches!(
        expect_err(ecdsa::new_signer(
            session(1),
            n(3),
            &[n(3), n(4)],
            &refreshed[&n(3)].key_share,
            [1; 32],
            &DerivationPath::master(),
        )),
        ProtocolError::InvalidParameters(ref m) if m.contains("exactly the threshold of 3")
    ));
}

#[test]
fn hollow_starts_are_checked_before_anything_is_sent() {
    let hollow = Hollow::new(0xa3);
    let sid = session(REFRESH_SESSION);
    let refuse = |me: NodeId, start: RefreshStart| {
        expect_err(ecdsa::new_refresh(sid, me, &hollow.nodes, 3, start))
    };

    // Node 3 given node 4's share: refused, naming no secret.
    let mut start = hollow.start(n(3));
    if let RefreshStart::Hollow { share, .. } = &mut start {
        *share = Zeroizing::new(scalar_bytes(&hollow.shares[&n(4)]));
    }
    let err = refuse(n(3), start);
    assert_eq!(
        err,
        ProtocolError::InvalidParameters(
            "the hollow share of node-3 does not match its verifying share".into()
        )
    );
    for secret in [&hollow.shares[&n(3)], &hollow.shares[&n(4)]] {
        assert!(!err.to_string().contains(&hex::encode(scalar_bytes(secret))));
    }
    // Zero and a non-canonical scalar are refused the same way.
    for bad in [[0u8; 32], [0xff; 32]] {
        let mut start = hollow.start(n(3));
        if let RefreshStart::Hollow { share, .. } = &mut start {
            *share = Zeroizing::new(bad);
        }
        assert!(matches!(
            refuse(n(3), start),
            ProtocolError::InvalidParameters(ref m) if m.contains("does not match its verifying share")
        ));
    }

    // Verifying shares that do not interpolate to the group key: two swapped
    // (node 3's own is right), or all of another key.
    let mut start = hollow.start(n(3));
    if let RefreshStart::Hollow {
        verifying_shares, ..
    } = &mut start
    {
        let (a, b) = (verifying_shares[&n(6)], verifying_shares[&n(7)]);
        verifying_shares.insert(n(6), b);
        verifying_shares.insert(n(7), a);
    }
    let err = refuse(n(3), start);
    assert_eq!(
        err,
        ProtocolError::InvalidParameters(
            "the verifying shares do not interpolate to the group key".into()
        )
    );
    let mut start = hollow.start(n(3));
    if let RefreshStart::Hollow { public_key, .. } = &mut start {
        *public_key = point_bytes(&Scalar::from(7u64));
    }
    assert!(matches!(
        refuse(n(3), start),
        ProtocolError::InvalidParameters(ref m) if m.contains("do not interpolate")
    ));
    // A verifying share that is not a point, a missing or an extra one.
    let mut start = hollow.start(n(3));
    if let RefreshStart::Hollow {
        verifying_shares, ..
    } = &mut start
    {
        verifying_shares.insert(n(11), [0xff; 33]);
    }
    assert!(matches!(
        refuse(n(3), start),
        ProtocolError::InvalidParameters(ref m) if m.contains("verifying share of node-11")
    ));
    for change in [
        |v: &mut BTreeMap<NodeId, [u8; 33]>| {
            v.remove(&n(11));
        },
        |v: &mut BTreeMap<NodeId, [u8; 33]>| {
            let share = v[&n(3)];
            v.insert(n(12), share);
        },
    ] {
        let mut start = hollow.start(n(3));
        if let RefreshStart::Hollow {
            verifying_shares, ..
        } = &mut start
        {
            change(verifying_shares);
        }
        assert!(matches!(
            refuse(n(3), start),
            ProtocolError::InvalidParameters(ref m) if m.contains("exactly every participant")
        ));
    }
    // The threshold is part of the check: these shares are no 2-of-5 sharing.
    assert!(matches!(
        expect_err(ecdsa::new_refresh(sid, n(3), &hollow.nodes, 2, hollow.start(n(3)))),
        ProtocolError::InvalidParameters(ref m) if m.contains("do not interpolate")
    ));
    // Debug output never shows the share.
    let debug = format!("{:?}", hollow.start(n(3)));
    assert!(debug.contains("redacted"), "{debug}");
    assert!(!debug.contains(&hex::encode(scalar_bytes(&hollow.shares[&n(3)]))));
}

// ---------------------------------------------------------------------------
// Adversarial: tampered, equivocated and misrouted refresh messages
// ---------------------------------------------------------------------------

/// Bare refresh parties (no envelope) of the fixture's DKG key, started.
fn started_refresh() -> (BTreeMap<NodeId, EcdsaRefreshProtocol>, Vec<Message>) {
    let shares = ecdsa_shares(&fixture().dkg);
    let nodes: Vec<NodeId> = shares.keys().copied().collect();
    let mut parties = BTreeMap::new();
    let mut round1 = Vec::new();
    for (&me, share) in &shares {
        let mut party = ecdsa::new_refresh(
            session(REFRESH_SESSION),
            me,
            &nodes,
            2,
            RefreshStart::Existing(share.clone()),
        )
        .expect("refresh");
        assert_eq!(party.expected_round(), 1);
        round1.extend(party.start().expect("start"));
        parties.insert(me, party);
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

fn step_all<P: Protocol>(parties: &mut BTreeMap<NodeId, P>, messages: &[Message]) -> Vec<Message> {
    let mut out = Vec::new();
    for (me, party) in parties.iter_mut() {
        match party.step(inbound_for(messages, *me)).expect("step") {
            Transition::Continue(m) | Transition::Finished { messages: m, .. } => out.extend(m),
        }
    }
    out
}

fn step_one<P: Protocol>(
    parties: &mut BTreeMap<NodeId, P>,
    me: NodeId,
    messages: &[Message],
) -> Result<Transition<P::Output>, ProtocolError> {
    parties
        .get_mut(&me)
        .expect("party")
        .step(inbound_for(messages, me))
}

fn find(messages: &mut [Message], from: NodeId, to: Recipient) -> &mut Message {
    messages
        .iter_mut()
        .find(|m| m.from == from && m.to == to)
        .expect("message")
}

#[test]
fn bare_refresh_runs_to_completion_and_then_refuses_to_step() {
    let (mut parties, round1) = started_refresh();
    assert_eq!(
        round1.len(),
        3 * 3,
        "two evaluations and one broadcast each"
    );
    let mut messages = round1;
    for round in 2..=ecdsa::refresh_steps() as u16 {
        messages = step_all(&mut parties, &messages);
        assert!(messages.iter().all(|m| m.round == round));
    }
    let mut outputs = BTreeMap::new();
    for (me, party) in parties.iter_mut() {
        match party.step(inbound_for(&messages, *me)).expect("round 4") {
            Transition::Finished { messages, output } => {
                assert!(messages.is_empty());
                outputs.insert(*me, output);
            }
            Transition::Continue(_) => panic!("must finish"),
        }
    }
    let key = fixture().dkg[&n(2)].public_key.clone();
    check_outputs(&outputs, &key, fixture().dkg[&n(2)].key_share.chain_code());
    for party in parties.values_mut() {
        assert_eq!(party.expected_round(), 5);
        assert_eq!(
            expect_err(party.step(vec![])),
            ProtocolError::OutOfOrder("refresh already finished or failed".into())
        );
        assert!(matches!(
            expect_err(party.start()),
            ProtocolError::OutOfOrder(_)
        ));
    }
}

#[test]
fn refresh_refuses_messages_of_other_sessions_and_rounds() {
    let (_, round1) = started_refresh();
    let me = n(2);
    let inbound = inbound_for(&round1, me);
    type Alter = fn(&mut Message);
    let cases: [(Alter, ProtocolError); 4] = [
        (
            |m| m.session = SessionId::from_bytes([0x99; 16]),
            ProtocolError::WrongSession { from: n(5) },
        ),
        (
            |m| m.round = 2,
            ProtocolError::WrongRound {
                from: n(5),
                expected: 1,
                got: 2,
            },
        ),
        (
            |m| m.to = Recipient::Node(n(9)),
            ProtocolError::Misaddressed { from: n(5) },
        ),
        (
            |m| m.from = n(3),
            ProtocolError::UnknownSender { from: n(3) },
        ),
    ];
    for (i, (alter, expected)) in cases.into_iter().enumerate() {
        let (mut parties, _) = started_refresh();
        let mut messages = inbound.clone();
        let target = messages
            .iter_mut()
            .find(|m| m.from == n(5) && m.to == Recipient::Node(me))
            .expect("5→2");
        alter(target);
        let party = parties.get_mut(&me).expect("2");
        assert_eq!(expect_err(party.step(messages)), expected, "case {i}");
        // A failed party is spent.
        assert!(matches!(
            expect_err(party.step(inbound.clone())),
            ProtocolError::OutOfOrder(_)
        ));
    }
    // A whole round replayed later is refused too.
    let (mut parties, round1) = started_refresh();
    let round2 = step_all(&mut parties, &round1);
    let _ = round2;
    assert_eq!(
        expect_err(step_one(&mut parties, me, &round1)),
        ProtocolError::WrongRound {
            from: n(5),
            expected: 2,
            got: 1
        }
    );
    // And a refresh of another Sigil session shares nothing with this one:
    // its round-1 context differs.
    let shares = ecdsa_shares(&fixture().dkg);
    let mut other = ecdsa::new_refresh(
        session(0x77),
        n(5),
        &[n(2), n(5), n(9)],
        2,
        RefreshStart::Existing(shares[&n(5)].clone()),
    )
    .expect("refresh");
    let mut foreign = other.start().expect("start");
    for m in &mut foreign {
        m.session = session(REFRESH_SESSION);
    }
    let (mut parties, round1) = started_refresh();
    let mut messages: Vec<Message> = round1.into_iter().filter(|m| m.from != n(5)).collect();
    messages.extend(foreign);
    let err = expect_err(step_one(&mut parties, me, &messages));
    assert!(
        matches!(err, ProtocolError::InvalidParameters(ref m) if m.starts_with("node-5 run this refresh for another session")),
        "{err}"
    );
}

#[test]
fn a_wrong_verifying_share_in_round_1_names_its_sender() {
    let (mut parties, mut round1) = started_refresh();
    let m = find(&mut round1, n(5), Recipient::Broadcast);
    // Another valid point: node 5 claims a share it does not hold.
    m.payload[32..].copy_from_slice(&point_bytes(&Scalar::from(5u64)));
    let err = expect_err(step_one(&mut parties, n(9), &round1));
    assert!(
        matches!(err, ProtocolError::Misbehaviour { ref culprits, ref reason }
            if culprits == &[n(5)] && reason.contains("stale or corrupted")),
        "{err}"
    );
    // Not a point, or the wrong length: malformed.
    for alter in [
        |p: &mut Vec<u8>| p[32..].copy_from_slice(&[0xff; 33]),
        |p: &mut Vec<u8>| p.truncate(40),
    ] {
        let (mut parties, mut round1) = started_refresh();
        alter(&mut find(&mut round1, n(5), Recipient::Broadcast).payload);
        let err = expect_err(step_one(&mut parties, n(9), &round1));
        assert!(
            matches!(err, ProtocolError::Malformed { from, .. } if from == n(5)),
            "{err}"
        );
    }
}

#[test]
fn tampered_round_3_messages_abort_naming_their_sender() {
    type Tamper = fn(&mut Vec<u8>);
    let cases: [(Recipient, Tamper, &str); 5] = [
        // The zero-share seed does not open its round-2 commitment.
        (
            Recipient::Node(n(9)),
            |payload| {
                let (mut zero, mul): (
                    TransmitInitZeroSharePhase3to4,
                    TransmitInitMulPhase3to4<Curve>,
                ) = postcard::from_bytes(payload).expect("decode");
                zero.seed[0] ^= 1;
                *payload = postcard::to_allocvec(&(zero, mul)).expect("encode");
            },
            "zero-share decommitment failed",
        ),
        // The base-OT setup's proofs do not verify: the OT receiver's
        // discrete-log proof, the OT sender's encryption proof.
        (
            Recipient::Node(n(9)),
            |payload| {
                let (zero, mut mul): (
                    TransmitInitZeroSharePhase3to4,
                    TransmitInitMulPhase3to4<Curve>,
                ) = postcard::from_bytes(payload).expect("decode");
                mul.dlog_proof.proofs[0].challenge_response += Scalar::ONE;
                *payload = postcard::to_allocvec(&(zero, mul)).expect("encode");
            },
            "multiplication verification failed",
        ),
        (
            Recipient::Node(n(9)),
            |payload| {
                let (zero, mut mul): (
                    TransmitInitZeroSharePhase3to4,
                    TransmitInitMulPhase3to4<Curve>,
                ) = postcard::from_bytes(payload).expect("decode");
                mul.enc_proofs[0].challenge0 += Scalar::ONE;
                *payload = postcard::to_allocvec(&(zero, mul)).expect("encode");
            },
            "multiplication verification failed",
        ),
        // The proof of knowledge of the correction does not open the
        // round-2 commitment (shown to everyone alike).
        (
            Recipient::Broadcast,
            |payload| {
                let (echo, mut proof): ([u8; 32], DLogProof<Curve>) =
                    postcard::from_bytes(payload).expect("decode");
                proof.point =
                    (k256_dkls23::ProjectivePoint::GENERATOR * Scalar::from(3u64)).to_affine();
                *payload = postcard::to_allocvec(&(echo, proof)).expect("encode");
            },
            "proof verification failed",
        ),
        // A payload that does not decode.
        (
            Recipient::Node(n(9)),
            |payload| payload.truncate(payload.len() / 2),
            "refresh round-3 direct message",
        ),
    ];
    for (to, tamper, reason) in cases {
        let (mut parties, round1) = started_refresh();
        let round2 = step_all(&mut parties, &round1);
        let mut round3 = step_all(&mut parties, &round2);
        tamper(&mut find(&mut round3, n(5), to).payload);
        let err = expect_err(step_one(&mut parties, n(9), &round3));
        assert_eq!(err.culprits(), vec![n(5)], "{reason}: {err}");
        assert!(err.to_string().contains(reason), "{reason}: {err}");
        // A fresh OT setup failing is no reason to ban: recoverable.
        assert!(
            matches!(
                err,
                ProtocolError::Misbehaviour { .. } | ProtocolError::Malformed { .. }
            ),
            "{err}"
        );
        // Spent: nothing secret is left.
        assert!(matches!(
            expect_err(parties.get_mut(&n(9)).expect("9").step(vec![])),
            ProtocolError::OutOfOrder(_)
        ));
    }
}

#[test]
fn equivocated_refresh_broadcasts_are_caught_by_the_echoes() {
    let mut rng = rng(0xe0);
    let fixture = fixture();
    let shares = ecdsa_shares(&fixture.dkg);
    for (round, from, to, byte) in [
        (1u16, n(2), n(9), 40usize),
        (2, n(2), n(9), 40),
        (3, n(5), n(2), 0),
    ] {
        let sessions = refresh_sessions(
            &fixture.cluster,
            session(REFRESH_SESSION),
            2,
            existing_starts(&shares),
            &mut rng,
        );
        let mut last = 0;
        let result = drive(session(REFRESH_SESSION), sessions, |r, deliveries| {
            last = r;
            if r == round {
                // `from` shows `to` a different, validly signed broadcast.
                let inbound = deliveries.inbound.get_mut(&to).expect("recipient");
                let slot = inbound
                    .iter_mut()
                    .find(|s| s.message.from == from && s.message.to == Recipient::Broadcast)
                    .expect("broadcast");
                let mut message = slot.message.clone();
                if round == 1 {
                    // A different valid verifying share is caught at once.
                    message.payload[32..].copy_from_slice(&point_bytes(&Scalar::from(9u64)));
                } else {
                    message.payload[byte] ^= 1;
                }
                *slot = fixture.cluster.sign_as(from, message);
            }
        });
        let Err((party, err)) = result else {
            panic!("round {round}: the refresh must fail")
        };
        match round {
            1 => {
                assert_eq!(party, to);
                assert_eq!(err.culprits(), vec![from], "{err}");
            }
            _ => {
                assert!(
                    matches!(err, ProtocolError::InconsistentBroadcast { ref parties } if parties == &[to] || parties == &[from]),
                    "round {round}: {party}: {err}"
                );
            }
        }
        assert!(last <= round + 1, "caught by the next round at the latest");
    }
}

/// Times bare 2-of-3 and 3-of-5 refreshes (run with `--ignored`, ideally
/// with `--release`).
#[test]
#[ignore = "timing only"]
fn refresh_timing() {
    for (nodes, threshold) in [
        (vec![n(1), n(2), n(3)], 2u16),
        (vec![n(1), n(2), n(3), n(4), n(5)], 3),
    ] {
        let secret = Scalar::from(0x5eed_u64);
        let coefficients = [secret, Scalar::from(11u64), Scalar::from(13u64)];
        let shares: BTreeMap<NodeId, Scalar> = nodes
            .iter()
            .zip(1u64..)
            .map(|(node, x)| {
                let value = coefficients[..usize::from(threshold)]
                    .iter()
                    .rev()
                    .fold(Scalar::ZERO, |acc, c| acc * Scalar::from(x) + c);
                (*node, value)
            })
            .collect();
        let verifying_shares: BTreeMap<NodeId, [u8; 33]> =
            shares.iter().map(|(n, s)| (*n, point_bytes(s))).collect();
        let started = Instant::now();
        let mut parties: BTreeMap<NodeId, EcdsaRefreshProtocol> = BTreeMap::new();
        let mut messages = Vec::new();
        for node in &nodes {
            let start = RefreshStart::Hollow {
                share: Zeroizing::new(scalar_bytes(&shares[node])),
                public_key: point_bytes(&secret),
                chain_code: [7; 32],
                verifying_shares: verifying_shares.clone(),
            };
            let mut party =
                ecdsa::new_refresh(session(1), *node, &nodes, threshold, start).expect("refresh");
            messages.extend(party.start().expect("start"));
            parties.insert(*node, party);
        }
        for _ in 0..ecdsa::refresh_steps() {
            messages = step_all(&mut parties, &messages);
        }
        eprintln!(
            "{threshold}-of-{} refresh, all parties in one thread: {:?}",
            nodes.len(),
            started.elapsed()
        );
    }
}
