//! Adversarial cluster tests over real mTLS, for FROST and threshold ECDSA
//! (DKLs23) keys: nodes that issue bad signature shares, and a compromised
//! coordinator that drives the nodes itself — replaying, omitting,
//! duplicating, altering, misrouting or equivocating messages, injecting a
//! message from outside the quorum and substituting identities. Each case
//! asserts the typed refusal and whom it implicates, that no signature or
//! share results, and that stored shares are unchanged.
//!
//! The rogue-coordinator scenarios are written once, for any scheme (FROST
//! signs in one relay round and runs its DKG in two; DKLs23 takes two and
//! four), and each test runs them against a single key: an ECDSA DKG takes
//! seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use sha3::{Digest, Keccak256};
use sigil_coordinator::store::{CoordinatorStore, SqliteCoordinatorStore};
use sigil_node::seal::{Binding, Kek};
use sigil_node::service::Faults;
use sigil_node::store::{ShareStatus, ShareStore, SqliteShareStore};
use sigil_proto::v1 as pb;
use sigil_proto::v1::audit_client::AuditClient;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::recipient::To;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::sigil_cli::local::NodeCustomizer;
use sigil_testkit::{RogueCoordinator, TestCluster, session_id};
use tonic::Code;

/// One round's messages, by the node that produced them.
type Outputs = BTreeMap<u16, Vec<pb::ProtocolMessage>>;

async fn create_key(tc: &TestCluster, scheme: pb::Scheme, threshold: u32) -> Result<pb::KeyInfo> {
    KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: scheme as i32,
            threshold,
            ..Default::default()
        })
        .await?
        .into_inner()
        .key
        .context("no key")
}

/// Every node's stored share rows (sealed), to check nothing changed.
async fn stored_shares(tc: &TestCluster) -> Result<BTreeMap<u16, Vec<String>>> {
    let mut out = BTreeMap::new();
    for n in &tc.cluster.nodes {
        let store =
            SqliteShareStore::open(&tc.data_dir().join(format!("node-{}/node.db", n.id))).await?;
        let rows = store.list().await?;
        out.insert(
            n.id,
            rows.iter()
                .map(|r| format!("{}:{}:{}", r.key_id, r.epoch, hex::encode(&r.sealed_share)))
                .collect(),
        );
    }
    Ok(out)
}

/// Makes nodes `faulty` alter every signature share (ECDSA: final values)
/// they send, and sign it, so that it is attributable to them.
fn faulty_nodes(faulty: &'static [u16]) -> NodeCustomizer {
    Arc::new(move |id, server| {
        if faulty.contains(&id) {
            server.with_faults(Faults {
                corrupt_signature_share: true,
                ..Faults::default()
            })
        } else {
            server
        }
    })
}

fn is_ecdsa(key: &pb::KeyInfo) -> bool {
    key.scheme == pb::Scheme::EcdsaSecp256k1 as i32
}

/// Relay rounds of a signing session (docs/protocols.md): FROST signers
/// send commitments, then shares; DKLs23 signers two rounds of direct
/// messages, then their final values.
fn sign_rounds(key: &pb::KeyInfo) -> u32 {
    if is_ecdsa(key) { 2 } else { 1 }
}

/// Relay rounds of a DKG: two for FROST, four for DKLs23.
fn dkg_rounds(scheme: pb::Scheme) -> u32 {
    match scheme {
        pb::Scheme::EcdsaSecp256k1 => 4,
        _ => 2,
    }
}

fn destination(m: &pb::ProtocolMessage) -> Option<&To> {
    m.recipient.as_ref().and_then(|r| r.to.as_ref())
}

/// What an honest relay delivers to node `to` from one round's outputs:
/// the other nodes' broadcasts, and their direct messages addressed to `to`.
fn inbound_for(outputs: &Outputs, to: u16) -> Vec<pb::ProtocolMessage> {
    outputs
        .iter()
        .filter(|(from, _)| **from != to)
        .flat_map(|(_, ms)| ms.iter())
        .filter(|m| match destination(m) {
            Some(To::Broadcast(_)) => true,
            Some(To::Node(n)) => *n == u32::from(to),
            _ => false,
        })
        .cloned()
        .collect()
}

/// Asserts a node's refusal of a protocol step: `FAILED_PRECONDITION` with a
/// message containing `expect`, the relay (the coordinator) suspected or
/// not, and no node blamed — every case here is the coordinator's doing.
#[track_caller]
fn assert_refused(what: &str, status: &tonic::Status, expect: &str, relay_suspected: bool) {
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{what}: {status:?}"
    );
    assert!(
        status.message().contains(expect),
        "{what}: expected {expect:?} in {:?}",
        status.message()
    );
    assert_eq!(
        status.metadata().get("sigil-relay-suspected").is_some(),
        relay_suspected,
        "{what}: {status:?}"
    );
    assert!(
        status.metadata().get("sigil-culprits").is_none(),
        "{what}: a node was blamed for the relay's doing: {status:?}"
    );
}

#[tokio::test]
async fn bad_signature_share_is_named_recorded_and_signing_retries_without_it() -> Result<()> {
    let tc = TestCluster::start_with(3, Some(faulty_nodes(&[2]))).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    let mut signing = SigningClient::new(tc.coordinator_as("signer")?);
    // Quorums rotate, so some of these include node 2 first.
    for i in 0..4 {
        let msg = format!("payment {i}").into_bytes();
        let sig = signing
            .sign(
                tc.intended(pb::SignRequest {
                    key_id: key.key_id.clone(),
                    message: msg.clone(),
                    idempotency_key: format!("bad-{i}"),
                    ..Default::default()
                })
                .await?,
            )
            .await?
            .into_inner();
        assert!(
            !sig.signers.contains(&2),
            "the faulty node's share was used: {:?}",
            sig.signers
        );
        sigil_protocol::frost::verify(
            sigil_protocol::Scheme::FrostSecp256k1,
            &key.public_key,
            &msg,
            &sig.signature,
        )?;
    }
    let dir = tc.stop().await;
    // Node 2 was named and recorded; no one else was.
    let store =
        SqliteCoordinatorStore::open(&dir.path().join("coordinator/coordinator.db")).await?;
    let records = store.list_misbehaviour().await?;
    assert!(!records.is_empty(), "misbehaviour not recorded");
    assert!(
        records
            .iter()
            .all(|m| m.node_id == 2 && m.key_id == key.key_id),
        "{records:?}"
    );
    Ok(())
}

