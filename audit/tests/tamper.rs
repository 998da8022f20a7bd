//! Tampering with a log directly in SQLite is found, and named by process
//! and sequence: edits, deletions, a truncated tail, swapped sequences,
//! forged records and forged signed heads.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Fixture, attacker, close, entry, raw};
use sigil_audit::{
    AuditLog, FindingKind, Report, SignedHead, genesis_hash, head_signing_bytes, verify_log,
};
use sigil_tls::Identity;
use sqlx::Row;

const PROCESS: &str = "node-3";

/// A node-3 log of 10 records with signed heads at 5 and 10.
async fn ten_records(fx: &Fixture) -> AuditLog {
    let log = fx.open(PROCESS, &Identity::Node(3)).await;
    for n in 1..=10 {
        log.append(entry(n)).await.expect("append");
        if n == 5 {
            log.sign_head().await.expect("head at 5");
        }
    }
    let head = log.sign_head().await.expect("head at 10");
    assert_eq!(head.sequence, 10);
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "untampered log: {report}");
    assert_eq!(
        (report.records, report.heads, report.heads_matched),
        (10, 2, 2)
    );
    log
}

fn first(report: &Report) -> (u64, FindingKind) {
    let f = report
        .first_for(PROCESS)
        .unwrap_or_else(|| panic!("tampering not found: {report}"));
    (f.sequence, f.kind)
}

#[tokio::test]
async fn the_triggers_refuse_updates_and_deletes() {
    let fx = Fixture::new();
    let _log = ten_records(&fx).await;
    let mut conn = raw(&fx.db_path(PROCESS)).await;
    for sql in [
        "UPDATE audit_records SET detail = 'x' WHERE sequence = 1",
        "DELETE FROM audit_records WHERE sequence = 10",
        "UPDATE audit_heads SET sequence = 0",
        "DELETE FROM audit_heads",
    ] {
        let err = sqlx::query(sql)
            .execute(&mut conn)
            .await
            .expect_err("append-only");
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    close(conn).await;
}

#[tokio::test]
async fn an_edited_field_is_named() {
    let fx = Fixture::new();
    let log = ten_records(&fx).await;
    let mut conn = attacker(&fx.db_path(PROCESS)).await;
    sqlx::query("UPDATE audit_records SET key_id = 'key-stolen' WHERE sequence = 4")
        .execute(&mut conn)
        .await
        .expect("tamper");
    close(conn).await;

    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert_eq!(first(&report), (4, FindingKind::HashMismatch), "{report}");
    assert_eq!(report.findings.len(), 1, "{report}");
}

#[tokio::test]
async fn an_edit_with_a_recomputed_hash_breaks_the_chain_or_a_head() {
    let fx = Fixture::new();
    let log = ten_records(&fx).await;
    let records = log.query(&Default::default()).await.expect("query");
    let mut conn = attacker(&fx.db_path(PROCESS)).await;
    // Record 7 rewritten with a consistent hash: record 8 no longer chains.
    // Record 10 (the tail) likewise: only the signed head at 10 catches it.
    for seq in [7u64, 10] {
        let mut forged = records[seq as usize - 1].clone();
        forged.outcome = "refused:policy".into();
        forged.record_hash = forged.compute_hash();
        sqlx::query("UPDATE audit_records SET outcome = ?, record_hash = ? WHERE sequence = ?")
            .bind(&forged.outcome)
            .bind(&forged.record_hash[..])
            .bind(seq as i64)
            .execute(&mut conn)
            .await
            .expect("tamper");
    }
    close(conn).await;

    let report = log.verify(&fx.verifier()).await.expect("verify");
    let found: Vec<(u64, FindingKind)> = report
        .findings
        .iter()
        .map(|f| (f.sequence, f.kind))
        .collect();
    assert_eq!(
        found,
        vec![
            (8, FindingKind::ChainBreak),
            (10, FindingKind::HeadMismatch)
        ],
        "{report}"
    );
    assert!(report.findings[0].reason.contains("record 7"));
}

#[tokio::test]
async fn a_deleted_record_is_named() {
    let fx = Fixture::new();
    let log = ten_records(&fx).await;
    let mut conn = attacker(&fx.db_path(PROCESS)).await;
    sqlx::query("DELETE FROM audit_records WHERE sequence = 6")
        .execute(&mut conn)
        .await
        .expect("tamper");
    close(conn).await;

    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert_eq!(first(&report), (6, FindingKind::Missing), "{report}");
    assert_eq!(report.findings.len(), 1, "{report}");
}

#[tokio::test]
async fn a_truncated_tail_is_named_by_the_signed_head() {
    let fx = Fixture::new();
    let log = ten_records(&fx).await;
    let mut conn = attacker(&fx.db_path(PROCESS)).await;
    sqlx::query("DELETE FROM audit_records WHERE sequence >= 8")
        .execute(&mut conn)
        .await
        .expect("tamper");
    close(conn).await;

    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert_eq!(first(&report), (8, FindingKind::Truncated), "{report}");
    assert_eq!(report.findings.len(), 1, "{report}");
    assert_eq!(report.heads_matched, 1, "the head at 5 still matches");
}

#[tokio::test]
async fn swapped_sequences_are_named() {
    let fx = Fixture::new();
    let log = ten_records(&fx).await;
    let mut conn = attacker(&fx.db_path(PROCESS)).await;
    for sql in [
        "UPDATE audit_records SET sequence = 1000 WHERE sequence = 3",
        "UPDATE audit_records SET sequence = 3 WHERE sequence = 4",
        "UPDATE audit_records SET sequence = 4 WHERE sequence = 1000",
    ] {
        sqlx::query(sql).execute(&mut conn).await.expect(sql);
    }
    close(conn).await;

    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert_eq!(first(&report), (3, FindingKind::HashMismatch), "{report}");
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.sequence == 4 && f.kind == FindingKind::HashMismatch),
        "{report}"
    );
}

