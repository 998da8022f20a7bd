//! Test harness for Sigil cluster tests.
//!
//! [`TestCluster::start`] runs a coordinator and `n` nodes in this process
//! over real mutual TLS on `127.0.0.1:0`, in a temporary data directory
//! with a fresh dev PKI (the same [`sigil_cli::local`] code `sigil up` uses).
//! Helpers mint certificates (expired, foreign CA, wrong identity...), open
//! raw TLS handshakes to observe rejections, and wait for server events with
//! deadlines — never fixed ports, never sleeps.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use sigil_cli::connect::ClientContext;
use sigil_cli::local::{ClusterSpec, LocalCluster};
use sigil_tls::pki::{CertificateAuthority, IssuedCertificate, PkiLayout, Validity};
use sigil_tls::{ConnectionEvent, Identity, RejectReason, TlsFiles};
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;
use tonic::transport::Channel;

pub use sigil_cli;

/// How long a test waits for something that should happen promptly.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A running in-process cluster and its temporary directory.
pub struct TestCluster {
    pub cluster: LocalCluster,
    pub pki: PkiLayout,
    dir: tempfile::TempDir,
    /// Nodes started again by [`TestCluster::restart_node`].
    restarted: Vec<RestartedNode>,
}

/// A node server started by [`TestCluster::restart_node`].
struct RestartedNode {
    id: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// Installs a test log subscriber once (respects `SIGIL_LOG`).
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

impl TestCluster {
    /// Starts a coordinator and `nodes` nodes.
    pub async fn start(nodes: u16) -> Result<Self> {
        Self::start_with(nodes, None).await
    }

    /// Starts a cluster whose nodes are adjusted by `customize` before they serve.
    pub async fn start_with(
        nodes: u16,
        customize: Option<sigil_cli::local::NodeCustomizer>,
    ) -> Result<Self> {
        Self::start_spec(nodes, |spec| spec.customize_node = customize).await
    }

