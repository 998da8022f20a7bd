//! How CLI commands reach a cluster: the coordinator (or a node) over mTLS
//! with a client identity.
//!
//! [`Connection::resolve`] decides, setting by setting, where the
//! coordinator addresses, the CA and the client certificate come from:
//! flags or environment ([`Overrides`]) first, then the chosen profile
//! ([`crate::profile`]), then the data directory's `cluster.json` (what
//! `sigil up` writes). [`Connection::client`] then loads one identity as a
//! [`ClientContext`].
//!
//! With several coordinator addresses, [`ClientContext::connect`] fails
//! over: it asks each in turn for its gRPC health (a read-only call, open
//! to every identity) and uses the first that answers `SERVING`; nothing
//! of the command has been sent before that. Only sign requests go further
//! ([`is_transport_failure`]): they carry an idempotency key and a signed
//! intent, so sending the same request again to another coordinator is safe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sigil_coordinator::config::NodeEndpoint;
use sigil_tls::client::{DialOptions, channel};
use sigil_tls::identity::IdentityError;
use sigil_tls::{Identity, ReloadableTls, TlsError, TlsFiles, TrustDomain};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::local::{ClusterInfo, LocalError};
use crate::profile::{Profile, ProfileError};

/// How long dialling one coordinator and its health answer may take before
/// the next one is tried.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A client identity and the cluster it talks to.
#[derive(Debug, Clone)]
pub struct ClientContext {
    /// The cluster as known here: trust domain, the first coordinator, the
    /// node endpoints if known (empty when only the coordinator is), the
    /// data directory's client table if it came from one.
    pub info: ClusterInfo,
    pub tls: Arc<ReloadableTls>,
    /// Every coordinator endpoint, in failover order (`info.coordinator` first).
    pub coordinators: Vec<String>,
}

/// A channel to one coordinator of a client's list.
#[derive(Debug, Clone)]
pub struct CoordinatorChannel {
    pub channel: Channel,
    /// The endpoint it reaches.
    pub endpoint: String,
    index: usize,
}

impl ClientContext {
    /// Loads `<data_dir>/cluster.json` and the TLS files of client `name`.
    pub fn load(data_dir: &Path, name: &str) -> Result<Self, LocalError> {
        let info = ClusterInfo::load(data_dir).map_err(|e| {
            LocalError::Layout(format!(
                "no running local cluster found in {} ({e}); start one with `sigil up`",
                data_dir.display()
            ))
        })?;
        let files = info.clients.get(name).cloned().ok_or_else(|| {
            LocalError::Layout(format!(
                "no client identity {name:?} in {}",
                data_dir.display()
            ))
        })?;
        Self::with_files(info, files)
    }

    pub fn with_files(info: ClusterInfo, files: TlsFiles) -> Result<Self, LocalError> {
        sigil_tls::install_crypto_provider();
        let tls = ReloadableTls::load(files, info.trust_domain.clone())?;
        Ok(Self {
            coordinators: vec![info.coordinator.clone()],
            info,
            tls,
        })
    }

    pub fn domain(&self) -> &TrustDomain {
        &self.info.trust_domain
    }

    /// The client name of this identity (`signer`, `payments`, …), as its
    /// certificate says.
    pub fn name(&self) -> String {
        match self.tls.identity() {
            Identity::Client(name) => name,
            other => other.to_string(),
        }
    }

