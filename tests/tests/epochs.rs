//! Cluster tests of key epochs over real mTLS: refresh and reshare keep the
//! public key and move signing to the new epoch; old shares stop signing;
//! removed nodes hold nothing; nodes refuse redistributions the security
//! officers did not authorize, also when a rogue coordinator asks directly.

use anyhow::{Context, Result};
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::{RogueCoordinator, TestCluster, session_id};
use tonic::Code;

async fn create_key(
    tc: &TestCluster,
    scheme: pb::Scheme,
    threshold: u32,
    nodes: &[u32],
) -> Result<pb::KeyInfo> {
    KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: scheme as i32,
            threshold,
            nodes: nodes.to_vec(),
            label: "epochs".into(),
        })
        .await?
        .into_inner()
        .key
        .context("no key in response")
}

async fn sign(
    tc: &TestCluster,
    key: &pb::KeyInfo,
    message: &[u8],
) -> Result<pb::SignResponse, tonic::Status> {
    let encoding = if key.scheme == pb::Scheme::EcdsaSecp256k1 as i32 {
        pb::MessageEncoding::Keccak256
    } else {
        pb::MessageEncoding::Raw
    };
    let req = tc
        .sign_request(
            key,
            message,
            encoding,
            &format!("epochs-{}", uuid::Uuid::new_v4()),
        )
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    SigningClient::new(
        tc.coordinator_as("signer")
            .map_err(|e| tonic::Status::internal(e.to_string()))?,
    )
    .sign(req)
    .await
    .map(tonic::Response::into_inner)
}

/// The officers' authorization of `kind` for `key` at its current epoch, signed by `officers`.
fn authorization(
    tc: &TestCluster,
    kind: sigil_policy::OperationKind,
    key: &pb::KeyInfo,
    nodes: &[u16],
    threshold: u16,
    officers: &[&str],
) -> Result<pb::SignedOperation> {
    tc.authorization(kind, key, nodes, threshold, officers)
}