#[tokio::test]
async fn signing_fails_naming_the_culprit_when_no_honest_quorum_remains() -> Result<()> {
    // Three faulty signers, not two: the fault flips the same bit of every
    // share, so two corrupted shares cancel out in the sum half of the time
    // (and make a valid signature); three never do.
    let tc = TestCluster::start_with(3, Some(faulty_nodes(&[1, 2, 3]))).await?;
    let key = create_key(&tc, pb::Scheme::FrostEd25519, 3).await?;
    let err = SigningClient::new(tc.coordinator_as("signer")?)
        .sign(
            tc.intended(pb::SignRequest {
                key_id: key.key_id,
                message: b"m".to_vec(),
                idempotency_key: "x".into(),
                ..Default::default()
            })
            .await?,
        )
        .await
        .expect_err("signed with bad shares");
    // Every share is bad: all are named, and no honest quorum remains.
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    assert_eq!(
        err.metadata()
            .get("sigil-culprits")
            .and_then(|v| v.to_str().ok()),
        Some("1,2,3"),
        "{err:?}"
    );
    assert!(
        err.message().contains("no honest quorum"),
        "{}",
        err.message()
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ecdsa_corrupted_final_values_abort_signing_without_a_signature() -> Result<()> {
    // Every quorum of this 2-of-2 key includes the faulty node 2.
    let tc = TestCluster::start_with(2, Some(faulty_nodes(&[2]))).await?;
    let key = create_key(&tc, pb::Scheme::EcdsaSecp256k1, 2).await?;
    let before = stored_shares(&tc).await?;
    let mut signing = SigningClient::new(tc.coordinator_as("signer")?);
    let request = tc
        .intended(pb::SignRequest {
            key_id: key.key_id.clone(),
            message: b"withdraw everything".to_vec(),
            idempotency_key: "corrupt-final-values".into(),
            encoding: pb::MessageEncoding::Keccak256 as i32,
            ..Default::default()
        })
        .await?;
    // The second time, the same request: no signature was stored to replay.
    for attempt in 1..=2 {
        let err = signing
            .sign(request.clone())
            .await
            .expect_err("a signature was returned despite a corrupted share");
        assert_eq!(err.code(), Code::Aborted, "attempt {attempt}: {err:?}");
        // The coordinator verifies the aggregate before returning it; DKLs23
        // cannot tell whose u or w values are wrong, so nobody is named.
        assert!(
            err.message()
                .contains("aggregated signature does not verify"),
            "attempt {attempt}: {}",
            err.message()
        );
        assert!(
            err.metadata().get("sigil-culprits").is_none(),
            "attempt {attempt}: {err:?}"
        );
    }
    assert_eq!(stored_shares(&tc).await?, before, "stored shares changed");
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ecdsa_faulty_signer_is_avoided_by_another_quorum_and_nobody_is_excluded() -> Result<()> {
    // 2-of-3: DKLs23 cannot name the signer whose final values are bad, but
    // a quorum without it signs. Nobody is excluded on inference (a node
    // common to the failed quorums may be an honest one a cheater steered
    // the blame onto): the fault is recorded as unattributed.
    let tc = TestCluster::start_with(3, Some(faulty_nodes(&[2]))).await?;
    let key = create_key(&tc, pb::Scheme::EcdsaSecp256k1, 2).await?;
    let mut signing = SigningClient::new(tc.coordinator_as("signer")?);
    let mut admin = KeyAdminClient::new(tc.coordinator_as("operator")?);
    for i in 0..3 {
        let resp = signing
            .sign(
                tc.intended(pb::SignRequest {
                    key_id: key.key_id.clone(),
                    message: format!("payout {i}").into_bytes(),
                    idempotency_key: format!("faulty-{i}"),
                    encoding: pb::MessageEncoding::Keccak256 as i32,
                    ..Default::default()
                })
                .await?,
            )
            .await?
            .into_inner();
        assert!(
            !resp.signers.contains(&2),
            "request {i} signed with the faulty node: {:?}",
            resp.signers
        );
    }
    let exclusions = admin
        .list_exclusions(pb::ListExclusionsRequest {
            key_id: key.key_id.clone(),
        })
        .await?
        .into_inner()
        .exclusions;
    assert!(exclusions.is_empty(), "{exclusions:?}");
    // Quorums rotate, so at least one request tried node 2 first.
    let faults = AuditClient::new(tc.coordinator_as("auditor")?)
        .query_records(pb::QueryRecordsRequest {
            key_id: key.key_id.clone(),
            action: "unattributed_fault".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .records;
    assert!(!faults.is_empty(), "no unattributed fault recorded");
    for fault in &faults {
        assert_eq!(fault.outcome, "error:unattributed", "{fault:?}");
        assert!(fault.culprits.is_empty(), "{fault:?}");
        assert!(fault.quorum.contains(&2), "{fault:?}");
        assert!(fault.detail.contains("nobody excluded"), "{fault:?}");
    }
    tc.shutdown().await;
    Ok(())
}

/// Starts a signing session on `signers` as a rogue coordinator; returns each node's round-1 messages.
async fn start_signing(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
    signers: &[u16],
    session: &[u8],
) -> Result<Outputs> {
    let identities = rogue.identities(signers).await?;
    let start = sign_start(rogue, key, session, identities).await?;
    let mut out = BTreeMap::new();
    for id in signers {
        let resp = rogue
            .node(*id)?
            .start_session(start.clone())
            .await?
            .into_inner();
        out.insert(*id, resp.messages);
    }
    Ok(out)
}

/// The start of a signing session as an honest coordinator would send it
/// for a genuine intent of the payment service (so that every refusal below
/// is about what the rogue coordinator does with it): the intent, and spend
/// receipts from the participants that give one.
async fn sign_start(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
    session: &[u8],
    participants: Vec<pb::NodeIdentity>,
) -> Result<pb::StartSessionRequest> {
    // ECDSA signs a 32-byte digest: the nodes hash the message themselves.
    let encoding = if is_ecdsa(key) {
        pb::MessageEncoding::Keccak256
    } else {
        pb::MessageEncoding::Raw
    };
    let message = b"drain the treasury".to_vec();
    let ids: Vec<u16> = participants
        .iter()
        .filter_map(|p| u16::try_from(p.node_id).ok())
        .collect();
    let (intent, receipts) = rogue.genuine_intent(key, &message, encoding, &ids).await?;
    Ok(pb::StartSessionRequest {
        session_id: session.to_vec(),
        request_id: "rogue".into(),
        participants,
        deadline_unix_ms: 0,
        kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
            key_id: key.key_id.clone(),
            epoch: 0,
            message,
            derivation_path: String::new(),
            encoding: encoding as i32,
            intent: Some(intent),
            receipts,
            epoch_test: false,
            part: 0,
        })),
    })
}

async fn step(
    rogue: &RogueCoordinator,
    node: u16,
    session: &[u8],
    round: u32,
    messages: Vec<pb::ProtocolMessage>,
) -> Result<pb::StepResponse, tonic::Status> {
    let mut client = rogue
        .node(node)
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    client
        .step(pb::StepRequest {
            session_id: session.to_vec(),
            round,
            messages,
            receipts: Vec::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Relays one round honestly: steps each of `nodes` with what `outputs` holds for it.
async fn step_all(
    rogue: &RogueCoordinator,
    nodes: &[u16],
    session: &[u8],
    round: u32,
    outputs: &Outputs,
) -> Result<Outputs> {
    let mut next = Outputs::new();
    for id in nodes {
        let resp = step(rogue, *id, session, round, inbound_for(outputs, *id))
            .await
            .with_context(|| format!("node {id}, round {round}"))?;
        next.insert(*id, resp.messages);
    }
    Ok(next)
}

/// Starts a signing session on `signers` and relays it honestly through
/// the rounds before `round`. Returns every round's outputs: `[0]` from
/// the start, `[r]` from step `r`; the last is what round `round` delivers.
async fn signing_until(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
    signers: &[u16],
    session: &[u8],
    round: u32,
) -> Result<Vec<Outputs>> {
    let mut rounds = vec![start_signing(rogue, key, signers, session).await?];
    for r in 1..round {
        let previous = rounds.last().context("started")?;
        let next = step_all(rogue, signers, session, r, previous).await?;
        rounds.push(next);
    }
    Ok(rounds)
}

/// Steps `node` in `session` with `round`'s genuine messages and expects the
/// session to be gone (with any secret state it held).
async fn assert_session_gone(
    rogue: &RogueCoordinator,
    node: u16,
    session: &[u8],
    round: u32,
    genuine: Vec<pb::ProtocolMessage>,
    what: &str,
) {
    let err = step(rogue, node, session, round, genuine)
        .await
        .expect_err(&format!("{what}: the session survived"));
    assert_eq!(err.code(), Code::NotFound, "{what}: {err:?}");
    assert!(
        err.message().contains("unknown or finished session"),
        "{what}: {}",
        err.message()
    );
}

/// Control for the refusals below: relayed honestly by the rogue, a signing
/// session ends with one final message from each signer to the coordinator.
async fn honest_signing_completes(rogue: &RogueCoordinator, key: &pb::KeyInfo) -> Result<()> {
    let signers = [1u16, 2];
    let rounds = signing_until(rogue, key, &signers, &session_id(), sign_rounds(key) + 1).await?;
    let finals = rounds.last().context("no rounds")?;
    for id in signers {
        let messages = &finals[&id];
        assert_eq!(messages.len(), 1, "node {id}: one final message");
        assert!(
            matches!(destination(&messages[0]), Some(To::Coordinator(_))),
            "node {id}: {:?}",
            destination(&messages[0])
        );
    }
    Ok(())
}

/// A step request delivered twice, and a used session id started again.
async fn replayed_rounds_and_reused_sessions_are_refused(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
) -> Result<()> {
    let signers = [1u16, 2];
    let last = sign_rounds(key);

    // The last round, honestly once: node 1 issues its share for the coordinator.
    let session = session_id();
    let rounds = signing_until(rogue, key, &signers, &session, last).await?;
    let genuine = inbound_for(rounds.last().context("started")?, 1);
    let first = step(rogue, 1, &session, last, genuine.clone()).await?;
    assert_eq!(first.messages.len(), 1, "one share for the coordinator");
    assert!(matches!(
        destination(&first.messages[0]),
        Some(To::Coordinator(_))
    ));
    // The same request again: the session and its nonces are gone.
    assert_session_gone(rogue, 1, &session, last, genuine, "replayed last round").await;
    // And the session id cannot be reused for a new session.
    let identities = rogue.identities(&signers).await?;
    let err = rogue
        .node(1)?
        .start_session(sign_start(rogue, key, &session, identities).await?)
        .await
        .expect_err("session reused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("already used"), "{}", err.message());

    // An earlier round replayed (DKLs23 has two): the session expects the
    // next round by then, refuses the request, and is dropped with its secrets.
    for round in 1..last {
        let what = format!("replayed round {round}");
        let session = session_id();
        let rounds = signing_until(rogue, key, &signers, &session, round).await?;
        let current = rounds.last().context("started")?;
        let first = step(rogue, 1, &session, round, inbound_for(current, 1)).await?;
        assert!(!first.messages.is_empty(), "{what}: honest step");
        let err = step(rogue, 1, &session, round, inbound_for(current, 1))
            .await
            .expect_err(&what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            err.message().contains(&format!(
                "round {round} delivered, round {} expected",
                round + 1
            )),
            "{what}: {}",
            err.message()
        );
        // Node 2 goes on honestly, but node 1's session is gone.
        let second = step(rogue, 2, &session, round, inbound_for(current, 2)).await?;
        let next = Outputs::from([(1, first.messages), (2, second.messages)]);
        assert_session_gone(rogue, 1, &session, round + 1, inbound_for(&next, 1), &what).await;
    }
    Ok(())
}

/// A rogue coordinator's change to node 1's inbound messages in one round of a signing session.
struct Tamper {
    name: &'static str,
    /// The first round the change applies to.
    from_round: u32,
    /// Node 1's inbound, from every round's outputs so far (the last is this round's).
    alter: fn(&[Outputs]) -> Vec<pb::ProtocolMessage>,
    expect: &'static str,
    relay_suspected: bool,
}

/// What an honest relay delivers to node 1 in the current round.
fn honest_for_node_1(rounds: &[Outputs]) -> Vec<pb::ProtocolMessage> {
    rounds.last().map(|o| inbound_for(o, 1)).unwrap_or_default()
}

fn tampers(key: &pb::KeyInfo) -> [Tamper; 5] {
    let own_replayed = if is_ecdsa(key) {
        // DKLs23 signing messages are direct: node 1's own went to node 2.
        "message from node-1 is not addressed to this party"
    } else {
        "a delivered message claims to come from this party (node-1) itself"
    };
    [
        Tamper {
            name: "omitted",
            from_round: 1,
            alter: |_| Vec::new(),
            expect: "missing messages from [NodeId(2)]",
            relay_suspected: false,
        },
        Tamper {
            name: "duplicated",
            from_round: 1,
            alter: |r| [honest_for_node_1(r), honest_for_node_1(r)].concat(),
            expect: "duplicate message from node-2",
            relay_suspected: true,
        },
        Tamper {
            name: "own message replayed",
            from_round: 1,
            alter: |r| {
                let own = r.last().and_then(|o| o.get(&1)).cloned();
                [honest_for_node_1(r), own.unwrap_or_default()].concat()
            },
            expect: own_replayed,
            relay_suspected: true,
        },
        Tamper {
            name: "altered",
            from_round: 1,
            alter: |r| {
                let mut m = honest_for_node_1(r);
                if let Some(b) = m.first_mut().and_then(|m| m.payload.last_mut()) {
                    *b ^= 1;
                }
                m
            },
            expect: "message claiming to be from node-2 has an invalid sender signature",
            relay_suspected: true,
        },
        Tamper {
            name: "previous round's message replayed",
            from_round: 2,
            alter: |r| {
                r.len()
                    .checked_sub(2)
                    .map(|previous| inbound_for(&r[previous], 1))
                    .unwrap_or_default()
            },
            expect: "message from node-2 is for round 1, expected round 2",
            relay_suspected: true,
        },
    ]
}

/// Node 1's inbound omitted, duplicated, mixed with its own messages,
/// altered in transit or replayed from the previous round, in every round.
async fn tampered_inbound_is_refused(rogue: &RogueCoordinator, key: &pb::KeyInfo) -> Result<()> {
    let signers = [1u16, 2];
    for round in 1..=sign_rounds(key) {
        for tamper in tampers(key).into_iter().filter(|t| round >= t.from_round) {
            let what = format!("round {round}, {}", tamper.name);
            let session = session_id();
            let rounds = signing_until(rogue, key, &signers, &session, round).await?;
            let err = step(rogue, 1, &session, round, (tamper.alter)(&rounds))
                .await
                .expect_err(&what);
            assert_refused(&what, &err, tamper.expect, tamper.relay_suspected);
            // No share or next-round message was issued, and the session is
            // gone: even the genuine messages find nothing.
            let genuine = honest_for_node_1(&rounds);
            assert_session_gone(rogue, 1, &session, round, genuine, &what).await;
        }
    }
    Ok(())
}

/// Genuine messages of session A delivered in session B, as they are or
/// relabelled as B's.
async fn messages_moved_between_sessions_are_refused(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
) -> Result<()> {
    let signers = [1u16, 2];
    let (a, b) = (session_id(), session_id());
    let round1_a = start_signing(rogue, key, &signers, &a).await?;
    let round1_b = start_signing(rogue, key, &signers, &b).await?;

    let err = step(rogue, 1, &b, 1, inbound_for(&round1_a, 1))
        .await
        .expect_err("session A's messages accepted in session B");
    assert_refused(
        "moved",
        &err,
        "message from node-2 belongs to another session",
        true,
    );
    let mut relabelled = inbound_for(&round1_a, 2);
    for m in &mut relabelled {
        m.session_id = b.clone();
    }
    let err = step(rogue, 2, &b, 1, relabelled)
        .await
        .expect_err("relabelled messages accepted");
    assert_refused(
        "relabelled",
        &err,
        "message claiming to be from node-1 has an invalid sender signature",
        true,
    );
    for id in signers {
        let what = format!("session B on node {id}");
        assert_session_gone(rogue, id, &b, 1, inbound_for(&round1_b, id), &what).await;
    }
    // Session A is unaffected: its own messages still go through.
    for id in signers {
        let resp = step(rogue, id, &a, 1, inbound_for(&round1_a, id)).await?;
        assert!(!resp.messages.is_empty(), "session A on node {id}");
    }
    Ok(())
}

/// Node 3 holds a share but is not in the quorum {1, 2}. Started by the
/// rogue on the same session id with the quorum {1, 3}, it signs genuine
/// messages for this session and round; node 1 is shown them alongside
/// node 2's, or instead.
async fn messages_from_outside_the_quorum_are_refused(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
) -> Result<()> {
    for (name, keep_node_2) in [("added", true), ("substituted", false)] {
        let session = session_id();
        let round1 = start_signing(rogue, key, &[1, 2], &session).await?;
        let identities = rogue.identities(&[1, 3]).await?;
        let outsider = rogue
            .node(3)?
            .start_session(sign_start(rogue, key, &session, identities).await?)
            .await?
            .into_inner()
            .messages;
        let from_3 = inbound_for(&Outputs::from([(3, outsider)]), 1);
        assert!(!from_3.is_empty(), "{name}: node 3 sent node 1 nothing");
        let mut inbound = if keep_node_2 {
            inbound_for(&round1, 1)
        } else {
            Vec::new()
        };
        inbound.extend(from_3);
        let err = step(rogue, 1, &session, 1, inbound).await.expect_err(name);
        // Node 1 knows its session's participants: node 3 is not one.
        assert_refused(
            name,
            &err,
            "message from node-3, which is not a participant of this session",
            true,
        );
        let genuine = inbound_for(&round1, 1);
        assert_session_gone(rogue, 1, &session, 1, genuine, name).await;
    }
    Ok(())
}

/// A quorum below the threshold, and a key the node does not hold.
async fn signing_requests_outside_the_key_are_refused(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
) -> Result<()> {
    let identities = rogue.identities(&[1]).await?;
    let err = rogue
        .node(1)?
        .start_session(sign_start(rogue, key, &session_id(), identities).await?)
        .await
        .expect_err("1 signer");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("1 signers for a 2-of-3 key"),
        "{}",
        err.message()
    );
    let mut unknown = key.clone();
    unknown.key_id = "key-unknown".into();
    let identities = rogue.identities(&[1, 2]).await?;
    let err = rogue
        .node(1)?
        .start_session(sign_start(rogue, &unknown, &session_id(), identities).await?)
        .await
        .expect_err("unknown key");
    assert_eq!(err.code(), Code::NotFound);
    Ok(())
}

/// Node 2's identity with an encryption key the coordinator controls, and
/// node 3's certificate presented as node 2.
async fn substituted_identities_are_refused_for(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
) -> Result<()> {
    let genuine = rogue.identities(&[1, 2]).await?;
    let mut swapped = genuine.clone();
    swapped[1].encryption_key = vec![9; 32];
    let err = rogue
        .node(1)?
        .start_session(sign_start(rogue, key, &session_id(), swapped).await?)
        .await
        .expect_err("swapped key");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("not bound to its identity"),
        "{}",
        err.message()
    );

    let mut impostor = genuine.clone();
    impostor[1].certificate_chain = rogue.identities(&[3]).await?[0].certificate_chain.clone();
    let err = rogue
        .node(1)?
        .start_session(sign_start(rogue, key, &session_id(), impostor).await?)
        .await
        .expect_err("impostor");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("names node/3, expected node/2"),
        "{}",
        err.message()
    );
    Ok(())
}

#[tokio::test]
async fn replayed_round_two_and_reused_session_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    replayed_rounds_and_reused_sessions_are_refused(&rogue, &key).await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn commitment_lists_that_omit_duplicate_or_alter_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostTaproot, 2).await?;
    let before = stored_shares(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    tampered_inbound_is_refused(&rogue, &key).await?;
    assert_eq!(stored_shares(&tc).await?, before, "stored shares changed");
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn commitments_moved_between_sessions_or_from_outside_the_quorum_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    let before = stored_shares(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    messages_moved_between_sessions_are_refused(&rogue, &key).await?;
    messages_from_outside_the_quorum_are_refused(&rogue, &key).await?;
    assert_eq!(stored_shares(&tc).await?, before, "stored shares changed");
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn signing_requests_outside_the_key_are_refused_by_the_node() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostEd25519, 2).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    signing_requests_outside_the_key_are_refused(&rogue, &key).await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn substituted_identities_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    substituted_identities_are_refused_for(&rogue, &key).await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ecdsa_signing_sessions_resist_a_rogue_coordinator() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::EcdsaSecp256k1, 2).await?;
    let before = stored_shares(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;

    honest_signing_completes(&rogue, &key).await?;
    replayed_rounds_and_reused_sessions_are_refused(&rogue, &key).await?;
    messages_moved_between_sessions_are_refused(&rogue, &key).await?;
    messages_from_outside_the_quorum_are_refused(&rogue, &key).await?;
    tampered_inbound_is_refused(&rogue, &key).await?;
    signing_requests_outside_the_key_are_refused(&rogue, &key).await?;
    substituted_identities_are_refused_for(&rogue, &key).await?;

    assert_eq!(stored_shares(&tc).await?, before, "stored shares changed");
    // The key is intact: the real coordinator still signs with it.
    let message = b"after the attack".to_vec();
    let sig = SigningClient::new(tc.coordinator_as("signer")?)
        .sign(
            tc.intended(pb::SignRequest {
                key_id: key.key_id.clone(),
                message: message.clone(),
                idempotency_key: "after".into(),
                encoding: pb::MessageEncoding::Keccak256 as i32,
                ..Default::default()
            })
            .await?,
        )
        .await?
        .into_inner();
    let digest: [u8; 32] = Keccak256::digest(&message).into();
    sigil_protocol::ecdsa::verify(&key.public_key, &digest, &sig.signature)?;
    tc.shutdown().await;
    Ok(())
}

/// What a rogue DKG among nodes 1-3 came to.
#[derive(Debug)]
struct DkgRun {
    key_id: String,
    /// The round in which some nodes refused to go on, and their refusals.
    round: u32,
    refused: BTreeMap<u16, tonic::Status>,
    /// Nodes that finished (and stored a pending share).
    finished: BTreeSet<u16>,
}

fn dkg_start(
    session: &[u8],
    key_id: &str,
    scheme: pb::Scheme,
    threshold: u32,
    participants: Vec<pb::NodeIdentity>,
) -> pb::StartSessionRequest {
    pb::StartSessionRequest {
        session_id: session.to_vec(),
        request_id: "rogue-dkg".into(),
        participants,
        deadline_unix_ms: 0,
        kind: Some(pb::start_session_request::Kind::Dkg(pb::DkgSession {
            key_id: key_id.to_owned(),
            scheme: scheme as i32,
            threshold,
        })),
    }
}

/// Runs a DKG among nodes 1-3 as a rogue coordinator: node `n` is told the
/// threshold `threshold(n)`, and `tamper(round, n, inbound)` alters what it
/// receives. Returns after the first round in which some node refuses.
async fn rogue_dkg(
    tc: &TestCluster,
    scheme: pb::Scheme,
    threshold: impl Fn(u16) -> u32,
    tamper: impl Fn(u32, u16, &mut Vec<pb::ProtocolMessage>),
) -> Result<DkgRun> {
    let rogue = RogueCoordinator::new(tc)?;
    let ids = [1u16, 2, 3];
    let identities = rogue.identities(&ids).await?;
    let session = session_id();
    let key_id = format!("key-rogue-{}", hex::encode(&session));
    let mut outputs = Outputs::new();
    for id in ids {
        let start = dkg_start(&session, &key_id, scheme, threshold(id), identities.clone());
        let resp = rogue.node(id)?.start_session(start).await?.into_inner();
        outputs.insert(id, resp.messages);
    }
    let mut finished = BTreeSet::new();
    for round in 1..=dkg_rounds(scheme) {
        let mut next = Outputs::new();
        let mut refused = BTreeMap::new();
        for id in ids {
            let mut inbound = inbound_for(&outputs, id);
            tamper(round, id, &mut inbound);
            match step(&rogue, id, &session, round, inbound).await {
                Ok(resp) => {
                    if resp.output.is_some() {
                        finished.insert(id);
                    }
                    next.insert(id, resp.messages);
                }
                Err(status) => {
                    refused.insert(id, status);
                }
            }
        }
        if !refused.is_empty() {
            return Ok(DkgRun {
                key_id,
                round,
                refused,
                finished,
            });
        }
        outputs = next;
    }
    anyhow::bail!("tampering went unnoticed: every node finished the DKG")
}

fn first_to(
    messages: &mut [pb::ProtocolMessage],
    broadcast: bool,
) -> Option<&mut pb::ProtocolMessage> {
    messages.iter_mut().find(|m| match destination(m) {
        Some(To::Broadcast(_)) => broadcast,
        Some(To::Node(_)) => !broadcast,
        _ => false,
    })
}

/// Coordinator tampering with what node 3 receives in a DKG of `scheme`:
/// node 3 alone refuses, implicating the relay; the other nodes finish
/// only when it happened in the last round, and then hold a pending share
/// that never signs; node 3 stores nothing, and no share becomes current.
async fn dkg_tampering_is_detected_and_blamed_on_the_relay(
    tc: &TestCluster,
    scheme: pb::Scheme,
) -> Result<()> {
    let before = stored_shares(tc).await?;
    let last = dkg_rounds(scheme);
    type Alter = fn(&mut Vec<pb::ProtocolMessage>);
    let cases: [(&str, u32, Alter, &str, bool); 4] = [
        (
            "a round-1 message altered",
            1,
            |ms| {
                if let Some(b) = ms.first_mut().and_then(|m| m.payload.get_mut(10)) {
                    *b ^= 1;
                }
            },
            "message claiming to be from node-1 has an invalid sender signature",
            true,
        ),
        (
            "a sealed round-2 message corrupted",
            2,
            |ms| {
                if let Some(b) = first_to(ms, false).and_then(|m| m.payload.last_mut()) {
                    *b ^= 1;
                }
            },
            "message claiming to be from node-1 has an invalid sender signature",
            true,
        ),
        (
            "a round-1 message withheld",
            1,
            |ms| {
                ms.remove(0);
            },
            "missing messages from [NodeId(1)]",
            false,
        ),
        (
            "a last-round broadcast altered",
            last,
            |ms| {
                if let Some(b) = first_to(ms, true).and_then(|m| m.payload.last_mut()) {
                    *b ^= 1;
                }
            },
            "message claiming to be from node-1 has an invalid sender signature",
            true,
        ),
    ];
    let mut runs = Vec::new();
    for (name, round, alter, expect, relay_suspected) in cases {
        let run = rogue_dkg(
            tc,
            scheme,
            |_| 2,
            |r, to, ms| {
                if r == round && to == 3 {
                    alter(ms);
                }
            },
        )
        .await
        .context(name)?;
        assert_eq!(run.round, round, "{name}: {run:?}");
        assert_eq!(
            run.refused.keys().copied().collect::<Vec<_>>(),
            [3],
            "{name}: {run:?}"
        );
        assert_refused(name, &run.refused[&3], expect, relay_suspected);
        let finished: BTreeSet<u16> = if round == last {
            BTreeSet::from([1, 2])
        } else {
            BTreeSet::new()
        };
        assert_eq!(run.finished, finished, "{name}");
        runs.push(run);
    }

    // Pending shares of the finished nodes are all these sessions left.
    for n in &tc.cluster.nodes {
        let store =
            SqliteShareStore::open(&tc.data_dir().join(format!("node-{}/node.db", n.id))).await?;
        let rows = store.list().await?;
        for run in &runs {
            let statuses: Vec<ShareStatus> = rows
                .iter()
                .filter(|r| r.key_id == run.key_id)
                .map(|r| r.status)
                .collect();
            let expected = if run.finished.contains(&n.id) {
                vec![ShareStatus::Pending]
            } else {
                Vec::new()
            };
            assert_eq!(statuses, expected, "node {} after {run:?}", n.id);
        }
    }
    let rogue_key = |row: &String| {
        runs.iter()
            .any(|r| row.starts_with(&format!("{}:", r.key_id)))
    };
    let mut after = stored_shares(tc).await?;
    for rows in after.values_mut() {
        rows.retain(|row| !rogue_key(row));
    }
    assert_eq!(after, before, "other stored shares changed");

    // A pending share never signs: the coordinator never committed it.
    let rogue = RogueCoordinator::new(tc)?;
    for run in runs.iter().filter(|r| !r.finished.is_empty()) {
        let key = pb::KeyInfo {
            key_id: run.key_id.clone(),
            scheme: scheme as i32,
            ..Default::default()
        };
        let signers: Vec<u16> = run.finished.iter().copied().collect();
        let identities = rogue.identities(&signers).await?;
        for id in &signers {
            let err = rogue
                .node(*id)?
                .start_session(sign_start(&rogue, &key, &session_id(), identities.clone()).await?)
                .await
                .expect_err("a pending share signed");
            assert_eq!(err.code(), Code::NotFound, "node {id}: {err:?}");
            assert!(err.message().contains("unknown key"), "{}", err.message());
        }
    }
    Ok(())
}

#[tokio::test]
async fn coordinator_tampering_in_dkg_is_detected_and_blamed_on_the_relay() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    dkg_tampering_is_detected_and_blamed_on_the_relay(&tc, pb::Scheme::FrostSecp256k1).await?;
    tc.shutdown().await;
    Ok(())
}

/// Asserts that every node of `run` refused its round-3 step because the
/// echoes of the round-2 broadcasts differ, naming the nodes whose view
/// differs from its own.
#[track_caller]
fn assert_inconsistent_broadcasts(what: &str, run: &DkgRun, differing: [(u16, &str); 3]) {
    assert_eq!(run.round, 3, "{what}: {run:?}");
    assert!(run.finished.is_empty(), "{what}: {run:?}");
    assert_eq!(
        run.refused.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3],
        "{what}: {run:?}"
    );
    for (id, parties) in differing {
        assert_refused(
            &format!("{what}, node {id}"),
            &run.refused[&id],
            &format!("broadcast views differ between this party and {parties}"),
            true,
        );
    }
}