    fn dial(&self, addr: &str, expected: Identity) -> Result<Channel, LocalError> {
        let opts = DialOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Some(Duration::from_secs(60)),
        };
        Ok(channel(addr, expected, self.tls.clone(), &opts)?)
    }

    /// A lazily connecting channel to the first coordinator (no failover).
    pub fn coordinator(&self) -> Result<Channel, LocalError> {
        self.dial(&self.info.coordinator, Identity::Coordinator)
    }

    /// A lazily connecting channel to the coordinator at `addr`.
    pub fn coordinator_at(&self, addr: &str) -> Result<Channel, LocalError> {
        self.dial(addr, Identity::Coordinator)
    }

    /// A channel to the first coordinator that answers (see the module
    /// docs); with one coordinator, a lazily connecting channel to it.
    pub async fn connect(&self) -> Result<Channel, LocalError> {
        Ok(self.connect_coordinator().await?.channel)
    }

    /// [`Self::connect`], saying which coordinator it reached.
    pub async fn connect_coordinator(&self) -> Result<CoordinatorChannel, LocalError> {
        self.connect_from(0).await
    }

    /// The next coordinator after `failed` that answers, or `None` when
    /// `failed` was the last one.
    pub async fn fail_over(
        &self,
        failed: &CoordinatorChannel,
    ) -> Option<Result<CoordinatorChannel, LocalError>> {
        let next = failed.index + 1;
        if next >= self.coordinators.len() {
            return None;
        }
        Some(self.connect_from(next).await)
    }

    async fn connect_from(&self, start: usize) -> Result<CoordinatorChannel, LocalError> {
        let candidates = self.coordinators.get(start..).unwrap_or_default();
        if let [only] = candidates {
            return Ok(CoordinatorChannel {
                channel: self.coordinator_at(only)?,
                endpoint: only.clone(),
                index: start,
            });
        }
        let mut failures = Vec::new();
        for (i, addr) in candidates.iter().enumerate() {
            let outcome = match self.coordinator_at(addr) {
                Ok(channel) => probe(channel.clone()).await.map(|()| channel),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(channel) => {
                    return Ok(CoordinatorChannel {
                        channel,
                        endpoint: addr.clone(),
                        index: start + i,
                    });
                }
                Err(why) => {
                    if let Some(next) = candidates.get(i + 1) {
                        tracing::warn!(
                            "coordinator {addr} failed ({why}); trying the next one, {next}"
                        );
                    }
                    failures.push(format!("{addr}: {why}"));
                }
            }
        }
        Err(ConnectError::Unreachable(failures).into())
    }

    /// A lazily connecting channel to node `id`, if its endpoint is known.
    pub fn node(&self, id: u16) -> Result<Channel, LocalError> {
        let node = self
            .info
            .nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| LocalError::Layout(format!("no node {id} in this cluster")))?;
        self.dial(&node.endpoint, Identity::Node(id))
    }
}

/// Asks a coordinator for its health: `Ok` if it answers `SERVING`.
async fn probe(channel: Channel) -> Result<(), String> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(PROBE_TIMEOUT);
    let answer = tokio::time::timeout(PROBE_TIMEOUT, HealthClient::new(channel).check(request))
        .await
        .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?;
    match answer {
        Ok(resp) => match ServingStatus::try_from(resp.into_inner().status) {
            Ok(ServingStatus::Serving) => Ok(()),
            Ok(other) => Err(format!("health {}", other.as_str_name())),
            Err(_) => Err("unknown health status".to_owned()),
        },
        Err(status) => Err(crate::status::describe(&status)),
    }
}

/// Whether a call failed in this client's own transport — the connection
/// refused, reset or its handshake failed — rather than with an answer of
/// the coordinator. Only then may an idempotent request go to another
/// coordinator; a time-out is not such a failure (the coordinator may
/// still be working on the request).
pub fn is_transport_failure(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
    ) && std::error::Error::source(status).is_some()
}

/// Connection settings given as flags or environment variables; each one
/// given overrides the profile's and the data directory's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--coordinator` / `SIGIL_COORDINATOR`, in failover order.
    pub coordinators: Vec<String>,
    /// `--ca` / `SIGIL_CA`.
    pub ca: Option<PathBuf>,
    /// `--cert` / `SIGIL_CERT`.
    pub cert: Option<PathBuf>,
    /// `--cert-key` / `SIGIL_KEY`.
    pub key: Option<PathBuf>,
}

