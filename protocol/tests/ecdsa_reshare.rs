//! Refresh and reshare of threshold ECDSA (DKLs23) keys end to end, through
//! the engine facade (`engine::new_reshare`): a real 2-of-3 DKG
//! (`engine::new_dkg`), then the two-phase session (the verifiable secret
//! redistribution, then DKLs23's complete refresh among the new
//! participants) with every message signed, sealed and routed by
//! `SecureSession` + `RoundRelay` as in the cluster, then signing with the
//! new shares through `engine::new_signer` and `engine::Aggregator`.
//!
//! After each scenario the group key and the BIP-32 chain code (hence the
//! Ethereum address and every child key) are unchanged, every `t'`-subset
//! of the new set signs (along a BIP-32 path too), and a share of the old
//! epoch does not sign with new ones. Keys whose package predates verifying
//! shares (version 1) refresh and then reshare; their reshare alone is
//! refused. Adversarial cases: a dealer's inconsistent subshare, tampered
//! phase-2 messages and phase-1 messages replayed in phase 2, each refused
//! with the exact typed error.
//!
//! DKLs23's OT setup costs seconds per refresh in debug builds: one DKG is
//! shared by every test, and the 3-of-5 epoch is computed once.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use common::*;
use dkls23::protocols::dkg::{TransmitInitMulPhase3to4, TransmitInitZeroSharePhase3to4};
use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
use k256::elliptic_curve::PrimeField as _;
use k256::elliptic_curve::sec1::ToEncodedPoint as _;
use sha2::{Digest as _, Sha256};
use sha3::Keccak256;
use sigil_protocol::ecdsa::{EcdsaKeyShare, EcdsaPublicKeyPackage};
use sigil_protocol::engine::{
    self, Aggregator, Encoding, KeyShare, ReshareKind, ReshareOutput, ReshareSpec, SignInput,
};
use sigil_protocol::relay::Deliveries;
use sigil_protocol::{Message, NodeId, Protocol, ProtocolError, Recipient, Scheme, SessionId};

const SCHEME: Scheme = Scheme::EcdsaSecp256k1;
const RESHARE_SESSION: u8 = 0x7e;
/// A BIP-32 path (Ethereum's account 0, address index appended per subset).
const CHILD_PATH: &str = "m/44/60/0/0";

type Curve = k256_dkls23::Secp256k1;

// ---------------------------------------------------------------------------
// Epochs: the holders of a key, their shares and the public key package
// ---------------------------------------------------------------------------

/// One epoch of a key: its shares and public key package.
#[derive(Clone)]
struct Epoch {
    participants: Vec<NodeId>,
    threshold: u16,
    public_key: Vec<u8>,
    package: Vec<u8>,
    shares: BTreeMap<NodeId, EcdsaKeyShare>,
}

impl Epoch {
    fn decoded(&self) -> EcdsaPublicKeyPackage {
        EcdsaPublicKeyPackage::from_bytes(&self.package).expect("package")
    }

    fn chain_code(&self) -> [u8; 32] {
        *self.decoded().chain_code()
    }
}

/// The cluster (nodes 1..=6) and a 2-of-3 key among nodes 1, 2, 3 from a
/// real DKG through the engine, computed once.
struct Fixture {
    cluster: Cluster,
    dkg: Epoch,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = rng(0xec);
        let cluster = Cluster::new(6, &mut rng);
        let participants = ids(3);
        let session = session(0xd1);
        let sessions = participants
            .iter()
            .map(|&me| {
                let dkg =
                    engine::new_dkg(SCHEME, session, me, &participants, 2, &mut rng).expect("dkg");
                (me, cluster.secure(me, dkg, &mut rng))
            })
            .collect();
        let started = Instant::now();
        let outputs = drive(session, sessions, |_, _| {})
            .expect("honest DKG")
            .outputs;
        eprintln!("2-of-3 ECDSA DKG: {:?}", started.elapsed());
        let first = &outputs[&n(1)];
        let shares = outputs
            .iter()
            .map(|(node, o)| match &o.key_share {
                KeyShare::Ecdsa(share) => (*node, share.clone()),
                other => panic!("unexpected share {other:?}"),
            })
            .collect();
        let dkg = Epoch {
            participants,
            threshold: 2,
            public_key: first.public_key.clone(),
            package: first.public_key_package.clone(),
            shares,
        };
        assert_eq!(dkg.package[4], 2, "the DKG writes a version-2 package");
        Fixture { cluster, dkg }
    })
}

// ---------------------------------------------------------------------------
// Running a refresh or reshare
// ---------------------------------------------------------------------------

/// Alters a party's outbound plaintext messages before the envelope seals
/// and signs them: a misbehaving party.
type Tamper = Box<dyn FnMut(&mut Vec<Message>) + Send>;

