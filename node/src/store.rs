//! The node's share store: a small trait, and its SQLite implementation (the
//! embedded default). Every row carries a key id **and an epoch**, so a
//! refreshed or reshared epoch can be stored beside the current one until
//! the switch is committed. Shares are stored sealed ([`crate::seal`]); this
//! layer never sees plaintext.
//!
//! # Authenticated rows
//!
//! The sealed share is bound to its key id, node id and epoch by its AEAD.
//! The row's other columns would otherwise be trusted as read: someone
//! with write access to the database could lower a key's threshold, change
//! its participants or public key package, or flip a status — make an
//! uncommitted `pending` DKG output or an uncertified `next` epoch sign —
//! without touching the ciphertext. So every row carries a tag
//! (`row_tag`): HMAC-SHA256 under a key derived from the KEK
//! ([`crate::seal::RowAuthenticator`]) over the node id, key id, epoch,
//! scheme, status, threshold, participants, public key, SHA-256 of the
//! public key package and SHA-256 of the sealed share. A store opened with
//! the node's authenticator ([`SqliteShareStore::authenticated`]) writes
//! the tag with every insert and status change — after checking the tag of
//! the row it changes, so a status change never launders an altered row —
//! and checks it on every read: a row that fails is
//! [`StoreError::Unauthenticated`], never a share.
//!
//! Not covered: `created_at` and `retired_at` only time the deletion of
//! `next` and `retired` shares, which someone able to write the database
//! can delete anyway. Nor can a tag stop a rollback: a row put back as it
//! was earlier, tag and all, is authentic, as is a restored copy of the
//! whole database (a `retired` row put back as `current` with its old tag
//! signs with the old epoch's share; the coordinator asks for the current
//! epoch and the node refuses the mismatch, but a coordinator in the same
//! attacker's hands would not). Rows written before row tags existed have
//! none and are refused like altered ones: there is no upgrade path, as no
//! deployment predates them.
//!
//! A store opened without the authenticator ([`SqliteShareStore::open`]
//! alone: tools inspecting a database offline) reads rows unchecked and
//! writes no share rows ([`StoreError::NoRowKey`]). The node always opens
//! its store with the authenticator.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sigil_protocol::Scheme;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::seal::RowAuthenticator;

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
    /// A share row whose tag does not match its columns (altered outside
    /// the node, or written before rows were authenticated): never used.
    #[error(
        "share row of key {key_id} epoch {epoch} fails authentication ({reason}): it was altered \
         outside the node or predates authenticated share rows, and will not be used"
    )]
    Unauthenticated {
        key_id: String,
        epoch: u64,
        reason: &'static str,
    },
    /// A share row write through a store opened without the node's row
    /// authenticator ([`SqliteShareStore::authenticated`]).
    #[error("this share store has no row authentication key and cannot write share rows")]
    NoRowKey,
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

/// The columns of `key_shares` a share is written and read with, as a
/// literal so queries stay static strings.
macro_rules! columns {
    () => {
        "key_id, epoch, scheme, status, threshold, participants, public_key, public_key_package, sealed_share, created_at, row_tag"
    };
}

/// The bytes a row's tag covers (see the module docs), status given apart:
/// every variable-length field length-prefixed, the public key package
/// and the sealed share by their SHA-256.
fn row_fields(share: &StoredShare, status: ShareStatus) -> Vec<u8> {
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    }
    let mut out = Vec::with_capacity(256);
    bytes(&mut out, share.key_id.as_bytes());
    out.extend_from_slice(&share.epoch.to_be_bytes());
    bytes(&mut out, share.scheme.name().as_bytes());
    bytes(&mut out, status.as_str().as_bytes());
    out.extend_from_slice(&share.threshold.to_be_bytes());
    out.extend_from_slice(&(share.participants.len() as u64).to_be_bytes());
    for p in &share.participants {
        out.extend_from_slice(&p.to_be_bytes());
    }
    bytes(&mut out, &share.public_key);
    out.extend_from_slice(&Sha256::digest(&share.public_key_package));
    out.extend_from_slice(&Sha256::digest(&share.sealed_share));
    out
}

/// Checks the tag of a row read as `share` (its status included).
fn check_tag(
    auth: &RowAuthenticator,
    share: &StoredShare,
    tag: Option<&[u8]>,
) -> Result<(), StoreError> {
    let fail = |reason| StoreError::Unauthenticated {
        key_id: share.key_id.clone(),
        epoch: share.epoch,
        reason,
    };
    let tag = tag.ok_or_else(|| fail("the row has no tag"))?;
    if auth.verify(&row_fields(share, share.status), tag) {
        Ok(())
    } else {
        Err(fail("its tag does not match its columns"))
    }
}

