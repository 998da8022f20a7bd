//! `sigil up`: a local cluster (coordinator and nodes) on loopback, with
//! the data directory's PKI, until Ctrl-C. It writes (or updates) the
//! connection profile `local` for it — endpoints and the PKI directory —
//! without putting it in use.

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;
use sigil_cli::local::{ClusterSpec, LocalCluster};
use sigil_cli::output::Text;
use sigil_cli::profile::{self as profiles, LOCAL_PROFILE, Profile, absolute};

use super::Context;

/// The audit database value that keeps a log in memory (benchmarks only).
const AUDIT_MEMORY: &str = sigil_coordinator::config::AUDIT_MEMORY;

#[derive(Args, Debug)]
pub struct UpArgs {
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
    /// The daemons refuse it unless SIGIL_BENCHMARK_IN_MEMORY_AUDIT=1 is set.
    #[arg(long)]
    audit_in_memory: bool,
    /// Keep each process's audit log in its state database instead of
    /// its own file (`<stem>-audit.db`, the default): the log then shares
    /// SQLite's write lock with the process's other writes (slower; for
    /// comparison).
    #[arg(long, conflicts_with = "audit_in_memory")]
    audit_in_state_database: bool,
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

impl UpArgs {
    fn audit(&self) -> AuditPlacement {
        if self.audit_in_memory {
            AuditPlacement::Memory
        } else if self.audit_in_state_database {
            AuditPlacement::StateDatabase
        } else {
            AuditPlacement::Default
        }
    }
}

pub async fn run(ctx: &Context, args: &UpArgs) -> Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let mut spec = ClusterSpec::new(ctx.data_dir(), args.nodes);
    spec.base_port = (!args.ephemeral_ports).then_some(args.port);
    match args.audit() {
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
    let profile_file = save_local_profile(&cluster);
    let nodes: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| json!({"node_id": n.id, "zone": n.zone, "endpoint": n.addr.to_string()}))
        .collect();
    ctx.out.print(
        &json!({
            "coordinator": cluster.coordinator_addr.to_string(),
            "nodes": nodes,
            "data_dir": cluster.data_dir,
            "profile": profile_file.as_ref().map(|f| json!({"name": LOCAL_PROFILE, "file": f})),
        }),
        || {
            let dd = cluster.data_dir.display();
            let mut t = Text::new();
            t.line(format_args!("Sigil local cluster is up (data in {dd})"));
            t.line(format_args!("  coordinator  {}", cluster.coordinator_addr));
            for n in &cluster.nodes {
                t.line(format_args!("  node {}       {}  ({})", n.id, n.addr, n.zone));
            }
            t.line("");
            t.line("Try, in another terminal:");
            t.line(format_args!("  cargo run -p sigil-cli -- --data-dir {dd} health"));
            t.line(format_args!("  cargo run -p sigil-cli -- --data-dir {dd} nodes"));
            t.line(format_args!("  cargo run -p sigil-cli -- --data-dir {dd} key list"));
            if let Some(file) = &profile_file {
                t.line(format_args!(
                    "  cargo run -p sigil-cli -- --profile {LOCAL_PROFILE} key list   (profile in {})",
                    file.display()
                ));
            }
            t.line(format_args!(
                "  grpcurl -cacert {dd}/pki/ca.pem -cert {dd}/pki/client-operator.pem -key {dd}/pki/client-operator.key \\\n      localhost:{} list",
                cluster.coordinator_addr.port()
            ));
            t.line("");
            t.line("Ctrl-C stops the cluster.");
            t.into()
        },
    );
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping...");
    cluster.shutdown().await;
    Ok(())
}

/// Writes profile `local` for `cluster`; returns the profiles file, or
/// `None` (with a warning) if it cannot be written: the cluster runs anyway.
fn save_local_profile(cluster: &LocalCluster) -> Option<std::path::PathBuf> {
    let pki = absolute(&cluster.data_dir.join("pki"));
    let profile = Profile {
        coordinators: vec![cluster.coordinator_addr.to_string()],
        ca: Some(pki.join("ca.pem")),
        cert: None,
        key: None,
        pki_dir: Some(pki),
        trust_domain: Some(cluster.info.trust_domain.to_string()),
        nodes: cluster.info.nodes.clone(),
    };
    let saved = profiles::default_path().and_then(|path| {
        profiles::save_local(&path, profile)?;
        Ok(path)
    });
    match saved {
        Ok(path) => Some(path),
        Err(e) => {
            tracing::warn!("profile {LOCAL_PROFILE} not written: {e}");
            None
        }
    }
}
