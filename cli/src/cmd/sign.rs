//! `sigil sign`: one signature from the cluster (acts as `signer`), and what
//! `verify` and `eth` share with it: the message arguments, `--hash`, and
//! sending a sign request so that a refusal names its policy rule and a
//! failure leaves a safe retry.
//!
//! Every sign request carries an intent signed with the client identity's
//! own certificate key ([`Signer`]): the nodes sign only what an intent
//! asks for, and check it against the key's policy themselves.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::json;
use sigil_cli::connect::{ClientContext, CoordinatorChannel, is_transport_failure};
use sigil_cli::input;
use sigil_cli::intent::{DEFAULT_INTENT_TTL, Signer, raw_payload};
use sigil_cli::output::Text;
use sigil_cli::status;
use sigil_proto::v1 as pb;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_protocol::Scheme;
use sigil_protocol::engine::Encoding;
use tonic::transport::Channel;

use super::{Context, scheme_name};

/// The message: exactly one of hex or a file.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct MessageArgs {
    /// The message, hex-encoded.
    #[arg(long, value_name = "HEX")]
    message_hex: Option<String>,
    /// Read the message (raw bytes) from a file.
    #[arg(long, value_name = "PATH")]
    message_file: Option<PathBuf>,
}

impl MessageArgs {
    pub fn read(&self) -> Result<Vec<u8>> {
        Ok(input::message(
            self.message_hex.as_deref(),
            self.message_file.as_deref(),
        )?)
    }
}

/// `--hash` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashArg {
    None,
    Keccak256,
    Sha256,
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
pub struct SignArgs {
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

/// A sign request the cluster refused or failed, with how to go on: the
/// policy rule that refused it, the approval it waits for and how to
/// retry, or the idempotency key a safe retry reuses (a timed-out request
/// may still have signed; a retry with the same key never signs twice).
/// The gRPC code, message and `sigil-*` details always follow.
#[derive(Debug)]
pub struct SignError {
    pub status: tonic::Status,
    pub idempotency_key: String,
    /// The flags that repeat the request, e.g. `--idempotency-key K`.
    pub retry: String,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.status;
        if let Some(id) = status::approval_id(s) {
            writeln!(f, "{}", s.message())?;
            if let Some(need) = status::approval_required(s) {
                writeln!(f, "approvals (group:have/required): {need}")?;
            }
            writeln!(
                f,
                "approval id {id}; approvers run `sigil approvals approve {id} --as approver-N`, \
                 then run this command again with {}",
                self.retry
            )?;
        } else if let Some(rule) = status::policy_rule(s) {
            writeln!(
                f,
                "refused by policy: {} (rule {rule})",
                status::policy_reason(s)
            )?;
        } else if retryable(s.code()) {
            writeln!(
                f,
                "the sign request failed and may have signed; retry safely with {} \
                 (the same idempotency key never signs twice)",
                self.retry
            )?;
        } else {
            writeln!(
                f,
                "sign request refused (idempotency key {})",
                self.idempotency_key
            )?;
        }
        write!(f, "{}", status::describe(s))
    }
}

impl std::error::Error for SignError {}

/// Whether the same request may succeed later (transport failures, time-outs,
/// a request in progress), rather than being refused for what it is.
fn retryable(code: tonic::Code) -> bool {
    use tonic::Code;
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
            | Code::ResourceExhausted
    )
}

