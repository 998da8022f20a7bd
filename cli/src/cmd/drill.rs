//! `sigil drill`: proves a key survives from a backup without
//! reconstructing it. One node's backup is restored into an isolated,
//! freshly started drill node that co-signs a drill message with live
//! nodes; the signature is verified under the group key and the drill node
//! destroyed ([`sigil_cli::drill`]). Acts as `operator`; the security
//! officers' authorization is signed with the `--officers` identities (the
//! dev officers of `sigil up` by default), and the backup is opened with
//! the backup secret key (`--backup-key`, default the dev key of `sigil up`).
//!
//! A drill needs the data directory of a local cluster: it issues the drill
//! node's certificate with the CA key there and reads the node's
//! configuration; `--coordinator`, `--cert` and profiles do not apply.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;
use sigil_cli::drill::{DrillSpec, DrillStep, run_drill};
use sigil_cli::local::{ClusterInfo, backup_key_path, load_backup_key};
use sigil_cli::output::Text;

use super::Context;

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// The key to drill.
    #[arg(long, value_name = "ID")]
    key: String,
    /// Directory `sigil backup` wrote.
    #[arg(long, value_name = "DIR")]
    backup: PathBuf,
    /// The node whose backup to restore (default: the first participant with one).
    #[arg(long, value_name = "N")]
    node: Option<u16>,
    /// The backup secret key file (hex, mode 0600). Default:
    /// `<data-dir>/backup/recipient.key`, the dev key of `sigil up`.
    #[arg(long, value_name = "FILE")]
    backup_key: Option<PathBuf>,
    /// Officer identities that sign the drill authorization.
    #[arg(long, value_delimiter = ',', default_value = "officer-1,officer-2")]
    officers: Vec<String>,
}

pub async fn run(ctx: &Context, args: &DrillArgs) -> Result<()> {
    let info = ClusterInfo::path(ctx.data_dir());
    if !info.exists() {
        bail!(
            "`sigil drill` needs the data directory of a local cluster (its CA key and node \
             configurations), and {} has no {}; pass --data-dir (connection flags and profiles \
             do not apply to drills)",
            ctx.data_dir().display(),
            info.display()
        );
    }
    let o = ctx.overrides();
    if !o.coordinators.is_empty() || o.cert.is_some() || o.ca.is_some() {
        tracing::warn!(
            "a drill uses the cluster of {} only; --coordinator, --ca and --cert are ignored",
            ctx.data_dir().display()
        );
    }
    let key_file = args
        .backup_key
        .clone()
        .unwrap_or_else(|| backup_key_path(ctx.data_dir()));
    let spec = DrillSpec {
        key_id: args.key.clone(),
        backup_dir: args.backup.clone(),
        node: args.node,
        backup_key: load_backup_key(&key_file)?,
        officers: args.officers.clone(),
    };
    let out = ctx.out;
    out.note(format_args!(
        "recovery drill of key {} from {}…",
        args.key,
        args.backup.display()
    ));
    let mut progress = move |step: &DrillStep| {
        out.note(format_args!(
            "  ✓ {:<8} {} ({} ms)",
            step.step, step.detail, step.ms
        ));
    };
    match run_drill(ctx.data_dir(), &spec, &mut progress).await {
        Ok(report) => {
            let mut value = serde_json::to_value(&report)?;
            if let Some(map) = value.as_object_mut() {
                map.insert("passed".into(), json!(true));
            }
            ctx.out.print(&value, || {
                let mut t = Text::new();
                t.line(format_args!(
                    "drill PASSED: key {} ({} epoch {}) survives from node {}'s backup; signers {:?}, {} ms",
                    report.key_id,
                    report.scheme,
                    report.epoch,
                    report.node_id,
                    report.signers,
                    report.total_ms
                ));
                t.line(format_args!("  signature {}", report.signature));
                t.into()
            });
            Ok(())
        }
        Err(e) => {
            // People read the error on stderr; JSON says it on stdout too.
            ctx.out.print(
                &json!({"passed": false, "key_id": args.key, "error": e.to_string()}),
                String::new,
            );
            Err(e.into())
        }
    }
}
