//! A complete Sigil cluster in one process, for development and tests.
//!
//! [`LocalCluster::start`] lays out a data directory — a dev PKI under
//! `pki/`, one directory per node with its TOML config, SQLite database and
//! key directory, and one for the coordinator — then starts every node and
//! the coordinator on loopback over real mutual TLS. Configs are written once
//! and read back through the same loaders the daemons use, so a started
//! layout can also be run as separate `sigil-node` / `sigil-coordinator`
//! processes. With `base_port: None` every server binds `127.0.0.1:0`.
//!
//! A local cluster also gets a dev backup key: its secret in
//! `<data-dir>/backup/recipient.key` (hex, mode 0600; in production the
//! security officers hold it offline), its public half as every node's
//! `[backup] recipient`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sigil_coordinator::config::{ClientGrant, NodeEndpoint};
use sigil_coordinator::roles::Role;
use sigil_coordinator::{CoordinatorConfig, CoordinatorHandle, CoordinatorServer};
use sigil_node::{NodeConfig, NodeHandle, NodeServer};
use sigil_policy::backup::{BackupPublicKey, BackupSecretKey};
use sigil_tls::pki::PkiLayout;
use sigil_tls::{Identity, TlsFiles, TrustDomain};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The dev client identities and the role each is granted: a payment
/// service, an operator, an auditor, three security officers (policy quorum
/// 2 of 3) and three approvers.
pub const DEV_CLIENTS: &[(&str, Role)] = &[
    ("signer", Role::Signer),
    ("operator", Role::Operator),
    ("auditor", Role::Auditor),
    ("officer-1", Role::Officer),
    ("officer-2", Role::Officer),
    ("officer-3", Role::Officer),
    ("approver-1", Role::Approver),
    ("approver-2", Role::Approver),
    ("approver-3", Role::Approver),
];

/// The dev security officers and how many of them must sign a policy document.
pub const DEV_OFFICERS: (&[&str], u16) = (&["officer-1", "officer-2", "officer-3"], 2);

/// Adjusts a node before it starts (tests use it to inject faults).
pub type NodeCustomizer = std::sync::Arc<dyn Fn(u16, NodeServer) -> NodeServer + Send + Sync>;

/// Adjusts the coordinator before it starts (tests use it to inject faults).
pub type CoordinatorCustomizer =
    std::sync::Arc<dyn Fn(CoordinatorServer) -> CoordinatorServer + Send + Sync>;

/// What to start.
#[derive(Clone)]
pub struct ClusterSpec {
    pub data_dir: PathBuf,
    pub nodes: u16,
    pub trust_domain: TrustDomain,
    pub bind: IpAddr,
    /// Coordinator on `base_port`, node i on `base_port + i`; `None`: ephemeral ports.
    pub base_port: Option<u16>,
    pub customize_node: Option<NodeCustomizer>,
    pub customize_coordinator: Option<CoordinatorCustomizer>,
    /// How often the coordinator re-sends certified epoch switches some node missed.
    pub epoch_resume_interval: std::time::Duration,
    /// Audit log settings of every node (default: in each node's database).
    pub node_audit: sigil_node::config::AuditConfig,
    /// Audit log settings of the coordinator.
    pub coordinator_audit: sigil_coordinator::config::AuditConfig,
    /// The rules of keys without a signed policy, at every node and the
    /// coordinator. Default for a local cluster: intents required, requester
    /// `signer`, no amount limits, raw signing allowed. `None`: deny by default.
    pub default_policy: Option<sigil_policy::PolicyRules>,
    /// Give every node the dev backup recipient ([`ensure_dev_backup_key`]).
    /// `false`: nodes have no `[backup]` section and export no backups.
    pub backup: bool,
}

impl std::fmt::Debug for ClusterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSpec")
            .field("data_dir", &self.data_dir)
            .field("nodes", &self.nodes)
            .field("base_port", &self.base_port)
            .finish_non_exhaustive()
    }
}