/// The coordinator shows nodes 2 and 3 different, genuinely signed
/// round-2 broadcasts of node 1 in one ECDSA DKG session. It cannot forge
/// node 1's signature, and a restarted node remembers the session ids it
/// accepted, so it refuses to run the session again. Only a node whose
/// database lost that record (restored from a backup older than the
/// session) runs it again, with fresh randomness; then the echoes of round
/// 3 expose the equivocation.
async fn equivocated_broadcast_after_a_restart(tc: &mut TestCluster) -> Result<DkgRun> {
    let ids = [1u16, 2, 3];
    let session = session_id();
    let key_id = format!("key-equivocated-{}", hex::encode(&session));
    let rogue = RogueCoordinator::new(tc)?;
    let identities = rogue.identities(&ids).await?;
    let start = dkg_start(&session, &key_id, pb::Scheme::EcdsaSecp256k1, 2, identities);
    let mut round1 = Outputs::new();
    for id in ids {
        let resp = rogue.node(id)?.start_session(start.clone()).await?;
        round1.insert(id, resp.into_inner().messages);
    }
    // Node 1's first run, up to its round-2 messages.
    let first_run = step(&rogue, 1, &session, 1, inbound_for(&round1, 1))
        .await?
        .messages;
    drop(rogue);
    tc.restart_node(1).await?;
    let rogue = RogueCoordinator::new(tc)?;
    let err = rogue
        .node(1)?
        .start_session(start.clone())
        .await
        .expect_err("a restarted node refuses a used session id");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("already used"), "{err:?}");
    drop(rogue);
    // The record lost, as from a backup older than the session.
    let dir = tc.stop_node(1).await?;
    let db =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("node.db").display())).await?;
    let forgotten = sqlx::query("DELETE FROM used_sessions WHERE session_id = ?")
        .bind(session.as_slice())
        .execute(&db)
        .await?
        .rows_affected();
    assert_eq!(forgotten, 1, "the session id was on record");
    db.close().await;
    tc.start_stopped_node(1, "127.0.0.1:0".parse()?).await?;
    let rogue = RogueCoordinator::new(tc)?;
    // The second run: the node accepts the session id again and opens the
    // same sealed round-1 messages (its encryption key persists).
    let rerun = rogue.node(1)?.start_session(start.clone()).await?;
    let rerun_round1 = rerun.into_inner().messages;
    let second_run = step(&rogue, 1, &session, 1, inbound_for(&round1, 1))
        .await?
        .messages;
    let broadcast = |ms: &[pb::ProtocolMessage]| {
        ms.iter()
            .find(|m| matches!(destination(m), Some(To::Broadcast(_))))
            .map(|m| m.payload.clone())
    };
    assert!(broadcast(&first_run).is_some());
    assert_ne!(
        broadcast(&first_run),
        broadcast(&second_run),
        "node 1 signed two different round-2 broadcasts"
    );

    // Node 2 talks to node 1's first run, node 3 to its second.
    let to_2 = inbound_for(&round1, 2);
    let to_3 = inbound_for(
        &Outputs::from([(1, rerun_round1), (2, round1[&2].clone())]),
        3,
    );
    let round2_2 = step(&rogue, 2, &session, 1, to_2).await?.messages;
    let round2_3 = step(&rogue, 3, &session, 1, to_3).await?.messages;
    let views = [
        (
            1,
            Outputs::from([(2, round2_2.clone()), (3, round2_3.clone())]),
        ),
        (2, Outputs::from([(1, first_run), (3, round2_3)])),
        (3, Outputs::from([(1, second_run), (2, round2_2)])),
    ];
    let mut round3 = Outputs::new();
    for (id, view) in views {
        let resp = step(&rogue, id, &session, 2, inbound_for(&view, id))
            .await
            .with_context(|| format!("node {id}, round 2"))?;
        round3.insert(id, resp.messages);
    }
    let mut refused = BTreeMap::new();
    let mut finished = BTreeSet::new();
    for id in ids {
        match step(&rogue, id, &session, 3, inbound_for(&round3, id)).await {
            Ok(resp) => {
                if resp.output.is_some() {
                    finished.insert(id);
                }
            }
            Err(status) => {
                refused.insert(id, status);
            }
        }
    }
    Ok(DkgRun {
        key_id,
        round: 3,
        refused,
        finished,
    })
}

