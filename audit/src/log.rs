//! The audit log of one process, in that process's SQLite database.
//!
//! # Fail closed, group-committed
//!
//! [`AuditLog::append`] returns only once its record is durably committed
//! (WAL, `synchronous = FULL`). One writer task owns a dedicated connection:
//! it drains the queue of pending appends, writes all of them in one
//! `BEGIN IMMEDIATE` transaction, chaining each to the one before, commits,
//! and only then acknowledges each. Many concurrent appends thus cost one
//! fsync, not one each. A record appended with [`Durability::Deferred`]
//! is committed the same way but does not make its batch fsync: it becomes
//! durable against power loss with the next synced commit (for records that
//! are always followed by a synced one, such as a signing session's start).
//! Only an `fsync` failure goes unnoticed for such a record until that
//! next synced commit, which then fails closed.
//!
//! If the transaction fails (database locked past `busy_timeout`, disk full,
//! read-only, I/O error), every append of that batch gets
//! [`AuditError::Unavailable`] and the in-memory head stays at the last
//! committed record, so the next batch chains on correctly. The caller then
//! refuses the operation it was about to do: nothing happens unaudited.
//! After [`AuditLog::stop`] every append is refused the same way.
//!
//! # Reads and heads
//!
//! Queries run on a small separate pool (WAL readers do not block the
//! writer). [`AuditLog::sign_head`] goes through the writer, so a head
//! always names a committed record, and stores the signed head in
//! `audit_heads`. The daemon calls it on a timer; [`AuditLog::stop`] signs a
//! last one.
//!
//! # Schema
//!
//! Tables `audit_records` and `audit_heads` (see `audit/migrations/`), with
//! triggers refusing UPDATE and DELETE. Migrations are tracked in their own
//! table, `_sigil_audit_migrations`, so they never mix with the host
//! daemon's `sqlx` migrations in the same database. Use one `AuditLog` per
//! database.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row, SqlitePool};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::AuditError;
use crate::filter::{DEFAULT_LIMIT, Filter, MAX_LIMIT};
use crate::head::{HeadLink, HeadSigner, SignedHead};
use crate::record::{Entry, Hash, Record, genesis_hash};
use crate::timefmt;
use crate::verify::{Finding, FindingKind, Report, verify_log};
use crate::writer::{Command, Stats, Writer, last_record};

/// Pages through the records a filter matches, [`DEFAULT_LIMIT`] at a
/// time, until the filter's limit (unset or 0: every record) is reached.
struct Pager {
    filter: Filter,
    remaining: u64,
}

impl Pager {
    fn new(filter: &Filter) -> Self {
        Self {
            remaining: match filter.limit {
                None | Some(0) => u64::MAX,
                Some(n) => u64::from(n),
            },
            filter: filter.clone(),
        }
    }

    /// The next page; empty when there is no more.
    async fn next(&mut self, log: &AuditLog) -> Result<Vec<Record>, AuditError> {
        if self.remaining == 0 {
            return Ok(Vec::new());
        }
        self.filter.limit =
            Some(u32::try_from(self.remaining.min(u64::from(DEFAULT_LIMIT))).unwrap_or(1));
        let records = log.query(&self.filter).await?;
        if let Some(last) = records.last() {
            self.filter.after_sequence = Some(last.sequence);
        }
        self.remaining = self.remaining.saturating_sub(records.len() as u64);
        Ok(records)
    }
}

/// Settings of an [`AuditLog`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditOptions {
    /// This process's name in its records: `coordinator` or `node-<id>`.
    pub process: String,
    /// How long a write waits for a database lock held by someone else
    /// before the batch fails (and its appends are refused). Default 5 s.
    pub busy_timeout: Duration,
    /// Most records committed in one transaction. Default 1024.
    pub max_batch: usize,
    /// Appends queued for the writer before `append` waits. Default 8192.
    pub queue_capacity: usize,
}

impl AuditOptions {
    pub fn new(process: impl Into<String>) -> Self {
        Self {
            process: process.into(),
            busy_timeout: Duration::from_secs(5),
            max_batch: 1024,
            queue_capacity: 8192,
        }
    }

    pub fn busy_timeout(mut self, busy_timeout: Duration) -> Self {
        self.busy_timeout = busy_timeout;
        self
    }

    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    pub fn queue_capacity(mut self, queue_capacity: usize) -> Self {
        self.queue_capacity = queue_capacity;
        self
    }

