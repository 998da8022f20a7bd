//! `sigil`: the command line of a Sigil cluster — dev PKI, local cluster,
//! health, nodes, keys, signing (every request carries an intent signed by
//! the payment-service identity), offline verification and a signing load
//! generator, the security officers' `policy` commands (show, propose,
//! sign, apply), the approvers' `approvals` commands (list, approve), and
//! the auditor's `audit` commands (query, export, heads, verify),
//! backups and recovery drills (`backup`, `drill`), and named connection
//! profiles (`profile`). Commands reach the cluster of the data directory,
//! or the one `--coordinator`, `--ca`, `--cert`, `--cert-key` (or
//! `SIGIL_*`) and `--profile` name; see `docs/cli.md`. Every
//! command that prints data prints JSON with `--json`; errors go to stderr
//! with their gRPC code, message and `sigil-*` details.
//!
//! This file holds only the global flags and the dispatch: each command
//! group lives in its own module under `cmd/`, with its arguments and its
//! `run`, and prints through [`sigil_cli::output::Output`].

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use sigil_cli::output::Output;

mod cmd;

use cmd::{
    Context, Settings, approvals, audit, backup, bench, chain, dev, drill, eth, health, key, nodes,
    policy, profile, sign, up, verify,
};
use sigil_cli::connect::Overrides;

#[derive(Parser, Debug)]
#[command(name = "sigil", version, about = "Sigil threshold-signature cluster")]
struct Cli {
    /// Data directory of the local cluster (PKI, configs, databases).
    #[arg(long, global = true, env = "SIGIL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Client identity to act as (default: the one the command's role
    /// needs), from the data directory or a profile's PKI directory.
    #[arg(long = "as", global = true, value_name = "CLIENT")]
    as_client: Option<String>,
    /// Coordinator address (host:port). Repeat it, or separate addresses
    /// with commas, to fail over: each is tried in order.
    #[arg(
        long = "coordinator",
        global = true,
        env = "SIGIL_COORDINATOR",
        value_delimiter = ',',
        value_name = "ADDR",
        help_heading = "Connection"
    )]
    coordinators: Vec<String>,
    /// CA certificate(s) of the cluster (PEM).
    #[arg(
        long,
        global = true,
        env = "SIGIL_CA",
        value_name = "PATH",
        help_heading = "Connection"
    )]
    ca: Option<PathBuf>,
    /// Client certificate (PEM). Its SPIFFE URI is the identity: `--as`
    /// and the command's role do not pick another.
    #[arg(
        long,
        global = true,
        env = "SIGIL_CERT",
        value_name = "PATH",
        help_heading = "Connection"
    )]
    cert: Option<PathBuf>,
    /// Private key of --cert (PEM).
    #[arg(
        long = "cert-key",
        global = true,
        env = "SIGIL_KEY",
        value_name = "PATH",
        help_heading = "Connection"
    )]
    cert_key: Option<PathBuf>,
    /// Connection profile (`sigil profile list`); default: the one in use.
    #[arg(
        long,
        global = true,
        env = "SIGIL_PROFILE",
        value_name = "NAME",
        help_heading = "Connection"
    )]
    profile: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Development helpers.
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
    /// Start a local cluster (coordinator + nodes) on loopback; Ctrl-C stops it.
    Up(up::UpArgs),
    /// Health of the coordinator and every node (gRPC health checking).
    Health,
    /// Signer nodes as the coordinator sees them.
    Nodes,
    /// Keys.
    Key {
        #[command(subcommand)]
        command: key::KeyCommand,
    },
    /// Sign a message with a key of the cluster (acts as `signer`: the
    /// request carries an intent signed with that identity's key).
    Sign(sign::SignArgs),
    /// Verify a signature offline (no cluster needed). Exits non-zero unless it is valid.
    Verify(verify::VerifyArgs),
    /// Ethereum helpers for ECDSA keys.
    Eth {
        #[command(subcommand)]
        command: eth::EthCommand,
    },
    /// Bitcoin: sign PSBTs (Taproot with frost-taproot keys, P2WPKH with ECDSA keys).
    Btc {
        #[command(subcommand)]
        command: chain::BtcCommand,
    },
    /// Solana: sign transaction messages with frost-ed25519 keys.
    Sol {
        #[command(subcommand)]
        command: chain::SolCommand,
    },
    /// TRON: sign transactions with ECDSA keys.
    Tron {
        #[command(subcommand)]
        command: chain::TronCommand,
    },
    /// Benchmarks against a running cluster.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// The audit logs (acts as `auditor`, read-only).
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Signed policy documents of keys: show, propose, sign (officers), apply
    /// (`show` and `apply` act as `operator`).
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Sign requests held for approval: list and approve (acts as `approver-1`).
    Approvals {
        #[command(subcommand)]
        command: approvals::ApprovalsCommand,
    },
    /// Every node's shares, sealed to its backup key, into DIR/node-<n>.json
    /// (acts as `operator`).
    Backup(backup::BackupArgs),
    /// Prove a key survives from a backup: restore one node's backup into
    /// an isolated node that co-signs with live nodes, then destroy it
    /// (acts as `operator`, with the officers' authorization; needs the
    /// data directory of a local cluster).
    Drill(drill::DrillArgs),
    /// Named connection settings: add, use, list, remove.
    Profile {
        #[command(subcommand)]
        command: profile::ProfileCommand,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG").unwrap_or_else(|_| "warn".into());
    // Colours only on a terminal, and not with NO_COLOR set (non-empty):
    // redirected or captured output carries no escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // gRPC statuses print as `Code: message` and their `sigil-*` details.
            let chain: Vec<String> = e
                .chain()
                .map(|cause| match cause.downcast_ref::<tonic::Status>() {
                    Some(s) => sigil_cli::status::describe(s),
                    None => cause.to_string(),
                })
                .collect();
            eprintln!("error: {}", chain.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let settings = Settings {
        overrides: Overrides {
            coordinators: cli
                .coordinators
                .iter()
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect(),
            ca: cli.ca,
            cert: cli.cert,
            key: cli.cert_key,
        },
        profile: cli.profile,
        data_dir_given: cli.data_dir.is_some(),
    };
    let ctx = Context::new(cli.data_dir, cli.as_client, settings, Output::new(cli.json))?;
    match &cli.command {
        Command::Dev { command } => dev::run(&ctx, command),
        Command::Up(args) => up::run(&ctx, args).await,
        Command::Health => health::run(&ctx).await,
        Command::Nodes => nodes::run(&ctx).await,
        Command::Key { command } => key::run(&ctx, command).await,
        Command::Sign(args) => sign::run(&ctx, args).await,
        Command::Verify(args) => verify::run(&ctx, args),
        Command::Eth { command } => eth::run(&ctx, command).await,
        Command::Btc { command } => chain::run_btc(&ctx, command).await,
        Command::Sol { command } => chain::run_sol(&ctx, command).await,
        Command::Tron { command } => chain::run_tron(&ctx, command).await,
        Command::Bench { command } => bench::run(&ctx, command).await,
        Command::Audit { command } => audit::run(&ctx, command).await,
        Command::Policy { command } => policy::run(&ctx, command).await,
        Command::Approvals { command } => approvals::run(&ctx, command).await,
        Command::Backup(args) => backup::run(&ctx, args).await,
        Command::Drill(args) => drill::run(&ctx, args).await,
        Command::Profile { command } => profile::run(&ctx, command),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand's flags are consistent with the global ones (no
    /// `--key`, `--ca`… defined twice).
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
