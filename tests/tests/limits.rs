//! Cluster tests of the bounds on what a client can make a process hold
//! (docs: "Bounded everything"): TLS handshakes pending at once and their
//! duration, and the length of every free-text request field the
//! coordinator stores or logs. The bounds of the node's session table, of
//! `Sign` calls in flight per client and of the coordinator's relay are
//! unit-tested beside their code (`node/src/sessions.rs`,
//! `coordinator/src/limits.rs`, `protocol/src/relay.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use sigil_proto::v1 as pb;
use sigil_proto::v1::audit_client::AuditClient;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::{DEADLINE, TestCluster, next_rejection};
use sigil_tls::server::{AcceptOptions, incoming};
use sigil_tls::{ConnectionEvent, Identity, RejectReason};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

/// An accept loop with the coordinator's TLS material and `opts`, on a
/// fresh port: its address, its connection stream (keep it: dropping it
/// stops the loop) and its events.
async fn accept_loop(
    tc: &TestCluster,
    mut opts: AcceptOptions,
) -> Result<(
    SocketAddr,
    ReceiverStream<std::io::Result<sigil_tls::server::TlsConn>>,
    broadcast::Receiver<ConnectionEvent>,
)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (events, rx) = broadcast::channel(64);
    opts.events = Some(events);
    let conns = incoming(listener, tc.cluster.coordinator.tls.clone(), opts);
    Ok((addr, conns, rx))
}

#[tokio::test]
async fn a_client_that_never_sends_a_client_hello_is_dropped_after_the_handshake_timeout()
-> Result<()> {
    let tc = TestCluster::start(1).await?;
    let (addr, _conns, mut events) = accept_loop(
        &tc,
        AcceptOptions {
            handshake_timeout: Duration::from_millis(200),
            ..AcceptOptions::default()
        },
    )
    .await?;
    let mut silent = TcpStream::connect(addr).await?;
    let local = silent.local_addr()?;
    // The server closes the connection: end of stream (or a reset), well
    // before the deadline.
    let mut buf = [0u8; 16];
    match tokio::time::timeout(DEADLINE, silent.read(&mut buf))
        .await
        .context("the server kept a silent connection open")?
    {
        Ok(0) | Err(_) => {}
        Ok(n) => anyhow::bail!("the server sent {n} bytes to a client that said nothing"),
    }
    let (peer, reason) = next_rejection(&mut events).await?;
    assert_eq!((peer, reason), (local, RejectReason::Timeout));
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn handshakes_beyond_the_cap_wait_until_one_finishes() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let (addr, mut conns, mut events) = accept_loop(
        &tc,
        AcceptOptions {
            handshake_timeout: Duration::from_secs(600),
            max_pending_handshakes: 1,
            ..AcceptOptions::default()
        },
    )
    .await?;
    // A silent client takes the only slot...
    let silent = TcpStream::connect(addr).await?;
    let silent_addr = silent.local_addr()?;
    // ... so a genuine client's handshake does not progress.
    let config = tc
        .client("signer")?
        .tls
        .client_config(&Identity::Coordinator)?;
    let genuine = TcpStream::connect(addr).await?;
    let genuine_addr = genuine.local_addr()?;
    let handshake = tokio::spawn(async move {
        let name = rustls_pki_types::ServerName::try_from("sigil.invalid")?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, genuine)
            .await
            .map_err(anyhow::Error::from)
    });
    // A bounded wait for something that must not happen (no event, no
    // progress), not a synchronization.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), events.recv())
            .await
            .is_err(),
        "a handshake beyond the cap was served"
    );
    assert!(!handshake.is_finished());

    // The silent client leaves: its handshake fails, its slot frees, and
    // the waiting handshake completes.
    drop(silent);
    let (peer, _) = next_rejection(&mut events).await?;
    assert_eq!(peer, silent_addr);
    let _tls = tokio::time::timeout(DEADLINE, handshake)
        .await
        .context("the waiting handshake never completed")???;
    let conn = tokio::time::timeout(DEADLINE, conns.next())
        .await
        .context("no connection accepted")?
        .context("accept loop ended")??;
    use tonic::transport::server::Connected;
    assert_eq!(conn.connect_info().remote_addr, genuine_addr);
    tc.shutdown().await;
    Ok(())
}

fn assert_invalid(status: &tonic::Status, field: &str, max: usize) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{field} is ")),
        "{field}: {status:?}"
    );
    assert!(
        status.message().contains(&format!("at most {max} bytes")),
        "{field}: {status:?}"
    );
}

#[tokio::test]
async fn overlong_request_fields_are_refused_naming_the_field_and_its_maximum() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let long = |n: usize| "x".repeat(n);
    let mut signing = SigningClient::new(tc.coordinator_as("signer")?);
    let sign = |f: &dyn Fn(&mut pb::SignRequest)| {
        let mut req = pb::SignRequest {
            key_id: "k".into(),
            message: vec![0; 32],
            idempotency_key: "i".into(),
            ..Default::default()
        };
        f(&mut req);
        req
    };
    for (field, max, req) in [
        ("key_id", 128, sign(&|r| r.key_id = long(129))),
        (
            "idempotency_key",
            128,
            sign(&|r| r.idempotency_key = long(129)),
        ),
        (
            "derivation_path",
            4096,
            sign(&|r| r.derivation_path = long(4097)),
        ),
    ] {
        let err = signing.sign(req).await.expect_err(field);
        assert_invalid(&err, field, max);
    }
    let err = signing
        .get_public_key(pb::GetPublicKeyRequest {
            key_id: "k".into(),
            derivation_path: long(4097),
        })
        .await
        .expect_err("path");
    assert_invalid(&err, "derivation_path", 4096);

    let mut admin = KeyAdminClient::new(tc.coordinator_as("operator")?);
    let err = admin
        .create_key(pb::CreateKeyRequest {
            label: long(257),
            ..Default::default()
        })
        .await
        .expect_err("label");
    assert_invalid(&err, "label", 256);
    let err = admin
        .clear_exclusion(pb::ClearExclusionRequest {
            key_id: "k".into(),
            node_id: 1,
            reason: long(1025),
        })
        .await
        .expect_err("reason");
    assert_invalid(&err, "reason", 1024);
    let err = admin
        .get_key(pb::GetKeyRequest { key_id: long(129) })
        .await
        .expect_err("key id");
    assert_invalid(&err, "key_id", 128);
    let err = admin
        .drill(pb::DrillRequest {
            key_id: "k".into(),
            node_id: 1,
            endpoint: long(257),
            authorization: None,
        })
        .await
        .expect_err("endpoint");
    assert_invalid(&err, "endpoint", 256);

    let mut audit = AuditClient::new(tc.coordinator_as("auditor")?);
    let err = audit
        .query_records(pb::QueryRecordsRequest {
            actor: long(257),
            ..Default::default()
        })
        .await
        .expect_err("actor");
    assert_invalid(&err, "actor", 256);

    // At the bound, the request goes on to its ordinary checks.
    let err = admin
        .get_key(pb::GetKeyRequest { key_id: long(128) })
        .await
        .expect_err("no such key");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    tc.shutdown().await;
    Ok(())
}
