//! The coordinator's side of one protocol round, as a pure function of what
//! the nodes returned: validate each node's output, then route it.
//!
//! The coordinator cannot read sealed payloads or forge signatures; what it
//! can do is route. [`RoundRelay`] makes the honest routing explicit:
//! broadcasts go to every other participant, direct messages to their
//! recipient, coordinator messages to the coordinator. Before routing it
//! checks that every message a node returned claims that node as sender and
//! carries the right session and round, and — given the participants'
//! signing keys and the session's context ([`RoundRelay::verifying`]) —
//! that its sender signature verifies, so a misbehaving node is named here
//! rather than discovered (and blamed on the relay) by its peers. A node
//! cannot deny a message the relay received from it over its own mTLS
//! connection: a bad signature on it is the node's fault.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::envelope::{PeerVerifier, SessionContext, SignedMessage};
use crate::{NodeId, Recipient, SessionId};

/// A node returned output the relay refuses to route. Each variant names
/// the node that returned it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The relay was set up with an invalid participant list.
    #[error("invalid participant list: {0}")]
    InvalidParticipants(String),
    /// Output from a node that is not a participant.
    #[error("{node} is not a participant of this session")]
    UnknownNode { node: NodeId },
    /// A node's output was collected twice for this round.
    #[error("output of {node} was already collected for this round")]
    AlreadyCollected { node: NodeId },
    /// Output collected for a round other than this relay's round.
    #[error("output of {node} collected for round {got}, but this relay is for round {expected}")]
    RoundMismatch {
        node: NodeId,
        expected: u16,
        got: u16,
    },
    /// A node returned a message claiming another sender.
    #[error("{node} returned a message claiming to be from {claimed}")]
    ForeignSender { node: NodeId, claimed: NodeId },
    /// A node returned a message for another session.
    #[error("{node} returned a message for another session")]
    WrongSession { node: NodeId },
    /// A node returned a message for another round.
    #[error("{node} returned a message for round {got}, expected round {expected}")]
    WrongRound {
        node: NodeId,
        expected: u16,
        got: u16,
    },
    /// A node addressed a message to itself or to a non-participant.
    #[error("{node} returned a message addressed to {to:?}, which is not another participant")]
    BadRecipient { node: NodeId, to: Recipient },
    /// A node returned two messages for the same destination.
    #[error("{node} returned two messages for {to:?}")]
    DuplicateMessage { node: NodeId, to: Recipient },
    /// A node returned a message whose sender signature does not verify
    /// under its own key in this session's context.
    #[error("{node} returned a message to {to:?} whose sender signature does not verify")]
    BadSignature { node: NodeId, to: Recipient },
    /// A node returned more messages for one round than it has destinations
    /// (one broadcast, one to the coordinator, one to each other participant).
    #[error("{node} returned {count} messages for one round; at most {max} are possible")]
    TooManyMessages {
        node: NodeId,
        count: usize,
        max: usize,
    },
    /// A node returned a message whose payload is larger than the relay's bound.
    #[error(
        "{node} returned a message to {to:?} with a payload of {size} bytes; at most {max} bytes are relayed"
    )]
    PayloadTooLarge {
        node: NodeId,
        to: Recipient,
        size: usize,
        max: usize,
    },
    /// Deliveries were requested before every participant's output was collected.
    #[error("output of {missing:?} not collected yet")]
    Missing { missing: Vec<NodeId> },
}

impl RelayError {
    /// The nodes this error blames.
    pub fn culprits(&self) -> Vec<NodeId> {
        match self {
            Self::InvalidParticipants(_) | Self::Missing { .. } => Vec::new(),
            Self::UnknownNode { node }
            | Self::AlreadyCollected { node }
            | Self::RoundMismatch { node, .. }
            | Self::ForeignSender { node, .. }
            | Self::WrongSession { node }
            | Self::WrongRound { node, .. }
            | Self::BadRecipient { node, .. }
            | Self::DuplicateMessage { node, .. }
            | Self::BadSignature { node, .. }
            | Self::TooManyMessages { node, .. }
            | Self::PayloadTooLarge { node, .. } => vec![*node],
        }
    }
}

/// Where one round's messages go.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Deliveries {
    /// Per participant, its inbound messages for its next step (possibly empty),
    /// ordered by sender.
    pub inbound: BTreeMap<NodeId, Vec<SignedMessage>>,
    /// Every broadcast of the round, ordered by sender (e.g. signing
    /// commitments, for the coordinator's aggregator).
    pub broadcasts: Vec<SignedMessage>,
    /// Messages addressed to the coordinator (e.g. signature shares), ordered by sender.
    pub to_coordinator: Vec<SignedMessage>,
}

