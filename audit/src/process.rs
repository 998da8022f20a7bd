//! A daemon's audit log: what every Sigil process (node or coordinator) does
//! with its [`AuditLog`] beyond its own records — open it where its config
//! says, record start and stop, sign the head on a timer, record certificate
//! reloads, and note records whose loss must not fail the operation.
//!
//! The node and the coordinator wrap a [`ProcessAudit`] with their own
//! records (shares issued, sessions, signatures returned); this module is
//! the part they share.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigil_tls::{PeerInfo, ReloadableTls, TrustDomain};
use tokio::task::JoinHandle;

use crate::{AuditError, AuditLog, AuditOptions, Durability, Entry, TlsHeadSigner, action};

/// The audit `database` setting that keeps a log in memory. For benchmarks
/// only: nothing is durable and fail-closed guarantees no longer hold.
pub const MEMORY_DATABASE: &str = "memory";

/// Where and how a daemon keeps its audit log (the `[audit]` section of the
/// node and coordinator configs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Unset (the default): the process's own audit database,
    /// `<stem>-audit.db` beside its state database ([`default_database`]):
    /// `node-audit.db` beside `node.db`. A path: that SQLite file; it may be
    /// the state database itself, which then shares SQLite's single write
    /// lock with the process's other writes and costs signing throughput
    /// (`docs/performance.md`). [`MEMORY_DATABASE`]: an in-memory database —
    /// **benchmarks only**: nothing is durable, so the log is lost at exit
    /// and fail-closed guarantees no longer hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// How often the process signs the head of its log.
    #[serde(default = "default_head_interval", with = "humantime_serde")]
    pub head_interval: Duration,
    /// How long an audit write waits for a locked database before the
    /// audited operation is refused (`UNAVAILABLE`).
    #[serde(default = "default_busy_timeout", with = "humantime_serde")]
    pub busy_timeout: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            database: None,
            head_interval: default_head_interval(),
            busy_timeout: default_busy_timeout(),
        }
    }
}

fn default_head_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_busy_timeout() -> Duration {
    Duration::from_secs(5)
}

impl AuditConfig {
    /// Makes a relative `database` path relative to `base` (the config file's directory).
    pub fn resolve_relative(&mut self, base: &Path) {
        if let Some(db) = self
            .database
            .as_mut()
            .filter(|d| d.as_str() != MEMORY_DATABASE && Path::new(d.as_str()).is_relative())
        {
            *db = base.join(&*db).to_string_lossy().into_owned();
        }
    }

