//! The node's policy ledger: the policy documents it enforces, the intents
//! it has accepted (replay protection) and the spends it has counted
//! against its own rolling limits. It lives in the node's state database
//! beside the shares, so it survives restarts exactly as they do.
//!
//! Spends are counted once per intent: the `intents` row and its `spends`
//! rows are written in one transaction, and an intent already counted is
//! never counted again (a retried session, a second `ReserveSpend`). An
//! intent id presented again with different bytes is a replay with a
//! forged intent and is refused.

use async_trait::async_trait;
use sigil_policy::Amount;
use sqlx::Row;

use crate::store::{SqliteShareStore, StoreError};

/// A policy document in force at this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPolicy {
    pub key_id: String,
    pub version: u64,
    pub document_sha256: Vec<u8>,
    /// The `SignedPolicy` as received (protobuf).
    pub signed_policy: Vec<u8>,
    pub applied_at: String,
}

/// What the ledger knows of one intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntentRecord {
    pub requester: String,
    pub intent_id: String,
    pub intent_sha256: Vec<u8>,
    pub key_id: String,
    pub not_after_ms: u64,
    pub counted: bool,
    pub sessions: u32,
}

/// A protocol session id this node accepts, remembered durably until
/// `forget_ms` (Unix milliseconds) so that a restarted node refuses it too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionUse {
    pub id: [u8; 16],
    pub forget_ms: u64,
}

/// Why an intent (or a session id) cannot be used again.
#[derive(Debug, thiserror::Error)]
pub enum IntentUse {
    #[error("session {} was already used", hex::encode(.id))]
    SessionReused { id: [u8; 16] },
    #[error("intent {intent_id} of {requester} was already used with different contents")]
    Forged {
        requester: String,
        intent_id: String,
    },
    #[error("intent {intent_id} of {requester} already opened {sessions} signing sessions here")]
    Replayed {
        requester: String,
        intent_id: String,
        sessions: u32,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub use sigil_policy::Usage;

/// Where a node keeps policies, intents and spends.
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// The highest applied version of `key_id`'s policy.
    async fn policy(&self, key_id: &str) -> Result<Option<StoredPolicy>, StoreError>;
    /// Stores a new version; refuses one not greater than the version in force
    /// (`StoreError::Rollback`), atomically.
    async fn insert_policy(&self, policy: &StoredPolicy) -> Result<(), StoreError>;
    async fn intent(
        &self,
        requester: &str,
        intent_id: &str,
    ) -> Result<Option<IntentRecord>, StoreError>;
    /// Counts `spends` for `intent` unless it is counted already (returns
    /// false then); one transaction.
    async fn count_spend(
        &self,
        intent: &IntentRecord,
        spends: &[(String, Amount)],
        at_ms: u64,
    ) -> Result<bool, IntentUse>;
    /// Records the signing session `session` (refusing a used id) and that
    /// `intent` opens one more session, refusing it beyond `max_sessions`,
    /// and counts `spends` for it if given and not counted yet — one
    /// transaction, committed with concurrent openings. Returns the sessions
    /// opened including this one, and whether the spends were counted now.
    async fn count_and_open(
        &self,
        session: &SessionUse,
        intent: &IntentRecord,
        spends: Option<&[(String, Amount)]>,
        at_ms: u64,
        max_sessions: u32,
    ) -> Result<(u32, bool), IntentUse>;
    /// Records a session id that opens no intent (key generation, reshare,
    /// drill), refusing a used one.
    async fn remember_session(&self, session: &SessionUse) -> Result<(), IntentUse>;
    /// What was counted for (`key_id`, `asset`) since `since_ms`.
    async fn usage(&self, key_id: &str, asset: &str, since_ms: u64) -> Result<Usage, StoreError>;
    /// Forgets intents that expired before `before_ms` (their replay is
    /// refused as expired) and session ids to forget before it.
    async fn prune_intents(&self, before_ms: u64) -> Result<u64, StoreError>;
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} out of range")))
}

fn to_u64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {what}")))
}

fn intent_row(row: &sqlx::sqlite::SqliteRow) -> Result<IntentRecord, StoreError> {
    Ok(IntentRecord {
        requester: row.try_get("requester")?,
        intent_id: row.try_get("intent_id")?,
        intent_sha256: row.try_get("intent_sha256")?,
        key_id: row.try_get("key_id")?,
        not_after_ms: to_u64(row.try_get("not_after_ms")?, "not_after_ms")?,
        counted: row.try_get::<i64, _>("counted")? == 1,
        sessions: u32::try_from(row.try_get::<i64, _>("sessions")?)
            .map_err(|_| StoreError::Corrupt("sessions out of range".into()))?,
    })
}

