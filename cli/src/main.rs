//! `sigil`: the command line of a Sigil cluster — dev PKI, local cluster,
//! health, nodes, keys, signing, offline verification and a signing load
//! generator, and the auditor's `audit` commands (query, export, heads,
//! verify). Every command that prints data prints JSON with `--json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use sigil_cli::connect::ClientContext;
use sigil_cli::input::{self, parse_duration};
use sigil_cli::loadgen::{self, LoadSpec};
use sigil_cli::local::{ClusterSpec, LocalCluster, ensure_dev_pki};
use sigil_proto::convert::scheme_to_wire;
use sigil_proto::v1 as pb;
use sigil_proto::v1::audit_client::AuditClient;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_protocol::Scheme;
use sigil_protocol::engine::{self, Encoding, SignInput};
use sigil_tls::TrustDomain;

/// The audit database value that keeps a log in memory (benchmarks only).
const AUDIT_MEMORY: &str = sigil_coordinator::config::AUDIT_MEMORY;
use tonic_health::pb::health_client::HealthClient;

#[derive(Parser, Debug)]
#[command(name = "sigil", version, about = "Sigil threshold-signature cluster")]
struct Cli {
    /// Data directory of the local cluster (PKI, configs, databases).
    #[arg(long, global = true, env = "SIGIL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Client identity to act as (default: the one the command's role needs).
    #[arg(long = "as", global = true, value_name = "CLIENT")]
    as_client: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Development helpers.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Start a local cluster (coordinator + nodes) on loopback; Ctrl-C stops it.
    Up {
        /// Number of signer nodes.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// Coordinator port; node i listens on port + i.
        #[arg(long, default_value_t = 7400)]
        port: u16,
        /// Use ephemeral ports instead of --port.
        #[arg(long)]
        ephemeral_ports: bool,
        /// Keep every audit log in memory instead of the databases. FOR
        /// BENCHMARKS ONLY: nothing is durable and fail-closed means nothing.
        #[arg(long)]
        audit_in_memory: bool,
        /// Keep each process's audit log in its state database instead of
        /// its own file (`<stem>-audit.db`, the default): the log then shares
        /// SQLite's write lock with the process's other writes (slower; for
        /// comparison).
        #[arg(long, conflicts_with = "audit_in_memory")]
        audit_in_state_database: bool,
    },
    /// Health of the coordinator and every node (gRPC health checking).
    Health,
    /// Signer nodes as the coordinator sees them.
    Nodes,
    /// Keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Sign a message with a key of the cluster (acts as `signer`).
    Sign(SignArgs),
    /// Verify a signature offline (no cluster needed). Exits non-zero unless it is valid.
    Verify(VerifyArgs),
    /// Ethereum helpers for ECDSA keys.
    Eth {
        #[command(subcommand)]
        command: EthCommand,
    },
    /// Benchmarks against a running cluster.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// The audit logs (acts as `auditor`, read-only).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Records of one process's log matching every filter given.
    Query(AuditQueryArgs),
    /// Every record and signed head of the coordinator and every node, as
    /// JSON lines: `<process>.records.jsonl` and `<process>.heads.jsonl`.
    Export {
        /// Directory to write into (created if needed).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Signed heads: the latest of every process, or every head of one.
    Heads {
        /// Only this process (`coordinator`, `node-<n>`).
        #[arg(long)]
        process: Option<String>,
        /// Every head ever signed, not only the latest (needs --process).
        #[arg(long, requires = "process")]
        all: bool,
    },
    /// Recompute every chain, check every signed head and cross-check the
    /// logs. Live (through the coordinator) by default, or offline on an
    /// export (--dir) or on one process's audit database (--db). Exits non-zero
    /// if anything is wrong.
    Verify(AuditVerifyArgs),
}

#[derive(Args, Debug)]
struct AuditQueryArgs {
    /// Whose log: `coordinator` (default) or `node-<n>`.
    #[arg(long)]
    process: Option<String>,
    /// From this time (RFC 3339, inclusive).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Up to this time (RFC 3339, inclusive).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Key id.
    #[arg(long, value_name = "ID")]
    key: Option<String>,
    /// Who caused the record: a SPIFFE URI or its short form (`client/signer`, `coordinator`).
    #[arg(long, value_name = "IDENTITY")]
    actor: Option<String>,
    /// Action (`request`, `sign_session`, `signature_returned`, `share_issued`, …).
    #[arg(long)]
    action: Option<String>,
    /// Outcome: exact (`refused:permission_denied`) or a class (`ok`, `refused`, `error`).
    #[arg(long)]
    outcome: Option<String>,
    /// Only records after this sequence number (paging).
    #[arg(long, value_name = "SEQ")]
    after: Option<u64>,
    /// At most this many records (default 1000, at most 10000).
    #[arg(long)]
    limit: Option<u32>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").args(["dir", "db"])))]
struct AuditVerifyArgs {
    /// Verify an export written by `sigil audit export` (offline).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Verify one process's log in its SQLite database (offline; needs --process).
    #[arg(long, value_name = "PATH", requires = "process")]
    db: Option<PathBuf>,
    /// The process whose database --db is (`coordinator`, `node-<n>`).
    #[arg(long, requires = "db")]
    process: Option<String>,
    /// CA certificate(s) that signed the processes' certificates (default: <data-dir>/pki/ca.pem).
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// Trust domain of the certificates (default: the local cluster's, else sigil.local).
    #[arg(long)]
    trust_domain: Option<String>,
}

/// The message: exactly one of hex or a file.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct MessageArgs {
    /// The message, hex-encoded.
    #[arg(long, value_name = "HEX")]
    message_hex: Option<String>,
    /// Read the message (raw bytes) from a file.
    #[arg(long, value_name = "PATH")]
    message_file: Option<PathBuf>,
}

impl MessageArgs {
    fn read(&self) -> Result<Vec<u8>> {
        Ok(input::message(
            self.message_hex.as_deref(),
            self.message_file.as_deref(),
        )?)
    }
}

#[derive(Args, Debug)]
struct SignArgs {
    /// Key id.
    #[arg(long, value_name = "ID")]
    key: String,
    #[command(flatten)]
    message: MessageArgs,
    /// Idempotency key: retrying with the same one returns the same signature.
    /// Default: a fresh random one, printed so the request can be retried.
    #[arg(long, value_name = "K")]
    idempotency_key: Option<String>,
    /// ECDSA: BIP-32 non-hardened derivation path of the child key, e.g. m/0/7.
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// ECDSA: how the message becomes the signed digest. `none`: the message
    /// is the 32-byte digest; `keccak256` (Ethereum) or `sha256` (Bitcoin):
    /// every node hashes the message itself.
    #[arg(long, value_enum, default_value_t = HashArg::None)]
    hash: HashArg,
}

/// `--hash` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum HashArg {
    None,
    Keccak256,
    Sha256,
}