    fn validate(&self) -> Result<(), AuditError> {
        let p = &self.process;
        let valid = !p.is_empty()
            && p.len() <= 64
            && p.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if !valid {
            return Err(AuditError::InvalidOptions(format!(
                "process name {p:?} must be 1-64 of [a-z0-9._-]"
            )));
        }
        if self.max_batch == 0 || self.queue_capacity == 0 {
            return Err(AuditError::InvalidOptions(
                "max_batch and queue_capacity must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// The last committed record: its sequence (0 for an empty log) and hash
/// (the genesis hash for an empty log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub sequence: u64,
    pub hash: Hash,
}

/// When an append counts as done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Committed and fsync'd: survives a power loss. What fail-closed
    /// records need before the operation they record takes effect.
    #[default]
    Synced,
    /// Committed to the WAL without an fsync of its own: visible at once and
    /// survives a crash of the process, and becomes durable against power
    /// loss with the next synced commit of the same log (any later synced
    /// append covers every earlier record). For a record that refuses an
    /// operation when it cannot be written, and is always followed by a
    /// synced record before anything it precedes leaves the process — a
    /// signing session's start (its share record is synced). If the batch
    /// also holds a synced record, the whole batch is synced.
    Deferred,
}

/// Counters of the writer task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: u64,
    /// Records committed.
    pub records: u64,
    /// Transactions that failed (their appends were refused).
    pub failed_batches: u64,
    /// Appends refused because their transaction failed.
    pub failed_records: u64,
    /// Committed transactions that were fsync'd (the rest held only
    /// [`Durability::Deferred`] records).
    pub synced_batches: u64,
}

/// The audit log of one process. Cheap to clone; every clone appends to the
/// same log through the same writer.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    process: String,
    pool: SqlitePool,
    sender: Mutex<Option<mpsc::Sender<Command>>>,
    head: watch::Receiver<Head>,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("process", &self.inner.process)
            .field("head", &*self.inner.head.borrow())
            .finish_non_exhaustive()
    }
}

fn migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.dangerous_set_table_name("_sigil_audit_migrations");
    m
}

fn unavailable(reason: impl std::fmt::Display) -> AuditError {
    AuditError::Unavailable(reason.to_string())
}

