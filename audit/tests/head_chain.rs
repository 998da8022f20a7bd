//! Heads form their own chain, and heads seen by other processes pin a log
//! even when its tail is deleted together with its own heads.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::{Fixture, entry};
use sigil_audit::{
    AuditLog, COORDINATOR_PROCESS, FindingKind, HeadLink, ProcessLog, Record, Report, SignedHead,
    check_seen_heads, head_seen_entry, head_signing_bytes, node_process, verify_log,
};
use sigil_tls::Identity;

const COORD_ACTOR: &str = "spiffe://sigil.local/coordinator";

async fn records(log: &AuditLog) -> Vec<Record> {
    log.query(&Default::default()).await.expect("query")
}

/// `n` records with a head signed after each.
async fn grow(log: &AuditLog, n: usize) -> Vec<SignedHead> {
    let mut heads = Vec::new();
    for i in 0..n {
        log.append(entry(i)).await.expect("append");
        heads.push(log.sign_head().await.expect("head"));
    }
    heads
}

fn first(report: &Report) -> (u64, FindingKind) {
    let f = report.findings.first().expect("a finding");
    (f.sequence, f.kind)
}

#[tokio::test]
async fn heads_are_chained_and_verify() {
    let fx = Fixture::new();
    let log = fx.open("node-1", &Identity::Node(1)).await;
    let heads = grow(&log, 4).await;
    assert_eq!(heads[0].link, Some(HeadLink::FIRST));
    for pair in heads.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (la, lb) = (a.link.expect("link"), b.link.expect("link"));
        assert_eq!(lb.index, la.index + 1);
        assert_eq!(lb.previous, a.id());
    }
    assert_eq!(log.all_signed_heads().await.expect("heads"), heads);
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.heads_matched, 4);

    // The chain continues across a reopen.
    log.stop().await.expect("stop");
    let reopened = fx.open("node-1", &Identity::Node(1)).await;
    let next = reopened.sign_head().await.expect("head");
    let all = reopened.all_signed_heads().await.expect("heads");
    let before = &all[all.len() - 2];
    assert_eq!(
        next.link,
        Some(before.link.expect("link").next(before.id()))
    );
    let report = reopened.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn a_deleted_head_is_a_head_sequence_gap() {
    let fx = Fixture::new();
    let log = fx.open("node-1", &Identity::Node(1)).await;
    let mut heads = grow(&log, 5).await;
    let records = records(&log).await;
    let removed = heads.remove(2);
    let report = verify_log("node-1", &records, &heads, &fx.verifier());
    assert_eq!(
        first(&report),
        (heads[2].sequence, FindingKind::HeadGap),
        "{report}"
    );
    assert!(
        report.findings[0]
            .reason
            .contains(&format!("head #{} is missing", removed.link.unwrap().index)),
        "{report}"
    );
    assert_eq!(report.findings.len(), 1, "{report}");

    // The first heads deleted: the chain no longer starts at #1.
    let report = verify_log("node-1", &records, &heads[2..], &fx.verifier());
    assert_eq!(
        first(&report),
        (heads[2].sequence, FindingKind::HeadGap),
        "{report}"
    );
    assert!(report.findings[0].reason.contains("#1..=#3"), "{report}");
}

#[tokio::test]
async fn a_replaced_head_breaks_the_head_chain() {
    let fx = Fixture::new();
    let log = fx.open("node-1", &Identity::Node(1)).await;
    let mut heads = grow(&log, 4).await;
    let records = records(&log).await;
    // The process's own key re-signs head #2 with another previous head:
    // its signature is valid, its link is not.
    let key = fx.tls(&Identity::Node(1)).identity_key().expect("key");
    let mut forged = heads[1].clone();
    forged.link = Some(HeadLink {
        index: 2,
        previous: [7; 32],
    });
    forged.signature = key.sign(&forged.signing_bytes()).expect("sign");
    heads[1] = forged.clone();
    let report = verify_log("node-1", &records, &heads, &fx.verifier());
    assert_eq!(
        first(&report),
        (forged.sequence, FindingKind::HeadChainBreak),
        "{report}"
    );
    assert!(report.findings[0].reason.contains("#2"), "{report}");
    // Head #3 names the original #2, not the forgery.
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.kind == FindingKind::HeadChainBreak),
        "{report}"
    );

    // Two different heads claiming the same index.
    let mut twin = heads[2].clone();
    twin.timestamp = heads[3].timestamp.clone();
    twin.signature = key.sign(&twin.signing_bytes()).expect("sign");
    let mut with_twin = records_heads(&log).await;
    with_twin.push(twin);
    let report = verify_log("node-1", &records, &with_twin, &fx.verifier());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::HeadChainBreak && f.reason.contains("claim index")),
        "{report}"
    );
}

async fn records_heads(log: &AuditLog) -> Vec<SignedHead> {
    log.all_signed_heads().await.expect("heads")
}

