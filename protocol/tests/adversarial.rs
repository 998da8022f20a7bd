//! Adversarial tests: malformed input, misbehaving parties and a misbehaving
//! relay. Each asserts the exact typed error, that no signature or key
//! results, and the culprit where there is one.

mod common;

use std::collections::BTreeMap;

use common::*;
use sigil_protocol::envelope::{ContextKind, SecureSession, SessionContext, SignedMessage};
use sigil_protocol::frost::{self, DkgOutput, KeyShare, SignerProtocol, SigningAggregator};
use sigil_protocol::relay::{RelayError, RoundRelay};
use sigil_protocol::{Message, NodeId, Protocol, ProtocolError, Recipient, Scheme, Transition};

/// Replaces the first occurrence of `needle` in `hay` (which must exist).
fn replace(hay: &mut [u8], needle: &[u8], with: &[u8]) {
    assert_eq!(needle.len(), with.len());
    let at = hay
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present");
    hay[at..at + needle.len()].copy_from_slice(with);
}

/// A point encoding the scheme must refuse: x ≥ p for secp256k1, the
/// identity for Ed25519.
fn invalid_point(scheme: Scheme) -> Vec<u8> {
    match scheme {
        Scheme::FrostEd25519 => {
            let mut identity = vec![0u8; 32];
            identity[0] = 1;
            identity
        }
        _ => {
            let mut p = vec![0xffu8; 33];
            p[0] = 0x02;
            p
        }
    }
}

fn dkg_for(
    scheme: Scheme,
    threshold: u16,
    total: u16,
    seed: u64,
) -> (Cluster, BTreeMap<NodeId, DkgOutput>) {
    let mut rng = rng(seed);
    let cluster = Cluster::new(total, &mut rng);
    let dkg = run_dkg(&cluster, scheme, threshold, &mut rng);
    (cluster, dkg)
}

fn shares(dkg: &BTreeMap<NodeId, DkgOutput>) -> BTreeMap<NodeId, KeyShare> {
    dkg.iter().map(|(n, o)| (*n, o.key_share.clone())).collect()
}

/// Bare signers (no envelope) for `signers`, started; returns them and their round-1 messages.
fn started_signers(
    scheme: Scheme,
    signers: &[NodeId],
    shares: &BTreeMap<NodeId, KeyShare>,
    seed: u64,
) -> (BTreeMap<NodeId, SignerProtocol>, Vec<Message>) {
    let mut rng = rng(seed);
    let mut parties = BTreeMap::new();
    let mut round1 = Vec::new();
    for &me in signers {
        let mut signer = frost::new_signer(
            scheme,
            session(0x51),
            me,
            signers,
            &shares[&me],
            b"msg",
            &mut rng,
        )
        .expect("signer");
        round1.extend(signer.start().expect("start"));
        parties.insert(me, signer);
    }
    (parties, round1)
}

fn others(round1: &[Message], me: NodeId) -> Vec<Message> {
    round1.iter().filter(|m| m.from != me).cloned().collect()
}

