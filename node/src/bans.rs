//! DKLs23 bans, held and enforced by this node.
//!
//! When a DKLs23 check on a key's reusable pairwise state (the OT-based
//! multiplication) fails, the engine aborts with
//! `AbortKind::BanCounterparty` ([`ProtocolError::Banned`]): this node must
//! never run another session of that key with the counterparty, because
//! continuing lets it extract this node's share. The coordinator's
//! exclusion of the node is not enough — a compromised coordinator would
//! simply put the cheater in the next quorum — so the node keeps the ban
//! itself:
//!
//! - **Recorded** ([`Bans::record_failure`]) when any session of this node
//!   fails with a ban: the ban is written to the node's database first,
//!   then audited (`counterparty_banned`). Bans fail safe: if the audit
//!   write fails the ban still stands, and the failure is logged. Live
//!   signing sessions and DKGs of the key that include the banned node are
//!   dropped.
//! - **Enforced** ([`Bans::check_session`]) before an ECDSA signing
//!   session or a DKG of the key is opened — before the policy check, the
//!   share is unsealed or any randomness is drawn (FROST signing sessions
//!   skip the lookup: FROST never bans) — by refusing it with [`NodeError::Banned`]
//!   (`FAILED_PRECONDITION`, the banned nodes in `sigil-culprits` and
//!   `sigil-banned`, so the coordinator excludes them and retries without
//!   them), audited as `session_start` `refused:banned`.
//! - **Kept** across restarts (table `counterparty_bans`, migration
//!   `0003_counterparty_bans.sql`, in the node's state database) and
//!   readable over gRPC (`Node.ListBans`).
//! - **Lifted** only by [`lift_bans`], inside the transaction that commits a
//!   refreshed or reshared epoch of the key (fresh pairwise state for
//!   every party, or the banned node removed), or that drops this node's
//!   shares of the key. No operator call lifts a ban.
//!
//! The node store is SQLite only (there is no PostgreSQL node store), so
//! [`BanStore`] has one implementation, on [`SqliteShareStore`].

use std::sync::Arc;

use async_trait::async_trait;
use sigil_audit::Entry;
use sigil_protocol::{NodeId, ProtocolError};
use sqlx::{Row, SqliteConnection};

use crate::NodeError;
use crate::audit::{NodeAudit, SessionAudit};
use crate::sessions::Sessions;
use crate::store::{SqliteShareStore, StoreError};

/// A counterparty this node will never run a session of `key_id` with again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub key_id: String,
    /// The banned node.
    pub counterparty: u16,
    /// What the engine reported (the failed check, party index and node).
    pub reason: String,
    /// Hex id of the session that failed with the ban.
    pub session_id: String,
    /// RFC 3339.
    pub created_at: String,
}

/// Where a node keeps its bans.
#[async_trait]
pub trait BanStore: Send + Sync + 'static {
    /// Records `ban`. A ban already held for (key, counterparty) is kept as
    /// first recorded; returns whether this one is new.
    async fn record_ban(&self, ban: &Ban) -> Result<bool, StoreError>;
    /// The bans of `key_id` (ordered by counterparty).
    async fn bans_of(&self, key_id: &str) -> Result<Vec<Ban>, StoreError>;
    /// Every ban, or those of `key_id`, ordered by key and counterparty.
    async fn list_bans(&self, key_id: Option<&str>) -> Result<Vec<Ban>, StoreError>;
}

/// The columns of `counterparty_bans`, as a literal so queries stay static strings.
macro_rules! ban_columns {
    () => {
        "key_id, counterparty, reason, session_id, created_at"
    };
}

