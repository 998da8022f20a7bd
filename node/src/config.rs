//! Node configuration: a TOML file, overridden by `SIGIL_NODE_*` environment
//! variables (nested keys with `__`, e.g. `SIGIL_NODE_TLS__CERT`). Relative
//! paths are resolved against the config file's directory, so a data
//! directory can be moved as a whole. See `deploy/node.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sigil_tls::{TlsFiles, TrustDomain};

use crate::NodeError;

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
    /// File holding the 32-byte key-encryption key, hex-encoded. Default: `<key_dir>/kek.hex`.
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
}

pub use sigil_audit::AuditConfig;

/// The value of `audit.database` selecting an in-memory log (benchmarks only).
pub const AUDIT_MEMORY: &str = sigil_audit::MEMORY_DATABASE;

fn default_reload() -> Duration {
    Duration::from_secs(5)
}

fn default_session_ttl() -> Duration {
    Duration::from_secs(60)
}

impl NodeConfig {
    /// Loads `path`, applies `SIGIL_NODE_*` overrides, resolves relative paths.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let mut config: NodeConfig =
            sigil_daemon::load_config(path, "SIGIL_NODE_").map_err(NodeError::Config)?;
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

    pub fn validate(&self) -> Result<(), NodeError> {
        if self.node_id == 0 {
            return Err(NodeError::Config("node_id must be ≥ 1".into()));
        }
        if self.zone.trim().is_empty() {
            return Err(NodeError::Config("zone must not be empty".into()));
        }
        self.audit.validate().map_err(NodeError::Config)?;
        Ok(())
    }

    pub fn kek_path(&self) -> PathBuf {
        self.kek_file
            .clone()
            .unwrap_or_else(|| self.key_dir.join("kek.hex"))
    }
}
