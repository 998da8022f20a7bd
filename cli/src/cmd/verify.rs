//! `sigil verify`: checks a signature offline, with the same validation and
//! hashing as the cluster's; no cluster needed. Exits non-zero unless the
//! signature is valid (and with `--json` says why).

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::json;
use sigil_cli::input;
use sigil_protocol::engine::{self, SignInput};

use super::sign::{HashArg, MessageArgs};
use super::{Context, parse_scheme_arg};

#[derive(Args, Debug)]
pub struct VerifyArgs {
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

pub fn run(ctx: &Context, args: &VerifyArgs) -> Result<()> {
    match check(args) {
        Ok(()) => {
            ctx.out
                .print(&json!({ "valid": true }), || "valid\n".into());
            Ok(())
        }
        Err(e) => {
            // People read the error on stderr; JSON says it on stdout too.
            ctx.out.print(
                &json!({ "valid": false, "error": format!("{e:#}") }),
                String::new,
            );
            Err(e)
        }
    }
}

fn check(args: &VerifyArgs) -> Result<()> {
    let scheme = parse_scheme_arg(&args.scheme).map_err(anyhow::Error::msg)?;
    let public_key = input::decode_hex("public key", &args.public_key)?;
    let signature = input::decode_hex("signature", &args.signature)?;
    let message = args.message.read()?;
    // The same validation and hashing as the cluster's; no path: the
    // public key given is the (child) key that signed.
    let input = SignInput::new(scheme, &message, args.hash.into(), "")?;
    engine::verify(scheme, &public_key, &input, &signature).context("signature is not valid")?;
    Ok(())
}