fn row_to_ban(row: &sqlx::sqlite::SqliteRow) -> Result<Ban, StoreError> {
    let counterparty: i64 = row.try_get("counterparty")?;
    Ok(Ban {
        key_id: row.try_get("key_id")?,
        counterparty: u16::try_from(counterparty)
            .map_err(|_| StoreError::Corrupt("banned counterparty out of range".into()))?,
        reason: row.try_get("reason")?,
        session_id: row.try_get("session_id")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl BanStore for SqliteShareStore {
    async fn record_ban(&self, ban: &Ban) -> Result<bool, StoreError> {
        let done = sqlx::query(concat!(
            "INSERT INTO counterparty_bans (",
            ban_columns!(),
            ") VALUES (?, ?, ?, ?, ?) ON CONFLICT (key_id, counterparty) DO NOTHING"
        ))
        .bind(&ban.key_id)
        .bind(i64::from(ban.counterparty))
        .bind(&ban.reason)
        .bind(&ban.session_id)
        .bind(&ban.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn bans_of(&self, key_id: &str) -> Result<Vec<Ban>, StoreError> {
        self.list_bans(Some(key_id)).await
    }

    async fn list_bans(&self, key_id: Option<&str>) -> Result<Vec<Ban>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            ban_columns!(),
            " FROM counterparty_bans WHERE (?1 IS NULL OR key_id = ?1) ORDER BY key_id, counterparty"
        ))
        .bind(key_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_ban).collect()
    }
}

/// Lifts every ban of `key_id` and returns them.
///
/// **Contract:** call it only inside the transaction that commits a
/// refreshed or reshared epoch of `key_id` (pass that transaction's
/// connection: `&mut tx`), after the new epoch's shares — and with them
/// fresh pairwise DKLs23 state for every party, or a participant set
/// without the banned node — are written, so that the bans and the state
/// they protect go away together or not at all. Record the lifted bans in
/// the audit record of that commit. Nothing else may lift a ban. An epoch
/// whose own sessions (the redistribution, its test signing) failed with a
/// ban is not committed, so it lifts nothing.
///
/// Refresh and reshare sessions, and the test signing of a `next` epoch,
/// are not refused by [`Bans::check_session`]: they are how a ban is lifted.
pub async fn lift_bans(conn: &mut SqliteConnection, key_id: &str) -> Result<Vec<Ban>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        ban_columns!(),
        " FROM counterparty_bans WHERE key_id = ? ORDER BY counterparty"
    ))
    .bind(key_id)
    .fetch_all(&mut *conn)
    .await?;
    let lifted = rows.iter().map(row_to_ban).collect::<Result<Vec<_>, _>>()?;
    sqlx::query("DELETE FROM counterparty_bans WHERE key_id = ?")
        .bind(key_id)
        .execute(&mut *conn)
        .await?;
    Ok(lifted)
}

/// `node 2 is banned` / `nodes 2, 5 are banned`, for [`NodeError::Banned`].
pub(crate) fn describe(banned: &[u16]) -> String {
    match banned {
        [one] => format!("node {one} is banned"),
        many => {
            let list: Vec<String> = many.iter().map(u16::to_string).collect();
            format!("nodes {} are banned", list.join(", "))
        }
    }
}

/// The node's bans with what recording and enforcing them needs. Cheap to clone.
#[derive(Clone)]
pub struct Bans {
    store: Arc<dyn BanStore>,
    audit: NodeAudit,
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for Bans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bans").finish_non_exhaustive()
    }
}

impl Bans {
    pub fn new(store: Arc<dyn BanStore>, audit: NodeAudit, sessions: Arc<Sessions>) -> Self {
        Self {
            store,
            audit,
            sessions,
        }
    }

    /// Refuses a session of `key_id` among `participants` if this node
    /// banned any of the others from the key. Fails closed: a ban that
    /// cannot be read refuses the session.
    pub async fn check_session(
        &self,
        key_id: &str,
        me: NodeId,
        participants: &[NodeId],
    ) -> Result<(), NodeError> {
        if key_id.is_empty() {
            return Ok(()); // no key named: the request is refused as invalid later
        }
        let bans = self.store.bans_of(key_id).await?;
        let hit: Vec<&Ban> = bans
            .iter()
            .filter(|b| {
                b.counterparty != me.get() && participants.iter().any(|p| p.get() == b.counterparty)
            })
            .collect();
        let Some(first) = hit.first() else {
            return Ok(());
        };
        Err(NodeError::Banned {
            key_id: key_id.to_owned(),
            banned: hit.iter().map(|b| b.counterparty).collect(),
            reason: format!(
                "{} (session {}, {}); only a key refresh or reshare lifts a DKLs23 ban",
                first.reason, first.session_id, first.created_at
            ),
        })
    }

