//! The writer task of an [`crate::AuditLog`]: the only code that writes
//! records and heads.
//!
//! It owns a dedicated connection, the chain head and the clock. Each turn
//! it takes everything queued (up to `max_batch`), chains the records onto
//! the committed head, writes them in one `BEGIN IMMEDIATE` transaction and
//! acknowledges them only after the commit. A failed transaction refuses
//! every append of the batch and leaves the head where it was; a connection
//! left unusable is reopened on the next batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::AuditError;
use crate::head::{HeadLink, HeadSigner, SignedHead};
use crate::log::{Durability, Head, row_to_head};
use crate::record::{Entry, Hash, Record};
use crate::timefmt;

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) batches: AtomicU64,
    pub(crate) records: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) failed_records: AtomicU64,
    /// Committed batches that were fsync'd (at least one synced record).
    pub(crate) synced_batches: AtomicU64,
}

/// A request to the writer.
pub(crate) enum Command {
    Append {
        entry: Box<Entry>,
        durability: Durability,
        ack: oneshot::Sender<Result<Record, AuditError>>,
    },
    SignHead {
        ack: oneshot::Sender<Result<SignedHead, AuditError>>,
    },
    Stop {
        ack: oneshot::Sender<Result<SignedHead, AuditError>>,
    },
    /// Runs a statement on the writer's connection (tests inject failures).
    #[cfg(test)]
    Execute {
        sql: &'static str,
        ack: oneshot::Sender<Result<(), AuditError>>,
    },
}

pub(crate) struct LastRecord {
    pub(crate) process: String,
    pub(crate) sequence: u64,
    pub(crate) hash: Hash,
    pub(crate) timestamp: String,
}

/// The last stored record, if any.
pub(crate) async fn last_record(
    conn: &mut SqliteConnection,
) -> Result<Option<LastRecord>, AuditError> {
    let row = sqlx::query(
        "SELECT sequence, process, record_hash, timestamp FROM audit_records \
         ORDER BY sequence DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let sequence: i64 = row.try_get("sequence")?;
    let corrupt = |reason: &str| AuditError::Corrupt {
        sequence,
        reason: reason.to_owned(),
    };
    let hash: Vec<u8> = row.try_get("record_hash")?;
    Ok(Some(LastRecord {
        process: row.try_get("process")?,
        sequence: u64::try_from(sequence).map_err(|_| corrupt("negative sequence"))?,
        hash: hash
            .try_into()
            .map_err(|_| corrupt("record_hash is not 32 bytes"))?,
        timestamp: row.try_get("timestamp")?,
    }))
}

fn nodes_json(nodes: &[u16]) -> String {
    let items: Vec<String> = nodes.iter().map(u16::to_string).collect();
    format!("[{}]", items.join(","))
}

/// The single writer: owns the connection, the chain head and the clock.
pub(crate) struct Writer {
    pub(crate) process: String,
    pub(crate) connect: SqliteConnectOptions,
    /// `None` after a failure left the connection unusable; reopened lazily.
    pub(crate) conn: Option<SqliteConnection>,
    /// The connection's `synchronous` setting: `Some(true)` = FULL,
    /// `Some(false)` = NORMAL, `None` = to be set before the next batch.
    pub(crate) synchronous: Option<bool>,
    pub(crate) head: Head,
    /// Latest timestamp written; timestamps never go backwards.
    pub(crate) last_time: OffsetDateTime,
    pub(crate) head_tx: watch::Sender<Head>,
    pub(crate) signer: Arc<dyn HeadSigner>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) max_batch: usize,
}

type AppendAck = oneshot::Sender<Result<Record, AuditError>>;

