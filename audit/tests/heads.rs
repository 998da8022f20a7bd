//! Signed heads with real certificate keys: they verify against the CA and
//! the expected identity, at the time they were signed, and follow
//! certificate reloads.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, entry};
use sigil_audit::{
    AuditLog, AuditOptions, HeadVerifier, HeadVerifyError, SignedHead, TlsHeadSigner,
    TlsHeadVerifier, genesis_hash, head_signing_bytes,
};
use sigil_tls::pki::{CertificateAuthority, Validity};
use sigil_tls::{Identity, ReloadableTls, TlsFiles};

#[tokio::test]
async fn heads_verify_against_the_ca_and_identity() {
    let fx = Fixture::new();
    let log = fx.open("node-3", &Identity::Node(3)).await;
    let verifier = fx.verifier();

    let empty = log.sign_head().await.expect("head of the empty log");
    assert_eq!(empty.sequence, 0);
    assert_eq!(empty.head_hash, genesis_hash("node-3"));
    verifier.verify_head(&empty).expect("valid");

    let record = log.append(entry(1)).await.expect("append");
    let head = log.sign_head().await.expect("head");
    assert_eq!((head.sequence, head.head_hash), (1, record.record_hash));
    assert!(head.timestamp >= record.timestamp);
    verifier.verify_head(&head).expect("valid");
    assert_eq!(log.latest_head().await.expect("latest"), Some(head.clone()));
    assert_eq!(
        log.signed_heads(None).await.expect("heads"),
        vec![empty, head.clone()]
    );

    // Any change to the signed fields breaks the signature.
    let mut edited = head.clone();
    edited.timestamp = "2099-01-01T00:00:00.000Z".into();
    assert!(verifier.verify_head(&edited).is_err());
    let mut edited = head.clone();
    edited.sequence = 2;
    assert_eq!(
        verifier.verify_head(&edited),
        Err(HeadVerifyError::BadSignature)
    );

    // The coordinator's verifier, from its own TLS material, agrees.
    let coordinator = TlsHeadVerifier::from_tls(fx.tls(&Identity::Coordinator));
    coordinator.verify_head(&head).expect("valid");

    // Not node 3's identity for node-3's head: refused.
    let mut relabelled = head.clone();
    relabelled.process = "node-2".into();
    assert!(matches!(
        verifier.verify_head(&relabelled),
        Err(HeadVerifyError::WrongIdentity { .. })
    ));
    relabelled.process = "auditor".into();
    assert_eq!(
        verifier.verify_head(&relabelled),
        Err(HeadVerifyError::UnknownProcess("auditor".into()))
    );
}

#[tokio::test]
async fn a_head_from_a_foreign_ca_is_refused() {
    let fx = Fixture::new();
    let rogue = CertificateAuthority::generate(&fx.domain, "rogue").expect("ca");
    let files = TlsFiles {
        ca: fx.pki.ca_cert(),
        cert: fx.dir.path().join("rogue.pem"),
        key: fx.dir.path().join("rogue.key"),
    };
    rogue
        .issue(&Identity::Node(3), Validity::days(1))
        .expect("issue")
        .write(&files.cert, &files.key)
        .expect("write");
    let tls = ReloadableTls::load(files, fx.domain.clone()).expect("load");
    let log = AuditLog::open_in_memory(
        AuditOptions::new("node-3"),
        Arc::new(TlsHeadSigner::new(tls)),
    )
    .await
    .expect("open");
    let head = log.sign_head().await.expect("head");
    assert!(matches!(
        fx.verifier().verify_head(&head),
        Err(HeadVerifyError::Certificate(_))
    ));
}

/// Heads are checked at their own timestamp: one signed while the
/// certificate was valid still verifies after it expired; one claiming a
/// time after expiry does not.
#[tokio::test]
async fn heads_are_checked_at_the_time_they_were_signed() {
    let fx = Fixture::new();
    let ca =
        CertificateAuthority::load(&fx.pki.ca_cert(), &fx.pki.ca_key(), &fx.domain).expect("ca");
    let files = TlsFiles {
        ca: fx.pki.ca_cert(),
        cert: fx.dir.path().join("short.pem"),
        key: fx.dir.path().join("short.key"),
    };
    let now = time::OffsetDateTime::now_utc();
    ca.issue(
        &Identity::Node(1),
        Validity {
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::seconds(2),
        },
    )
    .expect("issue")
    .write(&files.cert, &files.key)
    .expect("write");
    let tls = ReloadableTls::load(files, fx.domain.clone()).expect("load");
    let key = tls.identity_key().expect("key");
    let log = AuditLog::open_in_memory(
        AuditOptions::new("node-1"),
        Arc::new(TlsHeadSigner::from_key(key.clone())),
    )
    .await
    .expect("open");
    log.append(entry(1)).await.expect("append");
    let head = log.sign_head().await.expect("head");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let verifier = fx.verifier();
    verifier
        .verify_head(&head)
        .expect("valid when it was signed");
    let chain: Vec<Vec<u8>> = key.chain().iter().map(|c| c.to_vec()).collect();
    assert!(
        tls.verify_peer_chain(&chain, &Identity::Node(1)).is_err(),
        "the certificate has expired by now"
    );

    // Signed now with the expired key, the head does not verify.
    let timestamp = sigil_audit_now();
    let late = SignedHead {
        signature: key
            .sign(&head_signing_bytes(
                "node-1",
                1,
                &head.head_hash,
                &timestamp,
            ))
            .expect("sign"),
        timestamp,
        link: None,
        ..head.clone()
    };
    assert!(matches!(
        verifier.verify_head(&late),
        Err(HeadVerifyError::Certificate(_))
    ));
}

/// Now, in the canonical timestamp form.
fn sigil_audit_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_millisecond(now.millisecond()).unwrap();
    now.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap()
}

#[tokio::test]
async fn the_signer_follows_certificate_reloads() {
    let fx = Fixture::new();
    let tls = fx.tls(&Identity::Node(2));
    let log = AuditLog::open_in_memory(
        AuditOptions::new("node-2"),
        Arc::new(TlsHeadSigner::new(tls.clone())),
    )
    .await
    .expect("open");
    let before = log.sign_head().await.expect("head");

    // Rotate node 2's certificate on disk and reload it.
    let ca =
        CertificateAuthority::load(&fx.pki.ca_cert(), &fx.pki.ca_key(), &fx.domain).expect("ca");
    let files = fx.pki.identity_files(&Identity::Node(2));
    ca.issue(&Identity::Node(2), Validity::days(2))
        .expect("issue")
        .write(&files.cert, &files.key)
        .expect("write");
    assert!(tls.reload().expect("reload"));

    let after = log.sign_head().await.expect("head");
    assert_ne!(before.certificate_chain, after.certificate_chain);
    let verifier = fx.verifier();
    verifier.verify_head(&before).expect("old head still valid");
    verifier.verify_head(&after).expect("new head valid");
}