/// A [`Tamper`] that alters each message on its own.
fn each(mut f: impl FnMut(&mut Message) + Send + 'static) -> Tamper {
    Box::new(move |messages: &mut Vec<Message>| messages.iter_mut().for_each(&mut f))
}

/// A reshare protocol whose outbound messages may be altered.
struct Tampering {
    inner: engine::ReshareProtocol,
    tamper: Option<Tamper>,
}

impl Tampering {
    fn apply(&mut self, mut messages: Vec<Message>) -> Vec<Message> {
        if let Some(tamper) = &mut self.tamper {
            tamper(&mut messages);
        }
        messages
    }
}

impl Protocol for Tampering {
    type Output = ReshareOutput;

    fn session_id(&self) -> SessionId {
        self.inner.session_id()
    }

    fn expected_round(&self) -> u16 {
        self.inner.expected_round()
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        let messages = self.inner.start()?;
        Ok(self.apply(messages))
    }

    fn step(
        &mut self,
        inbound: Vec<Message>,
    ) -> Result<sigil_protocol::Transition<ReshareOutput>, ProtocolError> {
        use sigil_protocol::Transition;
        Ok(match self.inner.step(inbound)? {
            Transition::Continue(messages) => Transition::Continue(self.apply(messages)),
            Transition::Finished { messages, output } => Transition::Finished {
                messages: self.apply(messages),
                output,
            },
        })
    }
}

fn spec(
    kind: ReshareKind,
    old: &[u16],
    old_threshold: u16,
    dealers: &[u16],
    new: &[u16],
    new_threshold: u16,
) -> ReshareSpec {
    let ids = |v: &[u16]| v.iter().map(|i| n(*i)).collect::<Vec<_>>();
    ReshareSpec {
        kind,
        old_participants: ids(old),
        old_threshold,
        dealers: ids(dealers),
        new_participants: ids(new),
        new_threshold,
    }
}

/// Runs the session of `spec` over `old` through the envelope and the
/// relay; `tampers` alter some parties' outbound plaintext, `relay` the
/// routed deliveries of each round.
fn run_reshare(
    old: &Epoch,
    spec: &ReshareSpec,
    seed: u64,
    mut tampers: BTreeMap<NodeId, Tamper>,
    relay: impl FnMut(u16, &mut Deliveries),
) -> Result<Run<ReshareOutput>, (NodeId, ProtocolError)> {
    let cluster = &fixture().cluster;
    let mut rng = rng(seed);
    let session = session(RESHARE_SESSION);
    let sessions = spec
        .parties()
        .into_iter()
        .map(|me| {
            let share = old.shares.get(&me).cloned().map(KeyShare::Ecdsa);
            let inner = engine::new_reshare(
                SCHEME,
                session,
                me,
                spec,
                &old.package,
                share.as_ref(),
                &mut rng,
            )
            .expect("reshare");
            let protocol = Tampering {
                inner,
                tamper: tampers.remove(&me),
            };
            (me, cluster.secure(me, protocol, &mut rng))
        })
        .collect();
    drive(session, sessions, relay)
}

/// `keccak256(x ‖ y)[12..]` of the key: its Ethereum address.
fn ethereum_address(public_key: &[u8]) -> [u8; 20] {
    let key = k256::PublicKey::from_sec1_bytes(public_key).expect("key");
    let uncompressed = key.to_encoded_point(false);
    let hash = Keccak256::digest(&uncompressed.as_bytes()[1..]);
    hash[12..].try_into().expect("20 bytes")
}

