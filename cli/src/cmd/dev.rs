//! `sigil dev`: development helpers. `dev pki` creates the development CA
//! and the certificates a local cluster and its clients use; `dev
//! backup-key` creates a backup keypair (the secret in a 0600 file, the
//! public key for the nodes' `[backup] recipient`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::json;
use sigil_cli::local::{ensure_dev_pki, write_private};
use sigil_cli::output::Text;
use sigil_policy::backup::BackupSecretKey;
use sigil_tls::TrustDomain;

use super::Context;

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Create a development CA and certificates for a coordinator, nodes and the three client roles.
    Pki {
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        #[arg(long, default_value = "sigil.local")]
        trust_domain: String,
    },
    /// Create a backup keypair: the secret (hex) in FILE, mode 0600, to be
    /// held offline by the security officers; prints the public key for
    /// every node's `[backup] recipient`.
    BackupKey {
        /// Where to write the secret key (refused if it exists).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

pub fn run(ctx: &Context, command: &DevCommand) -> Result<()> {
    match command {
        DevCommand::Pki {
            nodes,
            trust_domain,
        } => {
            let domain = TrustDomain::new(trust_domain.clone())?;
            let (pki, issued) = ensure_dev_pki(ctx.data_dir(), &domain, *nodes)?;
            let issued: Vec<String> = issued.iter().map(ToString::to_string).collect();
            ctx.out
                .print(&json!({ "pki_dir": pki.dir, "issued": issued }), || {
                    let mut t = Text::new();
                    t.line(format_args!("dev PKI in {}", pki.dir.display()));
                    for id in &issued {
                        t.line(format_args!("  issued {id}"));
                    }
                    t.into()
                });
        }
        DevCommand::BackupKey { out } => {
            if out.exists() {
                bail!("{} exists; not overwriting a backup key", out.display());
            }
            let key = BackupSecretKey::generate(&mut rand::rngs::OsRng);
            write_private(out, key.to_hex().as_bytes())?;
            let public = key.public_key();
            ctx.out.print(
                &json!({"secret_key_file": out, "recipient": public.to_hex(), "fingerprint": public.fingerprint()}),
                || {
                    let mut t = Text::new();
                    t.line(format_args!("backup secret key written to {} (mode 0600)", out.display()));
                    t.line("every node's config:");
                    t.line("  [backup]");
                    t.line(format_args!("  recipient = \"{}\"", public.to_hex()));
                    t.into()
                },
            );
        }
    }
    Ok(())
}
