//! The coordinator's audit log: every call into `sigil-audit` from the
//! coordinator goes through [`CoordinatorAudit`] or the [`RequestAuditLayer`],
//! so handlers stay thin and what is recorded is visible in one place.
//!
//! What the coordinator records (process `coordinator`, see `docs/audit.md`):
//!
//! | action | when | fail closed |
//! |---|---|---|
//! | `process_start` / `process_stop` | start, graceful stop (then a final signed head) | start refused |
//! | `request` | every authenticated call of a client-facing method, with its gRPC outcome — including refusals by authorization | a successful answer is replaced by `UNAVAILABLE` |
//! | `sign_session` | a signing session is opened on a quorum; committed while the nodes run their first round, before any is asked for its share | yes |
//! | `sign_session_failed` | that session failed (outcome `error:<kind>`, culprits) | — |
//! | `signature_returned` | a signature is about to be returned (before the idempotency record stores it) | yes |
//! | `misbehaviour` | a protocol named nodes as cheaters (culprits) | — |
//! | `unattributed_fault` | quorums of a signing request produced output that did not combine and nobody can be named (DKLs23 final values): outcome `error:unattributed`, no culprits; `quorum` = their nodes, `detail` = the quorums and how the request went on. Nobody is excluded for it | — |
//! | `key_created` | a DKG finished, before the key is committed on the nodes | yes |
//! | `exclusion_cleared` | an operator cleared a node's exclusion, before it is cleared | yes |
//! | `recovery_drill` | a node restored from a backup co-signed a drill message with live nodes and the signature verified under the group key (before the drill is reported); outcome `error:<kind>` when a drill failed. Its session has a `sign_session` record like any signing session | yes |
//! | `cert_reload` | the TLS certificate was reloaded | — |
//! | `head_seen` | the coordinator fetched a node's latest signed head (for the `Audit` service: `sigil audit heads`, `export`, `verify`) and its signature verified; once per new head (`request_id` = the node's process, `digest` = its head hash, `detail` = its sequence, timestamp, link and signature). Pins the node's log: a tail later deleted together with the node's own heads no longer verifies | — |
//!
//! The digest of a signature is SHA-256 of the bytes signed, as the nodes
//! record it, so [`sigil_audit::cross_check`] can match the logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use sigil_audit::{
    COORDINATOR_PROCESS, Entry, Hash, HeadVerifier, ProcessAudit, SignedHead, TlsHeadVerifier,
    action, head_seen_entry,
};
use sigil_tls::authz::is_public_method;
use sigil_tls::{PeerInfo, ReloadableTls};
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::CoordinatorError;
use crate::config::CoordinatorConfig;

/// Coordinator-specific action names (stable; auditors filter on them).
pub mod actions {
    /// A signing session failed (the outcome says how; culprits are named).
    pub const SIGN_SESSION_FAILED: &str = "sign_session_failed";
    /// A protocol named nodes as cheaters.
    pub const MISBEHAVIOUR: &str = "misbehaviour";
    /// Quorums' output did not combine and nobody can be named (nobody is excluded).
    pub const UNATTRIBUTED_FAULT: &str = "unattributed_fault";
    /// An operator let an excluded node sign with a key again.
    pub const EXCLUSION_CLEARED: &str = "exclusion_cleared";
    /// A refresh or reshare produced a verified new epoch; its commit
    /// certificate is written next and the nodes switch to it.
    pub const EPOCH_CERTIFIED: &str = "epoch_certified";
    /// A recovery drill passed (outcome `ok`) or failed (`error:<kind>`).
    pub const RECOVERY_DRILL: &str = "recovery_drill";
}

pub use sigil_audit::{actor_of, signed_digest};

/// `snake_case` name of a gRPC code, for outcomes.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The outcome recorded for a call that ended with `code`: `ok`,
/// `refused:<code>` for authentication and authorization refusals,
/// `error:<code>` otherwise.
pub fn outcome_of(code: Code) -> String {
    match code {
        Code::Ok => sigil_audit::outcome::OK.to_owned(),
        Code::PermissionDenied | Code::Unauthenticated => {
            sigil_audit::outcome::refused(code_name(code))
        }
        other => sigil_audit::outcome::error(code_name(other)),
    }
}

/// The outcome kind of a coordinator error, for `error:<kind>` outcomes.
pub fn error_kind(e: &CoordinatorError) -> &'static str {
    match e {
        CoordinatorError::InvalidRequest(_) => "invalid_request",
        CoordinatorError::NotFound(_) => "not_found",
        CoordinatorError::Unavailable(_) => "unavailable",
        CoordinatorError::AlreadyExists(_) => "already_exists",
        CoordinatorError::Aborted(_) => "aborted",
        CoordinatorError::Misbehaviour { .. } => "misbehaviour",
        CoordinatorError::AuditUnavailable(_) => "audit_unavailable",
        _ => "internal",
    }
}

