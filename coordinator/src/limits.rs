//! Bounds on what one client can make the coordinator hold: `Sign` calls in
//! flight per client identity ([`InflightLimiter`]) and the length of every
//! free-text field the coordinator stores or logs ([`check_len`] and the
//! `MAX_*` constants). Each refusal names the limit it hit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tonic::Status;

/// Key ids, idempotency keys and approval ids (the same bound as the
/// coordinator's token check).
pub const MAX_ID_LEN: usize = 128;
/// Derivation paths: the deepest path a key derives (255 levels of
/// hardened 32-bit indices) is about 3 KiB.
pub const MAX_DERIVATION_PATH_LEN: usize = 4096;
/// Key labels.
pub const MAX_LABEL_LEN: usize = 256;
/// Free-text reasons an operator gives (clearing an exclusion).
pub const MAX_REASON_LEN: usize = 1024;
/// A node endpoint (`host:port`) named in a request.
pub const MAX_ENDPOINT_LEN: usize = 256;
/// Each filter of an audit query (times, actor, action, outcome, process).
pub const MAX_FILTER_LEN: usize = 256;
/// The largest request message the coordinator's gRPC server decodes.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// Refuses `value` longer than `max` bytes with `INVALID_ARGUMENT` naming
/// `field` and its maximum.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), Status> {
    if value.len() > max {
        return Err(Status::invalid_argument(format!(
            "{field} is {} bytes long; at most {max} bytes are allowed",
            value.len()
        )));
    }
    Ok(())
}

/// At most `max` calls in flight per client identity. A client's entry
/// exists only while it has calls in flight, so the map is bounded by the
/// calls in flight, not by the clients ever seen.
#[derive(Clone, Debug)]
pub struct InflightLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max: usize,
    what: &'static str,
    counts: Mutex<HashMap<String, usize>>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // Each operation is a single counter update: poisoning cannot leave
        // the map inconsistent.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One call in flight; the client's count goes down when it is dropped.
#[derive(Debug)]
#[must_use = "the call counts as in flight only while the guard lives"]
pub struct InflightGuard {
    inner: Arc<Inner>,
    client: String,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut counts = self.inner.lock();
        if let Some(n) = counts.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

impl InflightLimiter {
    /// `max` calls per client (`what` names the limit in refusals, e.g.
    /// `limits.max_inflight_sign_per_client`).
    pub fn new(max: usize, what: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                max,
                what,
                counts: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The `Sign` limiter of a coordinator configured with `limits`.
    pub fn sign(limits: &crate::config::LimitsConfig) -> Self {
        Self::new(
            limits.max_inflight_sign_per_client,
            "limits.max_inflight_sign_per_client",
        )
    }

    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Counts one more call of `client`, or refuses it with
    /// `RESOURCE_EXHAUSTED` naming the limit.
    pub fn acquire(&self, client: &str) -> Result<InflightGuard, Status> {
        let mut counts = self.inner.lock();
        let n = counts.get(client).copied().unwrap_or(0);
        if n >= self.inner.max {
            return Err(Status::resource_exhausted(format!(
                "{client} already has {n} calls in flight, the most allowed ({} = {}); \
                 retry when some have finished",
                self.inner.what, self.inner.max
            )));
        }
        counts.insert(client.to_owned(), n + 1);
        Ok(InflightGuard {
            inner: self.inner.clone(),
            client: client.to_owned(),
        })
    }

    /// `client`'s calls in flight.
    pub fn in_flight(&self, client: &str) -> usize {
        self.inner.lock().get(client).copied().unwrap_or(0)
    }

    /// Clients with calls in flight (the map's size).
    pub fn clients(&self) -> usize {
        self.inner.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_beyond_the_limit_per_client() {
        let limiter = InflightLimiter::new(2, "limits.max_inflight_sign_per_client");
        let a1 = limiter.acquire("client/a").expect("first");
        let a2 = limiter.acquire("client/a").expect("second");
        let err = limiter.acquire("client/a").expect_err("third");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            err.message()
                .contains("limits.max_inflight_sign_per_client = 2"),
            "{}",
            err.message()
        );
        // Another client is not affected.
        let b = limiter.acquire("client/b").expect("other client");
        assert_eq!(limiter.in_flight("client/a"), 2);
        // A finished call makes room again.
        drop(a1);
        let a3 = limiter.acquire("client/a").expect("after one finished");
        drop((a2, a3, b));
        assert_eq!(limiter.in_flight("client/a"), 0);
    }

    #[test]
    fn the_map_holds_only_clients_with_calls_in_flight() {
        let limiter = InflightLimiter::new(4, "limit");
        for i in 0..1000 {
            let _guard = limiter.acquire(&format!("client/c{i}")).expect("acquire");
            assert_eq!(limiter.clients(), 1);
        }
        assert_eq!(limiter.clients(), 0);
        let held: Vec<_> = (0..3)
            .map(|_| limiter.acquire("client/x").expect("acquire"))
            .collect();
        assert_eq!(limiter.clients(), 1);
        drop(held);
        assert_eq!(limiter.clients(), 0);
    }

    #[test]
    fn check_len_names_the_field_and_its_maximum() {
        assert!(check_len("label", &"x".repeat(MAX_LABEL_LEN), MAX_LABEL_LEN).is_ok());
        let err = check_len("label", &"x".repeat(MAX_LABEL_LEN + 1), MAX_LABEL_LEN)
            .expect_err("too long");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(
            err.message().starts_with("label is 257 bytes long"),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains("at most 256 bytes"),
            "{}",
            err.message()
        );
    }
}