impl Overrides {
    /// Whether these settings alone reach a cluster (no profile or data
    /// directory needed).
    pub fn complete(&self) -> bool {
        !self.coordinators.is_empty()
            && self.ca.is_some()
            && self.cert.is_some()
            && self.key.is_some()
    }
}

/// Why the connection settings are incomplete.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(
        "no coordinator address: pass --coordinator, set SIGIL_COORDINATOR, or use a profile \
         (`sigil profile add`){}",
        local_hint(.0)
    )]
    NoCoordinator(Option<String>),
    #[error(
        "no CA certificate: pass --ca, set SIGIL_CA, or use a profile (`sigil profile add`){}",
        local_hint(.0)
    )]
    NoCa(Option<String>),
    #[error(
        "no client certificate: pass --cert and --cert-key, set SIGIL_CERT and SIGIL_KEY, or use \
         a profile (`sigil profile add`){}",
        local_hint(.0)
    )]
    NoCertificate(Option<String>),
    #[error(
        "a client certificate (--cert or SIGIL_CERT) needs its private key: pass --cert-key or set SIGIL_KEY"
    )]
    CertWithoutKey,
    #[error(
        "a private key (--cert-key or SIGIL_KEY) needs its certificate: pass --cert or set SIGIL_CERT"
    )]
    KeyWithoutCert,
    #[error("profile {name:?}: {source}")]
    Profile { name: String, source: ProfileError },
    #[error(
        "no client identity {name:?} in {dir} (no {file}); --as names one of its client-<name>.pem"
    )]
    NoSuchClient {
        name: String,
        dir: PathBuf,
        file: String,
    },
    #[error(
        "{name}: the certificate given ({source_name}) names {actual}; signing as {name} needs \
         its own certificate (a data directory, or a profile with --pki-dir)"
    )]
    NotThisIdentity {
        name: String,
        actual: String,
        source_name: String,
    },
    #[error("no coordinator answers: {}", .0.join("; "))]
    Unreachable(Vec<String>),
}

fn local_hint(why: &Option<String>) -> String {
    why.as_ref()
        .map(|w| format!("; no local cluster either ({w})"))
        .unwrap_or_default()
}

/// Where client identities come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// One certificate and key: the identity of every command, whatever
    /// role it needs (the certificate's SPIFFE URI names it; `--as` does
    /// not apply).
    Single {
        cert: PathBuf,
        key: PathBuf,
        /// `flags` or `profile <name>`.
        from: String,
    },
    /// `client-<name>.pem` / `client-<name>.key` in a directory.
    PkiDir(PathBuf),
    /// The client table of a data directory's `cluster.json`.
    DataDir {
        dir: PathBuf,
        clients: BTreeMap<String, TlsFiles>,
    },
}

/// Resolved connection settings: how to reach the cluster and where each
/// client identity's TLS files are.
#[derive(Clone, Debug)]
pub struct Connection {
    /// Coordinator endpoints, in failover order (never empty).
    pub coordinators: Vec<String>,
    /// Node endpoints, when the source of the coordinators knows them (a
    /// data directory, a profile listing them); else empty.
    pub nodes: Vec<NodeEndpoint>,
    /// The CA bundle; `None`: each data-directory client's own.
    pub ca: Option<PathBuf>,
    pub identities: IdentitySource,
    /// The trust domain, if a profile or the data directory names it; else
    /// the client certificate's.
    pub trust_domain: Option<TrustDomain>,
}

/// The data directory's `cluster.json`, read at most once, and only if a
/// setting is missing from the flags and the profile.
struct Local<'a> {
    dir: &'a Path,
    loaded: Option<Result<ClusterInfo, String>>,
}

