//! `sigil-coordinator`: the coordinator daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sigil_coordinator::{CoordinatorConfig, CoordinatorServer};

#[derive(Parser, Debug)]
#[command(name = "sigil-coordinator", version, about = "Sigil coordinator")]
struct Args {
    /// Configuration file (TOML); SIGIL_COORDINATOR_* environment variables override it.
    #[arg(long, short, env = "SIGIL_COORDINATOR_CONFIG")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sigil_daemon::init_tracing();
    let args = Args::parse();
    let config = CoordinatorConfig::load(&args.config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let server = CoordinatorServer::open(config).await?;
    server
        .run(listener, sigil_daemon::shutdown_signal())
        .await?;
    Ok(())
}
