//! Coordinator storage behind a trait. SQLite is the embedded default; a
//! PostgreSQL implementation (for several coordinators at once, with
//! idempotency enforced by the database) implements the same trait.
//! Protocol sessions are never stored: a restarted coordinator abandons
//! them and the request is retried under a new session id.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sigil_protocol::Scheme;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("key {0} already exists")]
    Exists(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Public metadata of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: String,
    pub scheme: Scheme,
    pub threshold: u16,
    pub participants: Vec<u16>,
    pub public_key: Vec<u8>,
    pub public_key_package: Vec<u8>,
    pub epoch: u64,
    pub label: String,
    pub created_at: String,
}

/// A commit certificate some node has not confirmed yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UncommittedEpoch {
    pub key_id: String,
    pub epoch: u64,
    /// Serialized `sigil.v1.CommitCertificate`.
    pub certificate: Vec<u8>,
    /// The previous and the new participants.
    pub notify: Vec<u16>,
}

/// What an idempotency key already stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignClaim {
    /// First use: the caller signs, then calls [`CoordinatorStore::finish_sign`].
    New,
    /// Done before with the same request: the stored response.
    Done(Vec<u8>),
    /// Used before for a different request.
    Conflict,
    /// The same request is being signed right now.
    InProgress,
}

/// A node named as a culprit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misbehaviour {
    pub node_id: u16,
    pub key_id: String,
    pub session_id: String,
    pub reason: String,
    pub created_at: String,
    /// A DKLs23 ban (a node reported it in `sigil-banned`): the engine
    /// mandates the exclusion, so [`CoordinatorStore::clear_exclusion`]
    /// never clears it; only [`lift_ban_exclusions`], with a key refresh or
    /// reshare, does.
    pub ban: bool,
}

/// A sign request held until approvers approve its intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingApproval {
    pub approval_id: String,
    pub key_id: String,
    /// The payment service's identity (idempotency scope).
    pub requester: String,
    pub idempotency_key: String,
    /// The `SignedIntent` as the payment service sent it (protobuf).
    pub signed_intent: Vec<u8>,
    pub intent_sha256: Vec<u8>,
    pub rule: String,
    pub group: String,
    pub required: u16,
    pub not_after_ms: u64,
    pub summary: String,
    pub created_at: String,
    /// Approver identity → its `Approval` (protobuf), in approval order.
    pub approvals: Vec<(String, Vec<u8>)>,
}