/// The fields a signing session's records share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignAudit {
    /// The requester's identity (SPIFFE URI).
    pub actor: String,
    pub key_id: String,
    /// The client's idempotency key (what the nodes record as request id).
    pub request_id: String,
    /// SHA-256 of the bytes signed ([`signed_digest`]).
    pub digest: Vec<u8>,
}

impl SignAudit {
    fn entry(&self, action: &str, quorum: &[u16], session_id: &str) -> Entry {
        Entry::new(self.actor.clone(), action)
            .key_id(self.key_id.clone())
            .request_id(self.request_id.clone())
            .digest(self.digest.clone())
            .quorum(quorum.to_vec())
            .session_id(session_id)
    }
}

/// The coordinator's audit log. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CoordinatorAudit {
    process: ProcessAudit,
    /// Checks the nodes' heads before they are recorded as seen.
    verifier: Arc<TlsHeadVerifier>,
    /// The id of the last head recorded as seen, by process.
    seen: Arc<Mutex<HashMap<String, Hash>>>,
}

impl std::ops::Deref for CoordinatorAudit {
    type Target = ProcessAudit;
    fn deref(&self) -> &ProcessAudit {
        &self.process
    }
}

impl CoordinatorAudit {
    /// Opens the log where `config.audit` says (by default
    /// `coordinator-audit.db` beside its database), signing heads with its
    /// certificate key.
    pub async fn open(
        config: &CoordinatorConfig,
        tls: Arc<ReloadableTls>,
    ) -> Result<Self, CoordinatorError> {
        let verifier = Arc::new(TlsHeadVerifier::from_tls(tls.clone()));
        let process = ProcessAudit::open_configured(
            COORDINATOR_PROCESS,
            &config.audit,
            &config.database,
            tls,
        )
        .await?;
        Ok(Self {
            process,
            verifier,
            seen: Arc::default(),
        })
    }