    /// Starts a cluster of `nodes` nodes after `adjust` changed its spec
    /// (audit settings, node customizer, ...).
    pub async fn start_spec(nodes: u16, adjust: impl FnOnce(&mut ClusterSpec)) -> Result<Self> {
        init_logging();
        sigil_tls::install_crypto_provider();
        let dir = tempfile::tempdir()?;
        let mut spec = ClusterSpec::new(dir.path(), nodes);
        adjust(&mut spec);
        let cluster = LocalCluster::start(spec).await?;
        let pki = PkiLayout::new(dir.path().join("pki"));
        Ok(Self {
            cluster,
            pki,
            dir,
            restarted: Vec::new(),
        })
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Client context of one of the dev identities (`signer`, `operator`, `auditor`).
    pub fn client(&self, name: &str) -> Result<ClientContext> {
        Ok(ClientContext::load(self.dir.path(), name)?)
    }

    /// Client context presenting arbitrary TLS files.
    pub fn client_with(&self, files: TlsFiles) -> Result<ClientContext> {
        Ok(ClientContext::with_files(self.cluster.info.clone(), files)?)
    }

    /// Dev client `name`'s certificate key, to sign intents, approvals or policies.
    pub fn signer(&self, name: &str) -> Result<sigil_cli::intent::Signer> {
        Ok(sigil_cli::intent::Signer::from_tls(
            &self.client(name)?.tls,
        )?)
    }

    /// The dev `officers`' authorization of a key operation of `kind` on
    /// `key` at its current epoch, for `nodes` and `threshold`.
    pub fn authorization(
        &self,
        kind: sigil_policy::OperationKind,
        key: &sigil_proto::v1::KeyInfo,
        nodes: &[u16],
        threshold: u16,
        officers: &[&str],
    ) -> Result<sigil_proto::v1::SignedOperation> {
        let op = sigil_cli::intent::key_operation(kind, key, nodes.to_vec(), threshold);
        Ok(sigil_cli::intent::sign_key_operation(
            self.dir.path(),
            &op,
            officers,
        )?)
    }

    /// A sign request for an opaque message (FROST: raw; ECDSA: hashed with
    /// `encoding`, or a digest with `Raw`) with an intent signed by the dev
    /// client `signer`.
    pub fn sign_request(
        &self,
        key: &sigil_proto::v1::KeyInfo,
        message: &[u8],
        encoding: sigil_proto::v1::MessageEncoding,
        idempotency_key: &str,
    ) -> Result<sigil_proto::v1::SignRequest> {
        let scheme = sigil_proto::convert::scheme_from_wire(key.scheme)?;
        let encoding = sigil_proto::convert::encoding_from_wire(encoding as i32)?;
        Ok(self.signer("signer")?.sign_request(
            &key.key_id,
            "",
            sigil_cli::intent::raw_payload(scheme, message, encoding),
            idempotency_key,
        )?)
    }

    /// Creates a `threshold`-of-all key of `scheme` as the dev `operator`.
    pub async fn create_key(
        &self,
        scheme: sigil_proto::v1::Scheme,
        threshold: u32,
    ) -> Result<sigil_proto::v1::KeyInfo> {
        sigil_proto::v1::key_admin_client::KeyAdminClient::new(self.coordinator_as("operator")?)
            .create_key(sigil_proto::v1::CreateKeyRequest {
                scheme: scheme as i32,
                threshold,
                ..Default::default()
            })
            .await?
            .into_inner()
            .key
            .context("CreateKey returned no key")
    }

    /// A sign request carrying only an intent of the dev client `signer`
    /// for `payload` at `path`.
    pub fn intent_request(
        &self,
        key: &sigil_proto::v1::KeyInfo,
        path: &str,
        payload: sigil_proto::v1::payload::Kind,
        idempotency_key: &str,
    ) -> Result<sigil_proto::v1::SignRequest> {
        Ok(sigil_proto::v1::SignRequest {
            intent: Some(self.signer("signer")?.intent(
                &key.key_id,
                path,
                payload,
                idempotency_key,
                sigil_cli::intent::DEFAULT_INTENT_TTL,
            )?),
            ..Default::default()
        })
    }

    /// `Signing.Sign` as the dev client `signer`.
    pub async fn sign(
        &self,
        req: sigil_proto::v1::SignRequest,
    ) -> Result<sigil_proto::v1::SignResponse, tonic::Status> {
        let channel = self
            .coordinator_as("signer")
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        sigil_proto::v1::signing_client::SigningClient::new(channel)
            .sign(req)
            .await
            .map(tonic::Response::into_inner)
    }

    /// Applies the policy document `toml`, signed by `officers`, through
    /// the coordinator's `Policy` service (as the dev `operator`).
    pub async fn apply_policy_toml(
        &self,
        toml: &str,
        officers: &[&str],
    ) -> Result<sigil_proto::v1::ApplyPolicyResponse, tonic::Status> {
        let internal = |e: &dyn std::fmt::Display| tonic::Status::internal(e.to_string());
        let document = sigil_policy::PolicyDocument::from_toml(toml)
            .map_err(|e| internal(&e))?
            .to_document_bytes();
        let mut signatures = Vec::new();
        for officer in officers {
            let signer = self.signer(officer).map_err(|e| internal(&e))?;
            signatures.push(signer.sign_policy(&document).map_err(|e| internal(&e))?);
        }
        let channel = self.coordinator_as("operator").map_err(|e| internal(&e))?;
        sigil_proto::v1::policy_client::PolicyClient::new(channel)
            .apply_policy(sigil_proto::v1::ApplyPolicyRequest {
                policy: Some(sigil_proto::v1::SignedPolicy {
                    document,
                    signatures,
                }),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// `req` (written the pre-intent way: key, message, encoding, path,
    /// idempotency key) with the payment service's signed intent for exactly
    /// that attached, as a client of the intent API sends it. Unknown keys
    /// get an intent for a raw message (the coordinator refuses them).
    pub async fn intended(
        &self,
        mut req: sigil_proto::v1::SignRequest,
    ) -> Result<sigil_proto::v1::SignRequest, tonic::Status> {
        let internal = |e: &dyn std::fmt::Display| tonic::Status::internal(e.to_string());
        let channel = self.coordinator_as("operator").map_err(|e| internal(&e))?;
        let scheme = sigil_proto::v1::key_admin_client::KeyAdminClient::new(channel)
            .get_key(sigil_proto::v1::GetKeyRequest {
                key_id: req.key_id.clone(),
            })
            .await
            .ok()
            .and_then(|k| sigil_proto::convert::scheme_from_wire(k.into_inner().scheme).ok())
            .unwrap_or(sigil_protocol::Scheme::FrostSecp256k1);
        let payload = match sigil_proto::convert::encoding_from_wire(req.encoding) {
            Ok(encoding) => sigil_cli::intent::raw_payload(scheme, &req.message, encoding),
            // An encoding the API does not know travels as is, for the cluster to refuse.
            Err(_) => sigil_proto::v1::payload::Kind::RawMessage(sigil_proto::v1::RawMessage {
                message: req.message.clone(),
                encoding: req.encoding,
            }),
        };
        let signer = self.signer("signer").map_err(|e| internal(&e))?;
        req.intent = Some(
            signer
                .intent(
                    &req.key_id,
                    &req.derivation_path,
                    payload,
                    &req.idempotency_key,
                    sigil_cli::intent::DEFAULT_INTENT_TTL,
                )
                .map_err(|e| internal(&e))?,
        );
        Ok(req)
    }

    /// A channel to the coordinator as dev client `name`.
    pub fn coordinator_as(&self, name: &str) -> Result<Channel> {
        Ok(self.client(name)?.coordinator()?)
    }

    /// The cluster's CA, able to mint more certificates.
    pub fn ca(&self) -> Result<CertificateAuthority> {
        Ok(CertificateAuthority::load(
            &self.pki.ca_cert(),
            &self.pki.ca_key(),
            &self.cluster.info.trust_domain,
        )?)
    }

    /// Writes `cert` under the test directory as `<stem>.pem/.key`, trusting the cluster CA.
    pub fn write_identity(&self, stem: &str, cert: &IssuedCertificate) -> Result<TlsFiles> {
        let dir = self.dir.path().join("extra");
        let files = TlsFiles {
            ca: self.pki.ca_cert(),
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        cert.write(&files.cert, &files.key)?;
        Ok(files)
    }

    /// Issues and writes a certificate for `identity` from the cluster CA.
    pub fn issue(&self, stem: &str, identity: &Identity, validity: Validity) -> Result<TlsFiles> {
        let cert = self.ca()?.issue(identity, validity)?;
        self.write_identity(stem, &cert)
    }

    pub fn node_addr(&self, id: u16) -> Result<SocketAddr> {
        self.cluster
            .nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.addr)
            .context("no such node")
    }

    /// Restarts node `id` from its data directory (same certificate, key
    /// shares, encryption key and ledger, which remembers the session ids it
    /// accepted; no live sessions) on a fresh `127.0.0.1:0`
    /// port. Node customizers (faults) are not applied again. Only the
    /// cluster info used by new clients (e.g. a [`RogueCoordinator`] created
    /// afterwards) learns the new address; the running coordinator does not.
    pub async fn restart_node(&mut self, id: u16) -> Result<SocketAddr> {
        self.restart_node_on(id, "127.0.0.1:0".parse()?).await
    }

    /// Like [`Self::restart_node`], on the address it had, so the running
    /// coordinator reaches it again (a node process restarting in place).
    pub async fn restart_node_in_place(&mut self, id: u16) -> Result<SocketAddr> {
        let addr = self.node_addr(id)?;
        self.restart_node_on(id, addr).await
    }

    async fn restart_node_on(&mut self, id: u16, bind: SocketAddr) -> Result<SocketAddr> {
        self.stop_node(id).await?;
        self.start_stopped_node(id, bind).await
    }

    /// Stops node `id` (its data stays); returns its data directory, for a
    /// test to alter what is on disk before [`Self::start_stopped_node`].
    pub async fn stop_node(&mut self, id: u16) -> Result<std::path::PathBuf> {
        if let Some(i) = self.restarted.iter().position(|n| n.id == id) {
            let node = self.restarted.swap_remove(i);
            let _ = node.stop.send(());
            node.task.await?;
        } else {
            anyhow::ensure!(
                self.cluster.stop_node(id).await,
                "node {id} was not running"
            );
        }
        Ok(self.dir.path().join(format!("node-{id}")))
    }

    /// Starts node `id`, stopped by [`Self::stop_node`], from its data
    /// directory on `bind` (`127.0.0.1:0` for a fresh port); see
    /// [`Self::restart_node`] for what the running coordinator learns.
    pub async fn start_stopped_node(&mut self, id: u16, bind: SocketAddr) -> Result<SocketAddr> {
        let config =
            sigil_node::NodeConfig::load(&self.dir.path().join(format!("node-{id}/node.toml")))?;
        let server = sigil_node::NodeServer::open(config).await?;
        let handle = server.handle();
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = server.run(listener, shutdown).await {
                tracing::error!(node = id, error = %e, "restarted node failed");
            }
        });
        self.restarted.push(RestartedNode { id, stop, task });
        for node in self.cluster.nodes.iter_mut().filter(|n| n.id == id) {
            node.addr = addr;
            node.handle = handle.clone();
        }
        for node in self.cluster.info.nodes.iter_mut().filter(|n| n.id == id) {
            node.endpoint = addr.to_string();
        }
        Ok(addr)
    }

    async fn stop_restarted(&mut self) {
        for node in std::mem::take(&mut self.restarted) {
            let _ = node.stop.send(());
            let _ = node.task.await;
        }
    }

    pub async fn shutdown(mut self) {
        self.stop_restarted().await;
        self.cluster.shutdown().await;
    }

    /// Stops every server but keeps the data directory, for inspecting what is on disk.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.stop_restarted().await;
        self.cluster.shutdown().await;
        self.dir
    }
}

/// Waits for the first `Rejected` event, skipping accepted connections.
pub async fn next_rejection(
    events: &mut broadcast::Receiver<ConnectionEvent>,
) -> Result<(SocketAddr, RejectReason)> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match events.recv().await {
                Ok(ConnectionEvent::Rejected { peer, reason }) => return Ok((peer, reason)),
                Ok(ConnectionEvent::Accepted(_)) => continue,
                Err(e) => return Err(anyhow::anyhow!("event stream ended: {e}")),
            }
        }
    })
    .await
    .context("no rejection event before the deadline")?
}

