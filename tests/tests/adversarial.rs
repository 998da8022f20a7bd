//! Adversarial cluster tests over real mTLS: a node that issues bad
//! signature shares, and a compromised coordinator that drives the nodes
//! itself — replaying, omitting, duplicating or altering messages and
//! substituting identities. Each case asserts the typed refusal, that no
//! signature or share results, and that stored shares are unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use sigil_coordinator::store::{CoordinatorStore, SqliteCoordinatorStore};
use sigil_node::seal::{Binding, Kek};
use sigil_node::service::Faults;
use sigil_node::store::{ShareStore, SqliteShareStore};
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::{RogueCoordinator, TestCluster, session_id};
use tonic::Code;

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

#[tokio::test]
async fn bad_signature_share_is_named_recorded_and_signing_retries_without_it() -> Result<()> {
    let faulty: sigil_testkit::sigil_cli::local::NodeCustomizer = Arc::new(|id, server| {
        if id == 2 {
            server.with_faults(Faults {
                corrupt_signature_share: true,
            })
        } else {
            server
        }
    });
    let tc = TestCluster::start_with(3, Some(faulty)).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    let mut signing = SigningClient::new(tc.coordinator_as("signer")?);
    // Quorums rotate, so some of these include node 2 first.
    for i in 0..4 {
        let msg = format!("payment {i}").into_bytes();
        let sig = signing
            .sign(pb::SignRequest {
                key_id: key.key_id.clone(),
                message: msg.clone(),
                idempotency_key: format!("bad-{i}"),
                ..Default::default()
            })
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
    let faulty: sigil_testkit::sigil_cli::local::NodeCustomizer = Arc::new(|_, server| {
        server.with_faults(Faults {
            corrupt_signature_share: true,
        })
    });
    let tc = TestCluster::start_with(2, Some(faulty)).await?;
    let key = create_key(&tc, pb::Scheme::FrostEd25519, 2).await?;
    let err = SigningClient::new(tc.coordinator_as("signer")?)
        .sign(pb::SignRequest {
            key_id: key.key_id,
            message: b"m".to_vec(),
            idempotency_key: "x".into(),
            ..Default::default()
        })
        .await
        .expect_err("signed with bad shares");
    // Both shares are bad: both are named, and no honest quorum remains.
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    assert_eq!(
        err.metadata()
            .get("sigil-culprits")
            .and_then(|v| v.to_str().ok()),
        Some("1,2"),
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

/// Starts a signing session on `signers` as a rogue coordinator; returns each node's round-1 messages.
async fn start_signing(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
    signers: &[u16],
    session: &[u8],
) -> Result<BTreeMap<u16, Vec<pb::ProtocolMessage>>> {
    let identities = rogue.identities(signers).await?;
    let mut out = BTreeMap::new();
    for id in signers {
        let resp = rogue
            .node(*id)?
            .start_session(sign_start(key, session, identities.clone()))
            .await?
            .into_inner();
        out.insert(*id, resp.messages);
    }
    Ok(out)
}

fn sign_start(
    key: &pb::KeyInfo,
    session: &[u8],
    participants: Vec<pb::NodeIdentity>,
) -> pb::StartSessionRequest {
    pb::StartSessionRequest {
        session_id: session.to_vec(),
        request_id: "rogue".into(),
        participants,
        deadline_unix_ms: 0,
        kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
            key_id: key.key_id.clone(),
            epoch: 0,
            message: b"drain the treasury".to_vec(),
            derivation_path: String::new(),
            authorization: None,
            encoding: pb::MessageEncoding::Raw as i32,
        })),
    }
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
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn replayed_round_two_and_reused_session_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    let session = session_id();
    let round1 = start_signing(&rogue, &key, &[1, 2], &session).await?;

    // Honest delivery once: node 1 issues its share.
    let first = step(&rogue, 1, &session, 1, round1[&2].clone()).await?;
    assert_eq!(first.messages.len(), 1, "one share for the coordinator");
    // The same round-2 request again: the nonces are gone.
    let err = step(&rogue, 1, &session, 1, round1[&2].clone())
        .await
        .expect_err("replayed round 2 accepted");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // And the session id cannot be reused for a new session.
    let identities = rogue.identities(&[1, 2]).await?;
    let err = rogue
        .node(1)?
        .start_session(sign_start(&key, &session, identities))
        .await
        .expect_err("session reused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("already used"), "{}", err.message());
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn commitment_lists_that_omit_duplicate_or_alter_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostTaproot, 2).await?;
    let before = stored_shares(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;

    type Tamper = fn(&BTreeMap<u16, Vec<pb::ProtocolMessage>>) -> Vec<pb::ProtocolMessage>;
    let cases: [(&str, Tamper, &str, bool); 4] = [
        ("omitted", |_| Vec::new(), "missing messages", false),
        (
            "duplicated",
            |r| [r[&2].clone(), r[&2].clone()].concat(),
            "duplicate",
            true,
        ),
        (
            "own commitment replayed",
            |r| [r[&2].clone(), r[&1].clone()].concat(),
            "this party",
            true,
        ),
        (
            "altered",
            |r| {
                let mut m = r[&2].clone();
                if let Some(b) = m[0].payload.last_mut() {
                    *b ^= 1;
                }
                m
            },
            "invalid sender signature",
            true,
        ),
    ];
    for (name, tamper, expect, relay_suspected) in cases {
        let session = session_id();
        let round1 = start_signing(&rogue, &key, &[1, 2], &session).await?;
        let err = step(&rogue, 1, &session, 1, tamper(&round1))
            .await
            .expect_err(name);
        assert_eq!(err.code(), Code::FailedPrecondition, "{name}: {err:?}");
        assert!(err.message().contains(expect), "{name}: {}", err.message());
        assert_eq!(
            err.metadata().get("sigil-relay-suspected").is_some(),
            relay_suspected,
            "{name}"
        );
        // No share was issued, and the session is gone.
        let err = step(&rogue, 1, &session, 1, round1[&2].clone())
            .await
            .expect_err("session survived a failure");
        assert_eq!(err.code(), Code::NotFound, "{name}");
    }
    assert_eq!(stored_shares(&tc).await?, before, "stored shares changed");
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn signing_requests_outside_the_key_are_refused_by_the_node() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostEd25519, 2).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    // A quorum below the threshold.
    let identities = rogue.identities(&[1]).await?;
    let err = rogue
        .node(1)?
        .start_session(sign_start(&key, &session_id(), identities))
        .await
        .expect_err("1 signer");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("1 signers for a 2-of-3 key"),
        "{}",
        err.message()
    );
    // An unknown key.
    let mut unknown = key.clone();
    unknown.key_id = "key-unknown".into();
    let identities = rogue.identities(&[1, 2]).await?;
    let err = rogue
        .node(1)?
        .start_session(sign_start(&unknown, &session_id(), identities))
        .await
        .expect_err("unknown key");
    assert_eq!(err.code(), Code::NotFound);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn substituted_identities_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    let genuine = rogue.identities(&[1, 2]).await?;

    // Node 2's identity with an encryption key the coordinator controls.
    let mut swapped = genuine.clone();
    swapped[1].encryption_key = vec![9; 32];
    let err = rogue
        .node(1)?
        .start_session(sign_start(&key, &session_id(), swapped))
        .await
        .expect_err("swapped key");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("not bound to its identity"),
        "{}",
        err.message()
    );

    // Node 3's certificate presented as node 2.
    let mut impostor = genuine.clone();
    impostor[1].certificate_chain = rogue.identities(&[3]).await?[0].certificate_chain.clone();
    let err = rogue
        .node(1)?
        .start_session(sign_start(&key, &session_id(), impostor))
        .await
        .expect_err("impostor");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("names node/3, expected node/2"),
        "{}",
        err.message()
    );
    tc.shutdown().await;
    Ok(())
}