impl Writer {
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut stop: Option<oneshot::Sender<Result<SignedHead, AuditError>>> = None;
        while let Some(first) = rx.recv().await {
            let mut commands = vec![first];
            while commands.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(c) => commands.push(c),
                    Err(_) => break,
                }
            }
            let mut batch = Vec::with_capacity(commands.len());
            let mut heads = Vec::new();
            #[cfg(test)]
            let mut executes = Vec::new();
            for command in commands {
                match command {
                    Command::Append {
                        entry,
                        durability,
                        ack,
                    } => batch.push((*entry, durability, ack)),
                    Command::SignHead { ack } => heads.push(ack),
                    Command::Stop { ack } => {
                        // No new appends; those already queued are still written.
                        rx.close();
                        stop = Some(ack);
                    }
                    #[cfg(test)]
                    Command::Execute { sql, ack } => executes.push((sql, ack)),
                }
            }
            if !batch.is_empty() {
                self.commit(batch).await;
            }
            for ack in heads {
                let result = self.sign_and_store_head().await;
                let _ = ack.send(result);
            }
            #[cfg(test)]
            for (sql, ack) in executes {
                let result = match self.connection().await {
                    Ok(conn) => sqlx::query(sql)
                        .execute(conn)
                        .await
                        .map(|_| ())
                        .map_err(AuditError::from),
                    Err(e) => Err(AuditError::Unavailable(e)),
                };
                let _ = ack.send(result);
            }
        }
        if let Some(ack) = stop {
            let result = self.sign_and_store_head().await;
            if let Err(e) = &result {
                tracing::error!(process = %self.process, error = %e, "final audit head not signed");
            }
            let _ = ack.send(result);
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    async fn connection(&mut self) -> Result<&mut SqliteConnection, String> {
        if self.conn.is_none() {
            self.synchronous = None;
            let conn = self
                .connect
                .connect()
                .await
                .map_err(|e| format!("cannot reopen the audit database: {e}"))?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| "no audit database connection".to_owned())
    }

    /// The next timestamp: now, but never before the previous one.
    fn next_time(&mut self) -> Result<String, String> {
        let now = timefmt::now().max(self.last_time);
        let formatted = timefmt::format(now)?;
        self.last_time = now;
        Ok(formatted)
    }

    async fn commit(&mut self, batch: Vec<(Entry, Durability, AppendAck)>) {
        let count = batch.len() as u64;
        let sync = batch
            .iter()
            .any(|(_, durability, _)| *durability == Durability::Synced);
        let mut records = Vec::with_capacity(batch.len());
        let mut acks = Vec::with_capacity(batch.len());
        let saved_time = self.last_time;
        let mut chained = Ok(());
        let mut previous = self.head;
        for (entry, _, ack) in batch {
            acks.push(ack);
            if chained.is_err() {
                continue;
            }
            let Some(sequence) = previous.sequence.checked_add(1) else {
                chained = Err("audit sequence numbers are exhausted".to_owned());
                continue;
            };
            match self.next_time() {
                Ok(timestamp) => {
                    let record =
                        Record::chain(&self.process, sequence, timestamp, entry, previous.hash);
                    previous = Head {
                        sequence,
                        hash: record.record_hash,
                    };
                    records.push(record);
                }
                Err(e) => chained = Err(e),
            }
        }
        let written = match chained {
            Ok(()) => self.write(&records, sync).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                self.head = previous;
                self.head_tx.send_replace(previous);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.records.fetch_add(count, Ordering::Relaxed);
                if sync {
                    self.stats.synced_batches.fetch_add(1, Ordering::Relaxed);
                }
                for (ack, record) in acks.into_iter().zip(records) {
                    let _ = ack.send(Ok(record));
                }
            }
            Err(reason) => {
                tracing::error!(
                    process = %self.process,
                    records = count,
                    error = %reason,
                    "audit batch not committed; refusing its operations"
                );
                self.last_time = saved_time;
                self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .failed_records
                    .fetch_add(count, Ordering::Relaxed);
                self.recover().await;
                for ack in acks {
                    let _ = ack.send(Err(AuditError::Unavailable(reason.clone())));
                }
            }
        }
    }

    /// Writes `records` in one transaction; on error nothing is written.
    /// `sync`: the commit is fsync'd (`synchronous = FULL`); otherwise it is
    /// written to the WAL without an fsync (`NORMAL`) and becomes durable
    /// against power loss with the next synced commit.
    async fn write(&mut self, records: &[Record], sync: bool) -> Result<(), String> {
        if self.synchronous != Some(sync) {
            let pragma = if sync {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            let conn = self.connection().await?;
            sqlx::query(pragma)
                .execute(conn)
                .await
                .map_err(|e| format!("cannot set the audit connection's durability: {e}"))?;
            self.synchronous = Some(sync);
        }
        let conn = self.connection().await?;
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| format!("cannot start the audit transaction: {e}"))?;
        let mut result = Ok(());
        for chunk in records.chunks(INSERT_CHUNK) {
            if let Err(e) = insert_records(&mut tx, chunk).await {
                let first = chunk.first().map(|r| r.sequence).unwrap_or_default();
                result = Err(format!(
                    "cannot write audit records from {first} ({} in the statement): {e}",
                    chunk.len()
                ));
                break;
            }
        }
        match result {
            Ok(()) => tx
                .commit()
                .await
                .map_err(|e| format!("cannot commit the audit transaction: {e}")),
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// After a failed write: drop a broken connection, and if the database
    /// is ahead of the in-memory head (a commit reported as failed that did
    /// happen), adopt its head so the next batch does not collide.
    async fn recover(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if conn.ping().await.is_err() {
            self.conn = None;
            return;
        }
        match last_record(conn).await {
            Ok(Some(last)) if last.sequence > self.head.sequence => {
                tracing::warn!(
                    process = %self.process,
                    sequence = last.sequence,
                    "audit database is ahead of the writer; continuing from its last record"
                );
                self.head = Head {
                    sequence: last.sequence,
                    hash: last.hash,
                };
                if let Some(t) = timefmt::parse_canonical(&last.timestamp) {
                    self.last_time = self.last_time.max(t);
                }
                self.head_tx.send_replace(self.head);
            }
            _ => {}
        }
    }

    /// The link of the next head: after the last stored head (read from the
    /// database each time, so a store reported as failed that did happen
    /// cannot fork the chain), or [`HeadLink::FIRST`] when there is none or
    /// the last one is a legacy head.
    async fn next_link(&mut self) -> Result<HeadLink, String> {
        let conn = self.connection().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            head_columns!(),
            " FROM audit_heads ORDER BY id DESC LIMIT 1"
        ))
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| format!("cannot read the last signed audit head: {e}"))?;
        let Some(row) = row else {
            return Ok(HeadLink::FIRST);
        };
        let (_, last) = row_to_head(&row).map_err(|e| e.to_string())?;
        Ok(match last.link {
            Some(link) => link.next(last.id()),
            None => HeadLink::FIRST,
        })
    }

    async fn sign_and_store_head(&mut self) -> Result<SignedHead, AuditError> {
        let link = match self.next_link().await {
            Ok(link) => link,
            Err(reason) => {
                if let Some(conn) = self.conn.as_mut()
                    && conn.ping().await.is_err()
                {
                    self.conn = None;
                }
                return Err(AuditError::Unavailable(reason));
            }
        };
        let saved_time = self.last_time;
        let timestamp = self.next_time().map_err(AuditError::Unavailable)?;
        let mut head = SignedHead {
            process: self.process.clone(),
            sequence: self.head.sequence,
            head_hash: self.head.hash,
            timestamp,
            signature: Vec::new(),
            certificate_chain: Vec::new(),
            link: Some(link),
        };
        let message = head.signing_bytes();
        let signature = match self.signer.sign_head(&message) {
            Ok(s) => s,
            Err(e) => {
                self.last_time = saved_time;
                return Err(AuditError::Signing(e.0));
            }
        };
        head.signature = signature.signature;
        head.certificate_chain = signature.certificate_chain;
        if let Err(reason) = self.store_head(&head).await {
            self.last_time = saved_time;
            tracing::error!(process = %self.process, error = %reason, "signed audit head not stored");
            if let Some(conn) = self.conn.as_mut()
                && conn.ping().await.is_err()
            {
                self.conn = None;
            }
            return Err(AuditError::Unavailable(reason));
        }
        Ok(head)
    }

    async fn store_head(&mut self, head: &SignedHead) -> Result<(), String> {
        let chain: Vec<String> = head.certificate_chain.iter().map(hex::encode).collect();
        let chain = serde_json::to_string(&chain).map_err(|e| e.to_string())?;
        let sequence = i64::try_from(head.sequence).map_err(|_| "sequence out of range")?;
        let conn = self.connection().await?;
        let index = head
            .link
            .map(|l| i64::try_from(l.index).map_err(|_| "head index out of range"))
            .transpose()?;
        let previous = head.link.map(|l| l.previous.to_vec());
        sqlx::query(
            "INSERT INTO audit_heads (process, sequence, head_hash, timestamp, signature, \
             certificate_chain, head_index, previous_head) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&head.process)
        .bind(sequence)
        .bind(&head.head_hash[..])
        .bind(&head.timestamp)
        .bind(&head.signature)
        .bind(chain)
        .bind(index)
        .bind(previous)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("cannot store the signed audit head: {e}"))
    }
}