async fn refresh(
    tc: &TestCluster,
    key: &pb::KeyInfo,
) -> Result<pb::RedistributeResponse, tonic::Status> {
    let nodes: Vec<u16> = key.participants.iter().map(|n| *n as u16).collect();
    let auth = authorization(
        tc,
        sigil_policy::OperationKind::Refresh,
        key,
        &nodes,
        key.threshold as u16,
        &["officer-1", "officer-2"],
    )
    .map_err(|e| tonic::Status::internal(e.to_string()))?;
    KeyAdminClient::new(
        tc.coordinator_as("operator")
            .map_err(|e| tonic::Status::internal(e.to_string()))?,
    )
    .refresh_key(pb::RefreshKeyRequest {
        key_id: key.key_id.clone(),
        authorization: Some(auth),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn reshare(
    tc: &TestCluster,
    key: &pb::KeyInfo,
    nodes: &[u16],
    threshold: u16,
    officers: &[&str],
) -> Result<pb::RedistributeResponse, tonic::Status> {
    let auth = authorization(
        tc,
        sigil_policy::OperationKind::Reshare,
        key,
        nodes,
        threshold,
        officers,
    )
    .map_err(|e| tonic::Status::internal(e.to_string()))?;
    KeyAdminClient::new(
        tc.coordinator_as("operator")
            .map_err(|e| tonic::Status::internal(e.to_string()))?,
    )
    .reshare_key(pb::ReshareKeyRequest {
        key_id: key.key_id.clone(),
        new_threshold: u32::from(threshold),
        new_nodes: nodes.iter().map(|n| u32::from(*n)).collect(),
        authorization: Some(auth),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn epochs(tc: &TestCluster, key: &pb::KeyInfo) -> Result<pb::ListKeyEpochsResponse> {
    Ok(KeyAdminClient::new(tc.coordinator_as("operator")?)
        .list_epochs(pb::ListKeyEpochsRequest {
            key_id: key.key_id.clone(),
        })
        .await?
        .into_inner())
}

/// (epoch, status) of every share node `node` holds of the key.
fn held(e: &pb::ListKeyEpochsResponse, node: u32) -> Vec<(u64, String)> {
    e.nodes
        .iter()
        .find(|n| n.node_id == node)
        .map(|n| {
            n.epochs
                .iter()
                .map(|e| (e.epoch, e.status.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn verify(key: &pb::KeyInfo, message: &[u8], sig: &pb::SignResponse) -> Result<()> {
    let scheme = sigil_proto::convert::scheme_from_wire(key.scheme)?;
    let signed = match scheme {
        sigil_protocol::Scheme::EcdsaSecp256k1 => {
            use sha3::Digest as _;
            sha3::Keccak256::digest(message).to_vec()
        }
        _ => message.to_vec(),
    };
    let input = sigil_protocol::engine::SignInput::new(
        scheme,
        &signed,
        sigil_protocol::engine::Encoding::Raw,
        "",
    )?;
    sigil_protocol::engine::verify(scheme, &key.public_key, &input, &sig.signature)
        .context("signature does not verify under the unchanged public key")?;
    Ok(())
}

#[tokio::test]
async fn a_refresh_keeps_the_public_key_and_retires_the_old_epoch() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[1, 2, 3]).await?;
    let before = sign(&tc, &key, b"before").await?;
    verify(&key, b"before", &before)?;

    let out = refresh(&tc, &key).await?;
    let new = out.key.context("no key")?;
    assert_eq!(new.public_key, key.public_key);
    assert_eq!(new.addresses, key.addresses);
    assert_eq!((out.previous_epoch, new.epoch), (0, 1));
    assert_eq!(new.participants, key.participants);
    assert_eq!(out.test_quorums.len(), 2, "test quorums cover every node");

    for i in 0..4 {
        let msg = format!("after {i}");
        let sig = sign(&tc, &new, msg.as_bytes()).await?;
        verify(&new, msg.as_bytes(), &sig)?;
    }
    let e = epochs(&tc, &new).await?;
    assert_eq!(e.current_epoch, 1);
    assert!(e.uncommitted.is_empty());
    for node in 1..=3 {
        assert_eq!(
            held(&e, node),
            vec![(0, "retired".to_owned()), (1, "current".to_owned())],
            "node {node}"
        );
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn reshares_move_a_key_to_new_nodes_and_thresholds() -> Result<()> {
    let tc = TestCluster::start(5).await?;
    for scheme in [pb::Scheme::FrostTaproot, pb::Scheme::FrostEd25519] {
        let key = create_key(&tc, scheme, 2, &[1, 2, 3]).await?;
        // 2-of-3 → 3-of-5.
        let wide = reshare(&tc, &key, &[1, 2, 3, 4, 5], 3, &["officer-1", "officer-3"])
            .await?
            .key
            .context("no key")?;
        assert_eq!(wide.public_key, key.public_key);
        assert_eq!((wide.epoch, wide.threshold), (1, 3));
        let sig = sign(&tc, &wide, b"three of five").await?;
        assert_eq!(sig.signers.len(), 3);
        verify(&wide, b"three of five", &sig)?;
        // 3-of-5 → 2-of-3 on another set: node 2 replaced by node 4.
        let narrow = reshare(&tc, &wide, &[1, 3, 4], 2, &["officer-2", "officer-3"])
            .await?
            .key
            .context("no key")?;
        assert_eq!(narrow.public_key, key.public_key);
        assert_eq!(narrow.participants, vec![1, 3, 4]);
        let sig = sign(&tc, &narrow, b"replaced").await?;
        verify(&narrow, b"replaced", &sig)?;
        assert!(sig.signers.iter().all(|s| [1, 3, 4].contains(s)));
        // A disjoint set.
        let moved = reshare(&tc, &narrow, &[2, 5], 2, &["officer-1", "officer-2"])
            .await?
            .key
            .context("no key")?;
        assert_eq!(moved.public_key, key.public_key);
        let sig = sign(&tc, &moved, b"disjoint").await?;
        verify(&moved, b"disjoint", &sig)?;
        let e = epochs(&tc, &moved).await?;
        for removed in [1, 3, 4] {
            assert!(
                held(&e, removed).is_empty(),
                "node {removed} holds {:?}",
                held(&e, removed)
            );
        }
        for kept in [2, 5] {
            assert_eq!(
                held(&e, kept).last(),
                Some(&(3, "current".to_owned())),
                "node {kept}"
            );
        }
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn redistributions_need_the_officers_quorum() -> Result<()> {
    let tc = TestCluster::start(4).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[1, 2, 3]).await?;
    // No authorization at all: the coordinator refuses.
    let err = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .refresh_key(pb::RefreshKeyRequest {
            key_id: key.key_id.clone(),
            authorization: None,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // One officer of a quorum of two: every node refuses.
    let err = reshare(&tc, &key, &[1, 2, 4], 2, &["officer-1"])
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("officer signatures"),
        "{}",
        err.message()
    );
    // A client that is no officer.
    let err = reshare(&tc, &key, &[1, 2, 4], 2, &["officer-1", "approver-1"])
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("not a security officer"),
        "{}",
        err.message()
    );
    // Signed for other nodes than asked: the coordinator refuses early.
    let auth = authorization(
        &tc,
        sigil_policy::OperationKind::Reshare,
        &key,
        &[1, 2, 4],
        2,
        &["officer-1", "officer-2"],
    )?;
    let err = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .reshare_key(pb::ReshareKeyRequest {
            key_id: key.key_id.clone(),
            new_threshold: 2,
            new_nodes: vec![2, 3, 4],
            authorization: Some(auth),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // Nothing changed: epoch 0 signs.
    let e = epochs(&tc, &key).await?;
    assert_eq!(e.current_epoch, 0);
    for node in 1..=3 {
        assert_eq!(
            held(&e, node),
            vec![(0, "current".to_owned())],
            "node {node}"
        );
    }
    assert!(held(&e, 4).is_empty());
    let sig = sign(&tc, &key, b"still epoch 0").await?;
    verify(&key, b"still epoch 0", &sig)?;
    tc.shutdown().await;
    Ok(())
}

/// What a rogue coordinator sends to open a redistribution at a node
/// (without the key's package: nodes check the officers' authorization first).
async fn reshare_session(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
    refresh: bool,
    new_nodes: &[u16],
    new_threshold: u16,
    authorization: Option<pb::SignedOperation>,
) -> Result<pb::StartSessionRequest> {
    let mut everyone: Vec<u16> = key
        .participants
        .iter()
        .map(|n| *n as u16)
        .chain(new_nodes.iter().copied())
        .collect();
    everyone.sort_unstable();
    everyone.dedup();
    Ok(pb::StartSessionRequest {
        session_id: session_id(),
        request_id: "rogue".into(),
        participants: rogue.identities(&everyone).await?,
        deadline_unix_ms: 0,
        kind: Some(pb::start_session_request::Kind::Reshare(
            pb::ReshareSession {
                key_id: key.key_id.clone(),
                scheme: key.scheme,
                epoch: key.epoch,
                refresh,
                dealers: key.participants.clone(),
                new_participants: new_nodes.iter().map(|n| u32::from(*n)).collect(),
                new_threshold: u32::from(new_threshold),
                public_key_package: Vec::new(),
                authorization,
                threshold: key.threshold,
                participants: key.participants.clone(),
            },
        )),
    })
}

#[tokio::test]
async fn a_rogue_coordinator_cannot_redistribute_or_sign_with_an_old_epoch() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[1, 2, 3]).await?;
    let rogue = RogueCoordinator::new(&tc)?;

    // Without the officers: refused before anything is dealt, and on record.
    let start = reshare_session(&rogue, &key, false, &[1, 2], 2, None).await?;
    let session = hex::encode(&start.session_id);
    let err = rogue
        .node(2)?
        .start_session(start)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("authorization"), "{}", err.message());
    let node = tc
        .cluster
        .nodes
        .iter()
        .find(|n| n.id == 2)
        .context("node 2")?;
    let refusals: Vec<_> = node
        .handle
        .audit
        .query(
            &sigil_audit::Filter::default()
                .action("session_start")
                .limit(10_000),
        )
        .await?
        .into_iter()
        .filter(|r| r.session_id == session)
        .collect();
    assert!(
        refusals
            .iter()
            .any(|r| r.outcome == "refused:permission_denied" && r.detail.contains("authorization")),
        "{refusals:?}"
    );

    // A "refresh" the officers signed with another threshold is no refresh.
    let auth = authorization(
        &tc,
        sigil_policy::OperationKind::Refresh,
        &key,
        &[1, 2, 3],
        3,
        &["officer-1", "officer-2"],
    )?;
    let start = reshare_session(&rogue, &key, true, &[1, 2, 3], 3, Some(auth)).await?;
    let err = rogue
        .node(1)?
        .start_session(start)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("a refresh cannot change"),
        "{}",
        err.message()
    );

    // After a refresh, epoch 0 signs nothing, even with a genuine intent.
    refresh(&tc, &key).await?;
    let (intent, receipts) = rogue
        .genuine_intent(&key, b"old epoch", pb::MessageEncoding::Raw, &[1, 2])
        .await?;
    let err = rogue
        .node(1)?
        .start_session(pb::StartSessionRequest {
            session_id: session_id(),
            request_id: "rogue".into(),
            participants: rogue.identities(&[1, 2]).await?,
            deadline_unix_ms: 0,
            kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
                key_id: key.key_id.clone(),
                epoch: 0,
                message: b"old epoch".to_vec(),
                derivation_path: String::new(),
                encoding: pb::MessageEncoding::Raw as i32,
                intent: Some(intent),
                receipts,
                epoch_test: false,
                part: 0,
            })),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    assert!(
        err.message()
            .contains("is at epoch 1 at this node; the request is for epoch 0"),
        "{err:?}"
    );
    // Nor does the new epoch sign a payload as an epoch test.
    let err = rogue
        .node(1)?
        .start_session(pb::StartSessionRequest {
            session_id: session_id(),
            request_id: "rogue".into(),
            participants: rogue.identities(&[1, 2]).await?,
            deadline_unix_ms: 0,
            kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
                key_id: key.key_id.clone(),
                epoch: 1,
                message: b"a payment".to_vec(),
                epoch_test: true,
                ..Default::default()
            })),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // And a committed epoch is no longer `next`: no test signature either.
    let err = rogue
        .node(1)?
        .start_session(pb::StartSessionRequest {
            session_id: session_id(),
            request_id: "rogue".into(),
            participants: rogue.identities(&[1, 2]).await?,
            deadline_unix_ms: 0,
            kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
                key_id: key.key_id.clone(),
                epoch: 1,
                epoch_test: true,
                ..Default::default()
            })),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("no uncommitted epoch"),
        "{}",
        err.message()
    );
    tc.shutdown().await;
    Ok(())
}

/// A cluster whose coordinator stops redistributions as `faults` says and
/// re-sends certified switches every 100 ms.
async fn faulty_cluster(
    nodes: u16,
    faults: sigil_coordinator::epochs::CoordinatorFaults,
) -> Result<TestCluster> {
    TestCluster::start_spec(nodes, move |spec| {
        spec.epoch_resume_interval = std::time::Duration::from_millis(100);
        spec.customize_coordinator = Some(std::sync::Arc::new(move |server| {
            server.with_faults(faults.clone())
        }));
    })
    .await
}

/// Waits (up to 30 s) until every listed node reports `epoch` current and
/// the coordinator has nothing left to confirm.
async fn switched(
    tc: &TestCluster,
    key: &pb::KeyInfo,
    epoch: u64,
    nodes: &[u32],
) -> Result<pb::ListKeyEpochsResponse> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let e = epochs(tc, key).await?;
        let done = e.uncommitted.is_empty()
            && nodes.iter().all(|n| {
                held(&e, *n)
                    .iter()
                    .any(|(ep, status)| *ep == epoch && status == "current")
            });
        if done {
            return Ok(e);
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "epoch {epoch} not current everywhere: {e:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every node holds at most one share that can sign (`current`), and none
/// of an epoch other than `epoch`.
fn one_signing_epoch(e: &pb::ListKeyEpochsResponse, epoch: u64) {
    for n in &e.nodes {
        let current: Vec<u64> = n
            .epochs
            .iter()
            .filter(|s| s.status == "current")
            .map(|s| s.epoch)
            .collect();
        assert!(
            current.is_empty() || current == vec![epoch],
            "node {} signs with epochs {current:?}",
            n.node_id
        );
    }
}

#[tokio::test]
async fn a_switch_stopped_before_its_certificate_leaves_the_old_epoch_signing() -> Result<()> {
    use sigil_coordinator::epochs::{CoordinatorFaults, Stage};
    for stage in [Stage::Redistributed, Stage::Tested] {
        let tc = faulty_cluster(
            3,
            CoordinatorFaults {
                stop_after: Some(stage),
                ..Default::default()
            },
        )
        .await?;
        let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[1, 2, 3]).await?;
        let err = refresh(&tc, &key).await.expect_err("stopped");
        assert_eq!(err.code(), Code::Unavailable, "{err:?}");
        let e = epochs(&tc, &key).await?;
        assert_eq!((e.current_epoch, e.uncommitted.len()), (0, 0), "{stage:?}");
        for node in 1..=3 {
            assert_eq!(
                held(&e, node),
                vec![(0, "current".to_owned()), (1, "next".to_owned())],
                "{stage:?} node {node}"
            );
        }
        one_signing_epoch(&e, 0);
        let sig = sign(&tc, &key, b"old epoch still signs").await?;
        verify(&key, b"old epoch still signs", &sig)?;
        tc.shutdown().await;
    }
    Ok(())
}

#[tokio::test]
async fn a_certified_switch_completes_after_the_coordinator_stops() -> Result<()> {
    use sigil_coordinator::epochs::{CoordinatorFaults, Stage};
    let mut tc = faulty_cluster(
        4,
        CoordinatorFaults {
            stop_after: Some(Stage::Certified),
            ..Default::default()
        },
    )
    .await?;
    let key = create_key(&tc, pb::Scheme::FrostEd25519, 2, &[1, 2, 3]).await?;
    let err = reshare(&tc, &key, &[2, 3, 4], 2, &["officer-1", "officer-2"])
        .await
        .expect_err("stopped");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // A node restarting meanwhile keeps its staged share (it is durable).
    tc.restart_node_in_place(3).await?;
    // The certificate exists: the switch is resumed until every node confirmed it.
    let e = switched(&tc, &key, 1, &[2, 3, 4]).await?;
    assert!(
        held(&e, 1).is_empty(),
        "the removed node holds {:?}",
        held(&e, 1)
    );
    one_signing_epoch(&e, 1);
    let now = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .get_key(pb::GetKeyRequest {
            key_id: key.key_id.clone(),
        })
        .await?
        .into_inner();
    assert_eq!((now.epoch, now.participants.clone()), (1, vec![2, 3, 4]));
    let sig = sign(&tc, &now, b"resumed").await?;
    verify(&now, b"resumed", &sig)?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_node_that_missed_the_commit_switches_when_the_coordinator_resends_it() -> Result<()> {
    use sigil_coordinator::epochs::CoordinatorFaults;
    let tc = faulty_cluster(
        3,
        CoordinatorFaults {
            skip_commit_to: vec![3],
            ..Default::default()
        },
    )
    .await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[1, 2, 3]).await?;
    let out = refresh(&tc, &key).await?;
    assert_eq!(out.key.as_ref().map(|k| k.epoch), Some(1));
    let e = switched(&tc, &key, 1, &[1, 2, 3]).await?;
    one_signing_epoch(&e, 1);
    for node in 1..=3 {
        assert_eq!(
            held(&e, node),
            vec![(0, "retired".to_owned()), (1, "current".to_owned())],
            "node {node}"
        );
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn ecdsa_keys_refresh_and_reshare_with_fresh_pairwise_state() -> Result<()> {
    let tc = TestCluster::start(4).await?;
    let key = create_key(&tc, pb::Scheme::EcdsaSecp256k1, 2, &[1, 2, 3]).await?;
    let address = key.addresses.get("ethereum").cloned();
    assert!(address.is_some());
    let sig = sign(&tc, &key, b"epoch 0").await?;
    verify(&key, b"epoch 0", &sig)?;

    let refreshed = refresh(&tc, &key).await?.key.context("no key")?;
    assert_eq!(refreshed.public_key, key.public_key);
    assert_eq!(refreshed.addresses.get("ethereum").cloned(), address);
    let sig = sign(&tc, &refreshed, b"epoch 1").await?;
    verify(&refreshed, b"epoch 1", &sig)?;

    // Node 2 replaced by node 4.
    let moved = reshare(&tc, &refreshed, &[1, 3, 4], 2, &["officer-1", "officer-2"])
        .await?
        .key
        .context("no key")?;
    assert_eq!(
        (moved.epoch, moved.participants.clone()),
        (2, vec![1, 3, 4])
    );
    assert_eq!(moved.addresses.get("ethereum").cloned(), address);
    for i in 0..3 {
        let msg = format!("epoch 2, payment {i}");
        let sig = sign(&tc, &moved, msg.as_bytes()).await?;
        assert!(
            sig.signers.iter().all(|s| [1, 3, 4].contains(s)),
            "{:?}",
            sig.signers
        );
        verify(&moved, msg.as_bytes(), &sig)?;
    }
    let e = epochs(&tc, &moved).await?;
    assert!(held(&e, 2).is_empty(), "node 2 holds {:?}", held(&e, 2));
    one_signing_epoch(&e, 2);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_node_failing_during_the_redistribution_switches_nothing() -> Result<()> {
    let mut tc = TestCluster::start_spec(3, |spec| {
        spec.customize_node = Some(std::sync::Arc::new(|id, server| {
            server.with_faults(sigil_node::service::Faults {
                fail_redistribution: id == 3,
                ..Default::default()
            })
        }));
    })
    .await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[1, 2, 3]).await?;
    let err = refresh(&tc, &key).await.expect_err("node 3 failed");
    assert!(err.message().contains("node 3"), "{err:?}");
    let e = epochs(&tc, &key).await?;
    assert_eq!((e.current_epoch, e.uncommitted.len()), (0, 0));
    assert_eq!(held(&e, 3), vec![(0, "current".to_owned())]);
    one_signing_epoch(&e, 0);
    let sig = sign(&tc, &key, b"still epoch 0").await?;
    verify(&key, b"still epoch 0", &sig)?;
    // Node 3 back without the fault: the next attempt replaces the staged shares.
    tc.restart_node_in_place(3).await?;
    let out = refresh(&tc, &key).await?;
    assert_eq!(out.key.map(|k| k.epoch), Some(1));
    let e = epochs(&tc, &key).await?;
    for node in 1..=3 {
        assert_eq!(
            held(&e, node),
            vec![(0, "retired".to_owned()), (1, "current".to_owned())],
            "node {node}"
        );
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn every_switch_is_on_record_and_the_audit_trail_verifies() -> Result<()> {
    use sigil_testkit::sigil_cli::audit as cli_audit;
    let tc = TestCluster::start(4).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[1, 2, 3]).await?;
    let refreshed = refresh(&tc, &key).await?.key.context("no key")?;
    reshare(&tc, &refreshed, &[1, 2, 4], 2, &["officer-1", "officer-2"]).await?;

    for node in &tc.cluster.nodes {
        let records = node
            .handle
            .audit
            .query(&sigil_audit::Filter::default().limit(10_000))
            .await?;
        let of = |action: &str| {
            records
                .iter()
                .filter(|r| r.action == action && r.key_id == key.key_id && r.outcome == "ok")
                .count()
        };
        let (staged, committed, removed) = (
            of("epoch_staged"),
            of("epoch_committed"),
            of("share_removed"),
        );
        match node.id {
            1 | 2 => assert_eq!((staged, committed, removed), (2, 2, 0), "node {}", node.id),
            3 => assert_eq!((staged, committed, removed), (1, 1, 1), "node 3"),
            _ => assert_eq!((staged, committed, removed), (1, 1, 0), "node 4"),
        }
    }
    let coordinator = tc
        .cluster
        .coordinator
        .audit
        .query(
            &sigil_audit::Filter::default()
                .action("epoch_certified")
                .limit(100),
        )
        .await?;
    assert_eq!(coordinator.len(), 2, "{coordinator:?}");

    // The auditors' verification, test signatures included, finds nothing.
    let live = cli_audit::fetch_live(tc.coordinator_as("auditor")?).await?;
    let verifier = cli_audit::verifier(&tc.data_dir().join("pki/ca.pem"), &Default::default())?;
    let result = cli_audit::verify(&live, &verifier);
    assert!(result.is_ok(), "{:#?}", result.problems);
    tc.shutdown().await;
    Ok(())
}
