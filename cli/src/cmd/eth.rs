//! `sigil eth`: Ethereum helpers for ECDSA keys. `eth sign-tx` has the
//! cluster sign an EIP-1559 transaction and prints the raw signed
//! transaction, after checking that the signature recovers to the key's
//! address.
//!
//! The request carries an intent, signed with the client identity's key,
//! whose payload is the unsigned transaction (`0x02 || rlp(fields)`): each
//! node decodes it, checks what it pays against the key's policy and hashes
//! it itself. When the policy asks for approvals the request is held: the
//! signed intent is kept in a file (`--intent-file`, or one under the data
//! directory named after the idempotency key), approvers approve its hash,
//! and running the command again with the same `--idempotency-key` sends
//! the same intent, to which the coordinator attaches the approvals.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sigil_cli::input;
use sigil_cli::intent::Signer;
use sigil_cli::output::Text;
use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;

use super::sign::{SignError, idempotency_key, public_key, request_signature, sign_request};
use super::{Context, parse_duration_arg, scheme_name};

#[derive(Subcommand, Debug)]
pub enum EthCommand {
    /// Sign an EIP-1559 transaction with an ECDSA key and print the raw
    /// signed transaction. The nodes receive the unsigned transaction and
    /// hash it themselves (Keccak-256), so each knows what it signs.
    SignTx(EthSignTxArgs),
    /// Sign EIP-712 typed data (the `eth_signTypedData_v4` JSON) with an
    /// ECDSA key and print the 65-byte signature. The nodes hash the typed
    /// data themselves; EIP-2612 and Permit2 approvals are read as token
    /// approvals by the key's policy, other typed data needs raw signing.
    SignTypedData(EthSignTypedDataArgs),
}

#[derive(Args, Debug)]
pub struct EthSignTypedDataArgs {
    #[command(flatten)]
    common: super::chain::CommonArgs,
    /// A file holding the typed data as JSON (`-`: standard input).
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
}

#[derive(Args, Debug)]
pub struct EthSignTxArgs {
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
    /// Idempotency key (default: random, printed). Run the command again
    /// with the same key after approvers approved a held request.
    #[arg(long, value_name = "K")]
    idempotency_key: Option<String>,
    /// Keep the signed intent in this file: written on the first run, sent
    /// again on a retry (approvals are over the intent's hash). Default: a
    /// file under the data directory named after the idempotency key,
    /// written when the request is held for approvals.
    #[arg(long, value_name = "PATH")]
    intent_file: Option<PathBuf>,
    /// How long the intent stays valid (approvals must come in before then;
    /// nodes accept at most 10 minutes).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "5m")]
    intent_ttl: Duration,
}

pub async fn run(ctx: &Context, command: &EthCommand) -> Result<()> {
    match command {
        EthCommand::SignTx(args) => sign_tx(ctx, args).await,
        EthCommand::SignTypedData(args) => sign_typed_data(ctx, args).await,
    }
}

async fn sign_typed_data(ctx: &Context, args: &EthSignTypedDataArgs) -> Result<()> {
    let json = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let resp =
        super::chain::sign_payload(ctx, &args.common, pb::payload::Kind::Eip712TypedData(json))
            .await?;
    let (resp, idempotency_key) = resp;
    let mut rsv = resp.signature.clone();
    rsv.push(27 + u8::try_from(resp.recovery_id & 1).unwrap_or(0));
    let from = sigil_chains::ethereum_address(&resp.public_key)?;
    ctx.out.print(
        &json!({
            "signature": format!("0x{}", hex::encode(&rsv)),
            "recovery_id": resp.recovery_id,
            "signer": from,
            "key_id": args.common.key(),
            "idempotency_key": idempotency_key,
            "replayed": resp.replayed,
        }),
        || {
            let mut t = Text::new();
            t.line(format_args!("signature        0x{}", hex::encode(&rsv)));
            t.line(format_args!("signer           {from}"));
            t.line(format_args!("idempotency key  {idempotency_key}"));
            t.into()
        },
    );
    Ok(())
}