/// Heads signed before the chain existed have no link and the v1 layout:
/// they still verify, and the chain starts at #1 after them.
#[tokio::test]
async fn legacy_heads_still_verify() {
    let fx = Fixture::new();
    let log = fx.open("node-1", &Identity::Node(1)).await;
    log.append(entry(1)).await.expect("append");
    let records = records(&log).await;
    let key = fx.tls(&Identity::Node(1)).identity_key().expect("key");
    let timestamp = records[0].timestamp.clone();
    let legacy = SignedHead {
        process: "node-1".into(),
        sequence: 1,
        head_hash: records[0].record_hash,
        signature: key
            .sign(&head_signing_bytes(
                "node-1",
                1,
                &records[0].record_hash,
                &timestamp,
            ))
            .expect("sign"),
        timestamp,
        certificate_chain: key.chain().iter().map(|c| c.to_vec()).collect(),
        link: None,
    };
    // Stored as an older version of the log stored it.
    let chain: Vec<String> = legacy.certificate_chain.iter().map(hex::encode).collect();
    let mut conn = common::raw(&fx.db_path("node-1")).await;
    sqlx::query(
        "INSERT INTO audit_heads (process, sequence, head_hash, timestamp, signature, \
         certificate_chain) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&legacy.process)
    .bind(1i64)
    .bind(&legacy.head_hash[..])
    .bind(&legacy.timestamp)
    .bind(&legacy.signature)
    .bind(serde_json::to_string(&chain).unwrap())
    .execute(&mut conn)
    .await
    .expect("insert");
    common::close(conn).await;

    let next = log.sign_head().await.expect("head");
    assert_eq!(next.link, Some(HeadLink::FIRST));
    let heads = records_heads(&log).await;
    assert_eq!(heads, vec![legacy, next]);
    let report = log.verify(&fx.verifier()).await.expect("verify");
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.heads_matched, 2);
}

struct Logs {
    fx: Fixture,
    coordinator: AuditLog,
    node: AuditLog,
}

/// A coordinator that saw node-1's head after 6 of its records.
async fn seen() -> (Logs, SignedHead) {
    let fx = Fixture::new();
    let coordinator = fx.open(COORDINATOR_PROCESS, &Identity::Coordinator).await;
    let node = fx.open(&node_process(1), &Identity::Node(1)).await;
    grow(&node, 3).await;
    for i in 0..3 {
        node.append(entry(10 + i)).await.expect("append");
    }
    let head = node.sign_head().await.expect("head");
    coordinator
        .append(head_seen_entry(COORD_ACTOR, &head))
        .await
        .expect("append");
    coordinator.sign_head().await.expect("head");
    (
        Logs {
            fx,
            coordinator,
            node,
        },
        head,
    )
}

fn check(coordinator: (&[Record], &[SignedHead]), node: (&[Record], &[SignedHead])) -> Report {
    check_seen_heads(&[
        ProcessLog {
            process: COORDINATOR_PROCESS,
            records: coordinator.0,
            heads: coordinator.1,
        },
        ProcessLog {
            process: "node-1",
            records: node.0,
            heads: node.1,
        },
    ])
}

#[tokio::test]
async fn a_tail_deleted_with_its_heads_is_caught_by_a_head_another_process_saw() {
    let (logs, head) = seen().await;
    let c_records = records(&logs.coordinator).await;
    let c_heads = records_heads(&logs.coordinator).await;
    let n_records = records(&logs.node).await;
    let n_heads = records_heads(&logs.node).await;
    assert!(check((&c_records, &c_heads), (&n_records, &n_heads)).is_ok());

    // Records 4..=6 and every head covering them deleted: node-1's log
    // verifies on its own.
    let kept: Vec<Record> = n_records.iter().take(3).cloned().collect();
    let kept_heads: Vec<SignedHead> = n_heads.iter().take(3).cloned().collect();
    let alone = verify_log("node-1", &kept, &kept_heads, &logs.fx.verifier());
    assert!(alone.is_ok(), "{alone}");
    let report = check((&c_records, &c_heads), (&kept, &kept_heads));
    let f = report.first_for("node-1").expect("node-1 named");
    assert_eq!(
        (f.sequence, f.kind),
        (4, FindingKind::TruncatedSeenHead),
        "{report}"
    );
    assert!(f.reason.contains("coordinator saw"), "{report}");
    assert!(
        f.reason.contains(&format!("covering {}", head.sequence)),
        "{report}"
    );
    assert!(report.first_for(COORDINATOR_PROCESS).is_none(), "{report}");

    // Everything deleted: an empty log with a known head.
    let report = check((&c_records, &c_heads), (&[], &[]));
    let f = report.first_for("node-1").expect("node-1 named");
    assert_eq!(
        (f.sequence, f.kind),
        (1, FindingKind::EmptyLogSeenHead),
        "{report}"
    );

    // Only the last heads deleted: the records are there, the heads are not.
    let report = check((&c_records, &c_heads), (&n_records, &kept_heads));
    let f = report.first_for("node-1").expect("node-1 named");
    assert_eq!(
        (f.sequence, f.kind),
        (head.sequence, FindingKind::SeenHeadMissing),
        "{report}"
    );

    // A log that was not supplied is not judged.
    let report = check_seen_heads(&[ProcessLog {
        process: COORDINATOR_PROCESS,
        records: &c_records,
        heads: &c_heads,
    }]);
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn a_rewritten_log_differs_from_the_head_another_process_saw() {
    let (logs, head) = seen().await;
    let c_records = records(&logs.coordinator).await;
    let c_heads = records_heads(&logs.coordinator).await;
    let mut n_records = records(&logs.node).await;
    let n_heads = records_heads(&logs.node).await;
    let last = n_records.len() - 1;
    n_records[last].detail = "nothing happened".into();
    n_records[last].record_hash = n_records[last].compute_hash();
    let report = check((&c_records, &c_heads), (&n_records, &n_heads));
    let f = report.first_for("node-1").expect("node-1 named");
    assert_eq!(
        (f.sequence, f.kind),
        (head.sequence, FindingKind::SeenHeadMismatch),
        "{report}"
    );
}