/// Outcome of a raw TLS handshake attempt.
#[derive(Debug)]
pub struct Handshake {
    /// Our local address, as the server sees it.
    pub local: SocketAddr,
    /// Ok if the connection was usable after the handshake.
    pub result: std::io::Result<Vec<rustls_pki_types::CertificateDer<'static>>>,
}

/// Connects to `addr` with `config`, completes the handshake and reads once
/// (TLS 1.3 servers reject client certificates after the client finishes, so
/// the rejection arrives as an alert on the first read). Returns the server's
/// certificate chain when the connection is accepted.
pub async fn raw_handshake(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<Handshake> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let local = tcp.local_addr()?;
    let name = rustls_pki_types::ServerName::try_from("sigil.invalid")?;
    let result = async {
        let mut tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let chain = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.to_vec())
            .unwrap_or_default();
        // An HTTP/2 server speaks first (SETTINGS); a rejecting one sends an alert.
        let mut buf = [0u8; 64];
        match tokio::time::timeout(DEADLINE, tls.read(&mut buf)).await {
            Ok(Ok(0)) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed by server",
            )),
            Ok(Ok(_)) => Ok(chain),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer",
            )),
        }
    }
    .await;
    Ok(Handshake { local, result })
}

/// A client config that presents no certificate (and, being a test probe of
/// the server's checks, does not verify the server).
pub fn config_without_client_cert() -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// A server verifier that accepts anything: for probes that test the *server's* checks.
pub fn accept_any_server() -> Arc<dyn rustls::client::danger::ServerCertVerifier> {
    Arc::new(AcceptAnyServer(Arc::new(
        rustls::crypto::ring::default_provider(),
    )))
}

