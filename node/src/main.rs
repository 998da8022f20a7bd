//! `sigil-node`: the signer node daemon.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sigil_node::{NodeConfig, NodeServer};

#[derive(Parser, Debug)]
#[command(name = "sigil-node", version, about = "Sigil signer node")]
struct Args {
    /// Configuration file (TOML); SIGIL_NODE_* environment variables override it.
    #[arg(long, short, env = "SIGIL_NODE_CONFIG")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sigil_daemon::init_tracing();
    let args = Args::parse();
    let config = NodeConfig::load(&args.config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let node = NodeServer::open(config).await?;
    node.run(listener, sigil_daemon::shutdown_signal()).await?;
    Ok(())
}
