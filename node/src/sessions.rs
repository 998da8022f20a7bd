//! Live protocol sessions, in memory only.
//!
//! A session's secret state (signing nonces, DKG secret packages) never
//! touches the disk: a restarted node has no sessions, and the coordinator
//! retries under a new session id. Each session is *taken* out of the table
//! while a step runs, so a concurrent or replayed step for the same round
//! finds nothing and is refused; a failed step drops the session (and
//! zeroizes its secrets). Session ids are remembered after they end, so a
//! coordinator cannot restart a finished session under the same id.

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
}

/// The node's session table.
pub struct Sessions {
    table: Mutex<Table>,
    ttl: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    pub fn new(ttl: Duration) -> Self {
        Self {
            table: Mutex::new(Table::default()),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table inconsistent
        // (each operation is a single map update), so poisoning is ignored.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new session; refuses an id seen before.
    pub fn insert_new(&self, id: SessionId, session: Session) -> Result<(), NodeError> {
        let mut t = self.lock();
        if t.seen.contains_key(&id) {
            return Err(NodeError::InvalidRequest(format!(
                "session {id} was already used"
            )));
        }
        t.seen.insert(id, session.expires + self.ttl);
        t.live.insert(id, session);
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
            t.seen.retain(|_, forget_at| *forget_at > now);
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
}
