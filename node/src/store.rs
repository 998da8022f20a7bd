//! The node's share store: a small trait, and its SQLite implementation (the
//! embedded default). Every row carries a key id **and an epoch**, so a
//! refreshed or reshared epoch can be stored beside the current one until
//! the switch is committed. Shares are stored sealed ([`crate::seal`]); this
//! layer never sees plaintext.

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
    #[error("share for key {key_id} epoch {epoch} already exists")]
    Exists { key_id: String, epoch: u64 },
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A grouped commit of the intent ledger failed (`group_commit`); the
    /// message is the failing statement's error.
    #[error("intent ledger: {0}")]
    Batch(String),
    #[error("policy of key {key_id} is at version {current}; version {proposed} is not newer")]
    Rollback {
        key_id: String,
        current: u64,
        proposed: u64,
    },
}

/// Lifecycle of a stored epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareStatus {
    /// Output of a finished DKG that the coordinator has not committed yet; never signs.
    Pending,
    Current,
    Next,
    Retired,
}

impl ShareStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Current => "current",
            Self::Next => "next",
            Self::Retired => "retired",
        }
    }
}

impl FromStr for ShareStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "current" => Ok(Self::Current),
            "next" => Ok(Self::Next),
            "retired" => Ok(Self::Retired),
            other => Err(StoreError::Corrupt(format!("unknown status {other:?}"))),
        }
    }
}

/// One stored share: public metadata plus the sealed secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredShare {
    pub key_id: String,
    pub epoch: u64,
    pub scheme: Scheme,
    pub status: ShareStatus,
    pub threshold: u16,
    pub participants: Vec<u16>,
    pub public_key: Vec<u8>,
    pub public_key_package: Vec<u8>,
    /// AEAD ciphertext of the share; see [`crate::seal`].
    pub sealed_share: Vec<u8>,
    pub created_at: String,
}

impl std::fmt::Debug for StoredShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredShare")
            .field("key_id", &self.key_id)
            .field("epoch", &self.epoch)
            .field("scheme", &self.scheme)
            .field("status", &self.status)
            .field("threshold", &self.threshold)
            .field("participants", &self.participants)
            .finish_non_exhaustive()
    }
}

/// Where a node keeps its shares.
#[async_trait]
pub trait ShareStore: Send + Sync + 'static {
    /// Inserts a new share; refuses to overwrite an existing (key, epoch).
    async fn insert(&self, share: &StoredShare) -> Result<(), StoreError>;
    /// The share of `key_id` with status `current`.
    async fn current(&self, key_id: &str) -> Result<Option<StoredShare>, StoreError>;
    /// Any stored epoch of `key_id`, whatever its status.
    async fn exists(&self, key_id: &str) -> Result<bool, StoreError>;
    /// The share of (`key_id`, `epoch`), whatever its status.
    async fn get(&self, key_id: &str, epoch: u64) -> Result<Option<StoredShare>, StoreError>;
    /// Promotes a pending epoch to current. Returns false if it was not pending.
    async fn activate(&self, key_id: &str, epoch: u64) -> Result<bool, StoreError>;
    /// Every stored share's row (sealed shares included), ordered by key and epoch.
    async fn list(&self) -> Result<Vec<StoredShare>, StoreError>;
    /// Number of keys with a current share.
    async fn count_current(&self) -> Result<u64, StoreError>;
    /// Stores a redistributed share as `next` (status of `share` is
    /// ignored), replacing any `next` of the key left by an earlier attempt
    /// that never committed. Refuses an epoch that is already current or retired.
    async fn stage_next(&self, share: &StoredShare) -> Result<(), StoreError>;
    /// Switches the key to `epoch` in one transaction: `next` → `current`,
    /// the previous `current` → `retired`, and the key's counterparty bans
    /// lifted (the new epoch gave every party fresh pairwise state).
    async fn commit_epoch(
        &self,
        key_id: &str,
        epoch: u64,
        now: &str,
    ) -> Result<EpochSwitch, StoreError>;
    /// Deletes every share of the key up to `epoch` (a node a
    /// redistribution removed). Returns how many rows went.
    async fn drop_key(&self, key_id: &str, epoch: u64) -> Result<u64, StoreError>;
    /// Every stored epoch of `key_id`, oldest first.
    async fn epochs(&self, key_id: &str) -> Result<Vec<StoredShare>, StoreError>;
    /// Deletes retired shares retired before `retired_before` and `next`
    /// shares staged before `next_before` (RFC 3339). Returns (retired, next) counts.
    async fn sweep(
        &self,
        retired_before: &str,
        next_before: &str,
    ) -> Result<(u64, u64), StoreError>;
}

