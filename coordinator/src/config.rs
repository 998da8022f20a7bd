//! Coordinator configuration: a TOML file overridden by `SIGIL_COORDINATOR_*`
//! environment variables (nested keys with `__`). Relative paths are resolved
//! against the config file's directory. See `deploy/coordinator.example.toml`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};
use sigil_tls::{TlsFiles, TrustDomain};

use crate::CoordinatorError;
use crate::roles::Role;

/// A signer node the coordinator drives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEndpoint {
    pub id: u16,
    /// `host:port` of the node's gRPC server.
    pub endpoint: String,
    pub zone: String,
}

/// Roles granted to a client identity (`spiffe://<domain>/client/<name>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGrant {
    pub name: String,
    pub roles: Vec<Role>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorConfig {
    pub listen: SocketAddr,
    #[serde(default)]
    pub trust_domain: TrustDomain,
    pub tls: TlsFiles,
    /// SQLite database file.
    pub database: PathBuf,
    pub nodes: Vec<NodeEndpoint>,
    #[serde(default)]
    pub clients: Vec<ClientGrant>,
    #[serde(default = "default_reload", with = "humantime_serde")]
    pub tls_reload_interval: Duration,
    /// Deadline of one call to a node.
    #[serde(default = "default_node_timeout", with = "humantime_serde")]
    pub node_timeout: Duration,
    /// The audit log (see `docs/audit.md`).
    #[serde(default)]
    pub audit: AuditConfig,
}

/// Where and how the coordinator keeps its audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Unset: in the coordinator's own database (the default). A path: a
    /// separate SQLite file. `"memory"`: an in-memory database —
    /// **benchmarks only**: nothing is durable, so the log is lost at exit
    /// and fail-closed guarantees no longer hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// How often the coordinator signs the head of its log.
    #[serde(default = "default_head_interval", with = "humantime_serde")]
    pub head_interval: Duration,
    /// How long an audit write waits for a locked database before the
    /// audited request is refused (`UNAVAILABLE`).
    #[serde(default = "default_audit_busy_timeout", with = "humantime_serde")]
    pub busy_timeout: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            database: None,
            head_interval: default_head_interval(),
            busy_timeout: default_audit_busy_timeout(),
        }
    }
}

/// The value of `audit.database` selecting an in-memory log (benchmarks only).
pub const AUDIT_MEMORY: &str = sigil_audit::MEMORY_DATABASE;

fn default_head_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_audit_busy_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_reload() -> Duration {
    Duration::from_secs(5)
}

fn default_node_timeout() -> Duration {
    Duration::from_secs(5)
}

impl CoordinatorConfig {
    pub fn load(path: &Path) -> Result<Self, CoordinatorError> {
        let mut config: CoordinatorConfig = Figment::new()
            .merge(Toml::file_exact(path))
            .merge(Env::prefixed("SIGIL_COORDINATOR_").split("__"))
            .extract()
            .map_err(|e| CoordinatorError::Config(format!("{}: {e}", path.display())))?;
        config.resolve_relative_to(path.parent().unwrap_or(Path::new(".")));
        config.validate()?;
        Ok(config)
    }

    pub fn resolve_relative_to(&mut self, base: &Path) {
        for p in [
            &mut self.tls.ca,
            &mut self.tls.cert,
            &mut self.tls.key,
            &mut self.database,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(db) = self
            .audit
            .database
            .as_mut()
            .filter(|d| d.as_str() != AUDIT_MEMORY && Path::new(d.as_str()).is_relative())
        {
            *db = base.join(&*db).to_string_lossy().into_owned();
        }
    }

    pub fn validate(&self) -> Result<(), CoordinatorError> {
        let err = |m: String| Err(CoordinatorError::Config(m));
        if self.nodes.is_empty() {
            return err("at least one node must be configured".into());
        }
        if self.audit.head_interval < Duration::from_millis(100) {
            return err("audit.head_interval must be at least 100ms".into());
        }
        if self.audit.database.as_deref() == Some("") {
            return err(
                "audit.database must not be empty (omit it to use the coordinator database)".into(),
            );
        }
        let mut ids = BTreeSet::new();
        for n in &self.nodes {
            if n.id == 0 {
                return err("node ids must be ≥ 1".into());
            }
            if !ids.insert(n.id) {
                return err(format!("node id {} is configured twice", n.id));
            }
        }
        let mut names = BTreeSet::new();
        for c in &self.clients {
            if !sigil_tls::identity::valid_name(&c.name) {
                return err(format!(
                    "invalid client name {:?} (use 1-64 of a-z 0-9 . _ -)",
                    c.name
                ));
            }
            if !names.insert(c.name.as_str()) {
                return err(format!("client {:?} is configured twice", c.name));
            }
        }
        Ok(())
    }
}
