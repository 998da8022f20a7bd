//! DKLs23 bans in a running cluster: a node that holds a ban against a
//! counterparty (as the engine's `BanCounterparty` abort makes it record
//! one) refuses every signing session of the key with it — with a typed
//! `FAILED_PRECONDITION`, the banned node in `sigil-banned` and a
//! `session_start` record refused `banned` — also after a restart; a
//! quorum without the banned node still signs; the coordinator learns the
//! ban from the refusal, keeps the node out of the key's quorums and
//! refuses to clear the exclusion.
//!
//! The ban is written through the node's own store API
//! ([`BanStore::record_ban`], the call the node makes when a session fails
//! with a ban): the harness cannot make a node cheat on the OT state, which
//! only reaches its counterparty sealed. That the engine's abort becomes a
//! typed ban is tested in `sigil-protocol` (`ProtocolError::Banned`), and
//! that a node stores and audits it in `sigil-node` (`bans`).

use anyhow::{Context, Result};
use sha3::{Digest, Keccak256};
use sigil_audit::Filter;
use sigil_node::bans::{Ban, BanStore};
use sigil_node::store::SqliteShareStore;
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::{RogueCoordinator, TestCluster, session_id};
use tonic::Code;

const REFUSAL: &str = "a DKLs23 ban is lifted only by a refresh or reshare that gives every party fresh pairwise state or removes the banned node";

async fn create_ecdsa_key(tc: &TestCluster) -> Result<pb::KeyInfo> {
    KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: pb::Scheme::EcdsaSecp256k1 as i32,
            threshold: 2,
            ..Default::default()
        })
        .await?
        .into_inner()
        .key
        .context("no key")
}

/// The start of a signing session of `key` among `signers`, with a genuine
/// intent of the payment service and the signers' spend receipts.
async fn sign_start(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
    signers: &[u16],
) -> Result<pb::StartSessionRequest> {
    let message = b"pay 10 to alice".to_vec();
    let encoding = pb::MessageEncoding::Keccak256;
    let (intent, receipts) = rogue
        .genuine_intent(key, &message, encoding, signers)
        .await?;
    Ok(pb::StartSessionRequest {
        session_id: session_id(),
        request_id: "bans".into(),
        participants: rogue.identities(signers).await?,
        deadline_unix_ms: 0,
        kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
            key_id: key.key_id.clone(),
            epoch: key.epoch,
            message,
            derivation_path: String::new(),
            encoding: encoding as i32,
            intent: Some(intent),
            receipts,
            ..Default::default()
        })),
    })
}

async fn exclusions(
    admin: &mut KeyAdminClient<tonic::transport::Channel>,
    key_id: &str,
) -> Result<Vec<pb::Exclusion>> {
    Ok(admin
        .list_exclusions(pb::ListExclusionsRequest {
            key_id: key_id.to_owned(),
        })
        .await?
        .into_inner()
        .exclusions)
}

/// Node 1's `session_start` records of `session`: (outcome, detail).
async fn session_start_records(tc: &TestCluster, session: &[u8]) -> Result<Vec<(String, String)>> {
    let node = tc
        .cluster
        .nodes
        .iter()
        .find(|n| n.id == 1)
        .context("node 1")?;
    let hex = hex::encode(session);
    Ok(node
        .handle
        .audit
        .query(&Filter::default().action("session_start").limit(10_000))
        .await?
        .into_iter()
        .filter(|r| r.session_id == hex)
        .map(|r| (r.outcome, r.detail))
        .collect())
}

/// Node 1 refuses a signing session of `key` with node 2 and records the refusal.
async fn node_1_refuses_node_2(
    tc: &TestCluster,
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
) -> Result<()> {
    let start = sign_start(rogue, key, &[1, 2]).await?;
    let session = start.session_id.clone();
    let status = rogue
        .node(1)?
        .start_session(start)
        .await
        .expect_err("node 1 opened a session with the node it banned");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let expected = format!("node 2 is banned from key {} by this node: ", key.key_id);
    assert!(
        status.message().starts_with(&expected),
        "expected {expected:?} in {:?}",
        status.message()
    );
    assert!(
        status.message().contains("OT consistency"),
        "{}",
        status.message()
    );
    let banned = |k: &str| status.metadata().get(k).and_then(|v| v.to_str().ok());
    assert_eq!(banned("sigil-banned"), Some("2"), "{status:?}");
    assert_eq!(banned("sigil-culprits"), Some("2"), "{status:?}");
    assert_eq!(banned("sigil-refusal"), None, "{status:?}");
    let records = session_start_records(tc, &session).await?;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].0, "refused:banned", "{records:?}");
    assert!(records[0].1.contains("node 2 is banned"), "{records:?}");
    // Nothing was opened: no session holds a nonce.
    let step = rogue
        .node(1)?
        .step(pb::StepRequest {
            session_id: session,
            round: 1,
            messages: Vec::new(),
            receipts: Vec::new(),
        })
        .await
        .expect_err("the refused session exists");
    assert_eq!(step.code(), Code::NotFound, "{step:?}");
    Ok(())
}

