//! The state-machine trait every Sigil protocol implements.
//!
//! A protocol instance is one party's view of one session. The driver (the
//! node) calls [`Protocol::start`] once, then [`Protocol::step`] with every
//! message addressed to this party for the current round, until it returns
//! [`Transition::Finished`]. Rounds are lock-step: the coordinator collects a
//! round's output from every party before delivering the next round. A
//! protocol that fails returns a [`ProtocolError`] and must not be stepped
//! again; secret state is dropped (and zeroized) with it.

use crate::{Message, ProtocolError, SessionId};

/// What a step produced. `M` is the message type: plain [`Message`]s for a
/// bare protocol, signed and sealed ones for a
/// [`SecureSession`](crate::envelope::SecureSession).
#[derive(Debug)]
pub enum Transition<O, M = Message> {
    /// Messages for the next round; the protocol expects more input.
    Continue(Vec<M>),
    /// The protocol is complete. `messages` may carry a final output for the
    /// coordinator (e.g. a signature share).
    Finished { messages: Vec<M>, output: O },
}

impl<O, M> Transition<O, M> {
    /// The messages to send, whether or not the protocol finished.
    pub fn messages(&self) -> &[M] {
        match self {
            Self::Continue(messages) | Self::Finished { messages, .. } => messages,
        }
    }
}

/// One party's state machine for one session of a threshold protocol.
pub trait Protocol {
    /// What the party holds when the protocol completes.
    type Output;

    /// The session this instance belongs to.
    fn session_id(&self) -> SessionId;

    /// The round whose messages [`Protocol::step`] expects next (1-based).
    fn expected_round(&self) -> u16;

    /// Produces this party's round-1 messages. Called exactly once.
    fn start(&mut self) -> Result<Vec<Message>, ProtocolError>;

    /// Consumes every message addressed to this party in the expected round.
    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<Self::Output>, ProtocolError>;
}

/// Boxed protocols (as returned by the scheme-erased constructors) are protocols.
impl<P: Protocol + ?Sized> Protocol for Box<P> {
    type Output = P::Output;

    fn session_id(&self) -> SessionId {
        (**self).session_id()
    }

    fn expected_round(&self) -> u16 {
        (**self).expected_round()
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        (**self).start()
    }

    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<Self::Output>, ProtocolError> {
        (**self).step(inbound)
    }
}
