//! Coordinator configuration: a TOML file overridden by `SIGIL_COORDINATOR_*`
//! environment variables (nested keys with `__`). Relative paths are resolved
//! against the config file's directory. See `deploy/coordinator.example.toml`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sigil_tls::{TlsFiles, TrustDomain};

use crate::error::ServerError;
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
    /// Signed intents and the default policy (see `docs/policy.md`).
    #[serde(default)]
    pub policy: PolicyConfig,
    /// How often certified epoch switches that some node has not confirmed
    /// are sent again (also once at start).
    #[serde(default = "default_epoch_resume", with = "humantime_serde")]
    pub epoch_resume_interval: Duration,
    /// Bounds on what one client can make the coordinator hold.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// The default of `limits.max_inflight_sign_per_client`.
pub const DEFAULT_MAX_INFLIGHT_SIGN_PER_CLIENT: usize = 128;

/// Bounds on client requests (string fields have fixed bounds, see
/// [`crate::limits`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// `Sign` calls one client identity may have in flight at once; beyond,
    /// a call is refused with `RESOURCE_EXHAUSTED`.
    #[serde(default = "default_max_inflight_sign_per_client")]
    pub max_inflight_sign_per_client: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_inflight_sign_per_client: DEFAULT_MAX_INFLIGHT_SIGN_PER_CLIENT,
        }
    }
}

fn default_max_inflight_sign_per_client() -> usize {
    DEFAULT_MAX_INFLIGHT_SIGN_PER_CLIENT
}

fn default_epoch_resume() -> Duration {
    Duration::from_secs(30)
}

/// The coordinator's early checks of signed intents. The nodes check the
/// same things themselves; these settings only decide what the coordinator
/// refuses before asking them, so keep them equal to the nodes'.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The longest an intent may be valid for (its `not_after` from now).
    #[serde(default = "default_intent_window", with = "humantime_serde")]
    pub intent_max_window: Duration,
    /// Clock difference tolerated between requesters and this coordinator.
    #[serde(default = "default_clock_skew", with = "humantime_serde")]
    pub clock_skew: Duration,
    /// The rules of a key without a signed policy document, as the nodes are
    /// configured (absent: such a key signs nothing).
    #[serde(default)]
    pub default: Option<sigil_policy::PolicyRules>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            intent_max_window: default_intent_window(),
            clock_skew: default_clock_skew(),
            default: None,
        }
    }
}

fn default_intent_window() -> Duration {
    Duration::from_secs(600)
}

fn default_clock_skew() -> Duration {
    Duration::from_secs(30)
}

pub use sigil_audit::AuditConfig;

/// The value of `audit.database` selecting an in-memory log: benchmarks
/// only, and the coordinator refuses to start with it unless
/// `SIGIL_BENCHMARK_IN_MEMORY_AUDIT=1` is set
/// ([`sigil_daemon::BENCHMARK_IN_MEMORY_AUDIT`]).
pub const AUDIT_MEMORY: &str = sigil_audit::MEMORY_DATABASE;

fn default_reload() -> Duration {
    Duration::from_secs(5)
}

fn default_node_timeout() -> Duration {
    Duration::from_secs(5)
}

impl CoordinatorConfig {
    pub fn load(path: &Path) -> Result<Self, ServerError> {
        let mut config: CoordinatorConfig =
            sigil_daemon::load_config(path, "SIGIL_COORDINATOR_").map_err(ServerError::Config)?;
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
        self.audit.resolve_relative(base);
    }

    pub fn validate(&self) -> Result<(), ServerError> {
        let err = |m: String| Err(ServerError::Config(m));
        if self.nodes.is_empty() {
            return err("at least one node must be configured".into());
        }
        self.audit.validate().map_err(ServerError::Config)?;
        let mut ids = BTreeSet::new();
        for n in &self.nodes {
            if n.id == 0 {
                return err("node ids must be ≥ 1".into());
            }
            if !ids.insert(n.id) {
                return err(format!("node id {} is configured twice", n.id));
            }
        }
        if self.limits.max_inflight_sign_per_client == 0 {
            return err("limits.max_inflight_sign_per_client must be at least 1".into());
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
}