/// Runs a DKG as a rogue coordinator, letting `tamper` alter what node 3 receives in `round`.
async fn rogue_dkg(
    tc: &TestCluster,
    round_to_tamper: u32,
    tamper: fn(&mut Vec<pb::ProtocolMessage>),
) -> Result<tonic::Status> {
    let rogue = RogueCoordinator::new(tc)?;
    let ids = [1u16, 2, 3];
    let identities = rogue.identities(&ids).await?;
    let session = session_id();
    let start = pb::StartSessionRequest {
        session_id: session.clone(),
        request_id: "rogue-dkg".into(),
        participants: identities,
        deadline_unix_ms: 0,
        kind: Some(pb::start_session_request::Kind::Dkg(pb::DkgSession {
            key_id: format!("key-rogue-{}", hex::encode(&session)),
            scheme: pb::Scheme::FrostSecp256k1 as i32,
            threshold: 2,
        })),
    };
    let mut outputs: BTreeMap<u16, Vec<pb::ProtocolMessage>> = BTreeMap::new();
    for id in ids {
        outputs.insert(
            id,
            rogue
                .node(id)?
                .start_session(start.clone())
                .await?
                .into_inner()
                .messages,
        );
    }
    for round in 1..=2u32 {
        let mut next = BTreeMap::new();
        for id in ids {
            // Deliver broadcasts from others, and direct messages addressed to `id`.
            let mut inbound: Vec<pb::ProtocolMessage> = outputs
                .iter()
                .filter(|(from, _)| **from != id)
                .flat_map(|(_, ms)| ms.iter().cloned())
                .filter(|m| match m.recipient.as_ref().and_then(|r| r.to.as_ref()) {
                    Some(pb::recipient::To::Broadcast(_)) => true,
                    Some(pb::recipient::To::Node(n)) => *n == u32::from(id),
                    _ => false,
                })
                .collect();
            if id == 3 && round == round_to_tamper {
                tamper(&mut inbound);
            }
            match step(&rogue, id, &session, round, inbound).await {
                Ok(resp) => {
                    next.insert(id, resp.messages);
                }
                Err(status) if id == 3 => return Ok(status),
                Err(status) => anyhow::bail!("node {id} failed unexpectedly: {status:?}"),
            }
        }
        outputs = next;
    }
    anyhow::bail!("tampering went unnoticed")
}