/// The idempotency key given, or a fresh random one (callers print it so
/// the request can be retried safely).
pub fn idempotency_key(given: Option<&str>) -> String {
    given.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The sign request carrying `intent`: the key, path and idempotency key
/// repeated beside it are the ones the intent was signed for.
pub fn sign_request(
    key_id: &str,
    derivation_path: &str,
    idempotency_key: &str,
    intent: pb::SignedIntent,
) -> pb::SignRequest {
    pb::SignRequest {
        key_id: key_id.to_owned(),
        idempotency_key: idempotency_key.to_owned(),
        derivation_path: derivation_path.to_owned(),
        intent: Some(intent),
        ..Default::default()
    }
}

/// Sends one sign request to `coordinator`; a failure comes back as a
/// [`SignError`] that tells how to retry with `retry` (the flags repeating
/// the request). When the coordinator cannot be reached or the connection
/// breaks ([`is_transport_failure`]), the same request — the same signed
/// intent and idempotency key — goes to the next coordinator of `client`:
/// safe, because a sign request is idempotent (see `docs/cli.md`).
pub async fn request_signature(
    client: &ClientContext,
    mut coordinator: CoordinatorChannel,
    request: pb::SignRequest,
    retry: String,
) -> Result<pb::SignResponse, SignError> {
    let idempotency_key = request.idempotency_key.clone();
    loop {
        let status = match SigningClient::new(coordinator.channel.clone())
            .sign(request.clone())
            .await
        {
            Ok(resp) => return Ok(resp.into_inner()),
            Err(status) => status,
        };
        if is_transport_failure(&status)
            && let Some(Ok(next)) = client.fail_over(&coordinator).await
        {
            tracing::warn!(
                "coordinator {} failed during the sign request ({}); sending the same request \
                 (idempotency key {idempotency_key}) to {}",
                coordinator.endpoint,
                status::describe(&status),
                next.endpoint
            );
            coordinator = next;
            continue;
        }
        return Err(SignError {
            status,
            idempotency_key,
            retry,
        });
    }
}

/// Signs an intent of `signer` for `payload` (key `key_id` at `path`, valid
/// for `ttl`) and sends it through `coordinator` (failing over to the
/// client's other coordinators): the one way `sign`, `btc`, `sol`, `tron`
/// and `eth sign-typed-data` ask for a signature.
#[allow(clippy::too_many_arguments)]
pub async fn sign_intent(
    client: &ClientContext,
    coordinator: CoordinatorChannel,
    signer: &Signer,
    key_id: &str,
    path: &str,
    payload: pb::payload::Kind,
    idempotency_key: &str,
    ttl: Duration,
) -> Result<pb::SignResponse> {
    let intent = signer.intent(key_id, path, payload, idempotency_key, ttl)?;
    Ok(request_signature(
        client,
        coordinator,
        sign_request(key_id, path, idempotency_key, intent),
        format!("--idempotency-key {idempotency_key}"),
    )
    .await?)
}

/// The scheme of `key_id` and its public key at `derivation_path`, as the
/// signing role may ask (`Signing.GetPublicKey`).
pub async fn public_key(
    channel: Channel,
    key_id: &str,
    derivation_path: &str,
) -> Result<(Scheme, pb::GetPublicKeyResponse)> {
    let resp = SigningClient::new(channel)
        .get_public_key(pb::GetPublicKeyRequest {
            key_id: key_id.to_owned(),
            derivation_path: derivation_path.to_owned(),
        })
        .await
        .with_context(|| format!("looking up key {key_id}"))?
        .into_inner();
    let scheme = sigil_proto::convert::scheme_from_wire(resp.scheme)
        .with_context(|| format!("the coordinator returned no scheme for key {key_id}"))?;
    Ok((scheme, resp))
}

pub async fn run(ctx: &Context, args: &SignArgs) -> Result<()> {
    let message = args.message.read()?;
    let idempotency_key = idempotency_key(args.idempotency_key.as_deref());
    let client = ctx.client("signer")?;
    let signer = Signer::from_tls(&client.tls)?;
    let coordinator = client.connect_coordinator().await?;
    let (scheme, _) = public_key(coordinator.channel.clone(), &args.key, "").await?;
    let path = args.path.clone().unwrap_or_default();
    let resp = sign_intent(
        &client,
        coordinator,
        &signer,
        &args.key,
        &path,
        raw_payload(scheme, &message, args.hash.into()),
        &idempotency_key,
        DEFAULT_INTENT_TTL,
    )
    .await?;
    let ecdsa = resp.scheme == pb::Scheme::EcdsaSecp256k1 as i32;
    let mut value = json!({
        "key_id": args.key,
        "signature": hex::encode(&resp.signature),
        "public_key": hex::encode(&resp.public_key),
        "scheme": scheme_name(resp.scheme),
        "signers": resp.signers,
        "session_id": resp.session_id,
        "idempotency_key": idempotency_key,
        "replayed": resp.replayed,
    });
    if ecdsa {
        value["recovery_id"] = json!(resp.recovery_id);
        value["derivation_path"] = json!(args.path.clone().unwrap_or_else(|| "m".into()));
    }
    ctx.out.print(&value, || {
        let signers: Vec<String> = resp.signers.iter().map(ToString::to_string).collect();
        let mut t = Text::new();
        t.line(format_args!("signature        {}", hex::encode(&resp.signature)));
        t.line(format_args!("public key       {}", hex::encode(&resp.public_key)));
        t.line(format_args!("scheme           {}", scheme_name(resp.scheme)));
        if ecdsa {
            t.line(format_args!("recovery id      {}", resp.recovery_id));
            if let Some(path) = &args.path {
                t.line(format_args!("path             {path}"));
            }
        }
        t.line(format_args!("signers          nodes {}", signers.join(", ")));
        t.line(format_args!("session          {}", resp.session_id));
        t.line(format_args!("idempotency key  {idempotency_key}"));
        if resp.replayed {
            t.line(
                "replayed         yes: the stored result of an earlier request with this idempotency key",
            );
        }
        t.into()
    });
    Ok(())
}
