//! The coordinator's log against the nodes' logs: a rogue coordinator that
//! drives signing sessions without recording them is caught by the nodes'
//! records, and a signature returned without enough shares is caught by
//! the coordinator's.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use common::Fixture;
use sigil_audit::{
    AuditLog, COORDINATOR_PROCESS, Entry, FindingKind, NodeLog, Record, action, cross_check,
    node_process,
};
use sigil_tls::Identity;

const COORD_ACTOR: &str = "spiffe://sigil.local/coordinator";
const CLIENT: &str = "spiffe://sigil.local/client/payments";

struct Cluster {
    fx: Fixture,
    coordinator: AuditLog,
    nodes: Vec<AuditLog>,
}

impl Cluster {
    async fn new() -> Self {
        let fx = Fixture::new();
        let coordinator = fx.open(COORDINATOR_PROCESS, &Identity::Coordinator).await;
        let mut nodes = Vec::new();
        for id in 1..=3u16 {
            nodes.push(fx.open(&node_process(id), &Identity::Node(id)).await);
        }
        Self {
            fx,
            coordinator,
            nodes,
        }
    }

    /// The honest flow of one signature by `quorum`.
    async fn sign(&self, session: &str, quorum: &[u16], digest: &[u8]) {
        self.open_session(session, quorum, digest).await;
        for id in quorum {
            self.share(*id, session, digest).await;
        }
        self.returned(session, quorum, digest).await;
    }

    async fn open_session(&self, session: &str, quorum: &[u16], digest: &[u8]) {
        self.coordinator
            .append(
                Entry::new(CLIENT, action::SIGN_SESSION)
                    .key_id("key-1")
                    .request_id(format!("req-{session}"))
                    .digest(digest.to_vec())
                    .quorum(quorum.to_vec())
                    .session_id(session),
            )
            .await
            .expect("append");
    }

    async fn share(&self, node: u16, session: &str, digest: &[u8]) -> Record {
        self.nodes[usize::from(node) - 1]
            .append(
                Entry::new(COORD_ACTOR, action::SHARE_ISSUED)
                    .key_id("key-1")
                    .digest(digest.to_vec())
                    .session_id(session),
            )
            .await
            .expect("append")
    }

    async fn returned(&self, session: &str, signers: &[u16], digest: &[u8]) -> Record {
        self.coordinator
            .append(
                Entry::new(CLIENT, action::SIGNATURE_RETURNED)
                    .key_id("key-1")
                    .request_id(format!("req-{session}"))
                    .digest(digest.to_vec())
                    .quorum(signers.to_vec())
                    .session_id(session),
            )
            .await
            .expect("append")
    }

    async fn logs(&self) -> (Vec<Record>, Vec<(u16, Vec<Record>)>) {
        let coordinator = self
            .coordinator
            .query(&Default::default())
            .await
            .expect("query");
        let mut nodes = Vec::new();
        for (i, log) in self.nodes.iter().enumerate() {
            let id = u16::try_from(i + 1).unwrap();
            nodes.push((id, log.query(&Default::default()).await.expect("query")));
        }
        (coordinator, nodes)
    }

    async fn check(&self) -> sigil_audit::Report {
        let (coordinator, nodes) = self.logs().await;
        let node_logs: Vec<NodeLog<'_>> = nodes
            .iter()
            .map(|(id, records)| NodeLog {
                node_id: *id,
                records,
            })
            .collect();
        // Each log is intact on its own.
        let verifier = self.fx.verifier();
        for log in std::iter::once(&self.coordinator).chain(&self.nodes) {
            log.sign_head().await.expect("head");
            let report = log.verify(&verifier).await.expect("verify");
            assert!(report.is_ok(), "{report}");
        }
        cross_check(&coordinator, &node_logs)
    }
}

