//! The message envelope every protocol speaks, and its canonical encoding.
//!
//! A [`Message`] names its session, round, sender and recipient. The
//! canonical encoding ([`Message::signing_bytes`]) is what the sender signs,
//! so a relay cannot move a message to another session, round or recipient
//! without the signature failing.

use serde::{Deserialize, Serialize};

use crate::{NodeId, SessionId};

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Recipient {
    /// Every other participant; consistency is checked by echo.
    Broadcast,
    /// One participant; the payload is end-to-end encrypted to it.
    Node(NodeId),
    /// The coordinator (e.g. a signature share for aggregation).
    Coordinator,
}

/// One protocol message from one party in one round.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub session: SessionId,
    pub round: u16,
    pub from: NodeId,
    pub to: Recipient,
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Message {
    // Payloads may be sealed secrets or large; print their length only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("session", &self.session)
            .field("round", &self.round)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Message {
    /// Domain separator of the canonical encoding.
    const DOMAIN: &'static [u8] = b"sigil/v1/protocol-message";

    /// The canonical bytes the sender signs: domain, session, round, sender,
    /// recipient and payload, each fixed-length or length-prefixed.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::DOMAIN.len() + 40 + self.payload.len());
        out.extend_from_slice(&(Self::DOMAIN.len() as u32).to_be_bytes());
        out.extend_from_slice(Self::DOMAIN);
        out.extend_from_slice(self.session.as_bytes());
        out.extend_from_slice(&self.round.to_be_bytes());
        out.extend_from_slice(&self.from.get().to_be_bytes());
        match self.to {
            Recipient::Broadcast => out.extend_from_slice(&[0, 0, 0]),
            Recipient::Node(n) => {
                out.push(1);
                out.extend_from_slice(&n.get().to_be_bytes());
            }
            Recipient::Coordinator => out.extend_from_slice(&[2, 0, 0]),
        }
        out.extend_from_slice(&(self.payload.len() as u64).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(to: Recipient, round: u16) -> Message {
        Message {
            session: SessionId::from_bytes([1; 16]),
            round,
            from: NodeId::new(1).expect("nonzero"),
            to,
            payload: vec![9, 9],
        }
    }

    #[test]
    fn signing_bytes_bind_every_field() {
        let n2 = NodeId::new(2).expect("nonzero");
        let base = msg(Recipient::Node(n2), 1).signing_bytes();
        assert_ne!(base, msg(Recipient::Broadcast, 1).signing_bytes());
        assert_ne!(base, msg(Recipient::Coordinator, 1).signing_bytes());
        assert_ne!(base, msg(Recipient::Node(n2), 2).signing_bytes());
        let mut other_payload = msg(Recipient::Node(n2), 1);
        other_payload.payload.push(0);
        assert_ne!(base, other_payload.signing_bytes());
    }
}