/// Checks a finished session and returns the new epoch: every party
/// finishes after `reshare_steps` steps; the new participants share one new
/// version-2 package of the same key and chain code with the new set and
/// threshold, and hold fresh shares of it; a dealer that leaves holds
/// nothing and reports no package.
fn new_epoch(old: &Epoch, spec: &ReshareSpec, run: &Run<ReshareOutput>) -> Epoch {
    assert_eq!(run.rounds.len(), engine::reshare_steps(SCHEME) + 1);
    assert_eq!(engine::reshare_steps(SCHEME), 7);
    for (index, deliveries) in run.rounds.iter().enumerate() {
        for signed in deliveries.inbound.values().flatten() {
            assert_eq!(usize::from(signed.message.round), index + 1);
        }
        assert!(deliveries.to_coordinator.is_empty());
    }
    assert!(
        run.rounds[7].inbound.values().all(Vec::is_empty),
        "nothing after round 7"
    );
    let outputs = &run.outputs;
    assert_eq!(
        outputs.keys().copied().collect::<Vec<_>>(),
        spec.parties(),
        "every party finishes"
    );
    let mut new_nodes = spec.new_participants.clone();
    new_nodes.sort();
    let package = outputs[&new_nodes[0]].public_key_package.clone();
    assert_ne!(package, old.package, "a new epoch");
    assert_eq!(package[4], 2, "a version-2 package");
    let decoded = EcdsaPublicKeyPackage::from_bytes(&package).expect("package");
    decoded.check_verifying_shares().expect("consistent");
    assert_eq!(decoded.participants(), new_nodes.as_slice());
    assert_eq!(decoded.threshold(), spec.new_threshold);
    assert_eq!(decoded.public_key().as_slice(), old.public_key.as_slice());
    assert_eq!(decoded.chain_code(), &old.chain_code(), "chain code kept");
    assert_eq!(
        ethereum_address(decoded.public_key()),
        ethereum_address(&old.public_key)
    );

    let mut shares = BTreeMap::new();
    for (node, out) in outputs {
        assert_eq!(out.public_key, old.public_key, "group key unchanged");
        match &out.key_share {
            Some(KeyShare::Ecdsa(share)) => {
                assert!(new_nodes.contains(node));
                assert_eq!(out.public_key_package, package);
                assert_eq!(share.node_id(), *node);
                assert_eq!(share.package(), &decoded);
                assert_eq!(share.threshold(), spec.new_threshold);
                if let Some(before) = old.shares.get(node) {
                    assert_ne!(share, before, "a fresh share");
                }
                let restored = KeyShare::from_bytes(SCHEME, &share.to_bytes()).expect("decode");
                assert_eq!(restored, KeyShare::Ecdsa(share.clone()));
                shares.insert(*node, share.clone());
            }
            Some(other) => panic!("unexpected share {other:?}"),
            None => {
                assert!(!new_nodes.contains(node), "{node} must hold a share");
                assert!(out.public_key_package.is_empty(), "a leaving dealer");
            }
        }
    }
    Epoch {
        participants: new_nodes,
        threshold: spec.new_threshold,
        public_key: old.public_key.clone(),
        package,
        shares,
    }
}

// ---------------------------------------------------------------------------
// Signing through the engine
// ---------------------------------------------------------------------------

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// Signs `digest` along `path` with `signers` holding `shares`, aggregated
/// under `epoch`'s package, and checks the signature with k256 alone.
fn sign(
    epoch: &Epoch,
    shares: &BTreeMap<NodeId, EcdsaKeyShare>,
    signers: &[NodeId],
    digest: [u8; 32],
    path: &str,
    seed: u64,
) -> Result<engine::Signature, ProtocolError> {
    let cluster = &fixture().cluster;
    let mut rng = rng(seed);
    let session = session(0x52);
    let input = SignInput::new(SCHEME, &digest, Encoding::Raw, path)?;
    let mut sessions = BTreeMap::new();
    for &me in signers {
        let share = KeyShare::Ecdsa(shares[&me].clone());
        let signer = engine::new_signer(&share, session, me, signers, &input, &mut rng)?;
        sessions.insert(me, cluster.secure(me, signer, &mut rng));
    }
    let run = drive(session, sessions, |_, _| {}).map_err(|(_, e)| e)?;
    let mut aggregator = Aggregator::new(
        SCHEME,
        session,
        &epoch.package,
        &epoch.public_key,
        signers,
        &input,
    )?;
    let broadcasts: Vec<Vec<Message>> = run.rounds.iter().map(|d| plain(&d.broadcasts)).collect();
    let last = run.rounds.last().expect("a round");
    let signature = aggregator.aggregate(&broadcasts, plain(&last.to_coordinator))?;
    // The key the path leads to, from public data alone.
    let expected = engine::public_key_for(SCHEME, &epoch.public_key, &epoch.package, path)?;
    assert_eq!(signature.public_key, expected);
    engine::verify(SCHEME, &expected, &input, &signature.bytes)?;
    let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&expected).expect("key");
    let sig = k256::ecdsa::Signature::from_slice(&signature.bytes).expect("r||s");
    key.verify_prehash(&digest, &sig).expect("k256 verifies");
    Ok(signature)
}

/// Every subset of `items` of size `k`.
fn subsets(items: &[NodeId], k: usize) -> Vec<Vec<NodeId>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    if items.len() < k {
        return Vec::new();
    }
    let mut out = subsets(&items[1..], k);
    for mut rest in subsets(&items[1..], k - 1) {
        rest.insert(0, items[0]);
        out.push(rest);
    }
    out
}