async fn sign_tx(ctx: &Context, args: &EthSignTxArgs) -> Result<()> {
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
        value: sigil_chains::parse_wei(&args.value)
            .context("--value must be a decimal number of wei")?,
        data: match &args.data {
            Some(d) => input::decode_hex("data", d)?,
            None => Vec::new(),
        },
    };
    tx.validate()?;
    let path = args.path.clone().unwrap_or_default();
    let client = ctx.client("signer")?;
    let signer = Signer::from_tls(&client.tls)?;
    let coordinator = client.connect_coordinator().await?;
    let (scheme, _) = public_key(coordinator.channel.clone(), &args.key, "").await?;
    if scheme != Scheme::EcdsaSecp256k1 {
        bail!(
            "key {} is a {scheme} key; Ethereum transactions need ecdsa-secp256k1",
            args.key
        );
    }
    // The unsigned transaction itself: each node decodes it, checks what it
    // pays and hashes it, rather than signing an opaque digest.
    let payload = pb::payload::Kind::EthereumTransaction(tx.signing_payload());
    let kept = match (&args.intent_file, &args.idempotency_key) {
        (Some(file), _) => IntentFile::explicit(file).load()?,
        (None, Some(key)) => IntentFile::default_for(ctx, &client.name(), key).load()?,
        (None, None) => None,
    };
    let (intent, idempotency_key, intents) = match kept {
        Some((intents, intent)) => {
            let idempotency_key = intents.check(&intent, &signer, args, &path, &payload)?;
            ctx.out.note(format_args!(
                "sending the signed intent kept in {} again",
                intents.path.display()
            ));
            (intent, idempotency_key, intents)
        }
        None => {
            let idempotency_key = idempotency_key(args.idempotency_key.as_deref());
            let intent =
                signer.intent(&args.key, &path, payload, &idempotency_key, args.intent_ttl)?;
            let intents = match &args.intent_file {
                Some(file) => {
                    let intents = IntentFile::explicit(file);
                    intents.save(&intent)?;
                    intents
                }
                None => IntentFile::default_for(ctx, &client.name(), &idempotency_key),
            };
            (intent, idempotency_key, intents)
        }
    };
    let mut retry = format!("--idempotency-key {idempotency_key}");
    if intents.explicit {
        retry.push_str(&format!(" --intent-file {}", intents.path.display()));
    }
    let sent = request_signature(
        &client,
        coordinator,
        sign_request(&args.key, &path, &idempotency_key, intent.clone()),
        retry,
    )
    .await;
    let resp = match sent {
        Ok(resp) => resp,
        Err(e) => return Err(held(&intents, &intent, e)),
    };
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
    ctx.out.print(
        &json!({
            "raw_transaction": format!("0x{}", hex::encode(&raw)),
            "transaction_hash": format!("0x{}", hex::encode(hash)),
            "from": from,
            "key_id": args.key,
            "derivation_path": args.path.clone().unwrap_or_else(|| "m".into()),
            "signature": hex::encode(&resp.signature),
            "recovery_id": recovery_id,
            "idempotency_key": idempotency_key,
            "replayed": resp.replayed,
        }),
        || {
            let mut t = Text::new();
            t.line(format_args!("raw transaction  0x{}", hex::encode(&raw)));
            t.line(format_args!("tx hash          0x{}", hex::encode(hash)));
            t.line(format_args!("from             {from}"));
            t.line(format_args!("idempotency key  {idempotency_key}"));
            t.into()
        },
    );
    Ok(())
}

/// A refused request: when it is held for approval, keeps the intent (in
/// the default file) so that the retry sends the same one.
fn held(intents: &IntentFile, intent: &pb::SignedIntent, e: SignError) -> anyhow::Error {
    if sigil_cli::status::approval_id(&e.status).is_some()
        && !intents.explicit
        && let Err(save) = intents.save(intent)
    {
        return anyhow::Error::new(e).context(format!(
            "the signed intent could not be kept for the retry ({save:#})"
        ));
    }
    e.into()
}

/// Where the signed intent of a request is kept between runs.
#[derive(Debug)]
struct IntentFile {
    path: PathBuf,
    /// Named with `--intent-file`: written on the first run. Otherwise the
    /// default file, written only when the request is held for approval
    /// (and kept: a replay of the signed request sends the same intent).
    explicit: bool,
}