#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Drives nodes directly with the coordinator's own identity, so tests can
/// play a compromised coordinator: replay, drop, alter or misroute messages.
pub struct RogueCoordinator {
    ctx: ClientContext,
    /// The payment service's key, for the genuine intents an honest
    /// coordinator would relay (tests of a compromised payment service too).
    payment_service: sigil_cli::intent::Signer,
}

impl std::fmt::Debug for RogueCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RogueCoordinator")
    }
}

impl RogueCoordinator {
    pub fn new(tc: &TestCluster) -> Result<Self> {
        Ok(Self {
            ctx: tc.client_with(tc.pki.identity_files(&Identity::Coordinator))?,
            payment_service: tc.signer("signer")?,
        })
    }

    /// The payment service's signing identity (dev client `signer`).
    pub fn payment_service(&self) -> &sigil_cli::intent::Signer {
        &self.payment_service
    }

    /// A genuine intent of the payment service for an opaque `message` on
    /// `key`, and spend receipts for it from those of `nodes` that give one
    /// (best effort: a node refusing is left for the session to show).
    pub async fn genuine_intent(
        &self,
        key: &sigil_proto::v1::KeyInfo,
        message: &[u8],
        encoding: sigil_proto::v1::MessageEncoding,
        nodes: &[u16],
    ) -> Result<(
        sigil_proto::v1::SignedIntent,
        Vec<sigil_proto::v1::SpendReceipt>,
    )> {
        let scheme = sigil_proto::convert::scheme_from_wire(key.scheme)?;
        let encoding = sigil_proto::convert::encoding_from_wire(encoding as i32)?;
        let intent = self.payment_service.intent(
            &key.key_id,
            "",
            sigil_cli::intent::raw_payload(scheme, message, encoding),
            &format!("rogue-{}", uuid::Uuid::new_v4()),
            sigil_cli::intent::DEFAULT_INTENT_TTL,
        )?;
        let mut receipts = Vec::new();
        for id in nodes {
            if let Ok(mut r) = self.receipts(&intent, &[*id]).await {
                receipts.append(&mut r);
            }
        }
        Ok((intent, receipts))
    }

