//! Identity signatures: a process signs with the private key of its TLS
//! certificate, and anyone holding the cluster CA can verify the signature
//! against the signer's certificate chain.
//!
//! Nodes use this to authenticate every protocol message they send through
//! the coordinator, and to bind their end-to-end encryption key to their
//! identity ([`binding_bytes`]), so a coordinator relaying messages can
//! neither forge them nor substitute an encryption key of its own. Keys are
//! ECDSA P-256 (SHA-256, ASN.1 DER signatures), as issued by Sigil's CA.

use std::sync::Arc;

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use rustls::RootCertStore;
use rustls::server::ParsedCertificate;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use crate::{Identity, ReloadableTls, TlsError, TrustDomain};

/// Why a peer's identity or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityCheckError {
    #[error("empty certificate chain")]
    EmptyChain,
    #[error("certificate chain does not verify against the cluster CA: {0}")]
    Chain(String),
    #[error("certificate names {got}, expected {expected}")]
    WrongIdentity { got: String, expected: String },
    #[error("certificate key is not ECDSA P-256")]
    UnsupportedKey,
    #[error("binding signature does not verify")]
    BadBinding,
    #[error("certificate cannot be parsed: {0}")]
    Unparsable(String),
}

/// The signing half of this process's TLS identity, frozen at creation:
/// a session keeps the key it started with across certificate reloads.
pub struct IdentityKey {
    identity: Identity,
    chain: Vec<CertificateDer<'static>>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityKey")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl IdentityKey {
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// DER certificates, end-entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// ECDSA P-256 / SHA-256 signature (ASN.1 DER) over `bytes`.
    pub fn sign(&self, bytes: &[u8]) -> Result<Vec<u8>, TlsError> {
        self.key
            .sign(&self.rng, bytes)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| TlsError::Pem {
                path: Default::default(),
                reason: "signing failed".into(),
            })
    }
}

/// How long a verified peer chain is trusted without verifying it again.
pub const VERIFIED_CHAIN_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// Verified chains remembered at most (the cache is emptied when full).
const VERIFIED_CHAIN_CAPACITY: usize = 4096;

/// Peer chains that verified recently, by SHA-256 of their DER bytes and the
/// identity they were checked for. Signed intents, approvals, receipts and
/// relayed participant identities carry the same few chains again and
/// again; re-verifying each costs a path build and signature checks.
/// Entries expire after [`VERIFIED_CHAIN_TTL`] and vanish with a reload
/// (new trust anchors), so a certificate that expires is refused at most
/// that long after its expiry.
/// Cache key: SHA-256 of the chain and the identity it was checked for.
type ChainKey = ([u8; 32], Identity);

#[derive(Default)]
pub(crate) struct VerifiedChains(
    std::sync::Mutex<std::collections::HashMap<ChainKey, (PeerKey, std::time::Instant)>>,
);

impl VerifiedChains {
    fn digest(chain: &[Vec<u8>]) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for cert in chain {
            ctx.update(&(cert.len() as u64).to_be_bytes());
            ctx.update(cert);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    fn get(&self, key: &ChainKey) -> Option<PeerKey> {
        let map = self.0.lock().ok()?;
        map.get(key)
            .filter(|(_, at)| at.elapsed() < VERIFIED_CHAIN_TTL)
            .map(|(k, _)| k.clone())
    }

    fn put(&self, key: ChainKey, peer: PeerKey) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= VERIFIED_CHAIN_CAPACITY {
                map.clear();
            }
            map.insert(key, (peer, std::time::Instant::now()));
        }
    }
}

impl ReloadableTls {
    /// The current certificate key as a signing key (parsed once per loaded
    /// certificate; a reload yields the new key).
    pub fn identity_key(&self) -> Result<Arc<IdentityKey>, TlsError> {
        let loaded = self.loaded();
        if let Some(key) = loaded.identity_key.get() {
            return Ok(key.clone());
        }
        let key = self.parse_identity_key()?;
        Ok(loaded.identity_key.get_or_init(|| key).clone())
    }