impl HashArg {
    fn encoding(self) -> pb::MessageEncoding {
        match self {
            Self::None => pb::MessageEncoding::Raw,
            Self::Keccak256 => pb::MessageEncoding::Keccak256,
            Self::Sha256 => pb::MessageEncoding::Sha256,
        }
    }
}

impl From<HashArg> for Encoding {
    fn from(h: HashArg) -> Self {
        match h {
            HashArg::None => Encoding::Raw,
            HashArg::Keccak256 => Encoding::Keccak256,
            HashArg::Sha256 => Encoding::Sha256,
        }
    }
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// frost-secp256k1, frost-taproot, frost-ed25519 or ecdsa-secp256k1.
    #[arg(long)]
    scheme: String,
    /// Group public key, hex, in the scheme's standard encoding.
    #[arg(long, value_name = "HEX")]
    public_key: String,
    #[command(flatten)]
    message: MessageArgs,
    /// Signature, hex, in the scheme's standard encoding (ECDSA: 64-byte r‖s).
    #[arg(long, value_name = "HEX")]
    signature: String,
    /// ECDSA: how the message becomes the digest (as for `sign`).
    #[arg(long, value_enum, default_value_t = HashArg::None)]
    hash: HashArg,
}

#[derive(Subcommand, Debug)]
enum EthCommand {
    /// Sign an EIP-1559 transaction with an ECDSA key and print the raw
    /// signed transaction. The nodes receive the unsigned transaction and
    /// hash it themselves (Keccak-256), so each knows what it signs.
    SignTx(EthSignTxArgs),
}

#[derive(Args, Debug)]
struct EthSignTxArgs {
    /// ECDSA key id.
    #[arg(long, value_name = "ID")]
    key: String,
    /// BIP-32 non-hardened derivation path of the sending account, e.g. m/0/7.
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    #[arg(long)]
    chain_id: u64,
    #[arg(long)]
    nonce: u64,
    /// Recipient, 0x-prefixed (EIP-55 checksum checked when mixed case). Omit to create a contract.
    #[arg(long, value_name = "ADDRESS")]
    to: Option<String>,
    /// Value in wei (decimal).
    #[arg(long, value_name = "WEI", default_value = "0")]
    value: String,
    /// Gas limit.
    #[arg(long)]
    gas: u64,
    /// Max fee per gas, wei.
    #[arg(long, value_name = "WEI")]
    max_fee: u128,
    /// Max priority fee per gas, wei.
    #[arg(long, value_name = "WEI")]
    max_priority_fee: u128,
    /// Call data, hex.
    #[arg(long, value_name = "HEX")]
    data: Option<String>,
    /// Idempotency key (default: random, printed).
    #[arg(long, value_name = "K")]
    idempotency_key: Option<String>,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Closed-loop load on Signing.Sign, then the in-process crypto-only
    /// throughput of the same scheme and threshold for comparison.
    Sign(BenchSignArgs),
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["key", "scheme"])))]
struct BenchSignArgs {
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
    /// How long to measure the in-process baseline (0s: skip it).
    #[arg(long, value_parser = parse_duration_arg, default_value = "3s")]
    baseline_duration: Duration,
}

fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn parse_scheme_arg(s: &str) -> Result<Scheme, String> {
    s.parse::<Scheme>().map_err(|_| {
        let names: Vec<&str> = Scheme::ALL.iter().map(|s| s.name()).collect();
        format!("unknown scheme {s:?}; expected one of {}", names.join(", "))
    })
}

