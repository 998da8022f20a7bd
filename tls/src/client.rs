//! Dialling a Sigil server over mutual TLS with tonic.
//!
//! [`channel`] returns a lazily connecting tonic `Channel` whose connector
//! performs the TLS handshake itself with the newest [`ReloadableTls`]
//! client configuration, presenting this process's certificate and
//! accepting only a server that presents the `expected` identity.
//! [`channel_with_config`] dials with any rustls configuration instead.

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
    dial(address, opts, move || {
        let config = tls
            .client_config(&expected)
            .map_err(std::io::Error::other)?;
        // Server names are not used for verification (identities are); SNI only.
        let name = ServerName::try_from("sigil.invalid").map_err(std::io::Error::other)?;
        Ok((config, name))
    })
}

/// A channel to `address` (`host:port`) that verifies the server with
/// `config` exactly as given and sends `server_name` as SNI: with a stock
/// webpki configuration (roots from the CA bundle), the server is checked
/// by that host name against its certificate's DNS and IP SANs, as grpcio
/// or grpcurl check it. `config` should offer ALPN `h2`.
pub fn channel_with_config(
    address: &str,
    server_name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
    opts: &DialOptions,
) -> Result<Channel, TlsError> {
    dial(address, opts, move || {
        Ok((config.clone(), server_name.clone()))
    })
}

/// A lazily connecting channel whose every connection does a TLS handshake
/// with the configuration and server name `tls` returns at that moment.
fn dial<F>(address: &str, opts: &DialOptions, tls: F) -> Result<Channel, TlsError>
where
    F: Fn() -> std::io::Result<(Arc<rustls::ClientConfig>, ServerName<'static>)>
        + Clone
        + Send
        + 'static,
{
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
        let address = address.clone();
        async move {
            let (config, name) = tls()?;
            let tcp = tokio::net::TcpStream::connect(&address).await?;
            tcp.set_nodelay(true)?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}
