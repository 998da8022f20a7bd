//! Cluster tests of Sigil's mutual TLS: every process serves health to any
//! cluster identity; every rejection case (no certificate, foreign CA,
//! expired, not yet valid, malformed or wrong identity, missing role) fails
//! with the specific reason; certificates and trust anchors reload without a
//! restart while established connections keep working.

use std::time::Duration;

use anyhow::Result;
use sigil_proto::v1 as pb;
use sigil_proto::v1::audit_client::AuditClient;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::node_client::NodeClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::{
    DEADLINE, TestCluster, config_without_client_cert, next_rejection, raw_handshake,
};
use sigil_tls::pki::{CertificateAuthority, Validity};
use sigil_tls::{Identity, RejectReason, TlsFiles};
use time::OffsetDateTime;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn health(ch: tonic::transport::Channel) -> Result<ServingStatus, tonic::Status> {
    let r = HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(ServingStatus::try_from(r.into_inner().status).unwrap_or(ServingStatus::Unknown))
}

/// Connects to the coordinator presenting `files`; asserts the handshake is
/// refused for `expected`, logged against our address, and that a gRPC call
/// with the same credentials gets no answer.
async fn assert_coordinator_refuses(
    tc: &TestCluster,
    files: TlsFiles,
    expected: RejectReason,
) -> Result<()> {
    let mut events = tc.cluster.coordinator.events();
    let ctx = tc.client_with(files)?;
    let hs = raw_handshake(
        tc.cluster.coordinator_addr,
        ctx.tls.client_config(&Identity::Coordinator)?,
    )
    .await?;
    assert!(hs.result.is_err(), "handshake unexpectedly accepted");
    let (peer, reason) = next_rejection(&mut events).await?;
    assert_eq!(peer, hs.local, "rejection names the wrong peer");
    assert_eq!(reason, expected);

    let err = KeyAdminClient::new(ctx.coordinator()?)
        .list_keys(pb::ListKeysRequest {})
        .await
        .expect_err("a refused client must get no answer");
    // tonic reports a refused handshake as a transport error carrying the TLS alert.
    assert_eq!(err.code(), Code::Unknown, "{err:?}");
    assert!(
        format!("{err:?}").contains("received fatal alert"),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn every_process_serves_health_to_every_cluster_identity() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    for client in ["signer", "operator", "auditor"] {
        let ctx = tc.client(client)?;
        assert_eq!(health(ctx.coordinator()?).await?, ServingStatus::Serving);
        for id in 1..=3 {
            assert_eq!(
                health(ctx.node(id)?).await?,
                ServingStatus::Serving,
                "node {id} as {client}"
            );
        }
    }
    // The coordinator sees every node healthy, in its own zone.
    let nodes = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .list_nodes(pb::ListNodesRequest {})
        .await?
        .into_inner();
    let summary: Vec<_> = nodes
        .nodes
        .iter()
        .map(|n| (n.node_id, n.zone.as_str(), n.healthy))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "zone-a", true),
            (2, "zone-b", true),
            (3, "zone-c", true)
        ]
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn coordinator_serves_reflection() -> Result<()> {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let tc = TestCluster::start(1).await?;
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(tc.coordinator_as("auditor")?)
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await?
        .into_inner();
    let resp = stream.message().await?.expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer {resp:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for svc in [
        "sigil.v1.Signing",
        "sigil.v1.KeyAdmin",
        "sigil.v1.Audit",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == svc),
            "{svc} missing from {names:?}"
        );
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn client_without_certificate_is_refused() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let mut events = tc.cluster.coordinator.events();
    let hs = raw_handshake(tc.cluster.coordinator_addr, config_without_client_cert()?).await?;
    assert!(hs.result.is_err());
    let (peer, reason) = next_rejection(&mut events).await?;
    assert_eq!(
        (peer, reason),
        (hs.local, RejectReason::NoClientCertificate)
    );

    // Nodes refuse the same way.
    let mut events = tc.cluster.nodes[0].handle.events();
    let hs = raw_handshake(tc.node_addr(1)?, config_without_client_cert()?).await?;
    assert!(hs.result.is_err());
    assert_eq!(
        next_rejection(&mut events).await?,
        (hs.local, RejectReason::NoClientCertificate)
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn certificate_from_foreign_ca_is_refused() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    // Same identity as a legitimate client, issued by a CA the cluster does not trust.
    let rogue = CertificateAuthority::generate(&tc.cluster.info.trust_domain, "rogue CA")?;
    let cert = rogue.issue(&Identity::Client("operator".into()), Validity::days(30))?;
    let files = tc.write_identity("rogue-operator", &cert)?;
    assert_coordinator_refuses(&tc, files, RejectReason::UnknownIssuer).await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn expired_certificate_is_refused() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let now = OffsetDateTime::now_utc();
    let validity = Validity {
        not_before: now - time::Duration::days(10),
        not_after: now - time::Duration::days(1),
    };
    let files = tc.issue("expired", &Identity::Client("operator".into()), validity)?;
    assert_coordinator_refuses(&tc, files, RejectReason::Expired).await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn not_yet_valid_certificate_is_refused() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let now = OffsetDateTime::now_utc();
    let validity = Validity {
        not_before: now + time::Duration::days(1),
        not_after: now + time::Duration::days(10),
    };
    let files = tc.issue("future", &Identity::Client("operator".into()), validity)?;
    assert_coordinator_refuses(&tc, files, RejectReason::NotYetValid).await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn certificates_without_exactly_one_cluster_identity_are_refused() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let ca = tc.ca()?;
    let td = tc.cluster.info.trust_domain.clone();
    let cases = [
        (
            "two-uris",
            vec![
                Identity::Client("operator".into()).to_uri(&td),
                Identity::Coordinator.to_uri(&td),
            ],
            "2 URI SANs",
        ),
        (
            "foreign-domain",
            vec!["spiffe://elsewhere.example/client/operator".to_owned()],
            "not in trust domain",
        ),
        ("no-uri", vec![], "no URI SAN"),
        (
            "unknown-path",
            vec![format!("spiffe://{td}/admin/root")],
            "names no Sigil identity",
        ),
    ];
    for (stem, uris, why) in cases {
        let cert = ca.issue_with_uris(&uris, stem, Validity::days(30))?;
        let files = tc.write_identity(stem, &cert)?;
        let mut events = tc.cluster.coordinator.events();
        // The client side refuses to load such a certificate as its own identity...
        assert!(
            tc.client_with(files.clone()).is_err(),
            "{stem}: client accepted a bad identity"
        );
        // ...so present it with a raw rustls config to check the server refuses it too.
        let config = raw_client_config(&files)?;
        let hs = raw_handshake(tc.cluster.coordinator_addr, config).await?;
        assert!(hs.result.is_err(), "{stem}: handshake accepted");
        let (peer, reason) = next_rejection(&mut events).await?;
        assert_eq!(peer, hs.local);
        match reason {
            RejectReason::BadIdentity(msg) => assert!(msg.contains(why), "{stem}: {msg}"),
            other => panic!("{stem}: expected BadIdentity, got {other:?}"),
        }
    }
    tc.shutdown().await;
    Ok(())
}

/// A client config presenting `files` as-is, with no identity checks on our side.
fn raw_client_config(files: &TlsFiles) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(&files.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&files.key)?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(sigil_testkit::accept_any_server())
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(std::sync::Arc::new(config))
}

