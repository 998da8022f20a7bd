//! Group commit of the intent ledger's session openings.
//!
//! Every signing session a node joins first records its session id (so a
//! restarted node never accepts it again) and its intent in the ledger
//! (`Ledger::count_and_open`): replay protection that must be durable
//! before any nonce is drawn, and, for policies with rolling limits, the
//! spend counted with it. Other sessions (key generation, reshares, drills)
//! record only their id (`Ledger::remember_session`). Committed one by one, each opening
//! costs a WAL fsync and a trip through the connection pool; under load
//! most of a node's database time went there (`docs/performance.md`, Run 7).
//!
//! Here one task owns a dedicated connection, as the audit log's writer
//! does: openings queue on a channel, and whatever has queued while the
//! previous commit ran is applied in one `BEGIN IMMEDIATE … COMMIT`, one
//! fsync for the lot. Each caller gets its own answer only after the commit
//! that holds its row, so nothing is reported opened that is not durable.
//!
//! | outcome of an opening in a batch | effect on the batch |
//! |---|---|
//! | opened (and counted) | committed with the others |
//! | refused (`SessionReused`, `Forged`, `Replayed`) | none: the refused statement changed nothing (a session id recorded before its intent was refused stays used, harmlessly) |
//! | store error | the batch is rolled back; every opening in it fails with the error (none was reported opened) |
//! | `COMMIT` fails | likewise |

use sigil_policy::Amount;
use sqlx::{Connection as _, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::ledger::{IntentRecord, IntentUse, SessionUse};
use crate::store::{SqliteShareStore, StoreError};

/// Openings applied in one transaction at most.
const MAX_BATCH: usize = 256;
/// Openings waiting for the writer at most; callers beyond wait to queue.
const QUEUE: usize = 4096;

/// The handle callers queue openings on; the writer task stops when every
/// handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Opener {
    queue: mpsc::Sender<Opening>,
}

#[derive(Debug)]
struct Opening {
    session: SessionUse,
    /// The signing session's intent; `None` for other sessions.
    intent: Option<IntentOpening>,
    reply: oneshot::Sender<Result<(u32, bool), IntentUse>>,
}

#[derive(Debug)]
struct IntentOpening {
    intent: IntentRecord,
    spends: Option<Vec<(String, Amount)>>,
    at_ms: u64,
    max_sessions: u32,
}

impl Opener {
    /// Takes one connection out of `pool` for the writer and starts it.
    pub(crate) async fn start(pool: &SqlitePool) -> Result<Self, StoreError> {
        let conn = pool.acquire().await?.detach();
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(conn, rx));
        Ok(Self { queue })
    }

    /// Records `session` and opens one more session of `intent` (see
    /// `Ledger::count_and_open`), answering once the transaction holding
    /// them is committed.
    pub(crate) async fn open(
        &self,
        session: &SessionUse,
        intent: &IntentRecord,
        spends: Option<&[(String, Amount)]>,
        at_ms: u64,
        max_sessions: u32,
    ) -> Result<(u32, bool), IntentUse> {
        let intent = IntentOpening {
            intent: intent.clone(),
            spends: spends.map(<[_]>::to_vec),
            at_ms,
            max_sessions,
        };
        self.send(session, Some(intent)).await
    }

    /// Records `session` alone (see `Ledger::remember_session`).
    pub(crate) async fn remember(&self, session: &SessionUse) -> Result<(), IntentUse> {
        self.send(session, None).await.map(|_| ())
    }

    async fn send(
        &self,
        session: &SessionUse,
        intent: Option<IntentOpening>,
    ) -> Result<(u32, bool), IntentUse> {
        let (reply, answer) = oneshot::channel();
        let opening = Opening {
            session: session.clone(),
            intent,
            reply,
        };
        self.queue.send(opening).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> IntentUse {
    IntentUse::Store(StoreError::Batch(
        "the intent ledger's writer stopped".into(),
    ))
}

async fn write(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Opening>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit(&mut conn, &mut batch).await;
    }
    let _ = conn.close().await;
}

/// Applies and commits `batch` (draining it), then answers each opening.
async fn commit(conn: &mut SqliteConnection, batch: &mut Vec<Opening>) {
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        fail(batch, &format!("BEGIN: {e}"));
        return;
    }
    let mut results = Vec::with_capacity(batch.len());
    let mut broken = None;
    for o in batch.iter() {
        match apply(conn, o).await {
            Err(IntentUse::Store(e)) => {
                broken = Some(e.to_string());
                break;
            }
            result => results.push(result),
        }
    }
    if let Some(reason) = broken {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        tracing::warn!(openings = batch.len(), %reason, "intent ledger batch rolled back");
        fail(batch, &reason);
        return;
    }
    if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        tracing::warn!(openings = batch.len(), error = %e, "intent ledger commit failed");
        fail(batch, &format!("COMMIT: {e}"));
        return;
    }
    for (o, result) in batch.drain(..).zip(results) {
        let _ = o.reply.send(result);
    }
}

/// One opening inside the batch's transaction: the session id first (a
/// used one refuses the rest), then the intent, then its spends.
async fn apply(conn: &mut SqliteConnection, o: &Opening) -> Result<(u32, bool), IntentUse> {
    SqliteShareStore::use_session(conn, &o.session).await?;
    let Some(i) = &o.intent else {
        return Ok((0, false));
    };
    let (sessions, counted) =
        SqliteShareStore::open_session(conn, &i.intent, i.at_ms, i.max_sessions).await?;
    match &i.spends {
        Some(spends) if !counted => {
            SqliteShareStore::insert_spends(conn, &i.intent, spends, i.at_ms).await?;
            Ok((sessions, true))
        }
        _ => Ok((sessions, false)),
    }
}

fn fail(batch: &mut Vec<Opening>, reason: &str) {
    for o in batch.drain(..) {
        let _ = o
            .reply
            .send(Err(IntentUse::Store(StoreError::Batch(reason.to_owned()))));
    }
}
