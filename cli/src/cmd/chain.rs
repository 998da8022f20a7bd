//! `sigil btc`, `sigil sol`, `sigil tron`: sign a chain's unsigned
//! transaction with a key of the cluster (acts as `signer`) and print the
//! transaction ready to broadcast.
//!
//! The request's intent carries the unsigned transaction itself (a PSBT, a
//! Solana message, TRON `raw_data`): every node decodes it, checks that it
//! spends from the key, reads amounts and destinations for the key's policy
//! and computes what it signs. The coordinator returns the signatures and
//! the assembled transaction (`SignResponse.transaction`), printed here.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use sigil_cli::input;
use sigil_cli::intent::Signer;
use sigil_cli::output::Text;
use sigil_proto::v1 as pb;

use super::sign::{idempotency_key, sign_intent};
use super::{Context, parse_duration_arg};

#[derive(Subcommand, Debug)]
pub enum BtcCommand {
    /// Sign every input of a PSBT (BIP-174 v0): Taproot key-path spends
    /// with a frost-taproot key, P2WPKH with an ecdsa-secp256k1 key. Each
    /// input must carry its previous output (`witness_utxo`).
    SignPsbt(BtcSignPsbtArgs),
}

#[derive(Args, Debug)]
pub struct BtcSignPsbtArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The PSBT: a file holding it as binary or base64 text (`-`: standard input).
    #[arg(long, value_name = "PATH")]
    psbt: PathBuf,
    /// mainnet, testnet, testnet4, signet or regtest.
    #[arg(long, default_value = "mainnet")]
    network: String,
}

#[derive(Subcommand, Debug)]
pub enum SolCommand {
    /// Sign a Solana transaction message (legacy or v0) with a frost-ed25519 key.
    Sign(SolSignArgs),
}

#[derive(Args, Debug)]
pub struct SolSignArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The serialized message, base64 (as `Transaction.serializeMessage()` gives it).
    #[arg(long, value_name = "BASE64")]
    message: String,
    /// mainnet, devnet or testnet.
    #[arg(long, default_value = "mainnet")]
    cluster: String,
}

#[derive(Subcommand, Debug)]
pub enum TronCommand {
    /// Sign a TRON transaction (`raw_data`: a TRX or TRC-20 transfer, or a
    /// contract call) with an ecdsa-secp256k1 key.
    Sign(TronSignArgs),
}

#[derive(Args, Debug)]
pub struct TronSignArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The transaction's `raw_data_hex`.
    #[arg(long, value_name = "HEX")]
    raw_data: String,
    /// mainnet, nile or shasta.
    #[arg(long, default_value = "mainnet")]
    network: String,
}

/// What every chain's sign command takes.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Key id.
    #[arg(long, value_name = "ID")]
    key: String,
    /// BIP-32 non-hardened derivation path (ECDSA keys), e.g. m/0/7.
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Idempotency key (default: random, printed).
    #[arg(long, value_name = "K")]
    idempotency_key: Option<String>,
    /// How long the intent stays valid (nodes accept at most 10 minutes).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "5m")]
    intent_ttl: Duration,
}

pub async fn run_btc(ctx: &Context, command: &BtcCommand) -> Result<()> {
    match command {
        BtcCommand::SignPsbt(args) => {
            let psbt = if args.psbt.as_os_str() == "-" {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
                    .context("reading the PSBT from standard input")?;
                buf
            } else {
                std::fs::read(&args.psbt)
                    .with_context(|| format!("reading {}", args.psbt.display()))?
            };
            let payload = pb::payload::Kind::BitcoinPsbt(pb::BitcoinPsbt {
                psbt,
                network: args.network.clone(),
            });
            sign_and_print(ctx, &args.common, payload).await
        }
    }
}

pub async fn run_sol(ctx: &Context, command: &SolCommand) -> Result<()> {
    match command {
        SolCommand::Sign(args) => {
            use base64::Engine as _;
            let message = base64::engine::general_purpose::STANDARD
                .decode(args.message.trim())
                .context("--message must be base64")?;
            let payload = pb::payload::Kind::SolanaMessage(pb::SolanaMessage {
                message,
                lookup_tables: Vec::new(),
                cluster: args.cluster.clone(),
            });
            sign_and_print(ctx, &args.common, payload).await
        }
    }
}

pub async fn run_tron(ctx: &Context, command: &TronCommand) -> Result<()> {
    match command {
        TronCommand::Sign(args) => {
            let raw_data = input::decode_hex("raw-data", &args.raw_data)?;
            let payload = pb::payload::Kind::TronTransaction(pb::TronTransaction {
                raw_data,
                network: args.network.clone(),
            });
            sign_and_print(ctx, &args.common, payload).await
        }
    }
}

impl CommonArgs {
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Signs `payload` with an intent of the `signer` identity; returns the
/// response and the idempotency key used.
pub async fn sign_payload(
    ctx: &Context,
    args: &CommonArgs,
    payload: pb::payload::Kind,
) -> Result<(pb::SignResponse, String)> {
    let path = args.path.clone().unwrap_or_default();
    let client = ctx.client("signer")?;
    let signer = Signer::from_tls(&client.tls)?;
    let idempotency_key = idempotency_key(args.idempotency_key.as_deref());
    let coordinator = client.connect_coordinator().await?;
    let resp = sign_intent(
        &client,
        coordinator,
        &signer,
        &args.key,
        &path,
        payload,
        &idempotency_key,
        args.intent_ttl,
    )
    .await?;
    Ok((resp, idempotency_key))
}

/// Signs `payload` with an intent of the `signer` identity and prints the
/// signed transaction.
pub async fn sign_and_print(
    ctx: &Context,
    args: &CommonArgs,
    payload: pb::payload::Kind,
) -> Result<()> {
    let (resp, idempotency_key) = sign_payload(ctx, args, payload).await?;
    let Some(tx) = resp.transaction else {
        bail!("the coordinator returned signatures but no transaction");
    };
    let signatures: Vec<String> = if resp.parts.is_empty() {
        vec![hex::encode(&resp.signature)]
    } else {
        resp.parts
            .iter()
            .map(|p| hex::encode(&p.signature))
            .collect()
    };
    let json_tx: Option<serde_json::Value> = if tx.json.is_empty() {
        None
    } else {
        Some(serde_json::from_str(&tx.json).context("the coordinator's TRON JSON")?)
    };
    ctx.out.print(
        &json!({
            "key_id": args.key,
            "transaction_id": tx.id,
            "raw_transaction": hex::encode(&tx.raw),
            "psbt": (!tx.psbt.is_empty()).then_some(&tx.psbt),
            "base64": (!tx.base64.is_empty()).then_some(&tx.base64),
            "tron_json": json_tx,
            "signatures": signatures,
            "idempotency_key": idempotency_key,
            "replayed": resp.replayed,
        }),
        || {
            let mut t = Text::new();
            t.line(format_args!("transaction id   {}", tx.id));
            if !tx.raw.is_empty() {
                t.line(format_args!("raw transaction  {}", hex::encode(&tx.raw)));
            }
            if !tx.psbt.is_empty() {
                t.line(format_args!("signed PSBT      {}", tx.psbt));
            }
            if !tx.base64.is_empty() {
                t.line(format_args!("base64           {}", tx.base64));
            }
            if !tx.json.is_empty() {
                t.line(format_args!("TRON JSON        {}", tx.json));
            }
            t.line(format_args!("idempotency key  {idempotency_key}"));
            t.into()
        },
    );
    Ok(())
}
