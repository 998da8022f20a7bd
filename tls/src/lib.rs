//! Sigil's identities and mutual TLS.
//!
//! Every Sigil process holds an X.509 certificate from the cluster's private
//! CA whose only URI SAN is a SPIFFE id: `spiffe://<trust-domain>/node/<id>`,
//! `.../coordinator` or `.../client/<name>` ([`Identity`]). Servers require a
//! client certificate from that CA, learn the caller's identity from it, and
//! authorize each gRPC method by identity ([`authz`]); clients verify that the
//! server presents the identity they meant to reach.
//!
//! TLS is terminated here with rustls (ring provider) rather than inside
//! tonic, so that certificates and CA can be re-read from disk without a
//! restart ([`ReloadableTls`]): every new connection uses the newest
//! material, established connections and in-flight sessions are untouched.
//! Each refused handshake is logged with peer address and a typed reason and
//! published as a [`server::ConnectionEvent`].

pub mod authz;
pub mod client;
pub mod error;
pub mod identity;
pub mod material;
pub mod pki;
pub mod server;
pub mod signing;
mod verify;

pub use error::TlsError;
pub use identity::{Identity, TrustDomain};
pub use material::{ReloadableTls, TlsFiles};
pub use server::{ConnectionEvent, PeerInfo, RejectReason};

/// Installs ring as the process-wide rustls crypto provider. Idempotent.
///
/// Sigil builds every config with an explicit provider, but dependencies that
/// ask for the process default must find exactly one.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
