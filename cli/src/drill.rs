//! Backups and recovery drills from the operator's side: `sigil backup`
//! writes every node's sealed backup to a directory, `sigil drill` proves a
//! key survives from such a backup without reconstructing it.
//!
//! [`run_drill`] restores one node's backup into an isolated drill node and
//! has it co-sign with live nodes, step by step:
//!
//! 1. **load** `<dir>/node-<n>.json` and the key's entry; the key's current
//!    epoch, package and participants come from the coordinator (`GetKey`);
//! 2. **open** it with the backup secret key and check it
//!    ([`sigil_policy::backup::restore_share`]): the key's current epoch (an
//!    older backup is refused), HPKE authentication of the ciphertext and
//!    every label, the share's own `s·G` equal to the backup's verifying
//!    share and the package's;
//! 3. **start** a fresh drill node: its own temporary data directory, a new
//!    key-encryption key and encryption key, a short-lived `node/<n>`
//!    certificate from the cluster CA in `<data-dir>/pki`, the officer
//!    configuration of node `n`; the share is sealed under the new KEK and
//!    written as `current` into its empty database *before* it starts (a
//!    share is never imported into a running node);
//! 4. **co-sign** a drill message with live current participants
//!    (`KeyAdmin.Drill`), under the officers' authorization signed with the
//!    `--officers` identities;
//! 5. **verify** the signature here, under the group key, over the drill
//!    message derived here;
//! 6. **destroy** the drill node: stopped, its directory removed — also
//!    when an earlier step failed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sigil_node::config::PolicyConfig;
use sigil_node::seal::{Binding, Kek};
use sigil_node::store::{ShareStatus, ShareStore, SqliteShareStore, StoredShare};
use sigil_node::{NodeConfig, NodeServer};
use sigil_policy::backup::{BackupError, BackupFile, BackupSecretKey, CurrentKey, restore_share};
use sigil_proto::convert::scheme_from_wire;
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_protocol::Scheme;
use sigil_protocol::engine::{self, Encoding, KeyShare, SignInput};
use sigil_tls::pki::{CertificateAuthority, PkiLayout, Validity};
use sigil_tls::{Identity, TlsFiles};
use tokio::sync::oneshot;

use crate::connect::ClientContext;
use crate::local::{LocalError, write_private};

/// How long a drill node may take to stop before its task is aborted.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Why a backup or a drill failed.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A backup file was refused (malformed, stale, altered, another key).
    #[error("{} (node {node}): {error}", file.display())]
    Backup {
        file: PathBuf,
        node: u16,
        error: BackupError,
    },
    #[error("{}: {reason}", file.display())]
    File { file: PathBuf, reason: String },
    #[error("no backup of key {key_id} in {}{}", dir.display(), node.map(|n| format!(" for node {n}")).unwrap_or_default())]
    NoBackup {
        key_id: String,
        dir: PathBuf,
        node: Option<u16>,
    },
    #[error("{what}: {}", crate::status::describe(.status))]
    Rpc {
        what: &'static str,
        status: tonic::Status,
    },
    #[error("the drill node: {0}")]
    DrillNode(String),
    #[error("the drill signature does not verify under the group key: {0}")]
    Verify(String),
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("signing the authorization: {0}")]
    Authorization(String),
}

fn rpc(what: &'static str) -> impl FnOnce(tonic::Status) -> DrillError {
    move |status| DrillError::Rpc { what, status }
}

/// `<dir>/node-<n>.json`.
pub fn backup_file(dir: &Path, node: u16) -> PathBuf {
    dir.join(format!("node-{node}.json"))
}