#[tokio::test]
async fn nodes_serve_only_the_coordinator() -> Result<()> {
    let tc = TestCluster::start(2).await?;
    // A client of the coordinator may check a node's health, not drive it.
    let ctx = tc.client("operator")?;
    let err = NodeClient::new(ctx.node(1)?)
        .get_info(pb::GetInfoRequest {})
        .await
        .expect_err("client drove a node");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("client/operator"),
        "{}",
        err.message()
    );

    // Another node's identity may not drive a node either.
    let files = tc.pki.identity_files(&Identity::Node(2));
    let node2 = tc.client_with(files)?;
    let err = NodeClient::new(node2.node(1)?)
        .start_session(pb::StartSessionRequest::default())
        .await
        .expect_err("node drove a node");
    assert_eq!(err.code(), Code::PermissionDenied);

    // The coordinator's identity may.
    let coord = tc.client_with(tc.pki.identity_files(&Identity::Coordinator))?;
    let info = NodeClient::new(coord.node(1)?)
        .get_info(pb::GetInfoRequest {})
        .await?
        .into_inner();
    assert_eq!((info.node_id, info.zone.as_str()), (1, "zone-a"));
    assert!(
        !info
            .identity
            .map(|i| i.certificate_chain)
            .unwrap_or_default()
            .is_empty()
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn coordinator_methods_require_their_role() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    fn code<T>(r: Result<T, tonic::Status>) -> Code {
        r.map(|_| Code::Ok).unwrap_or_else(|s| s.code())
    }
    async fn calls(ch: tonic::transport::Channel) -> [Code; 3] {
        [
            code(
                SigningClient::new(ch.clone())
                    .get_public_key(pb::GetPublicKeyRequest {
                        key_id: "k".into(),
                        derivation_path: String::new(),
                    })
                    .await,
            ),
            code(
                KeyAdminClient::new(ch.clone())
                    .list_keys(pb::ListKeysRequest {})
                    .await,
            ),
            code(
                AuditClient::new(ch)
                    .get_signed_heads(pb::GetSignedHeadsRequest::default())
                    .await,
            ),
        ]
    }
    let denied = Code::PermissionDenied;
    // Past authorization: NotFound (no such key), Ok, Ok.
    assert_eq!(
        calls(tc.coordinator_as("signer")?).await,
        [Code::NotFound, denied, denied]
    );
    assert_eq!(
        calls(tc.coordinator_as("operator")?).await,
        [denied, Code::Ok, denied]
    );
    assert_eq!(
        calls(tc.coordinator_as("auditor")?).await,
        [denied, denied, Code::Ok]
    );

    // A valid certificate for a client with no grant, and a node identity, get nothing.
    let files = tc.issue(
        "stranger",
        &Identity::Client("stranger".into()),
        Validity::days(1),
    )?;
    assert_eq!(
        calls(tc.client_with(files)?.coordinator()?).await,
        [denied; 3]
    );
    let node = tc.client_with(tc.pki.identity_files(&Identity::Node(1)))?;
    assert_eq!(calls(node.coordinator()?).await, [denied; 3]);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn clients_refuse_a_server_with_the_wrong_identity() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let ctx = tc.client("operator")?;
    // Dial node 1's address while expecting the coordinator: our side refuses.
    let config = ctx.tls.client_config(&Identity::Coordinator)?;
    let hs = raw_handshake(tc.node_addr(1)?, config).await?;
    let err = hs.result.expect_err("client accepted the wrong server");
    assert!(
        format!("{err:?}").contains("UnexpectedPeer { got: Node(1), expected: Coordinator }"),
        "{err:?}"
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn renewed_certificate_is_served_without_restart_and_connections_survive() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let node = tc.cluster.nodes[0].handle.clone();
    let ctx = tc.client("operator")?;
    let established = ctx.node(1)?;
    assert_eq!(health(established.clone()).await?, ServingStatus::Serving);
    let before = raw_handshake(tc.node_addr(1)?, ctx.tls.client_config(&Identity::Node(1))?)
        .await?
        .result?;

    // Renew node 1's certificate on disk; the watcher notices the change.
    let mut reloads = node.tls.subscribe();
    let files = tc.pki.identity_files(&Identity::Node(1));
    let renewed = tc.ca()?.issue(&Identity::Node(1), Validity::days(90))?;
    renewed.write(&files.cert, &files.key)?;
    tokio::time::timeout(DEADLINE, reloads.changed()).await??;

    let after = raw_handshake(tc.node_addr(1)?, ctx.tls.client_config(&Identity::Node(1))?)
        .await?
        .result?;
    assert_ne!(before[0], after[0], "old certificate still served");
    assert_eq!(after[0], node.tls.certificate_chain()[0]);

    // The reload is on the node's audit record, naming the new certificate.
    let leaf = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(after[0].as_ref()))
    };
    let mut commits = node.audit.subscribe();
    let reload = tokio::time::timeout(DEADLINE, async {
        loop {
            commits.borrow_and_update();
            let found = node
                .audit
                .query(&sigil_audit::Filter::default().action(sigil_audit::action::CERT_RELOAD))
                .await?;
            if let Some(r) = found.into_iter().find(|r| r.detail.contains(&leaf)) {
                return anyhow::Ok(r);
            }
            commits.changed().await?;
        }
    })
    .await??;
    assert_eq!(reload.outcome, "ok");
    assert_eq!(reload.actor, "spiffe://sigil.local/node/1");

    // The connection opened before the reload is still the one in use, and works.
    let mut events = node.events();
    assert_eq!(health(established).await?, ServingStatus::Serving);
    assert!(
        matches!(
            events.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty)
        ),
        "a new connection was opened"
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn rotated_trust_anchors_apply_to_new_connections() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let node = tc.cluster.nodes[0].handle.clone();
    let old_ca_copy = tc.data_dir().join("old-ca.pem");
    std::fs::copy(tc.pki.ca_cert(), &old_ca_copy)?;

    // The node now trusts only a new CA.
    let new_ca = CertificateAuthority::generate(&tc.cluster.info.trust_domain, "new CA")?;
    std::fs::write(tc.pki.ca_cert(), new_ca.cert_pem())?;
    assert!(node.tls.reload()?, "reload did not pick up the new CA");

    // Clients with old-CA certificates are refused...
    let mut events = node.events();
    let ctx = tc.client_with(TlsFiles {
        ca: old_ca_copy.clone(),
        ..tc.pki.identity_files(&Identity::Client("operator".into()))
    })?;
    let hs = raw_handshake(tc.node_addr(1)?, ctx.tls.client_config(&Identity::Node(1))?).await?;
    assert!(hs.result.is_err());
    assert_eq!(
        next_rejection(&mut events).await?,
        (hs.local, RejectReason::UnknownIssuer)
    );

    // ...and a client certificate from the new CA is accepted.
    let cert = new_ca.issue(&Identity::Client("operator".into()), Validity::days(1))?;
    let mut files = tc.write_identity("new-operator", &cert)?;
    files.ca = old_ca_copy;
    let ctx = tc.client_with(files)?;
    assert_eq!(health(ctx.node(1)?).await?, ServingStatus::Serving);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invalid_material_on_reload_keeps_the_previous_certificate() -> Result<()> {
    let tc = TestCluster::start(1).await?;
    let node = tc.cluster.nodes[0].handle.clone();
    let files = tc.pki.identity_files(&Identity::Node(1));
    let served = node.tls.certificate_chain();

    std::fs::write(&files.cert, "not a certificate")?;
    assert!(node.tls.reload().is_err());
    // A certificate for another identity is refused too.
    tc.ca()?
        .issue(&Identity::Node(7), Validity::days(1))?
        .write(&files.cert, &files.key)?;
    let err = node.tls.reload().expect_err("identity change accepted");
    assert!(
        err.to_string().contains("refusing to change identity"),
        "{err}"
    );

    assert_eq!(node.tls.certificate_chain(), served);
    let ctx = tc.client("operator")?;
    assert_eq!(health(ctx.node(1)?).await?, ServingStatus::Serving);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_stopped_node_is_reported_unhealthy() -> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    assert!(tc.cluster.stop_node(3).await);
    let nodes = tokio::time::timeout(
        DEADLINE + Duration::from_secs(5),
        KeyAdminClient::new(tc.coordinator_as("operator")?).list_nodes(pb::ListNodesRequest {}),
    )
    .await??
    .into_inner();
    let healthy: Vec<_> = nodes.nodes.iter().map(|n| (n.node_id, n.healthy)).collect();
    assert_eq!(healthy, vec![(1, true), (2, true), (3, false)]);
    assert!(!nodes.nodes[2].detail.is_empty());
    tc.shutdown().await;
    Ok(())
}
