//! `sigil bench`: benchmarks against a running cluster. `bench sign` runs
//! closed-loop load on `Signing.Sign` ([`sigil_cli::loadgen`]), then the
//! in-process crypto-only throughput of the same scheme and threshold
//! ([`sigil_cli::bench`]) for comparison.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use sigil_cli::bench::{Baseline, Envelope};
use sigil_cli::intent::Signer;
use sigil_cli::loadgen::{self, LoadPayload, LoadSpec};
use sigil_cli::output::Text;
use sigil_proto::convert::scheme_to_wire;
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_protocol::Scheme;
use sigil_protocol::engine::{self, SignInput};

use super::sign::public_key;
use super::{Context, parse_duration_arg, parse_scheme_arg};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Closed-loop load on Signing.Sign, then the in-process crypto-only
    /// throughput of the same scheme and threshold for comparison.
    Sign(BenchSignArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["key", "scheme"])))]
pub struct BenchSignArgs {
    /// Key id to sign with.
    #[arg(long, value_name = "ID")]
    key: Option<String>,
    /// Create a fresh key of this scheme (as `operator`, every node, threshold
    /// `--threshold`) and sign with it.
    #[arg(long, value_parser = parse_scheme_arg)]
    scheme: Option<Scheme>,
    /// Threshold of the key created with `--scheme`.
    #[arg(long, default_value_t = 2, requires = "scheme")]
    threshold: u32,
    /// Requests in flight at any time.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Stop issuing requests after this long (default 10s unless --requests is given).
    #[arg(long, value_parser = parse_duration_arg)]
    duration: Option<Duration>,
    /// Stop after this many requests.
    #[arg(long)]
    requests: Option<u64>,
    /// Size of each (random) message in bytes.
    #[arg(long, default_value_t = 32)]
    message_size: usize,
    /// HTTP/2 connections the requests are spread over.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// What each request signs: `raw` (a random message or digest) or
    /// `eth-transfer` (an EIP-1559 transfer the nodes decode and check
    /// against the key's limits; ECDSA keys).
    #[arg(long, value_enum, default_value_t = LoadPayload::Raw)]
    payload: LoadPayload,
    /// How long to measure the in-process baseline (0s: skip it).
    #[arg(long, value_parser = parse_duration_arg, default_value = "3s")]
    baseline_duration: Duration,
}

pub async fn run(ctx: &Context, command: &BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Sign(args) => sign(ctx, args).await,
    }
}

