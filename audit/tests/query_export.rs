//! Queries by time, key, actor, action and outcome with paging and limits;
//! JSON-lines export that verifies offline.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::Fixture;
use sigil_audit::{
    AuditError, AuditLog, DEFAULT_LIMIT, Entry, Filter, MAX_LIMIT, Record, action, outcome,
    parse_heads_jsonl, parse_jsonl, verify_log,
};
use sigil_tls::Identity;

const PAYMENTS: &str = "spiffe://sigil.local/client/payments";
const OPS: &str = "spiffe://sigil.local/client/ops";

/// 30 varied records.
async fn populated(fx: &Fixture) -> (AuditLog, Vec<Record>) {
    let log = fx.open("coordinator", &Identity::Coordinator).await;
    let mut all = Vec::new();
    for n in 0..30u16 {
        let (actor, act) = match n % 3 {
            0 => (PAYMENTS, action::REQUEST),
            1 => (PAYMENTS, action::SIGNATURE_RETURNED),
            _ => (OPS, action::KEY_CREATED),
        };
        let mut e = Entry::new(actor, act)
            .key_id(format!("key-{}", n % 4))
            .request_id(format!("req-{n}"))
            .quorum(vec![1, 2]);
        e = match n % 5 {
            0 => e.refused("policy"),
            1 => e.refused("rate_limit"),
            2 => e.error("node_unavailable"),
            _ => e,
        };
        all.push(log.append(e).await.expect("append"));
        if n % 10 == 4 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    (log, all)
}

async fn check(log: &AuditLog, all: &[Record], filter: Filter) -> Vec<Record> {
    let got = log.query(&filter).await.expect("query");
    let want: Vec<Record> = all
        .iter()
        .filter(|r| filter.matches(r).expect("filter"))
        .take(filter.effective_limit() as usize)
        .cloned()
        .collect();
    assert_eq!(got, want, "{filter:?}");
    got
}

#[tokio::test]
async fn queries_filter_and_page() {
    let fx = Fixture::new();
    let (log, all) = populated(&fx).await;

    assert_eq!(check(&log, &all, Filter::default()).await.len(), 30);
    assert_eq!(
        check(&log, &all, Filter::default().key_id("key-1"))
            .await
            .len(),
        8
    );
    assert_eq!(
        check(&log, &all, Filter::default().actor(OPS)).await.len(),
        10
    );
    assert_eq!(
        check(
            &log,
            &all,
            Filter::default().action(action::SIGNATURE_RETURNED)
        )
        .await
        .len(),
        10
    );
    // Empty strings are unset, as in the gRPC request.
    assert_eq!(
        check(&log, &all, Filter::default().key_id("").actor(""))
            .await
            .len(),
        30
    );

    // An outcome class matches each of its kinds; an exact outcome only itself.
    assert_eq!(
        check(&log, &all, Filter::default().outcome(outcome::REFUSED))
            .await
            .len(),
        12
    );
    assert_eq!(
        check(&log, &all, Filter::default().outcome("refused:policy"))
            .await
            .len(),
        6
    );
    assert_eq!(
        check(&log, &all, Filter::default().outcome("ok"))
            .await
            .len(),
        12
    );
    assert_eq!(
        check(&log, &all, Filter::default().outcome("refuse"))
            .await
            .len(),
        0
    );

    // Inclusive time bounds, in any RFC 3339 offset.
    let from = all[5].timestamp.clone();
    let to = all[24].timestamp.clone();
    let window = check(&log, &all, Filter::default().from_time(&from).to_time(&to)).await;
    assert!(window.iter().any(|r| r.sequence == 6) && window.iter().any(|r| r.sequence == 25));
    assert!(
        window
            .iter()
            .all(|r| r.timestamp >= from && r.timestamp <= to)
    );
    let shifted = to.replace('Z', "+00:00");
    check(&log, &all, Filter::default().to_time(shifted)).await;
    let err = log
        .query(&Filter::default().from_time("last tuesday"))
        .await
        .expect_err("bad time");
    assert!(matches!(err, AuditError::InvalidFilter(_)), "{err}");

    // Paging with after_sequence and limit; combined conditions.
    let mut seen = Vec::new();
    let mut page = Filter::default().action(action::REQUEST).limit(3);
    loop {
        let got = check(&log, &all, page.clone()).await;
        let Some(last) = got.last() else { break };
        page = page.after_sequence(last.sequence);
        seen.extend(got.into_iter().map(|r| r.sequence));
    }
    assert_eq!(seen, (1..=30).step_by(3).collect::<Vec<u64>>());
    check(
        &log,
        &all,
        Filter::default()
            .actor(PAYMENTS)
            .key_id("key-0")
            .outcome("refused")
            .after_sequence(2),
    )
    .await;

    assert_eq!(Filter::default().effective_limit(), DEFAULT_LIMIT);
    assert_eq!(Filter::default().limit(0).effective_limit(), DEFAULT_LIMIT);
    assert_eq!(Filter::default().limit(50_000).effective_limit(), MAX_LIMIT);
}

#[tokio::test]
async fn the_default_limit_applies() {
    let fx = Fixture::new();
    let log = fx.open("node-1", &Identity::Node(1)).await;
    let tasks: Vec<_> = (0..DEFAULT_LIMIT as usize + 5)
        .map(|n| {
            let log = log.clone();
            tokio::spawn(async move { log.append(common::entry(n)).await })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("append");
    }
    let got = log.query(&Filter::default()).await.expect("query");
    assert_eq!(got.len(), DEFAULT_LIMIT as usize);
    assert_eq!(
        got.last().map(|r| r.sequence),
        Some(u64::from(DEFAULT_LIMIT))
    );
    let rest = log
        .query(&Filter::default().after_sequence(u64::from(DEFAULT_LIMIT)))
        .await
        .expect("query");
    assert_eq!(rest.len(), 5);

    // An export is not limited, and pages internally.
    let mut out = Vec::new();
    let n = log
        .export_jsonl(&Filter::default(), &mut out)
        .await
        .expect("export");
    assert_eq!(n, u64::from(DEFAULT_LIMIT) + 5);
    assert_eq!(
        parse_jsonl(out.as_slice()).expect("parse").len(),
        n as usize
    );
}

#[tokio::test]
async fn an_export_verifies_offline() {
    let fx = Fixture::new();
    let (log, all) = populated(&fx).await;
    log.sign_head().await.expect("head");
    log.append(Entry::new(PAYMENTS, action::REQUEST))
        .await
        .expect("append");
    log.stop().await.expect("final head");

    let mut records = Vec::new();
    assert_eq!(
        log.export_jsonl(&Filter::default(), &mut records)
            .await
            .expect("export"),
        31
    );
    let mut heads = Vec::new();
    assert_eq!(log.export_heads_jsonl(&mut heads).await.expect("export"), 2);
    let text = String::from_utf8(records.clone()).expect("utf-8");
    assert_eq!(text.lines().count(), 31);
    assert_eq!(text.lines().next(), Some(all[0].to_json_line().as_str()));

    // An auditor with the files and the CA certificate only.
    let records = parse_jsonl(records.as_slice()).expect("parse");
    let heads = parse_heads_jsonl(heads.as_slice()).expect("parse");
    assert_eq!(&records[..30], &all[..]);
    let verifier = sigil_audit::TlsHeadVerifier::from_ca_pem(
        &std::fs::read(fx.pki.ca_cert()).expect("ca"),
        fx.domain.clone(),
    )
    .expect("verifier");
    let report = verify_log("coordinator", &records, &heads, &verifier);
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.heads_matched, 2);

    // A filtered export exports the matching records.
    let mut refused = Vec::new();
    log.export_jsonl(&Filter::default().outcome("refused").limit(4), &mut refused)
        .await
        .expect("export");
    let refused = parse_jsonl(refused.as_slice()).expect("parse");
    assert_eq!(refused.len(), 4);
    assert!(refused.iter().all(|r| r.outcome.starts_with("refused:")));
}
