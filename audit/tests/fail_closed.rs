//! Appends that cannot be committed are refused (`Unavailable`), the head
//! stays at the last committed record, and the log continues correctly
//! once the database accepts writes again.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Fixture, close, entry, raw};
use sigil_audit::{AuditError, AuditLog, AuditOptions, Filter};
use sigil_tls::Identity;
use sqlx::Connection;

const PROCESS: &str = "coordinator";

async fn open(fx: &Fixture, busy: Duration) -> AuditLog {
    fx.open_with(
        AuditOptions::new(PROCESS).busy_timeout(busy),
        &Identity::Coordinator,
    )
    .await
}

async fn append_concurrently(
    log: &AuditLog,
    range: std::ops::Range<usize>,
) -> Vec<Result<u64, AuditError>> {
    let tasks: Vec<_> = range
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move { log.append(entry(n)).await.map(|r| r.sequence) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_refuses_appends_until_released() {
    let fx = Fixture::new();
    let log = open(&fx, Duration::from_millis(100)).await;
    for n in 0..3 {
        log.append(entry(n)).await.expect("append");
    }
    let before = log.head();
    assert_eq!(before.sequence, 3);

    // Another connection holds the write lock past the busy timeout.
    let mut other = raw(&fx.db_path(PROCESS)).await;
    let lock = other.begin_with("BEGIN EXCLUSIVE").await.expect("lock");

    for result in append_concurrently(&log, 10..15).await {
        let err = result.expect_err("must fail closed");
        assert!(err.is_unavailable(), "{err}");
        assert!(err.to_string().contains("locked"), "{err}");
    }
    let err = log.sign_head().await.expect_err("head while locked");
    assert!(err.is_unavailable(), "{err}");
    assert_eq!(log.head(), before, "head advanced without a commit");
    let stats = log.stats();
    assert!(
        stats.failed_batches >= 1 && stats.failed_records == 5,
        "{stats:?}"
    );

    lock.rollback().await.expect("release");
    close(other).await;

    let next = log.append(entry(20)).await.expect("append after release");
    assert_eq!(next.sequence, 4);
    assert_eq!(next.previous_hash, before.hash);
    for result in append_concurrently(&log, 21..26).await {
        result.expect("append");
    }
    log.sign_head().await.expect("head");
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.records, 9);
}

/// A trigger planted by a second connection makes one record's insert fail
/// (as a full disk or I/O error would): the whole batch it rode in is
/// refused, none of it is stored, and the chain continues after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_insert_refuses_its_whole_batch() {
    let fx = Fixture::new();
    let log = open(&fx, Duration::from_secs(5)).await;
    log.append(entry(0)).await.expect("append");
    let path = fx.db_path(PROCESS);

    let mut other = raw(&path).await;
    sqlx::query(
        "CREATE TRIGGER inject_failure BEFORE INSERT ON audit_records \
         WHEN NEW.request_id = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'injected write failure'); END",
    )
    .execute(&mut other)
    .await
    .expect("plant trigger");

    // Hold the lock so that the writer blocks on a first batch while the
    // poisoned one and its companions queue up behind it.
    let lock = other.begin_with("BEGIN EXCLUSIVE").await.expect("lock");
    let first = {
        let log = log.clone();
        tokio::spawn(async move { log.append(entry(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let poisoned = {
        let log = log.clone();
        tokio::spawn(async move { log.append(entry(2).request_id("poison")).await })
    };
    let companions: Vec<_> = (3..8)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move { log.append(entry(n)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    lock.rollback().await.expect("release");

    let first = first.await.expect("task").expect("first batch commits");
    assert_eq!(first.sequence, 2);
    let err = poisoned.await.expect("task").expect_err("poisoned");
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("injected write failure"), "{err}");
    for c in companions {
        let err = c.await.expect("task").expect_err("same batch");
        assert!(err.is_unavailable(), "{err}");
    }
    assert_eq!(log.head().sequence, 2);
    assert_eq!(log.head().hash, first.record_hash);

    sqlx::query("DROP TRIGGER inject_failure")
        .execute(&mut other)
        .await
        .expect("remove trigger");
    close(other).await;

    let next = log.append(entry(9)).await.expect("append");
    assert_eq!(next.sequence, 3);
    assert_eq!(next.previous_hash, first.record_hash);
    let stored = log.query(&Filter::default()).await.expect("query");
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|r| r.request_id != "poison"));
    log.sign_head().await.expect("head");
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn appends_after_stop_are_refused() {
    let fx = Fixture::new();
    let log = open(&fx, Duration::from_secs(5)).await;
    for n in 0..4 {
        log.append(entry(n)).await.expect("append");
    }
    let other_handle = log.clone();
    let head = log.stop().await.expect("stop");
    assert_eq!(head.sequence, 4);
    assert_eq!(head.head_hash, log.head().hash);
    assert!(!other_handle.is_running());

    let err = other_handle.append(entry(5)).await.expect_err("stopped");
    assert!(err.is_unavailable(), "{err}");
    assert!(log.sign_head().await.expect_err("stopped").is_unavailable());
    assert!(log.stop().await.expect_err("twice").is_unavailable());

    // Reads still work, and the final head verifies.
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.heads_matched, 1);
}

#[tokio::test]
async fn stop_commits_what_was_queued() {
    let fx = Fixture::new();
    let log = open(&fx, Duration::from_secs(5)).await;
    let pending: Vec<_> = (0..50)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move { log.append(entry(n)).await })
        })
        .collect();
    tokio::task::yield_now().await;
    let head = log.stop().await.expect("stop");
    let mut committed = 0;
    for p in pending {
        match p.await.expect("task") {
            Ok(r) => {
                assert!(r.sequence <= head.sequence);
                committed += 1;
            }
            Err(e) => assert!(e.is_unavailable(), "{e}"),
        }
    }
    assert_eq!(
        committed, head.sequence,
        "every acknowledged append is covered"
    );
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
}

/// Running as root, file permissions do not stop SQLite from writing; a
/// connection opened read-only stands in for a read-only file system.
#[tokio::test]
async fn a_read_only_database_refuses_appends() {
    let fx = Fixture::new();
    let log = open(&fx, Duration::from_secs(5)).await;
    log.append(entry(1)).await.expect("append");
    let stopped = log.stop().await.expect("stop");
    drop(log);

    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(fx.db_path(PROCESS))
        .read_only(true);
    let log = AuditLog::open_with(
        options,
        AuditOptions::new(PROCESS),
        fx.signer(&Identity::Coordinator),
    )
    .await
    .expect("opens for reading");
    let err = log.append(entry(2)).await.expect_err("read-only");
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("readonly"), "{err}");
    assert!(
        log.sign_head()
            .await
            .expect_err("read-only")
            .is_unavailable()
    );
    assert_eq!(log.head().hash, stopped.head_hash);
    // Reading and verifying still work.
    assert_eq!(log.query(&Filter::default()).await.expect("query").len(), 1);
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
}