    /// Spend receipts for `intent` from `nodes` (each checks and counts it),
    /// as the coordinator collects them before a signing session.
    pub async fn receipts(
        &self,
        intent: &sigil_proto::v1::SignedIntent,
        nodes: &[u16],
    ) -> Result<Vec<sigil_proto::v1::SpendReceipt>, tonic::Status> {
        let mut out = Vec::new();
        for id in nodes {
            let mut client = self
                .node(*id)
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
            out.push(
                client
                    .reserve_spend(sigil_proto::v1::ReserveSpendRequest {
                        intent: Some(intent.clone()),
                    })
                    .await?
                    .into_inner(),
            );
        }
        Ok(out)
    }

    /// Sends `intent` straight to each of `nodes`' `ReserveSpend`, as a
    /// compromised coordinator would, and returns each node's refusal
    /// (an error naming the node if one counted it).
    pub async fn refusals(
        &self,
        intent: &sigil_proto::v1::SignedIntent,
        nodes: &[u16],
    ) -> Result<Vec<tonic::Status>> {
        let mut out = Vec::new();
        for id in nodes {
            match self.receipts(intent, &[*id]).await {
                Ok(r) => anyhow::bail!("node {id} counted the intent: {r:?}"),
                Err(status) => out.push(status),
            }
        }
        Ok(out)
    }

    pub fn node(&self, id: u16) -> Result<sigil_proto::v1::node_client::NodeClient<Channel>> {
        Ok(sigil_proto::v1::node_client::NodeClient::new(
            self.ctx.node(id)?,
        ))
    }

    /// The identities the real coordinator would relay.
    pub async fn identities(&self, ids: &[u16]) -> Result<Vec<sigil_proto::v1::NodeIdentity>> {
        let mut out = Vec::new();
        for id in ids {
            let info = self
                .node(*id)?
                .get_info(sigil_proto::v1::GetInfoRequest {})
                .await?
                .into_inner();
            out.push(info.identity.context("node reported no identity")?);
        }
        Ok(out)
    }
}

/// A fresh random session id.
pub fn session_id() -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    // Two independent SipHash outputs seeded by the OS: unique per test run.
    let mut out = Vec::with_capacity(16);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0);
        out.extend_from_slice(&h.finish().to_be_bytes());
    }
    out
}
