//! `sigil audit`: the auditor's commands (acts as `auditor`, read-only):
//! query one process's log, export every log, list signed heads, and verify
//! the chains, heads and cross-checks live, on an export or on one
//! database. The fetching, files and verification are the library's
//! ([`sigil_cli::audit`]); this module parses arguments and prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use sigil_cli::audit::{self as lib, Problem};
use sigil_cli::output::Text;
use sigil_proto::v1 as pb;
use sigil_proto::v1::audit_client::AuditClient;
use sigil_tls::TrustDomain;

use super::Context;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
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
    /// export (--dir) or on one process's audit database (--db). Heads are
    /// checked against the CA of --ca / SIGIL_CA, else the profile's, else
    /// `<data-dir>/pki/ca.pem`. Exits non-zero if anything is wrong.
    Verify(AuditVerifyArgs),
}

#[derive(Args, Debug)]
pub struct AuditQueryArgs {
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
pub struct AuditVerifyArgs {
    /// Verify an export written by `sigil audit export` (offline).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Verify one process's log in its SQLite database (offline; needs --process).
    #[arg(long, value_name = "PATH", requires = "process")]
    db: Option<PathBuf>,
    /// The process whose database --db is (`coordinator`, `node-<n>`).
    #[arg(long, requires = "db")]
    process: Option<String>,
    /// Trust domain of the certificates (default: the local cluster's, else sigil.local).
    #[arg(long)]
    trust_domain: Option<String>,
}

pub async fn run(ctx: &Context, command: &AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Query(args) => query(ctx, args).await,
        AuditCommand::Export { out } => export(ctx, out).await,
        AuditCommand::Heads { process, all } => heads(ctx, process.as_deref(), *all).await,
        AuditCommand::Verify(args) => verify(ctx, args).await,
    }
}

async fn query(ctx: &Context, args: &AuditQueryArgs) -> Result<()> {
    let client = ctx.client("auditor")?;
    let actor = args
        .actor
        .as_deref()
        .map(|a| expand_identity(a, client.domain()))
        .transpose()?;
    let filter = sigil_audit::Filter {
        from_time: args.from.clone(),
        to_time: args.to.clone(),
        key_id: args.key.clone(),
        actor,
        action: args.action.clone(),
        outcome: args.outcome.clone(),
        after_sequence: args.after,
        limit: args.limit,
    };
    let request = sigil_proto::audit::query_request(&filter, args.process.as_deref().unwrap_or(""));
    let resp = AuditClient::new(client.connect().await?)
        .query_records(request)
        .await?
        .into_inner();
    let records = resp
        .records
        .into_iter()
        .map(sigil_proto::audit::record_from_wire)
        .collect::<Result<Vec<_>, _>>()?;
    ctx.out.print(&json!({ "records": records }), || {
        let mut t = Text::new();
        for r in &records {
            let mut what = r.detail.clone();
            if !r.quorum.is_empty() {
                what = format!("nodes {:?} {what}", r.quorum);
            }
            if !r.culprits.is_empty() {
                what = format!("culprits {:?} {what}", r.culprits);
            }
            t.line(format_args!(
                "{:>6}  {}  {:<22} {:<40} {:<26} {:<18} {}",
                r.sequence,
                r.timestamp,
                r.action,
                r.actor,
                r.outcome,
                if r.key_id.is_empty() { "-" } else { &r.key_id },
                what
            ));
        }
        t.into()
    });
    ctx.out.note(format_args!("{} records", records.len()));
    Ok(())
}

async fn export(ctx: &Context, out: &Path) -> Result<()> {
    let client = ctx.client("auditor")?;
    let data = lib::fetch_live(client.connect().await?).await?;
    let files = lib::write_dir(&data, out)?;
    let count: usize = data.records.values().map(Vec::len).sum();
    ctx.out.print(
        &json!({"dir": out, "files": files, "records": count, "unavailable": data.problems}),
        || {
            let mut t = Text::new();
            for f in &files {
                t.line(format_args!("wrote {}", f.display()));
            }
            t.line(format_args!(
                "{count} records of {} processes",
                data.processes().len()
            ));
            t.into()
        },
    );
    for p in &data.problems {
        ctx.out.note(format_args!("warning: {p}"));
    }
    if !data.problems.is_empty() {
        bail!("{} logs could not be exported", data.problems.len());
    }
    Ok(())
}