#[tokio::test]
async fn ecdsa_dkg_tampering_and_equivocation_are_detected_and_blamed_on_the_relay() -> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    dkg_tampering_is_detected_and_blamed_on_the_relay(&tc, pb::Scheme::EcdsaSecp256k1).await?;
    let before = stored_shares(&tc).await?;

    // The coordinator tells node 3 another threshold: the DKLs23 session id
    // binds it, so every node's round-2 echo differs from node 3's.
    let run = rogue_dkg(
        &tc,
        pb::Scheme::EcdsaSecp256k1,
        |id| if id == 3 { 3 } else { 2 },
        |_, _, _| {},
    )
    .await?;
    assert_inconsistent_broadcasts(
        "threshold equivocated",
        &run,
        [
            (1, "[NodeId(3)]"),
            (2, "[NodeId(3)]"),
            (3, "[NodeId(1), NodeId(2)]"),
        ],
    );
    let mut runs = vec![run];

    // Two different round-2 broadcasts of node 1 (node 1's second run,
    // after a restart, is the one that goes on).
    let run = equivocated_broadcast_after_a_restart(&mut tc).await?;
    assert_inconsistent_broadcasts(
        "broadcast equivocated",
        &run,
        [
            (1, "[NodeId(2)]"),
            (2, "[NodeId(1), NodeId(3)]"),
            (3, "[NodeId(2)]"),
        ],
    );
    runs.push(run);

    // Neither DKG stored anything, let alone a current share.
    let mut after = stored_shares(&tc).await?;
    let rogue_key = |row: &String| {
        runs.iter()
            .any(|r| row.starts_with(&format!("{}:", r.key_id)))
    };
    assert!(!after.values().flatten().any(&rogue_key), "{after:?}");
    for rows in after.values_mut() {
        rows.retain(|row| !rogue_key(row));
    }
    assert_eq!(after, before, "other stored shares changed");
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_used_signing_session_id_is_refused_by_a_restarted_node_before_any_nonce() -> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    let session = session_id();
    let rogue = RogueCoordinator::new(&tc)?;
    let identities = rogue.identities(&[1, 2]).await?;
    let first = rogue
        .node(1)?
        .start_session(sign_start(&rogue, &key, &session, identities).await?)
        .await?
        .into_inner();
    assert!(!first.messages.is_empty(), "round-1 commitments");
    drop(rogue);
    tc.restart_node(1).await?;
    // The same id with a fresh, genuine intent: refused by the id alone.
    let rogue = RogueCoordinator::new(&tc)?;
    let identities = rogue.identities(&[1, 2]).await?;
    let err = rogue
        .node(1)?
        .start_session(sign_start(&rogue, &key, &session, identities.clone()).await?)
        .await
        .expect_err("a used session id after a restart");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("already used"), "{err:?}");
    // A fresh id is accepted: the node is otherwise well.
    rogue
        .node(1)?
        .start_session(sign_start(&rogue, &key, &session_id(), identities).await?)
        .await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn node_databases_hold_no_plaintext_share() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    // Sign once so the databases have seen a full lifecycle.
    SigningClient::new(tc.coordinator_as("signer")?)
        .sign(
            tc.intended(pb::SignRequest {
                key_id: key.key_id.clone(),
                message: b"m".to_vec(),
                idempotency_key: "i".into(),
                ..Default::default()
            })
            .await?,
        )
        .await?;
    let data = tc.stop().await;

    for id in 1..=3u16 {
        let dir = data.path().join(format!("node-{id}"));
        let store = SqliteShareStore::open(&dir.join("node.db")).await?;
        let row = store.current(&key.key_id).await?.context("share stored")?;
        drop(store);
        // Open the share the way the node does, to learn what must not be on disk.
        let kek = Kek::load(&dir.join("keys/kek.hex"))?;
        let plain = kek.open(
            Binding {
                key_id: &key.key_id,
                node_id: id,
                epoch: 0,
            },
            &row.sealed_share,
        )?;
        let share = sigil_protocol::frost::KeyShare::from_bytes(&plain)?;
        let encoded = share.to_bytes();
        let kp_len = u32::from_be_bytes(encoded[8..12].try_into()?) as usize;
        let key_package = &encoded[12..12 + kp_len];
        let kp = frost_secp256k1::keys::KeyPackage::deserialize(key_package)?;
        let secret = kp.signing_share().serialize();
        assert_eq!(secret.len(), 32);

        let mut scanned = 0;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_file() {
                let bytes = std::fs::read(&path)?;
                scanned += bytes.len();
                for needle in [secret.as_slice(), key_package, encoded.as_slice()] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle),
                        "plaintext share material in {}",
                        path.display()
                    );
                }
            }
        }
        assert!(scanned > 0);
    }
    Ok(())
}
