//! `sigil dev`: development helpers. `dev pki` creates the development CA
//! and the certificates a local cluster and its clients use.

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use sigil_cli::local::ensure_dev_pki;
use sigil_cli::output::Text;
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
    }
    Ok(())
}