    /// After a session of this node failed with `e`: if `e` is a DKLs23
    /// ban, stores it (first: bans fail safe), drops the key's other live
    /// sessions that include the banned node, then audits it. Failures are
    /// logged; the session's error stands either way.
    pub async fn record_failure(&self, session: &SessionAudit, e: &NodeError) {
        let NodeError::Protocol(ProtocolError::Banned { banned, reason }) = e else {
            return;
        };
        let ban = Ban {
            key_id: session.key_id.clone(),
            counterparty: banned.get(),
            reason: reason.clone(),
            session_id: session.session_id.clone(),
            created_at: crate::service::now_rfc3339(),
        };
        match self.store.record_ban(&ban).await {
            Ok(new) => {
                tracing::error!(key_id = %ban.key_id, counterparty = ban.counterparty, session = %ban.session_id, reason = %ban.reason, new, "DKLs23 ban: this node will never run a session of the key with the counterparty again")
            }
            Err(err) => {
                tracing::error!(key_id = %ban.key_id, counterparty = ban.counterparty, session = %ban.session_id, error = %err, "DKLs23 ban could NOT be stored; refuse the key's sessions with this counterparty by hand")
            }
        }
        // Sessions on the pairwise state the ban protects; not a refresh or
        // reshare (nor its test signing), which replaces that state.
        for dropped in self.sessions.remove_matching(|s| {
            matches!(s.audit.kind, "sign" | "dkg")
                && s.audit.key_id == ban.key_id
                && s.audit.quorum.contains(&ban.counterparty)
        }) {
            self.audit
                .session_aborted(
                    &dropped,
                    &format!("node {} was banned from the key", ban.counterparty),
                )
                .await;
        }
        if let Err(err) = self.audit.counterparty_banned(session, &ban).await {
            tracing::error!(key_id = %ban.key_id, counterparty = ban.counterparty, error = %err, "audit record of a DKLs23 ban lost; the ban is stored");
        }
    }

    /// Every ban, or those of `key_id`.
    pub async fn list(&self, key_id: Option<&str>) -> Result<Vec<Ban>, NodeError> {
        Ok(self.store.list_bans(key_id).await?)
    }
}

/// Wire form of a ban.
pub fn ban_to_wire(b: Ban) -> sigil_proto::v1::Ban {
    sigil_proto::v1::Ban {
        key_id: b.key_id,
        counterparty: u32::from(b.counterparty),
        reason: b.reason,
        session_id: b.session_id,
        created_at: b.created_at,
    }
}

