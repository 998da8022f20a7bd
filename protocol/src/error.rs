//! Typed protocol errors. Every error that can be pinned on a participant
//! names it ([`ProtocolError::culprits`]), so the coordinator can exclude it
//! and the audit trail can record it.

use crate::NodeId;

/// Why a protocol step was refused. Nothing is signed or stored when a step fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Parameters of the session itself are invalid (threshold, participant set, ids).
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// A message belongs to another session.
    #[error("message from {from} belongs to another session")]
    WrongSession { from: NodeId },
    /// A message is for a round other than the one expected.
    #[error("message from {from} is for round {got}, expected round {expected}")]
    WrongRound {
        from: NodeId,
        expected: u16,
        got: u16,
    },
    /// A message comes from a node that is not a participant of this session.
    #[error("message from {from}, which is not a participant of this session")]
    UnknownSender { from: NodeId },
    /// A message is addressed to another party.
    #[error("message from {from} is not addressed to this party")]
    Misaddressed { from: NodeId },
    /// Two messages from the same sender in one round.
    #[error("duplicate message from {from}")]
    Duplicate { from: NodeId },
    /// Messages expected in this round never arrived.
    #[error("missing messages from {missing:?}")]
    Missing { missing: Vec<NodeId> },
    /// A message could not be decoded, or holds an invalid point or scalar.
    #[error("malformed message from {from}: {reason}")]
    Malformed { from: NodeId, reason: String },
    /// A message's sender signature does not verify: it was forged, altered
    /// in transit, or taken from a session with another context (key,
    /// epoch, kind or participants; see `envelope::SessionContext`).
    #[error("message claiming to be from {claimed_from} has an invalid sender signature")]
    BadSenderSignature { claimed_from: NodeId },
    /// An end-to-end encrypted payload failed to decrypt although its sender signature is valid.
    #[error("encrypted payload from {from} does not decrypt")]
    Undecryptable { from: NodeId },
    /// Parties saw different broadcasts in an earlier round. Only the relay
    /// (the coordinator) can cause this for correctly signed messages, unless
    /// a listed party equivocated or lied in its echo.
    #[error(
        "broadcast views differ between this party and {parties:?}; the coordinator equivocated or those parties lied"
    )]
    InconsistentBroadcast { parties: Vec<NodeId> },
    /// The cryptographic checks of the protocol identified misbehaving parties.
    #[error("misbehaviour by {culprits:?}: {reason}")]
    Misbehaviour {
        culprits: Vec<NodeId>,
        reason: String,
    },
    /// DKLs23 caught a counterparty cheating on the reusable pairwise state
    /// of the key (its OT-based multiplication: `AbortKind::BanCounterparty`).
    /// The engine requires this party never to run another session of the
    /// key with it: continuing would let it extract this party's share.
    /// Only a key refresh or reshare that replaces the pairwise state (or
    /// removes the node) lifts the ban.
    #[error("{banned} is banned from every future session with this key (DKLs23 ban): {reason}")]
    Banned { banned: NodeId, reason: String },
    /// A delivered message claims to come from this party itself. Honest
    /// parties never receive their own messages back: the relay replayed or
    /// substituted this party's own contribution (e.g. its signing commitment).
    #[error("a delivered message claims to come from this party ({claimed_from}) itself")]
    FromSelf { claimed_from: NodeId },
    /// A final signature does not verify under the group key.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// The protocol was used out of order (e.g. stepped after finishing).
    #[error("protocol used out of order: {0}")]
    OutOfOrder(String),
}

impl ProtocolError {
    /// The participants this error blames, if any.
    pub fn culprits(&self) -> Vec<NodeId> {
        match self {
            // A correctly signed message that cannot be decoded or decrypted
            // was produced by its sender.
            Self::Malformed { from, .. } | Self::Undecryptable { from } => vec![*from],
            Self::Misbehaviour { culprits, .. } => culprits.clone(),
            // A ban names its counterparty: it is a culprit, and more.
            Self::Banned { banned, .. } => vec![*banned],
            // Routing errors: the coordinator validates session, round, sender
            // and recipient before it delivers, so a signed message arriving
            // in the wrong place was misrouted or replayed by the relay.
            Self::WrongSession { .. }
            | Self::WrongRound { .. }
            | Self::UnknownSender { .. }
            | Self::Misaddressed { .. }
            | Self::Duplicate { .. }
            | Self::InvalidParameters(_)
            | Self::Missing { .. }
            | Self::BadSenderSignature { .. }
            | Self::InconsistentBroadcast { .. }
            | Self::FromSelf { .. }
            | Self::InvalidSignature(_)
            | Self::OutOfOrder(_) => Vec::new(),
        }
    }

    /// The counterparty this party must never run a session of the key
    /// with again ([`ProtocolError::Banned`]), if this error is a ban.
    pub fn banned(&self) -> Option<NodeId> {
        match self {
            Self::Banned { banned, .. } => Some(*banned),
            _ => None,
        }
    }

    /// True when the error implicates the relay (the coordinator): a forged,
    /// replayed, misrouted or equivocated message. Never for a
    /// [`ProtocolError::Banned`] or [`ProtocolError::Misbehaviour`]: their
    /// checks run on messages the sender signed and sealed to this party.
    pub fn implicates_relay(&self) -> bool {
        matches!(
            self,
            Self::BadSenderSignature { .. }
                | Self::InconsistentBroadcast { .. }
                | Self::WrongSession { .. }
                | Self::WrongRound { .. }
                | Self::UnknownSender { .. }
                | Self::Misaddressed { .. }
                | Self::Duplicate { .. }
                | Self::FromSelf { .. }
        )
    }
}
