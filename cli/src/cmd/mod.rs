//! The `sigil` commands, one module per command group. Each module owns its
//! clap arguments and an `async fn run(&Context, &Args)`; what they share —
//! the data directory, the connection settings (flags, environment,
//! profile), the client identity to act as (`--as`) and where results go
//! ([`Output`]) — is the [`Context`] built once from the global flags, so
//! no command looks at those flags itself.

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
pub mod profile;
pub mod sign;
pub mod up;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, Result};
use sigil_cli::connect::{ClientContext, Connection, Overrides};
use sigil_cli::input::parse_duration;
use sigil_cli::local::ClusterInfo;
use sigil_cli::output::Output;
use sigil_cli::profile::{self as profiles, Profile, ProfileError, Profiles};
use sigil_protocol::Scheme;

/// The connection settings of the global flags and environment.
#[derive(Debug, Default)]
pub struct Settings {
    /// `--coordinator`, `--ca`, `--cert`, `--cert-key` (or `SIGIL_*`).
    pub overrides: Overrides,
    /// `--profile` / `SIGIL_PROFILE`.
    pub profile: Option<String>,
    /// Whether `--data-dir` / `SIGIL_DATA_DIR` named the data directory.
    pub data_dir_given: bool,
}

/// What every command runs with, from the global flags.
#[derive(Debug)]
pub struct Context {
    data_dir: PathBuf,
    as_client: Option<String>,
    settings: Settings,
    /// Resolved on first use: commands that reach no cluster never read
    /// the profiles file or `cluster.json`.
    connection: OnceLock<Connection>,
    /// The profile chosen, read once.
    profile: OnceLock<Option<(String, Profile)>>,
    as_ignored: Once,
    /// Where results go: JSON with `--json`, for people otherwise.
    pub out: Output,
}

impl Context {
    /// `data_dir` unset: the per-user data directory (an error where there
    /// is none).
    pub fn new(
        data_dir: Option<PathBuf>,
        as_client: Option<String>,
        settings: Settings,
        out: Output,
    ) -> Result<Self> {
        let data_dir = match data_dir {
            Some(d) => d,
            None => directories::ProjectDirs::from("", "", "sigil")
                .map(|p| p.data_dir().to_owned())
                .context("cannot determine a per-user data directory; pass --data-dir")?,
        };
        Ok(Self {
            data_dir,
            as_client,
            settings,
            connection: OnceLock::new(),
            profile: OnceLock::new(),
            as_ignored: Once::new(),
            out,
        })
    }

    /// The local cluster's data directory (PKI, configs, databases), and
    /// where local state such as kept intents goes.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The connection settings given as flags or environment variables.
    pub fn overrides(&self) -> &Overrides {
        &self.settings.overrides
    }

    /// The profile the settings name, by precedence: `--profile` /
    /// `SIGIL_PROFILE`, else the profile in use (`sigil profile use`).
    /// `None` when neither names one, or the flags need none.
    fn chosen_profile(&self) -> Result<Option<&(String, Profile)>> {
        if let Some(chosen) = self.profile.get() {
            return Ok(chosen.as_ref());
        }
        let chosen = self.read_profile()?;
        Ok(self.profile.get_or_init(|| chosen).as_ref())
    }

    fn read_profile(&self) -> Result<Option<(String, Profile)>> {
        let explicit = self.settings.profile.clone().filter(|p| !p.is_empty());
        if explicit.is_none() && self.settings.overrides.complete() {
            return Ok(None);
        }
        let path = match profiles::default_path() {
            Ok(path) => path,
            Err(ProfileError::NoConfigDir) if explicit.is_none() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let all = Profiles::load(&path)?;
        let (name, in_use) = match (explicit, &all.current) {
            (Some(name), _) => (name, false),
            (None, Some(current)) => (current.clone(), true),
            (None, None) => return Ok(None),
        };
        let profile = all.get(&name, &path).context(if in_use {
            "the profile in use is gone (`sigil profile use NAME` picks another, `--none` none)"
        } else {
            "--profile / SIGIL_PROFILE"
        })?;
        if in_use && self.settings.data_dir_given && ClusterInfo::path(&self.data_dir).exists() {
            tracing::warn!(
                "profile {name:?} is in use and takes precedence over the cluster of {}; \
                 pass --profile, or run `sigil profile use --none`",
                self.data_dir.display()
            );
        }
        Ok(Some((name, profile.clone())))
    }

    /// The resolved connection settings (see [`Connection::resolve`]).
    pub fn connection(&self) -> Result<&Connection> {
        if let Some(c) = self.connection.get() {
            return Ok(c);
        }
        let profile = self.chosen_profile()?;
        let resolved = Connection::resolve(
            &self.settings.overrides,
            profile.as_ref().map(|(n, p)| (n.as_str(), p)),
            &self.data_dir,
        )?;
        Ok(self.connection.get_or_init(|| resolved))
    }

    /// The client identity `--as` names, else `role`: the identity the
    /// command's role needs (`signer`, `operator`, `auditor`, `approver-1`).
    /// With one certificate (`--cert`, or a profile's), that certificate.
    pub fn client(&self, role: &str) -> Result<ClientContext> {
        let connection = self.connection()?;
        if connection.single_identity()
            && let Some(name) = &self.as_client
        {
            self.as_ignored.call_once(|| {
                tracing::warn!(
                    "--as {name} does not apply: the client certificate given names the identity"
                );
            });
        }
        Ok(connection.client(self.client_name(role))?)
    }

    /// The name of the identity [`Self::client`] loads for `role` from a
    /// data directory or PKI directory.
    pub fn client_name<'a>(&'a self, role: &'a str) -> &'a str {
        self.as_client.as_deref().unwrap_or(role)
    }

    /// Client identity `name`, whatever `--as` says (for a step that needs
    /// one role, such as creating a key to benchmark as `operator`). With
    /// one certificate, that certificate.
    pub fn identity(&self, name: &str) -> Result<ClientContext> {
        Ok(self.connection()?.client(name)?)
    }

    /// Client identity `name` and no other (an officer whose signature a
    /// command makes): one certificate naming someone else is refused.
    pub fn named_identity(
        &self,
        name: &str,
    ) -> Result<ClientContext, sigil_cli::local::LocalError> {
        let connection = self
            .connection()
            .map_err(|e| sigil_cli::local::LocalError::Layout(format!("{e:#}")))?;
        connection.named(name)
    }

    /// The CA bundle to verify signatures against offline: `--ca` /
    /// `SIGIL_CA`, else the chosen profile's, else `<data-dir>/pki/ca.pem`.
    pub fn ca(&self) -> Result<PathBuf> {
        if let Some(ca) = &self.settings.overrides.ca {
            return Ok(ca.clone());
        }
        if let Some((_, p)) = self.chosen_profile()?
            && let Some(ca) = p.ca_path()
        {
            return Ok(ca);
        }
        Ok(self.data_dir.join("pki").join("ca.pem"))
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
