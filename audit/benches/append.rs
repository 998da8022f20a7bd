//! Criterion benchmark of audit appends with 64 concurrent appenders: a
//! file database (WAL, `synchronous = FULL`, group commit) against a
//! `sqlite::memory:` database. Reported as appends per second.
//!
//! Quick run: `cargo bench -p sigil-audit --bench append -- --quick`.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sigil_audit::{AuditLog, AuditOptions, Entry, HeadSignature, HeadSigner, SignError, action};

const APPENDERS: u64 = 64;

/// Heads are not signed in this benchmark.
struct NoSigner;

impl HeadSigner for NoSigner {
    fn sign_head(&self, _message: &[u8]) -> Result<HeadSignature, SignError> {
        Err(SignError("benchmark signs no heads".into()))
    }
}

/// Appends `total` records from 64 concurrent tasks; returns the elapsed time.
async fn run(log: &AuditLog, total: u64) -> Duration {
    let per_task = total.div_ceil(APPENDERS).max(1);
    let start = Instant::now();
    let tasks: Vec<_> = (0..APPENDERS)
        .map(|task| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..per_task {
                    let entry = Entry::new("spiffe://sigil.local/client/bench", action::REQUEST)
                        .key_id("key-1")
                        .request_id(format!("{task}-{i}"))
                        .digest([7u8; 32].to_vec());
                    log.append(entry).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    // Report the time per append actually made.
    let made = per_task * APPENDERS;
    start.elapsed().mul_f64(total as f64 / made as f64)
}

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let file_log = rt
        .block_on(AuditLog::open(
            &dir.path().join("audit.db"),
            AuditOptions::new("coordinator"),
            Arc::new(NoSigner),
        ))
        .expect("open file log");
    let memory_log = rt
        .block_on(AuditLog::open_in_memory(
            AuditOptions::new("coordinator"),
            Arc::new(NoSigner),
        ))
        .expect("open memory log");

    let mut group = c.benchmark_group("append_64_concurrent");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, log) in [("file", &file_log), ("memory", &memory_log)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| rt.block_on(run(log, iters)));
        });
        let stats = log.stats();
        eprintln!(
            "{name}: {} records in {} transactions ({:.1} per commit)",
            stats.records,
            stats.batches,
            stats.records as f64 / stats.batches.max(1) as f64
        );
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
