//! The `sigil` commands, one module per command group. Each module owns its
//! clap arguments and an `async fn run(&Context, &Args)`; what they share —
//! the data directory, the client identity to act as (`--as`) and where
//! results go ([`Output`]) — is the [`Context`] built once from the global
//! flags, so no command looks at those flags itself.

pub mod approvals;
pub mod audit;
pub mod backup;
pub mod bench;
pub mod chain;
pub mod dev;
pub mod drill;
pub mod eth;
pub mod health;
pub mod key;
pub mod nodes;
pub mod policy;
pub mod sign;
pub mod up;
pub mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use sigil_cli::connect::ClientContext;
use sigil_cli::input::parse_duration;
use sigil_cli::local::LocalError;
use sigil_cli::output::Output;
use sigil_protocol::Scheme;

/// What every command runs with, from the global flags.
#[derive(Debug)]
pub struct Context {
    data_dir: PathBuf,
    as_client: Option<String>,
    /// Where results go: JSON with `--json`, for people otherwise.
    pub out: Output,
}

impl Context {
    /// `data_dir` unset: the per-user data directory (an error where there
    /// is none).
    pub fn new(data_dir: Option<PathBuf>, as_client: Option<String>, out: Output) -> Result<Self> {
        let data_dir = match data_dir {
            Some(d) => d,
            None => directories::ProjectDirs::from("", "", "sigil")
                .map(|p| p.data_dir().to_owned())
                .context("cannot determine a per-user data directory; pass --data-dir")?,
        };
        Ok(Self {
            data_dir,
            as_client,
            out,
        })
    }

    /// The local cluster's data directory (PKI, configs, databases).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The client identity `--as` names, else `role`: the identity the
    /// command's role needs (`signer`, `operator`, `auditor`, `approver-1`).
    pub fn client(&self, role: &str) -> Result<ClientContext, LocalError> {
        self.identity(self.client_name(role))
    }

    /// The name of the identity [`Self::client`] loads for `role`.
    pub fn client_name<'a>(&'a self, role: &'a str) -> &'a str {
        self.as_client.as_deref().unwrap_or(role)
    }

    /// Client identity `name`, whatever `--as` says (for a step that needs
    /// one role, such as creating a key to benchmark as `operator`).
    pub fn identity(&self, name: &str) -> Result<ClientContext, LocalError> {
        ClientContext::load(&self.data_dir, name)
    }
}

/// The name of a wire scheme value, `unspecified` if it is none.
pub fn scheme_name(v: i32) -> &'static str {
    sigil_proto::convert::scheme_name_from_wire(v).unwrap_or("unspecified")
}

/// clap parser of a scheme name.
pub fn parse_scheme_arg(s: &str) -> Result<Scheme, String> {
    s.parse::<Scheme>().map_err(|_| {
        let names: Vec<&str> = Scheme::ALL.iter().map(|s| s.name()).collect();
        format!("unknown scheme {s:?}; expected one of {}", names.join(", "))
    })
}

/// clap parser of a duration (`3s`, `200ms`, …).
pub fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}
