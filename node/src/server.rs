//! The node's gRPC server: mTLS listener, health checking, authorization
//! (only the coordinator may call `sigil.v1.Node`; any cluster identity may
//! check health) and graceful shutdown, in the `run(listener, shutdown)`
//! shape so tests can bind `127.0.0.1:0` and stop it deterministically.
//! The audit log is opened with the node and recorded at start, on a timer
//! (signed heads), on certificate reloads and at a graceful stop.

use std::future::Future;
use std::sync::Arc;

use sigil_proto::v1::node_server::NodeServer as NodeGrpc;
use sigil_tls::authz::{AuthzLayer, is_public_method};
use sigil_tls::server::{AcceptOptions, incoming};
use sigil_tls::{ConnectionEvent, Identity, PeerInfo, ReloadableTls};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tonic::Status;

use crate::audit::NodeAudit;
use crate::config::NodeConfig;
use crate::error::ServerError;
use crate::identity::load_or_create_encryption_key;
use crate::policy::NodePolicy;
use crate::seal::{Kek, SealError};
use crate::service::{Faults, NodeService};
use crate::sessions::Sessions;
use crate::store::{ShareStore, SqliteShareStore};
use sigil_protocol::envelope::EncryptionKeypair;

/// A node ready to serve.
pub struct NodeServer {
    config: NodeConfig,
    tls: Arc<ReloadableTls>,
    store: Arc<dyn ShareStore>,
    policy: Arc<NodePolicy>,
    kek: Arc<Kek>,
    encryption: EncryptionKeypair,
    sessions: Arc<Sessions>,
    audit: NodeAudit,
    faults: Faults,
    bans: crate::bans::Bans,
    backup_recipient: Option<sigil_policy::backup::BackupPublicKey>,
    events: broadcast::Sender<ConnectionEvent>,
}

impl std::fmt::Debug for NodeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeServer")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

/// What tests and the CLI may observe of a running node.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    pub node_id: u16,
    pub tls: Arc<ReloadableTls>,
    /// The node's audit log (read it; appends belong to the node).
    pub audit: sigil_audit::AuditLog,
    events: broadcast::Sender<ConnectionEvent>,
}

impl NodeHandle {
    /// Connection events (accepted and refused handshakes) from now on.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.events.subscribe()
    }
}

impl NodeServer {
    /// Loads TLS material, the key-encryption key and the share store.
    /// Fails closed: a missing KEK file, or an in-memory audit log without
    /// the benchmark opt-in, is refused ([`ServerError`]).
    pub async fn open(config: NodeConfig) -> Result<Self, ServerError> {
        sigil_tls::install_crypto_provider();
        config.validate()?;
        config.check_audit_placement()?;
        let tls = ReloadableTls::load(config.tls.clone(), config.trust_domain.clone())?;
        let expected = Identity::Node(config.node_id);
        if tls.identity() != expected {
            return Err(ServerError::Config(format!(
                "certificate {} names {}, but this node is configured as {expected}",
                config.tls.cert.display(),
                tls.identity()
            )));
        }
        // Fail at start, not at the first session, if the key cannot sign.
        tls.identity_key()?;
        // The operator provides the KEK; only local-cluster tooling creates one.
        let kek_path = config.kek_path();
        let kek = Arc::new(Kek::load(&kek_path).map_err(|e| match e {
            SealError::KekMissing { .. } => ServerError::KekMissing {
                path: kek_path.clone(),
            },
            other => ServerError::Kek(other),
        })?);
        let encryption = load_or_create_encryption_key(&kek, &config.key_dir, config.node_id)
            .map_err(ServerError::EncryptionKey)?;
        let sqlite = SqliteShareStore::open(&config.database)
            .await?
            .authenticated(kek.row_authenticator(config.node_id));
        let untagged = sqlite.untagged_rows().await?;
        if untagged > 0 {
            tracing::warn!(
                rows = untagged,
                database = %config.database.display(),
                "share rows without an authentication tag (altered, or written before rows were \
                 authenticated); they will not be used"
            );
        }
        let sqlite = Arc::new(sqlite);
        let store: Arc<dyn ShareStore> = sqlite.clone();
        let ban_store: Arc<dyn crate::bans::BanStore> = sqlite.clone();
        let audit = NodeAudit::open(&config, tls.clone())
            .await
            .map_err(ServerError::Audit)?;
        let policy = Arc::new(
            NodePolicy::new(
                config.node_id,
                tls.clone(),
                sqlite,
                audit.clone(),
                config.policy.clone(),
            )
            .map_err(ServerError::Policy)?,
        );
        let (events, _) = broadcast::channel(256);
        let sessions = Arc::new(Sessions::with_limits(
            config.session_ttl,
            config.limits.sessions(),
        ));
        let bans = crate::bans::Bans::new(ban_store, audit.clone(), sessions.clone());
        let backup_recipient = config
            .backup
            .as_ref()
            .map(|b| b.recipient_key())
            .transpose()?;
        Ok(Self {
            config,
            tls,
            store,
            policy,
            kek,
            encryption,
            sessions,
            audit,
            faults: Faults::default(),
            bans,
            backup_recipient,
            events,
        })
    }