/// Every `t'`-subset of the new epoch signs along a BIP-32 path (and the
/// first one with the key itself); the child keys are those of the old
/// epoch's chain code.
fn every_subset_signs(old: &Epoch, new: &Epoch, seed: u64) {
    let all = subsets(&new.participants, usize::from(new.threshold));
    for (i, signers) in all.iter().enumerate() {
        let path = format!("{CHILD_PATH}/{i}");
        assert_eq!(
            engine::public_key_for(SCHEME, &new.public_key, &new.package, &path),
            engine::public_key_for(SCHEME, &old.public_key, &old.package, &path),
            "same child key"
        );
        let text = format!("{signers:?} along {path}");
        sign(
            new,
            &new.shares,
            signers,
            digest(&text),
            &path,
            seed + i as u64,
        )
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    let signature = sign(new, &new.shares, &all[0], digest("master"), "", seed)
        .unwrap_or_else(|e| panic!("master key: {e}"));
    assert_eq!(signature.public_key, old.public_key);
}

/// How signing with an old share among new ones fails.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// The old share's threshold differs: it cannot even join a signing
    /// session of `t'` signers (`InvalidParameters` at `new_signer`).
    Threshold,
    /// Same roster and threshold: the DKLs23 session ids, which every
    /// refresh chains, differ, so the parties' messages belong to different
    /// signing sessions (`Misbehaviour` with nobody to blame).
    OtherSession,
    /// The old share numbers the signers by the old roster: the new-epoch
    /// signer sees payloads naming the wrong DKLs23 parties and names the
    /// stale signer (`Malformed`).
    Roster,
}

/// `t'` signers of the new epoch of which the last (`stale`, the highest
/// holder of both epochs, so that new-epoch signers step first) uses its
/// old share: its refusal checked against `refusal`. `None` if the epochs
/// share no holder.
fn sign_mixed(old: &Epoch, new: &Epoch, refusal: Refusal, seed: u64) -> Option<NodeId> {
    let stale = *new
        .participants
        .iter()
        .rev()
        .find(|n| old.shares.contains_key(n))?;
    let mut signers: Vec<NodeId> = new
        .participants
        .iter()
        .copied()
        .filter(|n| *n != stale)
        .take(usize::from(new.threshold) - 1)
        .collect();
    signers.push(stale);
    signers.sort();
    let mut shares = new.shares.clone();
    shares.insert(stale, old.shares[&stale].clone());
    let err = sign(new, &shares, &signers, digest("mixed epochs"), "", seed)
        .expect_err("old and new shares must not sign together");
    match refusal {
        Refusal::Threshold => assert!(
            matches!(&err, ProtocolError::InvalidParameters(m) if m.contains("exactly the threshold")),
            "{err}"
        ),
        Refusal::OtherSession => assert!(
            matches!(&err, ProtocolError::Misbehaviour { culprits, reason }
                if culprits.is_empty() && reason.contains("different signing session")),
            "{err}"
        ),
        Refusal::Roster => assert!(
            matches!(&err, ProtocolError::Malformed { from, reason }
                if *from == stale && reason.contains("other DKLs23 parties")),
            "{err}"
        ),
    }
    Some(stale)
}

/// A scenario end to end: the session, the checks of the new epoch, every
/// subset signing, an old share refused as `refusal` says (`None`: the sets
/// are disjoint). Returns the new epoch.
fn scenario(
    name: &str,
    old: &Epoch,
    spec: &ReshareSpec,
    refusal: Option<Refusal>,
    seed: u64,
) -> Epoch {
    let started = Instant::now();
    let run = run_reshare(old, spec, seed, BTreeMap::new(), |_, _| {}).expect("honest session");
    eprintln!("{name}: session {:?}", started.elapsed());
    let new = new_epoch(old, spec, &run);
    let started = Instant::now();
    every_subset_signs(old, &new, seed + 100);
    match refusal {
        Some(refusal) => {
            sign_mixed(old, &new, refusal, seed + 200).expect("overlapping sets");
        }
        None => assert!(
            new.participants.iter().all(|n| !old.shares.contains_key(n)),
            "disjoint sets only"
        ),
    }
    eprintln!("{name}: signing {:?}", started.elapsed());
    new
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

#[test]
fn refresh_keeps_the_key_and_re_randomizes_every_share() {
    let old = &fixture().dkg;
    let spec = spec(
        ReshareKind::Refresh,
        &[1, 2, 3],
        2,
        &[1, 2, 3],
        &[1, 2, 3],
        2,
    );
    let new = scenario("refresh 2-of-3", old, &spec, Some(Refusal::OtherSession), 1);
    let (before, after) = (old.decoded(), new.decoded());
    for node in &new.participants {
        assert_ne!(
            before.verifying_share(*node),
            after.verifying_share(*node),
            "{node}'s verifying share moved"
        );
    }
}

/// The 3-of-5 epoch of the DKG key among nodes 1..=5 (dealers 2 and 3),
/// computed once: its own test checks it, and it is the old epoch of the
/// 3-of-5 → 2-of-3 reshare.
fn three_of_five() -> &'static (Epoch, ReshareSpec, Run<ReshareOutput>) {
    static EPOCH: OnceLock<(Epoch, ReshareSpec, Run<ReshareOutput>)> = OnceLock::new();
    EPOCH.get_or_init(|| {
        let old = &fixture().dkg;
        let spec = spec(
            ReshareKind::Reshare,
            &[1, 2, 3],
            2,
            &[2, 3],
            &[1, 2, 3, 4, 5],
            3,
        );
        let started = Instant::now();
        let run = run_reshare(old, &spec, 2, BTreeMap::new(), |_, _| {}).expect("honest session");
        eprintln!("2-of-3 → 3-of-5: session {:?}", started.elapsed());
        let new = new_epoch(old, &spec, &run);
        (new, spec, run)
    })
}

