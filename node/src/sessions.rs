//! Live protocol sessions, in memory only.
//!
//! A session's secret state (signing nonces, DKG secret packages) never
//! touches the disk: a restarted node has no sessions, and the coordinator
//! retries under a new session id. Each session is *taken* out of the table
//! while a step runs, so a concurrent or replayed step for the same round
//! finds nothing and is refused; a failed step drops the session (and
//! zeroizes its secrets). Session ids are remembered after they end, so a
//! coordinator cannot restart a finished session under the same id.
//!
//! Both maps are bounded ([`SessionLimits`]): beyond `max_open` live
//! sessions, or `max_remembered` remembered ids that cannot be forgotten
//! yet, a new session is refused (`RESOURCE_EXHAUSTED`). Nothing live is
//! dropped and no id is forgotten early to make room: forgetting one would
//! let a finished session be restarted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sigil_protocol::engine::{
    DkgOutput, DkgProtocol, ReshareOutput, ReshareProtocol, SignerProtocol,
};
use sigil_protocol::envelope::{SecureSession, SignedMessage};
use sigil_protocol::{ProtocolError, SessionId, Transition};

use crate::NodeError;

/// What a live session is doing.
#[derive(Debug)]
pub enum SessionKind {
    Dkg {
        key_id: String,
        scheme: sigil_protocol::Scheme,
        threshold: u16,
        participants: Vec<u16>,
        secure: SecureSession<DkgProtocol>,
    },
    /// A refresh or reshare; `epoch`, `threshold` and `participants` describe the new epoch.
    Reshare {
        key_id: String,
        scheme: sigil_protocol::Scheme,
        epoch: u64,
        threshold: u16,
        participants: Vec<u16>,
        secure: SecureSession<ReshareProtocol>,
    },
    Sign {
        key_id: String,
        secure: SecureSession<SignerProtocol>,
        /// Receipts this signer still needs before its first step
        /// (`None`: the accounting quorum was met at the start).
        receipts: Option<crate::policy::ReceiptGate>,
    },
}

#[derive(Debug)]
pub struct Session {
    pub kind: SessionKind,
    pub expires: Instant,
    /// What the audit log records about this session.
    pub audit: crate::audit::SessionAudit,
    /// Steps cost well under a millisecond (FROST signing): run them on
    /// the async worker instead of handing them to the blocking pool and
    /// back, which costs more than the step itself.
    pub inline_steps: bool,
}

/// What one step of a session produced.
#[derive(Debug)]
pub enum Stepped {
    /// Messages for the next round; the session goes on.
    Continue(Vec<SignedMessage>),
    /// The DKG finished: its last messages and this node's output.
    DkgDone(Vec<SignedMessage>, DkgOutput),
    /// This node's signature share (or final signing message) is out.
    SignDone(Vec<SignedMessage>),
    /// The redistribution finished: its last messages and this node's output.
    ReshareDone(Vec<SignedMessage>, ReshareOutput),
}

impl Session {
    pub fn expected_round(&self) -> u16 {
        match &self.kind {
            SessionKind::Dkg { secure, .. } => secure.expected_round(),
            SessionKind::Reshare { secure, .. } => secure.expected_round(),
            SessionKind::Sign { secure, .. } => secure.expected_round(),
        }
    }

    /// Steps the protocol with one round's inbound messages. CPU-bound (the
    /// DKLs23 DKG does seconds of work): run it off the async workers.
    pub fn step(&mut self, inbound: Vec<SignedMessage>) -> Result<Stepped, ProtocolError> {
        Ok(match &mut self.kind {
            SessionKind::Dkg { secure, .. } => match secure.step(inbound)? {
                Transition::Continue(messages) => Stepped::Continue(messages),
                Transition::Finished { messages, output } => Stepped::DkgDone(messages, output),
            },
            SessionKind::Reshare { secure, .. } => match secure.step(inbound)? {
                Transition::Continue(messages) => Stepped::Continue(messages),
                Transition::Finished { messages, output } => Stepped::ReshareDone(messages, output),
            },
            SessionKind::Sign { secure, .. } => match secure.step(inbound)? {
                Transition::Continue(messages) => Stepped::Continue(messages),
                Transition::Finished { messages, .. } => Stepped::SignDone(messages),
            },
        })
    }
}

#[derive(Default)]
struct Table {
    live: HashMap<SessionId, Session>,
    /// Every session id seen recently, live or not, with when it may be forgotten.
    seen: HashMap<SessionId, Instant>,
    /// The earliest time an id in `seen` may be forgotten (`None`: `seen`
    /// is empty), so a full table is not scanned on every refused insert.
    next_forget: Option<Instant>,
}

impl Table {
    /// Forgets ids whose time has come; notes when the next one's will.
    fn prune_seen(&mut self, now: Instant) {
        self.seen.retain(|_, forget_at| *forget_at > now);
        self.next_forget = self.seen.values().min().copied();
    }
}