#[derive(Subcommand, Debug)]
enum DevCommand {
    /// Create a development CA and certificates for a coordinator, nodes and the three client roles.
    Pki {
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        #[arg(long, default_value = "sigil.local")]
        trust_domain: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Create a key by distributed key generation among the nodes (acts as `operator`).
    Create {
        /// frost-secp256k1, frost-taproot, frost-ed25519 or ecdsa-secp256k1.
        #[arg(long, value_parser = parse_scheme_arg)]
        scheme: Scheme,
        /// Signatures need this many nodes.
        #[arg(long)]
        threshold: u32,
        /// Nodes to hold shares, e.g. 1,2,3 (default: every node).
        #[arg(long, value_delimiter = ',', value_name = "IDS")]
        nodes: Vec<u32>,
        /// Label for humans.
        #[arg(long)]
        label: Option<String>,
    },
    /// List keys.
    List,
    /// Show one key.
    Show { key_id: String },
    /// Nodes excluded from a key's quorums after a protocol named them as cheaters.
    Exclusions {
        /// Only this key (default: every key).
        #[arg(long, value_name = "ID")]
        key: Option<String>,
    },
    /// Let an excluded node sign with a key again (after investigating it).
    ClearExclusion {
        #[arg(long, value_name = "ID")]
        key: String,
        #[arg(long, value_name = "N")]
        node: u32,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // gRPC statuses print as `Code: message`, not with their metadata.
            let chain: Vec<String> = e
                .chain()
                .map(|cause| match cause.downcast_ref::<tonic::Status>() {
                    Some(s) => format!("{:?}: {}", s.code(), s.message()),
                    None => cause.to_string(),
                })
                .collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let data_dir = match &cli.data_dir {
        Some(d) => d.clone(),
        None => directories::ProjectDirs::from("", "", "sigil")
            .map(|p| p.data_dir().to_owned())
            .context("cannot determine a per-user data directory; pass --data-dir")?,
    };
    match &cli.command {
        Command::Dev {
            command:
                DevCommand::Pki {
                    nodes,
                    trust_domain,
                },
        } => {
            let domain = TrustDomain::new(trust_domain.clone())?;
            let (pki, issued) = ensure_dev_pki(&data_dir, &domain, *nodes)?;
            if cli.json {
                let issued: Vec<String> = issued.iter().map(ToString::to_string).collect();
                println!("{}", json!({ "pki_dir": pki.dir, "issued": issued }));
            } else {
                println!("dev PKI in {}", pki.dir.display());
                for id in issued {
                    println!("  issued {id}");
                }
            }
        }
        Command::Up {
            nodes,
            port,
            ephemeral_ports,
            audit_in_memory,
            audit_in_state_database,
        } => {
            let audit = if *audit_in_memory {
                AuditPlacement::Memory
            } else if *audit_in_state_database {
                AuditPlacement::StateDatabase
            } else {
                AuditPlacement::Default
            };
            up(&cli, &data_dir, *nodes, *port, *ephemeral_ports, audit).await?
        }
        Command::Health => health(&cli, &data_dir).await?,
        Command::Nodes => {
            let ctx =
                ClientContext::load(&data_dir, cli.as_client.as_deref().unwrap_or("operator"))?;
            let resp = KeyAdminClient::new(ctx.coordinator()?)
                .list_nodes(pb::ListNodesRequest {})
                .await?
                .into_inner();
            if cli.json {
                let nodes: Vec<_> = resp
                    .nodes
                    .iter()
                    .map(|n| json!({"node_id": n.node_id, "endpoint": n.endpoint, "zone": n.zone, "healthy": n.healthy, "version": n.version, "detail": n.detail}))
                    .collect();
                println!("{}", json!({ "nodes": nodes }));
            } else {
                for n in resp.nodes {
                    let state = if n.healthy {
                        "healthy".to_owned()
                    } else {
                        format!("UNHEALTHY ({})", n.detail)
                    };
                    println!(
                        "node {:>3}  {:<8} {:<22} {}",
                        n.node_id, n.zone, n.endpoint, state
                    );
                }
            }
        }
        Command::Key { command } => key(&cli, &data_dir, command).await?,
        Command::Sign(args) => sign(&cli, &data_dir, args).await?,
        Command::Verify(args) => verify(&cli, args)?,
        Command::Eth {
            command: EthCommand::SignTx(args),
        } => eth_sign_tx(&cli, &data_dir, args).await?,
        Command::Bench {
            command: BenchCommand::Sign(args),
        } => bench_sign(&cli, &data_dir, args).await?,
        Command::Audit { command } => audit(&cli, &data_dir, command).await?,
    }
    Ok(())
}

async fn audit(cli: &Cli, data_dir: &Path, command: &AuditCommand) -> Result<()> {
    let ctx = || ClientContext::load(data_dir, cli.as_client.as_deref().unwrap_or("auditor"));
    match command {
        AuditCommand::Query(args) => {
            let ctx = ctx()?;
            let actor = args
                .actor
                .as_deref()
                .map(|a| expand_identity(a, ctx.domain()))
                .transpose()?;
            let resp = AuditClient::new(ctx.coordinator()?)
                .query_records(pb::QueryRecordsRequest {
                    from_time: args.from.clone().unwrap_or_default(),
                    to_time: args.to.clone().unwrap_or_default(),
                    key_id: args.key.clone().unwrap_or_default(),
                    actor: actor.unwrap_or_default(),
                    action: args.action.clone().unwrap_or_default(),
                    outcome: args.outcome.clone().unwrap_or_default(),
                    limit: args.limit.unwrap_or(0),
                    process: args.process.clone().unwrap_or_default(),
                    after_sequence: args.after.unwrap_or(0),
                })
                .await?
                .into_inner();
            let records = resp
                .records
                .into_iter()
                .map(sigil_proto::audit::record_from_wire)
                .collect::<Result<Vec<_>, _>>()?;
            if cli.json {
                println!("{}", json!({ "records": records }));
            } else {
                for r in &records {
                    let mut what = r.detail.clone();
                    if !r.quorum.is_empty() {
                        what = format!("nodes {:?} {what}", r.quorum);
                    }
                    if !r.culprits.is_empty() {
                        what = format!("culprits {:?} {what}", r.culprits);
                    }
                    println!(
                        "{:>6}  {}  {:<22} {:<40} {:<26} {:<18} {}",
                        r.sequence,
                        r.timestamp,
                        r.action,
                        r.actor,
                        r.outcome,
                        if r.key_id.is_empty() { "-" } else { &r.key_id },
                        what
                    );
                }
                eprintln!("{} records", records.len());
            }
        }
        AuditCommand::Export { out } => {
            let ctx = ctx()?;
            let data = sigil_cli::audit::fetch_live(ctx.coordinator()?).await?;
            let files = sigil_cli::audit::write_dir(&data, out)?;
            let count: usize = data.records.values().map(Vec::len).sum();
            if cli.json {
                println!(
                    "{}",
                    json!({"dir": out, "files": files, "records": count, "unavailable": data.problems})
                );
            } else {
                for f in &files {
                    println!("wrote {}", f.display());
                }
                println!("{count} records of {} processes", data.processes().len());
                for p in &data.problems {
                    eprintln!("warning: {p}");
                }
            }
            if !data.problems.is_empty() {
                bail!("{} logs could not be exported", data.problems.len());
            }
        }
        AuditCommand::Heads { process, all } => {
            let ctx = ctx()?;
            let resp = AuditClient::new(ctx.coordinator()?)
                .get_signed_heads(pb::GetSignedHeadsRequest {
                    process: process.clone().unwrap_or_default(),
                    all: *all,
                })
                .await?
                .into_inner();
            let heads = resp
                .heads
                .into_iter()
                .map(sigil_proto::audit::head_from_wire)
                .collect::<Result<Vec<_>, _>>()?;
            if cli.json {
                let unavailable: Vec<_> = resp
                    .unavailable
                    .iter()
                    .map(|u| json!({"process": u.process, "reason": u.reason}))
                    .collect();
                println!(
                    "{}",
                    json!({"heads": heads, "processes": resp.processes, "unavailable": unavailable})
                );
            } else {
                for h in &heads {
                    println!(
                        "{:<12} {:>8}  {}  {}",
                        h.process,
                        h.sequence,
                        h.timestamp,
                        hex::encode(h.head_hash)
                    );
                }
                for u in &resp.unavailable {
                    println!("{:<12} UNAVAILABLE: {}", u.process, u.reason);
                }
            }
            if !resp.unavailable.is_empty() {
                bail!("{} processes did not answer", resp.unavailable.len());
            }
        }
        AuditCommand::Verify(args) => audit_verify(cli, data_dir, args).await?,
    }
    Ok(())
}

/// `client/signer` → `spiffe://<domain>/client/signer`; URIs unchanged.
fn expand_identity(actor: &str, domain: &TrustDomain) -> Result<String> {
    if actor.starts_with("spiffe://") {
        return Ok(actor.to_owned());
    }
    let identity: sigil_tls::Identity = actor.parse().with_context(|| {
        format!("--actor {actor:?} is neither a SPIFFE URI nor an identity like client/signer")
    })?;
    Ok(identity.to_uri(domain))
}

async fn audit_verify(cli: &Cli, data_dir: &Path, args: &AuditVerifyArgs) -> Result<()> {
    use sigil_cli::audit;
    let cluster = sigil_cli::local::ClusterInfo::load(data_dir).ok();
    let domain = match (&args.trust_domain, &cluster) {
        (Some(d), _) => TrustDomain::new(d.clone())?,
        (None, Some(info)) => info.trust_domain.clone(),
        (None, None) => TrustDomain::default(),
    };
    let ca = args
        .ca
        .clone()
        .unwrap_or_else(|| data_dir.join("pki").join("ca.pem"));
    let verifier = audit::verifier(&ca, &domain)?;
    let (source, result) = match (&args.dir, &args.db, &args.process) {
        (Some(dir), _, _) => (
            format!("export {}", dir.display()),
            audit::verify(&audit::load_dir(dir)?, &verifier),
        ),
        (None, Some(db), Some(process)) => (
            format!("database {} ({process})", db.display()),
            audit::verify_db(db, process, &verifier).await?,
        ),
        _ => {
            let ctx = ClientContext::load(data_dir, cli.as_client.as_deref().unwrap_or("auditor"))?;
            (
                format!("live cluster at {}", ctx.info.coordinator),
                audit::verify(&audit::fetch_live(ctx.coordinator()?).await?, &verifier),
            )
        }
    };
    let mut first: std::collections::BTreeMap<&str, &audit::Problem> = Default::default();
    for p in &result.problems {
        first.entry(p.process.as_str()).or_insert(p);
    }
    if cli.json {
        println!(
            "{}",
            json!({
                "ok": result.is_ok(),
                "source": source,
                "processes": result.processes,
                "records": result.records,
                "heads": result.heads,
                "heads_matched": result.heads_matched,
                "problems": result.problems,
                "first": first,
            })
        );
    } else {
        println!(
            "{source}: {} processes, {} records, {} signed heads ({} matched)",
            result.processes.len(),
            result.records,
            result.heads,
            result.heads_matched
        );
        if result.is_ok() {
            println!("OK: every chain, signed head and cross-check verifies");
        } else {
            println!("process sequence kind reason");
            for p in &result.problems {
                let is_first = first
                    .get(p.process.as_str())
                    .is_some_and(|f| std::ptr::eq(*f, p));
                println!("{}{p}", if is_first { "* " } else { "  " });
            }
            println!();
            for (process, p) in &first {
                println!(
                    "first inconsistent record of {process}: sequence {} ({})",
                    p.sequence, p.kind
                );
            }
        }
    }
    if !result.is_ok() {
        bail!(
            "audit verification failed: {} problems",
            result.problems.len()
        );
    }
    Ok(())
}

async fn key(cli: &Cli, data_dir: &Path, command: &KeyCommand) -> Result<()> {
    let ctx = ClientContext::load(data_dir, cli.as_client.as_deref().unwrap_or("operator"))?;
    let mut client = KeyAdminClient::new(ctx.coordinator()?);
    match command {
        KeyCommand::Create {
            scheme,
            threshold,
            nodes,
            label,
        } => {
            let key = client
                .create_key(pb::CreateKeyRequest {
                    scheme: scheme_to_wire(*scheme) as i32,
                    threshold: *threshold,
                    nodes: nodes.clone(),
                    label: label.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .key
                .context("the coordinator returned no key")?;
            if cli.json {
                println!("{}", key_json(&key));
            } else {
                print_key(&key);
            }
        }
        KeyCommand::List => {
            let keys = client
                .list_keys(pb::ListKeysRequest {})
                .await?
                .into_inner()
                .keys;
            if cli.json {
                let keys: Vec<_> = keys.iter().map(key_json).collect();
                println!("{}", json!({ "keys": keys }));
            } else if keys.is_empty() {
                println!("no keys");
            } else {
                for k in &keys {
                    println!(
                        "{}  {:<16} {}-of-{}  {}",
                        k.key_id,
                        scheme_name(k.scheme),
                        k.threshold,
                        k.participants.len(),
                        hex::encode(&k.public_key)
                    );
                }
            }
        }
        KeyCommand::Exclusions { key } => {
            let exclusions = client
                .list_exclusions(pb::ListExclusionsRequest {
                    key_id: key.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .exclusions;
            if cli.json {
                let list: Vec<_> = exclusions
                    .iter()
                    .map(|e| json!({"key_id": e.key_id, "node_id": e.node_id, "session_id": e.session_id, "reason": e.reason, "created_at": e.created_at}))
                    .collect();
                println!("{}", json!({ "exclusions": list }));
            } else if exclusions.is_empty() {
                println!("no exclusions");
            } else {
                for e in &exclusions {
                    println!(
                        "{}  node {:>3}  {}  session {}  {}",
                        e.key_id, e.node_id, e.created_at, e.session_id, e.reason
                    );
                }
            }
        }
        KeyCommand::ClearExclusion { key, node, reason } => {
            let cleared = client
                .clear_exclusion(pb::ClearExclusionRequest {
                    key_id: key.clone(),
                    node_id: *node,
                    reason: reason.clone(),
                })
                .await?
                .into_inner()
                .cleared;
            if cli.json {
                println!(
                    "{}",
                    json!({ "key_id": key, "node_id": node, "cleared": cleared })
                );
            } else {
                println!("cleared {cleared} exclusion record(s) of node {node} for key {key}");
            }
        }
        KeyCommand::Show { key_id } => {
            let key = client
                .get_key(pb::GetKeyRequest {
                    key_id: key_id.clone(),
                })
                .await?
                .into_inner();
            if cli.json {
                println!("{}", key_json(&key));
            } else {
                print_key(&key);
            }
        }
    }
    Ok(())
}

/// A key, one field per line.
fn print_key(k: &pb::KeyInfo) {
    println!("key {}", k.key_id);
    println!("  scheme      {}", scheme_name(k.scheme));
    let nodes: Vec<String> = k.participants.iter().map(ToString::to_string).collect();
    println!(
        "  threshold   {}-of-{} (nodes {})",
        k.threshold,
        k.participants.len(),
        nodes.join(", ")
    );
    println!("  public key  {}", hex::encode(&k.public_key));
    let mut addresses: Vec<_> = k.addresses.iter().collect();
    addresses.sort();
    for (chain, address) in addresses {
        println!("  {:<11} {address}", format!("{chain}:"));
    }
    if !k.label.is_empty() {
        println!("  label       {}", k.label);
    }
    if !k.created_at.is_empty() {
        println!("  created     {}", k.created_at);
    }
}

/// Sends one sign request. On failure prints the idempotency key, so the
/// caller can retry safely (a timed-out request may still have signed; a
/// retry with the same key never signs twice).
async fn request_signature(
    data_dir: &Path,
    cli: &Cli,
    request: pb::SignRequest,
) -> Result<pb::SignResponse> {
    let ctx = ClientContext::load(data_dir, cli.as_client.as_deref().unwrap_or("signer"))?;
    let idempotency_key = request.idempotency_key.clone();
    match SigningClient::new(ctx.coordinator()?).sign(request).await {
        Ok(r) => Ok(r.into_inner()),
        Err(status) => {
            eprintln!(
                "idempotency key: {idempotency_key} (retry with --idempotency-key {idempotency_key})"
            );
            Err(status.into())
        }
    }
}

async fn sign(cli: &Cli, data_dir: &Path, args: &SignArgs) -> Result<()> {
    let message = args.message.read()?;
    let idempotency_key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let resp = request_signature(
        data_dir,
        cli,
        pb::SignRequest {
            key_id: args.key.clone(),
            message,
            idempotency_key: idempotency_key.clone(),
            derivation_path: args.path.clone().unwrap_or_default(),
            encoding: args.hash.encoding() as i32,
            ..Default::default()
        },
    )
    .await?;
    let ecdsa = resp.scheme == pb::Scheme::EcdsaSecp256k1 as i32;
    let signers: Vec<u32> = resp.signers.clone();
    if cli.json {
        let mut out = json!({
            "key_id": args.key,
            "signature": hex::encode(&resp.signature),
            "public_key": hex::encode(&resp.public_key),
            "scheme": scheme_name(resp.scheme),
            "signers": signers,
            "session_id": resp.session_id,
            "idempotency_key": idempotency_key,
            "replayed": resp.replayed,
        });
        if ecdsa {
            out["recovery_id"] = json!(resp.recovery_id);
            out["derivation_path"] = json!(args.path.clone().unwrap_or_else(|| "m".into()));
        }
        println!("{out}");
    } else {
        let signers: Vec<String> = signers.iter().map(ToString::to_string).collect();
        println!("signature        {}", hex::encode(&resp.signature));
        println!("public key       {}", hex::encode(&resp.public_key));
        println!("scheme           {}", scheme_name(resp.scheme));
        if ecdsa {
            println!("recovery id      {}", resp.recovery_id);
            if let Some(path) = &args.path {
                println!("path             {path}");
            }
        }
        println!("signers          nodes {}", signers.join(", "));
        println!("session          {}", resp.session_id);
        println!("idempotency key  {idempotency_key}");
        if resp.replayed {
            println!(
                "replayed         yes: the stored result of an earlier request with this idempotency key"
            );
        }
    }
    Ok(())
}

async fn eth_sign_tx(cli: &Cli, data_dir: &Path, args: &EthSignTxArgs) -> Result<()> {
    let tx = sigil_chains::Eip1559Tx {
        chain_id: args.chain_id,
        nonce: args.nonce,
        max_priority_fee_per_gas: args.max_priority_fee,
        max_fee_per_gas: args.max_fee,
        gas_limit: args.gas,
        to: args
            .to
            .as_deref()
            .map(sigil_chains::parse_address)
            .transpose()
            .context("--to")?,
        value: args
            .value
            .parse::<sigil_chains::U256>()
            .context("--value must be a decimal number of wei")?,
        data: match &args.data {
            Some(d) => input::decode_hex("data", d)?,
            None => Vec::new(),
        },
    };
    tx.validate()?;
    let idempotency_key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let resp = request_signature(
        data_dir,
        cli,
        pb::SignRequest {
            key_id: args.key.clone(),
            // The unsigned transaction itself: each node hashes it (and can
            // check what it pays) rather than signing an opaque digest.
            message: tx.signing_payload(),
            idempotency_key: idempotency_key.clone(),
            derivation_path: args.path.clone().unwrap_or_default(),
            encoding: pb::MessageEncoding::Keccak256 as i32,
            ..Default::default()
        },
    )
    .await?;
    if resp.scheme != pb::Scheme::EcdsaSecp256k1 as i32 {
        bail!(
            "key {} is a {} key; Ethereum transactions need ecdsa-secp256k1",
            args.key,
            scheme_name(resp.scheme)
        );
    }
    let (r, s) = resp
        .signature
        .split_at_checked(32)
        .filter(|(_, s)| s.len() == 32)
        .context("the coordinator returned a signature that is not 64 bytes")?;
    let r: [u8; 32] = r.try_into()?;
    let s: [u8; 32] = s.try_into()?;
    let recovery_id = u8::try_from(resp.recovery_id).context("recovery id out of range")?;
    // Check before printing: the signature must recover to the key's address.
    let signature = sigil_chains::RecoverableSignature::from_prehash(
        &resp.public_key,
        &tx.signing_hash(),
        &r,
        &s,
    )
    .context("the signature does not verify under the key")?;
    if signature.recovery_id != recovery_id {
        bail!(
            "the coordinator reported recovery id {recovery_id}, the signature recovers with {}",
            signature.recovery_id
        );
    }
    let raw = tx.encode_with_signature(&signature)?;
    let from = sigil_chains::ethereum_address(&resp.public_key)?;
    let hash = sigil_chains::eip1559::transaction_hash(&raw);
    if cli.json {
        println!(
            "{}",
            json!({
                "raw_transaction": format!("0x{}", hex::encode(&raw)),
                "transaction_hash": format!("0x{}", hex::encode(hash)),
                "from": from,
                "key_id": args.key,
                "derivation_path": args.path.clone().unwrap_or_else(|| "m".into()),
                "signature": hex::encode(&resp.signature),
                "recovery_id": recovery_id,
                "idempotency_key": idempotency_key,
                "replayed": resp.replayed,
            })
        );
    } else {
        println!("raw transaction  0x{}", hex::encode(&raw));
        println!("tx hash          0x{}", hex::encode(hash));
        println!("from             {from}");
        println!("idempotency key  {idempotency_key}");
    }
    Ok(())
}

fn verify(cli: &Cli, args: &VerifyArgs) -> Result<()> {
    let checked = (|| -> Result<()> {
        let scheme = parse_scheme_arg(&args.scheme).map_err(anyhow::Error::msg)?;
        let public_key = input::decode_hex("public key", &args.public_key)?;
        let signature = input::decode_hex("signature", &args.signature)?;
        let message = args.message.read()?;
        // The same validation and hashing as the cluster's; no path: the
        // public key given is the (child) key that signed.
        let input = SignInput::new(scheme, &message, args.hash.into(), "")?;
        engine::verify(scheme, &public_key, &input, &signature)
            .context("signature is not valid")?;
        Ok(())
    })();
    match checked {
        Ok(()) => {
            if cli.json {
                println!("{}", json!({ "valid": true }));
            } else {
                println!("valid");
            }
            Ok(())
        }
        Err(e) => {
            if cli.json {
                println!("{}", json!({ "valid": false, "error": format!("{e:#}") }));
            }
            Err(e)
        }
    }
}

async fn bench_sign(cli: &Cli, data_dir: &Path, args: &BenchSignArgs) -> Result<()> {
    if args.concurrency == 0 || args.connections == 0 {
        bail!("--concurrency and --connections must be at least 1");
    }
    let max = sigil_protocol::engine::MAX_MESSAGE_LEN;
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
            let ctx = ClientContext::load(data_dir, "operator")?;
            KeyAdminClient::new(ctx.coordinator()?)
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
    let client_name = cli.as_client.as_deref().unwrap_or("signer");
    let ctx = ClientContext::load(data_dir, client_name)?;
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());

    // One warm-up request per connection: connects (TLS handshake) outside
    // the measurement, and checks the key signs and its signatures verify.
    let mut channels = Vec::with_capacity(args.connections);
    let mut warm = None;
    for i in 0..args.connections {
        let channel = ctx.coordinator()?;
        let message = vec![0x5a; args.message_size];
        let resp = SigningClient::new(channel.clone())
            .sign(pb::SignRequest {
                key_id: key_id.clone(),
                message: message.clone(),
                idempotency_key: format!("{prefix}-warmup-{i}"),
                encoding: pb::MessageEncoding::Raw as i32,
                ..Default::default()
            })
            .await
            .with_context(|| format!("warm-up signature with key {key_id}"))?
            .into_inner();
        let scheme = sigil_proto::convert::scheme_from_wire(resp.scheme)
            .context("the coordinator returned no scheme")?;
        let input = SignInput::new(scheme, &message, Encoding::Raw, "")?;
        engine::verify(scheme, &resp.public_key, &input, &resp.signature)
            .context("the warm-up signature does not verify")?;
        warm = Some((scheme, resp.signers.len()));
        channels.push(channel);
    }
    let (scheme, signers) = warm.context("no warm-up request ran")?;
    let threshold = u16::try_from(signers).context("signer count out of range")?;
    let participants = key_participants(data_dir, &key_id)
        .await
        .unwrap_or(ctx.info.nodes.len());
    let participants = u16::try_from(participants).context("participant count out of range")?;

    let spec = LoadSpec {
        key_id: key_id.clone(),
        concurrency: args.concurrency,
        requests: args.requests,
        duration,
        message_size: args.message_size,
        idempotency_prefix: prefix,
    };
    if !cli.json {
        eprintln!(
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
        );
    }
    let report = loadgen::run(&spec, &channels).await;

    let baseline = if args.baseline_duration.is_zero() {
        None
    } else {
        if !cli.json {
            eprintln!(
                "measuring in-process crypto-only signing for {:?} on one thread...",
                args.baseline_duration
            );
        }
        let (size, duration) = (args.message_size, args.baseline_duration);
        Some(
            tokio::task::spawn_blocking(move || {
                sigil_cli::bench::run(scheme, threshold, participants, size, duration)
            })
            .await
            .context("in-process baseline task")?
            .context("in-process baseline")?,
        )
    };
    let ratio = baseline
        .as_ref()
        .map(|b| b.throughput())
        .filter(|t| *t > 0.0)
        .map(|t| report.throughput() / t);

    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    if cli.json {
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
        let l = report.latency;
        println!(
            "{}",
            json!({
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
                "in_process": baseline.as_ref().map(|b| json!({
                    "signatures": b.signatures,
                    "elapsed_s": b.elapsed.as_secs_f64(),
                    "throughput_sps": b.throughput(),
                    "mean_ms": ms(b.mean()),
                    "threads": 1,
                })),
                "ratio": ratio,
            })
        );
    } else {
        let l = report.latency;
        println!(
            "cluster      {} ok, {} failed in {:.2} s",
            report.ok,
            report.failed,
            report.elapsed.as_secs_f64()
        );
        println!("throughput   {:.1} signatures/s", report.throughput());
        println!(
            "latency ms   p50 {}  p95 {}  p99 {}  max {}  (min {}, mean {})",
            ms(l.p50),
            ms(l.p95),
            ms(l.p99),
            ms(l.max),
            ms(l.min),
            ms(l.mean)
        );
        for (code, (count, message)) in &report.errors {
            println!("errors       {count} x {code}: {message}");
        }
        if let Some(b) = &baseline {
            println!(
                "in-process   {:.1} signatures/s on one thread ({} ms each, {} signatures), crypto only",
                b.throughput(),
                ms(b.mean()),
                b.signatures
            );
        }
        if let Some(r) = ratio {
            println!("ratio        cluster / in-process = {r:.3}");
        }
    }
    if report.failed > 0 {
        bail!("{} of {} requests failed", report.failed, report.requests());
    }
    Ok(())
}

/// The number of nodes holding shares of `key_id`, if the `operator`
/// identity of the data directory can tell (KeyAdmin needs that role).
async fn key_participants(data_dir: &Path, key_id: &str) -> Option<usize> {
    let ctx = ClientContext::load(data_dir, "operator").ok()?;
    let key = KeyAdminClient::new(ctx.coordinator().ok()?)
        .get_key(pb::GetKeyRequest {
            key_id: key_id.to_owned(),
        })
        .await
        .ok()?
        .into_inner();
    Some(key.participants.len())
}

fn scheme_name(v: i32) -> &'static str {
    match pb::Scheme::try_from(v).unwrap_or(pb::Scheme::Unspecified) {
        pb::Scheme::FrostSecp256k1 => "frost-secp256k1",
        pb::Scheme::FrostTaproot => "frost-taproot",
        pb::Scheme::FrostEd25519 => "frost-ed25519",
        pb::Scheme::EcdsaSecp256k1 => "ecdsa-secp256k1",
        pb::Scheme::Unspecified => "unspecified",
    }
}

fn key_json(k: &pb::KeyInfo) -> serde_json::Value {
    json!({
        "key_id": k.key_id,
        "scheme": scheme_name(k.scheme),
        "threshold": k.threshold,
        "participants": k.participants,
        "public_key": hex::encode(&k.public_key),
        "addresses": k.addresses,
        "ethereum_address": k.addresses.get("ethereum"),
        "epoch": k.epoch,
        "label": k.label,
        "created_at": k.created_at,
    })
}

/// Where `sigil up` keeps the audit logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuditPlacement {
    /// Each process's own `<stem>-audit.db`.
    Default,
    /// In memory (benchmarks only).
    Memory,
    /// In each process's state database.
    StateDatabase,
}

async fn up(
    cli: &Cli,
    data_dir: &std::path::Path,
    nodes: u16,
    port: u16,
    ephemeral: bool,
    audit: AuditPlacement,
) -> Result<()> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let mut spec = ClusterSpec::new(data_dir, nodes);
    spec.base_port = (!ephemeral).then_some(port);
    match audit {
        AuditPlacement::Default => {}
        AuditPlacement::Memory => {
            eprintln!("WARNING: audit logs in memory (--audit-in-memory): for benchmarks only");
            spec.node_audit.database = Some(AUDIT_MEMORY.to_owned());
            spec.coordinator_audit.database = Some(AUDIT_MEMORY.to_owned());
        }
        AuditPlacement::StateDatabase => {
            // Relative to each process's config directory, like `database`.
            spec.node_audit.database = Some("node.db".to_owned());
            spec.coordinator_audit.database = Some("coordinator.db".to_owned());
        }
    }
    let cluster = LocalCluster::start(spec).await?;
    if cli.json {
        let nodes: Vec<_> = cluster
            .nodes
            .iter()
            .map(|n| json!({"node_id": n.id, "zone": n.zone, "endpoint": n.addr.to_string()}))
            .collect();
        println!(
            "{}",
            json!({"coordinator": cluster.coordinator_addr.to_string(), "nodes": nodes, "data_dir": cluster.data_dir})
        );
    } else {
        let dd = cluster.data_dir.display();
        println!("Sigil local cluster is up (data in {dd})");
        println!("  coordinator  {}", cluster.coordinator_addr);
        for n in &cluster.nodes {
            println!("  node {}       {}  ({})", n.id, n.addr, n.zone);
        }
        println!();
        println!("Try, in another terminal:");
        println!("  cargo run -p sigil-cli -- --data-dir {dd} health");
        println!("  cargo run -p sigil-cli -- --data-dir {dd} nodes");
        println!("  cargo run -p sigil-cli -- --data-dir {dd} key list");
        println!(
            "  grpcurl -cacert {dd}/pki/ca.pem -cert {dd}/pki/client-operator.pem -key {dd}/pki/client-operator.key \\\n      -authority sigil.invalid {} list",
            cluster.coordinator_addr
        );
        println!();
        println!("Ctrl-C stops the cluster.");
    }
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping...");
    cluster.shutdown().await;
    Ok(())
}

async fn health(cli: &Cli, data_dir: &std::path::Path) -> Result<()> {
    let ctx = ClientContext::load(data_dir, cli.as_client.as_deref().unwrap_or("operator"))?;
    let mut targets = vec![("coordinator".to_owned(), ctx.coordinator()?)];
    for n in &ctx.info.nodes {
        targets.push((format!("node-{}", n.id), ctx.node(n.id)?));
    }
    let mut rows = Vec::new();
    let mut all_ok = true;
    for (name, ch) in targets {
        let status = match HealthClient::new(ch)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(r) => tonic_health::pb::health_check_response::ServingStatus::try_from(
                r.into_inner().status,
            )
            .map(|s| s.as_str_name().to_owned())
            .unwrap_or_else(|_| "UNKNOWN".into()),
            Err(s) => format!("ERROR {:?}: {}", s.code(), s.message()),
        };
        all_ok &= status == "SERVING";
        rows.push((name, status));
    }
    if cli.json {
        let map: serde_json::Map<_, _> = rows.iter().map(|(n, s)| (n.clone(), json!(s))).collect();
        println!("{}", serde_json::Value::Object(map));
    } else {
        for (n, s) in &rows {
            println!("{n:<12} {s}");
        }
    }
    if !all_ok {
        bail!("not every process is serving");
    }
    Ok(())
}