impl ClusterSpec {
    pub fn new(data_dir: impl Into<PathBuf>, nodes: u16) -> Self {
        Self {
            data_dir: data_dir.into(),
            nodes,
            trust_domain: TrustDomain::default(),
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: None,
            customize_node: None,
            customize_coordinator: None,
            epoch_resume_interval: std::time::Duration::from_secs(30),
            node_audit: Default::default(),
            coordinator_audit: Default::default(),
            default_policy: Some(sigil_policy::PolicyRules::permissive_dev(vec![
                "signer".to_owned(),
            ])),
            backup: true,
        }
    }
}

/// Where the CLI finds a running local cluster: `<data-dir>/cluster.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub trust_domain: TrustDomain,
    pub coordinator: String,
    pub nodes: Vec<NodeEndpoint>,
    /// Client name → its TLS files.
    pub clients: BTreeMap<String, TlsFiles>,
}

impl ClusterInfo {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("cluster.json")
    }

    pub fn load(data_dir: &Path) -> Result<Self, LocalError> {
        let path = Self::path(data_dir);
        let text = std::fs::read_to_string(&path).map_err(|e| LocalError::Io(path.clone(), e))?;
        serde_json::from_str(&text)
            .map_err(|e| LocalError::Layout(format!("{}: {e}", path.display())))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}")]
    Layout(String),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Tls(#[from] sigil_tls::TlsError),
    #[error(transparent)]
    Node(#[from] sigil_node::ServerError),
    #[error(transparent)]
    Coordinator(#[from] sigil_coordinator::ServerError),
    #[error(transparent)]
    Connect(#[from] crate::connect::ConnectError),
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

/// A started node.
#[derive(Debug, Clone)]
pub struct LocalNode {
    pub id: u16,
    pub zone: String,
    pub addr: SocketAddr,
    pub handle: NodeHandle,
}

/// A running local cluster. Dropping it without [`LocalCluster::shutdown`] aborts the servers.
pub struct LocalCluster {
    pub info: ClusterInfo,
    pub data_dir: PathBuf,
    pub coordinator_addr: SocketAddr,
    pub coordinator: CoordinatorHandle,
    pub nodes: Vec<LocalNode>,
    running_nodes: BTreeMap<u16, Running>,
    running_coordinator: Option<Running>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("data_dir", &self.data_dir)
            .field("coordinator_addr", &self.coordinator_addr)
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// Zone label of node `id`: `zone-a`, `zone-b`, ...
pub fn zone_of(id: u16) -> String {
    let letter = (b'a' + ((id - 1) % 26) as u8) as char;
    format!("zone-{letter}")
}

/// Creates the dev PKI for a cluster of `nodes` nodes under `<data_dir>/pki`.
pub fn ensure_dev_pki(
    data_dir: &Path,
    domain: &TrustDomain,
    nodes: u16,
) -> Result<(PkiLayout, Vec<Identity>), LocalError> {
    let pki = PkiLayout::new(data_dir.join("pki"));
    let mut identities = vec![Identity::Coordinator];
    identities.extend((1..=nodes).map(Identity::Node));
    identities.extend(
        DEV_CLIENTS
            .iter()
            .map(|(name, _)| Identity::Client((*name).to_owned())),
    );
    let issued = pki.ensure(domain, &identities, 365)?;
    Ok((pki, issued))
}

/// Where a local cluster keeps its dev backup secret key.
pub fn backup_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("backup").join("recipient.key")
}

/// Reads a backup secret key file (64 hex characters), refusing a file
/// that others may read.
pub fn load_backup_key(path: &Path) -> Result<BackupSecretKey, LocalError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| LocalError::Io(path.to_owned(), e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(LocalError::Layout(format!(
                "{}: permissions {:o} are too open for a backup key; use 0600",
                path.display(),
                mode & 0o777
            )));
        }
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| LocalError::Io(path.to_owned(), e))?,
    );
    BackupSecretKey::from_hex(&text)
        .map_err(|e| LocalError::Layout(format!("{}: {e}", path.display())))
}

/// Creates the dev backup keypair unless it exists (secret in
/// [`backup_key_path`], mode 0600) and returns its public key.
pub fn ensure_dev_backup_key(data_dir: &Path) -> Result<BackupPublicKey, LocalError> {
    let path = backup_key_path(data_dir);
    if !path.exists() {
        let dir = path.parent().unwrap_or(data_dir);
        std::fs::create_dir_all(dir).map_err(|e| LocalError::Io(dir.to_owned(), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| LocalError::Io(dir.to_owned(), e))?;
        }
        let key = BackupSecretKey::generate(&mut rand::rngs::OsRng);
        write_private(&path, key.to_hex().as_bytes())?;
    }
    Ok(load_backup_key(&path)?.public_key())
}

/// Writes a new file only its owner can read (mode 0600), replacing any.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), LocalError> {
    let err = |e| LocalError::Io(path.to_owned(), e);
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&tmp).map_err(err)?;
    std::io::Write::write_all(&mut file, bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}