/// The columns of `key_shares`, as a literal so queries stay static strings.
macro_rules! columns {
    () => {
        "key_id, epoch, scheme, status, threshold, participants, public_key, public_key_package, sealed_share, created_at"
    };
}

/// Inserts `share` with `status`; refuses to overwrite an existing (key, epoch).
async fn insert_row(
    conn: &mut sqlx::SqliteConnection,
    share: &StoredShare,
    status: ShareStatus,
) -> Result<(), StoreError> {
    let epoch =
        i64::try_from(share.epoch).map_err(|_| StoreError::Corrupt("epoch out of range".into()))?;
    let participants = serde_json::to_string(&share.participants)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let result = sqlx::query(concat!(
        "INSERT INTO key_shares (",
        columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&share.key_id)
    .bind(epoch)
    .bind(share.scheme.name())
    .bind(status.as_str())
    .bind(i64::from(share.threshold))
    .bind(participants)
    .bind(&share.public_key)
    .bind(&share.public_key_package)
    .bind(&share.sealed_share)
    .bind(&share.created_at)
    .execute(&mut *conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Exists {
            key_id: share.key_id.clone(),
            epoch: share.epoch,
        }),
        Err(e) => Err(e.into()),
    }
}

/// What [`ShareStore::commit_epoch`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochSwitch {
    /// `next` became `current` just now.
    Switched,
    /// The epoch was already current (a repeated commit).
    AlreadyCurrent,
    /// No share of this epoch is staged here.
    NothingStaged,
}

/// SQLite share store (WAL, `synchronous = FULL`: a share reported stored survives power loss).
#[derive(Clone, Debug)]
pub struct SqliteShareStore {
    pub(crate) pool: SqlitePool,
    /// The intent ledger's group-committing writer (its own connection).
    pub(crate) opener: crate::group_commit::Opener,
}

