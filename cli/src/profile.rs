//! Named connection profiles: how to reach a cluster and as whom, kept in a
//! TOML file so that `sigil --profile prod key list` needs no other flag.
//!
//! The file is `<config dir>/sigil/profiles.toml` (on Linux
//! `~/.config/sigil/profiles.toml`), or the path in `SIGIL_PROFILES`:
//!
//! ```toml
//! current = "prod"            # the profile in use (`sigil profile use prod`)
//!
//! [profiles.prod]
//! coordinators = ["coord-a.example.net:7400", "coord-b.example.net:7400"]
//! ca = "/etc/sigil/ca.pem"
//! cert = "/etc/sigil/client-payments.pem"
//! key = "/etc/sigil/client-payments.key"
//!
//! [profiles.local]            # written by `sigil up`
//! coordinators = ["127.0.0.1:7400"]
//! ca = "/home/me/.local/share/sigil/pki/ca.pem"
//! pki_dir = "/home/me/.local/share/sigil/pki"
//! trust_domain = "sigil.local"
//! nodes = [{ id = 1, endpoint = "127.0.0.1:7401", zone = "zone-a" }]
//! ```
//!
//! A profile names its client identity either with one certificate and key
//! (`cert`, `key`: that identity for every command) or with a directory of
//! them (`pki_dir`: `client-<name>.pem` / `.key` per client, so `--as` and
//! each command's role pick one, as in a data directory). `nodes` is
//! optional: commands that talk to the nodes themselves (`sigil health`)
//! use it, others ask the coordinator. Paths are stored absolute.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sigil_coordinator::config::NodeEndpoint;

/// The environment variable that overrides where the profiles file is.
pub const PROFILES_ENV: &str = "SIGIL_PROFILES";

/// The profile `sigil up` writes for the cluster it starts.
pub const LOCAL_PROFILE: &str = "local";

/// How to reach one cluster and as whom.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Coordinator endpoints (`host:port`), tried in this order.
    pub coordinators: Vec<String>,
    /// PEM bundle of the cluster's CA certificate(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The client certificate (with `key`): one identity for every command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// A directory of `client-<name>.pem` / `client-<name>.key` (instead of
    /// `cert` and `key`): the identity each command's role (or `--as`) names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki_dir: Option<PathBuf>,
    /// The cluster's trust domain (default: the client certificate's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// The signer nodes' endpoints, for commands that reach them directly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeEndpoint>,
}

impl Profile {
    /// The CA bundle: `ca`, else `<pki_dir>/ca.pem`.
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.ca
            .clone()
            .or_else(|| self.pki_dir.as_ref().map(|d| d.join("ca.pem")))
    }

    /// Checks that the profile names coordinators, a CA and exactly one
    /// identity source.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |why: &str| Err(ProfileError::Invalid(why.to_owned()));
        if self.coordinators.is_empty() || self.coordinators.iter().any(|c| c.trim().is_empty()) {
            return invalid("at least one coordinator address is required, and none may be empty");
        }
        match (&self.cert, &self.key, &self.pki_dir) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            (Some(_), None, _) => return invalid("a certificate needs its key"),
            (None, Some(_), _) => return invalid("a key needs its certificate"),
            (Some(_), Some(_), Some(_)) => {
                return invalid("give either a certificate and key or a PKI directory, not both");
            }
            (None, None, None) => {
                return invalid("a certificate and key, or a PKI directory, is required");
            }
        }
        if self.ca_path().is_none() {
            return invalid("a CA certificate is required");
        }
        if let Some(domain) = &self.trust_domain {
            sigil_tls::TrustDomain::new(domain.clone())
                .map_err(|e| ProfileError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// Where its client identity comes from, for people.
    pub fn identity_summary(&self) -> String {
        match (&self.cert, &self.pki_dir) {
            (Some(cert), _) => format!("cert {}", cert.display()),
            (None, Some(dir)) => format!("pki dir {}", dir.display()),
            (None, None) => "no identity".to_owned(),
        }
    }
}

/// The profiles file: every profile by name, and the one in use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    /// The profile used when no `--profile` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    #[error("invalid profile: {0}")]
    Invalid(String),
    #[error("invalid profile name {0:?}: use 1-64 of a-z, 0-9, '.', '-', '_'")]
    Name(String),
    #[error("no profile {name:?} in {file} (`sigil profile list` shows them)")]
    Unknown { name: String, file: PathBuf },
    #[error("profile {0:?} exists; pass --force to replace it")]
    Exists(String),
    #[error(
        "cannot determine a per-user configuration directory for the profiles file; set {PROFILES_ENV}"
    )]
    NoConfigDir,
}