async fn bind(spec: &ClusterSpec, offset: u16) -> Result<TcpListener, LocalError> {
    let port = spec.base_port.map(|p| p + offset).unwrap_or(0);
    let addr = SocketAddr::new(spec.bind, port);
    TcpListener::bind(addr)
        .await
        .map_err(|e| LocalError::Bind(addr, e))
}

fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<(), LocalError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LocalError::Io(dir.to_owned(), e))?;
    }
    let text = toml::to_string_pretty(value).map_err(|e| LocalError::Layout(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| LocalError::Io(path.to_owned(), e))
}

fn relative(files: &TlsFiles, from: &Path) -> TlsFiles {
    let rel = |p: &Path| pathdiff(p, from);
    TlsFiles {
        ca: rel(&files.ca),
        cert: rel(&files.cert),
        key: rel(&files.key),
    }
}

/// `path` relative to directory `from` when `path` is below `from`'s parent (the data dir).
fn pathdiff(path: &Path, from: &Path) -> PathBuf {
    match (
        from.parent(),
        path.strip_prefix(from.parent().unwrap_or(from)),
    ) {
        (Some(_), Ok(rest)) => Path::new("..").join(rest),
        _ => path.to_owned(),
    }
}

impl LocalCluster {
    /// Lays out (first run) and starts a cluster.
    pub async fn start(spec: ClusterSpec) -> Result<Self, LocalError> {
        let data_dir = spec.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|e| LocalError::Io(data_dir.clone(), e))?;
        let (pki, _) = ensure_dev_pki(&data_dir, &spec.trust_domain, spec.nodes)?;
        let backup = if spec.backup {
            Some(sigil_node::config::BackupConfig {
                recipient: ensure_dev_backup_key(&data_dir)?.to_hex(),
            })
        } else {
            None
        };

