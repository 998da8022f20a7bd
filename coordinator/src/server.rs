//! The coordinator's gRPC server: mTLS listener, role-based authorization,
//! health checking, server reflection (so `grpcurl` can explore it) and
//! graceful shutdown, in the `run(listener, shutdown)` shape. The audit
//! layer sits outside authorization, so refused calls are recorded too; the
//! audit log is recorded at start, on a timer (signed heads), on
//! certificate reloads and at a graceful stop.

use std::future::Future;
use std::sync::Arc;

use sigil_proto::v1::approvals_server::ApprovalsServer;
use sigil_proto::v1::audit_server::AuditServer;
use sigil_proto::v1::key_admin_server::KeyAdminServer;
use sigil_proto::v1::policy_server::PolicyServer;
use sigil_proto::v1::signing_server::SigningServer;
use sigil_tls::authz::AuthzLayer;
use sigil_tls::server::{AcceptOptions, incoming};
use sigil_tls::{ConnectionEvent, Identity, ReloadableTls};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::audit::{CoordinatorAudit, RequestAuditLayer};
use crate::config::CoordinatorConfig;
use crate::error::ServerError;
use crate::nodes::NodePool;
use crate::roles::RoleMap;
use crate::service::{Api, Coordinator};
use crate::store::{CoordinatorStore, SqliteCoordinatorStore};

/// A coordinator ready to serve.
pub struct CoordinatorServer {
    config: CoordinatorConfig,
    tls: Arc<ReloadableTls>,
    state: Arc<Coordinator>,
    events: broadcast::Sender<ConnectionEvent>,
}

impl std::fmt::Debug for CoordinatorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorServer")
            .field("listen", &self.config.listen)
            .finish_non_exhaustive()
    }
}

/// What tests and the CLI may observe of a running coordinator.
#[derive(Clone, Debug)]
pub struct CoordinatorHandle {
    pub tls: Arc<ReloadableTls>,
    /// The coordinator's audit log (read it; appends belong to the coordinator).
    pub audit: sigil_audit::AuditLog,
    events: broadcast::Sender<ConnectionEvent>,
}

impl CoordinatorHandle {
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.events.subscribe()
    }
}

impl CoordinatorServer {
    /// Loads TLS material and opens the store, the node channels and the
    /// audit log. Fails closed: an in-memory audit log without the
    /// benchmark opt-in is refused ([`ServerError`]).
    pub async fn open(config: CoordinatorConfig) -> Result<Self, ServerError> {
        sigil_tls::install_crypto_provider();
        config.validate()?;
        config.check_audit_placement()?;
        let tls = ReloadableTls::load(config.tls.clone(), config.trust_domain.clone())?;
        if tls.identity() != Identity::Coordinator {
            return Err(ServerError::Config(format!(
                "certificate {} names {}, not the coordinator",
                config.tls.cert.display(),
                tls.identity()
            )));
        }
        let store: Arc<dyn CoordinatorStore> =
            Arc::new(SqliteCoordinatorStore::open(&config.database).await?);
        let nodes = Arc::new(
            NodePool::new(&config.nodes, tls.clone(), config.node_timeout)
                .map_err(ServerError::Nodes)?,
        );
        let audit = CoordinatorAudit::open(&config, tls.clone())
            .await
            .map_err(ServerError::Audit)?;
        let (events, _) = broadcast::channel(256);
        Ok(Self {
            state: Arc::new(Coordinator {
                store,
                nodes,
                audit,
                tls: tls.clone(),
                policy: config.policy.clone(),
                policy_cache: Default::default(),
                sign_inflight: crate::limits::InflightLimiter::sign(&config.limits),
                faults: Default::default(),
            }),
            config,
            tls,
            events,
        })
    }

    /// Makes this coordinator stop half-way on purpose (crash tests).
    #[cfg(feature = "fault-injection")]
    pub fn with_faults(mut self, faults: crate::epochs::CoordinatorFaults) -> Self {
        if let Some(state) = Arc::get_mut(&mut self.state) {
            state.faults = faults;
        }
        self
    }

    pub fn handle(&self) -> CoordinatorHandle {
        CoordinatorHandle {
            tls: self.tls.clone(),
            audit: self.state.audit.log().clone(),
            events: self.events.clone(),
        }
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let addr = listener.local_addr()?;
        let audit = self.state.audit.clone();
        // Fail closed from the start: a coordinator whose log is not writable does not serve.
        audit
            .process_start(format!(
                "sigil-coordinator {}, listening on {addr}, {} nodes",
                env!("CARGO_PKG_VERSION"),
                self.config.nodes.len()
            ))
            .await
            .map_err(|e| ServerError::Audit(e.into()))?;
        let audit_task = audit.spawn_background(self.config.audit.head_interval, self.tls.clone());
        let watcher = self.tls.spawn_watcher(self.config.tls_reload_interval);
        // Certified epoch switches that some node has not confirmed: at start, then periodically.
        let resumer = {
            let state = self.state.clone();
            let resume_every = self.config.epoch_resume_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(resume_every);
                loop {
                    tick.tick().await;
                    state.resume_commits().await;
                }
            })
        };
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<SigningServer<Api>>().await;
        health.set_serving::<KeyAdminServer<Api>>().await;
        health.set_serving::<AuditServer<Api>>().await;
        health.set_serving::<PolicyServer<Api>>().await;
        health.set_serving::<ApprovalsServer<Api>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(sigil_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServerError::Reflection(e.to_string()))?;
        let roles = RoleMap::new(&self.config.clients);
        let opts = AcceptOptions {
            events: Some(self.events.clone()),
            ..AcceptOptions::default()
        };
        tracing::info!(%addr, nodes = self.config.nodes.len(), "coordinator serving");
        let result = tonic::transport::Server::builder()
            // Outermost: records every call, including those authorization refuses.
            .layer(RequestAuditLayer::new(audit.clone()))
            .layer(AuthzLayer::new(
                move |method: &str, peer: &sigil_tls::PeerInfo| roles.authorize(method, peer),
            ))
            .add_service(health_service)
            .add_service(reflection)
            // Client requests: the bound stated in `limits`, not a default.
            .add_service(
                SigningServer::new(Api(self.state.clone()))
                    .max_decoding_message_size(crate::limits::MAX_REQUEST_BYTES),
            )
            .add_service(
                KeyAdminServer::new(Api(self.state.clone()))
                    .max_decoding_message_size(crate::limits::MAX_REQUEST_BYTES),
            )
            .add_service(
                AuditServer::new(Api(self.state.clone()))
                    .max_decoding_message_size(crate::limits::MAX_REQUEST_BYTES),
            )
            .add_service(
                PolicyServer::new(Api(self.state.clone()))
                    .max_decoding_message_size(crate::limits::MAX_REQUEST_BYTES),
            )
            .add_service(
                ApprovalsServer::new(Api(self.state.clone()))
                    .max_decoding_message_size(crate::limits::MAX_REQUEST_BYTES),
            )
            .serve_with_incoming_shutdown(incoming(listener, self.tls.clone(), opts), shutdown)
            .await;
        watcher.abort();
        resumer.abort();
        audit_task.abort();
        audit.process_stop().await;
        tracing::info!("coordinator stopped");
        result.map_err(ServerError::from)
    }
}