    /// Records a node's signed `head` as seen (`head_seen`), unless it is
    /// the head last recorded for that node or its signature does not
    /// verify. Best effort: the head is answered either way.
    pub async fn head_seen(&self, head: &SignedHead) {
        let id = head.id();
        let known = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&head.process)
            == Some(&id);
        if known || head.process == COORDINATOR_PROCESS {
            return;
        }
        if let Err(e) = self.verifier.verify_head(head) {
            tracing::warn!(
                process = %head.process,
                sequence = head.sequence,
                error = %e,
                "signed audit head refused; not recorded as seen"
            );
            return;
        }
        match self
            .process
            .append(head_seen_entry(self.me().to_owned(), head))
            .await
        {
            Ok(()) => {
                self.seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(head.process.clone(), id);
            }
            Err(e) => tracing::error!(error = %e, "audit record lost"),
        }
    }

    async fn append(&self, entry: Entry) -> Result<(), CoordinatorError> {
        Ok(self.process.append(entry).await?)
    }

    /// The `request` record of one client call that ended with `code`.
    fn request_entry(actor: String, method: &str, code: Code, note: RequestNote) -> Entry {
        let mut detail = method.to_owned();
        if !note.detail.is_empty() {
            detail.push_str(": ");
            detail.push_str(&note.detail);
        }
        Entry::new(actor, action::REQUEST)
            .key_id(note.key_id)
            .request_id(note.request_id)
            .outcome(outcome_of(code))
            .detail(detail)
    }

    /// One client call and how it ended.
    pub async fn request(
        &self,
        actor: String,
        method: &str,
        code: Code,
        note: RequestNote,
    ) -> Result<(), CoordinatorError> {
        self.append(Self::request_entry(actor, method, code, note))
            .await
    }

    /// A signing session is opened on `quorum` (fail closed: no node is
    /// asked for its share before this is committed).
    pub async fn sign_session(
        &self,
        sign: &SignAudit,
        quorum: &[u16],
        session_id: &str,
    ) -> Result<(), CoordinatorError> {
        self.append(sign.entry(action::SIGN_SESSION, quorum, session_id))
            .await
    }

    /// A signing session failed.
    pub async fn sign_session_failed(
        &self,
        sign: &SignAudit,
        quorum: &[u16],
        session_id: &str,
        kind: &str,
        culprits: &[u16],
        reason: &str,
    ) {
        self.note(
            sign.entry(actions::SIGN_SESSION_FAILED, quorum, session_id)
                .error(kind)
                .culprits(culprits.to_vec())
                .detail(reason),
        )
        .await;
    }

    /// A signature made by `signers` in `session_id` is about to be
    /// returned (fail closed). With the call's [`RequestSlot`], its
    /// successful `request` record is committed together with it (one
    /// commit instead of two on the signing path), and the layer does not
    /// record the call again.
    pub async fn signature_returned(
        &self,
        sign: &SignAudit,
        signers: &[u16],
        session_id: &str,
        slot: Option<&RequestSlot>,
    ) -> Result<(), CoordinatorError> {
        let returned = self.append(sign.entry(action::SIGNATURE_RETURNED, signers, session_id));
        let Some(slot) = slot else {
            return returned.await;
        };
        let (actor, method, note) = {
            let inner = slot.0.lock().unwrap_or_else(PoisonError::into_inner);
            (
                inner.actor.clone(),
                inner.method.clone(),
                inner.note.clone(),
            )
        };
        let request = self.append(Self::request_entry(actor, &method, Code::Ok, note));
        let (returned, request) = tokio::join!(returned, request);
        returned?;
        if request.is_ok() {
            slot.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .recorded = true;
        }
        Ok(())
    }

    /// A protocol named `culprits` as cheaters.
    pub async fn misbehaviour(
        &self,
        key_id: &str,
        session_id: &str,
        culprits: &[u16],
        reason: &str,
    ) {
        self.note(
            Entry::new(self.me().to_owned(), actions::MISBEHAVIOUR)
                .key_id(key_id)
                .session_id(session_id)
                .culprits(culprits.to_vec())
                .outcome(sigil_audit::outcome::error("misbehaviour"))
                .detail(reason),
        )
        .await;
    }

    /// The quorums in `quorums` failed with nobody to blame, the first in
    /// session `session_id`. No node is named: `quorum` holds every node of
    /// them, and `detail` the quorums themselves and `reason`.
    pub async fn unattributed_fault(
        &self,
        key_id: &str,
        session_id: &str,
        quorums: &[Vec<u16>],
        reason: &str,
    ) {
        self.note(
            Entry::new(self.me().to_owned(), actions::UNATTRIBUTED_FAULT)
                .key_id(key_id)
                .session_id(session_id)
                .quorum(quorums.concat()) // sorted and deduplicated on append
                .outcome(sigil_audit::outcome::error("unattributed"))
                .detail(format!("quorums {quorums:?}: {reason}")),
        )
        .await;
    }

    /// A DKG produced key `key_id` (fail closed: recorded before the key is
    /// committed on the nodes and stored).
    #[allow(clippy::too_many_arguments)]
    pub async fn key_created(
        &self,
        actor: String,
        key_id: &str,
        participants: &[u16],
        session_id: &str,
        package_digest: Vec<u8>,
        detail: String,
    ) -> Result<(), CoordinatorError> {
        self.append(
            Entry::new(actor, action::KEY_CREATED)
                .key_id(key_id)
                .request_id(key_id)
                .quorum(participants.to_vec())
                .session_id(session_id)
                .digest(package_digest)
                .detail(detail),
        )
        .await
    }

    /// A redistribution produced a verified, test-signed new epoch (fail
    /// closed: recorded before its certificate is written).
    pub async fn epoch_certified(
        &self,
        actor: String,
        record: &crate::store::KeyRecord,
        from_epoch: u64,
        session_id: &str,
        package_digest: Vec<u8>,
        detail: String,
    ) -> Result<(), CoordinatorError> {
        self.append(
            Entry::new(actor, actions::EPOCH_CERTIFIED)
                .key_id(record.key_id.clone())
                .request_id(format!("{}@{}", record.key_id, record.epoch))
                .quorum(record.participants.clone())
                .session_id(session_id)
                .digest(package_digest)
                .detail(format!("from epoch {from_epoch}: {detail}")),
        )
        .await
    }

    /// A recovery drill passed: its signature verified under the group key
    /// (fail closed: recorded before the drill is reported).
    pub async fn recovery_drill(
        &self,
        sign: &SignAudit,
        signers: &[u16],
        session_id: &str,
        detail: String,
    ) -> Result<(), CoordinatorError> {
        self.append(
            sign.entry(actions::RECOVERY_DRILL, signers, session_id)
                .detail(detail),
        )
        .await
    }

    /// A recovery drill failed.
    pub async fn recovery_drill_failed(
        &self,
        sign: &SignAudit,
        signers: &[u16],
        session_id: &str,
        kind: &str,
        reason: &str,
    ) {
        self.note(
            sign.entry(actions::RECOVERY_DRILL, signers, session_id)
                .error(kind)
                .detail(reason),
        )
        .await;
    }

    /// An operator clears node `node`'s exclusion from `key_id` (fail closed).
    pub async fn exclusion_cleared(
        &self,
        actor: String,
        key_id: &str,
        node: u16,
        reason: &str,
    ) -> Result<(), CoordinatorError> {
        self.append(
            Entry::new(actor, actions::EXCLUSION_CLEARED)
                .key_id(key_id)
                .quorum(vec![node])
                .detail(reason),
        )
        .await
    }
}