/// The file's form: the signed intent exactly as sent (hex), and what it
/// asks, for people.
#[derive(Debug, Serialize, Deserialize)]
struct IntentFileContent {
    intent: String,
    signature: String,
    certificate_chain: Vec<String>,
    #[serde(default)]
    intent_sha256: String,
    #[serde(default)]
    intent_id: String,
    #[serde(default)]
    key_id: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    not_after_unix_ms: u64,
}

impl IntentFile {
    fn explicit(path: &std::path::Path) -> Self {
        Self {
            path: path.to_owned(),
            explicit: true,
        }
    }

    /// `<data dir>/intents/<client>-<idempotency key>.json` (a key with
    /// characters unsafe in a file name is hashed).
    fn default_for(ctx: &Context, client: &str, idempotency_key: &str) -> Self {
        let safe = !idempotency_key.is_empty()
            && idempotency_key.len() <= 100
            && idempotency_key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !idempotency_key.starts_with('.');
        let name = if safe {
            idempotency_key.to_owned()
        } else {
            hex::encode(sigil_policy::document_sha256(idempotency_key.as_bytes()))
        };
        Self {
            path: ctx
                .data_dir()
                .join("intents")
                .join(format!("{client}-{name}.json")),
            explicit: false,
        }
    }

    /// The intent kept in the file, if there is one.
    fn load(self) -> Result<Option<(Self, pb::SignedIntent)>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", self.path.display())),
        };
        let c: IntentFileContent = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a signed intent file", self.path.display()))?;
        let hex = |what: &'static str, v: &str| {
            input::decode_hex(what, v).with_context(|| format!("{}", self.path.display()))
        };
        let signed = pb::SignedIntent {
            intent: hex("intent", &c.intent)?,
            signature: hex("signature", &c.signature)?,
            certificate_chain: c
                .certificate_chain
                .iter()
                .map(|c| hex("certificate_chain", c))
                .collect::<Result<_>>()?,
            approvals: Vec::new(),
        };
        Ok(Some((self, signed)))
    }

    fn save(&self, signed: &pb::SignedIntent) -> Result<()> {
        let intent = sigil_policy::decode_intent(&signed.intent)?;
        let content = IntentFileContent {
            intent: hex::encode(&signed.intent),
            signature: hex::encode(&signed.signature),
            certificate_chain: signed.certificate_chain.iter().map(hex::encode).collect(),
            intent_sha256: hex::encode(sigil_policy::intent_sha256(&signed.intent)),
            intent_id: intent.intent_id,
            key_id: intent.key_id,
            idempotency_key: intent.idempotency_key,
            not_after_unix_ms: intent.not_after_unix_ms,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let text = serde_json::to_string_pretty(&content)? + "\n";
        std::fs::write(&self.path, text).with_context(|| format!("writing {}", self.path.display()))
    }

    /// Checks that a kept intent asks exactly what this run asks, and is
    /// still valid; returns its idempotency key.
    fn check(
        &self,
        signed: &pb::SignedIntent,
        signer: &Signer,
        args: &EthSignTxArgs,
        path: &str,
        payload: &pb::payload::Kind,
    ) -> Result<String> {
        let file = self.path.display();
        let intent = sigil_policy::decode_intent(&signed.intent)
            .with_context(|| format!("{file} holds no valid intent"))?;
        let differs = |what: &str| {
            anyhow::anyhow!(
                "{file} holds a signed intent with another {what}; use another --intent-file \
                 (or delete it) for a new request"
            )
        };
        if intent.requester != signer.uri() {
            return Err(differs("requester"));
        }
        if intent.key_id != args.key {
            return Err(differs("key"));
        }
        if intent.derivation_path != path {
            return Err(differs("derivation path"));
        }
        if intent.payload.as_ref().and_then(|p| p.kind.as_ref()) != Some(payload) {
            return Err(differs("transaction"));
        }
        if let Some(k) = &args.idempotency_key
            && *k != intent.idempotency_key
        {
            return Err(differs("idempotency key"));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        if intent.not_after_unix_ms <= now {
            bail!(
                "the signed intent in {file} expired; delete the file to sign a new intent \
                 (approvals of the expired one do not carry over)"
            );
        }
        Ok(intent.idempotency_key)
    }
}
