//! TLS material on disk (CA, certificate chain, private key) and the rustls
//! configurations built from it, swappable at run time.
//!
//! [`ReloadableTls::reload`] re-reads the files and, if they changed and are
//! valid, atomically replaces the configurations used for *new* connections.
//! Invalid new material is refused and the previous material stays in use, so
//! a half-written certificate never takes a process off the network. A
//! reload may not change the process's own identity.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::verify::{SpiffeClientVerifier, SpiffeServerVerifier};
use crate::{Identity, TlsError, TrustDomain};

/// Paths of a process's TLS material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFiles {
    /// PEM bundle of trusted CA certificates.
    pub ca: PathBuf,
    /// PEM certificate chain, end-entity first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

pub(crate) struct Loaded {
    identity: Identity,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    server: Arc<ServerConfig>,
    /// Hash of the three files' bytes, to notice changes cheaply.
    fingerprint: u64,
    /// The certificate key as a signing key, parsed once per loaded material.
    pub(crate) identity_key: std::sync::OnceLock<Arc<crate::signing::IdentityKey>>,
    /// Peer chains verified against these roots recently
    /// ([`crate::signing::VerifiedChains`]); dropped with the material on reload.
    pub(crate) verified: crate::signing::VerifiedChains,
}

/// A process's TLS identity, re-readable from disk without a restart.
pub struct ReloadableTls {
    files: TlsFiles,
    domain: TrustDomain,
    current: ArcSwap<Loaded>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for ReloadableTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableTls")
            .field("files", &self.files)
            .field("identity", &self.current.load().identity)
            .finish_non_exhaustive()
    }
}

impl ReloadableTls {
    /// Loads and validates the material. Fails if the certificate does not
    /// name exactly one identity in `domain`.
    pub fn load(files: TlsFiles, domain: TrustDomain) -> Result<Arc<Self>, TlsError> {
        let loaded = load(&files, &domain)?;
        Ok(Arc::new(Self {
            files,
            domain,
            current: ArcSwap::from_pointee(loaded),
            generation: tokio::sync::watch::Sender::new(0),
        }))
    }

    /// This process's identity.
    pub fn identity(&self) -> Identity {
        self.current.load().identity.clone()
    }

    pub fn domain(&self) -> &TrustDomain {
        &self.domain
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The current certificate chain (DER, end-entity first).
    pub fn certificate_chain(&self) -> Vec<CertificateDer<'static>> {
        self.current.load().chain.clone()
    }

    /// The current certificate chain and private key.
    pub(crate) fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let cur = self.current.load();
        (cur.chain.clone(), cur.key.clone_key())
    }

    /// The currently loaded material (its caches live and die with it).
    pub(crate) fn loaded(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// The current trust anchors.
    pub fn roots(&self) -> Arc<RootCertStore> {
        self.current.load().roots.clone()
    }

    /// The server configuration for the next accepted connection.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.load().server.clone()
    }

    /// A client configuration that accepts only a server presenting `expected`.
    pub fn client_config(&self, expected: &Identity) -> Result<Arc<ClientConfig>, TlsError> {
        let cur = self.current.load();
        let provider = crate::provider();
        let verifier = SpiffeServerVerifier {
            roots: cur.roots.clone(),
            domain: self.domain.clone(),
            expected: expected.clone(),
            provider: provider.clone(),
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(cur.chain.clone(), cur.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// Counts successful reloads; `changed()` wakes on each.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Re-reads the files. Returns `Ok(true)` if new material is now in use,
    /// `Ok(false)` if nothing changed; on error the old material stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        if fingerprint(&self.files)? == self.current.load().fingerprint {
            return Ok(false);
        }
        let loaded = load(&self.files, &self.domain)?;
        let old = self.current.load().identity.clone();
        if loaded.identity != old {
            return Err(TlsError::Identity(
                crate::identity::IdentityError::UnknownPath(format!(
                    "reloaded certificate names {}, but this process is {old}; refusing to change identity",
                    loaded.identity
                )),
            ));
        }
        self.current.store(Arc::new(loaded));
        self.generation.send_modify(|g| *g += 1);
        Ok(true)
    }

    /// Reloads when the files change (polled every `interval`) or on SIGHUP,
    /// until the returned task is aborted or the process exits.
    pub fn spawn_watcher(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                {
                    let hup_recv = async {
                        match hup.as_mut() {
                            Some(h) => h.recv().await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = hup_recv => tracing::info!("SIGHUP: re-reading TLS material"),
                    }
                }
                #[cfg(not(unix))]
                tick.tick().await;
                match this.reload() {
                    Ok(true) => {
                        tracing::info!(identity = %this.identity(), cert = %this.files.cert.display(), "TLS material reloaded")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS material not reloaded; keeping the previous certificates")
                    }
                }
            }
        })
    }
}

fn fingerprint(files: &TlsFiles) -> Result<u64, TlsError> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in [&files.ca, &files.cert, &files.key] {
        std::fs::read(p)
            .map_err(|source| TlsError::Read {
                path: p.clone(),
                source,
            })?
            .hash(&mut h);
    }
    Ok(h.finish())
}

fn load(files: &TlsFiles, domain: &TrustDomain) -> Result<Loaded, TlsError> {
    let pem_err = |path: &PathBuf, e: rustls_pki_types::pem::Error| TlsError::Pem {
        path: path.clone(),
        reason: e.to_string(),
    };
    let fingerprint = fingerprint(files)?;
    let mut roots = RootCertStore::empty();
    let mut any = false;
    for cert in CertificateDer::pem_file_iter(&files.ca).map_err(|e| pem_err(&files.ca, e))? {
        roots.add(cert.map_err(|e| pem_err(&files.ca, e))?)?;
        any = true;
    }
    if !any {
        return Err(TlsError::Pem {
            path: files.ca.clone(),
            reason: "no CA certificate found".into(),
        });
    }
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| pem_err(&files.cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(&files.cert, e))?;
    let leaf = chain.first().ok_or_else(|| TlsError::Pem {
        path: files.cert.clone(),
        reason: "no certificate found".into(),
    })?;
    let identity = Identity::from_certificate(leaf.as_ref(), domain)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| pem_err(&files.key, e))?;
    let roots = Arc::new(roots);

    let provider = crate::provider();
    let webpki =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
    let verifier = SpiffeClientVerifier {
        inner: webpki,
        domain: domain.clone(),
    };
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(chain.clone(), key.clone_key())?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        identity,
        roots,
        chain,
        key,
        server: Arc::new(server),
        fingerprint,
        identity_key: std::sync::OnceLock::new(),
        verified: Default::default(),
    })
}
