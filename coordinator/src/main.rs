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
    init_tracing();
    let args = Args::parse();
    let config = CoordinatorConfig::load(&args.config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let server = CoordinatorServer::open(config).await?;
    server.run(listener, shutdown_signal()).await?;
    Ok(())
}

fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG").unwrap_or_else(|_| "info".into());
    if std::env::var("SIGIL_LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