#[tokio::test]
async fn honest_logs_agree() {
    let c = Cluster::new().await;
    c.sign("aa01", &[1, 2], b"digest-1").await;
    c.sign("aa02", &[2, 3], b"digest-2").await;
    c.sign("aa03", &[1, 3], b"digest-3").await;
    let report = c.check().await;
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn a_session_the_coordinator_did_not_record_is_named() {
    let c = Cluster::new().await;
    c.sign("aa01", &[1, 2], b"digest-1").await;
    // A rogue coordinator has nodes 2 and 3 sign, and records nothing.
    c.share(2, "bb02", b"exfiltrate").await;
    let rogue = c.share(3, "bb02", b"exfiltrate").await;
    let report = c.check().await;

    let node2 = report.first_for("node-2").expect("node-2 finding");
    assert_eq!(
        (node2.sequence, node2.kind),
        (2, FindingKind::UnknownSession),
        "{report}"
    );
    let node3 = report.first_for("node-3").expect("node-3 finding");
    assert_eq!(
        (node3.sequence, node3.kind),
        (rogue.sequence, FindingKind::UnknownSession),
        "{report}"
    );
    assert!(node3.reason.contains("bb02"), "{report}");
    assert!(report.first_for("node-1").is_none(), "{report}");
    assert_eq!(report.findings.len(), 2, "{report}");
}

#[tokio::test]
async fn a_share_outside_the_recorded_quorum_is_named() {
    let c = Cluster::new().await;
    c.open_session("cc01", &[1, 2], b"d").await;
    c.share(1, "cc01", b"d").await;
    c.share(2, "cc01", b"d").await;
    let outsider = c.share(3, "cc01", b"d").await;
    c.returned("cc01", &[1, 2], b"d").await;
    let report = c.check().await;
    let f = report.first_for("node-3").expect("finding");
    assert_eq!(
        (f.sequence, f.kind),
        (outsider.sequence, FindingKind::UnknownSession)
    );
    assert!(f.reason.contains("does not include node 3"), "{report}");
    assert_eq!(report.findings.len(), 1, "{report}");
}

#[tokio::test]
async fn a_share_over_another_digest_is_named() {
    let c = Cluster::new().await;
    c.open_session("dd01", &[1, 2], b"approved").await;
    c.share(1, "dd01", b"approved").await;
    let swapped = c.share(2, "dd01", b"something else").await;
    let report = c.check().await;
    let f = report.first_for("node-2").expect("finding");
    assert_eq!(
        (f.sequence, f.kind),
        (swapped.sequence, FindingKind::SessionMismatch)
    );
}

#[tokio::test]
async fn a_signature_without_enough_shares_is_named() {
    let c = Cluster::new().await;
    c.sign("ee01", &[1, 2], b"d1").await;
    // The coordinator claims nodes 1 and 3 signed; only node 1 did.
    c.open_session("ee02", &[1, 3], b"d2").await;
    c.share(1, "ee02", b"d2").await;
    let unbacked = c.returned("ee02", &[1, 3], b"d2").await;
    let report = c.check().await;
    let f = report.first_for(COORDINATOR_PROCESS).expect("finding");
    assert_eq!(
        (f.sequence, f.kind),
        (unbacked.sequence, FindingKind::UnbackedSignature),
        "{report}"
    );
    assert!(f.reason.contains("1 of its 2"), "{report}");
    assert!(f.reason.contains("node 3"), "{report}");
    assert_eq!(report.findings.len(), 1, "{report}");

    // Without node 3's log, nothing backs its part either.
    let (coordinator, nodes) = c.logs().await;
    let partial = [NodeLog {
        node_id: 1,
        records: &nodes[0].1,
    }];
    let report = cross_check(&coordinator, &partial);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.reason.contains("no log supplied")),
        "{report}"
    );
}

#[tokio::test]
async fn every_share_issued_for_a_session_recorded_as_failed_is_named() {
    let c = Cluster::new().await;
    c.sign("ff01", &[1, 2], b"d1").await;
    // Both signers issued their shares, yet the coordinator says it failed
    // without blaming anyone: it may hold a signature it never recorded.
    c.open_session("ff02", &[2, 3], b"d2").await;
    c.share(2, "ff02", b"d2").await;
    c.share(3, "ff02", b"d2").await;
    let failed = |outcome: &str, culprits: Vec<u16>| {
        Entry::new(CLIENT, action::SIGN_SESSION_FAILED)
            .key_id("key-1")
            .request_id("req-ff02")
            .digest(b"d2".to_vec())
            .quorum(vec![2, 3])
            .session_id("ff02")
            .outcome(outcome)
            .culprits(culprits)
    };
    let suspicious = c
        .coordinator
        .append(failed("error:unavailable", vec![]))
        .await
        .expect("append");
    // Failures that explain themselves are not named: a culprit's share
    // was bad, or the output did not combine with nobody to blame.
    c.coordinator
        .append(failed("error:misbehaviour", vec![3]))
        .await
        .expect("append");
    c.coordinator
        .append(failed("error:unattributed", vec![]))
        .await
        .expect("append");
    // Only one of two shares issued: nothing to say.
    c.open_session("ff03", &[1, 3], b"d3").await;
    c.share(1, "ff03", b"d3").await;
    c.coordinator
        .append(
            Entry::new(CLIENT, action::SIGN_SESSION_FAILED)
                .key_id("key-1")
                .digest(b"d3".to_vec())
                .quorum(vec![1, 3])
                .session_id("ff03")
                .error("unavailable"),
        )
        .await
        .expect("append");
    let report = c.check().await;
    let f = report.first_for(COORDINATOR_PROCESS).expect("finding");
    assert_eq!(
        (f.sequence, f.kind),
        (suspicious.sequence, FindingKind::SharesForFailedSession),
        "{report}"
    );
    assert!(f.reason.contains("ff02"), "{report}");
    assert_eq!(report.findings.len(), 1, "{report}");
}

#[tokio::test]
async fn session_records_without_key_or_digest_are_named() {
    let c = Cluster::new().await;
    c.sign("ab01", &[1, 2], b"d1").await;
    let no_key = c
        .coordinator
        .append(
            Entry::new(CLIENT, action::SIGN_SESSION)
                .digest(b"d2".to_vec())
                .quorum(vec![1, 2])
                .session_id("ab02"),
        )
        .await
        .expect("append");
    let no_digest = c
        .coordinator
        .append(
            Entry::new(CLIENT, action::SIGNATURE_RETURNED)
                .key_id("key-1")
                .quorum(vec![1, 2])
                .session_id("ab01"),
        )
        .await
        .expect("append");
    let report = c.check().await;
    let found: Vec<(u64, FindingKind)> = report
        .findings_for(COORDINATOR_PROCESS)
        .map(|f| (f.sequence, f.kind))
        .collect();
    assert_eq!(
        found,
        vec![
            (no_key.sequence, FindingKind::EmptySessionField),
            (no_digest.sequence, FindingKind::EmptySessionField),
        ],
        "{report}"
    );
    assert!(report.findings[0].reason.contains("no key id"), "{report}");
    assert!(report.findings[1].reason.contains("no digest"), "{report}");
}