impl Local<'_> {
    fn get(&mut self) -> Result<&ClusterInfo, Option<String>> {
        let dir = self.dir;
        let loaded = self.loaded.get_or_insert_with(|| {
            ClusterInfo::load(dir).map_err(|e| match e {
                LocalError::Io(_, io) if io.kind() == std::io::ErrorKind::NotFound => {
                    format!("no {}", ClusterInfo::path(dir).display())
                }
                e => e.to_string(),
            })
        });
        loaded.as_ref().map_err(|e| Some(e.clone()))
    }
}

impl Connection {
    /// Resolves each setting: `overrides` first, then `profile` (name and
    /// profile), then `<data_dir>/cluster.json`. The data directory is read
    /// only for what the others leave open.
    pub fn resolve(
        overrides: &Overrides,
        profile: Option<(&str, &Profile)>,
        data_dir: &Path,
    ) -> Result<Self, ConnectError> {
        if let Some((name, p)) = profile {
            p.validate().map_err(|source| ConnectError::Profile {
                name: name.to_owned(),
                source,
            })?;
        }
        let mut local = Local {
            dir: data_dir,
            loaded: None,
        };

        // Coordinators, and the node endpoints of the same source.
        let (coordinators, nodes) = if !overrides.coordinators.is_empty() {
            (overrides.coordinators.clone(), Vec::new())
        } else if let Some((_, p)) = profile {
            (p.coordinators.clone(), p.nodes.clone())
        } else {
            let info = local.get().map_err(ConnectError::NoCoordinator)?;
            (vec![info.coordinator.clone()], info.nodes.clone())
        };

        // The client identities.
        let (identities, trust_domain) = match (&overrides.cert, &overrides.key, profile) {
            (Some(cert), Some(key), _) => (
                IdentitySource::Single {
                    cert: cert.clone(),
                    key: key.clone(),
                    from: "flags".to_owned(),
                },
                None,
            ),
            (Some(_), None, _) => return Err(ConnectError::CertWithoutKey),
            (None, Some(_), _) => return Err(ConnectError::KeyWithoutCert),
            (None, None, Some((name, p))) => {
                let domain = p
                    .trust_domain
                    .clone()
                    .map(TrustDomain::new)
                    .transpose()
                    .map_err(|e| ConnectError::Profile {
                        name: name.to_owned(),
                        source: ProfileError::Invalid(e.to_string()),
                    })?;
                let source = match (&p.cert, &p.key, &p.pki_dir) {
                    (Some(cert), Some(key), _) => IdentitySource::Single {
                        cert: cert.clone(),
                        key: key.clone(),
                        from: format!("profile {name}"),
                    },
                    (_, _, Some(dir)) => IdentitySource::PkiDir(dir.clone()),
                    // validate() refuses anything else.
                    _ => return Err(ConnectError::NoCertificate(None)),
                };
                (source, domain)
            }
            (None, None, None) => {
                let info = local.get().map_err(ConnectError::NoCertificate)?;
                (
                    IdentitySource::DataDir {
                        dir: data_dir.to_owned(),
                        clients: info.clients.clone(),
                    },
                    Some(info.trust_domain.clone()),
                )
            }
        };

        // The CA: a data directory's clients carry their own.
        let ca = match (&overrides.ca, profile) {
            (Some(ca), _) => Some(ca.clone()),
            (None, Some((_, p))) => p.ca_path(),
            (None, None) => match &identities {
                IdentitySource::DataDir { .. } => None,
                _ => {
                    let info = local.get().map_err(ConnectError::NoCa)?;
                    let ca = info.clients.values().next().map(|f| f.ca.clone());
                    Some(ca.ok_or(ConnectError::NoCa(None))?)
                }
            },
        };

        Ok(Self {
            coordinators,
            nodes,
            ca,
            identities,
            trust_domain,
        })
    }

    /// Whether every role maps to one certificate (`--as` does not apply).
    pub fn single_identity(&self) -> bool {
        matches!(self.identities, IdentitySource::Single { .. })
    }

