//! [`HeadSigner`] and [`HeadVerifier`] on top of `sigil-tls`: heads are
//! signed with the process's certificate key (ECDSA P-256) and verified
//! against the cluster CA.
//!
//! The verifier checks the chain **at the head's timestamp**, not now: heads
//! are read long after they were signed, when the signer's certificate may
//! have expired or been rotated. It also checks whose chain it is: by
//! default the head of `node-<n>` must be signed by `node/<n>` and the head of
//! `coordinator` by `coordinator` ([`expected_identity`]);
//! [`TlsHeadVerifier::with_identity_map`] replaces that rule.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sigil_tls::signing::{IdentityCheckError, IdentityKey, verify_chain_at};
use sigil_tls::{Identity, ReloadableTls, TrustDomain};

use crate::head::{
    HeadSignature, HeadSigner, HeadVerifier, HeadVerifyError, SignError, SignedHead,
};
use crate::{COORDINATOR_PROCESS, node_id_of};

/// The identity whose certificate signs the heads of `process`:
/// `coordinator` → [`Identity::Coordinator`], `node-<n>` → [`Identity::Node`].
pub fn expected_identity(process: &str) -> Option<Identity> {
    if process == COORDINATOR_PROCESS {
        return Some(Identity::Coordinator);
    }
    node_id_of(process).map(Identity::Node)
}

enum KeySource {
    /// The current certificate key at each signature (follows reloads).
    Reloadable(Arc<ReloadableTls>),
    Fixed(Arc<IdentityKey>),
}

/// Signs heads with this process's TLS certificate key.
pub struct TlsHeadSigner {
    source: KeySource,
}

impl std::fmt::Debug for TlsHeadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let identity = match &self.source {
            KeySource::Reloadable(tls) => tls.identity(),
            KeySource::Fixed(key) => key.identity().clone(),
        };
        f.debug_struct("TlsHeadSigner")
            .field("identity", &identity)
            .finish_non_exhaustive()
    }
}

impl TlsHeadSigner {
    /// Signs with the certificate key current at each signature, so heads
    /// follow certificate reloads.
    pub fn new(tls: Arc<ReloadableTls>) -> Self {
        Self {
            source: KeySource::Reloadable(tls),
        }
    }

    /// Signs with one fixed key.
    pub fn from_key(key: Arc<IdentityKey>) -> Self {
        Self {
            source: KeySource::Fixed(key),
        }
    }
}

impl HeadSigner for TlsHeadSigner {
    fn sign_head(&self, message: &[u8]) -> Result<HeadSignature, SignError> {
        let key = match &self.source {
            KeySource::Reloadable(tls) => {
                tls.identity_key().map_err(|e| SignError(e.to_string()))?
            }
            KeySource::Fixed(key) => Arc::clone(key),
        };
        let signature = key.sign(message).map_err(|e| SignError(e.to_string()))?;
        Ok(HeadSignature {
            signature,
            certificate_chain: key.chain().iter().map(|c| c.as_ref().to_vec()).collect(),
        })
    }
}

/// Why a CA bundle cannot be used as trust anchors.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read CA bundle {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("CA bundle is not valid PEM: {0}")]
    Pem(String),
    #[error("CA bundle holds no certificate")]
    Empty,
    #[error("CA certificate refused: {0}")]
    Rejected(String),
}

enum Roots {
    Fixed(Arc<RootCertStore>),
    /// The trust anchors of a running process (follow CA reloads).
    Reloadable(Arc<ReloadableTls>),
}

type IdentityMap = dyn Fn(&str) -> Option<Identity> + Send + Sync;

/// Verifies heads against the cluster CA and the identity expected for
/// each process.
pub struct TlsHeadVerifier {
    roots: Roots,
    domain: TrustDomain,
    identity_of: Arc<IdentityMap>,
}

impl std::fmt::Debug for TlsHeadVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsHeadVerifier")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl TlsHeadVerifier {
    /// Trusts `roots` in `domain`, with the default identity rule.
    pub fn new(roots: Arc<RootCertStore>, domain: TrustDomain) -> Self {
        Self {
            roots: Roots::Fixed(roots),
            domain,
            identity_of: Arc::new(expected_identity),
        }
    }

    /// Trusts the CA certificates of a PEM bundle (offline auditing).
    pub fn from_ca_pem(pem: &[u8], domain: TrustDomain) -> Result<Self, TrustError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TrustError::Pem(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| TrustError::Rejected(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(TrustError::Empty);
        }
        Ok(Self::new(Arc::new(roots), domain))
    }

    /// Trusts the CA certificates of a PEM file.
    pub fn from_ca_file(path: &Path, domain: TrustDomain) -> Result<Self, TrustError> {
        let pem = std::fs::read(path).map_err(|source| TrustError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_ca_pem(&pem, domain)
    }

    /// Trusts whatever CA a running process trusts, following its reloads.
    pub fn from_tls(tls: Arc<ReloadableTls>) -> Self {
        Self {
            domain: tls.domain().clone(),
            roots: Roots::Reloadable(tls),
            identity_of: Arc::new(expected_identity),
        }
    }

    /// Replaces the rule naming the identity that must sign each process's
    /// heads (`None`: nobody may).
    pub fn with_identity_map(
        mut self,
        identity_of: impl Fn(&str) -> Option<Identity> + Send + Sync + 'static,
    ) -> Self {
        self.identity_of = Arc::new(identity_of);
        self
    }
}

impl HeadVerifier for TlsHeadVerifier {
    fn verify_head(&self, head: &SignedHead) -> Result<(), HeadVerifyError> {
        let expected = (self.identity_of)(&head.process)
            .ok_or_else(|| HeadVerifyError::UnknownProcess(head.process.clone()))?;
        let at = crate::timefmt::unix(&head.timestamp)
            .map(UnixTime::since_unix_epoch)
            .ok_or_else(|| HeadVerifyError::Timestamp(head.timestamp.clone()))?;
        let roots = match &self.roots {
            Roots::Fixed(roots) => Arc::clone(roots),
            Roots::Reloadable(tls) => tls.roots(),
        };
        let key = verify_chain_at(&roots, &self.domain, &head.certificate_chain, &expected, at)
            .map_err(|e| match e {
                IdentityCheckError::WrongIdentity { got, expected } => {
                    HeadVerifyError::WrongIdentity {
                        process: head.process.clone(),
                        expected,
                        got,
                    }
                }
                other => HeadVerifyError::Certificate(other.to_string()),
            })?;
        if key.verify(&head.signing_bytes(), &head.signature) {
            Ok(())
        } else {
            Err(HeadVerifyError::BadSignature)
        }
    }
}