impl AuditLog {
    /// Opens (creating if needed) the log in the SQLite database at `path`
    /// (WAL, `synchronous = FULL`); by default a daemon's `<stem>-audit.db`.
    pub async fn open(
        path: &Path,
        options: AuditOptions,
        signer: Arc<dyn HeadSigner>,
    ) -> Result<Self, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| AuditError::Database(sqlx::Error::Io(e)))?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        Self::open_with(connect, options, signer).await
    }

    /// A log in a private in-memory database (tests, benchmarks). Nothing is durable.
    pub async fn open_in_memory(
        options: AuditOptions,
        signer: Arc<dyn HeadSigner>,
    ) -> Result<Self, AuditError> {
        let connect = SqliteConnectOptions::from_str("sqlite::memory:")?;
        Self::open_with(connect, options, signer).await
    }

    /// Opens the log with explicit connection options; `synchronous = FULL`
    /// and the busy timeout of `options` are applied on top.
    pub async fn open_with(
        connect: SqliteConnectOptions,
        options: AuditOptions,
        signer: Arc<dyn HeadSigner>,
    ) -> Result<Self, AuditError> {
        Self::open_inner(connect, options, signer, true).await
    }

    /// Opens an existing log read-only, without touching its schema (an
    /// older log verifies as it is): for auditors reading a database
    /// directly. [`AuditError::NoLog`] if the file holds no audit log;
    /// every append and head signature is refused.
    pub async fn open_read_only(
        path: &Path,
        options: AuditOptions,
        signer: Arc<dyn HeadSigner>,
    ) -> Result<Self, AuditError> {
        let connect = SqliteConnectOptions::new().filename(path).read_only(true);
        Self::open_inner(connect, options, signer, false).await
    }

    async fn open_inner(
        connect: SqliteConnectOptions,
        options: AuditOptions,
        signer: Arc<dyn HeadSigner>,
        migrate: bool,
    ) -> Result<Self, AuditError> {
        options.validate()?;
        let connect = connect
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.busy_timeout);
        // The writer's connection first, alone: on a new file it switches the
        // database to WAL, which takes a lock SQLite's busy handler does not
        // wait for, so a pool connection opening at the same moment would
        // fail with "database is locked".
        let mut conn = connect.connect().await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect.clone())
            .await?;
        if migrate {
            migrator().run(&pool).await?;
        } else {
            let tables: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
                 AND name IN ('audit_records', 'audit_heads')",
            )
            .fetch_one(&pool)
            .await?;
            if tables != 2 {
                return Err(AuditError::NoLog(
                    "a Sigil process keeps its log in <stem>-audit.db beside its state database"
                        .into(),
                ));
            }
        }

        let last = last_record(&mut conn).await?;
        let (head, last_time) = match last {
            Some(last) => {
                if last.process != options.process {
                    return Err(AuditError::ProcessMismatch {
                        expected: options.process,
                        found: last.process,
                    });
                }
                (
                    Head {
                        sequence: last.sequence,
                        hash: last.hash,
                    },
                    timefmt::parse_canonical(&last.timestamp),
                )
            }
            None => (
                Head {
                    sequence: 0,
                    hash: genesis_hash(&options.process),
                },
                None,
            ),
        };

        let (head_tx, head_rx) = watch::channel(head);
        let (tx, rx) = mpsc::channel(options.queue_capacity);
        let stats = Arc::new(Stats::default());
        let writer = Writer {
            process: options.process.clone(),
            connect,
            conn: Some(conn),
            synchronous: None,
            head,
            last_time: last_time.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            head_tx,
            signer,
            stats: Arc::clone(&stats),
            max_batch: options.max_batch,
        };
        let handle = tokio::spawn(writer.run(rx));
        Ok(Self {
            inner: Arc::new(Inner {
                process: options.process,
                pool,
                sender: Mutex::new(Some(tx)),
                head: head_rx,
                writer: tokio::sync::Mutex::new(Some(handle)),
                stats,
            }),
        })
    }

    pub fn process(&self) -> &str {
        &self.inner.process
    }

    /// The last committed record's sequence and hash.
    pub fn head(&self) -> Head {
        *self.inner.head.borrow()
    }

    /// Notified after every commit with the new head: wait for records
    /// without polling.
    pub fn subscribe(&self) -> watch::Receiver<Head> {
        self.inner.head.clone()
    }

    /// Counters of the writer (batches and records committed or refused).
    pub fn stats(&self) -> WriterStats {
        let s = &self.inner.stats;
        WriterStats {
            batches: s.batches.load(Ordering::Relaxed),
            records: s.records.load(Ordering::Relaxed),
            failed_batches: s.failed_batches.load(Ordering::Relaxed),
            failed_records: s.failed_records.load(Ordering::Relaxed),
            synced_batches: s.synced_batches.load(Ordering::Relaxed),
        }
    }

    /// False once [`AuditLog::stop`] has been called.
    pub fn is_running(&self) -> bool {
        self.sender().is_ok()
    }

    fn sender(&self) -> Result<mpsc::Sender<Command>, AuditError> {
        self.inner
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| unavailable("the audit log is stopped"))
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, AuditError>>) -> Command,
    ) -> Result<T, AuditError> {
        let sender = self.sender()?;
        let (ack, done) = oneshot::channel();
        sender
            .send(make(ack))
            .await
            .map_err(|_| unavailable("the audit log is stopped"))?;
        drop(sender);
        done.await
            .map_err(|_| unavailable("the audit writer exited"))?
    }

    /// Appends a record and returns it once it is durably committed.
    ///
    /// [`AuditError::Unavailable`] means the record is not stored and the
    /// audited operation must be refused. [`AuditError::InvalidEntry`] is a
    /// bug in the caller. If the returned future is dropped after the entry
    /// was queued, the record may still be written.
    pub async fn append(&self, entry: Entry) -> Result<Record, AuditError> {
        self.append_with(entry, Durability::Synced).await
    }

    /// [`AuditLog::append`] with an explicit [`Durability`]: with
    /// [`Durability::Deferred`] the record is committed (or refused, as any
    /// append) but its batch is not fsync'd for it.
    pub async fn append_with(
        &self,
        entry: Entry,
        durability: Durability,
    ) -> Result<Record, AuditError> {
        let entry = entry.normalize()?;
        self.call(|ack| Command::Append {
            entry: Box::new(entry),
            durability,
            ack,
        })
        .await
    }

    /// Signs the current head with the process's key and stores it.
    pub async fn sign_head(&self) -> Result<SignedHead, AuditError> {
        self.call(|ack| Command::SignHead { ack }).await
    }

    /// Stops the log: appends queued so far are committed, a final head is
    /// signed and stored and returned; every later append (and a second
    /// `stop`) is refused with [`AuditError::Unavailable`]. Append a
    /// `process_stop` record first if the daemon wants one.
    pub async fn stop(&self) -> Result<SignedHead, AuditError> {
        let sender = self
            .inner
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| unavailable("the audit log is already stopped"))?;
        let (ack, done) = oneshot::channel();
        let sent = sender.send(Command::Stop { ack }).await;
        drop(sender);
        let result = match sent {
            Ok(()) => done
                .await
                .map_err(|_| unavailable("the audit writer exited"))
                .and_then(|r| r),
            Err(_) => Err(unavailable("the audit writer exited")),
        };
        if let Some(handle) = self.inner.writer.lock().await.take()
            && let Err(e) = handle.await
        {
            tracing::error!(error = %e, "audit writer task failed");
        }
        result
    }

    /// Records matching `filter`, in sequence order, at most
    /// [`Filter::effective_limit`].
    pub async fn query(&self, filter: &Filter) -> Result<Vec<Record>, AuditError> {
        let mut q = filter.select()?;
        let rows = q.build().fetch_all(&self.inner.pool).await?;
        rows.iter()
            .map(|row| {
                row_to_record(row).map_err(|reason| AuditError::Corrupt {
                    sequence: row.try_get("sequence").unwrap_or(-1),
                    reason,
                })
            })
            .collect()
    }

    /// Writes the records matching `filter` as JSON lines, in sequence
    /// order. Unlike [`AuditLog::query`], an unset limit exports every
    /// matching record (a set limit is not capped). Returns the number written.
    pub async fn export_jsonl<W: std::io::Write>(
        &self,
        filter: &Filter,
        mut out: W,
    ) -> Result<u64, AuditError> {
        let mut pages = Pager::new(filter);
        let mut written = 0;
        loop {
            let records = pages.next(self).await?;
            if records.is_empty() {
                break;
            }
            for r in &records {
                writeln!(out, "{}", r.to_json_line())?;
            }
            written += records.len() as u64;
        }
        out.flush()?;
        Ok(written)
    }

    /// Streams the records matching `filter`, in sequence order, with the
    /// limit rules of [`AuditLog::export_jsonl`]: a bad filter is refused
    /// here, then a background task pages through the log and sends each
    /// record, ending after the last one or after sending the first error.
    /// Dropping the receiver stops it.
    pub fn export(
        &self,
        filter: &Filter,
    ) -> Result<mpsc::Receiver<Result<Record, AuditError>>, AuditError> {
        filter.select()?;
        let (tx, rx) = mpsc::channel(64);
        let log = self.clone();
        let mut pages = Pager::new(filter);
        tokio::spawn(async move {
            loop {
                match pages.next(&log).await {
                    Ok(records) if records.is_empty() => return,
                    Ok(records) => {
                        for r in records {
                            if tx.send(Ok(r)).await.is_err() {
                                return; // the reader went away
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    /// The latest `limit` signed heads (unset or 0: [`DEFAULT_LIMIT`],
    /// capped at [`MAX_LIMIT`]), oldest first.
    pub async fn signed_heads(&self, limit: Option<u32>) -> Result<Vec<SignedHead>, AuditError> {
        let limit = match limit {
            None | Some(0) => DEFAULT_LIMIT,
            Some(n) => n.min(MAX_LIMIT),
        };
        let rows = sqlx::query(concat!(
            "SELECT ",
            head_columns!(),
            " FROM audit_heads ORDER BY id DESC LIMIT ?"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.inner.pool)
        .await?;
        let mut heads = rows
            .iter()
            .map(|row| row_to_head(row).map(|(_, h)| h))
            .collect::<Result<Vec<_>, _>>()?;
        heads.reverse();
        Ok(heads)
    }

    /// The most recently signed head, if any.
    pub async fn latest_head(&self) -> Result<Option<SignedHead>, AuditError> {
        Ok(self.signed_heads(Some(1)).await?.pop())
    }

    /// Every signed head, oldest first.
    pub async fn all_signed_heads(&self) -> Result<Vec<SignedHead>, AuditError> {
        let mut out = Vec::new();
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(concat!(
                "SELECT ",
                head_columns!(),
                " FROM audit_heads WHERE id > ? ORDER BY id LIMIT ?"
            ))
            .bind(after)
            .bind(i64::from(DEFAULT_LIMIT))
            .fetch_all(&self.inner.pool)
            .await?;
            if rows.is_empty() {
                return Ok(out);
            }
            for row in &rows {
                let (id, head) = row_to_head(row)?;
                after = id;
                out.push(head);
            }
        }
    }

    /// Writes every signed head as JSON lines, oldest first. Returns the number written.
    pub async fn export_heads_jsonl<W: std::io::Write>(
        &self,
        mut out: W,
    ) -> Result<u64, AuditError> {
        let heads = self.all_signed_heads().await?;
        for h in &heads {
            writeln!(out, "{}", h.to_json_line())?;
        }
        out.flush()?;
        Ok(heads.len() as u64)
    }

    /// Reads the whole log and its heads from the database and verifies
    /// them ([`verify_log`]). Rows that no longer decode are findings too.
    pub async fn verify(
        &self,
        verifier: &dyn crate::head::HeadVerifier,
    ) -> Result<Report, AuditError> {
        let mut records = Vec::new();
        let mut undecodable = Vec::new();
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(concat!(
                "SELECT ",
                record_columns!(),
                " FROM audit_records WHERE sequence > ? ORDER BY sequence LIMIT ?"
            ))
            .bind(after)
            .bind(i64::from(DEFAULT_LIMIT))
            .fetch_all(&self.inner.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let sequence: i64 = row.try_get("sequence")?;
                after = sequence;
                match row_to_record(row) {
                    Ok(r) => records.push(r),
                    Err(reason) => undecodable.push(Finding {
                        process: self.inner.process.clone(),
                        sequence: u64::try_from(sequence).unwrap_or(0),
                        kind: FindingKind::Undecodable,
                        reason,
                    }),
                }
            }
        }
        let heads = self.all_signed_heads().await?;
        let mut report = verify_log(&self.inner.process, &records, &heads, verifier);
        report.findings.splice(0..0, undecodable);
        Ok(report)
    }

    /// Runs `sql` on the writer's own connection, between batches.
    #[cfg(test)]
    async fn execute_on_writer(&self, sql: &'static str) -> Result<(), AuditError> {
        self.call(|ack| Command::Execute { sql, ack }).await
    }
}

fn row_to_record(row: &SqliteRow) -> Result<Record, String> {
    let get_err = |e: sqlx::Error| e.to_string();
    let sequence: i64 = row.try_get("sequence").map_err(get_err)?;
    let hash = |column: &str| -> Result<Hash, String> {
        let bytes: Vec<u8> = row.try_get(column).map_err(get_err)?;
        bytes
            .try_into()
            .map_err(|_| format!("{column} is not 32 bytes"))
    };
    let nodes = |column: &str| -> Result<Vec<u16>, String> {
        let text: String = row.try_get(column).map_err(get_err)?;
        serde_json::from_str(&text).map_err(|e| format!("{column}: {e}"))
    };
    Ok(Record {
        process: row.try_get("process").map_err(get_err)?,
        sequence: u64::try_from(sequence).map_err(|_| "negative sequence".to_owned())?,
        timestamp: row.try_get("timestamp").map_err(get_err)?,
        actor: row.try_get("actor").map_err(get_err)?,
        action: row.try_get("action").map_err(get_err)?,
        key_id: row.try_get("key_id").map_err(get_err)?,
        request_id: row.try_get("request_id").map_err(get_err)?,
        digest: row.try_get("digest").map_err(get_err)?,
        quorum: nodes("quorum")?,
        session_id: row.try_get("session_id").map_err(get_err)?,
        outcome: row.try_get("outcome").map_err(get_err)?,
        culprits: nodes("culprits")?,
        detail: row.try_get("detail").map_err(get_err)?,
        previous_hash: hash("previous_hash")?,
        record_hash: hash("record_hash")?,
    })
}

pub(crate) fn row_to_head(row: &SqliteRow) -> Result<(i64, SignedHead), AuditError> {
    let id: i64 = row.try_get("id")?;
    let corrupt = |reason: String| AuditError::Corrupt {
        sequence: row.try_get("sequence").unwrap_or(-1),
        reason: format!("signed head {id}: {reason}"),
    };
    let sequence: i64 = row.try_get("sequence")?;
    let hash: Vec<u8> = row.try_get("head_hash")?;
    let chain: String = row.try_get("certificate_chain")?;
    let chain: Vec<String> =
        serde_json::from_str(&chain).map_err(|e| corrupt(format!("certificate_chain: {e}")))?;
    let certificate_chain = chain
        .iter()
        .map(hex::decode)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(format!("certificate_chain: {e}")))?;
    // Absent in a legacy database opened read-only (no migration), NULL
    // in rows written before heads were chained: a legacy head either way.
    let index: Option<i64> = row.try_get("head_index").ok().flatten();
    let previous: Option<Vec<u8>> = row.try_get("previous_head").ok().flatten();
    let link = match (index, previous) {
        (Some(index), Some(previous)) => Some(HeadLink {
            index: u64::try_from(index).map_err(|_| corrupt("negative head index".into()))?,
            previous: previous
                .try_into()
                .map_err(|_| corrupt("previous_head is not 32 bytes".into()))?,
        }),
        (None, None) => None,
        _ => {
            return Err(corrupt(
                "head_index and previous_head must be set together".into(),
            ));
        }
    };
    Ok((
        id,
        SignedHead {
            process: row.try_get("process")?,
            sequence: u64::try_from(sequence).map_err(|_| corrupt("negative sequence".into()))?,
            head_hash: hash
                .try_into()
                .map_err(|_| corrupt("head_hash is not 32 bytes".into()))?,
            timestamp: row.try_get("timestamp")?,
            signature: row.try_get("signature")?,
            certificate_chain,
            link,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{HeadSignature, SignError};
    use crate::record::action;

    /// Signs with nothing; these tests do not verify heads.
    struct NullSigner;
    impl HeadSigner for NullSigner {
        fn sign_head(&self, _message: &[u8]) -> Result<HeadSignature, SignError> {
            Ok(HeadSignature {
                signature: vec![0],
                certificate_chain: vec![],
            })
        }
    }

    fn entry(n: usize) -> Entry {
        Entry::new("spiffe://sigil.local/client/t", action::REQUEST).request_id(format!("r{n}"))
    }

    /// `PRAGMA query_only` on the writer's connection makes every commit
    /// fail; appends are refused and the head stays put, then recover.
    #[tokio::test]
    async fn query_only_writer_fails_closed_and_recovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open(
            &dir.path().join("audit.db"),
            AuditOptions::new("node-1"),
            Arc::new(NullSigner),
        )
        .await
        .expect("open");
        let first = log.append(entry(0)).await.expect("append");
        let head = log.head();
        assert_eq!(head.sequence, 1);

        log.execute_on_writer("PRAGMA query_only = ON")
            .await
            .expect("pragma");
        for n in 1..4 {
            let err = log.append(entry(n)).await.expect_err("must fail closed");
            assert!(err.is_unavailable(), "{err}");
        }
        assert!(log.sign_head().await.expect_err("head").is_unavailable());
        assert_eq!(log.head(), head, "head advanced on a failed batch");
        assert_eq!(log.stats().failed_records, 3);

        log.execute_on_writer("PRAGMA query_only = OFF")
            .await
            .expect("pragma");
        let second = log.append(entry(9)).await.expect("append after recovery");
        assert_eq!(second.sequence, 2);
        assert_eq!(second.previous_hash, first.record_hash);
        assert_eq!(log.query(&Filter::default()).await.expect("query").len(), 2);
    }

    /// Deferred appends are committed and chained like any other, fail
    /// closed the same way, and only batches holding a synced record are
    /// fsync'd; the log reopens intact.
    #[tokio::test]
    async fn deferred_appends_commit_without_their_own_fsync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.db");
        let log = AuditLog::open(&path, AuditOptions::new("node-1"), Arc::new(NullSigner))
            .await
            .expect("open");
        let first = log
            .append_with(entry(0), Durability::Deferred)
            .await
            .expect("deferred append");
        assert_eq!(first.sequence, 1);
        assert_eq!(log.stats().batches, 1);
        assert_eq!(log.stats().synced_batches, 0);
        // Visible to readers at once.
        assert_eq!(log.query(&Filter::default()).await.expect("query").len(), 1);

        let second = log.append(entry(1)).await.expect("synced append");
        assert_eq!(second.previous_hash, first.record_hash);
        assert_eq!(log.stats().synced_batches, 1);
        // Back to deferred: the connection switches again.
        log.append_with(entry(2), Durability::Deferred)
            .await
            .expect("deferred append");
        assert_eq!(log.stats().batches, 3);
        assert_eq!(log.stats().synced_batches, 1);

        log.execute_on_writer("PRAGMA query_only = ON")
            .await
            .expect("pragma");
        let err = log
            .append_with(entry(3), Durability::Deferred)
            .await
            .expect_err("a deferred append fails closed too");
        assert!(err.is_unavailable(), "{err}");
        log.execute_on_writer("PRAGMA query_only = OFF")
            .await
            .expect("pragma");
        log.stop().await.expect("stop");

        let reopened = AuditLog::open(&path, AuditOptions::new("node-1"), Arc::new(NullSigner))
            .await
            .expect("reopen");
        assert_eq!(reopened.head().sequence, 3);
        let records = reopened.query(&Filter::default()).await.expect("query");
        assert_eq!(records.len(), 3);
        assert!(
            records
                .windows(2)
                .all(|w| w[1].previous_hash == w[0].record_hash)
        );
    }

    /// `export` pages past one page, honours the limit and `after_sequence`,
    /// and refuses a bad filter before streaming.
    #[tokio::test]
    async fn export_streams_every_page_in_order() {
        let log = AuditLog::open_in_memory(AuditOptions::new("node-1"), Arc::new(NullSigner))
            .await
            .expect("open");
        let total = DEFAULT_LIMIT as usize + 205;
        for n in 0..total {
            log.append(entry(n)).await.expect("append");
        }
        async fn drain(log: &AuditLog, filter: &Filter) -> Vec<u64> {
            let mut rx = log.export(filter).expect("export");
            let mut out = Vec::new();
            while let Some(r) = rx.recv().await {
                out.push(r.expect("record").sequence);
            }
            out
        }
        let all = drain(&log, &Filter::default()).await;
        assert_eq!(all, (1..=total as u64).collect::<Vec<_>>());
        let limited = drain(&log, &Filter::default().limit(1100)).await;
        assert_eq!(limited, (1..=1100).collect::<Vec<_>>());
        let after = Filter {
            after_sequence: Some(1200),
            ..Default::default()
        };
        assert_eq!(
            drain(&log, &after).await,
            (1201..=total as u64).collect::<Vec<_>>()
        );
        let bad = Filter {
            from_time: Some("yesterday".into()),
            ..Default::default()
        };
        assert!(matches!(
            log.export(&bad),
            Err(AuditError::InvalidFilter(_))
        ));
    }

    #[tokio::test]
    async fn in_memory_log_is_shared_by_writer_and_readers() {
        let log = AuditLog::open_in_memory(AuditOptions::new("coordinator"), Arc::new(NullSigner))
            .await
            .expect("open");
        for n in 0..5 {
            log.append(entry(n)).await.expect("append");
        }
        let all = log.query(&Filter::default()).await.expect("query");
        assert_eq!(all.len(), 5);
        let head = log.stop().await.expect("stop");
        assert_eq!(head.sequence, 5);
        assert!(
            log.append(entry(6))
                .await
                .expect_err("stopped")
                .is_unavailable()
        );
        assert!(log.stop().await.expect_err("twice").is_unavailable());
        assert_eq!(log.query(&Filter::default()).await.expect("query").len(), 5);
    }

    #[tokio::test]
    async fn bad_options_are_refused() {
        for options in [
            AuditOptions::new(""),
            AuditOptions::new("Node 1"),
            AuditOptions::new("node-1").max_batch(0),
        ] {
            assert!(matches!(
                AuditLog::open_in_memory(options, Arc::new(NullSigner)).await,
                Err(AuditError::InvalidOptions(_))
            ));
        }
    }
}