    /// Client identity `name` (the name a role or `--as` gives; a single
    /// certificate is used whatever the name).
    pub fn client(&self, name: &str) -> Result<ClientContext, LocalError> {
        let (files, clients) = match &self.identities {
            IdentitySource::Single { cert, key, .. } => (
                TlsFiles {
                    ca: self.ca.clone().ok_or(ConnectError::NoCa(None))?,
                    cert: cert.clone(),
                    key: key.clone(),
                },
                BTreeMap::new(),
            ),
            IdentitySource::PkiDir(dir) => {
                let cert = dir.join(format!("client-{name}.pem"));
                if !cert.exists() {
                    return Err(ConnectError::NoSuchClient {
                        name: name.to_owned(),
                        dir: dir.clone(),
                        file: format!("client-{name}.pem"),
                    }
                    .into());
                }
                (
                    TlsFiles {
                        ca: self.ca.clone().ok_or(ConnectError::NoCa(None))?,
                        cert,
                        key: dir.join(format!("client-{name}.key")),
                    },
                    BTreeMap::new(),
                )
            }
            IdentitySource::DataDir { dir, clients } => {
                let mut files = clients.get(name).cloned().ok_or_else(|| {
                    LocalError::Layout(format!("no client identity {name:?} in {}", dir.display()))
                })?;
                if let Some(ca) = &self.ca {
                    files.ca = ca.clone();
                }
                (files, clients.clone())
            }
        };
        let tls = load_tls(files, self.trust_domain.as_ref())?;
        let info = ClusterInfo {
            trust_domain: tls.domain().clone(),
            coordinator: self.coordinators.first().cloned().unwrap_or_default(),
            nodes: self.nodes.clone(),
            clients,
        };
        Ok(ClientContext {
            info,
            tls,
            coordinators: self.coordinators.clone(),
        })
    }

    /// Client identity `name` and no other: a single certificate that
    /// names someone else is refused (officers' signatures must be theirs).
    pub fn named(&self, name: &str) -> Result<ClientContext, LocalError> {
        let client = self.client(name)?;
        if let IdentitySource::Single { from, .. } = &self.identities {
            let actual = client.tls.identity();
            if actual != Identity::Client(name.to_owned()) {
                return Err(ConnectError::NotThisIdentity {
                    name: name.to_owned(),
                    actual: actual.to_string(),
                    source_name: from.clone(),
                }
                .into());
            }
        }
        Ok(client)
    }
}

