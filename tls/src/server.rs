//! Accepting mutually authenticated connections for a tonic server.
//!
//! [`incoming`] runs the accept loop: TCP accept, TLS handshake under a
//! deadline with the newest [`ReloadableTls`] server configuration, at most
//! [`AcceptOptions::max_pending_handshakes`] at once (beyond, new
//! connections wait in the listen backlog until one finishes), then
//! hands [`TlsConn`]s to `tonic::transport::Server::serve_with_incoming*`.
//! The peer's identity rides along as the connection's [`PeerInfo`], which
//! tonic puts in every request's extensions. Refused handshakes are logged
//! with peer address and a typed [`RejectReason`], and published as
//! [`ConnectionEvent`]s (tests assert on them; the audit trail records them).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::CertificateError;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::{Identity, ReloadableTls};

/// Who is on the other end of a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    pub identity: Identity,
}

/// Why a connection was refused during the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The client presented no certificate.
    NoClientCertificate,
    /// The certificate was not issued by the configured CA.
    UnknownIssuer,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotYetValid,
    /// The certificate does not name exactly one Sigil identity in this trust domain.
    BadIdentity(String),
    /// The certificate was refused for another reason (bad signature, usage, ...).
    BadCertificate(String),
    /// The handshake did not finish in time.
    Timeout,
    /// Any other TLS or I/O failure.
    Handshake(String),
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoClientCertificate => f.write_str("no client certificate"),
            Self::UnknownIssuer => f.write_str("certificate not issued by the cluster CA"),
            Self::Expired => f.write_str("certificate expired"),
            Self::NotYetValid => f.write_str("certificate not yet valid"),
            Self::BadIdentity(e) => write!(f, "bad identity: {e}"),
            Self::BadCertificate(e) => write!(f, "bad certificate: {e}"),
            Self::Timeout => f.write_str("handshake timed out"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
        }
    }
}

impl RejectReason {
    fn from_io(e: &io::Error) -> Self {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(rustls::Error::NoCertificatesPresented) => Self::NoClientCertificate,
            Some(rustls::Error::InvalidCertificate(c)) => match c {
                CertificateError::UnknownIssuer => Self::UnknownIssuer,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    Self::Expired
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    Self::NotYetValid
                }
                CertificateError::Other(other) => Self::BadIdentity(other.to_string()),
                other => Self::BadCertificate(format!("{other:?}")),
            },
            Some(other) => Self::Handshake(other.to_string()),
            None => Self::Handshake(e.to_string()),
        }
    }
}

/// What happened to an incoming connection.
#[derive(Clone, Debug)]
pub enum ConnectionEvent {
    Accepted(PeerInfo),
    Rejected {
        peer: SocketAddr,
        reason: RejectReason,
    },
}

/// An authenticated server-side connection.
#[derive(Debug)]
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Options of the accept loop.
#[derive(Clone, Debug)]
pub struct AcceptOptions {
    /// A client that has not completed the handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// Handshakes in progress at once. Beyond, the loop stops accepting
    /// (new connections wait in the kernel's listen backlog) until one
    /// finishes or times out, so clients that connect and stay silent hold
    /// at most this many tasks and sockets, each for at most
    /// `handshake_timeout`.
    pub max_pending_handshakes: usize,
    /// Where to publish connection events (optional).
    pub events: Option<broadcast::Sender<ConnectionEvent>>,
}

/// The default of [`AcceptOptions::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of [`AcceptOptions::max_pending_handshakes`].
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 256;

impl Default for AcceptOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            events: None,
        }
    }
}

/// The stream of authenticated connections accepted on `listener`.
///
/// The accept loop stops when the returned stream is dropped (i.e. when the
/// tonic server it feeds shuts down).
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadableTls>,
    opts: AcceptOptions,
) -> ReceiverStream<Result<TlsConn, io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(accept_loop(listener, tls, opts, tx));
    ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ReloadableTls>,
    opts: AcceptOptions,
    tx: mpsc::Sender<Result<TlsConn, io::Error>>,
) {
    let pending = Arc::new(Semaphore::new(opts.max_pending_handshakes.max(1)));
    loop {
        // A slot first: with every slot taken, nothing more is accepted.
        let permit = tokio::select! {
            _ = tx.closed() => return,
            p = pending.clone().acquire_owned() => match p {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
        let domain = tls.domain().clone();
        let tx = tx.clone();
        let opts = opts.clone();
        tokio::spawn(async move {
            let result =
                match tokio::time::timeout(opts.handshake_timeout, acceptor.accept(tcp)).await {
                    Err(_) => Err(RejectReason::Timeout),
                    Ok(Err(e)) => Err(RejectReason::from_io(&e)),
                    Ok(Ok(stream)) => {
                        let identity = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .ok_or(RejectReason::NoClientCertificate)
                            .and_then(|leaf| {
                                Identity::from_certificate(leaf.as_ref(), &domain)
                                    .map_err(|e| RejectReason::BadIdentity(e.to_string()))
                            });
                        identity.map(|identity| TlsConn {
                            inner: stream,
                            info: PeerInfo {
                                remote_addr: peer,
                                identity,
                            },
                        })
                    }
                };
            // The handshake is over: its slot goes to the next connection.
            drop(permit);
            match result {
                Ok(conn) => {
                    tracing::debug!(peer = %peer, identity = %conn.info.identity, "connection accepted");
                    if let Some(ev) = &opts.events {
                        let _ = ev.send(ConnectionEvent::Accepted(conn.info.clone()));
                    }
                    let _ = tx.send(Ok(conn)).await;
                }
                Err(reason) => {
                    tracing::warn!(peer = %peer, reason = %reason, "TLS handshake refused");
                    if let Some(ev) = &opts.events {
                        let _ = ev.send(ConnectionEvent::Rejected { peer, reason });
                    }
                }
            }
        });
    }
}
