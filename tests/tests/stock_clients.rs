//! Stock TLS clients reach the cluster: a plain rustls client built only
//! from the CA bundle and a client certificate (webpki's standard host-name
//! verification, no custom verifier, no name override), as grpcio and
//! grpcurl connect, verifies the coordinator's and the nodes' certificates
//! by host name and calls gRPC health; a name the certificate does not
//! carry fails the handshake with a certificate-name error.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, RootCertStore};
use sigil_testkit::{DEADLINE, TestCluster};
use sigil_tls::client::{DialOptions, channel_with_config};
use sigil_tls::{Identity, TlsFiles};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A client configuration as a stock client builds it: the CA bundle as
/// roots, the client certificate and key, ALPN `h2`.
fn stock_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&files.ca)? {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_file_iter(&files.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// gRPC health of the server at `addr`, verified as `name`.
async fn health(
    addr: SocketAddr,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
) -> Result<ServingStatus> {
    let channel = channel_with_config(
        &addr.to_string(),
        ServerName::try_from(name.to_owned())?,
        config.clone(),
        &DialOptions::default(),
    )?;
    let response = tokio::time::timeout(
        DEADLINE,
        HealthClient::new(channel).check(HealthCheckRequest {
            service: String::new(),
        }),
    )
    .await
    .context("no health answer before the deadline")??;
    Ok(ServingStatus::try_from(response.into_inner().status).unwrap_or(ServingStatus::Unknown))
}

/// The TLS handshake with the server at `addr`, verified as `name`.
async fn handshake(
    addr: SocketAddr,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
) -> Result<std::io::Result<()>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned())?;
    let connect = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp);
    let result = tokio::time::timeout(DEADLINE, connect)
        .await
        .context("no handshake before the deadline")?;
    Ok(result.map(drop))
}

/// Asserts that verifying the server at `addr` as `name` fails on the name.
async fn assert_wrong_name(
    addr: SocketAddr,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
) -> Result<()> {
    let err = handshake(addr, name, config)
        .await?
        .expect_err("a name the certificate does not carry was accepted");
    let tls = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .with_context(|| format!("not a TLS error: {err:?}"))?;
    assert!(
        matches!(
            tls,
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{name}: {tls:?}"
    );
    // The gRPC call over the same configuration fails too.
    assert!(health(addr, name, config).await.is_err(), "{name}");
    Ok(())
}

#[tokio::test]
async fn stock_clients_verify_servers_by_host_name() -> Result<()> {
    let tc = TestCluster::start(2).await?;
    let operator = stock_config(&tc.pki.identity_files(&Identity::Client("operator".into())))?;

    let coordinator = tc.cluster.coordinator_addr;
    for name in ["localhost", "coordinator.sigil.local", "127.0.0.1"] {
        assert_eq!(
            health(coordinator, name, &operator)
                .await
                .with_context(|| format!("coordinator as {name}"))?,
            ServingStatus::Serving,
            "coordinator as {name}"
        );
    }
    for name in ["evil.example", "node-1.sigil.local", "10.0.0.1"] {
        assert_wrong_name(coordinator, name, &operator).await?;
    }

    for id in 1..=2u16 {
        let node = tc.node_addr(id)?;
        for name in ["localhost".to_owned(), format!("node-{id}.sigil.local")] {
            assert_eq!(
                health(node, &name, &operator)
                    .await
                    .with_context(|| format!("node {id} as {name}"))?,
                ServingStatus::Serving,
                "node {id} as {name}"
            );
        }
        let other = format!("node-{}.sigil.local", 3 - id);
        for name in ["evil.example", "coordinator.sigil.local", other.as_str()] {
            assert_wrong_name(node, name, &operator).await?;
        }
    }
    tc.shutdown().await;
    Ok(())
}