async fn heads(ctx: &Context, process: Option<&str>, all: bool) -> Result<()> {
    let client = ctx.client("auditor")?;
    let resp = AuditClient::new(client.connect().await?)
        .get_signed_heads(pb::GetSignedHeadsRequest {
            process: process.unwrap_or_default().to_owned(),
            all,
        })
        .await?
        .into_inner();
    let heads = resp
        .heads
        .into_iter()
        .map(sigil_proto::audit::head_from_wire)
        .collect::<Result<Vec<_>, _>>()?;
    let unavailable: Vec<_> = resp
        .unavailable
        .iter()
        .map(|u| json!({"process": u.process, "reason": u.reason}))
        .collect();
    ctx.out.print(
        &json!({"heads": heads, "processes": resp.processes, "unavailable": unavailable}),
        || {
            let mut t = Text::new();
            for h in &heads {
                t.line(format_args!(
                    "{:<12} {:>8}  {}  {}",
                    h.process,
                    h.sequence,
                    h.timestamp,
                    hex::encode(h.head_hash)
                ));
            }
            for u in &resp.unavailable {
                t.line(format_args!("{:<12} UNAVAILABLE: {}", u.process, u.reason));
            }
            t.into()
        },
    );
    if !resp.unavailable.is_empty() {
        bail!("{} processes did not answer", resp.unavailable.len());
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

async fn verify(ctx: &Context, args: &AuditVerifyArgs) -> Result<()> {
    let live = args.dir.is_none() && args.db.is_none();
    // Live: the auditor's connection, whose trust domain is the cluster's.
    let client = if live {
        Some(ctx.client("auditor")?)
    } else {
        None
    };
    let cluster = sigil_cli::local::ClusterInfo::load(ctx.data_dir()).ok();
    let domain = match (&args.trust_domain, &client, &cluster) {
        (Some(d), _, _) => TrustDomain::new(d.clone())?,
        (None, Some(c), _) => c.domain().clone(),
        (None, None, Some(info)) => info.trust_domain.clone(),
        (None, None, None) => TrustDomain::default(),
    };
    let ca = ctx.ca()?;
    let verifier = lib::verifier(&ca, &domain)?;
    let (source, result) = match (&args.dir, &args.db, &args.process) {
        (Some(dir), _, _) => (
            format!("export {}", dir.display()),
            lib::verify(&lib::load_dir(dir)?, &verifier),
        ),
        (None, Some(db), Some(process)) => (
            format!("database {} ({process})", db.display()),
            lib::verify_db(db, process, &verifier).await?,
        ),
        _ => {
            let client = client.context("no connection for a live verification")?;
            let coordinator = client.connect_coordinator().await?;
            (
                format!("live cluster at {}", coordinator.endpoint),
                lib::verify(&lib::fetch_live(coordinator.channel).await?, &verifier),
            )
        }
    };
    // The first problem of each process: where its log stops being trustworthy.
    let mut first: BTreeMap<&str, &Problem> = BTreeMap::new();
    for p in &result.problems {
        first.entry(p.process.as_str()).or_insert(p);
    }
    let value = json!({
        "ok": result.is_ok(),
        "source": source,
        "processes": result.processes,
        "records": result.records,
        "heads": result.heads,
        "heads_matched": result.heads_matched,
        "problems": result.problems,
        "first": first,
    });
    ctx.out.print(&value, || {
        let mut t = Text::new();
        t.line(format_args!(
            "{source}: {} processes, {} records, {} signed heads ({} matched)",
            result.processes.len(),
            result.records,
            result.heads,
            result.heads_matched
        ));
        if result.is_ok() {
            t.line("OK: every chain, signed head and cross-check verifies");
            return t.into();
        }
        t.line("process sequence kind reason");
        for p in &result.problems {
            let is_first = first
                .get(p.process.as_str())
                .is_some_and(|f| std::ptr::eq(*f, p));
            t.line(format_args!("{}{p}", if is_first { "* " } else { "  " }));
        }
        t.line("");
        for (process, p) in &first {
            t.line(format_args!(
                "first inconsistent record of {process}: sequence {} ({})",
                p.sequence, p.kind
            ));
        }
        t.into()
    });
    if !result.is_ok() {
        bail!(
            "audit verification failed: {} problems",
            result.problems.len()
        );
    }
    Ok(())
}