async fn sign(ctx: &Context, args: &BenchSignArgs) -> Result<()> {
    if args.concurrency == 0 || args.connections == 0 {
        bail!("--concurrency and --connections must be at least 1");
    }
    let max = engine::MAX_MESSAGE_LEN;
    if args.message_size == 0 || args.message_size > max {
        bail!("--message-size must be between 1 and {max}");
    }
    if args.requests == Some(0) {
        bail!("--requests must be at least 1");
    }
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    let key_id = match (&args.key, args.scheme) {
        (Some(key), _) => key.clone(),
        (None, Some(scheme)) => {
            let operator = ctx.identity("operator")?;
            KeyAdminClient::new(operator.connect().await?)
                .create_key(pb::CreateKeyRequest {
                    scheme: scheme_to_wire(scheme) as i32,
                    threshold: args.threshold,
                    nodes: Vec::new(),
                    label: "sigil bench".into(),
                })
                .await
                .with_context(|| format!("creating a {scheme} key to benchmark"))?
                .into_inner()
                .key
                .context("the coordinator returned no key")?
                .key_id
        }
        (None, None) => bail!("--key or --scheme is required"),
    };
    let client = ctx.client("signer")?;
    // Every request carries an intent signed with this identity's key.
    let signer = Signer::from_tls(&client.tls)?;
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    // The first coordinator that answers takes every connection.
    let coordinator = client.connect_coordinator().await?;
    let (scheme, _) = public_key(coordinator.channel.clone(), &key_id, "").await?;

    // One warm-up request per connection: connects (TLS handshake) outside
    // the measurement, and checks the key signs and its signatures verify.
    let mut channels = Vec::with_capacity(args.connections);
    let mut warm = None;
    for i in 0..args.connections {
        let channel = client.coordinator_at(&coordinator.endpoint)?;
        let message = vec![0x5a; args.message_size];
        let payload = args.payload.build(scheme, &message, u64::MAX - i as u64);
        // What the nodes will sign for it, read the way they read it.
        let parsed = sigil_policy::parse(
            &sigil_policy::KeyView::new(scheme, &[], &[]),
            &pb::Payload {
                kind: Some(payload.clone()),
            },
        )
        .context("the benchmark payload does not suit this key")?;
        let resp = SigningClient::new(channel.clone())
            .sign(signer.sign_request(&key_id, "", payload, &format!("{prefix}-warmup-{i}"))?)
            .await
            .with_context(|| format!("warm-up signature with key {key_id}"))?
            .into_inner();
        let part = parsed
            .parts
            .first()
            .context("the benchmark payload signs nothing")?;
        let input = SignInput::new(scheme, &part.message, part.encoding, "")?;
        engine::verify(scheme, &resp.public_key, &input, &resp.signature)
            .context("the warm-up signature does not verify")?;
        warm = Some((scheme, resp.signers.len()));
        channels.push(channel);
    }
    let (scheme, signers) = warm.context("no warm-up request ran")?;
    let threshold = u16::try_from(signers).context("signer count out of range")?;
    // Unknown (no operator identity, no node list here): the signers.
    let participants =
        key_participants(ctx, &key_id)
            .await
            .unwrap_or(if client.info.nodes.is_empty() {
                signers
            } else {
                client.info.nodes.len()
            });
    let participants = u16::try_from(participants).context("participant count out of range")?;

    let spec = LoadSpec {
        key_id: key_id.clone(),
        scheme,
        signer,
        concurrency: args.concurrency,
        requests: args.requests,
        duration,
        message_size: args.message_size,
        idempotency_prefix: prefix,
        payload: args.payload,
    };
    ctx.out.note(format_args!(
        "signing with {} ({scheme}, {threshold}-of-{participants}): concurrency {}, {} connection(s), {}-byte messages, {}...",
        key_id,
        args.concurrency,
        args.connections,
        args.message_size,
        match (duration, args.requests) {
            (Some(d), Some(n)) => format!("{n} requests or {d:?}"),
            (Some(d), None) => format!("for {d:?}"),
            (None, Some(n)) => format!("{n} requests"),
            (None, None) => String::new(),
        }
    ));
    let report = loadgen::run(&spec, &channels).await;

    // The same crypto in-process on one thread, with the nodes' envelope
    // and bare (the engine's round functions alone: the protocol's floor).
    let mut baselines = Vec::new();
    if !args.baseline_duration.is_zero() {
        for envelope in [Envelope::Sealed, Envelope::Bare] {
            ctx.out.note(format_args!(
                "measuring in-process crypto-only signing ({}) for {:?} on one thread...",
                envelope_name(envelope),
                args.baseline_duration
            ));
            let (size, duration) = (args.message_size, args.baseline_duration);
            baselines.push(
                tokio::task::spawn_blocking(move || {
                    sigil_cli::bench::run(envelope, scheme, threshold, participants, size, duration)
                })
                .await
                .context("in-process baseline task")?
                .context("in-process baseline")?,
            );
        }
    }
    let baseline = baselines.iter().find(|b| b.envelope == Envelope::Sealed);
    let bare = baselines.iter().find(|b| b.envelope == Envelope::Bare);
    let per = |a: f64, b: Option<&Baseline>| {
        b.map(Baseline::throughput)
            .filter(|t| *t > 0.0)
            .map(|t| a / t)
    };
    let ratio = per(report.throughput(), baseline);
    let ratio_to_bare = per(report.throughput(), bare);
    let enveloped_to_bare = baseline.and_then(|b| per(b.throughput(), bare));

    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let l = report.latency;
    let errors: serde_json::Map<_, _> = report
        .errors
        .iter()
        .map(|(code, (count, message))| {
            (
                code.clone(),
                json!({"count": count, "first_message": message}),
            )
        })
        .collect();
    let value = json!({
        "key_id": key_id,
        "scheme": scheme.name(),
        "threshold": threshold,
        "participants": participants,
        "concurrency": args.concurrency,
        "connections": args.connections,
        "message_size": args.message_size,
        "cluster": {
            "requests": report.requests(),
            "ok": report.ok,
            "failed": report.failed,
            "elapsed_s": report.elapsed.as_secs_f64(),
            "throughput_rps": report.throughput(),
            "latency_ms": {
                "min": ms(l.min), "mean": ms(l.mean), "p50": ms(l.p50),
                "p95": ms(l.p95), "p99": ms(l.p99), "max": ms(l.max),
            },
            "errors": errors,
        },
        "in_process": baseline.map(|b| json!({
            "signatures": b.signatures,
            "elapsed_s": b.elapsed.as_secs_f64(),
            "throughput_sps": b.throughput(),
            "mean_ms": ms(b.mean()),
            "threads": 1,
        })),
        "bare": bare.map(|b| json!({
            "signatures": b.signatures,
            "elapsed_s": b.elapsed.as_secs_f64(),
            "throughput_sps": b.throughput(),
            "mean_ms": ms(b.mean()),
            "threads": 1,
        })),
        // cluster / enveloped in-process (kept under this name for scripts)
        "ratio": ratio,
        "ratio_to_bare": ratio_to_bare,
        "in_process_to_bare": enveloped_to_bare,
        "p50_over_bare_mean": bare
            .map(|b| b.mean().as_secs_f64())
            .filter(|m| *m > 0.0)
            .map(|m| l.p50.as_secs_f64() / m),
    });
    ctx.out.print(&value, || {
        let mut t = Text::new();
        t.line(format_args!(
            "cluster      {} ok, {} failed in {:.2} s",
            report.ok,
            report.failed,
            report.elapsed.as_secs_f64()
        ));
        t.line(format_args!(
            "throughput   {:.1} signatures/s",
            report.throughput()
        ));
        t.line(format_args!(
            "latency ms   p50 {}  p95 {}  p99 {}  max {}  (min {}, mean {})",
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.max),
            ms(l.min),
            ms(l.mean)
        ));
        for (code, (count, message)) in &report.errors {
            t.line(format_args!("errors       {count} x {code}: {message}"));
        }
        if let Some(b) = baseline {
            t.line(format_args!(
                "in-process   {:.1} signatures/s on one thread ({} ms each, {} signatures), crypto with the envelope",
                b.throughput(),
                ms(b.mean()),
                b.signatures
            ));
        }
        if let Some(b) = bare {
            t.line(format_args!(
                "bare         {:.1} signatures/s on one thread ({} ms each, {} signatures), the engine's rounds alone",
                b.throughput(),
                ms(b.mean()),
                b.signatures
            ));
        }
        if let Some(r) = ratio {
            t.line(format_args!("ratio        cluster / in-process = {r:.3}"));
        }
        if let (Some(r), Some(e)) = (ratio_to_bare, enveloped_to_bare) {
            t.line(format_args!(
                "ratio        cluster / bare = {r:.3}; in-process / bare = {e:.3}"
            ));
        }
        t.into()
    });
    if report.failed > 0 {
        bail!("{} of {} requests failed", report.failed, report.requests());
    }
    Ok(())
}

/// The number of nodes holding shares of `key_id`, if the `operator`
/// identity can tell (KeyAdmin needs that role).
async fn key_participants(ctx: &Context, key_id: &str) -> Option<usize> {
    let operator = ctx.identity("operator").ok()?;
    let key = KeyAdminClient::new(operator.connect().await.ok()?)
        .get_key(pb::GetKeyRequest {
            key_id: key_id.to_owned(),
        })
        .await
        .ok()?
        .into_inner();
    Some(key.participants.len())
}

fn envelope_name(e: Envelope) -> &'static str {
    match e {
        Envelope::Sealed => "with the envelope",
        Envelope::Bare => "bare",
    }
}