#[test]
fn two_of_three_to_three_of_five() {
    let old = &fixture().dkg;
    let (new, _, _) = three_of_five();
    let started = Instant::now();
    every_subset_signs(old, new, 102);
    let stale = sign_mixed(old, new, Refusal::Threshold, 202).expect("overlapping sets");
    assert_eq!(stale, n(3));
    eprintln!("2-of-3 → 3-of-5: signing {:?}", started.elapsed());
    // Fewer than t' cannot sign.
    let input = SignInput::new(SCHEME, &[1; 32], Encoding::Raw, "").expect("input");
    let two = [n(1), n(4)];
    let share = KeyShare::Ecdsa(new.shares[&n(1)].clone());
    assert!(matches!(
        engine::new_signer(&share, session(1), n(1), &two, &input, &mut rng(1)),
        Err(ProtocolError::InvalidParameters(ref m)) if m.contains("threshold of 3")
    ));
}

#[test]
fn three_of_five_to_two_of_three() {
    let (old, _, _) = three_of_five();
    let spec = spec(
        ReshareKind::Reshare,
        &[1, 2, 3, 4, 5],
        3,
        &[1, 3, 5],
        &[1, 2, 3],
        2,
    );
    scenario("3-of-5 → 2-of-3", old, &spec, Some(Refusal::Threshold), 3);
}

/// Node 2 is replaced by node 4; node 2 deals and leaves. Also checks who
/// sends what in which round.
#[test]
fn replace_node_2_by_node_4() {
    let old = &fixture().dkg;
    let spec = spec(
        ReshareKind::Reshare,
        &[1, 2, 3],
        2,
        &[1, 2, 3],
        &[1, 3, 4],
        2,
    );
    let started = Instant::now();
    let run = run_reshare(old, &spec, 4, BTreeMap::new(), |_, _| {}).expect("honest session");
    eprintln!("replace node 2 by node 4: session {:?}", started.elapsed());
    let new = new_epoch(old, &spec, &run);

    // Who sends in which round: phase 1 as the redistribution's table (only
    // dealers in round 1; node 4, not a dealer, broadcasts echoes only),
    // phase 2 only the new participants, node 2 nothing at all.
    let senders = |round: usize, to: Recipient| -> Vec<u16> {
        let mut from: Vec<u16> = run.rounds[round - 1]
            .inbound
            .values()
            .flatten()
            .filter(|s| s.message.to == to)
            .map(|s| s.message.from.get())
            .collect();
        from.sort();
        from.dedup();
        from
    };
    assert_eq!(senders(1, Recipient::Broadcast), vec![1, 2, 3]);
    assert_eq!(senders(2, Recipient::Node(n(4))), vec![1, 2, 3]);
    assert_eq!(senders(2, Recipient::Node(n(2))), Vec::<u16>::new());
    for round in 2..=3 {
        assert_eq!(senders(round, Recipient::Broadcast), vec![1, 2, 3, 4]);
    }
    for round in 4..=7 {
        assert_eq!(
            senders(round, Recipient::Broadcast),
            vec![1, 3, 4],
            "{round}"
        );
        assert!(
            run.rounds[round - 1].inbound[&n(2)]
                .iter()
                .all(|s| s.message.to == Recipient::Broadcast),
            "node 2 receives only broadcasts in phase 2"
        );
    }
    for round in [4, 5, 6] {
        assert_eq!(senders(round, Recipient::Node(n(1))), vec![3, 4], "{round}");
    }

    let started = Instant::now();
    every_subset_signs(old, &new, 104);
    let stale = sign_mixed(old, &new, Refusal::Roster, 204).expect("overlapping sets");
    assert_eq!(stale, n(3));
    eprintln!("replace node 2 by node 4: signing {:?}", started.elapsed());
}

#[test]
fn disjoint_new_set() {
    let old = &fixture().dkg;
    let spec = spec(ReshareKind::Reshare, &[1, 2, 3], 2, &[1, 2], &[4, 5, 6], 2);
    scenario("disjoint {1,2,3} → {4,5,6}", old, &spec, None, 5);
}

// ---------------------------------------------------------------------------
// Keys without verifying shares (package version 1)
// ---------------------------------------------------------------------------