/// What a handler adds to its call's `request` record (the key and request
/// it concerns), through the [`RequestSlot`] the layer puts in the request's
/// extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestNote {
    pub key_id: String,
    pub request_id: String,
    pub detail: String,
}

/// Shared between the [`RequestAuditLayer`] and the handler of one call.
#[derive(Clone, Debug, Default)]
pub struct RequestSlot(Arc<Mutex<SlotState>>);

#[derive(Debug, Default)]
struct SlotState {
    actor: String,
    method: String,
    note: RequestNote,
    /// The call's successful `request` record is already committed.
    recorded: bool,
}

impl RequestSlot {
    fn new(actor: String, method: String) -> Self {
        Self(Arc::new(Mutex::new(SlotState {
            actor,
            method,
            ..SlotState::default()
        })))
    }

    /// Lets the handler of `req` fill in its call's `request` record.
    pub fn note<T>(req: &tonic::Request<T>, fill: impl FnOnce(&mut RequestNote)) {
        if let Some(slot) = req.extensions().get::<RequestSlot>() {
            slot.fill(fill);
        }
    }

    /// Fills in the note through a slot taken from the request earlier.
    pub fn fill(&self, fill: impl FnOnce(&mut RequestNote)) {
        fill(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner).note);
    }

    /// The note, and whether a successful record was already committed.
    fn take(&self) -> (RequestNote, bool) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (std::mem::take(&mut state.note), state.recorded)
    }
}

/// A tower layer, outside authorization, recording one `request` record per
/// authenticated call of a client-facing method (health checks and
/// reflection excepted), with the gRPC status it ended with — so calls the
/// authorization layer refuses are recorded too. A successful answer whose
/// record cannot be committed is replaced by `UNAVAILABLE`: nothing
/// succeeds unaudited.
#[derive(Clone, Debug)]
pub struct RequestAuditLayer {
    audit: CoordinatorAudit,
}

impl RequestAuditLayer {
    pub fn new(audit: CoordinatorAudit) -> Self {
        Self { audit }
    }
}

impl<S> Layer<S> for RequestAuditLayer {
    type Service = RequestAudit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestAudit {
            inner,
            audit: self.audit.clone(),
        }
    }
}

/// The service produced by [`RequestAuditLayer`].
#[derive(Clone, Debug)]
pub struct RequestAudit<S> {
    inner: S,
    audit: CoordinatorAudit,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// The gRPC status of a response whose status is in its headers
/// (trailers-only: every error a handler or the authorization layer
/// returns). Otherwise the call succeeded as far as the headers tell.
fn response_code(resp: &http::Response<tonic::body::Body>) -> Code {
    resp.headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
        .unwrap_or(Code::Ok)
}

impl<S, B> Service<http::Request<B>> for RequestAudit<S>
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
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let method = req.uri().path().to_owned();
        if is_public_method(&method) {
            return Box::pin(async move { inner.call(req).await });
        }
        let actor = actor_of(req.extensions().get::<PeerInfo>(), self.audit.domain());
        let slot = RequestSlot::new(actor.clone(), method.clone());
        req.extensions_mut().insert(slot.clone());
        let audit = self.audit.clone();
        Box::pin(async move {
            let resp = inner.call(req).await?;
            let code = response_code(&resp);
            let (mut note, recorded) = slot.take();
            if recorded {
                if code == Code::Ok {
                    return Ok(resp); // committed with the signature
                }
                note.detail = format!("{} (failed after being recorded as ok)", note.detail);
            }
            match audit.request(actor, &method, code, note).await {
                Ok(()) => Ok(resp),
                Err(e) if code == Code::Ok => {
                    tracing::error!(error = %e, %method, "request not audited; answer withheld");
                    Ok(Status::unavailable("audit log unavailable; request refused").into_http())
                }
                Err(e) => {
                    tracing::error!(error = %e, %method, "refusal not audited");
                    Ok(resp)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_status_code() {
        assert_eq!(outcome_of(Code::Ok), "ok");
        assert_eq!(
            outcome_of(Code::PermissionDenied),
            "refused:permission_denied"
        );
        assert_eq!(outcome_of(Code::Unauthenticated), "refused:unauthenticated");
        assert_eq!(outcome_of(Code::Unavailable), "error:unavailable");
        for code in [Code::InvalidArgument, Code::DataLoss, Code::Aborted] {
            assert!(sigil_audit::outcome::is_valid(&outcome_of(code)));
        }
    }
}