    fn parse_identity_key(&self) -> Result<Arc<IdentityKey>, TlsError> {
        let (chain, key) = self.chain_and_key();
        let pkcs8 = match &key {
            PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der(),
            _ => {
                return Err(TlsError::Pem {
                    path: self.files().key.clone(),
                    reason: "identity signing needs a PKCS#8 ECDSA P-256 key".into(),
                });
            }
        };
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng).map_err(
            |e| TlsError::Pem {
                path: self.files().key.clone(),
                reason: format!("identity signing needs an ECDSA P-256 key: {e}"),
            },
        )?;
        Ok(Arc::new(IdentityKey {
            identity: self.identity(),
            chain,
            key,
            rng,
        }))
    }

    /// Verifies that `chain` is valid now under this process's trust anchors
    /// and names `expected`; returns the end-entity public key for
    /// [`verify_signature`].
    pub fn verify_peer_chain(
        &self,
        chain: &[Vec<u8>],
        expected: &Identity,
    ) -> Result<PeerKey, IdentityCheckError> {
        let loaded = self.loaded();
        let key = (VerifiedChains::digest(chain), expected.clone());
        if let Some(peer) = loaded.verified.get(&key) {
            return Ok(peer);
        }
        let peer = verify_chain_at(
            &self.roots(),
            self.domain(),
            chain,
            expected,
            UnixTime::now(),
        )?;
        loaded.verified.put(key, peer.clone());
        Ok(peer)
    }
}

/// Verifies that `chain` (DER, end-entity first) was valid at `at` under
/// `roots` and names `expected` in `domain`; returns the end-entity public
/// key for [`PeerKey::verify`].
///
/// Unlike [`ReloadableTls::verify_peer_chain`] this needs no TLS identity of
/// one's own and takes the time explicitly: stored signatures (signed audit
/// heads) are checked offline, by whoever holds the CA certificate, at the
/// time they were made; the signer's certificate may since have expired or
/// been rotated.
pub fn verify_chain_at(
    roots: &RootCertStore,
    domain: &TrustDomain,
    chain: &[Vec<u8>],
    expected: &Identity,
    at: UnixTime,
) -> Result<PeerKey, IdentityCheckError> {
    let (leaf, rest) = chain.split_first().ok_or(IdentityCheckError::EmptyChain)?;
    let leaf_der = CertificateDer::from(leaf.as_slice());
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let parsed = ParsedCertificate::try_from(&leaf_der)
        .map_err(|e| IdentityCheckError::Chain(e.to_string()))?;
    let provider = crate::provider();
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        &intermediates,
        at,
        provider.signature_verification_algorithms.all,
    )
    .map_err(|e| IdentityCheckError::Chain(e.to_string()))?;
    let got = Identity::from_certificate(leaf, domain)
        .map_err(|e| IdentityCheckError::Unparsable(e.to_string()))?;
    if &got != expected {
        return Err(IdentityCheckError::WrongIdentity {
            got: got.to_string(),
            expected: expected.to_string(),
        });
    }
    PeerKey::from_certificate(leaf)
}

/// A peer's verified public key (ECDSA P-256, uncompressed point).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerKey(Vec<u8>);

impl PeerKey {
    fn from_certificate(der: &[u8]) -> Result<Self, IdentityCheckError> {
        use x509_parser::prelude::*;
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityCheckError::Unparsable(e.to_string()))?;
        let spki = cert.public_key();
        let is_p256 = spki.algorithm.algorithm
            == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
            && spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|oid| oid == x509_parser::oid_registry::OID_EC_P256);
        if !is_p256 {
            return Err(IdentityCheckError::UnsupportedKey);
        }
        Ok(Self(spki.subject_public_key.data.to_vec()))
    }

    /// True if `signature` is this key's ECDSA P-256 / SHA-256 signature over `bytes`.
    pub fn verify(&self, bytes: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.0)
            .verify(bytes, signature)
            .is_ok()
    }
}

/// The bytes a node signs to bind its end-to-end encryption key to its identity.
pub fn binding_bytes(node_id: u16, encryption_key: &[u8]) -> Vec<u8> {
    let mut out = b"sigil/v1/encryption-key-binding".to_vec();
    out.extend_from_slice(&node_id.to_be_bytes());
    out.extend_from_slice(&(encryption_key.len() as u32).to_be_bytes());
    out.extend_from_slice(encryption_key);
    out
}

/// Public key of this process's own signing key (for self-checks and tests).
pub fn public_key_of(key: &IdentityKey) -> PeerKey {
    PeerKey(key.key.public_key().as_ref().to_vec())
}