#[tokio::test]
async fn reordered_export_lines_are_named() {
    let fx = Fixture::new();
    let log = ten_records(&fx).await;
    let mut records = log.query(&Default::default()).await.expect("query");
    let heads = log.all_signed_heads().await.expect("heads");
    records.swap(5, 6); // file order ... 5, 7, 6, 8 ...
    let report = verify_log(PROCESS, &records, &heads, &fx.verifier());
    assert_eq!(first(&report), (6, FindingKind::OutOfOrder), "{report}");
    assert_eq!(report.findings.len(), 1, "{report}");
}

/// Inserts `forged` as a row, its hash correct for its own fields.
async fn insert(conn: &mut sqlx::SqliteConnection, r: &sigil_audit::Record) {
    sqlx::query(
        "INSERT INTO audit_records (sequence, process, timestamp, actor, action, key_id, \
         request_id, digest, quorum, session_id, outcome, culprits, detail, previous_hash, \
         record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(r.sequence as i64)
    .bind(&r.process)
    .bind(&r.timestamp)
    .bind(&r.actor)
    .bind(&r.action)
    .bind(&r.key_id)
    .bind(&r.request_id)
    .bind(&r.digest)
    .bind(serde_json::to_string(&r.quorum).unwrap())
    .bind(&r.session_id)
    .bind(&r.outcome)
    .bind(serde_json::to_string(&r.culprits).unwrap())
    .bind(&r.detail)
    .bind(&r.previous_hash[..])
    .bind(&r.record_hash[..])
    .execute(conn)
    .await
    .expect("insert forged record");
}

#[tokio::test]
async fn an_inserted_forged_record_is_named() {
    let fx = Fixture::new();
    let log = ten_records(&fx).await;
    let records = log.query(&Default::default()).await.expect("query");
    let mut conn = attacker(&fx.db_path(PROCESS)).await;

    // Appended at 11 with a correct hash of its own, but not chained.
    let mut forged = records[9].clone();
    forged.sequence = 11;
    forged.action = "share_issued".into();
    forged.session_id = "feedface".into();
    forged.previous_hash = [0x42; 32];
    forged.record_hash = forged.compute_hash();
    insert(&mut conn, &forged).await;

    // Record 3 replaced by a forgery chained to the genesis hash.
    let mut replaced = records[2].clone();
    replaced.detail = "nothing happened".into();
    replaced.previous_hash = genesis_hash(PROCESS);
    replaced.record_hash = replaced.compute_hash();
    sqlx::query("DELETE FROM audit_records WHERE sequence = 3")
        .execute(&mut conn)
        .await
        .expect("delete");
    insert(&mut conn, &replaced).await;
    close(conn).await;

    let report = log.verify(&fx.verifier()).await.expect("verify");
    let found: Vec<(u64, FindingKind)> = report
        .findings
        .iter()
        .map(|f| (f.sequence, f.kind))
        .collect();
    assert_eq!(
        found,
        vec![
            (3, FindingKind::ChainBreak),
            (4, FindingKind::ChainBreak),
            (11, FindingKind::ChainBreak)
        ],
        "{report}"
    );
}

#[tokio::test]
async fn an_edited_signed_head_is_named() {
    let fx = Fixture::new();
    let log = ten_records(&fx).await;
    let mut conn = attacker(&fx.db_path(PROCESS)).await;
    // Claim the log had only 9 records when the second head was signed.
    let hash9: Vec<u8> = sqlx::query("SELECT record_hash FROM audit_records WHERE sequence = 9")
        .fetch_one(&mut conn)
        .await
        .expect("hash")
        .get(0);
    sqlx::query("UPDATE audit_heads SET sequence = 9, head_hash = ? WHERE sequence = 10")
        .bind(hash9)
        .execute(&mut conn)
        .await
        .expect("tamper");
    close(conn).await;

    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert_eq!(first(&report), (9, FindingKind::HeadSignature), "{report}");
    assert!(
        report.findings[0]
            .reason
            .contains("signature does not verify"),
        "{report}"
    );
    assert_eq!(report.findings.len(), 1, "{report}");
}

#[tokio::test]
async fn a_head_signed_by_another_identity_is_named() {
    let fx = Fixture::new();
    let log = ten_records(&fx).await;
    let records = log.query(&Default::default()).await.expect("query");
    let mut heads = log.all_signed_heads().await.expect("heads");

    // Node 2 (a valid cluster identity) signs a head for node-3's log.
    let node2 = fx.tls(&Identity::Node(2)).identity_key().expect("key");
    let last = &records[9];
    let timestamp = heads[1].timestamp.clone();
    let forged = SignedHead {
        process: PROCESS.into(),
        sequence: 10,
        head_hash: last.record_hash,
        signature: node2
            .sign(&head_signing_bytes(
                PROCESS,
                10,
                &last.record_hash,
                &timestamp,
            ))
            .expect("sign"),
        timestamp,
        certificate_chain: node2.chain().iter().map(|c| c.to_vec()).collect(),
        link: None,
    };
    heads[1] = forged.clone();
    let report = verify_log(PROCESS, &records, &heads, &fx.verifier());
    assert_eq!(first(&report), (10, FindingKind::HeadSignature), "{report}");
    assert!(
        report.findings[0].reason.contains("node/2"),
        "names the wrong signer: {report}"
    );

    // A verifier whose identity rule says node 2 signs for node-3 accepts it.
    let lenient = fx
        .verifier()
        .with_identity_map(|process| (process == PROCESS).then_some(Identity::Node(2)));
    let report = verify_log(PROCESS, &records, &[forged], &lenient);
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn another_process_log_does_not_verify() {
    let fx = Fixture::new();
    let node3 = ten_records(&fx).await;
    let records = node3.query(&Default::default()).await.expect("query");
    let heads = node3.all_signed_heads().await.expect("heads");
    // Presented as node 2's log: every record names node-3, the chain
    // starts from node-3's genesis, and the heads are node-3's.
    let report = verify_log("node-2", &records, &heads, &fx.verifier());
    let f = report.first_for("node-2").expect("finding");
    assert_eq!(
        (f.sequence, f.kind),
        (1, FindingKind::WrongProcess),
        "{report}"
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.sequence == 1 && f.kind == FindingKind::ChainBreak),
        "{report}"
    );
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::HeadProcess),
        "{report}"
    );
}