fn db_epoch(epoch: u64) -> Result<i64, StoreError> {
    i64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch out of range".into()))
}

/// Inserts `share` with `status` and its tag; refuses to overwrite an
/// existing (key, epoch).
async fn insert_row(
    conn: &mut sqlx::SqliteConnection,
    auth: &RowAuthenticator,
    share: &StoredShare,
    status: ShareStatus,
) -> Result<(), StoreError> {
    let epoch = db_epoch(share.epoch)?;
    let participants = serde_json::to_string(&share.participants)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let tag = auth.tag(&row_fields(share, status));
    let result = sqlx::query(concat!(
        "INSERT INTO key_shares (",
        columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
    .bind(tag)
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

/// Gives the row read (and checked) as `share` the status `status` and its
/// new tag (`retired_at`: when it retired). Fails unless the row still
/// holds `share`'s status.
async fn set_status(
    conn: &mut sqlx::SqliteConnection,
    auth: &RowAuthenticator,
    share: &StoredShare,
    status: ShareStatus,
    retired_at: Option<&str>,
) -> Result<(), StoreError> {
    let tag = auth.tag(&row_fields(share, status));
    let done = sqlx::query(
        "UPDATE key_shares SET status = ?, row_tag = ?, retired_at = COALESCE(?, retired_at) \
         WHERE key_id = ? AND epoch = ? AND status = ?",
    )
    .bind(status.as_str())
    .bind(tag)
    .bind(retired_at)
    .bind(&share.key_id)
    .bind(db_epoch(share.epoch)?)
    .bind(share.status.as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "share row of key {} epoch {} changed during its status change",
            share.key_id, share.epoch
        )))
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
    /// Tags share rows (see the module docs); `None`: reads unchecked, no share writes.
    rows: Option<RowAuthenticator>,
}

impl SqliteShareStore {
    /// Opens (creating if needed) and migrates the database at `path`,
    /// without the row authenticator: add it with [`Self::authenticated`]
    /// to write or check share rows.
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
        Ok(Self {
            pool,
            opener,
            rows: None,
        })
    }

    /// This store, writing and checking share row tags with `auth` (the node's own).
    pub fn authenticated(mut self, auth: RowAuthenticator) -> Self {
        self.rows = Some(auth);
        self
    }

    fn auth(&self) -> Result<&RowAuthenticator, StoreError> {
        self.rows.as_ref().ok_or(StoreError::NoRowKey)
    }

    /// Share rows without a tag (written before rows were authenticated);
    /// they are refused when read.
    pub async fn untagged_rows(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_shares WHERE row_tag IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The share of (`key_id`, `epoch`) read on `conn` (inside a caller's
    /// transaction), its tag checked.
    async fn share_in(
        &self,
        conn: &mut sqlx::SqliteConnection,
        key_id: &str,
        epoch: u64,
    ) -> Result<Option<StoredShare>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM key_shares WHERE key_id = ? AND epoch = ?"
        ))
        .bind(key_id)
        .bind(db_epoch(epoch)?)
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(|r| self.checked(r)).transpose()
    }

    /// A row as a share, its tag checked if this store has the authenticator.
    fn checked(&self, row: &sqlx::sqlite::SqliteRow) -> Result<StoredShare, StoreError> {
        let share = Self::row_to_share(row)?;
        if let Some(auth) = &self.rows {
            let tag: Option<Vec<u8>> = row.try_get("row_tag")?;
            check_tag(auth, &share, tag.as_deref())?;
        }
        Ok(share)
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
        let auth = self.auth()?;
        let mut conn = self.pool.acquire().await?;
        insert_row(&mut conn, auth, share, share.status).await
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
        row.as_ref().map(|r| self.checked(r)).transpose()
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
        row.as_ref().map(|r| self.checked(r)).transpose()
    }

    async fn activate(&self, key_id: &str, epoch: u64) -> Result<bool, StoreError> {
        let auth = self.auth()?;
        let mut tx = self.pool.begin().await?;
        let Some(share) = self
            .share_in(&mut tx, key_id, epoch)
            .await?
            .filter(|s| s.status == ShareStatus::Pending)
        else {
            return Ok(false);
        };
        set_status(&mut tx, auth, &share, ShareStatus::Current, None).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list(&self) -> Result<Vec<StoredShare>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM key_shares ORDER BY key_id, epoch"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.checked(r)).collect()
    }

    async fn count_current(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM key_shares WHERE status = 'current'")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn stage_next(&self, share: &StoredShare) -> Result<(), StoreError> {
        let auth = self.auth()?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM key_shares WHERE key_id = ? AND status = 'next'")
            .bind(&share.key_id)
            .execute(&mut *tx)
            .await?;
        insert_row(&mut tx, auth, share, ShareStatus::Next).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn commit_epoch(
        &self,
        key_id: &str,
        epoch: u64,
        now: &str,
    ) -> Result<EpochSwitch, StoreError> {
        let auth = self.auth()?;
        let mut tx = self.pool.begin().await?;
        let Some(next) = self.share_in(&mut tx, key_id, epoch).await? else {
            return Ok(EpochSwitch::NothingStaged);
        };
        match next.status {
            ShareStatus::Current => return Ok(EpochSwitch::AlreadyCurrent),
            ShareStatus::Next => {}
            ShareStatus::Pending | ShareStatus::Retired => return Ok(EpochSwitch::NothingStaged),
        }
        let current = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM key_shares WHERE key_id = ? AND status = 'current'"
        ))
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(current) = current {
            let current = self.checked(&current)?;
            set_status(&mut tx, auth, &current, ShareStatus::Retired, Some(now)).await?;
        }
        set_status(&mut tx, auth, &next, ShareStatus::Current, None).await?;
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
        rows.iter().map(|r| self.checked(r)).collect()
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
    use crate::seal::Kek;

    fn auth(node_id: u16) -> RowAuthenticator {
        Kek::from_bytes(&[5; 32]).row_authenticator(node_id)
    }

    /// A private in-memory store with node 1's row authenticator.
    async fn fresh_store() -> SqliteShareStore {
        SqliteShareStore::in_memory()
            .await
            .expect("open")
            .authenticated(auth(1))
    }

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
        let store = fresh_store().await;
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
        let store = fresh_store().await;
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
        let store = fresh_store().await;
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
        let store = fresh_store().await;
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
            .authenticated(auth(1))
            .insert(&share("k", 0, ShareStatus::Current))
            .await
            .expect("insert");
        let reopened = SqliteShareStore::open(&path)
            .await
            .expect("reopen")
            .authenticated(auth(1));
        assert_eq!(reopened.list().await.expect("list").len(), 1);
    }

    fn is_unauthenticated(r: Result<Option<StoredShare>, StoreError>) -> bool {
        matches!(r, Err(StoreError::Unauthenticated { .. }))
    }

    /// Runs `sql` (one statement) on the database behind the store's back.
    async fn alter(store: &SqliteShareStore, sql: &'static str) {
        let done = sqlx::query(sql).execute(&store.pool).await.expect(sql);
        assert!(done.rows_affected() >= 1, "{sql} changed nothing");
    }

    #[tokio::test]
    async fn altering_any_authenticated_column_makes_the_share_unusable() {
        let alterations = [
            ("threshold", "UPDATE key_shares SET threshold = 1"),
            (
                "participants",
                "UPDATE key_shares SET participants = '[1,2,4]'",
            ),
            (
                "participants order",
                "UPDATE key_shares SET participants = '[3,2,1]'",
            ),
            ("scheme", "UPDATE key_shares SET scheme = 'frost-taproot'"),
            ("public key", "UPDATE key_shares SET public_key = x'03'"),
            (
                "public key package",
                "UPDATE key_shares SET public_key_package = x'010204'",
            ),
            (
                "sealed share",
                "UPDATE key_shares SET sealed_share = x'0909'",
            ),
            ("tag", "UPDATE key_shares SET row_tag = zeroblob(32)"),
            ("no tag", "UPDATE key_shares SET row_tag = NULL"),
        ];
        for (what, sql) in alterations {
            let store = fresh_store().await;
            store
                .insert(&share("k", 0, ShareStatus::Current))
                .await
                .expect("insert");
            assert!(store.current("k").await.expect("intact").is_some());
            alter(&store, sql).await;
            assert!(is_unauthenticated(store.current("k").await), "{what}");
            assert!(is_unauthenticated(store.get("k", 0).await), "{what}");
            assert!(
                matches!(store.list().await, Err(StoreError::Unauthenticated { .. })),
                "{what}"
            );
            assert!(
                matches!(
                    store.epochs("k").await,
                    Err(StoreError::Unauthenticated { .. })
                ),
                "{what}"
            );
        }
    }

    #[tokio::test]
    async fn a_row_moved_to_another_key_or_epoch_is_refused() {
        for sql in [
            "UPDATE key_shares SET key_id = 'other'",
            "UPDATE key_shares SET epoch = 1",
        ] {
            let store = fresh_store().await;
            store
                .insert(&share("k", 0, ShareStatus::Current))
                .await
                .expect("insert");
            alter(&store, sql).await;
            assert!(
                matches!(store.list().await, Err(StoreError::Unauthenticated { .. })),
                "{sql}"
            );
        }
    }

    #[tokio::test]
    async fn a_status_flipped_outside_the_node_is_refused() {
        // pending → current: a DKG output the coordinator never committed.
        let store = fresh_store().await;
        store
            .insert(&share("k", 0, ShareStatus::Pending))
            .await
            .expect("insert");
        alter(&store, "UPDATE key_shares SET status = 'current'").await;
        assert!(is_unauthenticated(store.current("k").await));

        // next → current and current → retired: an epoch switch without its certificate.
        let store = fresh_store().await;
        store
            .insert(&share("k", 0, ShareStatus::Current))
            .await
            .expect("insert");
        store
            .stage_next(&share("k", 1, ShareStatus::Next))
            .await
            .expect("stage");
        alter(
            &store,
            "UPDATE key_shares SET status = 'retired' WHERE epoch = 0",
        )
        .await;
        alter(
            &store,
            "UPDATE key_shares SET status = 'current' WHERE epoch = 1",
        )
        .await;
        assert!(is_unauthenticated(store.current("k").await));
        assert!(is_unauthenticated(store.get("k", 0).await));

        // retired → current: an old epoch signing again.
        let store = fresh_store().await;
        store
            .insert(&share("k", 0, ShareStatus::Current))
            .await
            .expect("insert");
        store
            .stage_next(&share("k", 1, ShareStatus::Next))
            .await
            .expect("stage");
        store.commit_epoch("k", 1, "t").await.expect("commit");
        alter(&store, "DELETE FROM key_shares WHERE epoch = 1").await;
        alter(&store, "UPDATE key_shares SET status = 'current'").await;
        assert!(is_unauthenticated(store.current("k").await));
    }

    #[tokio::test]
    async fn status_changes_do_not_launder_an_altered_row() {
        let store = fresh_store().await;
        store
            .insert(&share("k", 0, ShareStatus::Pending))
            .await
            .expect("insert");
        alter(&store, "UPDATE key_shares SET threshold = 1").await;
        assert!(matches!(
            store.activate("k", 0).await,
            Err(StoreError::Unauthenticated { .. })
        ));
        assert!(is_unauthenticated(store.get("k", 0).await));

        let store = fresh_store().await;
        store
            .insert(&share("k", 0, ShareStatus::Current))
            .await
            .expect("insert");
        store
            .stage_next(&share("k", 1, ShareStatus::Next))
            .await
            .expect("stage");
        alter(
            &store,
            "UPDATE key_shares SET participants = '[1,2]' WHERE epoch = 1",
        )
        .await;
        assert!(matches!(
            store.commit_epoch("k", 1, "t").await,
            Err(StoreError::Unauthenticated { .. })
        ));
        // Nothing switched.
        assert_eq!(
            store.get("k", 0).await.expect("get").map(|s| s.status),
            Some(ShareStatus::Current)
        );
    }

    #[tokio::test]
    async fn rows_are_bound_to_the_node_and_its_kek() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        let open = || SqliteShareStore::open(&path);
        open()
            .await
            .expect("open")
            .authenticated(auth(1))
            .insert(&share("k", 0, ShareStatus::Current))
            .await
            .expect("insert");
        let other_node = open().await.expect("open").authenticated(auth(2));
        assert!(is_unauthenticated(other_node.current("k").await));
        let other_kek = open()
            .await
            .expect("open")
            .authenticated(Kek::from_bytes(&[6; 32]).row_authenticator(1));
        assert!(is_unauthenticated(other_kek.current("k").await));
        let own = open().await.expect("open").authenticated(auth(1));
        assert_eq!(own.untagged_rows().await.expect("count"), 0);
        assert!(own.current("k").await.expect("own").is_some());
    }

    #[tokio::test]
    async fn a_store_without_the_authenticator_writes_no_shares() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        let keyless = SqliteShareStore::open(&path).await.expect("open");
        assert!(matches!(
            keyless.insert(&share("k", 0, ShareStatus::Pending)).await,
            Err(StoreError::NoRowKey)
        ));
        assert!(matches!(
            keyless.stage_next(&share("k", 1, ShareStatus::Next)).await,
            Err(StoreError::NoRowKey)
        ));
        assert!(matches!(
            keyless.activate("k", 0).await,
            Err(StoreError::NoRowKey)
        ));
        assert!(matches!(
            keyless.commit_epoch("k", 1, "t").await,
            Err(StoreError::NoRowKey)
        ));
        // It reads rows as they are (offline inspection).
        SqliteShareStore::open(&path)
            .await
            .expect("open")
            .authenticated(auth(1))
            .insert(&share("k", 0, ShareStatus::Current))
            .await
            .expect("insert");
        alter(&keyless, "UPDATE key_shares SET threshold = 1").await;
        assert_eq!(
            keyless
                .current("k")
                .await
                .expect("unchecked")
                .map(|s| s.threshold),
            Some(1)
        );
    }
}