/// Loads TLS material in `domain`, or — none given — in the trust domain
/// its certificate names (the SPIFFE URI is the identity).
fn load_tls(
    files: TlsFiles,
    domain: Option<&TrustDomain>,
) -> Result<Arc<ReloadableTls>, LocalError> {
    sigil_tls::install_crypto_provider();
    match (
        ReloadableTls::load(files.clone(), domain.cloned().unwrap_or_default()),
        domain,
    ) {
        (Err(TlsError::Identity(IdentityError::ForeignTrustDomain { uri, .. })), None) => {
            let named = uri
                .strip_prefix("spiffe://")
                .and_then(|rest| rest.split_once('/'))
                .map(|(domain, _)| domain.to_owned())
                .unwrap_or_default();
            let domain = TrustDomain::new(named).map_err(TlsError::from)?;
            Ok(ReloadableTls::load(files, domain)?)
        }
        (loaded, _) => Ok(loaded?),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn profile() -> Profile {
        Profile {
            coordinators: vec!["p1:7400".into(), "p2:7400".into()],
            ca: Some("/p/ca.pem".into()),
            pki_dir: Some("/p/pki".into()),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_given_names_every_way_to_give_a_coordinator() {
        let dir = tempfile::tempdir().unwrap();
        let err = Connection::resolve(&Overrides::default(), None, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "no coordinator address: pass --coordinator, set SIGIL_COORDINATOR, or use a \
                 profile (`sigil profile add`)"
            ),
            "{err}"
        );
        assert!(err.contains("cluster.json"), "{err}");
    }

    #[test]
    fn each_missing_setting_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Overrides {
            coordinators: vec!["c:1".into()],
            ..Default::default()
        };
        let err = Connection::resolve(&o, None, dir.path()).unwrap_err();
        assert!(matches!(err, ConnectError::NoCertificate(_)), "{err}");
        o.cert = Some("c.pem".into());
        let err = Connection::resolve(&o, None, dir.path()).unwrap_err();
        assert!(matches!(err, ConnectError::CertWithoutKey), "{err}");
        o.key = Some("c.key".into());
        let err = Connection::resolve(&o, None, dir.path()).unwrap_err();
        assert!(
            err.to_string().starts_with("no CA certificate: pass --ca"),
            "{err}"
        );
        o.ca = Some("ca.pem".into());
        assert!(o.complete());
        let c = Connection::resolve(&o, None, dir.path()).unwrap();
        assert!(c.single_identity());
        assert_eq!(c.coordinators, ["c:1"]);
    }

    #[test]
    fn flags_override_the_profile_setting_by_setting() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile();
        let c = Connection::resolve(&Overrides::default(), Some(("p", &p)), dir.path()).unwrap();
        assert_eq!(c.coordinators, ["p1:7400", "p2:7400"]);
        assert_eq!(c.identities, IdentitySource::PkiDir("/p/pki".into()));
        assert_eq!(c.ca, Some(PathBuf::from("/p/ca.pem")));

        let o = Overrides {
            coordinators: vec!["f:1".into()],
            cert: Some("f.pem".into()),
            key: Some("f.key".into()),
            ..Default::default()
        };
        let c = Connection::resolve(&o, Some(("p", &p)), dir.path()).unwrap();
        assert_eq!(c.coordinators, ["f:1"]);
        assert!(c.single_identity());
        assert_eq!(c.ca, Some(PathBuf::from("/p/ca.pem")));
    }

    #[test]
    fn a_certificate_alone_names_its_trust_domain_and_identity() {
        let dir = tempfile::tempdir().unwrap();
        let domain = TrustDomain::new("payments.example").unwrap();
        let pki = sigil_tls::pki::PkiLayout::new(dir.path().join("pki"));
        let identity = Identity::Client("payments".into());
        pki.ensure(&domain, std::slice::from_ref(&identity), 1)
            .unwrap();
        let files = pki.identity_files(&identity);
        let o = Overrides {
            coordinators: vec!["c:1".into(), "c:2".into()],
            ca: Some(files.ca.clone()),
            cert: Some(files.cert.clone()),
            key: Some(files.key.clone()),
        };
        let c = Connection::resolve(&o, None, dir.path()).unwrap();
        // The role's name does not matter: the certificate is the identity.
        let client = c.client("operator").unwrap();
        assert_eq!(client.domain(), &domain);
        assert_eq!(client.name(), "payments");
        assert_eq!(client.coordinators, ["c:1", "c:2"]);
        assert!(client.info.nodes.is_empty());
        // An officer's signature needs that officer's own certificate.
        let err = c.named("officer-1").unwrap_err().to_string();
        assert!(err.contains("client/payments"), "{err}");
        assert!(c.named("payments").is_ok());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_transport_failure_and_an_answer_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = listener.local_addr().unwrap();
        drop(listener);
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{dead}"))
            .unwrap()
            .connect_lazy();
        let status = probe_status(channel).await;
        assert!(is_transport_failure(&status), "{status:?}");
        // What a coordinator answers (no quorum, say) is not one.
        assert!(!is_transport_failure(&tonic::Status::unavailable(
            "node 2 does not answer"
        )));
    }

    async fn probe_status(channel: Channel) -> tonic::Status {
        HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap_err()
    }

    #[test]
    fn an_invalid_profile_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = profile();
        p.pki_dir = None;
        let err = Connection::resolve(&Overrides::default(), Some(("bad", &p)), dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("profile \"bad\": invalid profile"), "{err}");
    }
}