    /// Makes this node misbehave on purpose (cluster tests of culprit handling).
    #[cfg(feature = "fault-injection")]
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    pub fn handle(&self) -> NodeHandle {
        NodeHandle {
            node_id: self.config.node_id,
            tls: self.tls.clone(),
            audit: self.audit.log().clone(),
            events: self.events.clone(),
        }
    }

    /// Serves on `listener` until `shutdown` completes, then drains in-flight calls.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let addr = listener.local_addr()?;
        // Fail closed from the start: a node whose log is not writable does not serve.
        self.audit
            .process_start(format!(
                "sigil-node {}, zone {}, listening on {addr}",
                env!("CARGO_PKG_VERSION"),
                self.config.zone
            ))
            .await
            .map_err(|e| ServerError::Audit(e.into()))?;
        let audit_task = self
            .audit
            .spawn_background(self.config.audit.head_interval, self.tls.clone());
        let watcher = self.tls.spawn_watcher(self.config.tls_reload_interval);
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<NodeGrpc<NodeService>>().await;

        let service = Arc::new(NodeService {
            node_id: self.config.node_id,
            zone: self.config.zone.clone(),
            store: self.store.clone(),
            tls: self.tls.clone(),
            kek: self.kek.clone(),
            encryption: self.encryption,
            sessions: self.sessions.clone(),
            audit: self.audit.clone(),
            policy: self.policy.clone(),
            faults: self.faults.clone(),
            bans: self.bans.clone(),
            backup_recipient: self.backup_recipient,
        });
        let sweeper = {
            let sessions = self.sessions.clone();
            let audit = self.audit.clone();
            let policy = self.policy.clone();
            let service = service.clone();
            let epochs = self.config.epochs.clone();
            let sweep_every = epochs.sweep_interval.as_secs().max(1);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
                let mut ticks: u64 = 0;
                loop {
                    tick.tick().await;
                    ticks += 1;
                    // Expired intents are refused as expired; their replay records can go.
                    if ticks.is_multiple_of(600)
                        && let Err(e) = policy.prune().await
                    {
                        tracing::warn!(error = %e, "could not prune expired intents");
                    }
                    if ticks.is_multiple_of(sweep_every)
                        && let Err(e) = service
                            .sweep_epochs(epochs.retired_grace, epochs.next_ttl)
                            .await
                    {
                        tracing::warn!(error = %e, "could not delete retired shares");
                    }
                    let expired = sessions.sweep();
                    if !expired.is_empty() {
                        tracing::info!(
                            expired = expired.len(),
                            "expired protocol sessions dropped"
                        );
                    }
                    for session in &expired {
                        audit.session_expired(session).await;
                    }
                }
            })
        };
        let opts = AcceptOptions {
            events: Some(self.events.clone()),
            ..AcceptOptions::default()
        };
        tracing::info!(node_id = self.config.node_id, zone = %self.config.zone, %addr, "node serving");
        let audit = self.audit.clone();
        let result = tonic::transport::Server::builder()
            .layer(AuthzLayer::new(move |method: &str, peer: &PeerInfo| {
                authorize(method, peer).inspect_err(|status| {
                    audit.authz_denied(Some(peer), method, status.message());
                })
            }))
            .add_service(health_service)
            .add_service(NodeGrpc::from_arc(service))
            .serve_with_incoming_shutdown(incoming(listener, self.tls.clone(), opts), shutdown)
            .await;
        watcher.abort();
        sweeper.abort();
        audit_task.abort();
        // Sessions still open end with the process: each gets its record.
        for session in self.sessions.drain() {
            self.audit.session_aborted(&session, "node stopping").await;
        }
        self.audit.process_stop().await;
        tracing::info!(node_id = self.config.node_id, "node stopped");
        result.map_err(ServerError::from)
    }
}

/// Only the coordinator drives the node; anyone in the cluster may check health.
fn authorize(method: &str, peer: &PeerInfo) -> Result<(), Status> {
    if is_public_method(method) {
        return Ok(());
    }
    if !method.starts_with("/sigil.v1.Node/") {
        return Err(Status::permission_denied("unknown method"));
    }
    match peer.identity {
        Identity::Coordinator => Ok(()),
        ref other => Err(Status::permission_denied(format!(
            "{other} may not call the node service"
        ))),
    }
}
