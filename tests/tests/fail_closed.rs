//! Fail-closed setup: a node without its key-encryption key, or a daemon
//! configured with an in-memory audit log outside benchmarks, does not
//! start; a share row altered in a node's database is refused, not used.

use anyhow::{Context, Result};
use sigil_coordinator::{CoordinatorConfig, CoordinatorServer};
use sigil_node::{NodeConfig, NodeServer};
use sigil_proto::v1 as pb;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::{RogueCoordinator, TestCluster};
use tonic::Code;

#[tokio::test]
async fn a_node_without_its_kek_file_refuses_to_start_and_creates_none() -> Result<()> {
    let mut tc = TestCluster::start(1).await?;
    let dir = tc.stop_node(1).await?;
    let kek = dir.join("keys/kek.hex");
    assert!(kek.exists(), "the local cluster created the node's KEK");
    let kept = std::fs::read(&kek)?;
    std::fs::remove_file(&kek)?;

    let err = tc
        .start_stopped_node(1, "127.0.0.1:0".parse()?)
        .await
        .expect_err("a node started without its KEK file");
    let server_err = err
        .downcast_ref::<sigil_node::ServerError>()
        .context("not a startup error")?;
    assert!(
        matches!(server_err, sigil_node::ServerError::KekMissing { path } if *path == kek),
        "{server_err:?}"
    );
    let message = err.to_string();
    for needle in ["kek.hex", "does not exist", "sigil up", "0600"] {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
    assert!(!kek.exists(), "the node created a KEK");

    // With the file back, the same node starts (its shares open again).
    std::fs::write(&kek, kept)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600))?;
    }
    tc.start_stopped_node(1, "127.0.0.1:0".parse()?).await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_in_memory_audit_log_is_refused_without_the_benchmark_opt_in() -> Result<()> {
    if sigil_daemon_opt_in_is_set() {
        // This process runs a benchmark setup: nothing to check here.
        return Ok(());
    }
    let tc = TestCluster::start(1).await?;
    let data = tc.data_dir();

    let mut node = NodeConfig::load(&data.join("node-1/node.toml"))?;
    node.audit.database = Some(sigil_node::config::AUDIT_MEMORY.to_owned());
    // The file still loads and validates: the refusal is the daemon's, at start.
    node.validate()?;
    let err = NodeServer::open(node)
        .await
        .expect_err("a node with an in-memory audit log started");
    assert!(matches!(err, sigil_node::ServerError::Config(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("SIGIL_BENCHMARK_IN_MEMORY_AUDIT=1"),
        "{err}"
    );

    let mut coordinator = CoordinatorConfig::load(&data.join("coordinator/coordinator.toml"))?;
    coordinator.audit.database = Some(sigil_coordinator::config::AUDIT_MEMORY.to_owned());
    let err = CoordinatorServer::open(coordinator)
        .await
        .expect_err("a coordinator with an in-memory audit log started");
    assert!(
        matches!(err, sigil_coordinator::ServerError::Config(_)),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("SIGIL_BENCHMARK_IN_MEMORY_AUDIT=1"),
        "{err}"
    );
    tc.shutdown().await;
    Ok(())
}

fn sigil_daemon_opt_in_is_set() -> bool {
    std::env::var_os("SIGIL_BENCHMARK_IN_MEMORY_AUDIT").is_some_and(|v| v == "1")
}

async fn sign(
    tc: &TestCluster,
    key: &pb::KeyInfo,
    n: u32,
) -> Result<pb::SignResponse, tonic::Status> {
    let req = tc
        .intended(pb::SignRequest {
            key_id: key.key_id.clone(),
            message: format!("payment {n}").into_bytes(),
            idempotency_key: format!("fail-closed-{n}"),
            ..Default::default()
        })
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let channel = tc
        .coordinator_as("signer")
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    SigningClient::new(channel)
        .sign(req)
        .await
        .map(tonic::Response::into_inner)
}

/// Runs `sql` with `key_id` bound on node `id`'s database, which must be stopped.
async fn alter(dir: &std::path::Path, sql: &'static str, key_id: &str) -> Result<()> {
    let db =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("node.db").display())).await?;
    let changed = sqlx::query(sql)
        .bind(key_id)
        .execute(&db)
        .await?
        .rows_affected();
    db.close().await;
    anyhow::ensure!(changed == 1, "{sql}: {changed} rows changed");
    Ok(())
}

#[tokio::test]
async fn a_share_row_altered_in_the_database_is_refused_by_its_node() -> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    // 3-of-3: every signature needs node 1's share.
    let key = tc
        .create_key(pb::Scheme::FrostSecp256k1, 3)
        .await
        .context("create key")?;
    sign(&tc, &key, 0).await?;

    // Someone with write access lowers the threshold node 1 holds for the key.
    let addr = tc.node_addr(1)?;
    let dir = tc.stop_node(1).await?;
    alter(
        &dir,
        "UPDATE key_shares SET threshold = 2 WHERE key_id = ?",
        &key.key_id,
    )
    .await?;
    tc.start_stopped_node(1, addr).await?;

    let err = sign(&tc, &key, 1)
        .await
        .expect_err("signed with an altered share row");
    assert_ne!(err.code(), Code::Ok, "{err:?}");
    // The node refuses the row itself, as an internal error, without details.
    let listed = RogueCoordinator::new(&tc)?
        .node(1)?
        .list_keys(pb::ListNodeKeysRequest {})
        .await
        .expect_err("node 1 listed an altered share row");
    assert_eq!(listed.code(), Code::Internal, "{listed:?}");
    assert!(!listed.message().contains("threshold"), "{listed:?}");

    // Put back as it was, the row is authentic again and the key signs.
    let dir = tc.stop_node(1).await?;
    alter(
        &dir,
        "UPDATE key_shares SET threshold = 3 WHERE key_id = ?",
        &key.key_id,
    )
    .await?;
    tc.start_stopped_node(1, addr).await?;
    sign(&tc, &key, 2).await?;

    // So is any other authenticated column: here the participants.
    let dir = tc.stop_node(1).await?;
    alter(
        &dir,
        "UPDATE key_shares SET participants = '[1,2]' WHERE key_id = ?",
        &key.key_id,
    )
    .await?;
    tc.start_stopped_node(1, addr).await?;
    let err = sign(&tc, &key, 3)
        .await
        .expect_err("signed with an altered share row");
    assert_ne!(err.code(), Code::Ok, "{err:?}");
    tc.shutdown().await;
    Ok(())
}