/// The largest payload of one message the relay accepts by default (1 MiB).
/// The largest honest payloads, DKLs23 DKG and reshare rounds, are about
/// 140 KB; the bound only keeps a node from making the coordinator buffer
/// and forward without limit.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// Collects one round's output from every participant and routes it.
pub struct RoundRelay {
    session: SessionId,
    participants: BTreeSet<NodeId>,
    round: Option<u16>,
    max_payload: usize,
    collected: BTreeMap<NodeId, Vec<SignedMessage>>,
    senders: Option<(SessionContext, Arc<dyn PeerVerifier>)>,
}

impl std::fmt::Debug for RoundRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoundRelay")
            .field("session", &self.session)
            .field("participants", &self.participants)
            .field("round", &self.round)
            .field("verifies_senders", &self.senders.is_some())
            .finish_non_exhaustive()
    }
}

impl RoundRelay {
    /// A relay for one round of `session` among `participants`.
    pub fn new(session: SessionId, participants: &[NodeId]) -> Result<Self, RelayError> {
        let set: BTreeSet<NodeId> = participants.iter().copied().collect();
        if set.len() != participants.len() {
            return Err(RelayError::InvalidParticipants(
                "duplicate participant".into(),
            ));
        }
        if set.is_empty() {
            return Err(RelayError::InvalidParticipants("no participants".into()));
        }
        Ok(Self {
            session,
            participants: set,
            round: None,
            max_payload: MAX_PAYLOAD_BYTES,
            collected: BTreeMap::new(),
            senders: None,
        })
    }

    /// Also verifies every collected message's sender signature with
    /// `verifier` (the participants' keys) in `context`, refusing a bad
    /// one as [`RelayError::BadSignature`] naming the node that returned it.
    pub fn verifying(mut self, context: SessionContext, verifier: Arc<dyn PeerVerifier>) -> Self {
        self.senders = Some((context, verifier));
        self
    }

    /// Refuses payloads larger than `bytes` (default [`MAX_PAYLOAD_BYTES`]).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// The most messages one node may return for a round: one broadcast,
    /// one to the coordinator and one to each other participant.
    pub fn max_messages(&self) -> usize {
        self.participants.len() + 1
    }

    /// Records what `from` returned for `round`, after validating every message.
    pub fn collect(
        &mut self,
        from: NodeId,
        round: u16,
        messages: Vec<SignedMessage>,
    ) -> Result<(), RelayError> {
        if !self.participants.contains(&from) {
            return Err(RelayError::UnknownNode { node: from });
        }
        if self.collected.contains_key(&from) {
            return Err(RelayError::AlreadyCollected { node: from });
        }
        let expected = *self.round.get_or_insert(round);
        if round != expected {
            return Err(RelayError::RoundMismatch {
                node: from,
                expected,
                got: round,
            });
        }
        // Counted before anything is verified: a node cannot make the relay
        // check (or hold) more than one message per destination.
        let max = self.max_messages();
        if messages.len() > max {
            return Err(RelayError::TooManyMessages {
                node: from,
                count: messages.len(),
                max,
            });
        }
        let mut destinations = BTreeSet::new();
        for signed in &messages {
            let m = &signed.message;
            if m.payload.len() > self.max_payload {
                return Err(RelayError::PayloadTooLarge {
                    node: from,
                    to: m.to,
                    size: m.payload.len(),
                    max: self.max_payload,
                });
            }
            if m.from != from {
                return Err(RelayError::ForeignSender {
                    node: from,
                    claimed: m.from,
                });
            }
            if m.session != self.session {
                return Err(RelayError::WrongSession { node: from });
            }
            if m.round != round {
                return Err(RelayError::WrongRound {
                    node: from,
                    expected: round,
                    got: m.round,
                });
            }
            if let Recipient::Node(to) = m.to
                && (to == from || !self.participants.contains(&to))
            {
                return Err(RelayError::BadRecipient {
                    node: from,
                    to: m.to,
                });
            }
            let key = match m.to {
                Recipient::Broadcast => (0u8, 0u16),
                Recipient::Node(to) => (1, to.get()),
                Recipient::Coordinator => (2, 0),
            };
            if !destinations.insert(key) {
                return Err(RelayError::DuplicateMessage {
                    node: from,
                    to: m.to,
                });
            }
            if let Some((context, verifier)) = &self.senders
                && !verifier.verify(from, &context.signing_bytes(m), &signed.signature)
            {
                return Err(RelayError::BadSignature {
                    node: from,
                    to: m.to,
                });
            }
        }
        self.collected.insert(from, messages);
        Ok(())
    }

