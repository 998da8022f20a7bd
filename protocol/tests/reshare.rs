//! Refresh and reshare of FROST keys end to end, through the engine facade
//! (`engine::new_reshare`): a DKG, then the redistribution with every
//! message signed, sealed and routed by `SecureSession` + `RoundRelay` as in
//! the cluster, then signing with the new shares. Each scenario runs for
//! FROST secp256k1, Taproot and Ed25519; signatures are also checked with
//! independent verifiers (BIP-340 via `k256`, RFC 8032 via `ed25519-dalek`).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use sigil_protocol::engine::{self, ReshareKind, ReshareOutput, ReshareSpec};
use sigil_protocol::envelope::SecureSession;
use sigil_protocol::frost::{self, DkgOutput, KeyShare};
use sigil_protocol::{Message, NodeId, ProtocolError, Recipient, Scheme, SessionId};

const MESSAGE: &[u8] = b"sigil: move the treasury key (32)";

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

/// A DKG among `participants` only (the cluster may hold more nodes).
fn dkg_among(
    cluster: &Cluster,
    scheme: Scheme,
    participants: &[NodeId],
    threshold: u16,
    rng: &mut rand::rngs::StdRng,
) -> BTreeMap<NodeId, DkgOutput> {
    let session = session(0xd1);
    let sessions = participants
        .iter()
        .map(|&me| {
            let dkg =
                frost::new_dkg(scheme, session, me, participants, threshold, rng).expect("dkg");
            (me, cluster.secure(me, dkg, rng))
        })
        .collect();
    drive(session, sessions, |_, _| {})
        .expect("honest DKG")
        .outputs
}

fn frost_shares(dkg: &BTreeMap<NodeId, DkgOutput>) -> BTreeMap<NodeId, KeyShare> {
    dkg.iter().map(|(n, o)| (*n, o.key_share.clone())).collect()
}

fn reshare_sessions(
    cluster: &Cluster,
    scheme: Scheme,
    session: SessionId,
    spec: &ReshareSpec,
    public_key_package: &[u8],
    shares: &BTreeMap<NodeId, KeyShare>,
    rng: &mut rand::rngs::StdRng,
) -> BTreeMap<NodeId, SecureSession<engine::ReshareProtocol>> {
    spec.parties()
        .into_iter()
        .map(|me| {
            let share = shares.get(&me).cloned().map(engine::KeyShare::Frost);
            let protocol = engine::new_reshare(
                scheme,
                session,
                me,
                spec,
                public_key_package,
                share.as_ref(),
                rng,
            )
            .expect("reshare");
            (me, cluster.secure(me, protocol, rng))
        })
        .collect()
}