/// The share's encoding with its package replaced by `package` bytes
/// (`"SGKS" ‖ version ‖ tag ‖ node ‖ (u32 len ‖ part)*`, parts: package, party).
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

/// The DKG key as stored before packages kept verifying shares.
fn version_1(epoch: &Epoch) -> Epoch {
    let package = epoch.decoded();
    let v1 = EcdsaPublicKeyPackage::new(
        package.public_key(),
        *package.chain_code(),
        package.threshold(),
        package.participants(),
    )
    .expect("v1 package")
    .to_bytes();
    assert_eq!(v1[4], 1);
    let shares = epoch
        .shares
        .iter()
        .map(|(node, share)| {
            let share = EcdsaKeyShare::from_bytes(&with_package(share, &v1)).expect("v1 share");
            assert_eq!(share.package().verifying_shares(), None);
            (*node, share)
        })
        .collect();
    Epoch {
        package: v1,
        shares,
        ..epoch.clone()
    }
}

fn refused(result: Result<engine::ReshareProtocol, ProtocolError>, what: &str) {
    match result {
        Err(ProtocolError::InvalidParameters(reason)) => {
            assert!(
                reason.contains(what),
                "{reason:?} does not mention {what:?}"
            )
        }
        Err(other) => panic!("expected invalid parameters ({what}), got {other}"),
        Ok(_) => panic!("expected invalid parameters ({what})"),
    }
}

#[test]
fn a_version_1_key_refreshes_then_reshares() {
    let v1 = version_1(&fixture().dkg);
    let reshare = spec(ReshareKind::Reshare, &[1, 2, 3], 2, &[1, 2], &[2, 3, 4], 2);
    // A reshare needs the dealers' verifying shares: refused, for every party.
    for me in [1, 2, 4] {
        let share = v1.shares.get(&n(me)).cloned().map(KeyShare::Ecdsa);
        refused(
            engine::new_reshare(
                SCHEME,
                session(RESHARE_SESSION),
                n(me),
                &reshare,
                &v1.package,
                share.as_ref(),
                &mut rng(1),
            ),
            "refresh the key once to record its verifying shares, then reshare",
        );
    }
    // Its refresh is DKLs23's complete refresh: every participant needs its
    // share, dealer or not.
    let refresh = spec(ReshareKind::Refresh, &[1, 2, 3], 2, &[1, 2], &[1, 2, 3], 2);
    refused(
        engine::new_reshare(
            SCHEME,
            session(RESHARE_SESSION),
            n(3),
            &refresh,
            &v1.package,
            None,
            &mut rng(1),
        ),
        "node-3 needs its share",
    );

    let started = Instant::now();
    let run = run_reshare(&v1, &refresh, 6, BTreeMap::new(), |_, _| {}).expect("v1 refresh");
    eprintln!("version-1 refresh: {:?}", started.elapsed());
    // Phase 1 is idle: nothing is sent in rounds 1 to 3.
    for round in &run.rounds[..3] {
        assert!(round.inbound.values().all(Vec::is_empty));
    }
    let refreshed = new_epoch(&v1, &refresh, &run);
    let refreshed_package = refreshed.decoded();
    assert!(refreshed_package.verifying_shares().is_some(), "version 2");
    let signers = [n(1), n(3)];
    sign(
        &refreshed,
        &refreshed.shares,
        &signers,
        digest("v1, refreshed"),
        "m/0/1",
        7,
    )
    .expect("signature");

    // Now it reshares.
    let started = Instant::now();
    let run = run_reshare(&refreshed, &reshare, 8, BTreeMap::new(), |_, _| {}).expect("reshare");
    eprintln!(
        "reshare after the version-1 refresh: {:?}",
        started.elapsed()
    );
    let reshared = new_epoch(&refreshed, &reshare, &run);
    assert_eq!(reshared.public_key, v1.public_key);
    assert_eq!(reshared.chain_code(), v1.chain_code());
    sign(
        &reshared,
        &reshared.shares,
        &[n(2), n(4)],
        digest("v1, refreshed, reshared"),
        "m/44/60/0/0/3",
        9,
    )
    .expect("signature");
}

// ---------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------

