//! `sigil profile`: named connection settings (coordinators, CA, client
//! identity) in the profiles file ([`sigil_cli::profile`]): add, use, list,
//! remove. `add` records the connection settings given as flags or
//! environment variables (`--coordinator`, `--ca`, `--cert`, `--cert-key`)
//! or, instead of one certificate, a PKI directory.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use sigil_cli::output::Text;
use sigil_cli::profile::{self as profiles, Profile, Profiles, absolute};

use super::Context;

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Save connection settings under a name: the coordinators
    /// (--coordinator, repeatable), the CA (--ca) and the client identity
    /// (--cert and --cert-key, or --pki-dir).
    Add(AddArgs),
    /// Use a profile when no --profile is given (`--none`: no profile; the
    /// data directory's cluster again).
    Use {
        /// The profile to use.
        #[arg(required_unless_present = "none")]
        name: Option<String>,
        /// Use no profile.
        #[arg(long, conflicts_with = "name")]
        none: bool,
    },
    /// Every profile; the one in use is marked `*`.
    List,
    /// Remove a profile.
    Remove {
        /// The profile to remove.
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// Profile name (a-z, 0-9, '.', '-', '_').
    name: String,
    /// A directory of client certificates, `client-<name>.pem` and
    /// `client-<name>.key`, instead of --cert/--cert-key: each command
    /// picks its role's identity (or --as) there, as in a data directory.
    /// The CA defaults to `<DIR>/ca.pem`.
    #[arg(long, value_name = "DIR")]
    pki_dir: Option<PathBuf>,
    /// The cluster's trust domain (default: the client certificate's).
    #[arg(long, value_name = "DOMAIN")]
    trust_domain: Option<String>,
    /// Replace an existing profile of this name.
    #[arg(long)]
    force: bool,
}

pub fn run(ctx: &Context, command: &ProfileCommand) -> Result<()> {
    let path = profiles::default_path()?;
    match command {
        ProfileCommand::Add(args) => add(ctx, &path, args),
        ProfileCommand::Use { name, .. } => {
            let mut all = Profiles::load(&path)?;
            all.select(name.as_deref(), &path)?;
            all.save(&path)?;
            ctx.out
                .print(&json!({"current": name, "file": path}), || match name {
                    Some(n) => format!("using profile {n}\n"),
                    None => "using no profile\n".to_owned(),
                });
            Ok(())
        }
        ProfileCommand::List => list(ctx, &path),
        ProfileCommand::Remove { name } => {
            let mut all = Profiles::load(&path)?;
            all.remove(name, &path)?;
            all.save(&path)?;
            ctx.out.print(&json!({"removed": name, "file": path}), || {
                format!("removed profile {name}\n")
            });
            Ok(())
        }
    }
}

/// Fails unless `path` exists (a file, or with `dir` a directory).
fn must_exist(what: &str, path: &Path, dir: bool) -> Result<PathBuf> {
    let path = absolute(path);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_dir() == dir => Ok(path),
        Ok(_) if dir => bail!("{what} {} is not a directory", path.display()),
        Ok(_) => bail!("{what} {} is a directory", path.display()),
        Err(e) => bail!("{what} {}: {e}", path.display()),
    }
}

fn add(ctx: &Context, path: &Path, args: &AddArgs) -> Result<()> {
    let given = ctx.overrides();
    if given.coordinators.is_empty() {
        bail!(
            "no coordinator address: pass --coordinator (repeat it for failover) or set SIGIL_COORDINATOR"
        );
    }
    let identity_flags = given.cert.is_some() || given.key.is_some();
    if identity_flags && args.pki_dir.is_some() {
        bail!("give either --cert and --cert-key or --pki-dir, not both");
    }
    let (cert, key, pki_dir) = match (&given.cert, &given.key, &args.pki_dir) {
        (Some(cert), Some(key), None) => (
            Some(must_exist("--cert", cert, false)?),
            Some(must_exist("--cert-key", key, false)?),
            None,
        ),
        (None, None, Some(dir)) => (None, None, Some(must_exist("--pki-dir", dir, true)?)),
        (Some(_), None, _) => bail!("--cert needs its private key: pass --cert-key"),
        (None, Some(_), _) => bail!("--cert-key needs its certificate: pass --cert"),
        _ => bail!(
            "no client identity: pass --cert and --cert-key (one certificate), or --pki-dir \
             (a directory of client-<name>.pem / .key)"
        ),
    };
    let ca = match (&given.ca, &pki_dir) {
        (Some(ca), _) => Some(must_exist("--ca", ca, false)?),
        (None, Some(dir)) => {
            must_exist("CA certificate", &dir.join("ca.pem"), false)?;
            None
        }
        (None, None) => bail!("no CA certificate: pass --ca (the cluster's CA, PEM)"),
    };
    let profile = Profile {
        coordinators: given.coordinators.clone(),
        ca,
        cert,
        key,
        pki_dir,
        trust_domain: args.trust_domain.clone(),
        nodes: Vec::new(),
    };
    let mut all = Profiles::load(path)?;
    let replaced = all.profiles.contains_key(&args.name);
    all.add(&args.name, profile.clone(), args.force)?;
    all.save(path)?;
    let name = &args.name;
    ctx.out.print(
        &json!({"name": name, "profile": profile, "file": path, "replaced": replaced}),
        || {
            let mut t = Text::new();
            let verb = if replaced { "replaced" } else { "added" };
            t.line(format_args!("{verb} profile {name} in {}", path.display()));
            if all.current.as_deref() != Some(name.as_str()) {
                t.line(format_args!(
                    "use it with --profile {name}, or by default after `sigil profile use {name}`"
                ));
            }
            t.into()
        },
    );
    Ok(())
}

fn list(ctx: &Context, path: &Path) -> Result<()> {
    let all = Profiles::load(path)?;
    let current = all.current.as_deref();
    let entries: Vec<_> = all
        .profiles
        .iter()
        .map(|(name, p)| {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            if let Some(map) = v.as_object_mut() {
                map.insert("name".into(), json!(name));
                map.insert("in_use".into(), json!(current == Some(name.as_str())));
            }
            v
        })
        .collect();
    ctx.out.print(
        &json!({"file": path, "current": current, "profiles": entries}),
        || {
            let mut t = Text::new();
            if all.profiles.is_empty() {
                t.line(format_args!(
                    "no profiles in {} (`sigil profile add` creates one)",
                    path.display()
                ));
            }
            let width = all.profiles.keys().map(String::len).max().unwrap_or(0);
            for (name, p) in &all.profiles {
                let mark = if current == Some(name.as_str()) {
                    '*'
                } else {
                    ' '
                };
                t.line(format_args!(
                    "{mark} {name:<width$}  {}  ({})",
                    p.coordinators.join(", "),
                    p.identity_summary()
                ));
            }
            t.into()
        },
    );
    Ok(())
}