    /// Why the settings are unusable, if they are.
    pub fn validate(&self) -> Result<(), String> {
        if self.head_interval < Duration::from_millis(100) {
            return Err("audit.head_interval must be at least 100ms".into());
        }
        if self.database.as_deref() == Some("") {
            return Err(
                "audit.database must not be empty (omit it for the default, <stem>-audit.db \
                 beside the process's database)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Where a process keeps its audit log by default: `<stem>-audit.db` in the
/// directory of its state database `own` (`node.db` → `node-audit.db`).
///
/// A file of its own, not the state database: the log's writer and the
/// process's other writers (the coordinator's idempotency records) would
/// otherwise queue on one SQLite write lock, whose busy handler backs off
/// in steps of milliseconds. Named after the state database, so two
/// processes sharing a directory never share a log.
pub fn default_database(own: &Path) -> PathBuf {
    let stem = own
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sigil".to_owned());
    own.with_file_name(format!("{stem}-audit.db"))
}

/// The digest recorded for a signature on both sides (coordinator and
/// nodes), so the cross-check can compare them: SHA-256 of exactly the
/// bytes the scheme signs.
pub fn signed_digest(signed_bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(signed_bytes).to_vec()
}

/// The caller's identity as recorded: its SPIFFE URI.
pub fn actor_of(peer: Option<&PeerInfo>, domain: &TrustDomain) -> String {
    peer.map(|p| p.identity.to_uri(domain))
        .unwrap_or_else(|| "unauthenticated".to_owned())
}

/// One process's audit log and identity. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProcessAudit {
    log: AuditLog,
    /// This process's own identity (actor of the events it causes itself).
    me: String,
    domain: TrustDomain,
}

impl ProcessAudit {
    /// Opens `process`'s log: in [`default_database`] of `own_database` (the
    /// process's state database) unless `database` names another SQLite file
    /// or [`MEMORY_DATABASE`]; heads are signed with the process's
    /// certificate key.
    pub async fn open(
        options: AuditOptions,
        database: Option<&str>,
        own_database: &Path,
        tls: Arc<ReloadableTls>,
    ) -> Result<Self, AuditError> {
        let signer = Arc::new(TlsHeadSigner::new(tls.clone()));
        let log = match database {
            Some(MEMORY_DATABASE) => {
                tracing::warn!(
                    "audit log in memory (audit.database = \"memory\"): nothing is durable; \
                     for benchmarks only"
                );
                AuditLog::open_in_memory(options, signer).await?
            }
            Some(path) => AuditLog::open(Path::new(path), options, signer).await?,
            None => AuditLog::open(&default_database(own_database), options, signer).await?,
        };
        Ok(Self {
            log,
            me: tls.identity().to_uri(tls.domain()),
            domain: tls.domain().clone(),
        })
    }

    /// Opens `process`'s log as the daemon's `[audit]` section says, beside
    /// (by default) its state database `own_database`.
    pub async fn open_configured(
        process: impl Into<String>,
        config: &AuditConfig,
        own_database: &Path,
        tls: Arc<ReloadableTls>,
    ) -> Result<Self, AuditError> {
        let options = AuditOptions::new(process).busy_timeout(config.busy_timeout);
        Self::open(options, config.database.as_deref(), own_database, tls).await
    }

    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// This process's identity URI.
    pub fn me(&self) -> &str {
        &self.me
    }

    pub fn domain(&self) -> &TrustDomain {
        &self.domain
    }

    /// Appends and waits for the commit (fail closed: callers refuse the
    /// operation on error).
    pub async fn append(&self, entry: Entry) -> Result<(), AuditError> {
        self.log.append(entry).await.map(drop)
    }

    /// [`ProcessAudit::append`] with an explicit [`Durability`].
    pub async fn append_with(
        &self,
        entry: Entry,
        durability: Durability,
    ) -> Result<(), AuditError> {
        self.log.append_with(entry, durability).await.map(drop)
    }

    /// Appends a record of something that already happened (a refusal, a
    /// failure): an unavailable log is logged, not propagated.
    pub async fn note(&self, entry: Entry) {
        if let Err(e) = self.log.append(entry).await {
            tracing::error!(error = %e, "audit record lost");
        }
    }

    /// `process_start`, then a signed head. Fails when the log is not writable.
    pub async fn process_start(&self, detail: String) -> Result<(), AuditError> {
        self.append(Entry::new(self.me.clone(), action::PROCESS_START).detail(detail))
            .await?;
        self.log.sign_head().await?;
        Ok(())
    }

    /// `process_stop`, then the final signed head; the log refuses appends after it.
    pub async fn process_stop(&self) {
        self.note(Entry::new(self.me.clone(), action::PROCESS_STOP))
            .await;
        let stats = self.log.stats();
        match self.log.stop().await {
            Ok(head) => tracing::info!(
                sequence = head.sequence,
                batches = stats.batches,
                synced_batches = stats.synced_batches,
                records = stats.records,
                failed_records = stats.failed_records,
                "audit log closed; final head signed"
            ),
            Err(e) => tracing::error!(error = %e, "audit log: final head not signed"),
        }
    }

    /// Signs the head every `interval` and records certificate reloads,
    /// until the returned task is aborted.
    pub fn spawn_background(&self, interval: Duration, tls: Arc<ReloadableTls>) -> JoinHandle<()> {
        let this = self.clone();
        let mut reloads = tls.subscribe();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate; a head was signed at start
            let mut watching = true;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = this.log.sign_head().await {
                            tracing::warn!(error = %e, "audit head not signed");
                        }
                    }
                    changed = reloads.changed(), if watching => {
                        if changed.is_err() {
                            watching = false;
                            continue;
                        }
                        let generation = *reloads.borrow_and_update();
                        this.cert_reload(&tls, generation).await;
                    }
                }
            }
        })
    }

    async fn cert_reload(&self, tls: &ReloadableTls, generation: u64) {
        let leaf = tls
            .certificate_chain()
            .first()
            .map(|c| hex::encode(Sha256::digest(c.as_ref())))
            .unwrap_or_default();
        self.note(
            Entry::new(self.me.clone(), action::CERT_RELOAD)
                .detail(format!("reload {generation}; certificate sha256 {leaf}")),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_log_is_a_file_of_its_own_beside_the_state_database() {
        assert_eq!(
            default_database(Path::new("/var/lib/sigil/node-1/node.db")),
            Path::new("/var/lib/sigil/node-1/node-audit.db")
        );
        assert_eq!(
            default_database(Path::new("coordinator.db")),
            Path::new("coordinator-audit.db")
        );
        // Two processes in one directory get two logs.
        assert_ne!(
            default_database(Path::new("/srv/a.db")),
            default_database(Path::new("/srv/b.db"))
        );
    }
}
