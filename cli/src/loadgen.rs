//! Closed-loop load generator for `sigil bench sign`: a fixed number of
//! signing requests in flight against a running cluster.
//!
//! `concurrency` tasks share one or a few gRPC channels (HTTP/2 connections
//! multiplex the requests). Each task sends one `Signing.Sign` at a time
//! with a fresh random message and a unique idempotency key, in an intent
//! freshly signed with the payment-service identity's key (as a real
//! payment service does per request; the intent signature is part of the
//! measured latency), and records the latency of every successful request; the run stops by itself after
//! `requests` requests have been issued or `duration` has passed, whichever
//! comes first. Latency percentiles are nearest-rank over every successful
//! request; throughput counts successful requests over the wall time from
//! the first request to the last completion.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::RngCore;
use rand::rngs::OsRng;
use sigil_proto::v1 as pb;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_protocol::Scheme;
use sigil_protocol::engine::Encoding;
use tonic::transport::Channel;

use crate::bench::per_second;
use crate::intent::{Signer, raw_payload};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub key_id: String,
    /// The key's scheme (what payload a raw message becomes).
    pub scheme: Scheme,
    /// Signs every request's intent (the payment-service identity).
    pub signer: Signer,
    pub concurrency: usize,
    /// Stop issuing requests after this many (`None`: no count limit).
    pub requests: Option<u64>,
    /// Stop issuing requests after this long (`None`: no time limit).
    pub duration: Option<Duration>,
    pub message_size: usize,
    /// Prefix of every idempotency key; each request appends its sequence number.
    pub idempotency_prefix: String,
    /// What each request asks to sign.
    pub payload: LoadPayload,
}

/// What the load generator signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LoadPayload {
    /// A random message (a 32-byte digest for ECDSA): policy allows it as raw signing.
    #[default]
    Raw,
    /// An unsigned EIP-1559 transfer of 1 wei on chain 1 (ECDSA keys): every
    /// node decodes it and applies the key's limits and lists to it.
    EthTransfer,
}

impl LoadPayload {
    /// The payload of request `seq` (`message` is fresh random bytes).
    pub fn build(self, scheme: Scheme, message: &[u8], seq: u64) -> pb::payload::Kind {
        match self {
            Self::Raw => raw_payload(scheme, message, Encoding::Raw),
            Self::EthTransfer => pb::payload::Kind::EthereumTransaction(
                sigil_chains::Eip1559Tx {
                    chain_id: 1,
                    nonce: seq,
                    max_priority_fee_per_gas: 1_000_000_000,
                    max_fee_per_gas: 30_000_000_000,
                    gas_limit: 21_000,
                    to: Some([0x11; 20]),
                    value: sigil_chains::U256::from(1u64),
                    data: Vec::new(),
                }
                .signing_payload(),
            ),
        }
    }
}

/// Latency percentiles of the successful requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latency {
    pub min: Duration,
    pub mean: Duration,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    /// Summarizes `samples` (sorted here); all zero when empty.
    pub fn from_samples(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let (Some(&min), Some(&max)) = (samples.first(), samples.last()) else {
            return Self::default();
        };
        let total: Duration = samples.iter().sum();
        let mean = u32::try_from(samples.len())
            .map(|n| total / n)
            .unwrap_or_default();
        Self {
            min,
            mean,
            p50: percentile(samples, 50.0),
            p95: percentile(samples, 95.0),
            p99: percentile(samples, 99.0),
            max,
        }
    }
}

/// Nearest-rank percentile of sorted, non-empty `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub ok: u64,
    pub failed: u64,
    /// Wall time from the first request to the last completion.
    pub elapsed: Duration,
    pub latency: Latency,
    /// Failures by gRPC status code, with the first message seen for each.
    pub errors: BTreeMap<String, (u64, String)>,
}

impl LoadReport {
    pub fn requests(&self) -> u64 {
        self.ok + self.failed
    }

    /// Successful requests per second.
    pub fn throughput(&self) -> f64 {
        per_second(self.ok, self.elapsed)
    }
}

#[derive(Default)]
struct WorkerResult {
    latencies: Vec<Duration>,
    failed: u64,
    errors: BTreeMap<String, (u64, String)>,
}

impl WorkerResult {
    /// Counts a failure of kind `code`, keeping the first message of each kind.
    fn failure(&mut self, code: &str, message: impl FnOnce() -> String) {
        self.failed += 1;
        self.errors
            .entry(code.to_owned())
            .or_insert_with(|| (0, message()))
            .0 += 1;
    }
}

/// Runs the load. `channels` must not be empty; task `i` uses channel `i % len`.
pub async fn run(spec: &LoadSpec, channels: &[Channel]) -> LoadReport {
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = spec.duration.map(|d| started + d);
    let mut tasks = Vec::with_capacity(spec.concurrency);
    for i in 0..spec.concurrency.max(1) {
        let Some(channel) = channels.get(i % channels.len().max(1)) else {
            break;
        };
        let mut client = SigningClient::new(channel.clone());
        let issued = issued.clone();
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = WorkerResult::default();
            let mut message = vec![0u8; spec.message_size];
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let seq = issued.fetch_add(1, Ordering::Relaxed);
                if spec.requests.is_some_and(|limit| seq >= limit) {
                    break;
                }
                OsRng.fill_bytes(&mut message);
                let sent = Instant::now();
                let request = match spec.signer.sign_request(
                    &spec.key_id,
                    "",
                    spec.payload.build(spec.scheme, &message, seq),
                    &format!("{}-{seq}", spec.idempotency_prefix),
                ) {
                    Ok(request) => request,
                    Err(e) => {
                        out.failure("intent", || e.to_string());
                        continue;
                    }
                };
                match client.sign(request).await {
                    Ok(_) => out.latencies.push(sent.elapsed()),
                    Err(status) => out.failure(&format!("{:?}", status.code()), || {
                        crate::status::describe(&status)
                    }),
                }
            }
            out
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut errors: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for task in tasks {
        match task.await {
            Ok(r) => {
                latencies.extend(r.latencies);
                failed += r.failed;
                for (code, (count, message)) in r.errors {
                    errors.entry(code).or_insert((0, message)).0 += count;
                }
            }
            Err(e) => {
                failed += 1;
                errors.entry("task".into()).or_insert((0, e.to_string())).0 += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    LoadReport {
        ok: latencies.len() as u64,
        failed,
        elapsed,
        latency: Latency::from_samples(&mut latencies),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let l = Latency::from_samples(&mut samples);
        assert_eq!(l.min, ms(1));
        assert_eq!(l.p50, ms(50));
        assert_eq!(l.p95, ms(95));
        assert_eq!(l.p99, ms(99));
        assert_eq!(l.max, ms(100));
        assert_eq!(l.mean, Duration::from_micros(50_500));

        let mut one = vec![ms(7)];
        let l = Latency::from_samples(&mut one);
        assert_eq!((l.p50, l.p99, l.max), (ms(7), ms(7), ms(7)));

        assert_eq!(Latency::from_samples(&mut []), Latency::default());
    }
}