/// The audit record of a new ban (see [`NodeAudit::counterparty_banned`]).
pub(crate) fn ban_entry(session: &SessionAudit, ban: &Ban) -> Entry {
    Entry::new(
        session.actor.clone(),
        crate::audit::actions::COUNTERPARTY_BANNED,
    )
    .key_id(ban.key_id.clone())
    .request_id(session.request_id.clone())
    .quorum(session.quorum.clone())
    .session_id(ban.session_id.clone())
    .error("banned")
    .culprits(vec![ban.counterparty])
    .detail(format!("{}: {}", session.kind, ban.reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(key_id: &str, counterparty: u16, session: &str) -> Ban {
        Ban {
            key_id: key_id.into(),
            counterparty,
            reason: format!("DKLs23 abort: OT consistency check failed ({session})"),
            session_id: session.into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn bans_are_kept_first_recorded_and_listed_per_key() {
        let store = SqliteShareStore::in_memory().await.expect("open");
        assert!(store.list_bans(None).await.expect("list").is_empty());
        assert!(store.record_ban(&ban("k1", 3, "s1")).await.expect("record"));
        // The same counterparty again keeps the first record.
        assert!(!store.record_ban(&ban("k1", 3, "s2")).await.expect("again"));
        assert!(store.record_ban(&ban("k1", 2, "s3")).await.expect("record"));
        assert!(store.record_ban(&ban("k2", 3, "s4")).await.expect("record"));
        assert_eq!(
            store.bans_of("k1").await.expect("of k1"),
            vec![ban("k1", 2, "s3"), ban("k1", 3, "s1")]
        );
        assert_eq!(
            store.list_bans(Some("k2")).await.expect("k2"),
            vec![ban("k2", 3, "s4")]
        );
        assert_eq!(store.list_bans(None).await.expect("all").len(), 3);
        assert!(store.bans_of("other").await.expect("none").is_empty());
    }

    #[tokio::test]
    async fn bans_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.db");
        SqliteShareStore::open(&path)
            .await
            .expect("open")
            .record_ban(&ban("k", 2, "s"))
            .await
            .expect("record");
        let reopened = SqliteShareStore::open(&path).await.expect("reopen");
        assert_eq!(
            reopened.bans_of("k").await.expect("bans"),
            vec![ban("k", 2, "s")]
        );
    }

    #[tokio::test]
    async fn bans_are_lifted_only_with_the_transaction_that_lifts_them() {
        let store = SqliteShareStore::in_memory().await.expect("open");
        for b in [ban("k", 2, "s1"), ban("k", 3, "s2"), ban("other", 2, "s3")] {
            store.record_ban(&b).await.expect("record");
        }
        // A commit that fails (rolled back) lifts nothing.
        let mut tx = store.pool.begin().await.expect("begin");
        assert_eq!(lift_bans(&mut tx, "k").await.expect("lift").len(), 2);
        tx.rollback().await.expect("rollback");
        assert_eq!(store.bans_of("k").await.expect("bans").len(), 2);
        // A committed one lifts the key's bans, and only that key's.
        let mut tx = store.pool.begin().await.expect("begin");
        let lifted = lift_bans(&mut tx, "k").await.expect("lift");
        tx.commit().await.expect("commit");
        assert_eq!(lifted, vec![ban("k", 2, "s1"), ban("k", 3, "s2")]);
        assert!(store.bans_of("k").await.expect("bans").is_empty());
        assert_eq!(
            store.list_bans(None).await.expect("all"),
            vec![ban("other", 2, "s3")]
        );
        // The counterparty can be banned again afterwards.
        assert!(store.record_ban(&ban("k", 2, "s4")).await.expect("again"));
    }

    fn n(id: u16) -> NodeId {
        NodeId::new(id).expect("nonzero")
    }

    /// Node 1's audit log (with a certificate from a fresh dev CA) beside
    /// `dir/node.db`.
    async fn node_audit(dir: &std::path::Path) -> NodeAudit {
        use sigil_tls::{Identity, ReloadableTls, TrustDomain};
        sigil_tls::install_crypto_provider();
        let domain = TrustDomain::new("sigil.test").expect("domain");
        let pki = sigil_tls::pki::PkiLayout::new(dir.join("pki"));
        pki.ensure(&domain, &[Identity::Node(1)], 1).expect("pki");
        let tls = ReloadableTls::load(pki.identity_files(&Identity::Node(1)), domain).expect("tls");
        let process = sigil_audit::ProcessAudit::open(
            sigil_audit::AuditOptions::new("node-1"),
            None,
            &dir.join("node.db"),
            tls,
        )
        .await
        .expect("audit log");
        NodeAudit::from_process(process)
    }

    fn signing_session(key_id: &str, quorum: &[u16], session_id: &str) -> SessionAudit {
        SessionAudit {
            kind: "sign",
            actor: "spiffe://sigil.test/coordinator".into(),
            key_id: key_id.into(),
            request_id: "idem-1".into(),
            digest: vec![7; 32],
            quorum: quorum.to_vec(),
            session_id: session_id.into(),
        }
    }

    fn banned_by_protocol(node: u16) -> NodeError {
        NodeError::Protocol(sigil_protocol::ProtocolError::Banned {
            banned: n(node),
            reason: "DKLs23 abort: OT consistency check failed".into(),
        })
    }

    #[tokio::test]
    async fn a_ban_from_a_failed_session_is_stored_audited_and_refuses_later_sessions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            SqliteShareStore::open(&dir.path().join("node.db"))
                .await
                .expect("open"),
        );
        let audit = node_audit(dir.path()).await;
        let sessions = Arc::new(Sessions::new(std::time::Duration::from_secs(60)));
        let bans = Bans::new(store.clone(), audit.clone(), sessions);
        bans.check_session("k", n(1), &[n(1), n(2)])
            .await
            .expect("nobody is banned yet");

        // Other failures ban nobody.
        let other = NodeError::Protocol(sigil_protocol::ProtocolError::Misbehaviour {
            culprits: vec![n(2)],
            reason: "bad share".into(),
        });
        bans.record_failure(&signing_session("k", &[1, 2], "s0"), &other)
            .await;
        assert!(store.list_bans(None).await.expect("list").is_empty());

        bans.record_failure(&signing_session("k", &[1, 2], "s1"), &banned_by_protocol(2))
            .await;
        let stored = store.bans_of("k").await.expect("bans");
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(
            (stored[0].counterparty, stored[0].session_id.as_str()),
            (2, "s1")
        );
        assert!(stored[0].reason.contains("OT consistency"), "{stored:?}");
        let records = audit
            .log()
            .query(
                &sigil_audit::Filter::default().action(crate::audit::actions::COUNTERPARTY_BANNED),
            )
            .await
            .expect("query");
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(
            (records[0].outcome.as_str(), records[0].culprits.as_slice()),
            ("error:banned", &[2u16][..])
        );
        assert_eq!(
            (records[0].key_id.as_str(), records[0].session_id.as_str()),
            ("k", "s1")
        );

        // Every later session of the key with node 2 is refused; others are not.
        let refused = bans
            .check_session("k", n(1), &[n(1), n(2), n(3)])
            .await
            .expect_err("a session with the banned node");
        assert!(
            matches!(&refused, NodeError::Banned { key_id, banned, .. } if key_id == "k" && banned == &[2]),
            "{refused:?}"
        );
        assert!(
            refused
                .to_string()
                .starts_with("node 2 is banned from key k by this node: "),
            "{refused}"
        );
        let status = tonic::Status::from(refused);
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        let md = status.metadata();
        assert_eq!(
            sigil_proto::convert::metadata::banned_from_metadata(md),
            vec![2]
        );
        assert_eq!(
            sigil_proto::convert::metadata::culprits_from_metadata(md),
            vec![2]
        );
        // Not a refusal of the request: the coordinator retries without node 2.
        assert!(md.get(sigil_proto::convert::metadata::REFUSAL).is_none());
        bans.check_session("k", n(1), &[n(1), n(3)])
            .await
            .expect("a quorum without the banned node");
        bans.check_session("other", n(1), &[n(1), n(2)])
            .await
            .expect("another key");
    }

    #[tokio::test]
    async fn bans_fail_safe_when_the_audit_log_is_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            SqliteShareStore::open(&dir.path().join("node.db"))
                .await
                .expect("open"),
        );
        let audit = node_audit(dir.path()).await;
        audit.log().stop().await.expect("stop the log");
        let sessions = Arc::new(Sessions::new(std::time::Duration::from_secs(60)));
        let bans = Bans::new(store.clone(), audit, sessions);
        bans.record_failure(&signing_session("k", &[1, 3], "s1"), &banned_by_protocol(3))
            .await;
        assert_eq!(store.bans_of("k").await.expect("bans").len(), 1);
        assert!(bans.check_session("k", n(1), &[n(1), n(3)]).await.is_err());
        // And across a reopen of the database.
        drop(bans);
        let reopened = SqliteShareStore::open(&dir.path().join("node.db"))
            .await
            .expect("reopen");
        assert_eq!(reopened.bans_of("k").await.expect("bans").len(), 1);
    }

    #[test]
    fn refusals_name_the_banned_nodes() {
        let e = NodeError::Banned {
            key_id: "key-1".into(),
            banned: vec![2],
            reason: "why".into(),
        };
        assert_eq!(
            e.to_string(),
            "node 2 is banned from key key-1 by this node: why"
        );
        assert_eq!(describe(&[2, 5]), "nodes 2, 5 are banned");
    }
}