/// The new epoch as the DKG outputs the signing helpers take (new participants only).
fn as_dkg(outputs: &BTreeMap<NodeId, ReshareOutput>) -> BTreeMap<NodeId, DkgOutput> {
    outputs
        .iter()
        .filter_map(|(node, o)| match &o.key_share {
            Some(engine::KeyShare::Frost(share)) => Some((
                *node,
                DkgOutput {
                    key_share: share.clone(),
                    public_key: o.public_key.clone(),
                    public_key_package: o.public_key_package.clone(),
                },
            )),
            Some(other) => panic!("unexpected share {other:?}"),
            None => None,
        })
        .collect()
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

/// Signs with `signers`, one of which (`stale`) uses its share of the old
/// epoch, and aggregates under the new public key package.
fn sign_mixed(
    cluster: &Cluster,
    scheme: Scheme,
    signers: &[NodeId],
    stale: NodeId,
    old: &BTreeMap<NodeId, DkgOutput>,
    new: &BTreeMap<NodeId, DkgOutput>,
    rng: &mut rand::rngs::StdRng,
) -> Result<Vec<u8>, ProtocolError> {
    let session = session(0x53);
    let mut sessions = BTreeMap::new();
    for &me in signers {
        let share = if me == stale {
            &old[&me].key_share
        } else {
            &new[&me].key_share
        };
        let signer = frost::new_signer(scheme, session, me, signers, share, MESSAGE, rng)?;
        sessions.insert(me, cluster.secure(me, signer, rng));
    }
    let run = drive(session, sessions, |_, _| {}).map_err(|(_, e)| e)?;
    let public_key_package = &new.values().next().expect("a node").public_key_package;
    aggregate(
        scheme,
        session,
        public_key_package,
        signers,
        MESSAGE,
        &run.rounds,
    )
}

struct Scenario {
    kind: ReshareKind,
    old: &'static [u16],
    old_threshold: u16,
    dealers: &'static [u16],
    new: &'static [u16],
    new_threshold: u16,
}

impl Scenario {
    fn spec(&self) -> ReshareSpec {
        let ids = |v: &[u16]| v.iter().map(|i| n(*i)).collect::<Vec<_>>();
        ReshareSpec {
            kind: self.kind,
            old_participants: ids(self.old),
            old_threshold: self.old_threshold,
            dealers: ids(self.dealers),
            new_participants: ids(self.new),
            new_threshold: self.new_threshold,
        }
    }

    /// DKG, redistribution, then the checks: same key for everyone, a new
    /// public key package, shares exactly for the new participants, every
    /// `t'`-subset signs, and old-epoch shares do not mix with new ones.
    fn run(&self, scheme: Scheme, seed: u64) {
        let mut rng = rng(seed);
        let cluster = Cluster::new(6, &mut rng);
        let spec = self.spec();
        let old = dkg_among(
            &cluster,
            scheme,
            &spec.old_participants,
            self.old_threshold,
            &mut rng,
        );
        let first = old.values().next().expect("output");
        let (public_key, old_package) = (&first.public_key, &first.public_key_package);

        let session = session(0x7e);
        let sessions = reshare_sessions(
            &cluster,
            scheme,
            session,
            &spec,
            old_package,
            &frost_shares(&old),
            &mut rng,
        );
        let run = drive(session, sessions, |_, _| {}).expect("honest reshare");
        assert_eq!(run.rounds.len(), engine::reshare_steps(scheme) + 1);
        let outputs = run.outputs;
        assert_eq!(
            outputs.keys().copied().collect::<Vec<_>>(),
            spec.parties(),
            "every party finishes"
        );
        let new_package = &outputs[&spec.new_participants[0]].public_key_package;
        assert_ne!(new_package, old_package, "a new epoch");
        for (node, o) in &outputs {
            assert_eq!(&o.public_key, public_key, "group key unchanged");
            assert_eq!(&o.public_key_package, new_package);
            assert_eq!(o.key_share.is_some(), spec.new_participants.contains(node));
            if let Some(share) = &o.key_share {
                let engine::KeyShare::Frost(share) = share else {
                    panic!("a FROST share")
                };
                assert_eq!(share.node_id(), *node);
                assert_eq!(share.scheme(), scheme);
                assert_eq!(share.threshold(), Ok(self.new_threshold));
                assert_eq!(share.public_key().as_ref(), Ok(public_key));
                if let Some(before) = old.get(node) {
                    assert_ne!(share, &before.key_share, "a fresh share");
                }
                // The stored form round-trips.
                let restored = KeyShare::from_bytes(&share.to_bytes()).expect("decode");
                assert_eq!(&restored, share);
            }
        }

        // Every t'-subset of the new set signs under the unchanged key.
        let new = as_dkg(&outputs);
        let mut new_nodes = spec.new_participants.clone();
        new_nodes.sort();
        for signers in subsets(&new_nodes, usize::from(self.new_threshold)) {
            let signature = run_sign(&cluster, scheme, &signers, &new, MESSAGE, &mut rng)
                .unwrap_or_else(|e| panic!("{signers:?} sign: {e}"));
            frost::verify(scheme, public_key, MESSAGE, &signature).expect("verifies");
            verify_independently(scheme, public_key, MESSAGE, &signature);
        }
        // Fewer than t' cannot even start.
        let too_few = &new_nodes[..usize::from(self.new_threshold) - 1];
        assert!(matches!(
            frost::new_signer(
                scheme,
                session,
                too_few[0],
                too_few,
                &new[&too_few[0]].key_share,
                MESSAGE,
                &mut rng
            ),
            Err(ProtocolError::InvalidParameters(_))
        ));

        // A share of the old epoch mixed with new ones yields no signature.
        let both: Vec<NodeId> = new_nodes
            .iter()
            .copied()
            .filter(|n| old.contains_key(n))
            .collect();
        let k = usize::from(self.old_threshold.max(self.new_threshold));
        assert!(
            both.len() >= k || both.is_empty(),
            "every overlapping scenario mixes"
        );
        if both.len() >= k {
            let signers = &both[..k];
            let stale = signers[0];
            let result = sign_mixed(&cluster, scheme, signers, stale, &old, &new, &mut rng);
            assert_eq!(
                result.err().map(|e| e.culprits()),
                Some(vec![stale]),
                "the stale share is caught"
            );
        }
    }
}

const REFRESH: Scenario = Scenario {
    kind: ReshareKind::Refresh,
    old: &[1, 2, 3],
    old_threshold: 2,
    dealers: &[1, 2, 3],
    new: &[1, 2, 3],
    new_threshold: 2,
};

const TWO_OF_THREE_TO_THREE_OF_FIVE: Scenario = Scenario {
    kind: ReshareKind::Reshare,
    old: &[1, 2, 3],
    old_threshold: 2,
    dealers: &[2, 3],
    new: &[1, 2, 3, 4, 5],
    new_threshold: 3,
};

const THREE_OF_FIVE_TO_TWO_OF_THREE: Scenario = Scenario {
    kind: ReshareKind::Reshare,
    old: &[1, 2, 3, 4, 5],
    old_threshold: 3,
    dealers: &[1, 3, 5],
    new: &[1, 2, 3],
    new_threshold: 2,
};

/// Node 2 is replaced by node 4.
const REPLACE_NODE: Scenario = Scenario {
    kind: ReshareKind::Reshare,
    old: &[1, 2, 3],
    old_threshold: 2,
    dealers: &[1, 2, 3],
    new: &[1, 3, 4],
    new_threshold: 2,
};

const DISJOINT: Scenario = Scenario {
    kind: ReshareKind::Reshare,
    old: &[1, 2, 3],
    old_threshold: 2,
    dealers: &[1, 2],
    new: &[4, 5, 6],
    new_threshold: 2,
};

macro_rules! per_scheme {
    ($($name:ident => $scenario:expr, $seed:expr;)*) => {
        mod secp256k1 {
            use super::*;
            $(#[test] fn $name() { $scenario.run(Scheme::FrostSecp256k1, $seed); })*
        }
        mod taproot {
            use super::*;
            $(#[test] fn $name() { $scenario.run(Scheme::FrostTaproot, $seed + 100); })*
        }
        mod ed25519 {
            use super::*;
            $(#[test] fn $name() { $scenario.run(Scheme::FrostEd25519, $seed + 200); })*
        }
    };
}

per_scheme! {
    refresh => REFRESH, 1;
    two_of_three_to_three_of_five => TWO_OF_THREE_TO_THREE_OF_FIVE, 2;
    three_of_five_to_two_of_three => THREE_OF_FIVE_TO_TWO_OF_THREE, 3;
    replace_node_2_by_node_4 => REPLACE_NODE, 4;
    disjoint_new_set => DISJOINT, 5;
}

/// Taproot: the stored shares are already tweaked (BIP-341, at DKG time);
/// the reshare must not tweak again. Over keys whose output key has either
/// y parity, the x-only key is unchanged and BIP-340 signatures from the new
/// shares verify under it.
#[test]
fn taproot_key_is_not_tweaked_again() {
    let mut parities = BTreeSet::new();
    for seed in 300..316 {
        let mut rng = rng(seed);
        let cluster = Cluster::new(4, &mut rng);
        let spec = REPLACE_NODE.spec();
        let old = dkg_among(
            &cluster,
            Scheme::FrostTaproot,
            &spec.old_participants,
            2,
            &mut rng,
        );
        let first = old.values().next().expect("output");
        let package =
            frost_secp256k1_tr::keys::PublicKeyPackage::deserialize(&first.public_key_package)
                .expect("package");
        let sec1 = package.verifying_key().serialize().expect("key");
        parities.insert(sec1[0]);

        let session = session(0x7f);
        let sessions = reshare_sessions(
            &cluster,
            Scheme::FrostTaproot,
            session,
            &spec,
            &first.public_key_package,
            &frost_shares(&old),
            &mut rng,
        );
        let outputs = drive(session, sessions, |_, _| {})
            .expect("honest reshare")
            .outputs;
        let new = as_dkg(&outputs);
        let after = new.values().next().expect("output");
        assert_eq!(after.public_key, first.public_key, "x-only key unchanged");
        let new_package =
            frost_secp256k1_tr::keys::PublicKeyPackage::deserialize(&after.public_key_package)
                .expect("package");
        assert_eq!(
            new_package.verifying_key(),
            package.verifying_key(),
            "the stored output key itself, parity included, is unchanged"
        );
        let signers = [n(3), n(4)];
        let signature = run_sign(
            &cluster,
            Scheme::FrostTaproot,
            &signers,
            &new,
            MESSAGE,
            &mut rng,
        )
        .expect("signature");
        verify_independently(Scheme::FrostTaproot, &first.public_key, MESSAGE, &signature);
        if parities.len() == 2 && seed >= 303 {
            break;
        }
    }
    assert_eq!(
        parities.len(),
        2,
        "both parities of the output key exercised"
    );
}

/// A two-of-three FROST key among nodes 1..=3 of a four-node cluster.
fn setup(scheme: Scheme, seed: u64) -> (Cluster, BTreeMap<NodeId, DkgOutput>, rand::rngs::StdRng) {
    let mut rng = rng(seed);
    let cluster = Cluster::new(4, &mut rng);
    let dkg = dkg_among(&cluster, scheme, &ids(3), 2, &mut rng);
    (cluster, dkg, rng)
}

/// A dealer equivocates on its round-1 hash (each copy correctly signed by
/// it): the echoes differ and every party stops before any subshare is used.
#[test]
fn equivocated_broadcasts_are_caught_by_the_echo() {
    for scheme in Scheme::FROST {
        let (cluster, dkg, mut rng) = setup(scheme, 400);
        let spec = TWO_OF_THREE_TO_THREE_OF_FIVE.spec();
        let spec = ReshareSpec {
            new_participants: ids(4),
            ..spec
        };
        let session = session(0x7e);
        let sessions = reshare_sessions(
            &cluster,
            scheme,
            session,
            &spec,
            &dkg[&n(1)].public_key_package,
            &frost_shares(&dkg),
            &mut rng,
        );
        let err = drive(session, sessions, |round, deliveries| {
            if round == 1 {
                let inbox = deliveries.inbound.get_mut(&n(4)).expect("node 4");
                for signed in inbox.iter_mut().filter(|s| s.message.from == n(2)) {
                    let mut message = signed.message.clone();
                    message.payload[0] ^= 1;
                    *signed = cluster.sign_as(n(2), message);
                }
            }
        })
        .err()
        .expect("refused");
        assert_eq!(
            err,
            (
                n(1),
                ProtocolError::InconsistentBroadcast {
                    parties: vec![n(4)]
                }
            )
        );
    }
}

/// A signed message of an earlier session, replayed into a new one.
#[test]
fn a_replayed_session_is_refused() {
    let scheme = Scheme::FrostEd25519;
    let (cluster, dkg, mut rng) = setup(scheme, 410);
    let spec = REFRESH.spec();
    let package = &dkg[&n(1)].public_key_package;
    let earlier = session(0x60);
    let mut replayed = Vec::new();
    let sessions = reshare_sessions(
        &cluster,
        scheme,
        earlier,
        &spec,
        package,
        &frost_shares(&dkg),
        &mut rng,
    );
    drive(earlier, sessions, |round, deliveries| {
        if round == 1 {
            replayed = deliveries.broadcasts.clone();
        }
    })
    .expect("earlier session");

    let later = session(0x61);
    let sessions = reshare_sessions(
        &cluster,
        scheme,
        later,
        &spec,
        package,
        &frost_shares(&dkg),
        &mut rng,
    );
    let err = drive(later, sessions, |round, deliveries| {
        if round == 1 {
            let inbox = deliveries.inbound.get_mut(&n(3)).expect("node 3");
            let old = replayed
                .iter()
                .find(|s| s.message.from == n(1))
                .expect("node 1's hash");
            for signed in inbox.iter_mut().filter(|s| s.message.from == n(1)) {
                *signed = old.clone();
            }
        }
    })
    .err()
    .expect("refused");
    assert_eq!(err, (n(3), ProtocolError::WrongSession { from: n(1) }));
}

/// Every message a dealer sends, by round: hash commitments, then the
/// vector with the echo and the sealed subshares, then the echo.
#[test]
fn rounds_carry_what_the_table_says() {
    let scheme = Scheme::FrostSecp256k1;
    let (cluster, dkg, mut rng) = setup(scheme, 420);
    let spec = ReshareSpec {
        new_participants: vec![n(1), n(3), n(4)],
        ..REPLACE_NODE.spec()
    };
    let session = session(0x7e);
    let sessions = reshare_sessions(
        &cluster,
        scheme,
        session,
        &spec,
        &dkg[&n(1)].public_key_package,
        &frost_shares(&dkg),
        &mut rng,
    );
    let run = drive(session, sessions, |_, _| {}).expect("honest");
    let shape = |round: usize| -> Vec<(u16, Recipient, usize)> {
        let mut all: Vec<Message> = run.rounds[round]
            .inbound
            .values()
            .flatten()
            .map(|s| s.message.clone())
            .collect();
        all.sort_by_key(|m| (m.from, format!("{:?}", m.to)));
        all.dedup_by_key(|m| (m.from, format!("{:?}", m.to)));
        all.iter()
            .map(|m| (m.from.get(), m.to, m.payload.len()))
            .collect()
    };
    // Round 1: only the dealers (1, 2, 3) broadcast a 32-byte hash.
    assert_eq!(
        shape(0),
        vec![
            (1, Recipient::Broadcast, 32),
            (2, Recipient::Broadcast, 32),
            (3, Recipient::Broadcast, 32)
        ]
    );
    // Round 2: everyone broadcasts an echo (dealers append 2 × 33-byte
    // points); dealers send sealed subshares to the other new participants.
    let round2 = shape(1);
    assert!(round2.contains(&(4, Recipient::Broadcast, 32)));
    assert!(round2.contains(&(2, Recipient::Broadcast, 32 + 66)));
    assert!(round2.contains(&(2, Recipient::Node(n(4)), 32 + 16 + 32)));
    assert!(!round2.contains(&(4, Recipient::Node(n(1)), 32 + 16 + 32)));
    // Round 3: everyone broadcasts a 32-byte echo; nothing after it.
    assert_eq!(
        shape(2),
        (1..=4)
            .map(|i| (i, Recipient::Broadcast, 32))
            .collect::<Vec<_>>()
    );
    assert!(run.rounds[3].inbound.values().all(Vec::is_empty));
}

#[test]
fn parameters_are_checked_by_the_engine() {
    let scheme = Scheme::FrostSecp256k1;
    let (_, dkg, _) = setup(scheme, 430);
    let package = dkg[&n(1)].public_key_package.clone();
    let share1 = engine::KeyShare::Frost(dkg[&n(1)].key_share.clone());
    let build = |spec: &ReshareSpec, me: u16, share: Option<&engine::KeyShare>| {
        engine::new_reshare(
            scheme,
            session(1),
            n(me),
            spec,
            &package,
            share,
            &mut rng(1),
        )
        .err()
    };
    let invalid = |e: Option<ProtocolError>, what: &str| match e {
        Some(ProtocolError::InvalidParameters(reason)) => {
            assert!(
                reason.contains(what),
                "{reason:?} does not mention {what:?}"
            )
        }
        other => panic!("expected invalid parameters ({what}), got {other:?}"),
    };

    // A refresh keeps the threshold and the set.
    let refresh = "a refresh cannot change the threshold or the participant set";
    let spec = ReshareSpec {
        new_threshold: 3,
        ..REFRESH.spec()
    };
    invalid(build(&spec, 1, Some(&share1)), refresh);
    let spec = ReshareSpec {
        new_participants: vec![n(1), n(2), n(4)],
        ..REFRESH.spec()
    };
    invalid(build(&spec, 1, Some(&share1)), refresh);

    // The old set must be the key's; dealers need their own share.
    let spec = ReshareSpec {
        old_participants: ids(4),
        ..REFRESH.spec()
    };
    invalid(build(&spec, 1, Some(&share1)), "not the holders");
    let spec = ReshareSpec {
        old_threshold: 3,
        ..REFRESH.spec()
    };
    invalid(build(&spec, 1, Some(&share1)), "threshold");
    invalid(build(&REFRESH.spec(), 1, None), "needs its share");
    invalid(
        build(&REFRESH.spec(), 2, Some(&share1)),
        "belongs to node-1",
    );
    let spec = ReshareSpec {
        new_participants: vec![n(1), n(1), n(2)],
        ..TWO_OF_THREE_TO_THREE_OF_FIVE.spec()
    };
    invalid(build(&spec, 1, Some(&share1)), "appears twice");
    let spec = ReshareSpec {
        new_threshold: 1,
        ..TWO_OF_THREE_TO_THREE_OF_FIVE.spec()
    };
    invalid(build(&spec, 1, Some(&share1)), "threshold 1");
    invalid(
        engine::new_reshare(
            scheme,
            session(1),
            n(1),
            &REFRESH.spec(),
            b"garbage",
            Some(&share1),
            &mut rng(2),
        )
        .err(),
        "corrupt public key package",
    );
    // A share of another scheme.
    let (_, ed, _) = setup(Scheme::FrostEd25519, 431);
    let ed1 = engine::KeyShare::Frost(ed[&n(1)].key_share.clone());
    invalid(build(&REFRESH.spec(), 1, Some(&ed1)), "frost-ed25519");

    // A FROST package is no ECDSA key (ECDSA: protocol/tests/ecdsa_reshare.rs).
    invalid(
        engine::new_reshare(
            Scheme::EcdsaSecp256k1,
            session(1),
            n(1),
            &REFRESH.spec(),
            &package,
            None,
            &mut rng(3),
        )
        .err(),
        "corrupt public key package",
    );
    invalid(
        engine::new_reshare(
            Scheme::EcdsaSecp256k1,
            session(1),
            n(1),
            &REFRESH.spec(),
            &package,
            Some(&share1),
            &mut rng(3),
        )
        .err(),
        "a frost-secp256k1 share cannot reshare",
    );
    assert_eq!(REPLACE_NODE.spec().parties(), ids(4));
    for scheme in Scheme::FROST {
        assert_eq!(engine::reshare_steps(scheme), 3);
    }
    assert_eq!(engine::reshare_steps(Scheme::EcdsaSecp256k1), 7);
}