/// Node 1 opens a signing session of `key` with node 3 (then drops it).
async fn node_1_signs_with_node_3(rogue: &RogueCoordinator, key: &pb::KeyInfo) -> Result<()> {
    let start = sign_start(rogue, key, &[1, 3]).await?;
    let session = start.session_id.clone();
    let first = rogue.node(1)?.start_session(start).await?.into_inner();
    assert!(!first.messages.is_empty(), "round-one messages");
    rogue
        .node(1)?
        .abort_session(pb::AbortSessionRequest {
            session_id: session,
            reason: "test done".into(),
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_banned_counterparty_is_refused_by_the_node_and_the_exclusion_cannot_be_cleared()
-> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    let key = create_ecdsa_key(&tc).await?;
    let ban = Ban {
        key_id: key.key_id.clone(),
        counterparty: 2,
        reason: "DKLs23 abort: OT consistency check failed (party 2 is node-2)".into(),
        session_id: hex::encode(session_id()),
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    // Node 1 holds a ban against node 2, in its own database.
    let store = SqliteShareStore::open(&tc.data_dir().join("node-1/node.db")).await?;
    assert!(store.record_ban(&ban).await?);
    drop(store);

    let rogue = RogueCoordinator::new(&tc)?;
    let listed = rogue
        .node(1)?
        .list_bans(pb::ListBansRequest {
            key_id: key.key_id.clone(),
        })
        .await?
        .into_inner()
        .bans;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0].counterparty, listed[0].session_id.as_str()),
        (2, ban.session_id.as_str())
    );
    node_1_refuses_node_2(&tc, &rogue, &key).await?;
    node_1_signs_with_node_3(&rogue, &key).await?;

    // Through the coordinator every request signs, never with nodes 1 and
    // 2 together; quorums rotate, so within three requests one picks them,
    // node 1 refuses, and the coordinator records the ban.
    let mut signing = SigningClient::new(tc.coordinator_as("signer")?);
    let mut admin = KeyAdminClient::new(tc.coordinator_as("operator")?);
    let mut learned = Vec::new();
    for i in 0..4 {
        let message = format!("payout {i}").into_bytes();
        let resp = signing
            .sign(
                tc.intended(pb::SignRequest {
                    key_id: key.key_id.clone(),
                    message: message.clone(),
                    idempotency_key: format!("ban-{i}"),
                    encoding: pb::MessageEncoding::Keccak256 as i32,
                    ..Default::default()
                })
                .await?,
            )
            .await?
            .into_inner();
        assert_ne!(resp.signers, vec![1, 2], "request {i}");
        let digest: [u8; 32] = Keccak256::digest(&message).into();
        sigil_protocol::ecdsa::verify(&key.public_key, &digest, &resp.signature)?;
        learned = exclusions(&mut admin, &key.key_id).await?;
        if !learned.is_empty() {
            break;
        }
    }
    assert_eq!(learned.len(), 1, "{learned:?}");
    assert_eq!(
        (learned[0].node_id, learned[0].ban),
        (2, true),
        "{learned:?}"
    );
    assert!(
        learned[0].reason.contains("node 1 aborted the protocol")
            && learned[0].reason.contains("node 2 is banned"),
        "{learned:?}"
    );

    // An operator cannot clear it.
    let refused = admin
        .clear_exclusion(pb::ClearExclusionRequest {
            key_id: key.key_id.clone(),
            node_id: 2,
            reason: "node 2 looks fine".into(),
        })
        .await
        .expect_err("a ban was cleared");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains(REFUSAL), "{}", refused.message());
    assert_eq!(exclusions(&mut admin, &key.key_id).await?, learned);
    // And signing goes on without node 2.
    let resp = signing
        .sign(
            tc.intended(pb::SignRequest {
                key_id: key.key_id.clone(),
                message: b"after the ban".to_vec(),
                idempotency_key: "after".into(),
                encoding: pb::MessageEncoding::Keccak256 as i32,
                ..Default::default()
            })
            .await?,
        )
        .await?
        .into_inner();
    assert_eq!(resp.signers, vec![1, 3]);

    // The ban survives a restart of node 1.
    tc.restart_node(1).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    node_1_refuses_node_2(&tc, &rogue, &key).await?;
    node_1_signs_with_node_3(&rogue, &key).await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_refresh_gives_fresh_pairwise_state_and_lifts_the_ban() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_ecdsa_key(&tc).await?;
    let store = SqliteShareStore::open(&tc.data_dir().join("node-1/node.db")).await?;
    assert!(
        store
            .record_ban(&Ban {
                key_id: key.key_id.clone(),
                counterparty: 2,
                reason: "DKLs23 abort: OT consistency check failed (party 2 is node-2)".into(),
                session_id: hex::encode(session_id()),
                created_at: "2026-01-01T00:00:00Z".into(),
            })
            .await?
    );
    drop(store);
    let rogue = RogueCoordinator::new(&tc)?;
    node_1_refuses_node_2(&tc, &rogue, &key).await?;

    // The redistribution itself is not refused: it is how the ban ends.
    let authorization = tc.authorization(
        sigil_policy::OperationKind::Refresh,
        &key,
        &[1, 2, 3],
        2,
        &["officer-1", "officer-2"],
    )?;
    let refreshed = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .refresh_key(pb::RefreshKeyRequest {
            key_id: key.key_id.clone(),
            authorization: Some(authorization),
        })
        .await?
        .into_inner()
        .key
        .context("no key")?;
    assert_eq!(refreshed.epoch, 1);
    assert_eq!(refreshed.public_key, key.public_key);

    let bans = rogue
        .node(1)?
        .list_bans(pb::ListBansRequest {
            key_id: key.key_id.clone(),
        })
        .await?
        .into_inner()
        .bans;
    assert!(bans.is_empty(), "{bans:?}");
    // Node 1 and node 2 sign together again, with the new epoch.
    let start = sign_start(&rogue, &refreshed, &[1, 2]).await?;
    let first = rogue.node(1)?.start_session(start).await?.into_inner();
    assert!(!first.messages.is_empty());
    tc.shutdown().await;
    Ok(())
}