/// Records per `INSERT` statement: 15 bound values each, well under
/// SQLite's 32766-variable limit. One statement per batch (not per record)
/// keeps the writer's round trips to its connection thread constant.
const INSERT_CHUNK: usize = 256;

/// Inserts `records` with one multi-row statement.
async fn insert_records(
    conn: &mut SqliteConnection,
    records: &[Record],
) -> Result<(), sqlx::Error> {
    let mut q = QueryBuilder::<Sqlite>::new(concat!(
        "INSERT INTO audit_records (",
        record_columns!(),
        ") "
    ));
    let mut out_of_range = false;
    q.push_values(records, |mut row, r| {
        let sequence = i64::try_from(r.sequence).unwrap_or_else(|_| {
            out_of_range = true;
            -1
        });
        row.push_bind(sequence)
            .push_bind(r.process.clone())
            .push_bind(r.timestamp.clone())
            .push_bind(r.actor.clone())
            .push_bind(r.action.clone())
            .push_bind(r.key_id.clone())
            .push_bind(r.request_id.clone())
            .push_bind(r.digest.clone())
            .push_bind(nodes_json(&r.quorum))
            .push_bind(r.session_id.clone())
            .push_bind(r.outcome.clone())
            .push_bind(nodes_json(&r.culprits))
            .push_bind(r.detail.clone())
            .push_bind(r.previous_hash.to_vec())
            .push_bind(r.record_hash.to_vec());
    });
    if out_of_range {
        return Err(sqlx::Error::Protocol("sequence out of range".into()));
    }
    q.build().execute(conn).await.map(|_| ())
}