/// Writes each node's backup to `dir` (created mode 0700) as
/// `node-<n>.json` (mode 0600); returns the files written.
pub fn write_backups(dir: &Path, backups: &[pb::NodeBackup]) -> Result<Vec<PathBuf>, DrillError> {
    let io = |e: std::io::Error| DrillError::File {
        file: dir.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    let mut written = Vec::with_capacity(backups.len());
    for backup in backups {
        let node = u16::try_from(backup.node_id).map_err(|_| DrillError::File {
            file: dir.to_owned(),
            reason: format!("node id {} out of range", backup.node_id),
        })?;
        let path = backup_file(dir, node);
        let file = BackupFile::from_wire(backup).map_err(|error| DrillError::Backup {
            file: path.clone(),
            node,
            error,
        })?;
        let mut text = serde_json::to_vec_pretty(&file).map_err(|e| DrillError::File {
            file: path.clone(),
            reason: e.to_string(),
        })?;
        text.push(b'\n');
        write_private(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

/// Reads a backup file.
pub fn read_backup(path: &Path) -> Result<BackupFile, DrillError> {
    let err = |reason: String| DrillError::File {
        file: path.to_owned(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    serde_json::from_slice(&text).map_err(|e| err(format!("not a backup file: {e}")))
}

/// What to drill.
#[derive(Debug, Clone)]
pub struct DrillSpec {
    pub key_id: String,
    /// Where `sigil backup` wrote the files.
    pub backup_dir: PathBuf,
    /// The node whose backup to restore (default: the lowest participant
    /// with a backup of the key in `backup_dir`).
    pub node: Option<u16>,
    /// The backup secret key (held offline by the officers).
    pub backup_key: BackupSecretKey,
    /// Officer identities (in the data directory) that sign the authorization.
    pub officers: Vec<String>,
}

/// One finished step of a drill.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DrillStep {
    /// `load`, `open`, `start`, `co-sign`, `verify`, `destroy`.
    pub step: &'static str,
    pub ms: u64,
    /// What the step established, for people.
    pub detail: String,
}

/// A passed drill.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillReport {
    pub key_id: String,
    pub scheme: String,
    pub epoch: u64,
    pub node_id: u16,
    pub backup_file: PathBuf,
    /// Hex: the restored share's verifying share.
    pub verifying_share: String,
    pub signers: Vec<u32>,
    pub session_id: String,
    /// Hex.
    pub signature: String,
    /// Hex: the group key the signature verified under.
    pub public_key: String,
    pub steps: Vec<DrillStep>,
    pub total_ms: u64,
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Runs a recovery drill against the local cluster of `data_dir` (see the
/// module docs). `progress` is told each step as it finishes. The drill
/// node is destroyed whatever happens once it exists.
pub async fn run_drill(
    data_dir: &Path,
    spec: &DrillSpec,
    progress: &mut (dyn FnMut(&DrillStep) + Send),
) -> Result<DrillReport, DrillError> {
    let started = Instant::now();
    let mut steps = Vec::new();
    let mut done = |steps: &mut Vec<DrillStep>, step: DrillStep| {
        progress(&step);
        steps.push(step);
    };
    let operator = ClientContext::load(data_dir, "operator")?;
    let mut admin = KeyAdminClient::new(operator.coordinator()?);

    // 1. The backup file and the key as it is now.
    let t = Instant::now();
    let key = admin
        .get_key(pb::GetKeyRequest {
            key_id: spec.key_id.clone(),
        })
        .await
        .map_err(rpc("GetKey"))?
        .into_inner();
    let scheme = scheme_from_wire(key.scheme).map_err(|e| DrillError::Rpc {
        what: "GetKey",
        status: tonic::Status::internal(e.to_string()),
    })?;
    let participants: Vec<u16> = key
        .participants
        .iter()
        .filter_map(|n| u16::try_from(*n).ok())
        .collect();
    let (node, path, file) = choose_backup(spec, &participants)?;
    let wire = file.to_wire().map_err(|error| DrillError::Backup {
        file: path.clone(),
        node,
        error,
    })?;
    let entry = wire
        .entries
        .iter()
        .find(|e| e.key_id == spec.key_id)
        .ok_or_else(|| DrillError::NoBackup {
            key_id: spec.key_id.clone(),
            dir: spec.backup_dir.clone(),
            node: Some(node),
        })?;
    done(
        &mut steps,
        DrillStep {
            step: "load",
            ms: ms(t),
            detail: format!(
                "loaded {} (node {node}, key {} epoch {}; the key is at epoch {})",
                path.display(),
                entry.key_id,
                entry.epoch,
                key.epoch
            ),
        },
    );

    // 2. Open and check it, offline.
    let t = Instant::now();
    let threshold = u16::try_from(key.threshold).map_err(|_| DrillError::Rpc {
        what: "GetKey",
        status: tonic::Status::internal("threshold out of range"),
    })?;
    let current = CurrentKey {
        key_id: &key.key_id,
        scheme,
        epoch: key.epoch,
        public_key: &key.public_key,
        public_key_package: &key.public_key_package,
        participants: &participants,
    };
    let share = restore_share(&spec.backup_key, entry, node, &current).map_err(|error| {
        DrillError::Backup {
            file: path.clone(),
            node,
            error,
        }
    })?;
    let verifying_share = hex::encode(&entry.verifying_share);
    done(
        &mut steps,
        DrillStep {
            step: "open",
            ms: ms(t),
            detail: format!(
                "opened with backup key {}; the restored share matches its verifying share {verifying_share} (the backup's and the key's package of epoch {})",
                spec.backup_key.public_key().fingerprint(),
                key.epoch
            ),
        },
    );

    // 3. A fresh drill node holding only the restored share.
    let t = Instant::now();
    let drill =
        DrillNode::start(data_dir, &operator, node, &key, scheme, threshold, &share).await?;
    drop(share);
    done(
        &mut steps,
        DrillStep {
            step: "start",
            ms: ms(t),
            detail: format!(
                "drill node {node} started with a fresh identity (new certificate, KEK and encryption key) at {} in {}",
                drill.addr,
                drill.dir.path().display()
            ),
        },
    );

    // 4-5. Co-sign with live nodes, then verify here; 6. always destroy.
    let outcome = cosign(
        data_dir, spec, &mut admin, &key, scheme, threshold, node, &drill,
    )
    .await;
    if let Ok((_, cosigned)) = &outcome {
        for step in cosigned {
            done(&mut steps, step.clone());
        }
    }
    let dir = drill.dir.path().to_owned();
    let destroyed = drill.destroy().await;
    let response = match (outcome, destroyed) {
        (Ok((response, _)), Ok(ms)) => {
            done(
                &mut steps,
                DrillStep {
                    step: "destroy",
                    ms,
                    detail: format!("drill node stopped and {} removed", dir.display()),
                },
            );
            response
        }
        (Err(e), destroyed) => {
            if let Err(d) = destroyed {
                tracing::error!(error = %d, "the failed drill's node was not fully destroyed");
            }
            return Err(e);
        }
        (Ok(_), Err(e)) => return Err(e),
    };
    Ok(DrillReport {
        key_id: key.key_id.clone(),
        scheme: scheme.name().to_owned(),
        epoch: key.epoch,
        node_id: node,
        backup_file: path,
        verifying_share,
        signers: response.signers,
        session_id: response.session_id,
        signature: hex::encode(&response.signature),
        public_key: hex::encode(&key.public_key),
        steps,
        total_ms: ms(started),
    })
}

/// The node whose backup to restore, its file, and the file.
fn choose_backup(
    spec: &DrillSpec,
    participants: &[u16],
) -> Result<(u16, PathBuf, BackupFile), DrillError> {
    let candidates: Vec<u16> = match spec.node {
        Some(n) => vec![n],
        None => participants.to_vec(),
    };
    for node in candidates {
        let path = backup_file(&spec.backup_dir, node);
        if spec.node.is_none() && !path.exists() {
            continue;
        }
        let file = read_backup(&path)?;
        if file.node_id != node {
            return Err(DrillError::File {
                file: path,
                reason: format!("the file is node {}'s backup", file.node_id),
            });
        }
        if spec.node.is_some() || file.entry(&spec.key_id).is_some() {
            return Ok((node, path, file));
        }
    }
    Err(DrillError::NoBackup {
        key_id: spec.key_id.clone(),
        dir: spec.backup_dir.clone(),
        node: spec.node,
    })
}

/// Steps 4 and 5: the drill signature and its verification here.
#[allow(clippy::too_many_arguments)]
async fn cosign(
    data_dir: &Path,
    spec: &DrillSpec,
    admin: &mut KeyAdminClient<tonic::transport::Channel>,
    key: &pb::KeyInfo,
    scheme: Scheme,
    threshold: u16,
    node: u16,
    drill: &DrillNode,
) -> Result<(pb::DrillResponse, Vec<DrillStep>), DrillError> {
    let t = Instant::now();
    // Live current participants other than the drilled node, as many as it takes.
    let healthy: Vec<u16> = admin
        .list_nodes(pb::ListNodesRequest {})
        .await
        .map_err(rpc("ListNodes"))?
        .into_inner()
        .nodes
        .into_iter()
        .filter(|n| n.healthy)
        .filter_map(|n| u16::try_from(n.node_id).ok())
        .collect();
    let mut signers: Vec<u16> = key
        .participants
        .iter()
        .filter_map(|n| u16::try_from(*n).ok())
        .filter(|n| *n != node && healthy.contains(n))
        .take(usize::from(threshold).saturating_sub(1))
        .collect();
    if signers.len() + 1 < usize::from(threshold) {
        return Err(DrillError::DrillNode(format!(
            "only nodes {signers:?} of key {} answer besides node {node}; a drill needs {} live co-signers",
            key.key_id,
            threshold.saturating_sub(1)
        )));
    }
    signers.push(node);
    signers.sort_unstable();
    let authorization = authorize_drill(data_dir, key, &signers, threshold, &spec.officers)?;
    let response = admin
        .drill(pb::DrillRequest {
            key_id: key.key_id.clone(),
            node_id: u32::from(node),
            endpoint: drill.addr.to_string(),
            authorization: Some(authorization),
        })
        .await
        .map_err(rpc("Drill"))?
        .into_inner();
    let cosigned = DrillStep {
        step: "co-sign",
        ms: ms(t),
        detail: format!(
            "co-signed a drill message with nodes {:?} (session {}, {} ms of signing)",
            response
                .signers
                .iter()
                .filter(|s| **s != u32::from(node))
                .collect::<Vec<_>>(),
            response.session_id,
            response.sign_ms
        ),
    };

    // Verified here too, over the message derived here.
    let t = Instant::now();
    let session = hex::decode(&response.session_id)
        .map_err(|_| DrillError::Verify("the session id is not hex".into()))?;
    let message = sigil_policy::drill_message(&key.key_id, key.epoch, &session);
    if message != response.message {
        return Err(DrillError::Verify(
            "the coordinator reports another drill message than this key, epoch and session yield"
                .into(),
        ));
    }
    let encoding = if scheme == Scheme::EcdsaSecp256k1 {
        Encoding::Sha256
    } else {
        Encoding::Raw
    };
    let input = SignInput::new(scheme, &message, encoding, "")
        .map_err(|e| DrillError::Verify(e.to_string()))?;
    engine::verify(scheme, &key.public_key, &input, &response.signature)
        .map_err(|e| DrillError::Verify(e.to_string()))?;
    let verified = DrillStep {
        step: "verify",
        ms: ms(t),
        detail: format!(
            "signature verified under the group key {}",
            hex::encode(&key.public_key)
        ),
    };
    Ok((response, vec![cosigned, verified]))
}

/// The officers' authorization of a drill of `key` by `signers`.
fn authorize_drill(
    data_dir: &Path,
    key: &pb::KeyInfo,
    signers: &[u16],
    threshold: u16,
    officers: &[String],
) -> Result<pb::SignedOperation, DrillError> {
    let op = crate::intent::key_operation(
        sigil_policy::OperationKind::Drill,
        key,
        signers.to_vec(),
        threshold,
    );
    crate::intent::sign_key_operation(data_dir, &op, officers)
        .map_err(|e| DrillError::Authorization(e.to_string()))
}

/// A running drill node and its temporary directory.
struct DrillNode {
    dir: tempfile::TempDir,
    addr: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl DrillNode {
    /// Lays out a fresh node in a temporary directory of `data_dir`, seals
    /// `share` into its empty database as `current`, and starts it.
    async fn start(
        data_dir: &Path,
        cluster: &ClientContext,
        node: u16,
        key: &pb::KeyInfo,
        scheme: Scheme,
        threshold: u16,
        share: &KeyShare,
    ) -> Result<Self, DrillError> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| DrillError::DrillNode(format!("{what}: {e}"));
        // Removed on drop, so also when anything below fails.
        let dir = tempfile::Builder::new()
            .prefix("drill-")
            .tempdir_in(data_dir)
            .map_err(|e| fail("temporary directory", &e))?;
        let root = dir.path();
        // The officers (and trust domain) of the node whose backup this is.
        let production = NodeConfig::load(&data_dir.join(format!("node-{node}/node.toml")))
            .map_err(|e| fail(&format!("configuration of node {node}"), &e))?;
        let domain = cluster.domain().clone();
        let pki = PkiLayout::new(data_dir.join("pki"));
        let ca = CertificateAuthority::load(&pki.ca_cert(), &pki.ca_key(), &domain)
            .map_err(|e| fail("cluster CA", &e))?;
        let now = time::OffsetDateTime::now_utc();
        let certificate = ca
            .issue(
                &Identity::Node(node),
                Validity {
                    not_before: now - time::Duration::minutes(5),
                    not_after: now + time::Duration::hours(1),
                },
            )
            .map_err(|e| fail("certificate", &e))?;
        let tls = TlsFiles {
            ca: pki.ca_cert(),
            cert: root.join("node.pem"),
            key: root.join("node.key"),
        };
        certificate
            .write(&tls.cert, &tls.key)
            .map_err(|e| fail("certificate", &e))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| fail("listen", &e))?;
        let addr = listener.local_addr().map_err(|e| fail("listen", &e))?;
        let config = NodeConfig {
            node_id: node,
            zone: "drill".to_owned(),
            listen: addr,
            trust_domain: domain,
            tls,
            database: root.join("node.db"),
            key_dir: root.join("keys"),
            kek_file: None,
            tls_reload_interval: Duration::from_secs(5),
            session_ttl: production.session_ttl,
            audit: Default::default(),
            policy: PolicyConfig {
                default: None,
                ..production.policy
            },
            epochs: Default::default(),
            backup: None,
            limits: production.limits.clone(),
        };
        config.validate().map_err(|e| fail("configuration", &e))?;

        // The restore: offline, into the fresh database, under the new KEK.
        let kek = Kek::load_or_create(&config.kek_path()).map_err(|e| fail("KEK", &e))?;
        let store = SqliteShareStore::open(&config.database)
            .await
            .map_err(|e| fail("database", &e))?
            .authenticated(kek.row_authenticator(node));
        let sealed_share = kek
            .seal(
                Binding {
                    key_id: &key.key_id,
                    node_id: node,
                    epoch: key.epoch,
                },
                &share.to_bytes(),
            )
            .map_err(|e| fail("sealing the share", &e))?;
        store
            .insert(&StoredShare {
                key_id: key.key_id.clone(),
                epoch: key.epoch,
                scheme,
                status: ShareStatus::Current,
                threshold,
                participants: key
                    .participants
                    .iter()
                    .filter_map(|n| u16::try_from(*n).ok())
                    .collect(),
                public_key: key.public_key.clone(),
                public_key_package: key.public_key_package.clone(),
                sealed_share,
                created_at: time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            })
            .await
            .map_err(|e| fail("storing the share", &e))?;
        drop(store);
        drop(kek);

        let server = NodeServer::open(config)
            .await
            .map_err(|e| fail("start", &e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = server.run(listener, shutdown).await {
                tracing::error!(node, error = %e, "drill node failed");
            }
        });
        Ok(Self {
            dir,
            addr,
            stop,
            task,
        })
    }

    /// Stops the node and removes its directory; returns how long it took.
    async fn destroy(self) -> Result<u64, DrillError> {
        let t = Instant::now();
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_DEADLINE, &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
        }
        let path = self.dir.path().to_owned();
        self.dir.close().map_err(|e| DrillError::File {
            file: path.clone(),
            reason: format!("removing the drill node's directory: {e}"),
        })?;
        if path.exists() {
            return Err(DrillError::File {
                file: path,
                reason: "the drill node's directory is still there".into(),
            });
        }
        Ok(ms(t))
    }
}
