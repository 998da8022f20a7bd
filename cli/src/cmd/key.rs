//! `sigil key`: create keys by distributed key generation, list and show
//! them, and manage the nodes excluded from a key's quorums (acts as
//! `operator`).

use anyhow::{Context as _, Result};
use clap::Subcommand;
use serde_json::json;
use sigil_cli::output::Text;
use sigil_proto::convert::scheme_to_wire;
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_protocol::Scheme;

use super::{Context, parse_scheme_arg, scheme_name};

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Create a key by distributed key generation among the nodes (acts as `operator`).
    Create {
        /// frost-secp256k1, frost-taproot, frost-ed25519 or ecdsa-secp256k1.
        #[arg(long, value_parser = parse_scheme_arg)]
        scheme: Scheme,
        /// Signatures need this many nodes.
        #[arg(long)]
        threshold: u32,
        /// Nodes to hold shares, e.g. 1,2,3 (default: every node).
        #[arg(long, value_delimiter = ',', value_name = "IDS")]
        nodes: Vec<u32>,
        /// Label for humans.
        #[arg(long)]
        label: Option<String>,
    },
    /// List keys.
    List,
    /// Show one key.
    Show { key_id: String },
    /// Nodes excluded from a key's quorums after a protocol named them as cheaters.
    Exclusions {
        /// Only this key (default: every key).
        #[arg(long, value_name = "ID")]
        key: Option<String>,
    },
    /// Let an excluded node sign with a key again (after investigating it).
    ClearExclusion {
        #[arg(long, value_name = "ID")]
        key: String,
        #[arg(long, value_name = "N")]
        node: u32,
        /// Why (recorded).
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(ctx: &Context, command: &KeyCommand) -> Result<()> {
    let client = ctx.client("operator")?;
    let mut client = KeyAdminClient::new(client.coordinator()?);
    match command {
        KeyCommand::Create {
            scheme,
            threshold,
            nodes,
            label,
        } => {
            let key = client
                .create_key(pb::CreateKeyRequest {
                    scheme: scheme_to_wire(*scheme) as i32,
                    threshold: *threshold,
                    nodes: nodes.clone(),
                    label: label.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .key
                .context("the coordinator returned no key")?;
            ctx.out.print(&key_json(&key), || key_text(&key));
        }
        KeyCommand::List => {
            let keys = client
                .list_keys(pb::ListKeysRequest {})
                .await?
                .into_inner()
                .keys;
            let list: Vec<_> = keys.iter().map(key_json).collect();
            ctx.out.print(&json!({ "keys": list }), || {
                let mut t = Text::new();
                if keys.is_empty() {
                    t.line("no keys");
                }
                for k in &keys {
                    t.line(format_args!(
                        "{}  {:<16} {}-of-{}  {}",
                        k.key_id,
                        scheme_name(k.scheme),
                        k.threshold,
                        k.participants.len(),
                        hex::encode(&k.public_key)
                    ));
                }
                t.into()
            });
        }
        KeyCommand::Exclusions { key } => {
            let exclusions = client
                .list_exclusions(pb::ListExclusionsRequest {
                    key_id: key.clone().unwrap_or_default(),
                })
                .await?
                .into_inner()
                .exclusions;
            let list: Vec<_> = exclusions
                .iter()
                .map(|e| json!({"key_id": e.key_id, "node_id": e.node_id, "session_id": e.session_id, "reason": e.reason, "created_at": e.created_at}))
                .collect();
            ctx.out.print(&json!({ "exclusions": list }), || {
                let mut t = Text::new();
                if exclusions.is_empty() {
                    t.line("no exclusions");
                }
                for e in &exclusions {
                    t.line(format_args!(
                        "{}  node {:>3}  {}  session {}  {}",
                        e.key_id, e.node_id, e.created_at, e.session_id, e.reason
                    ));
                }
                t.into()
            });
        }
        KeyCommand::ClearExclusion { key, node, reason } => {
            let cleared = client
                .clear_exclusion(pb::ClearExclusionRequest {
                    key_id: key.clone(),
                    node_id: *node,
                    reason: reason.clone(),
                })
                .await?
                .into_inner()
                .cleared;
            ctx.out.print(
                &json!({ "key_id": key, "node_id": node, "cleared": cleared }),
                || format!("cleared {cleared} exclusion record(s) of node {node} for key {key}\n"),
            );
        }
        KeyCommand::Show { key_id } => {
            let key = client
                .get_key(pb::GetKeyRequest {
                    key_id: key_id.clone(),
                })
                .await?
                .into_inner();
            ctx.out.print(&key_json(&key), || key_text(&key));
        }
    }
    Ok(())
}

/// A key as JSON (as `key create`, `key show` and `key list` print it).
fn key_json(k: &pb::KeyInfo) -> serde_json::Value {
    json!({
        "key_id": k.key_id,
        "scheme": scheme_name(k.scheme),
        "threshold": k.threshold,
        "participants": k.participants,
        "public_key": hex::encode(&k.public_key),
        "addresses": k.addresses,
        "ethereum_address": k.addresses.get("ethereum"),
        "epoch": k.epoch,
        "label": k.label,
        "created_at": k.created_at,
    })
}

/// A key, one field per line.
fn key_text(k: &pb::KeyInfo) -> String {
    let mut t = Text::new();
    t.line(format_args!("key {}", k.key_id));
    t.line(format_args!("  scheme      {}", scheme_name(k.scheme)));
    let nodes: Vec<String> = k.participants.iter().map(ToString::to_string).collect();
    t.line(format_args!(
        "  threshold   {}-of-{} (nodes {})",
        k.threshold,
        k.participants.len(),
        nodes.join(", ")
    ));
    t.line(format_args!("  public key  {}", hex::encode(&k.public_key)));
    let mut addresses: Vec<_> = k.addresses.iter().collect();
    addresses.sort();
    for (chain, address) in addresses {
        t.line(format_args!("  {:<11} {address}", format!("{chain}:")));
    }
    if !k.label.is_empty() {
        t.line(format_args!("  label       {}", k.label));
    }
    if !k.created_at.is_empty() {
        t.line(format_args!("  created     {}", k.created_at));
    }
    t.into()
}
