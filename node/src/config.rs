//! Node configuration: a TOML file, overridden by `SIGIL_NODE_*` environment
//! variables (nested keys with `__`, e.g. `SIGIL_NODE_TLS__CERT`). Relative
//! paths are resolved against the config file's directory, so a data
//! directory can be moved as a whole. See `deploy/node.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sigil_tls::{TlsFiles, TrustDomain};

use crate::error::ServerError;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id (≥ 1); must match the `node/<id>` identity of its certificate.
    pub node_id: u16,
    /// Failure domain label (region or availability zone).
    pub zone: String,
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    #[serde(default)]
    pub trust_domain: TrustDomain,
    pub tls: TlsFiles,
    /// SQLite database file holding sealed shares.
    pub database: PathBuf,
    /// Directory of the node's own secrets (key-encryption key, encryption keys).
    pub key_dir: PathBuf,
    /// File holding the 32-byte key-encryption key, hex-encoded (mode 0600).
    /// Default: `<key_dir>/kek.hex`. The operator provides it: a node whose
    /// KEK file is missing refuses to start (`sigil up` creates one for a
    /// local cluster).
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    /// How often certificate files are checked for changes (SIGHUP also reloads).
    #[serde(default = "default_reload", with = "humantime_serde")]
    pub tls_reload_interval: Duration,
    /// How long a protocol session may stay open before its secret state is dropped.
    #[serde(default = "default_session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
    /// The audit log (see `docs/audit.md`).
    #[serde(default)]
    pub audit: AuditConfig,
    /// Signed intents, officers and the default policy (see `docs/policy.md`).
    #[serde(default)]
    pub policy: PolicyConfig,
    /// How long shares of old and abandoned epochs are kept (see `docs/operations.md`).
    #[serde(default)]
    pub epochs: EpochConfig,
    /// Where `ExportBackup` seals this node's shares (see `docs/operations.md`,
    /// "Backups and recovery drills"). Absent: the node exports no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupConfig>,
    /// Bounds on what the coordinator can make the node hold in memory.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// The default of `limits.max_open_sessions`.
pub const DEFAULT_MAX_OPEN_SESSIONS: usize = 1024;
/// The default of `limits.max_remembered_sessions`: at 5,000 sessions a
/// second, each remembered for its deadline plus `session_ttl` (about 75 s
/// by default), 375,000 ids; about 64 MiB at most.
pub const DEFAULT_MAX_REMEMBERED_SESSIONS: usize = 1 << 20;

/// Bounds on the node's session table. Beyond either, a new session is
/// refused with `RESOURCE_EXHAUSTED`; nothing live is dropped to make room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Protocol sessions open at once (each holds secret state in memory).
    #[serde(default = "default_max_open_sessions")]
    pub max_open_sessions: usize,
    /// Session ids remembered at once so a finished session cannot be
    /// restarted (each until its deadline plus `session_ttl`).
    #[serde(default = "default_max_remembered_sessions")]
    pub max_remembered_sessions: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_open_sessions: DEFAULT_MAX_OPEN_SESSIONS,
            max_remembered_sessions: DEFAULT_MAX_REMEMBERED_SESSIONS,
        }
    }
}

fn default_max_open_sessions() -> usize {
    DEFAULT_MAX_OPEN_SESSIONS
}

fn default_max_remembered_sessions() -> usize {
    DEFAULT_MAX_REMEMBERED_SESSIONS
}

impl LimitsConfig {
    /// The session table's bounds.
    pub fn sessions(&self) -> crate::sessions::SessionLimits {
        crate::sessions::SessionLimits {
            max_open: self.max_open_sessions,
            max_remembered: self.max_remembered_sessions,
        }
    }

    pub fn validate(&self) -> Result<(), ServerError> {
        if self.max_open_sessions == 0 {
            return Err(ServerError::Config(
                "limits.max_open_sessions must be at least 1".into(),
            ));
        }
        if self.max_remembered_sessions < self.max_open_sessions {
            return Err(ServerError::Config(format!(
                "limits.max_remembered_sessions ({}) must be at least limits.max_open_sessions ({})",
                self.max_remembered_sessions, self.max_open_sessions
            )));
        }
        Ok(())
    }
}

/// The backup recipient.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The X25519 public key (64 hex characters) backups are sealed to; its
    /// secret is held offline by the security officers.
    pub recipient: String,
}

impl BackupConfig {
    /// The parsed recipient key.
    pub fn recipient_key(&self) -> Result<sigil_policy::backup::BackupPublicKey, ServerError> {
        sigil_policy::backup::BackupPublicKey::from_hex(&self.recipient)
            .map_err(|e| ServerError::Config(format!("backup.recipient: {e}")))
    }
}

/// Lifetimes of shares that no longer sign.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochConfig {
    /// A retired share (its epoch was superseded) is deleted after this long.
    /// It never signs in the meantime; the grace only serves investigation.
    #[serde(default = "default_retired_grace", with = "humantime_serde")]
    pub retired_grace: Duration,
    /// A redistributed share whose commit certificate never arrived is
    /// deleted after this long.
    #[serde(default = "default_next_ttl", with = "humantime_serde")]
    pub next_ttl: Duration,
    /// How often the node looks for shares to delete.
    #[serde(default = "default_sweep_interval", with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for EpochConfig {
    fn default() -> Self {
        Self {
            retired_grace: default_retired_grace(),
            next_ttl: default_next_ttl(),
            sweep_interval: default_sweep_interval(),
        }
    }
}

