//! Dialling a Sigil server over mutual TLS with tonic.
//!
//! [`channel`] returns a lazily connecting tonic `Channel` whose connector
//! performs the TLS handshake itself with the newest [`ReloadableTls`]
//! client configuration, presenting this process's certificate and
//! accepting only a server that presents the `expected` identity.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::{Identity, ReloadableTls, TlsError};

/// Options for outgoing connections.
#[derive(Clone, Debug)]
pub struct DialOptions {
    pub connect_timeout: Duration,
    /// Per-request timeout (gRPC deadline) applied by the channel.
    pub request_timeout: Option<Duration>,
}

impl Default for DialOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: None,
        }
    }
}

/// A channel to `address` (`host:port`) that only talks to `expected`.
pub fn channel(
    address: &str,
    expected: Identity,
    tls: Arc<ReloadableTls>,
    opts: &DialOptions,
) -> Result<Channel, TlsError> {
    let mut endpoint = Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| TlsError::Endpoint(format!("{address}: {e}")))?
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true);
    if let Some(t) = opts.request_timeout {
        endpoint = endpoint.timeout(t);
    }
    let address = address.to_owned();
    let connector = tower::service_fn(move |_uri: Uri| {
        let tls = tls.clone();
        let expected = expected.clone();
        let address = address.clone();
        async move {
            let config = tls
                .client_config(&expected)
                .map_err(std::io::Error::other)?;
            let tcp = tokio::net::TcpStream::connect(&address).await?;
            tcp.set_nodelay(true)?;
            // Server names are not used for verification (identities are); SNI only.
            let name = ServerName::try_from("sigil.invalid").map_err(std::io::Error::other)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}