impl SqliteShareStore {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // Deleted rows (retired shares) are overwritten, not left in free pages.
            .pragma("secure_delete", "ON");
        Self::connect(opts).await
    }

    /// A private in-memory database (tests).
    pub async fn in_memory() -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Self::connect(opts).await
    }

    async fn connect(opts: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let opener = crate::group_commit::Opener::start(&pool).await?;
        Ok(Self { pool, opener })
    }

    fn row_to_share(row: &sqlx::sqlite::SqliteRow) -> Result<StoredShare, StoreError> {
        let participants: String = row.try_get("participants")?;
        let participants: Vec<u16> = serde_json::from_str(&participants)
            .map_err(|e| StoreError::Corrupt(format!("participants: {e}")))?;
        let epoch: i64 = row.try_get("epoch")?;
        let threshold: i64 = row.try_get("threshold")?;
        let status: String = row.try_get("status")?;
        Ok(StoredShare {
            key_id: row.try_get("key_id")?,
            epoch: u64::try_from(epoch)
                .map_err(|_| StoreError::Corrupt("negative epoch".into()))?,
            scheme: row
                .try_get::<String, _>("scheme")?
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("scheme: {e}")))?,
            status: status.parse()?,
            threshold: u16::try_from(threshold)
                .map_err(|_| StoreError::Corrupt("threshold out of range".into()))?,
            participants,
            public_key: row.try_get("public_key")?,
            public_key_package: row.try_get("public_key_package")?,
            sealed_share: row.try_get("sealed_share")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

#[async_trait]
impl ShareStore for SqliteShareStore {
    async fn insert(&self, share: &StoredShare) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_row(&mut conn, share, share.status).await
    }

    async fn current(&self, key_id: &str) -> Result<Option<StoredShare>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM key_shares WHERE key_id = ? AND status = 'current'"
        ))
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::row_to_share).transpose()
    }

    async fn exists(&self, key_id: &str) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_shares WHERE key_id = ?")
            .bind(key_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn get(&self, key_id: &str, epoch: u64) -> Result<Option<StoredShare>, StoreError> {
        let epoch =
            i64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch out of range".into()))?;
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM key_shares WHERE key_id = ? AND epoch = ?"
        ))
        .bind(key_id)
        .bind(epoch)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::row_to_share).transpose()
    }

    async fn activate(&self, key_id: &str, epoch: u64) -> Result<bool, StoreError> {
        let epoch =
            i64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch out of range".into()))?;
        let done = sqlx::query("UPDATE key_shares SET status = 'current' WHERE key_id = ? AND epoch = ? AND status = 'pending'")
            .bind(key_id)
            .bind(epoch)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list(&self) -> Result<Vec<StoredShare>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM key_shares ORDER BY key_id, epoch"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::row_to_share).collect()
    }

    async fn count_current(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_shares WHERE status = 'current'")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn stage_next(&self, share: &StoredShare) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM key_shares WHERE key_id = ? AND status = 'next'")
            .bind(&share.key_id)
            .execute(&mut *tx)
            .await?;
        insert_row(&mut tx, share, ShareStatus::Next).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn commit_epoch(
        &self,
        key_id: &str,
        epoch: u64,
        now: &str,
    ) -> Result<EpochSwitch, StoreError> {
        let epoch =
            i64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch out of range".into()))?;
        let mut tx = self.pool.begin().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM key_shares WHERE key_id = ? AND epoch = ?")
                .bind(key_id)
                .bind(epoch)
                .fetch_optional(&mut *tx)
                .await?;
        match status.as_deref() {
            Some("current") => return Ok(EpochSwitch::AlreadyCurrent),
            Some("next") => {}
            _ => return Ok(EpochSwitch::NothingStaged),
        }
        sqlx::query(
            "UPDATE key_shares SET status = 'retired', retired_at = ? WHERE key_id = ? AND status = 'current'",
        )
        .bind(now)
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE key_shares SET status = 'current' WHERE key_id = ? AND epoch = ?")
            .bind(key_id)
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
        crate::bans::lift_bans(&mut tx, key_id).await?;
        tx.commit().await?;
        Ok(EpochSwitch::Switched)
    }

    async fn drop_key(&self, key_id: &str, epoch: u64) -> Result<u64, StoreError> {
        let epoch =
            i64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch out of range".into()))?;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM key_shares WHERE key_id = ? AND epoch <= ?")
            .bind(key_id)
            .bind(epoch)
            .execute(&mut *tx)
            .await?;
        crate::bans::lift_bans(&mut tx, key_id).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn epochs(&self, key_id: &str) -> Result<Vec<StoredShare>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM key_shares WHERE key_id = ? ORDER BY epoch"
        ))
        .bind(key_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::row_to_share).collect()
    }

    async fn sweep(
        &self,
        retired_before: &str,
        next_before: &str,
    ) -> Result<(u64, u64), StoreError> {
        let retired = sqlx::query(
            "DELETE FROM key_shares WHERE status = 'retired' AND retired_at IS NOT NULL AND retired_at < ?",
        )
        .bind(retired_before)
        .execute(&self.pool)
        .await?;
        let next = sqlx::query("DELETE FROM key_shares WHERE status = 'next' AND created_at < ?")
            .bind(next_before)
            .execute(&self.pool)
            .await?;
        Ok((retired.rows_affected(), next.rows_affected()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(key_id: &str, epoch: u64, status: ShareStatus) -> StoredShare {
        StoredShare {
            key_id: key_id.into(),
            epoch,
            scheme: Scheme::FrostSecp256k1,
            status,
            threshold: 2,
            participants: vec![1, 2, 3],
            public_key: vec![2; 33],
            public_key_package: vec![1, 2, 3],
            sealed_share: vec![9; 40],
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn insert_list_current_and_epochs() {
        let store = SqliteShareStore::in_memory().await.expect("open");
        store
            .insert(&share("k1", 0, ShareStatus::Current))
            .await
            .expect("insert");
        // The next epoch sits beside the current one.
        store
            .insert(&share("k1", 1, ShareStatus::Next))
            .await
            .expect("insert next");
        assert!(matches!(
            store.insert(&share("k1", 1, ShareStatus::Next)).await,
            Err(StoreError::Exists { epoch: 1, .. })
        ));
        // A second current epoch for the same key is refused by the schema.
        assert!(
            store
                .insert(&share("k1", 2, ShareStatus::Current))
                .await
                .is_err()
        );
        let cur = store.current("k1").await.expect("query").expect("present");
        assert_eq!(cur, share("k1", 0, ShareStatus::Current));
        assert!(store.current("nope").await.expect("query").is_none());
        assert_eq!(store.list().await.expect("list").len(), 2);
        assert_eq!(store.count_current().await.expect("count"), 1);
    }

    #[tokio::test]
    async fn pending_shares_do_not_sign_until_activated() {
        let store = SqliteShareStore::in_memory().await.expect("open");
        store
            .insert(&share("k", 0, ShareStatus::Pending))
            .await
            .expect("insert");
        assert!(store.exists("k").await.expect("exists"));
        assert!(store.current("k").await.expect("query").is_none());
        assert!(store.activate("k", 0).await.expect("activate"));
        assert!(
            !store
                .activate("k", 0)
                .await
                .expect("second activate is a no-op")
        );
        assert_eq!(
            store.current("k").await.expect("query").map(|s| s.status),
            Some(ShareStatus::Current)
        );
        assert_eq!(
            store.get("k", 0).await.expect("get").map(|s| s.epoch),
            Some(0)
        );
    }

    #[tokio::test]
    async fn an_epoch_switch_retires_the_old_share_in_one_step() {
        let store = SqliteShareStore::in_memory().await.expect("open");
        store
            .insert(&share("k", 0, ShareStatus::Current))
            .await
            .expect("insert");
        assert_eq!(
            store.commit_epoch("k", 1, "t1").await.expect("commit"),
            EpochSwitch::NothingStaged
        );
        store
            .stage_next(&share("k", 1, ShareStatus::Pending))
            .await
            .expect("stage");
        // A second attempt replaces the first one's `next`.
        let mut again = share("k", 1, ShareStatus::Next);
        again.public_key_package = vec![7];
        store.stage_next(&again).await.expect("restage");
        assert_eq!(store.epochs("k").await.expect("epochs").len(), 2);
        // Still the old epoch signs.
        assert_eq!(
            store.current("k").await.expect("q").map(|s| s.epoch),
            Some(0)
        );
        assert_eq!(
            store.commit_epoch("k", 1, "t1").await.expect("commit"),
            EpochSwitch::Switched
        );
        assert_eq!(
            store.commit_epoch("k", 1, "t2").await.expect("commit"),
            EpochSwitch::AlreadyCurrent
        );
        let epochs = store.epochs("k").await.expect("epochs");
        assert_eq!(
            epochs
                .iter()
                .map(|s| (s.epoch, s.status))
                .collect::<Vec<_>>(),
            vec![(0, ShareStatus::Retired), (1, ShareStatus::Current)]
        );
        assert_eq!(epochs[1].public_key_package, vec![7]);
        // A committed epoch cannot be staged again.
        assert!(matches!(
            store.stage_next(&share("k", 1, ShareStatus::Next)).await,
            Err(StoreError::Exists { epoch: 1, .. })
        ));
        // Retired shares go after the grace period; the current one stays.
        assert_eq!(store.sweep("t0", "t0").await.expect("sweep"), (0, 0));
        assert_eq!(store.sweep("t9", "t0").await.expect("sweep"), (1, 0));
        assert_eq!(store.epochs("k").await.expect("epochs").len(), 1);
        // A node removed from the key deletes what it holds.
        assert_eq!(store.drop_key("k", 1).await.expect("drop"), 1);
        assert!(!store.exists("k").await.expect("exists"));
    }

    #[tokio::test]
    async fn an_uncommitted_next_expires() {
        let store = SqliteShareStore::in_memory().await.expect("open");
        store
            .insert(&share("k", 0, ShareStatus::Current))
            .await
            .expect("insert");
        let mut next = share("k", 1, ShareStatus::Next);
        next.created_at = "2026-01-01T00:00:00Z".into();
        store.stage_next(&next).await.expect("stage");
        assert_eq!(
            store
                .sweep("2000-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
                .await
                .expect("sweep"),
            (0, 1)
        );
        assert_eq!(
            store.commit_epoch("k", 1, "t").await.expect("commit"),
            EpochSwitch::NothingStaged
        );
    }

    #[tokio::test]
    async fn file_database_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        SqliteShareStore::open(&path)
            .await
            .expect("open")
            .insert(&share("k", 0, ShareStatus::Current))
            .await
            .expect("insert");
        let reopened = SqliteShareStore::open(&path).await.expect("reopen");
        assert_eq!(reopened.list().await.expect("list").len(), 1);
    }
}
