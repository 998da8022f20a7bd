//! Group commit: many concurrent appends share transactions and still form
//! one gapless chain; a reopened log continues it.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Fixture, entry};
use sigil_audit::{AuditError, AuditLog, AuditOptions, Filter};
use sigil_tls::Identity;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_appends_form_one_chain() {
    let fx = Fixture::new();
    let log = fx.open("node-1", &Identity::Node(1)).await;
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move { log.append(entry(n)).await })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.push(t.await.expect("task").expect("append"));
    }
    let mut sequences: Vec<u64> = acked.iter().map(|r| r.sequence).collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=200).collect::<Vec<u64>>());

    let stats = log.stats();
    assert_eq!(stats.records, 200);
    assert!(
        stats.batches < 200,
        "appends were not grouped into shared commits: {stats:?}"
    );

    // What each caller got back is exactly what is stored.
    let stored = log.query(&Filter::default()).await.expect("query");
    acked.sort_by_key(|r| r.sequence);
    assert_eq!(stored, acked);
    assert_eq!(log.head().hash, stored[199].record_hash);

    log.sign_head().await.expect("head");
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.records, 200);
}

#[tokio::test]
async fn a_reopened_log_continues_the_chain() {
    let fx = Fixture::new();
    let log = fx.open("node-2", &Identity::Node(2)).await;
    for n in 0..3 {
        log.append(entry(n)).await.expect("append");
    }
    let stopped = log.stop().await.expect("stop");
    drop(log);

    let log = fx.open("node-2", &Identity::Node(2)).await;
    assert_eq!(log.head().sequence, 3);
    assert_eq!(log.head().hash, stopped.head_hash);
    let next = log.append(entry(3)).await.expect("append");
    assert_eq!(next.sequence, 4);
    assert_eq!(next.previous_hash, stopped.head_hash);
    log.sign_head().await.expect("head");
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.heads_matched, 2);
    log.stop().await.expect("stop");

    // The database is node-2's: opening it as another process is refused.
    let err = AuditLog::open(
        &fx.db_path("node-2"),
        AuditOptions::new("node-3"),
        fx.signer(&Identity::Node(3)),
    )
    .await
    .expect_err("other process");
    assert!(matches!(err, AuditError::ProcessMismatch { .. }), "{err}");
}

/// The audit tables live beside the daemon's own, in the same file, with
/// their own migration bookkeeping.
#[tokio::test]
async fn the_log_shares_the_daemons_database() {
    use sqlx::ConnectOptions;
    let fx = Fixture::new();
    let path = fx.db_path("node-1");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut daemon = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .expect("daemon db");
    sqlx::query("CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT)")
        .execute(&mut daemon)
        .await
        .expect("daemon table");
    sqlx::query("INSERT INTO _sqlx_migrations VALUES (1, 'key shares')")
        .execute(&mut daemon)
        .await
        .expect("daemon row");

    let log = fx.open("node-1", &Identity::Node(1)).await;
    log.append(entry(1)).await.expect("append");
    let daemon_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&mut daemon)
        .await
        .expect("count");
    assert_eq!(daemon_rows, 1, "the daemon's migrations are untouched");
    let audit_rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sigil_audit_migrations")
        .fetch_one(&mut daemon)
        .await
        .expect("count");
    assert_eq!(audit_rows, 3, "every audit migration, in their own table");
}
