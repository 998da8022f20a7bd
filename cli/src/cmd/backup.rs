//! `sigil backup`: every node's current shares, each sealed by the node to
//! its configured backup recipient, written to a directory as
//! `node-<n>.json` (mode 0600) for the security officers to keep offline
//! (acts as `operator`; the coordinator relays only ciphertext).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;
use sigil_cli::drill::write_backups;
use sigil_cli::output::Text;
use sigil_policy::backup::BackupPublicKey;
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;

use super::Context;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Directory to write `node-<n>.json` into (created, mode 0700).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Only this key (default: every key).
    #[arg(long, value_name = "ID")]
    key: Option<String>,
}

pub async fn run(ctx: &Context, args: &BackupArgs) -> Result<()> {
    let client = ctx.client("operator")?;
    let mut admin = KeyAdminClient::new(client.connect().await?);
    ctx.out.note(format_args!(
        "asking every node for its shares{}, sealed to its backup key…",
        args.key
            .as_deref()
            .map(|k| format!(" of key {k}"))
            .unwrap_or_default()
    ));
    let out = admin
        .export_backups(pb::ExportBackupsRequest {
            key_id: args.key.clone().unwrap_or_default(),
        })
        .await?
        .into_inner();
    let files = write_backups(&args.out, &out.backups)?;
    let fingerprint = |b: &pb::NodeBackup| {
        BackupPublicKey::from_slice(&b.recipient)
            .map(|k| k.fingerprint())
            .unwrap_or_else(|_| "invalid".to_owned())
    };
    let written: Vec<_> = out
        .backups
        .iter()
        .zip(&files)
        .map(|(b, f)| {
            json!({
                "node_id": b.node_id,
                "file": f,
                "recipient": hex::encode(&b.recipient),
                "recipient_fingerprint": fingerprint(b),
                "created_at": b.created_at,
                "entries": b.entries.iter().map(|e| json!({"key_id": e.key_id, "epoch": e.epoch})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let failed: Vec<_> = out
        .failed
        .iter()
        .map(|f| json!({"node_id": f.node_id, "reason": f.reason}))
        .collect();
    ctx.out.print(
        &json!({"out": args.out, "backups": written, "failed": failed}),
        || {
            let mut t = Text::new();
            for (b, f) in out.backups.iter().zip(&files) {
                t.line(format_args!(
                    "node {:>3}  {} share(s) sealed to backup key {}  → {}",
                    b.node_id,
                    b.entries.len(),
                    fingerprint(b),
                    f.display()
                ));
                for e in &b.entries {
                    t.line(format_args!("            {} epoch {}", e.key_id, e.epoch));
                }
            }
            for f in &out.failed {
                t.line(format_args!(
                    "node {:>3}  NO BACKUP: {}",
                    f.node_id, f.reason
                ));
            }
            t.into()
        },
    );
    if !out.failed.is_empty() {
        bail!("{} node(s) exported no backup", out.failed.len());
    }
    Ok(())
}