fn expect_err<T>(result: Result<T, ProtocolError>) -> ProtocolError {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn identifier_zero_is_refused_everywhere() {
    assert!(matches!(
        NodeId::new(0),
        Err(ProtocolError::InvalidParameters(_))
    ));
    assert!(matches!(
        NodeId::from_wire(0),
        Err(ProtocolError::InvalidParameters(_))
    ));
    // A wire message naming node 0 does not even decode.
    let good = Message {
        session: session(1),
        round: 1,
        from: n(1),
        to: Recipient::Broadcast,
        payload: vec![],
    };
    let json = serde_json::to_string(&SignedMessage {
        message: good,
        signature: vec![],
    })
    .expect("json");
    let zeroed = json.replace("\"from\":1", "\"from\":0");
    assert_ne!(json, zeroed);
    assert!(serde_json::from_str::<SignedMessage>(&zeroed).is_err());
}

#[test]
fn duplicate_or_foreign_participants_are_refused() {
    let mut rng = rng(7);
    for scheme in Scheme::FROST {
        let err = expect_err(frost::new_dkg(
            scheme,
            session(1),
            n(1),
            &[n(1), n(2), n(2)],
            2,
            &mut rng,
        ));
        assert_eq!(
            err,
            ProtocolError::InvalidParameters("node-2 appears twice in the participant list".into())
        );
        let err = expect_err(frost::new_dkg(
            scheme,
            session(1),
            n(4),
            &[n(1), n(2), n(3)],
            2,
            &mut rng,
        ));
        assert_eq!(
            err,
            ProtocolError::InvalidParameters("node-4 is not in the participant list".into())
        );
        for threshold in [0, 1, 4] {
            let err = expect_err(frost::new_dkg(
                scheme,
                session(1),
                n(1),
                &ids(3),
                threshold,
                &mut rng,
            ));
            assert!(matches!(err, ProtocolError::InvalidParameters(_)), "{err}");
        }
    }
    let (_, dkg) = dkg_for(Scheme::FrostEd25519, 2, 3, 8);
    let shares = shares(&dkg);
    let err = expect_err(frost::new_signer(
        Scheme::FrostEd25519,
        session(2),
        n(1),
        &[n(1), n(2), n(1)],
        &shares[&n(1)],
        b"m",
        &mut rng,
    ));
    assert_eq!(
        err,
        ProtocolError::InvalidParameters("node-1 appears twice in the participant list".into())
    );
    // Below threshold, a non-holder, another node's share, another scheme's share.
    let cases: [(&[NodeId], NodeId, Scheme); 4] = [
        (&[n(1)], n(1), Scheme::FrostEd25519),
        (&[n(1), n(4)], n(1), Scheme::FrostEd25519),
        (&[n(1), n(2)], n(2), Scheme::FrostEd25519),
        (&[n(1), n(2)], n(1), Scheme::FrostSecp256k1),
    ];
    for (signers, me, scheme) in cases {
        let err = expect_err(frost::new_signer(
            scheme,
            session(2),
            me,
            signers,
            &shares[&n(1)],
            b"m",
            &mut rng,
        ));
        assert!(matches!(err, ProtocolError::InvalidParameters(_)), "{err}");
    }
    let pkp = &dkg[&n(1)].public_key_package;
    let err =
        SigningAggregator::new(Scheme::FrostEd25519, session(2), pkp, &[n(2), n(2)], b"m").err();
    assert!(matches!(err, Some(ProtocolError::InvalidParameters(_))));
    assert!(matches!(
        RoundRelay::new(session(2), &[n(1), n(1)]),
        Err(RelayError::InvalidParticipants(_))
    ));
}

#[test]
fn signer_refuses_bad_commitment_lists() {
    let (_, dkg) = dkg_for(Scheme::FrostSecp256k1, 3, 4, 9);
    let shares = shares(&dkg);
    let signers = ids(3);
    let me = n(1);
    let (_, round1) = started_signers(Scheme::FrostSecp256k1, &signers, &shares, 10);
    let own = round1.iter().find(|m| m.from == me).expect("own").clone();
    let from2 = round1.iter().find(|m| m.from == n(2)).expect("2").clone();

    let mut altered_own = own.clone();
    altered_own.payload = from2.payload.clone();
    let mut unknown = from2.clone();
    unknown.from = n(4);
    let mut wrong_session = from2.clone();
    wrong_session.session = session(0x99);
    let mut wrong_round = from2.clone();
    wrong_round.round = 2;
    let mut misaddressed = from2.clone();
    misaddressed.to = Recipient::Node(n(3));

    let cases: Vec<(Vec<Message>, ProtocolError)> = vec![
        // Omission.
        (
            vec![from2.clone()],
            ProtocolError::Missing {
                missing: vec![n(3)],
            },
        ),
        (
            vec![],
            ProtocolError::Missing {
                missing: vec![n(2), n(3)],
            },
        ),
        // Duplicate.
        (
            [others(&round1, me), vec![from2.clone()]].concat(),
            ProtocolError::Duplicate { from: n(2) },
        ),
        // This signer's own commitment, replayed or altered.
        (
            [others(&round1, me), vec![own]].concat(),
            ProtocolError::FromSelf { claimed_from: me },
        ),
        (
            [others(&round1, me), vec![altered_own]].concat(),
            ProtocolError::FromSelf { claimed_from: me },
        ),
        // Unknown sender (holds a share but is not a signer of this session).
        (
            [others(&round1, me), vec![unknown]].concat(),
            ProtocolError::UnknownSender { from: n(4) },
        ),
        (
            vec![wrong_session],
            ProtocolError::WrongSession { from: n(2) },
        ),
        (
            vec![wrong_round],
            ProtocolError::WrongRound {
                from: n(2),
                expected: 1,
                got: 2,
            },
        ),
        (
            vec![misaddressed],
            ProtocolError::Misaddressed { from: n(2) },
        ),
    ];
    for (i, (inbound, expected)) in cases.into_iter().enumerate() {
        // A fresh signer each time: any failure consumes the nonces.
        let (mut parties, _) = started_signers(Scheme::FrostSecp256k1, &signers, &shares, 10);
        let signer = parties.get_mut(&me).expect("signer");
        assert_eq!(expect_err(signer.step(inbound)), expected, "case {i}");
        // No share can be produced afterwards, even with a correct list.
        let err = expect_err(signer.step(others(&round1, me)));
        assert!(
            matches!(err, ProtocolError::OutOfOrder(_)),
            "case {i}: {err}"
        );
    }
}

#[test]
fn replayed_round_two_step_is_refused() {
    let (_, dkg) = dkg_for(Scheme::FrostTaproot, 2, 3, 11);
    let shares = shares(&dkg);
    let signers = [n(1), n(3)];
    let (mut parties, round1) = started_signers(Scheme::FrostTaproot, &signers, &shares, 12);
    let signer = parties.get_mut(&n(1)).expect("signer");
    let first = signer.step(others(&round1, n(1))).expect("share");
    assert!(matches!(first, Transition::Finished { ref messages, .. } if messages.len() == 1));
    let err = expect_err(signer.step(others(&round1, n(1))));
    assert_eq!(
        err,
        ProtocolError::OutOfOrder("signing already finished: nonces are gone".into())
    );
    assert!(matches!(
        expect_err(signer.start()),
        ProtocolError::OutOfOrder(_)
    ));
}

#[test]
fn invalid_points_in_commitments_are_blamed_on_their_sender() {
    for scheme in Scheme::FROST {
        let (_, dkg) = dkg_for(scheme, 2, 3, 13);
        let shares = shares(&dkg);
        let signers = ids(3);
        let (mut parties, mut round1) = started_signers(scheme, &signers, &shares, 14);
        // Corrupt node 2's hiding commitment.
        let m2 = round1.iter_mut().find(|m| m.from == n(2)).expect("2");
        let hiding = match scheme {
            Scheme::FrostSecp256k1 => {
                frost_secp256k1::round1::SigningCommitments::deserialize(&m2.payload)
                    .expect("commitments")
                    .hiding()
                    .serialize()
                    .expect("serialize")
            }
            Scheme::FrostTaproot => {
                frost_secp256k1_tr::round1::SigningCommitments::deserialize(&m2.payload)
                    .expect("commitments")
                    .hiding()
                    .serialize()
                    .expect("serialize")
            }
            _ => frost_ed25519::round1::SigningCommitments::deserialize(&m2.payload)
                .expect("commitments")
                .hiding()
                .serialize()
                .expect("serialize"),
        };
        replace(&mut m2.payload, &hiding, &invalid_point(scheme));
        let err = expect_err(
            parties
                .get_mut(&n(1))
                .expect("1")
                .step(others(&round1, n(1))),
        );
        assert!(
            matches!(err, ProtocolError::Malformed { from, .. } if from == n(2)),
            "{scheme}: {err}"
        );
        assert_eq!(err.culprits(), vec![n(2)]);
        // The coordinator refuses it too.
        let pkp = &dkg[&n(1)].public_key_package;
        let mut aggregator =
            SigningAggregator::new(scheme, session(0x51), pkp, &signers, b"msg").expect("agg");
        let err = expect_err(aggregator.add_commitments(round1));
        assert!(
            matches!(err, ProtocolError::Malformed { from, .. } if from == n(2)),
            "{scheme}: {err}"
        );
    }
}

#[test]
fn out_of_range_signature_share_is_malformed() {
    for scheme in Scheme::FROST {
        let (_, dkg) = dkg_for(scheme, 2, 3, 15);
        let shares = shares(&dkg);
        let signers = [n(2), n(3)];
        let (mut parties, round1) = started_signers(scheme, &signers, &shares, 16);
        let mut shares_out = Vec::new();
        for (me, signer) in parties.iter_mut() {
            let Transition::Finished { messages, .. } =
                signer.step(others(&round1, *me)).expect("share")
            else {
                panic!("finished");
            };
            shares_out.extend(messages);
        }
        // 0xff…ff is ≥ the group order of both curves.
        shares_out[1].payload = vec![0xff; 32];
        let pkp = &dkg[&n(1)].public_key_package;
        let mut aggregator =
            SigningAggregator::new(scheme, session(0x51), pkp, &signers, b"msg").expect("agg");
        aggregator.add_commitments(round1).expect("commitments");
        let err = expect_err(aggregator.aggregate(shares_out));
        assert!(
            matches!(err, ProtocolError::Malformed { from, .. } if from == n(3)),
            "{scheme}: {err}"
        );
    }
}

/// Runs bare DKG parties (no envelope) through round 1 and returns them
/// with their round-2 messages.
fn dkg_to_round2(
    scheme: Scheme,
    seed: u64,
) -> (BTreeMap<NodeId, frost::DkgProtocol>, Vec<Message>) {
    let mut rng = rng(seed);
    let nodes = ids(3);
    let mut parties: BTreeMap<NodeId, frost::DkgProtocol> = nodes
        .iter()
        .map(|&me| {
            (
                me,
                frost::new_dkg(scheme, session(0xd1), me, &nodes, 2, &mut rng).expect("dkg"),
            )
        })
        .collect();
    let round1: Vec<Message> = parties
        .values_mut()
        .flat_map(|p| p.start().expect("start"))
        .collect();
    let mut round2 = Vec::new();
    for (me, party) in parties.iter_mut() {
        let Transition::Continue(messages) = party.step(others(&round1, *me)).expect("round 1")
        else {
            panic!("continue");
        };
        round2.extend(messages);
    }
    (parties, round2)
}

fn inbound_for(messages: &[Message], me: NodeId) -> Vec<Message> {
    messages
        .iter()
        .filter(|m| m.from != me && (m.to == Recipient::Broadcast || m.to == Recipient::Node(me)))
        .cloned()
        .collect()
}

#[test]
fn invalid_dkg_packages_are_blamed_on_their_sender() {
    for scheme in Scheme::FROST {
        // Round 1: a commitment coefficient that is not a valid point.
        let mut rng = rng(17);
        let nodes = ids(3);
        let mut parties: Vec<frost::DkgProtocol> = nodes
            .iter()
            .map(|&me| frost::new_dkg(scheme, session(0xd1), me, &nodes, 2, &mut rng).expect("dkg"))
            .collect();
        let mut round1: Vec<Message> = parties
            .iter_mut()
            .flat_map(|p| p.start().expect("start"))
            .collect();
        let point = match scheme {
            Scheme::FrostSecp256k1 => {
                frost_secp256k1::keys::dkg::round1::Package::deserialize(&round1[1].payload)
                    .expect("package")
                    .commitment()
                    .serialize()
                    .expect("serialize")
            }
            Scheme::FrostTaproot => {
                frost_secp256k1_tr::keys::dkg::round1::Package::deserialize(&round1[1].payload)
                    .expect("package")
                    .commitment()
                    .serialize()
                    .expect("serialize")
            }
            _ => frost_ed25519::keys::dkg::round1::Package::deserialize(&round1[1].payload)
                .expect("package")
                .commitment()
                .serialize()
                .expect("serialize"),
        }
        .remove(1);
        replace(&mut round1[1].payload, &point, &invalid_point(scheme));
        let err = expect_err(parties[0].step(others(&round1, n(1))));
        assert!(
            matches!(err, ProtocolError::Malformed { from, .. } if from == n(2)),
            "{scheme}: {err}"
        );

        // Round 2: a secret share that is not a canonical scalar.
        let (mut parties, mut round2) = dkg_to_round2(scheme, 18);
        let m = round2
            .iter_mut()
            .find(|m| m.from == n(3) && m.to == Recipient::Node(n(1)))
            .expect("3→1");
        let len = m.payload.len();
        m.payload[len - 32..].copy_from_slice(&[0xff; 32]);
        let err = expect_err(
            parties
                .get_mut(&n(1))
                .expect("1")
                .step(inbound_for(&round2, n(1))),
        );
        assert!(
            matches!(err, ProtocolError::Malformed { from, .. } if from == n(3)),
            "{scheme}: {err}"
        );

        // Round 2: a valid scalar that is not on the sender's polynomial.
        let (mut parties, mut round2) = dkg_to_round2(scheme, 19);
        let m = round2
            .iter_mut()
            .find(|m| m.from == n(3) && m.to == Recipient::Node(n(1)))
            .expect("3→1");
        let len = m.payload.len();
        m.payload[len - 32..].copy_from_slice(&[0x01; 32]);
        let err = expect_err(
            parties
                .get_mut(&n(1))
                .expect("1")
                .step(inbound_for(&round2, n(1))),
        );
        assert!(
            matches!(err, ProtocolError::Misbehaviour { ref culprits, .. } if culprits == &[n(3)]),
            "{err}"
        );
        // The failed party is spent.
        let err = expect_err(
            parties
                .get_mut(&n(1))
                .expect("1")
                .step(inbound_for(&round2, n(1))),
        );
        assert!(matches!(err, ProtocolError::OutOfOrder(_)), "{err}");
    }
}

/// Tampers with the sealed DKG round-2 share from node 1 to node 2.
fn corrupt_share_1_to_2(cluster: &Cluster, resign: bool) -> (NodeId, ProtocolError) {
    tamper_share_1_to_2(cluster, resign, |m| {
        let last = m.payload.len() - 1;
        m.payload[last] ^= 1;
    })
}

/// Alters the sealed DKG round-2 share from node 1 to node 2 with `alter`,
/// optionally re-signing it as node 1.
fn tamper_share_1_to_2(
    cluster: &Cluster,
    resign: bool,
    alter: impl Fn(&mut Message),
) -> (NodeId, ProtocolError) {
    let mut rng = rng(20);
    let sessions = dkg_sessions(cluster, Scheme::FrostEd25519, session(0xd1), 2, &mut rng);
    let result = drive(session(0xd1), sessions, |round, deliveries| {
        if round != 2 {
            return;
        }
        let inbound = deliveries.inbound.get_mut(&n(2)).expect("2");
        let signed = inbound
            .iter_mut()
            .find(|s| s.message.from == n(1) && s.message.to == Recipient::Node(n(2)))
            .expect("1→2");
        alter(&mut signed.message);
        if resign {
            *signed = cluster.sign_as(n(1), signed.message.clone());
        }
    });
    match result {
        Ok(_) => panic!("DKG must fail"),
        Err(e) => e,
    }
}

#[test]
fn corrupted_sealed_dkg_share_blames_sender_if_signed_else_relay() {
    let mut rng = rng(21);
    let cluster = Cluster::new(3, &mut rng);

    // Validly signed by node 1 but undecryptable: node 1 sent garbage.
    let (party, err) = corrupt_share_1_to_2(&cluster, true);
    assert_eq!(
        (party, err.clone()),
        (n(2), ProtocolError::Undecryptable { from: n(1) })
    );
    assert_eq!(err.culprits(), vec![n(1)]);
    assert!(!err.implicates_relay());

    // Altered in transit and signed by nobody: the relay is at fault.
    let (party, err) = corrupt_share_1_to_2(&cluster, false);
    assert_eq!(
        (party, err.clone()),
        (
            n(2),
            ProtocolError::BadSenderSignature { claimed_from: n(1) }
        )
    );
    assert!(err.culprits().is_empty());
    assert!(err.implicates_relay());
}

#[test]
fn sealed_share_is_bound_to_its_header() {
    let mut rng = rng(26);
    let cluster = Cluster::new(3, &mut rng);
    // Even re-signed by its sender, a sealed share moved to another session
    // or round does not open: the header is HPKE associated data.
    let (party, err) = tamper_share_1_to_2(&cluster, true, |m| m.session = session(0xee));
    assert_eq!(
        (party, err),
        (n(2), ProtocolError::Undecryptable { from: n(1) })
    );
    let (party, err) = tamper_share_1_to_2(&cluster, true, |m| m.round = 1);
    assert_eq!(
        (party, err),
        (n(2), ProtocolError::Undecryptable { from: n(1) })
    );
}

/// Runs a FROST DKG among nodes 1-3 in which node 2 alone is told
/// `context` (the others the cluster's).
fn dkg_with_node_2_in(
    cluster: &Cluster,
    context: SessionContext,
) -> Result<(), (NodeId, ProtocolError)> {
    let mut rng = rng(27);
    let mut sessions = dkg_sessions(cluster, Scheme::FrostSecp256k1, session(0xc1), 2, &mut rng);
    let dkg = frost::new_dkg(
        Scheme::FrostSecp256k1,
        session(0xc1),
        n(2),
        &cluster.nodes,
        2,
        &mut rng,
    )
    .expect("dkg");
    sessions.insert(
        n(2),
        SecureSession::new(
            dkg,
            context,
            cluster.identities[&n(2)].clone(),
            cluster.verifier.clone(),
            cluster.encryption[&n(2)].clone(),
            cluster.encryption_keys(),
            &mut rng,
        ),
    );
    drive(session(0xc1), sessions, |_, _| {}).map(|_| ())
}

#[test]
fn a_message_from_a_session_with_another_context_is_refused_even_under_the_same_session_id() {
    let mut rng = rng(28);
    let cluster = Cluster::new(3, &mut rng);
    let nodes = cluster.nodes.clone();
    let told = |kind, scheme, key: &str, epoch, parties: &[NodeId]| {
        SessionContext::new(kind, scheme, key, epoch, parties)
    };
    // The cluster's context, with its participants in another order: the
    // same context (they are sorted), so the DKG completes.
    let reversed: Vec<NodeId> = nodes.iter().rev().copied().collect();
    let same = told(
        ContextKind::Sign,
        Scheme::FrostSecp256k1,
        "test-key",
        0,
        &reversed,
    );
    assert_eq!(same, cluster.context);
    dkg_with_node_2_in(&cluster, same).expect("same context");

    // Another key, epoch, kind, scheme or participant set: node 2's
    // messages fail the others' signature checks (and theirs its own), a
    // fault of the relay, the only party moving messages between sessions.
    let others = [
        told(
            ContextKind::Sign,
            Scheme::FrostSecp256k1,
            "other-key",
            0,
            &nodes,
        ),
        told(
            ContextKind::Sign,
            Scheme::FrostSecp256k1,
            "test-key",
            1,
            &nodes,
        ),
        told(
            ContextKind::Drill,
            Scheme::FrostSecp256k1,
            "test-key",
            0,
            &nodes,
        ),
        told(
            ContextKind::Sign,
            Scheme::FrostTaproot,
            "test-key",
            0,
            &nodes,
        ),
        told(
            ContextKind::Sign,
            Scheme::FrostSecp256k1,
            "test-key",
            0,
            &[n(1), n(2), n(3), n(4)],
        ),
    ];
    for (i, context) in others.into_iter().enumerate() {
        assert_ne!(context, cluster.context, "context {i}");
        let Err((party, err)) = dkg_with_node_2_in(&cluster, context) else {
            panic!("context {i}: the DKG must fail")
        };
        let ProtocolError::BadSenderSignature { claimed_from } = err else {
            panic!("context {i}: {err}")
        };
        assert!(
            (party == n(2)) != (claimed_from == n(2)),
            "context {i}: {party} refused {claimed_from}"
        );
        assert!(err.implicates_relay(), "context {i}");
        assert!(err.culprits().is_empty(), "context {i}");
    }
}

#[test]
fn sealed_share_delivered_to_the_wrong_node_is_refused() {
    let mut rng = rng(22);
    let cluster = Cluster::new(3, &mut rng);
    let sessions = dkg_sessions(&cluster, Scheme::FrostTaproot, session(0xd1), 2, &mut rng);
    let result = drive(session(0xd1), sessions, |round, deliveries| {
        if round == 2 {
            // The relay hands node 1 the share node 2 sealed for node 3.
            let stolen = deliveries.inbound[&n(3)]
                .iter()
                .find(|s| s.message.from == n(2) && s.message.to == Recipient::Node(n(3)))
                .expect("2→3")
                .clone();
            let inbound = deliveries.inbound.get_mut(&n(1)).expect("1");
            inbound.retain(|s| !(s.message.from == n(2) && s.message.to == Recipient::Node(n(1))));
            inbound.push(stolen);
        }
    });
    let Err((party, err)) = result else {
        panic!("DKG must fail")
    };
    assert_eq!(
        (party, err),
        (n(1), ProtocolError::Misaddressed { from: n(2) })
    );
}

#[test]
fn equivocated_dkg_round1_is_detected_by_echo() {
    for scheme in Scheme::FROST {
        let mut rng = rng(23);
        let cluster = Cluster::new(3, &mut rng);
        let sid = session(0xd1);
        // A second, validly signed round-1 package from node 1 (node 1
        // equivocates, or the relay replays one from an aborted run).
        let other = frost::new_dkg(scheme, sid, n(1), &cluster.nodes, 2, &mut rng).expect("dkg");
        let alternative = cluster
            .secure(n(1), other, &mut rng)
            .start()
            .expect("start")
            .remove(0);
        let sessions = dkg_sessions(&cluster, scheme, sid, 2, &mut rng);
        let mut outputs = 0;
        let result = drive(sid, sessions, |round, deliveries| {
            if round == 1 {
                let inbound = deliveries.inbound.get_mut(&n(3)).expect("3");
                let slot = inbound
                    .iter_mut()
                    .find(|s| s.message.from == n(1))
                    .expect("from 1");
                assert_ne!(slot.message.payload, alternative.message.payload);
                *slot = alternative.clone();
            }
            outputs = round;
        });
        let Err((party, err)) = result else {
            panic!("DKG must fail")
        };
        // Node 1 (stepped first) sees that node 3's view of round 1 differs.
        assert_eq!(party, n(1));
        assert_eq!(
            err,
            ProtocolError::InconsistentBroadcast {
                parties: vec![n(3)]
            }
        );
        assert!(err.implicates_relay());
        assert_eq!(outputs, 2, "failed in round 2, before any key share exists");
    }
}

#[test]
fn equivocation_seen_from_the_deceived_party() {
    // Drive node 3's view by hand: it sees both honest echoes differ from its own.
    let (mut parties, mut round2) = dkg_to_round2(Scheme::FrostSecp256k1, 24);
    for m in round2
        .iter_mut()
        .filter(|m| m.from == n(1) && m.to == Recipient::Broadcast)
    {
        m.payload[0] ^= 1;
    }
    for m in round2
        .iter_mut()
        .filter(|m| m.from == n(2) && m.to == Recipient::Broadcast)
    {
        m.payload[0] ^= 1;
    }
    let err = expect_err(
        parties
            .get_mut(&n(3))
            .expect("3")
            .step(inbound_for(&round2, n(3))),
    );
    assert_eq!(
        err,
        ProtocolError::InconsistentBroadcast {
            parties: vec![n(1), n(2)]
        }
    );
}

#[test]
fn bad_signature_share_names_the_signer() {
    for scheme in Scheme::FROST {
        let mut rng = rng(25);
        let cluster = Cluster::new(5, &mut rng);
        let dkg = run_dkg(&cluster, scheme, 3, &mut rng);
        let shares = shares(&dkg);
        let signers = [n(1), n(3), n(5)];
        let sid = session(0x51);
        let sessions = sign_sessions(
            &cluster, scheme, sid, &signers, &shares, b"pay bob", &mut rng,
        );
        let run = drive(sid, sessions, |round, deliveries| {
            if round == 2 {
                // Node 3's share is replaced by node 1's (a valid scalar, wrong for node 3).
                let share1 = deliveries.to_coordinator[0].message.payload.clone();
                deliveries.to_coordinator[1].message.payload = share1;
            }
        })
        .expect("signers finish");
        let pkp = &dkg[&n(1)].public_key_package;
        let err = expect_err(aggregate(
            scheme,
            sid,
            pkp,
            &signers,
            b"pay bob",
            &run.rounds,
        ));
        assert!(
            matches!(err, ProtocolError::Misbehaviour { ref culprits, .. } if culprits == &[n(3)]),
            "{err}"
        );
        assert_eq!(err.culprits(), vec![n(3)]);

        // Missing and duplicated shares are refused before aggregation.
        let mut aggregator =
            SigningAggregator::new(scheme, sid, pkp, &signers, b"pay bob").expect("agg");
        aggregator
            .add_commitments(
                run.rounds[0]
                    .broadcasts
                    .iter()
                    .map(|s| s.message.clone())
                    .collect(),
            )
            .expect("commitments");
        let mut shares_out: Vec<Message> = run.rounds[1]
            .to_coordinator
            .iter()
            .map(|s| s.message.clone())
            .collect();
        shares_out.pop();
        assert_eq!(
            expect_err(aggregator.aggregate(shares_out.clone())),
            ProtocolError::Missing {
                missing: vec![n(5)]
            }
        );
        shares_out.push(shares_out[0].clone());
        assert_eq!(
            expect_err(aggregator.aggregate(shares_out)),
            ProtocolError::Duplicate { from: n(1) }
        );
    }
}

#[test]
fn a_verifying_relay_names_the_node_that_returned_a_badly_signed_message() {
    let mut rng = rng(29);
    let cluster = Cluster::new(3, &mut rng);
    let sid = session(0xd7);
    let round1 = |cluster: &Cluster, rng: &mut rand::rngs::StdRng| {
        let mut out = BTreeMap::new();
        for (me, mut s) in dkg_sessions(cluster, Scheme::FrostEd25519, sid, 2, rng) {
            out.insert(me, s.start().expect("round 1"));
        }
        out
    };
    let verifying = |context| {
        RoundRelay::new(sid, &cluster.nodes)
            .expect("relay")
            .verifying(context, cluster.verifier.clone())
    };

    // Genuine output passes and is routed.
    let mut relay = verifying(cluster.context);
    for (node, messages) in round1(&cluster, &mut rng) {
        relay.collect(node, 1, messages).expect("genuine");
    }
    relay.deliveries().expect("routed");

    // A payload altered after signing: the node that returned it is named
    // (the relay got it from that node itself).
    let mut outputs = round1(&cluster, &mut rng);
    let altered = outputs.get_mut(&n(2)).expect("2");
    altered[0].message.payload.push(0);
    let to = altered[0].message.to;
    let mut relay = verifying(cluster.context);
    relay
        .collect(n(1), 1, outputs[&n(1)].clone())
        .expect("node 1");
    let err = relay
        .collect(n(2), 1, outputs[&n(2)].clone())
        .expect_err("altered");
    assert_eq!(err, RelayError::BadSignature { node: n(2), to });
    assert_eq!(err.culprits(), vec![n(2)]);

    // Signed for a session of another context: the same.
    let other = SessionContext::new(
        ContextKind::Dkg,
        Scheme::FrostEd25519,
        "other-key",
        0,
        &cluster.nodes,
    );
    let mut relay = verifying(other);
    let outputs = round1(&cluster, &mut rng);
    assert!(matches!(
        relay.collect(n(3), 1, outputs[&n(3)].clone()),
        Err(RelayError::BadSignature { node, .. }) if node == n(3)
    ));
}

#[test]
fn relay_validates_what_each_node_returns() {
    let sid = session(3);
    let signed = |from: u16, round: u16, to: Recipient| SignedMessage {
        message: Message {
            session: sid,
            round,
            from: n(from),
            to,
            payload: vec![from as u8],
        },
        signature: vec![],
    };
    let parties = ids(3);
    let fresh = || RoundRelay::new(sid, &parties).expect("relay");

    let mut relay = fresh();
    assert_eq!(
        relay.collect(n(9), 1, vec![]),
        Err(RelayError::UnknownNode { node: n(9) })
    );
    assert_eq!(
        relay.collect(n(1), 1, vec![signed(2, 1, Recipient::Broadcast)]),
        Err(RelayError::ForeignSender {
            node: n(1),
            claimed: n(2)
        })
    );
    let mut other_session = signed(1, 1, Recipient::Broadcast);
    other_session.message.session = session(4);
    assert_eq!(
        relay.collect(n(1), 1, vec![other_session]),
        Err(RelayError::WrongSession { node: n(1) })
    );
    assert_eq!(
        relay.collect(n(1), 1, vec![signed(1, 2, Recipient::Broadcast)]),
        Err(RelayError::WrongRound {
            node: n(1),
            expected: 1,
            got: 2
        })
    );
    for to in [n(1), n(7)] {
        let err = relay
            .collect(n(1), 1, vec![signed(1, 1, Recipient::Node(to))])
            .expect_err("error");
        assert_eq!(
            err,
            RelayError::BadRecipient {
                node: n(1),
                to: Recipient::Node(to)
            }
        );
        assert_eq!(err.culprits(), vec![n(1)]);
    }
    assert_eq!(
        relay.collect(
            n(1),
            1,
            vec![
                signed(1, 1, Recipient::Broadcast),
                signed(1, 1, Recipient::Broadcast)
            ]
        ),
        Err(RelayError::DuplicateMessage {
            node: n(1),
            to: Recipient::Broadcast
        })
    );

    // Honest routing.
    relay
        .collect(
            n(1),
            1,
            vec![
                signed(1, 1, Recipient::Broadcast),
                signed(1, 1, Recipient::Node(n(2))),
            ],
        )
        .expect("1");
    assert_eq!(
        relay.collect(n(1), 1, vec![]),
        Err(RelayError::AlreadyCollected { node: n(1) })
    );
    assert_eq!(
        relay.collect(n(2), 2, vec![]),
        Err(RelayError::RoundMismatch {
            node: n(2),
            expected: 1,
            got: 2
        })
    );
    relay
        .collect(n(2), 1, vec![signed(2, 1, Recipient::Coordinator)])
        .expect("2");
    let mut incomplete = fresh();
    incomplete.collect(n(1), 1, vec![]).expect("1");
    assert_eq!(
        incomplete.deliveries(),
        Err(RelayError::Missing {
            missing: vec![n(2), n(3)]
        })
    );
    relay
        .collect(n(3), 1, vec![signed(3, 1, Recipient::Node(n(1)))])
        .expect("3");
    let d = relay.deliveries().expect("deliveries");
    let froms = |node: u16| -> Vec<(NodeId, Recipient)> {
        d.inbound[&n(node)]
            .iter()
            .map(|s| (s.message.from, s.message.to))
            .collect()
    };
    assert_eq!(froms(1), vec![(n(3), Recipient::Node(n(1)))]);
    assert_eq!(
        froms(2),
        vec![(n(1), Recipient::Broadcast), (n(1), Recipient::Node(n(2)))]
    );
    assert_eq!(froms(3), vec![(n(1), Recipient::Broadcast)]);
    assert_eq!(d.broadcasts.len(), 1);
    assert_eq!(d.to_coordinator.len(), 1);
    assert_eq!(d.to_coordinator[0].message.from, n(2));
}