#[async_trait]
pub trait CoordinatorStore: Send + Sync + 'static {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    /// Writes a commit certificate and moves the key's record to its epoch,
    /// in one transaction. Refuses a certificate for an epoch that is not
    /// the record's next one.
    async fn certify_epoch(
        &self,
        key: &KeyRecord,
        certificate: &[u8],
        notify: &[u16],
        now: &str,
    ) -> Result<(), StoreError>;
    /// Certificates not yet confirmed by every node: (key id, epoch, certificate, nodes to tell).
    async fn uncommitted_epochs(&self) -> Result<Vec<UncommittedEpoch>, StoreError>;
    /// Marks a certificate as confirmed by every node.
    async fn complete_epoch(&self, key_id: &str, epoch: u64, now: &str) -> Result<(), StoreError>;
    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Claims `(requester, idempotency_key)` for a request with `digest`.
    /// A claim left unfinished for longer than `stale_after_secs` (a crashed
    /// coordinator) may be taken over.
    async fn claim_sign(
        &self,
        requester: &str,
        idempotency_key: &str,
        key_id: &str,
        digest: &[u8],
        stale_after_secs: i64,
    ) -> Result<SignClaim, StoreError>;
    /// Stores the response of a claimed request.
    async fn finish_sign(
        &self,
        requester: &str,
        idempotency_key: &str,
        response: &[u8],
    ) -> Result<(), StoreError>;
    /// Releases an unfinished claim after a failure, so the client may retry.
    async fn release_sign(&self, requester: &str, idempotency_key: &str) -> Result<(), StoreError>;

    async fn record_misbehaviour(&self, m: &Misbehaviour) -> Result<(), StoreError>;
    async fn list_misbehaviour(&self) -> Result<Vec<Misbehaviour>, StoreError>;
    /// Misbehaviour records not cleared yet (for `key_id`, or every key):
    /// their nodes are excluded from the key's quorums.
    async fn list_exclusions(&self, key_id: Option<&str>) -> Result<Vec<Misbehaviour>, StoreError>;
    /// Clears every open record of `node_id` for `key_id` that is not a
    /// ban; returns how many.
    async fn clear_exclusion(
        &self,
        key_id: &str,
        node_id: u16,
        reason: &str,
        cleared_at: &str,
    ) -> Result<u64, StoreError>;

    /// Stores the coordinator's copy of a policy version the nodes accepted.
    async fn put_policy(
        &self,
        key_id: &str,
        version: u64,
        signed_policy: &[u8],
        applied_at: &str,
    ) -> Result<(), StoreError>;
    /// The newest stored policy of `key_id`: (version, SignedPolicy protobuf).
    async fn get_policy(&self, key_id: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError>;

    /// Records a request held for approvals; returns the one already held
    /// for the same (requester, idempotency key) if there is one.
    async fn hold_for_approval(
        &self,
        pending: &PendingApproval,
    ) -> Result<PendingApproval, StoreError>;
    async fn pending_approval(
        &self,
        approval_id: &str,
    ) -> Result<Option<PendingApproval>, StoreError>;
    async fn pending_for_request(
        &self,
        requester: &str,
        idempotency_key: &str,
    ) -> Result<Option<PendingApproval>, StoreError>;
    /// Pending approvals not expired at `now_ms` (for `key_id`, or all).
    async fn list_pending_approvals(
        &self,
        key_id: Option<&str>,
        now_ms: u64,
    ) -> Result<Vec<PendingApproval>, StoreError>;
    /// Forgets the request held for approval under (requester, idempotency
    /// key) once it has been signed.
    async fn resolve_pending(
        &self,
        requester: &str,
        idempotency_key: &str,
    ) -> Result<(), StoreError>;
    /// Adds (or replaces) `approver`'s approval of a pending request.
    async fn add_approval(
        &self,
        approval_id: &str,
        approver: &str,
        approval: &[u8],
        at: &str,
    ) -> Result<(), StoreError>;
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Lifts the DKLs23 ban exclusions of `key_id` (marks them cleared with
/// `reason`); returns how many.
///
/// **Contract:** call it only inside the transaction that moves the key's
/// record to a refreshed or reshared epoch (pass that transaction's
/// connection: `&mut tx`): the new epoch gives every party fresh pairwise
/// DKLs23 state, or leaves the banned node out, which is the only thing
/// that ends a ban. Nothing else lifts one.
pub async fn lift_ban_exclusions(
    conn: &mut sqlx::SqliteConnection,
    key_id: &str,
    reason: &str,
    lifted_at: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE misbehaviour SET cleared_at = ?, cleared_reason = ? \
         WHERE key_id = ? AND ban = 1 AND cleared_at IS NULL",
    )
    .bind(lifted_at)
    .bind(reason)
    .bind(key_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

/// SQLite coordinator store.
///
/// Every write is committed with `synchronous = FULL` (fsync per commit)
/// except idempotency claims, which use a second pool with
/// `synchronous = NORMAL`: in WAL mode a claim then survives a process crash
/// but may be lost with the OS (power loss). That is safe because a claim
/// only matters once its request has produced a response, and nothing is
/// returned before `finish_sign` (or, by default, the audit log in the same
/// file) commits with an fsync, which makes every earlier WAL frame, the
/// claim included, durable too. A claim lost with the OS belonged to a
/// request that returned nothing, which is retried as new. This saves one
/// fsync per signature (`docs/performance.md`).
#[derive(Clone, Debug)]
pub struct SqliteCoordinatorStore {
    pool: SqlitePool,
    /// Same database, `synchronous = NORMAL`; only for [`CoordinatorStore::claim_sign`].
    claims: SqlitePool,
}

macro_rules! key_columns {
    () => {
        "key_id, scheme, threshold, participants, public_key, public_key_package, epoch, label, created_at"
    };
}

macro_rules! pending_columns {
    () => {
        "approval_id, key_id, requester, idempotency_key, signed_intent, intent_sha256, rule, approver_group, required, not_after_ms, summary, created_at"
    };
}

impl SqliteCoordinatorStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        Self::connect(opts).await
    }

    pub async fn in_memory() -> Result<Self, StoreError> {
        Self::connect(SqliteConnectOptions::from_str("sqlite::memory:")?).await
    }

    async fn connect(opts: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let claims = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts.synchronous(SqliteSynchronous::Normal))
            .await?;
        Ok(Self { pool, claims })
    }

    fn row_to_misbehaviour(r: &sqlx::sqlite::SqliteRow) -> Result<Misbehaviour, StoreError> {
        let node: i64 = r.try_get("node_id")?;
        Ok(Misbehaviour {
            node_id: u16::try_from(node).map_err(|_| StoreError::Corrupt("node id".into()))?,
            key_id: r.try_get("key_id")?,
            session_id: r.try_get("session_id")?,
            reason: r.try_get("reason")?,
            created_at: r.try_get("created_at")?,
            ban: r.try_get::<i64, _>("ban")? == 1,
        })
    }

    fn row_to_key(row: &sqlx::sqlite::SqliteRow) -> Result<KeyRecord, StoreError> {
        let participants: String = row.try_get("participants")?;
        let threshold: i64 = row.try_get("threshold")?;
        let epoch: i64 = row.try_get("epoch")?;
        Ok(KeyRecord {
            key_id: row.try_get("key_id")?,
            scheme: row
                .try_get::<String, _>("scheme")?
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("scheme: {e}")))?,
            threshold: u16::try_from(threshold)
                .map_err(|_| StoreError::Corrupt("threshold".into()))?,
            participants: serde_json::from_str(&participants)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            public_key: row.try_get("public_key")?,
            public_key_package: row.try_get("public_key_package")?,
            epoch: u64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch".into()))?,
            label: row.try_get("label")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

#[async_trait]
impl CoordinatorStore for SqliteCoordinatorStore {
    async fn insert_key(&self, key: &KeyRecord) -> Result<(), StoreError> {
        let participants = serde_json::to_string(&key.participants)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let epoch = i64::try_from(key.epoch).map_err(|_| StoreError::Corrupt("epoch".into()))?;
        let result = sqlx::query(concat!(
            "INSERT INTO keys (",
            key_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&key.key_id)
        .bind(key.scheme.name())
        .bind(i64::from(key.threshold))
        .bind(participants)
        .bind(&key.public_key)
        .bind(&key.public_key_package)
        .bind(epoch)
        .bind(&key.label)
        .bind(&key.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Exists(key.key_id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn certify_epoch(
        &self,
        key: &KeyRecord,
        certificate: &[u8],
        notify: &[u16],
        now: &str,
    ) -> Result<(), StoreError> {
        let participants = serde_json::to_string(&key.participants)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let notify =
            serde_json::to_string(notify).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let epoch = i64::try_from(key.epoch).map_err(|_| StoreError::Corrupt("epoch".into()))?;
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE keys SET epoch = ?, threshold = ?, participants = ?, public_key_package = ? \
             WHERE key_id = ? AND epoch = ? - 1 AND public_key = ?",
        )
        .bind(epoch)
        .bind(i64::from(key.threshold))
        .bind(participants)
        .bind(&key.public_key_package)
        .bind(&key.key_id)
        .bind(epoch)
        .bind(&key.public_key)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Err(StoreError::Corrupt(format!(
                "key {} is not at epoch {} with this public key",
                key.key_id,
                key.epoch.saturating_sub(1)
            )));
        }
        sqlx::query(
            "INSERT INTO epoch_certificates (key_id, epoch, certificate, notify, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.key_id)
        .bind(epoch)
        .bind(certificate)
        .bind(notify)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // The new epoch gives every party fresh pairwise state (or leaves
        // the banned node out): the key's DKLs23 bans end with the old epoch.
        lift_ban_exclusions(
            &mut tx,
            &key.key_id,
            &format!("lifted by the switch to epoch {}", key.epoch),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn uncommitted_epochs(&self) -> Result<Vec<UncommittedEpoch>, StoreError> {
        let rows = sqlx::query(
            "SELECT key_id, epoch, certificate, notify FROM epoch_certificates \
             WHERE completed_at IS NULL ORDER BY created_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let epoch: i64 = r.try_get("epoch")?;
                let notify: String = r.try_get("notify")?;
                Ok(UncommittedEpoch {
                    key_id: r.try_get("key_id")?,
                    epoch: u64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch".into()))?,
                    certificate: r.try_get("certificate")?,
                    notify: serde_json::from_str(&notify)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }

    async fn complete_epoch(&self, key_id: &str, epoch: u64, now: &str) -> Result<(), StoreError> {
        let epoch = i64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch".into()))?;
        sqlx::query(
            "UPDATE epoch_certificates SET completed_at = ? WHERE key_id = ? AND epoch = ? AND completed_at IS NULL",
        )
        .bind(now)
        .bind(key_id)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_key(&self, key_id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys WHERE key_id = ?"
        ))
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::row_to_key).transpose()
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys ORDER BY created_at, key_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::row_to_key).collect()
    }

    async fn claim_sign(
        &self,
        requester: &str,
        idempotency_key: &str,
        key_id: &str,
        digest: &[u8],
        stale_after_secs: i64,
    ) -> Result<SignClaim, StoreError> {
        let now = unix_now();
        // IMMEDIATE: take the write lock before reading. A deferred
        // transaction that reads and then writes cannot wait for a concurrent
        // writer (SQLite returns BUSY at once instead of honouring
        // busy_timeout), which failed concurrent sign requests.
        let mut tx = self.claims.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT request_digest, response, claimed_at FROM sign_requests WHERE requester = ? AND idempotency_key = ?",
        )
        .bind(requester)
        .bind(idempotency_key)
        .fetch_optional(&mut *tx)
        .await?;
        let claim = match row {
            None => {
                sqlx::query(
                    "INSERT INTO sign_requests (requester, idempotency_key, key_id, request_digest, response, created_at, claimed_at) \
                     VALUES (?, ?, ?, ?, NULL, ?, ?)",
                )
                .bind(requester)
                .bind(idempotency_key)
                .bind(key_id)
                .bind(digest)
                .bind(now.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                SignClaim::New
            }
            Some(row) => {
                let stored: Vec<u8> = row.try_get("request_digest")?;
                let response: Option<Vec<u8>> = row.try_get("response")?;
                let claimed_at: i64 = row.try_get("claimed_at")?;
                if stored != digest {
                    SignClaim::Conflict
                } else if let Some(r) = response {
                    SignClaim::Done(r)
                } else if now - claimed_at > stale_after_secs {
                    sqlx::query("UPDATE sign_requests SET claimed_at = ? WHERE requester = ? AND idempotency_key = ?")
                        .bind(now)
                        .bind(requester)
                        .bind(idempotency_key)
                        .execute(&mut *tx)
                        .await?;
                    SignClaim::New
                } else {
                    SignClaim::InProgress
                }
            }
        };
        tx.commit().await?;
        Ok(claim)
    }

    async fn finish_sign(
        &self,
        requester: &str,
        idempotency_key: &str,
        response: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sign_requests SET response = ? WHERE requester = ? AND idempotency_key = ?",
        )
        .bind(response)
        .bind(requester)
        .bind(idempotency_key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_sign(&self, requester: &str, idempotency_key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sign_requests WHERE requester = ? AND idempotency_key = ? AND response IS NULL")
            .bind(requester)
            .bind(idempotency_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_misbehaviour(&self, m: &Misbehaviour) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO misbehaviour (node_id, key_id, session_id, reason, created_at, ban) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(i64::from(m.node_id))
            .bind(&m.key_id)
            .bind(&m.session_id)
            .bind(&m.reason)
            .bind(&m.created_at)
            .bind(i64::from(m.ban))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_misbehaviour(&self) -> Result<Vec<Misbehaviour>, StoreError> {
        let rows = sqlx::query(
            "SELECT node_id, key_id, session_id, reason, created_at, ban FROM misbehaviour ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::row_to_misbehaviour).collect()
    }

    async fn list_exclusions(&self, key_id: Option<&str>) -> Result<Vec<Misbehaviour>, StoreError> {
        let rows = sqlx::query(
            "SELECT node_id, key_id, session_id, reason, created_at, ban FROM misbehaviour \
             WHERE cleared_at IS NULL AND (?1 IS NULL OR key_id = ?1) ORDER BY id",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::row_to_misbehaviour).collect()
    }

    async fn clear_exclusion(
        &self,
        key_id: &str,
        node_id: u16,
        reason: &str,
        cleared_at: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE misbehaviour SET cleared_at = ?, cleared_reason = ? \
             WHERE key_id = ? AND node_id = ? AND cleared_at IS NULL AND ban = 0",
        )
        .bind(cleared_at)
        .bind(reason)
        .bind(key_id)
        .bind(i64::from(node_id))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn put_policy(
        &self,
        key_id: &str,
        version: u64,
        signed_policy: &[u8],
        applied_at: &str,
    ) -> Result<(), StoreError> {
        let version = i64::try_from(version).map_err(|_| StoreError::Corrupt("version".into()))?;
        sqlx::query(
            "INSERT INTO policies (key_id, version, signed_policy, applied_at) VALUES (?, ?, ?, ?) ON CONFLICT (key_id, version) DO UPDATE SET signed_policy = excluded.signed_policy",
        )
        .bind(key_id)
        .bind(version)
        .bind(signed_policy)
        .bind(applied_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_policy(&self, key_id: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let row = sqlx::query(
            "SELECT version, signed_policy FROM policies WHERE key_id = ? ORDER BY version DESC LIMIT 1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let v: i64 = r.try_get("version")?;
            Ok((
                u64::try_from(v).map_err(|_| StoreError::Corrupt("version".into()))?,
                r.try_get("signed_policy")?,
            ))
        })
        .transpose()
    }

    async fn hold_for_approval(&self, p: &PendingApproval) -> Result<PendingApproval, StoreError> {
        let not_after =
            i64::try_from(p.not_after_ms).map_err(|_| StoreError::Corrupt("not_after".into()))?;
        sqlx::query(concat!(
            "INSERT INTO pending_approvals (",
            pending_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (requester, idempotency_key) DO NOTHING"
        ))
        .bind(&p.approval_id)
        .bind(&p.key_id)
        .bind(&p.requester)
        .bind(&p.idempotency_key)
        .bind(&p.signed_intent)
        .bind(&p.intent_sha256)
        .bind(&p.rule)
        .bind(&p.group)
        .bind(i64::from(p.required))
        .bind(not_after)
        .bind(&p.summary)
        .bind(&p.created_at)
        .execute(&self.pool)
        .await?;
        self.pending_for_request(&p.requester, &p.idempotency_key)
            .await?
            .ok_or_else(|| StoreError::Corrupt("pending approval vanished".into()))
    }

    async fn pending_approval(
        &self,
        approval_id: &str,
    ) -> Result<Option<PendingApproval>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            pending_columns!(),
            " FROM pending_approvals WHERE approval_id = ?"
        ))
        .bind(approval_id)
        .fetch_optional(&self.pool)
        .await?;
        self.load_pending(row).await
    }

    async fn pending_for_request(
        &self,
        requester: &str,
        idempotency_key: &str,
    ) -> Result<Option<PendingApproval>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            pending_columns!(),
            " FROM pending_approvals WHERE requester = ? AND idempotency_key = ?"
        ))
        .bind(requester)
        .bind(idempotency_key)
        .fetch_optional(&self.pool)
        .await?;
        self.load_pending(row).await
    }

    async fn list_pending_approvals(
        &self,
        key_id: Option<&str>,
        now_ms: u64,
    ) -> Result<Vec<PendingApproval>, StoreError> {
        let now = i64::try_from(now_ms).map_err(|_| StoreError::Corrupt("time".into()))?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            pending_columns!(),
            " FROM pending_approvals WHERE not_after_ms >= ? AND (? IS NULL OR key_id = ?) ORDER BY created_at, approval_id"
        ))
        .bind(now)
        .bind(key_id)
        .bind(key_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(p) = self.load_pending(Some(row)).await? {
                out.push(p);
            }
        }
        Ok(out)
    }

    async fn resolve_pending(
        &self,
        requester: &str,
        idempotency_key: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM approvals WHERE approval_id IN (SELECT approval_id FROM pending_approvals WHERE requester = ? AND idempotency_key = ?)",
        )
        .bind(requester)
        .bind(idempotency_key)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM pending_approvals WHERE requester = ? AND idempotency_key = ?")
            .bind(requester)
            .bind(idempotency_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_approval(
        &self,
        approval_id: &str,
        approver: &str,
        approval: &[u8],
        at: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO approvals (approval_id, approver, approval, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (approval_id, approver) DO UPDATE SET approval = excluded.approval",
        )
        .bind(approval_id)
        .bind(approver)
        .bind(approval)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl SqliteCoordinatorStore {
    async fn load_pending(
        &self,
        row: Option<sqlx::sqlite::SqliteRow>,
    ) -> Result<Option<PendingApproval>, StoreError> {
        let Some(row) = row else { return Ok(None) };
        let required: i64 = row.try_get("required")?;
        let not_after: i64 = row.try_get("not_after_ms")?;
        let approval_id: String = row.try_get("approval_id")?;
        let approvals = sqlx::query(
            "SELECT approver, approval FROM approvals WHERE approval_id = ? ORDER BY created_at, approver",
        )
        .bind(&approval_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("approver")?, r.try_get("approval")?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some(PendingApproval {
            approval_id,
            key_id: row.try_get("key_id")?,
            requester: row.try_get("requester")?,
            idempotency_key: row.try_get("idempotency_key")?,
            signed_intent: row.try_get("signed_intent")?,
            intent_sha256: row.try_get("intent_sha256")?,
            rule: row.try_get("rule")?,
            group: row.try_get("approver_group")?,
            required: u16::try_from(required)
                .map_err(|_| StoreError::Corrupt("required".into()))?,
            not_after_ms: u64::try_from(not_after)
                .map_err(|_| StoreError::Corrupt("not_after_ms".into()))?,
            summary: row.try_get("summary")?,
            created_at: row.try_get("created_at")?,
            approvals,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> KeyRecord {
        KeyRecord {
            key_id: id.into(),
            scheme: Scheme::FrostEd25519,
            threshold: 2,
            participants: vec![1, 2, 3],
            public_key: vec![1; 32],
            public_key_package: vec![2; 10],
            epoch: 0,
            label: "treasury".into(),
            created_at: "2026-11-21T00:00:00Z".into(),
        }
    }

    /// A claim for `requester`'s `key` over `digest`, claims older than 60 s stale.
    async fn claim(
        store: &SqliteCoordinatorStore,
        requester: &str,
        key: &str,
        digest: &[u8],
    ) -> SignClaim {
        store
            .claim_sign(requester, key, "key", digest, 60)
            .await
            .expect("claim")
    }

    /// Claims go through the `synchronous = NORMAL` pool, results through
    /// the FULL one: both see the same rows, across a reopen.
    #[tokio::test]
    async fn claims_and_results_share_one_database_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("coordinator.db");
        let store = SqliteCoordinatorStore::open(&path).await.expect("open");
        assert_eq!(claim(&store, "pay", "k1", b"d1").await, SignClaim::New);
        assert_eq!(
            claim(&store, "pay", "k1", b"d1").await,
            SignClaim::InProgress
        );
        store
            .finish_sign("pay", "k1", b"response")
            .await
            .expect("finish");
        drop(store);
        let store = SqliteCoordinatorStore::open(&path).await.expect("reopen");
        assert_eq!(
            claim(&store, "pay", "k1", b"d1").await,
            SignClaim::Done(b"response".to_vec())
        );
        // A claim released after a failure can be taken again.
        assert_eq!(claim(&store, "pay", "k2", b"d2").await, SignClaim::New);
        store.release_sign("pay", "k2").await.expect("release");
        assert_eq!(claim(&store, "pay", "k2", b"d2").await, SignClaim::New);
    }

    #[tokio::test]
    async fn idempotency_claims() {
        let store = SqliteCoordinatorStore::in_memory().await.expect("open");
        assert_eq!(claim(&store, "pay", "k1", b"d1").await, SignClaim::New);
        // Same request while the first is running; a different request under the same key.
        assert_eq!(
            claim(&store, "pay", "k1", b"d1").await,
            SignClaim::InProgress
        );
        assert_eq!(claim(&store, "pay", "k1", b"d2").await, SignClaim::Conflict);
        // Another requester has its own key space.
        assert_eq!(claim(&store, "other", "k1", b"d2").await, SignClaim::New);
        store
            .finish_sign("pay", "k1", b"response")
            .await
            .expect("finish");
        assert_eq!(
            claim(&store, "pay", "k1", b"d1").await,
            SignClaim::Done(b"response".to_vec())
        );
        // A released claim can be taken again; a stale one is taken over.
        store.release_sign("other", "k1").await.expect("release");
        assert_eq!(claim(&store, "other", "k1", b"d2").await, SignClaim::New);
        assert_eq!(
            store
                .claim_sign("other", "k1", "key", b"d2", -1)
                .await
                .expect("claim"),
            SignClaim::New
        );
    }

    #[tokio::test]
    async fn misbehaviour_is_recorded() {
        let store = SqliteCoordinatorStore::in_memory().await.expect("open");
        let m = Misbehaviour {
            node_id: 2,
            key_id: "k".into(),
            session_id: "s".into(),
            reason: "bad share".into(),
            created_at: "t".into(),
            ban: false,
        };
        store.record_misbehaviour(&m).await.expect("record");
        assert_eq!(
            store.list_misbehaviour().await.expect("list"),
            vec![m.clone()]
        );
        // Recorded culprits stay excluded until cleared, per key.
        assert_eq!(
            store.list_exclusions(Some("k")).await.expect("list"),
            vec![m.clone()]
        );
        assert!(
            store
                .list_exclusions(Some("other"))
                .await
                .expect("list")
                .is_empty()
        );
        assert_eq!(
            store
                .clear_exclusion("other", 2, "no", "t2")
                .await
                .expect("clear"),
            0
        );
        assert_eq!(
            store
                .clear_exclusion("k", 2, "investigated", "t2")
                .await
                .expect("clear"),
            1
        );
        assert!(store.list_exclusions(None).await.expect("list").is_empty());
        // Clearing keeps the history.
        assert_eq!(store.list_misbehaviour().await.expect("list"), vec![m]);
    }

    #[tokio::test]
    async fn a_ban_is_not_cleared_by_an_operator_only_lifted_with_a_new_epoch() {
        let store = SqliteCoordinatorStore::in_memory().await.expect("open");
        let record = |node_id, key_id: &str, ban| Misbehaviour {
            node_id,
            key_id: key_id.into(),
            session_id: "s".into(),
            reason: "node 1 aborted the protocol: banned".into(),
            created_at: "t".into(),
            ban,
        };
        for m in [
            record(2, "k", true),
            record(3, "k", false),
            record(2, "other", true),
        ] {
            store.record_misbehaviour(&m).await.expect("record");
        }
        assert_eq!(
            store.list_exclusions(Some("k")).await.expect("list"),
            vec![record(2, "k", true), record(3, "k", false)]
        );
        assert_eq!(
            store
                .clear_exclusion("k", 2, "looks fine", "t2")
                .await
                .expect("clear"),
            0,
            "a ban was cleared"
        );
        assert_eq!(
            store
                .clear_exclusion("k", 3, "investigated", "t2")
                .await
                .expect("clear"),
            1
        );
        // The key's new epoch lifts its bans (and only its own), with the
        // transaction that commits it.
        let mut tx = store.pool.begin().await.expect("begin");
        assert_eq!(
            lift_ban_exclusions(&mut tx, "k", "refreshed to epoch 1", "t3")
                .await
                .expect("lift"),
            1
        );
        tx.commit().await.expect("commit");
        assert!(
            store
                .list_exclusions(Some("k"))
                .await
                .expect("list")
                .is_empty()
        );
        assert_eq!(
            store.list_exclusions(None).await.expect("list"),
            vec![record(2, "other", true)]
        );
    }

    #[tokio::test]
    async fn a_certificate_moves_the_key_to_its_epoch_once() {
        let store = SqliteCoordinatorStore::in_memory().await.expect("open");
        store.insert_key(&key("k")).await.expect("insert");
        let mut next = key("k");
        next.epoch = 1;
        next.participants = vec![1, 3, 4];
        next.public_key_package = vec![9, 9];
        store
            .certify_epoch(&next, b"cert", &[1, 2, 3, 4], "t1")
            .await
            .expect("certify");
        assert_eq!(store.get_key("k").await.expect("get"), Some(next.clone()));
        // The same epoch cannot be certified twice, nor an epoch that skips one.
        assert!(
            store
                .certify_epoch(&next, b"cert", &[1], "t2")
                .await
                .is_err()
        );
        let mut skip = next.clone();
        skip.epoch = 3;
        assert!(
            store
                .certify_epoch(&skip, b"cert", &[1], "t2")
                .await
                .is_err()
        );
        // Another public key never replaces the key's.
        let mut other = next.clone();
        other.epoch = 2;
        other.public_key = vec![7; 33];
        assert!(
            store
                .certify_epoch(&other, b"cert", &[1], "t2")
                .await
                .is_err()
        );
        let open = store.uncommitted_epochs().await.expect("list");
        assert_eq!(
            open,
            vec![UncommittedEpoch {
                key_id: "k".into(),
                epoch: 1,
                certificate: b"cert".to_vec(),
                notify: vec![1, 2, 3, 4],
            }]
        );
        store.complete_epoch("k", 1, "t3").await.expect("complete");
        assert!(store.uncommitted_epochs().await.expect("list").is_empty());
    }

    #[tokio::test]
    async fn keys_round_trip_and_are_unique() {
        let store = SqliteCoordinatorStore::in_memory().await.expect("open");
        store.insert_key(&key("a")).await.expect("insert");
        assert!(
            matches!(store.insert_key(&key("a")).await, Err(StoreError::Exists(id)) if id == "a")
        );
        store.insert_key(&key("b")).await.expect("insert");
        assert_eq!(store.get_key("a").await.expect("get"), Some(key("a")));
        assert_eq!(store.get_key("zz").await.expect("get"), None);
        assert_eq!(store.list_keys().await.expect("list").len(), 2);
    }

    fn pending(id: &str, idem: &str, sha: u8) -> PendingApproval {
        PendingApproval {
            approval_id: id.into(),
            key_id: "k".into(),
            requester: "client/pay".into(),
            idempotency_key: idem.into(),
            signed_intent: vec![1, 2, 3],
            intent_sha256: vec![sha; 32],
            rule: "approval_tiers[0]".into(),
            group: "treasury".into(),
            required: 2,
            not_after_ms: 5_000,
            summary: "evm:1 transfer".into(),
            created_at: "2026-12-01T00:00:00Z".into(),
            approvals: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_request_is_held_once_and_collects_one_approval_per_approver() {
        let store = SqliteCoordinatorStore::in_memory().await.expect("open");
        let held = store
            .hold_for_approval(&pending("appr-1", "idem", 1))
            .await
            .expect("hold");
        assert_eq!(held.approval_id, "appr-1");
        // The same request again keeps the first hold (and its approvals).
        let again = store
            .hold_for_approval(&pending("appr-2", "idem", 1))
            .await
            .expect("hold again");
        assert_eq!(again.approval_id, "appr-1");
        for (who, sig) in [("a1", 1u8), ("a2", 2), ("a1", 3)] {
            store
                .add_approval("appr-1", who, &[sig], "2026-12-01T00:00:01Z")
                .await
                .expect("approve");
        }
        let got = store
            .pending_for_request("client/pay", "idem")
            .await
            .expect("get")
            .expect("held");
        let approvers: Vec<&str> = got.approvals.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(approvers, ["a1", "a2"], "one approval per approver");
        assert_eq!(
            store
                .list_pending_approvals(Some("k"), 4_000)
                .await
                .expect("list")
                .len(),
            1
        );
        // Expired with its intent.
        assert!(
            store
                .list_pending_approvals(None, 6_000)
                .await
                .expect("list")
                .is_empty()
        );
        assert!(store.pending_approval("nope").await.expect("get").is_none());
    }

    #[tokio::test]
    async fn the_newest_policy_copy_is_returned() {
        let store = SqliteCoordinatorStore::in_memory().await.expect("open");
        assert!(store.get_policy("k").await.expect("get").is_none());
        store.put_policy("k", 1, &[1], "t1").await.expect("v1");
        store.put_policy("k", 3, &[3], "t3").await.expect("v3");
        store.put_policy("k", 2, &[2], "t2").await.expect("v2");
        assert_eq!(
            store.get_policy("k").await.expect("get"),
            Some((3, vec![3]))
        );
    }
}