fn default_retired_grace() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_next_ttl() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_sweep_interval() -> Duration {
    Duration::from_secs(60)
}

/// How this node checks signed intents and who governs its policies.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Security officers: client names (`spiffe://<td>/client/<name>`) whose
    /// signatures make a policy document take effect.
    #[serde(default)]
    pub officers: Vec<String>,
    /// Distinct officer signatures a policy document needs.
    #[serde(default = "default_officer_quorum")]
    pub officer_quorum: u16,
    /// The longest an intent may be valid for (its `not_after` from now).
    #[serde(default = "default_intent_window", with = "humantime_serde")]
    pub intent_max_window: Duration,
    /// Clock difference tolerated between requesters and this node.
    #[serde(default = "default_clock_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// Signing sessions one intent may open at this node: the coordinator's
    /// attempts for one request (a retry after a faulty or unreachable
    /// signer). Every further use is refused as a replay.
    #[serde(default = "default_sessions_per_intent")]
    pub max_sessions_per_intent: u32,
    /// The rules of a key that has no signed policy document yet (version 0).
    /// Absent: such a key signs nothing (deny by default).
    #[serde(default)]
    pub default: Option<sigil_policy::PolicyRules>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            officers: Vec::new(),
            officer_quorum: default_officer_quorum(),
            intent_max_window: default_intent_window(),
            clock_skew: default_clock_skew(),
            max_sessions_per_intent: default_sessions_per_intent(),
            default: None,
        }
    }
}

fn default_officer_quorum() -> u16 {
    2
}

fn default_intent_window() -> Duration {
    Duration::from_secs(600)
}

fn default_clock_skew() -> Duration {
    Duration::from_secs(30)
}

fn default_sessions_per_intent() -> u32 {
    3
}

pub use sigil_audit::AuditConfig;

/// The value of `audit.database` selecting an in-memory log: benchmarks
/// only, and the node refuses to start with it unless
/// `SIGIL_BENCHMARK_IN_MEMORY_AUDIT=1` is set
/// ([`sigil_daemon::BENCHMARK_IN_MEMORY_AUDIT`]).
pub const AUDIT_MEMORY: &str = sigil_audit::MEMORY_DATABASE;

fn default_reload() -> Duration {
    Duration::from_secs(5)
}

fn default_session_ttl() -> Duration {
    Duration::from_secs(60)
}

impl NodeConfig {
    /// Loads `path`, applies `SIGIL_NODE_*` overrides, resolves relative paths.
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        let mut config: NodeConfig =
            sigil_daemon::load_config(path, "SIGIL_NODE_").map_err(ServerError::Config)?;
        config.resolve_relative_to(path.parent().unwrap_or(Path::new(".")));
        config.validate()?;
        Ok(config)
    }

    /// Makes relative paths relative to `base`.
    pub fn resolve_relative_to(&mut self, base: &Path) {
        for p in [
            &mut self.tls.ca,
            &mut self.tls.cert,
            &mut self.tls.key,
            &mut self.database,
            &mut self.key_dir,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(k) = self.kek_file.as_mut().filter(|k| k.is_relative()) {
            *k = base.join(&*k);
        }
        self.audit.resolve_relative(base);
    }

    pub fn validate(&self) -> Result<(), ServerError> {
        if self.node_id == 0 {
            return Err(ServerError::Config("node_id must be ≥ 1".into()));
        }
        if self.zone.trim().is_empty() {
            return Err(ServerError::Config("zone must not be empty".into()));
        }
        self.audit.validate().map_err(ServerError::Config)?;
        if !self.policy.officers.is_empty()
            && (self.policy.officer_quorum == 0
                || usize::from(self.policy.officer_quorum) > self.policy.officers.len())
        {
            return Err(ServerError::Config(format!(
                "policy.officer_quorum must be between 1 and the number of officers ({}), got {}",
                self.policy.officers.len(),
                self.policy.officer_quorum
            )));
        }
        if let Some(backup) = &self.backup {
            backup.recipient_key()?;
        }
        self.limits.validate()?;
        if self.policy.max_sessions_per_intent == 0 {
            return Err(ServerError::Config(
                "policy.max_sessions_per_intent must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Refuses an in-memory audit log (`audit.database = "memory"`) unless
    /// the benchmark opt-in is in the environment
    /// ([`sigil_daemon::BENCHMARK_IN_MEMORY_AUDIT`]). Checked at start, not
    /// by [`Self::validate`], so such a file still loads for inspection.
    pub fn check_audit_placement(&self) -> Result<(), ServerError> {
        sigil_daemon::check_in_memory_audit(
            self.audit.database.as_deref() == Some(AUDIT_MEMORY),
            sigil_daemon::benchmark_in_memory_audit_env().as_deref(),
        )
        .map_err(ServerError::Config)
    }

    /// Where the key-encryption key is read from (`kek_file`, default
    /// `<key_dir>/kek.hex`). The node never creates it.
    pub fn kek_path(&self) -> PathBuf {
        self.kek_file
            .clone()
            .unwrap_or_else(|| self.key_dir.join("kek.hex"))
    }
}