/// Where the profiles file is: `$SIGIL_PROFILES`, else
/// `<config dir>/sigil/profiles.toml`.
pub fn default_path() -> Result<PathBuf, ProfileError> {
    if let Some(path) = std::env::var_os(PROFILES_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    directories::ProjectDirs::from("", "", "sigil")
        .map(|p| p.config_dir().join("profiles.toml"))
        .ok_or(ProfileError::NoConfigDir)
}

/// Checks a profile name (the same alphabet as client names).
pub fn check_name(name: &str) -> Result<(), ProfileError> {
    if sigil_tls::identity::valid_name(name) {
        Ok(())
    } else {
        Err(ProfileError::Name(name.to_owned()))
    }
}

/// `path` made absolute against the current directory (profiles are used
/// from anywhere).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

impl Profiles {
    /// Reads the file at `path`; a missing file is an empty set.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(ProfileError::Io(path.to_owned(), e)),
        };
        toml::from_str(&text).map_err(|e| ProfileError::Parse(path.to_owned(), e.to_string()))
    }

    /// Writes the file (directories created; replaced atomically).
    pub fn save(&self, path: &Path) -> Result<(), ProfileError> {
        let io = |e| ProfileError::Io(path.to_owned(), e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = toml::to_string_pretty(self)
            .map_err(|e| ProfileError::Parse(path.to_owned(), e.to_string()))?;
        let tmp = path.with_extension(format!("toml.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Profile `name`, or an error naming the file.
    pub fn get(&self, name: &str, file: &Path) -> Result<&Profile, ProfileError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_owned(),
                file: file.to_owned(),
            })
    }

    /// Adds (or with `replace` replaces) profile `name` after checking it.
    pub fn add(&mut self, name: &str, profile: Profile, replace: bool) -> Result<(), ProfileError> {
        check_name(name)?;
        profile.validate()?;
        if !replace && self.profiles.contains_key(name) {
            return Err(ProfileError::Exists(name.to_owned()));
        }
        self.profiles.insert(name.to_owned(), profile);
        Ok(())
    }

    /// Removes profile `name`; it stops being in use if it was.
    pub fn remove(&mut self, name: &str, file: &Path) -> Result<Profile, ProfileError> {
        let removed = self
            .profiles
            .remove(name)
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_owned(),
                file: file.to_owned(),
            })?;
        if self.current.as_deref() == Some(name) {
            self.current = None;
        }
        Ok(removed)
    }

    /// Puts profile `name` in use (`None`: none).
    pub fn select(&mut self, name: Option<&str>, file: &Path) -> Result<(), ProfileError> {
        if let Some(name) = name {
            self.get(name, file)?;
        }
        self.current = name.map(str::to_owned);
        Ok(())
    }
}

/// Writes (or updates) profile [`LOCAL_PROFILE`] in the file at `path`:
/// what `sigil up` does for the cluster it starts. Leaves the profile in
/// use unchanged.
pub fn save_local(path: &Path, profile: Profile) -> Result<(), ProfileError> {
    let mut profiles = Profiles::load(path)?;
    profiles.add(LOCAL_PROFILE, profile, true)?;
    profiles.save(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn certified() -> Profile {
        Profile {
            coordinators: vec!["a:7400".into(), "b:7400".into()],
            ca: Some("/etc/sigil/ca.pem".into()),
            cert: Some("/etc/sigil/c.pem".into()),
            key: Some("/etc/sigil/c.key".into()),
            ..Default::default()
        }
    }

    #[test]
    fn profiles_round_trip_through_toml_with_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/profiles.toml");
        let mut profiles = Profiles::default();
        profiles.add("prod", certified(), false).unwrap();
        let local = Profile {
            coordinators: vec!["127.0.0.1:7400".into()],
            pki_dir: Some("/data/pki".into()),
            trust_domain: Some("sigil.local".into()),
            nodes: vec![NodeEndpoint {
                id: 1,
                endpoint: "127.0.0.1:7401".into(),
                zone: "zone-a".into(),
            }],
            ..Default::default()
        };
        profiles.add(LOCAL_PROFILE, local.clone(), false).unwrap();
        profiles.select(Some("prod"), &path).unwrap();
        profiles.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("current = \"prod\""), "{text}");
        let back = Profiles::load(&path).unwrap();
        assert_eq!(back, profiles);
        assert_eq!(
            back.get(LOCAL_PROFILE, &path).unwrap().ca_path(),
            Some(PathBuf::from("/data/pki/ca.pem"))
        );
    }

    #[test]
    fn a_missing_file_is_empty_and_a_broken_one_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.toml");
        assert_eq!(Profiles::load(&path).unwrap(), Profiles::default());
        std::fs::write(&path, "profiles = 3").unwrap();
        let err = Profiles::load(&path).unwrap_err().to_string();
        assert!(err.contains("profiles.toml"), "{err}");
    }

    #[test]
    fn invalid_profiles_and_names_are_refused() {
        let mut profiles = Profiles::default();
        let mut no_key = certified();
        no_key.key = None;
        let mut both = certified();
        both.pki_dir = Some("/pki".into());
        let mut no_ca = certified();
        no_ca.ca = None;
        let mut none = certified();
        none.coordinators.clear();
        for p in [no_key, both, no_ca, none] {
            assert!(matches!(
                profiles.add("x", p, false),
                Err(ProfileError::Invalid(_))
            ));
        }
        assert!(matches!(
            profiles.add("Prod!", certified(), false),
            Err(ProfileError::Name(_))
        ));
        profiles.add("x", certified(), false).unwrap();
        assert!(matches!(
            profiles.add("x", certified(), false),
            Err(ProfileError::Exists(_))
        ));
        profiles.add("x", certified(), true).unwrap();
    }

    #[test]
    fn removing_the_profile_in_use_clears_it() {
        let file = Path::new("p.toml");
        let mut profiles = Profiles::default();
        profiles.add("x", certified(), false).unwrap();
        assert!(profiles.select(Some("y"), file).is_err());
        profiles.select(Some("x"), file).unwrap();
        profiles.remove("x", file).unwrap();
        assert_eq!(profiles.current, None);
        assert!(matches!(
            profiles.remove("x", file),
            Err(ProfileError::Unknown { .. })
        ));
    }
}