#[tokio::test]
async fn coordinator_tampering_in_dkg_is_detected_and_blamed_on_the_relay() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    // Round 1: node 3 is shown an altered broadcast of node 1.
    let status = rogue_dkg(&tc, 1, |msgs| {
        if let Some(b) = msgs[0].payload.get_mut(10) {
            *b ^= 1;
        }
    })
    .await?;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("invalid sender signature"),
        "{}",
        status.message()
    );
    assert!(status.metadata().get("sigil-relay-suspected").is_some());

    // Round 2: the sealed share for node 3 is corrupted in transit.
    let status = rogue_dkg(&tc, 2, |msgs| {
        let direct = msgs.iter_mut().find(|m| {
            matches!(
                m.recipient.as_ref().and_then(|r| r.to.as_ref()),
                Some(pb::recipient::To::Node(_))
            )
        });
        if let Some(b) = direct.and_then(|m| m.payload.last_mut()) {
            *b ^= 1;
        }
    })
    .await?;
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.metadata().get("sigil-relay-suspected").is_some());

    // A round-1 broadcast withheld from node 3.
    let status = rogue_dkg(&tc, 1, |msgs| {
        msgs.remove(0);
    })
    .await?;
    assert!(
        status.message().contains("missing messages"),
        "{}",
        status.message()
    );

    // Node 3 stored nothing from these sessions; nodes 1 and 2 finished
    // theirs, but only as pending shares that can never sign, since the
    // coordinator never committed them.
    assert!(stored_shares(&tc).await?[&3].is_empty());
    for id in [1u16, 2] {
        let store =
            SqliteShareStore::open(&tc.data_dir().join(format!("node-{id}/node.db"))).await?;
        let rows = store.list().await?;
        assert!(!rows.is_empty());
        assert!(
            rows.iter()
                .all(|r| r.status == sigil_node::store::ShareStatus::Pending),
            "{rows:?}"
        );
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn node_databases_hold_no_plaintext_share() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2).await?;
    // Sign once so the databases have seen a full lifecycle.
    SigningClient::new(tc.coordinator_as("signer")?)
        .sign(pb::SignRequest {
            key_id: key.key_id.clone(),
            message: b"m".to_vec(),
            idempotency_key: "i".into(),
            ..Default::default()
        })
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