/// How many sessions a node holds at once (`[limits]` in the node configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Live sessions (their secret state in memory).
    pub max_open: usize,
    /// Session ids remembered after their session started (live or
    /// ended), until they may be forgotten (deadline plus the session TTL).
    pub max_remembered: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_open: crate::config::DEFAULT_MAX_OPEN_SESSIONS,
            max_remembered: crate::config::DEFAULT_MAX_REMEMBERED_SESSIONS,
        }
    }
}

/// The node's session table.
pub struct Sessions {
    table: Mutex<Table>,
    ttl: Duration,
    limits: SessionLimits,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// A table with the default [`SessionLimits`].
    pub fn new(ttl: Duration) -> Self {
        Self::with_limits(ttl, SessionLimits::default())
    }

    pub fn with_limits(ttl: Duration, limits: SessionLimits) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            ttl,
            limits,
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table inconsistent
        // (each operation is a single map update), so poisoning is ignored.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new session; refuses an id seen before, and refuses
    /// (`ResourceExhausted`) when the table is full. A refused session is
    /// dropped, with its secrets, by the caller.
    pub fn insert_new(&self, id: SessionId, session: Session) -> Result<(), NodeError> {
        let mut t = self.lock();
        if t.seen.contains_key(&id) {
            return Err(NodeError::InvalidRequest(format!(
                "session {id} was already used"
            )));
        }
        self.room(&mut t, Instant::now())?;
        let forget_at = session.expires + self.ttl;
        t.seen.insert(id, forget_at);
        t.next_forget = Some(t.next_forget.map_or(forget_at, |at| at.min(forget_at)));
        t.live.insert(id, session);
        Ok(())
    }

    /// Refuses (`ResourceExhausted`) when a new session would not fit, so a
    /// node does no work for a session it cannot hold; [`Self::insert_new`]
    /// checks again.
    pub fn ensure_room(&self) -> Result<(), NodeError> {
        self.room(&mut self.lock(), Instant::now())
    }

    fn room(&self, t: &mut Table, now: Instant) -> Result<(), NodeError> {
        // Expired sessions count until the sweeper drops them (with their
        // audit records), within a second.
        if t.live.len() >= self.limits.max_open {
            return Err(NodeError::ResourceExhausted(format!(
                "this node holds {} open protocol sessions, its maximum \
                 (limits.max_open_sessions); retry when some have finished",
                self.limits.max_open
            )));
        }
        if t.seen.len() >= self.limits.max_remembered {
            if t.next_forget.is_some_and(|at| at <= now) {
                t.prune_seen(now);
            }
            if t.seen.len() >= self.limits.max_remembered {
                return Err(NodeError::ResourceExhausted(format!(
                    "this node remembers {} recent session ids, its maximum \
                     (limits.max_remembered_sessions); retry later",
                    self.limits.max_remembered
                )));
            }
        }
        Ok(())
    }

    /// Takes a session out for one step.
    pub fn take(&self, id: &SessionId) -> Result<Session, NodeError> {
        let mut t = self.lock();
        let session = t
            .live
            .remove(id)
            .ok_or_else(|| NodeError::UnknownSession(id.to_string()))?;
        if session.expires <= Instant::now() {
            return Err(NodeError::SessionExpired(id.to_string()));
        }
        Ok(session)
    }

    /// Returns a session after a successful, non-final step.
    pub fn put_back(&self, id: SessionId, session: Session) {
        self.lock().live.insert(id, session);
    }

    /// Drops a session (abort); true if it was live.
    pub fn abort(&self, id: &SessionId) -> bool {
        self.remove(id).is_some()
    }

    /// Takes a live session out of the table (to drop it), if there is one.
    pub fn remove(&self, id: &SessionId) -> Option<Session> {
        self.lock().live.remove(id)
    }