        let mut nodes = Vec::new();
        let mut running_nodes = BTreeMap::new();
        let mut endpoints = Vec::new();
        for id in 1..=spec.nodes {
            let listener = bind(&spec, id).await?;
            let addr = listener
                .local_addr()
                .map_err(|e| LocalError::Io(data_dir.clone(), e))?;
            let dir = data_dir.join(format!("node-{id}"));
            let config_path = dir.join("node.toml");
            let zone = zone_of(id);
            let config = NodeConfig {
                node_id: id,
                zone: zone.clone(),
                listen: addr,
                trust_domain: spec.trust_domain.clone(),
                tls: relative(&pki.identity_files(&Identity::Node(id)), &dir),
                database: PathBuf::from("node.db"),
                key_dir: PathBuf::from("keys"),
                kek_file: None,
                tls_reload_interval: std::time::Duration::from_secs(5),
                session_ttl: std::time::Duration::from_secs(60),
                audit: spec.node_audit.clone(),
                policy: sigil_node::config::PolicyConfig {
                    officers: DEV_OFFICERS.0.iter().map(|o| (*o).to_owned()).collect(),
                    officer_quorum: DEV_OFFICERS.1,
                    default: spec.default_policy.clone(),
                    ..Default::default()
                },
                epochs: Default::default(),
                backup: backup.clone(),
                limits: Default::default(),
            };
            write_toml(&config_path, &config)?;
            let config = NodeConfig::load(&config_path)?;
            // A node only loads its key-encryption key; a local cluster creates it (0600).
            sigil_node::seal::Kek::load_or_create(&config.kek_path())
                .map_err(|e| LocalError::Layout(e.to_string()))?;
            let mut server = NodeServer::open(config).await?;
            if let Some(customize) = &spec.customize_node {
                server = customize(id, server);
            }
            let handle = server.handle();
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                if let Err(e) = server
                    .run(listener, async {
                        let _ = stopped.await;
                    })
                    .await
                {
                    tracing::error!(node = id, error = %e, "node failed");
                }
            });
            running_nodes.insert(
                id,
                Running {
                    stop: Some(stop),
                    task,
                },
            );
            endpoints.push(NodeEndpoint {
                id,
                endpoint: addr.to_string(),
                zone: zone.clone(),
            });
            nodes.push(LocalNode {
                id,
                zone,
                addr,
                handle,
            });
        }

        let listener = bind(&spec, 0).await?;
        let coordinator_addr = listener
            .local_addr()
            .map_err(|e| LocalError::Io(data_dir.clone(), e))?;
        let dir = data_dir.join("coordinator");
        let config_path = dir.join("coordinator.toml");
        let config = CoordinatorConfig {
            listen: coordinator_addr,
            trust_domain: spec.trust_domain.clone(),
            tls: relative(&pki.identity_files(&Identity::Coordinator), &dir),
            database: PathBuf::from("coordinator.db"),
            nodes: endpoints.clone(),
            clients: DEV_CLIENTS
                .iter()
                .map(|(name, role)| ClientGrant {
                    name: (*name).to_owned(),
                    roles: vec![*role],
                })
                .collect(),
            tls_reload_interval: std::time::Duration::from_secs(5),
            node_timeout: std::time::Duration::from_secs(5),
            audit: spec.coordinator_audit.clone(),
            policy: sigil_coordinator::config::PolicyConfig {
                default: spec.default_policy.clone(),
                ..Default::default()
            },
            epoch_resume_interval: spec.epoch_resume_interval,
            limits: Default::default(),
        };
        write_toml(&config_path, &config)?;
        let config = CoordinatorConfig::load(&config_path)?;
        let mut server = CoordinatorServer::open(config).await?;
        if let Some(customize) = &spec.customize_coordinator {
            server = customize(server);
        }
        let coordinator = server.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            if let Err(e) = server
                .run(listener, async {
                    let _ = stopped.await;
                })
                .await
            {
                tracing::error!(error = %e, "coordinator failed");
            }
        });

        let info = ClusterInfo {
            trust_domain: spec.trust_domain.clone(),
            coordinator: coordinator_addr.to_string(),
            nodes: endpoints,
            clients: DEV_CLIENTS
                .iter()
                .map(|(name, _)| {
                    (
                        (*name).to_owned(),
                        pki.identity_files(&Identity::Client((*name).to_owned())),
                    )
                })
                .collect(),
        };
        let info_path = ClusterInfo::path(&data_dir);
        let text =
            serde_json::to_string_pretty(&info).map_err(|e| LocalError::Layout(e.to_string()))?;
        std::fs::write(&info_path, text).map_err(|e| LocalError::Io(info_path, e))?;

        Ok(Self {
            info,
            data_dir,
            coordinator_addr,
            coordinator,
            nodes,
            running_nodes,
            running_coordinator: Some(Running {
                stop: Some(stop),
                task,
            }),
        })
    }

    /// Stops one node (graceful: in-flight calls finish). Returns false if it was not running.
    pub async fn stop_node(&mut self, id: u16) -> bool {
        match self.running_nodes.remove(&id) {
            Some(r) => {
                r.stop().await;
                true
            }
            None => false,
        }
    }

    /// Stops every server and waits for them.
    pub async fn shutdown(mut self) {
        if let Some(c) = self.running_coordinator.take() {
            c.stop().await;
        }
        for (_, r) in std::mem::take(&mut self.running_nodes) {
            r.stop().await;
        }
        let _ = std::fs::remove_file(ClusterInfo::path(&self.data_dir));
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for r in self.running_nodes.values() {
            r.task.abort();
        }
        if let Some(c) = &self.running_coordinator {
            c.task.abort();
        }
    }
}