#[test]
fn parameters_are_checked_before_anything_is_sent() {
    let dkg = &fixture().dkg;
    let replace = spec(
        ReshareKind::Reshare,
        &[1, 2, 3],
        2,
        &[1, 2, 3],
        &[1, 3, 4],
        2,
    );
    let build = |spec: &ReshareSpec, me: u16, share: Option<&EcdsaKeyShare>, package: &[u8]| {
        let share = share.cloned().map(KeyShare::Ecdsa);
        engine::new_reshare(
            SCHEME,
            session(RESHARE_SESSION),
            n(me),
            spec,
            package,
            share.as_ref(),
            &mut rng(1),
        )
    };
    let share1 = &dkg.shares[&n(1)];
    refused(
        build(&replace, 1, None, &dkg.package),
        "dealer node-1 needs its share",
    );
    refused(
        build(&replace, 2, Some(share1), &dkg.package),
        "belongs to node-1",
    );
    refused(
        build(&replace, 5, None, &dkg.package),
        "node-5 is neither a dealer nor a new participant",
    );
    refused(
        build(&replace, 1, Some(share1), b"garbage"),
        "corrupt public key package",
    );
    let wrong_old = ReshareSpec {
        old_participants: ids(4),
        ..replace.clone()
    };
    refused(
        build(&wrong_old, 1, Some(share1), &dkg.package),
        "not the holders of the current key",
    );
    let wrong_threshold = ReshareSpec {
        old_threshold: 3,
        ..replace.clone()
    };
    refused(
        build(&wrong_threshold, 1, Some(share1), &dkg.package),
        "the current key has threshold 2, not 3",
    );
    let one_dealer = ReshareSpec {
        dealers: vec![n(1)],
        ..replace.clone()
    };
    refused(
        build(&one_dealer, 1, Some(share1), &dkg.package),
        "1 dealers cannot redistribute",
    );
    let threshold_one = ReshareSpec {
        new_threshold: 1,
        ..replace.clone()
    };
    refused(
        build(&threshold_one, 1, Some(share1), &dkg.package),
        "new participant set: threshold 1",
    );
    let refresh_that_moves = ReshareSpec {
        kind: ReshareKind::Refresh,
        ..replace.clone()
    };
    refused(
        build(&refresh_that_moves, 1, Some(share1), &dkg.package),
        "a refresh cannot change",
    );
    // A share of another epoch of the key (the package says which).
    let v1 = version_1(dkg);
    refused(
        build(&replace, 1, Some(&v1.shares[&n(1)]), &dkg.package),
        "another epoch or key",
    );
    // A FROST share.
    let mut frost_rng = rng(2);
    let frost_dkg = run_dkg(
        &Cluster::new(3, &mut frost_rng),
        Scheme::FrostSecp256k1,
        2,
        &mut frost_rng,
    );
    let frost_share = KeyShare::Frost(frost_dkg[&n(1)].key_share.clone());
    refused(
        engine::new_reshare(
            SCHEME,
            session(1),
            n(1),
            &replace,
            &dkg.package,
            Some(&frost_share),
            &mut rng(3),
        ),
        "a frost-secp256k1 share cannot reshare a ecdsa-secp256k1 key",
    );

    // Out of order use.
    let mut protocol = build(&replace, 4, None, &dkg.package).expect("node 4");
    assert_eq!(protocol.expected_round(), 1);
    assert!(matches!(
        protocol.step(vec![]),
        Err(ProtocolError::OutOfOrder(_))
    ));
    let mut protocol = build(&replace, 4, None, &dkg.package).expect("node 4");
    assert!(
        protocol.start().expect("start").is_empty(),
        "node 4 does not deal"
    );
    assert!(matches!(
        protocol.start(),
        Err(ProtocolError::OutOfOrder(_))
    ));
}

// ---------------------------------------------------------------------------
// Adversarial
// ---------------------------------------------------------------------------

/// Dealer 2 sends node 4 a subshare off its committed polynomial (its
/// plaintext, before the envelope seals it): node 4 names dealer 2 at the
/// end of phase 1, before any refresh starts.
#[test]
fn an_inconsistent_subshare_names_its_dealer() {
    let old = &fixture().dkg;
    let spec = spec(
        ReshareKind::Reshare,
        &[1, 2, 3],
        2,
        &[1, 2, 3],
        &[1, 3, 4],
        2,
    );
    let tamper = each(|m: &mut Message| {
        if m.round == 2 && m.to == Recipient::Node(n(4)) {
            let bytes: [u8; 32] = m.payload.as_slice().try_into().expect("a scalar");
            let scalar = Option::<k256::Scalar>::from(k256::Scalar::from_repr(bytes.into()))
                .expect("canonical");
            m.payload = (scalar + k256::Scalar::ONE).to_repr().to_vec();
        }
    });
    let mut last = 0;
    let err = run_reshare(old, &spec, 10, BTreeMap::from([(n(2), tamper)]), |r, _| {
        last = r
    })
    .err()
    .expect("refused");
    assert!(
        matches!(&err, (party, ProtocolError::Misbehaviour { culprits, reason })
            if *party == n(4) && culprits == &[n(2)]
                && reason.contains("subshare does not match the dealer's commitment vector")),
        "{err:?}"
    );
    assert_eq!(last, 3, "caught at the end of phase 1");
}