    /// Routes the round once every participant's output is in.
    pub fn deliveries(self) -> Result<Deliveries, RelayError> {
        let missing: Vec<NodeId> = self
            .participants
            .iter()
            .copied()
            .filter(|p| !self.collected.contains_key(p))
            .collect();
        if !missing.is_empty() {
            return Err(RelayError::Missing { missing });
        }
        let mut out = Deliveries {
            inbound: self.participants.iter().map(|p| (*p, Vec::new())).collect(),
            ..Deliveries::default()
        };
        for signed in self.collected.into_values().flatten() {
            let from = signed.message.from;
            match signed.message.to {
                Recipient::Broadcast => {
                    for (participant, inbound) in out.inbound.iter_mut() {
                        if *participant != from {
                            inbound.push(signed.clone());
                        }
                    }
                    out.broadcasts.push(signed);
                }
                Recipient::Node(to) => {
                    if let Some(inbound) = out.inbound.get_mut(&to) {
                        inbound.push(signed);
                    }
                }
                Recipient::Coordinator => out.to_coordinator.push(signed),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn n(id: u16) -> NodeId {
        NodeId::new(id).expect("node id")
    }

    fn message(session: SessionId, from: u16, to: Recipient, payload: usize) -> SignedMessage {
        SignedMessage {
            message: Message {
                session,
                round: 1,
                from: n(from),
                to,
                payload: vec![0; payload],
            },
            signature: Vec::new(),
        }
    }

    #[test]
    fn refuses_more_messages_than_destinations() {
        let sid = SessionId::from_bytes([7; 16]);
        let parties = [n(1), n(2), n(3)];
        let mut relay = RoundRelay::new(sid, &parties).expect("relay");
        assert_eq!(relay.max_messages(), 4);
        // Every destination once: accepted.
        let full = vec![
            message(sid, 1, Recipient::Broadcast, 1),
            message(sid, 1, Recipient::Coordinator, 1),
            message(sid, 1, Recipient::Node(n(2)), 1),
            message(sid, 1, Recipient::Node(n(3)), 1),
        ];
        relay
            .collect(n(1), 1, full.clone())
            .expect("within the bound");
        // One more: refused before any message is looked at, naming the node.
        let mut flood = full;
        flood.extend((0..1000).map(|_| message(sid, 2, Recipient::Broadcast, 1)));
        let err = relay.collect(n(2), 1, flood).expect_err("too many");
        assert_eq!(
            err,
            RelayError::TooManyMessages {
                node: n(2),
                count: 1004,
                max: 4
            }
        );
        assert_eq!(err.culprits(), vec![n(2)]);
        assert!(err.to_string().contains("at most 4"), "{err}");
    }

    #[test]
    fn refuses_an_oversized_payload() {
        let sid = SessionId::from_bytes([8; 16]);
        let parties = [n(1), n(2)];
        let mut relay = RoundRelay::new(sid, &parties).expect("relay");
        relay
            .collect(
                n(1),
                1,
                vec![message(sid, 1, Recipient::Broadcast, MAX_PAYLOAD_BYTES)],
            )
            .expect("at the bound");
        let err = relay
            .collect(
                n(2),
                1,
                vec![message(
                    sid,
                    2,
                    Recipient::Node(n(1)),
                    MAX_PAYLOAD_BYTES + 1,
                )],
            )
            .expect_err("too large");
        assert_eq!(
            err,
            RelayError::PayloadTooLarge {
                node: n(2),
                to: Recipient::Node(n(1)),
                size: MAX_PAYLOAD_BYTES + 1,
                max: MAX_PAYLOAD_BYTES
            }
        );
        assert_eq!(err.culprits(), vec![n(2)]);

        let mut small = RoundRelay::new(sid, &parties)
            .expect("relay")
            .max_payload(8);
        assert!(matches!(
            small.collect(n(1), 1, vec![message(sid, 1, Recipient::Broadcast, 9)]),
            Err(RelayError::PayloadTooLarge { max: 8, .. })
        ));
    }
}
