//! Per-method authorization of gRPC calls by the caller's TLS identity.
//!
//! [`AuthzLayer`] is a tower layer in front of every tonic service. It reads
//! the [`PeerInfo`] that the accept loop attached to the connection, asks an
//! [`Authorizer`] whether that identity may call the method, and answers
//! refusals itself with `UNAUTHENTICATED` or `PERMISSION_DENIED`, so a
//! refused caller never reaches a handler and never gets a partial answer.
//! Unknown methods are refused (fail closed).

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tower::{Layer, Service};

use crate::PeerInfo;

/// Decides whether a peer may call a gRPC method (`/package.Service/Method`).
pub trait Authorizer: Send + Sync + 'static {
    fn authorize(&self, method: &str, peer: &PeerInfo) -> Result<(), Status>;
}

impl<F> Authorizer for F
where
    F: Fn(&str, &PeerInfo) -> Result<(), Status> + Send + Sync + 'static,
{
    fn authorize(&self, method: &str, peer: &PeerInfo) -> Result<(), Status> {
        self(method, peer)
    }
}

/// Methods that any authenticated peer may call: health checking and reflection.
pub fn is_public_method(method: &str) -> bool {
    method.starts_with("/grpc.health.v1.Health/")
        || method.starts_with("/grpc.reflection.v1.ServerReflection/")
        || method.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
}

/// The tower layer.
#[derive(Clone)]
pub struct AuthzLayer {
    authorizer: Arc<dyn Authorizer>,
}

impl std::fmt::Debug for AuthzLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthzLayer")
    }
}

impl AuthzLayer {
    pub fn new(authorizer: impl Authorizer) -> Self {
        Self {
            authorizer: Arc::new(authorizer),
        }
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authz {
            inner,
            authorizer: self.authorizer.clone(),
        }
    }
}

/// The service produced by [`AuthzLayer`].
#[derive(Clone)]
pub struct Authz<S> {
    inner: S,
    authorizer: Arc<dyn Authorizer>,
}

impl<S> std::fmt::Debug for Authz<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authz")
    }
}

impl<S, B> Service<http::Request<B>> for Authz<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_like::BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_owned();
        let decision = match req.extensions().get::<PeerInfo>() {
            Some(peer) => self.authorizer.authorize(&method, peer).inspect_err(|status| {
                tracing::warn!(peer = %peer.remote_addr, identity = %peer.identity, method = %method,
                    code = ?status.code(), reason = %status.message(), "call refused");
            }),
            None => {
                tracing::warn!(method = %method, "call refused: connection carries no authenticated identity");
                Err(Status::unauthenticated("no authenticated identity"))
            }
        };
        match decision {
            Ok(()) => {
                // Take the service that was driven to readiness; leave a clone behind.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(req).await })
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

mod futures_like {
    pub type BoxFuture<T> =
        std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;
}