/// Tampered phase-2 (refresh) messages, each from node 3 to node 1: a
/// round-4 polynomial evaluation that does not decode, a round-6 zero-share
/// seed that does not open its round-5 commitment. Node 1 names node 3.
#[test]
fn a_tampered_phase_2_message_names_its_sender() {
    let old = &fixture().dkg;
    let spec = spec(
        ReshareKind::Reshare,
        &[1, 2, 3],
        2,
        &[1, 2, 3],
        &[1, 3, 4],
        2,
    );
    type Alter = fn(&mut Vec<u8>);
    let cases: [(u16, Alter, &str); 2] = [
        (
            4,
            |p| p.truncate(p.len() / 2),
            "refresh polynomial evaluation",
        ),
        (
            6,
            |p| {
                let (mut zero, mul): (
                    TransmitInitZeroSharePhase3to4,
                    TransmitInitMulPhase3to4<Curve>,
                ) = postcard::from_bytes(p).expect("decode");
                zero.seed[0] ^= 1;
                *p = postcard::to_allocvec(&(zero, mul)).expect("encode");
            },
            "zero-share decommitment failed",
        ),
    ];
    for (round, alter, reason) in cases {
        let tamper = each(move |m: &mut Message| {
            if m.round == round && m.to == Recipient::Node(n(1)) {
                alter(&mut m.payload);
            }
        });
        let (party, err) = run_reshare(old, &spec, 11, BTreeMap::from([(n(3), tamper)]), |_, _| {})
            .err()
            .expect("refused");
        assert_eq!(party, n(1), "{reason}: {err}");
        assert_eq!(err.culprits(), vec![n(3)], "{reason}: {err}");
        assert!(err.to_string().contains(reason), "{reason}: {err}");
    }
}

/// The relay replays a phase-1 message (node 3's round-2 broadcast, validly
/// signed) in place of its round-5 broadcast: refused as a message of
/// another round, by a new participant and by a dealer that leaves alike.
#[test]
fn phase_1_messages_replayed_in_phase_2_are_refused() {
    let old = &fixture().dkg;
    let spec = spec(
        ReshareKind::Reshare,
        &[1, 2, 3],
        2,
        &[1, 2, 3],
        &[1, 3, 4],
        2,
    );
    for victim in [n(1), n(2)] {
        let mut round2 = Vec::new();
        let (party, err) = run_reshare(old, &spec, 12, BTreeMap::new(), |round, deliveries| {
            if round == 2 {
                round2 = deliveries.broadcasts.clone();
            }
            if round == 5 {
                let replay = round2
                    .iter()
                    .find(|s| s.message.from == n(3))
                    .expect("node 3's round-2 broadcast")
                    .clone();
                let inbox = deliveries.inbound.get_mut(&victim).expect("victim");
                for signed in inbox
                    .iter_mut()
                    .filter(|s| s.message.from == n(3) && s.message.to == Recipient::Broadcast)
                {
                    *signed = replay.clone();
                }
            }
        })
        .err()
        .expect("refused");
        assert_eq!(party, victim);
        assert_eq!(
            err,
            ProtocolError::WrongRound {
                from: n(3),
                expected: 5,
                got: 2
            }
        );
    }
}

/// A party that sends what it has no business sending, validly signed by
/// it, is named: a leaving dealer broadcasting in phase 2, and a
/// participant of a version-1 refresh broadcasting in its idle phase 1.
#[test]
fn uninvited_messages_name_their_sender() {
    let dkg = &fixture().dkg;
    let replace = spec(
        ReshareKind::Reshare,
        &[1, 2, 3],
        2,
        &[1, 2, 3],
        &[1, 3, 4],
        2,
    );
    let refresh = spec(
        ReshareKind::Refresh,
        &[1, 2, 3],
        2,
        &[1, 2, 3],
        &[1, 2, 3],
        2,
    );
    let v1 = version_1(dkg);
    for (old, spec, sender, round) in [(dkg, &replace, n(2), 5u16), (&v1, &refresh, n(1), 1)] {
        // `sender` adds a broadcast to what it returns for `round`.
        let mut seen = 0u16;
        let tamper: Tamper = Box::new(move |messages: &mut Vec<Message>| {
            seen += 1;
            if seen == round {
                messages.push(Message {
                    session: session(RESHARE_SESSION),
                    round,
                    from: sender,
                    to: Recipient::Broadcast,
                    payload: vec![0; 32],
                });
            }
        });
        let (party, err) =
            run_reshare(old, spec, 13, BTreeMap::from([(sender, tamper)]), |_, _| {})
                .err()
                .expect("refused");
        let first_other = spec
            .parties()
            .into_iter()
            .find(|p| *p != sender)
            .expect("a party");
        assert_eq!(party, first_other);
        assert_eq!(
            err,
            ProtocolError::Malformed {
                from: sender,
                reason: format!("a message this party does not send in round {round}"),
            }
        );
    }
}
