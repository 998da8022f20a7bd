//! `sigil key`: create keys by distributed key generation, list and show
//! them, refresh and reshare their shares, show their epochs, and manage
//! the nodes excluded from a key's quorums (acts as `operator`).
//!
//! `refresh` and `reshare` need the security officers' signatures: the
//! command writes the operation document (key, current epoch, nodes,
//! threshold, a ten-minute expiry and a nonce) and has it signed by the
//! officer identities `--officers` names (on a local `sigil up` cluster the
//! dev officers, `officer-1,officer-2` by default), so each stays one command.

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
    /// Nodes excluded from a key's quorums after a protocol named them as
    /// cheaters (`BAN`: a DKLs23 ban, lifted only by a key refresh or reshare).
    Exclusions {
        /// Only this key (default: every key).
        #[arg(long, value_name = "ID")]
        key: Option<String>,
    },
    /// Re-randomize every share of a key (same nodes, same threshold): the
    /// public key stays, shares from before stop working.
    Refresh {
        #[arg(long, value_name = "ID")]
        key: String,
        /// Officer identities that sign the authorization.
        #[arg(long, value_delimiter = ',', default_value = "officer-1,officer-2")]
        officers: Vec<String>,
    },
    /// Move a key to other nodes and/or another threshold; the public key stays.
    Reshare {
        #[arg(long, value_name = "ID")]
        key: String,
        /// Signatures need this many nodes afterwards.
        #[arg(long)]
        threshold: u32,
        /// Nodes to hold the new shares, e.g. 1,3,4.
        #[arg(long, value_delimiter = ',', value_name = "IDS", required = true)]
        nodes: Vec<u32>,
        /// Officer identities that sign the authorization.
        #[arg(long, value_delimiter = ',', default_value = "officer-1,officer-2")]
        officers: Vec<String>,
    },
    /// A key's epochs as the coordinator and every node see them.
    Epochs {
        #[arg(long, value_name = "ID")]
        key: String,
    },
    /// Let an excluded node sign with a key again (after investigating it).
    /// Refused for a DKLs23 ban.
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
    let mut client = KeyAdminClient::new(client.connect().await?);
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
                .map(|e| json!({"key_id": e.key_id, "node_id": e.node_id, "session_id": e.session_id, "reason": e.reason, "created_at": e.created_at, "ban": e.ban}))
                .collect();
            ctx.out.print(&json!({ "exclusions": list }), || {
                let mut t = Text::new();
                if exclusions.is_empty() {
                    t.line("no exclusions");
                }
                for e in &exclusions {
                    // A DKLs23 ban cannot be cleared: a key refresh or reshare lifts it.
                    let kind = if e.ban { "BAN " } else { "excl" };
                    t.line(format_args!(
                        "{}  node {:>3}  {kind}  {}  session {}  {}",
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
        KeyCommand::Refresh { key, officers } => {
            let current = client
                .get_key(pb::GetKeyRequest {
                    key_id: key.clone(),
                })
                .await?
                .into_inner();
            let op = operation(
                sigil_policy::OperationKind::Refresh,
                &current,
                current.participants.clone(),
                current.threshold,
            )?;
            let authorization = authorize(ctx, &op, officers)?;
            progress(
                ctx,
                &format!("refreshing key {key} (epoch {})…", current.epoch),
            );
            let out = client
                .refresh_key(pb::RefreshKeyRequest {
                    key_id: key.clone(),
                    authorization: Some(authorization),
                })
                .await?
                .into_inner();
            ctx.out.print(&redistribute_json(&out), || {
                redistribute_text("refreshed", &out)
            });
        }
        KeyCommand::Reshare {
            key,
            threshold,
            nodes,
            officers,
        } => {
            let current = client
                .get_key(pb::GetKeyRequest {
                    key_id: key.clone(),
                })
                .await?
                .into_inner();
            let op = operation(
                sigil_policy::OperationKind::Reshare,
                &current,
                nodes.clone(),
                *threshold,
            )?;
            let authorization = authorize(ctx, &op, officers)?;
            progress(
                ctx,
                &format!(
                    "resharing key {key} (epoch {}, {}-of-{:?}) to {threshold}-of-{nodes:?}…",
                    current.epoch, current.threshold, current.participants
                ),
            );
            let out = client
                .reshare_key(pb::ReshareKeyRequest {
                    key_id: key.clone(),
                    new_threshold: *threshold,
                    new_nodes: nodes.clone(),
                    authorization: Some(authorization),
                })
                .await?
                .into_inner();
            ctx.out.print(&redistribute_json(&out), || {
                redistribute_text("reshared", &out)
            });
        }
        KeyCommand::Epochs { key } => {
            let out = client
                .list_epochs(pb::ListKeyEpochsRequest {
                    key_id: key.clone(),
                })
                .await?
                .into_inner();
            let nodes: Vec<_> = out
                .nodes
                .iter()
                .map(|n| {
                    json!({
                        "node_id": n.node_id,
                        "error": (!n.error.is_empty()).then_some(&n.error),
                        "epochs": n.epochs.iter().map(|e| json!({
                            "epoch": e.epoch,
                            "status": e.status,
                            "threshold": e.threshold,
                            "participants": e.participants,
                            "public_key_package_sha256": hex::encode(&e.public_key_package_sha256),
                            "created_at": e.created_at,
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            ctx.out.print(
                &json!({
                    "key_id": out.key_id,
                    "current_epoch": out.current_epoch,
                    "uncommitted": out.uncommitted,
                    "nodes": nodes,
                }),
                || {
                    let mut t = Text::new();
                    t.line(format_args!(
                        "key {}  current epoch {}",
                        out.key_id, out.current_epoch
                    ));
                    if !out.uncommitted.is_empty() {
                        t.line(format_args!(
                            "  certified, not yet confirmed by every node: epochs {:?}",
                            out.uncommitted
                        ));
                    }
                    for n in &out.nodes {
                        if !n.error.is_empty() {
                            t.line(format_args!(
                                "  node {:>3}  unreachable: {}",
                                n.node_id, n.error
                            ));
                            continue;
                        }
                        if n.epochs.is_empty() {
                            t.line(format_args!(
                                "  node {:>3}  holds nothing of this key",
                                n.node_id
                            ));
                        }
                        for e in &n.epochs {
                            t.line(format_args!(
                                "  node {:>3}  epoch {:>3}  {:<8} {}-of-{:?}  package {}",
                                n.node_id,
                                e.epoch,
                                e.status,
                                e.threshold,
                                e.participants,
                                &hex::encode(&e.public_key_package_sha256)[..16]
                            ));
                        }
                    }
                    t.into()
                },
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

/// The operation document officers sign for this key's current epoch.
fn operation(
    kind: sigil_policy::OperationKind,
    key: &pb::KeyInfo,
    nodes: Vec<u32>,
    threshold: u32,
) -> Result<sigil_policy::KeyOperation> {
    let nodes = nodes
        .iter()
        .map(|&n| u16::try_from(n).with_context(|| format!("node id {n} out of range")))
        .collect::<Result<Vec<_>>>()?;
    let threshold = u16::try_from(threshold).context("threshold out of range")?;
    Ok(sigil_cli::intent::key_operation(
        kind, key, nodes, threshold,
    ))
}

/// The document signed by each of `officers` (identities of the data
/// directory or of the profile's PKI directory).
fn authorize(
    ctx: &Context,
    op: &sigil_policy::KeyOperation,
    officers: &[String],
) -> Result<pb::SignedOperation> {
    Ok(sigil_cli::intent::sign_key_operation_with(
        op,
        officers,
        |officer| ctx.named_identity(officer),
    )?)
}

/// A line on stderr for people while a long step runs (not with `--json`).
fn progress(ctx: &Context, line: &str) {
    ctx.out.note(format_args!(
        "{line} (ECDSA keys set up fresh pairwise state: this takes seconds)"
    ));
}

fn redistribute_json(out: &pb::RedistributeResponse) -> serde_json::Value {
    json!({
        "key": out.key.as_ref().map(key_json),
        "previous_epoch": out.previous_epoch,
        "test_quorums": out.test_quorums.iter().map(|q| q.signers.clone()).collect::<Vec<_>>(),
        "redistribute_ms": out.redistribute_ms,
        "test_sign_ms": out.test_sign_ms,
        "commit_ms": out.commit_ms,
    })
}

fn redistribute_text(what: &str, out: &pb::RedistributeResponse) -> String {
    let mut t = Text::new();
    if let Some(k) = &out.key {
        t.line(format_args!(
            "{what} key {}: epoch {} → {}, {}-of-{:?}, public key unchanged",
            k.key_id, out.previous_epoch, k.epoch, k.threshold, k.participants
        ));
    }
    let quorums: Vec<_> = out.test_quorums.iter().map(|q| q.signers.clone()).collect();
    t.line(format_args!(
        "  test signatures by {quorums:?} verified before the switch"
    ));
    t.line(format_args!(
        "  redistribution {} ms, test signatures {} ms, commit {} ms",
        out.redistribute_ms, out.test_sign_ms, out.commit_ms
    ));
    t.into()
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