    /// Takes every live session `matches` selects out of the table (to drop
    /// it). Returns what the audit log says about each.
    pub fn remove_matching(
        &self,
        matches: impl Fn(&Session) -> bool,
    ) -> Vec<crate::audit::SessionAudit> {
        let removed: Vec<Session> = {
            let mut t = self.lock();
            let ids: Vec<SessionId> = t
                .live
                .iter()
                .filter(|(_, s)| matches(s))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| t.live.remove(id)).collect()
        };
        // Their secrets are dropped here, outside the lock.
        removed.into_iter().map(|s| s.audit).collect()
    }

    /// Drops expired sessions (and their secrets) and forgets old ids.
    /// Returns what the audit log says about each session that expired.
    pub fn sweep(&self) -> Vec<crate::audit::SessionAudit> {
        let now = Instant::now();
        let expired: Vec<Session> = {
            let mut t = self.lock();
            let ids: Vec<SessionId> = t
                .live
                .iter()
                .filter(|(_, s)| s.expires <= now)
                .map(|(id, _)| *id)
                .collect();
            if t.next_forget.is_some_and(|at| at <= now) {
                t.prune_seen(now);
            }
            ids.iter().filter_map(|id| t.live.remove(id)).collect()
        };
        // The sessions (nonces, DKG secrets) are dropped here, outside the lock.
        expired.into_iter().map(|s| s.audit).collect()
    }

    /// Drops every live session (the node is stopping). Returns what the
    /// audit log says about each.
    pub fn drain(&self) -> Vec<crate::audit::SessionAudit> {
        let drained: Vec<Session> = {
            let mut t = self.lock();
            t.live.drain().map(|(_, s)| s).collect()
        };
        drained.into_iter().map(|s| s.audit).collect()
    }

    pub fn live(&self) -> usize {
        self.lock().live.len()
    }

    /// Session ids remembered (live or ended, not yet forgotten).
    pub fn remembered(&self) -> usize {
        self.lock().seen.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use sigil_protocol::envelope::{
        ContextKind, EncryptionKeypair, IdentitySigner, PeerVerifier, SessionContext,
    };
    use sigil_protocol::{NodeId, Scheme};

    use super::*;

    struct Signer(NodeId);
    impl IdentitySigner for Signer {
        fn node_id(&self) -> NodeId {
            self.0
        }
        fn sign(&self, _bytes: &[u8]) -> Vec<u8> {
            Vec::new()
        }
    }

    struct Nobody;
    impl PeerVerifier for Nobody {
        fn verify(&self, _node: NodeId, _bytes: &[u8], _signature: &[u8]) -> bool {
            false
        }
    }

    fn n(id: u16) -> NodeId {
        NodeId::new(id).expect("node id")
    }

    fn id(i: u32) -> SessionId {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        SessionId::from_bytes(bytes)
    }

    /// A FROST DKG session (never stepped) expiring at `expires`.
    fn session(expires: Instant) -> Session {
        let rng = &mut rand::rngs::OsRng;
        let participants = [n(1), n(2)];
        let scheme = Scheme::FrostEd25519;
        let dkg = sigil_protocol::engine::new_dkg(scheme, id(0), n(1), &participants, 2, rng)
            .expect("dkg");
        let secure = SecureSession::new(
            dkg,
            SessionContext::new(ContextKind::Dkg, scheme, "k", 0, &participants),
            Arc::new(Signer(n(1))),
            Arc::new(Nobody),
            EncryptionKeypair::generate(rng),
            BTreeMap::new(),
            rng,
        );
        Session {
            kind: SessionKind::Dkg {
                key_id: "k".into(),
                scheme,
                threshold: 2,
                participants: vec![1, 2],
                secure,
            },
            expires,
            audit: crate::audit::SessionAudit::default(),
            inline_steps: true,
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn exhausted(e: NodeError, limit: &str) {
        let status = tonic::Status::from(e);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains(limit), "{status:?}");
    }

    #[test]
    fn open_sessions_are_bounded_and_live_ones_are_kept() {
        let sessions = Sessions::with_limits(
            Duration::from_secs(60),
            SessionLimits {
                max_open: 3,
                max_remembered: 100,
            },
        );
        for i in 1..=3 {
            sessions.insert_new(id(i), session(later())).expect("room");
        }
        let err = sessions
            .insert_new(id(4), session(later()))
            .expect_err("full");
        exhausted(err, "limits.max_open_sessions");
        exhausted(
            sessions.ensure_room().expect_err("full"),
            "limits.max_open_sessions",
        );
        // Nothing live was dropped to make room, and the refused id is not used up.
        assert_eq!(sessions.live(), 3);
        for i in 1..=3 {
            let s = sessions.take(&id(i)).expect("still live");
            sessions.put_back(id(i), s);
        }
        assert_eq!(sessions.remembered(), 3);
        // A finished session makes room.
        assert!(sessions.abort(&id(2)));
        sessions
            .insert_new(id(4), session(later()))
            .expect("room again");
        assert_eq!(sessions.live(), 3);
    }

    #[test]
    fn remembered_ids_are_bounded_and_forgotten_ones_make_room() {
        let sessions = Sessions::with_limits(
            Duration::ZERO,
            SessionLimits {
                max_open: 100,
                max_remembered: 4,
            },
        );
        // A flood of sessions opened and ended at once: each id must be
        // remembered until its deadline, so the table fills up and refuses.
        for i in 1..=4 {
            sessions.insert_new(id(i), session(later())).expect("room");
            sessions.abort(&id(i));
        }
        for i in 5..200 {
            let err = sessions
                .insert_new(id(i), session(later()))
                .expect_err("full");
            exhausted(err, "limits.max_remembered_sessions");
        }
        assert_eq!(sessions.remembered(), 4);
        assert_eq!(sessions.live(), 0);
        exhausted(
            sessions.ensure_room().expect_err("full"),
            "limits.max_remembered_sessions",
        );
        // An id is never forgotten early: a used one is still refused as used.
        let reused = sessions.insert_new(id(1), session(later()));
        assert!(
            matches!(reused, Err(NodeError::InvalidRequest(_))),
            "{reused:?}"
        );

        // Ids whose time has come are forgotten on insert.
        let sessions = Sessions::with_limits(
            Duration::ZERO,
            SessionLimits {
                max_open: 100,
                max_remembered: 4,
            },
        );
        for i in 1..200 {
            sessions
                .insert_new(id(i), session(Instant::now()))
                .expect("expired ids make room");
            sessions.abort(&id(i));
            assert!(sessions.remembered() <= 4);
        }
    }
}