/// The columns of `intents`, as a literal so queries stay static strings.
macro_rules! intent_columns {
    () => {
        "requester, intent_id, intent_sha256, key_id, not_after_ms, counted, sessions"
    };
}

impl SqliteShareStore {
    /// Adds `intent`'s spends and marks it counted. Runs inside `tx`.
    pub(crate) async fn insert_spends(
        tx: &mut sqlx::SqliteConnection,
        intent: &IntentRecord,
        spends: &[(String, Amount)],
        at_ms: u64,
    ) -> Result<(), IntentUse> {
        for (asset, amount) in spends {
            sqlx::query(
                "INSERT INTO spends (key_id, asset, amount, intent_sha256, at_ms) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&intent.key_id)
            .bind(asset)
            .bind(amount.to_string())
            .bind(&intent.intent_sha256)
            .bind(to_i64(at_ms, "time")?)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
        sqlx::query("UPDATE intents SET counted = 1 WHERE requester = ? AND intent_id = ?")
            .bind(&intent.requester)
            .bind(&intent.intent_id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        Ok(())
    }

    /// Opens one more session of `intent` in one statement: inserts it with
    /// one session, or adds one to a stored intent with the same contents
    /// and fewer than `max_sessions` sessions. Returns the sessions opened
    /// so far (this one included) and whether its spend was already counted.
    /// Records `session` as used; refuses an id already recorded.
    pub(crate) async fn use_session(
        conn: &mut sqlx::SqliteConnection,
        session: &SessionUse,
    ) -> Result<(), IntentUse> {
        let fresh = sqlx::query(
            "INSERT INTO used_sessions (session_id, forget_ms) VALUES (?, ?) \
             ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(session.id.as_slice())
        .bind(to_i64(session.forget_ms, "time")?)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from)?
        .rows_affected()
            == 1;
        if fresh {
            Ok(())
        } else {
            Err(IntentUse::SessionReused { id: session.id })
        }
    }

    pub(crate) async fn open_session(
        conn: &mut sqlx::SqliteConnection,
        intent: &IntentRecord,
        now_ms: u64,
        max_sessions: u32,
    ) -> Result<(u32, bool), IntentUse> {
        let opened = sqlx::query(
            "INSERT INTO intents (requester, intent_id, intent_sha256, key_id, not_after_ms, counted, sessions, created_ms) \
             VALUES (?, ?, ?, ?, ?, 0, 1, ?) \
             ON CONFLICT (requester, intent_id) DO UPDATE SET sessions = sessions + 1 \
             WHERE intents.intent_sha256 = excluded.intent_sha256 AND intents.sessions < ? \
             RETURNING sessions, counted",
        )
        .bind(&intent.requester)
        .bind(&intent.intent_id)
        .bind(&intent.intent_sha256)
        .bind(&intent.key_id)
        .bind(to_i64(intent.not_after_ms, "not_after_ms")?)
        .bind(to_i64(now_ms, "time")?)
        .bind(i64::from(max_sessions))
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        if let Some(row) = opened {
            let sessions = u32::try_from(
                row.try_get::<i64, _>("sessions")
                    .map_err(StoreError::from)?,
            )
            .map_err(|_| StoreError::Corrupt("sessions out of range".into()))?;
            let counted = row.try_get::<i64, _>("counted").map_err(StoreError::from)? == 1;
            return Ok((sessions, counted));
        }
        // Refused: another intent under the same id, or its sessions are used up.
        let stored = sqlx::query(concat!(
            "SELECT ",
            intent_columns!(),
            " FROM intents WHERE requester = ? AND intent_id = ?"
        ))
        .bind(&intent.requester)
        .bind(&intent.intent_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::from)?;
        let stored = intent_row(&stored)?;
        if stored.intent_sha256 != intent.intent_sha256 {
            return Err(IntentUse::Forged {
                requester: intent.requester.clone(),
                intent_id: intent.intent_id.clone(),
            });
        }
        Err(IntentUse::Replayed {
            requester: intent.requester.clone(),
            intent_id: intent.intent_id.clone(),
            sessions: stored.sessions,
        })
    }

    /// Inserts `intent` if absent and returns the stored row, refusing the
    /// same id with other contents. Runs inside `tx`.
    async fn upsert_intent(
        tx: &mut sqlx::SqliteConnection,
        intent: &IntentRecord,
        now_ms: u64,
    ) -> Result<IntentRecord, IntentUse> {
        let existing = sqlx::query(concat!(
            "SELECT ",
            intent_columns!(),
            " FROM intents WHERE requester = ? AND intent_id = ?"
        ))
        .bind(&intent.requester)
        .bind(&intent.intent_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if let Some(row) = existing {
            let stored = intent_row(&row)?;
            if stored.intent_sha256 != intent.intent_sha256 {
                return Err(IntentUse::Forged {
                    requester: intent.requester.clone(),
                    intent_id: intent.intent_id.clone(),
                });
            }
            return Ok(stored);
        }
        sqlx::query(
            "INSERT INTO intents (requester, intent_id, intent_sha256, key_id, not_after_ms, counted, sessions, created_ms) VALUES (?, ?, ?, ?, ?, 0, 0, ?)",
        )
        .bind(&intent.requester)
        .bind(&intent.intent_id)
        .bind(&intent.intent_sha256)
        .bind(&intent.key_id)
        .bind(to_i64(intent.not_after_ms, "not_after_ms")?)
        .bind(to_i64(now_ms, "time")?)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        Ok(IntentRecord {
            counted: false,
            sessions: 0,
            ..intent.clone()
        })
    }
}

#[async_trait]
impl Ledger for SqliteShareStore {
    async fn policy(&self, key_id: &str) -> Result<Option<StoredPolicy>, StoreError> {
        let row = sqlx::query(
            "SELECT key_id, version, document_sha256, signed_policy, applied_at FROM policies WHERE key_id = ? ORDER BY version DESC LIMIT 1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(StoredPolicy {
                key_id: row.try_get("key_id")?,
                version: to_u64(row.try_get("version")?, "version")?,
                document_sha256: row.try_get("document_sha256")?,
                signed_policy: row.try_get("signed_policy")?,
                applied_at: row.try_get("applied_at")?,
            })
        })
        .transpose()
    }

    async fn insert_policy(&self, policy: &StoredPolicy) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM policies WHERE key_id = ?")
                .bind(&policy.key_id)
                .fetch_one(&mut *tx)
                .await?;
        if let Some(current) = current
            && to_u64(current, "version")? >= policy.version
        {
            return Err(StoreError::Rollback {
                key_id: policy.key_id.clone(),
                current: to_u64(current, "version")?,
                proposed: policy.version,
            });
        }
        sqlx::query(
            "INSERT INTO policies (key_id, version, document_sha256, signed_policy, applied_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&policy.key_id)
        .bind(to_i64(policy.version, "version")?)
        .bind(&policy.document_sha256)
        .bind(&policy.signed_policy)
        .bind(&policy.applied_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn intent(
        &self,
        requester: &str,
        intent_id: &str,
    ) -> Result<Option<IntentRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            intent_columns!(),
            " FROM intents WHERE requester = ? AND intent_id = ?"
        ))
        .bind(requester)
        .bind(intent_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(intent_row).transpose()
    }

    async fn count_spend(
        &self,
        intent: &IntentRecord,
        spends: &[(String, Amount)],
        at_ms: u64,
    ) -> Result<bool, IntentUse> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::from)?;
        let stored = Self::upsert_intent(&mut tx, intent, at_ms).await?;
        if stored.counted {
            return Ok(false);
        }
        Self::insert_spends(&mut tx, intent, spends, at_ms).await?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(true)
    }

    async fn count_and_open(
        &self,
        session: &SessionUse,
        intent: &IntentRecord,
        spends: Option<&[(String, Amount)]>,
        at_ms: u64,
        max_sessions: u32,
    ) -> Result<(u32, bool), IntentUse> {
        // Group-committed with the openings of concurrent sessions: one
        // transaction (and fsync) for all that queued meanwhile.
        self.opener
            .open(session, intent, spends, at_ms, max_sessions)
            .await
    }

    async fn remember_session(&self, session: &SessionUse) -> Result<(), IntentUse> {
        self.opener.remember(session).await
    }

    async fn usage(&self, key_id: &str, asset: &str, since_ms: u64) -> Result<Usage, StoreError> {
        let rows =
            sqlx::query("SELECT amount FROM spends WHERE key_id = ? AND asset = ? AND at_ms >= ?")
                .bind(key_id)
                .bind(asset)
                .bind(to_i64(since_ms, "time")?)
                .fetch_all(&self.pool)
                .await?;
        let mut usage = Usage {
            amount: Amount::default(),
            count: 0,
        };
        for row in rows {
            let text: String = row.try_get("amount")?;
            let amount: Amount = text
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("spend amount {text:?}")))?;
            usage.amount = usage
                .amount
                .checked_add(amount)
                .ok_or_else(|| StoreError::Corrupt("spend total overflows".into()))?;
            usage.count += 1;
        }
        Ok(usage)
    }

    async fn prune_intents(&self, before_ms: u64) -> Result<u64, StoreError> {
        let before = to_i64(before_ms, "time")?;
        let done = sqlx::query("DELETE FROM intents WHERE not_after_ms < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM used_sessions WHERE forget_ms < ?")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(id: &str, sha: u8) -> IntentRecord {
        IntentRecord {
            requester: "payments".into(),
            intent_id: id.into(),
            intent_sha256: vec![sha; 32],
            key_id: "key-1".into(),
            not_after_ms: 2_000,
            counted: false,
            sessions: 0,
        }
    }

    /// A session id not used before.
    fn fresh() -> SessionUse {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&n.to_be_bytes());
        SessionUse {
            id,
            forget_ms: 5_000,
        }
    }

    fn eth(n: u64) -> Vec<(String, Amount)> {
        vec![("evm:1/native".into(), Amount::from(n))]
    }

    #[tokio::test]
    async fn a_spend_is_counted_once_per_intent() {
        let store = SqliteShareStore::in_memory().await.expect("open");
        assert!(
            store
                .count_spend(&intent("a", 1), &eth(5), 100)
                .await
                .expect("count")
        );
        // The same intent again (a retried session, a second receipt): not counted twice.
        assert!(
            !store
                .count_spend(&intent("a", 1), &eth(5), 101)
                .await
                .expect("again")
        );
        assert!(
            store
                .count_spend(&intent("b", 2), &eth(7), 102)
                .await
                .expect("count b")
        );
        let usage = store
            .usage("key-1", "evm:1/native", 0)
            .await
            .expect("usage");
        assert_eq!((usage.amount, usage.count), (Amount::from(12u64), 2));
        // The window starts after the first spend: only b remains.
        let usage = store
            .usage("key-1", "evm:1/native", 101)
            .await
            .expect("usage");
        assert_eq!((usage.amount, usage.count), (Amount::from(7u64), 1));
        assert!(
            store
                .usage("key-1", "evm:5/native", 0)
                .await
                .expect("usage")
                .count
                == 0
        );
    }

    #[tokio::test]
    async fn an_intent_id_reused_with_other_contents_is_refused() {
        let store = SqliteShareStore::in_memory().await.expect("open");
        store
            .count_spend(&intent("a", 1), &eth(5), 100)
            .await
            .expect("count");
        assert!(matches!(
            store.count_spend(&intent("a", 9), &eth(50), 101).await,
            Err(IntentUse::Forged { .. })
        ));
        assert!(matches!(
            store
                .count_and_open(&fresh(), &intent("a", 9), None, 100, 3)
                .await,
            Err(IntentUse::Forged { .. })
        ));
        let usage = store
            .usage("key-1", "evm:1/native", 0)
            .await
            .expect("usage");
        assert_eq!(usage.amount, Amount::from(5u64));
    }

    #[tokio::test]
    async fn an_intent_opens_at_most_its_sessions_and_the_record_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        let store = SqliteShareStore::open(&path).await.expect("open");
        for n in 1..=3 {
            assert_eq!(
                store
                    .count_and_open(&fresh(), &intent("a", 1), None, 100, 3)
                    .await
                    .expect("open")
                    .0,
                n
            );
        }
        assert!(matches!(
            store
                .count_and_open(&fresh(), &intent("a", 1), None, 100, 3)
                .await,
            Err(IntentUse::Replayed { sessions: 3, .. })
        ));
        drop(store);
        let store = SqliteShareStore::open(&path).await.expect("reopen");
        assert!(matches!(
            store
                .count_and_open(&fresh(), &intent("a", 1), None, 100, 3)
                .await,
            Err(IntentUse::Replayed { .. })
        ));
        let known = store
            .intent("payments", "a")
            .await
            .expect("get")
            .expect("known");
        assert_eq!(known.sessions, 3);
        // Expired intents are forgotten (their replay is refused as expired).
        assert_eq!(store.prune_intents(2_001).await.expect("prune"), 1);
        assert!(store.intent("payments", "a").await.expect("get").is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_openings_committed_together_count_each_intent_once_and_refuse_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        let store = SqliteShareStore::open(&path).await.expect("open");
        // Ten intents opened four times each (at most three sessions), all
        // at once, plus a forgery of intent 0 among them.
        let mut tasks = tokio::task::JoinSet::new();
        for round in 0..4u8 {
            for i in 0..10u8 {
                let store = store.clone();
                tasks.spawn(async move {
                    let r = store
                        .count_and_open(
                            &fresh(),
                            &intent(&format!("i{i}"), i),
                            Some(&eth(10)),
                            100,
                            3,
                        )
                        .await;
                    (i, round, r)
                });
            }
        }
        let forger = store.clone();
        tasks.spawn(async move {
            let r = forger
                .count_and_open(&fresh(), &intent("i0", 99), Some(&eth(1_000)), 100, 3)
                .await;
            (99, 0, r)
        });
        let mut opened = [0u32; 10];
        let mut counted = [0u32; 10];
        let mut replayed = [0u32; 10];
        while let Some(joined) = tasks.join_next().await {
            let (i, _, result) = joined.expect("task");
            match (i, result) {
                (99, Err(IntentUse::Forged { .. })) => {}
                (99, other) => panic!("the forgery was not refused: {other:?}"),
                (i, Ok((_, now))) => {
                    opened[usize::from(i)] += 1;
                    counted[usize::from(i)] += u32::from(now);
                }
                (i, Err(IntentUse::Replayed { sessions: 3, .. })) => replayed[usize::from(i)] += 1,
                (i, Err(e)) => panic!("intent {i}: {e}"),
            }
        }
        assert_eq!(opened, [3; 10]);
        assert_eq!(counted, [1; 10]);
        assert_eq!(replayed, [1; 10]);
        drop(store);
        // Durable: a reopened store knows every count.
        let store = SqliteShareStore::open(&path).await.expect("reopen");
        let usage = store
            .usage("key-1", "evm:1/native", 0)
            .await
            .expect("usage");
        assert_eq!((usage.amount, usage.count), (Amount::from(100u64), 10));
    }

    #[tokio::test]
    async fn a_used_session_id_is_refused_after_a_restart_until_it_is_forgotten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        let store = SqliteShareStore::open(&path).await.expect("open");
        let signing = fresh();
        let dkg = fresh();
        store
            .count_and_open(&signing, &intent("a", 1), None, 100, 3)
            .await
            .expect("open");
        store.remember_session(&dkg).await.expect("remember");
        // A reused id is refused before its intent is looked at: the
        // intent opened no second session.
        assert!(matches!(
            store.count_and_open(&signing, &intent("b", 2), None, 100, 3).await,
            Err(IntentUse::SessionReused { id }) if id == signing.id
        ));
        assert!(store.intent("payments", "b").await.expect("get").is_none());
        drop(store);
        let store = SqliteShareStore::open(&path).await.expect("reopen");
        for used in [&signing, &dkg] {
            assert!(matches!(
                store.remember_session(used).await,
                Err(IntentUse::SessionReused { .. })
            ));
            assert!(matches!(
                store
                    .count_and_open(used, &intent("c", 3), None, 100, 3)
                    .await,
                Err(IntentUse::SessionReused { .. })
            ));
        }
        // Pruned once past `forget_ms` (the ids' sessions are long over).
        store.prune_intents(5_001).await.expect("prune");
        store.remember_session(&dkg).await.expect("forgotten");
    }

    #[tokio::test]
    async fn a_policy_version_must_grow() {
        let store = SqliteShareStore::in_memory().await.expect("open");
        let policy = |version| StoredPolicy {
            key_id: "key-1".into(),
            version,
            document_sha256: vec![version as u8; 32],
            signed_policy: vec![1, 2, 3],
            applied_at: "2026-12-01T00:00:00Z".into(),
        };
        assert!(store.policy("key-1").await.expect("get").is_none());
        store.insert_policy(&policy(2)).await.expect("v2");
        for stale in [1, 2] {
            assert!(matches!(
                store.insert_policy(&policy(stale)).await,
                Err(StoreError::Rollback { current: 2, .. })
            ));
        }
        store.insert_policy(&policy(3)).await.expect("v3");
        assert_eq!(
            store.policy("key-1").await.expect("get").map(|p| p.version),
            Some(3)
        );
    }
}
