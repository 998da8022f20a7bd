//! Plumbing shared by the ECDSA state machines: the curve dkls23 computes
//! with, the participant roster (node ids ↔ DKLs23 party indices), payload
//! encoding (postcard over dkls23's serde types), domain-separated hashing,
//! and mapping of dkls23 [`Abort`]s to [`ProtocolError`]s that name culprits
//! by node id.
//!
//! DKLs23 numbers parties `1..=n` (`PartyIndex`, a `u8`) and evaluates its
//! Shamir polynomial at those indices. Sigil's node ids are sparse and
//! operator-assigned, so every key fixes a roster: its participants sorted
//! ascending, party index = position + 1. The roster is part of the key
//! (it is in the public key package), so the mapping never changes for the
//! life of the key.

use std::collections::{BTreeMap, BTreeSet};

use dkls23::protocols::{Abort, AbortKind, AbortReason, PartyIndex};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{NodeId, ProtocolError};

/// The curve type dkls23 computes with (k256 0.14). Sigil's own arithmetic
/// (verification, recovery ids, public derivation) uses k256 0.13 and meets
/// dkls23's values only as bytes.
pub(crate) type Curve = k256_dkls23::Secp256k1;
/// A DKLs23 party: one node's key share with its pairwise multiplication
/// (OT) state and derivation data. Zeroized on drop by dkls23.
pub(crate) type Party = dkls23::protocols::Party<Curve>;

/// DKLs23 supports at most 255 parties (`PartyIndex` is a `u8`).
pub(crate) const MAX_PARTICIPANTS: usize = u8::MAX as usize;

/// An error that input cannot cause (encoding well-formed values).
pub(crate) fn internal(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::InvalidParameters(format!("internal ECDSA error: {e}"))
}

/// The participants of one key, in party-index order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Roster {
    /// Sorted ascending; `nodes[i]` has party index `i + 1`.
    nodes: Vec<NodeId>,
}

impl Roster {
    /// Validates a participant list: non-empty, at most 255, no duplicates,
    /// `me` (if any) included. Order does not matter.
    pub(crate) fn new(me: Option<NodeId>, participants: &[NodeId]) -> Result<Self, ProtocolError> {
        if participants.is_empty() {
            return Err(ProtocolError::InvalidParameters(
                "empty participant list".into(),
            ));
        }
        let mut nodes = participants.to_vec();
        nodes.sort_unstable();
        if let Some(pair) = nodes.windows(2).find(|w| w[0] == w[1]) {
            return Err(ProtocolError::InvalidParameters(format!(
                "{} appears twice in the participant list",
                pair[0]
            )));
        }
        if nodes.len() > MAX_PARTICIPANTS {
            return Err(ProtocolError::InvalidParameters(format!(
                "DKLs23 supports at most {MAX_PARTICIPANTS} participants, got {}",
                nodes.len()
            )));
        }
        if let Some(me) = me
            && nodes.binary_search(&me).is_err()
        {
            return Err(ProtocolError::InvalidParameters(format!(
                "{me} is not in the participant list"
            )));
        }
        Ok(Self { nodes })
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The participants, ascending.
    pub(crate) fn nodes(&self) -> &[NodeId] {
        &self.nodes
    }

    pub(crate) fn contains(&self, node: NodeId) -> bool {
        self.nodes.binary_search(&node).is_ok()
    }

    /// The DKLs23 party index of `node`.
    pub(crate) fn index(&self, node: NodeId) -> Result<PartyIndex, ProtocolError> {
        let position = self
            .nodes
            .binary_search(&node)
            .map_err(|_| ProtocolError::UnknownSender { from: node })?;
        // position < 255, so position + 1 fits and is nonzero.
        u8::try_from(position + 1)
            .ok()
            .and_then(|i| PartyIndex::new(i).ok())
            .ok_or_else(|| internal("party index out of range"))
    }

    /// The node with DKLs23 party index `index`.
    pub(crate) fn node(&self, index: PartyIndex) -> Option<NodeId> {
        usize::from(index.as_u8())
            .checked_sub(1)
            .and_then(|i| self.nodes.get(i).copied())
    }

    /// The node at a party index this session produced itself (an index
    /// outside the roster is a bug here, not a peer's fault).
    pub(crate) fn node_at(&self, index: PartyIndex) -> Result<NodeId, ProtocolError> {
        self.node(index)
            .ok_or_else(|| internal(format!("no participant with party index {index}")))
    }

    /// Everyone except `me`.
    pub(crate) fn others(&self, me: NodeId) -> BTreeSet<NodeId> {
        self.nodes.iter().copied().filter(|n| *n != me).collect()
    }
}

/// postcard encoding of a public payload.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ProtocolError> {
    postcard::to_allocvec(value).map_err(internal)
}

/// postcard encoding of a secret value, written once into a zeroizing
/// buffer of the exact size (no reallocation leaves copies behind).
pub(crate) fn encode_secret<T: Serialize + ?Sized>(
    value: &T,
) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
    let size = postcard::experimental::serialized_size(value).map_err(internal)?;
    let mut out = Zeroizing::new(vec![0u8; size]);
    let written = postcard::to_slice(value, out.as_mut_slice())
        .map_err(internal)?
        .len();
    if written != size {
        return Err(internal("postcard size mismatch"));
    }
    Ok(out)
}

/// Decodes exactly one postcard value from `bytes` (trailing bytes are an error).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| e.to_string())?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(format!("{} trailing bytes", rest.len()))
    }
}

/// SHA-256 with a length-prefixed domain separator; every later field is
/// fixed-length or length-prefixed by the caller.
pub(crate) fn hasher(domain: &[u8]) -> Sha256 {
    let mut h = Sha256::new();
    h.update((domain.len() as u32).to_be_bytes());
    h.update(domain);
    h
}

/// Adds a participant list (count, then each id) to a hash.
pub(crate) fn hash_nodes(h: &mut Sha256, nodes: &[NodeId]) {
    h.update((nodes.len() as u32).to_be_bytes());
    for node in nodes {
        h.update(node.get().to_be_bytes());
    }
}

/// Digest of one round's broadcasts (ours included), sorted by sender,
/// under `domain` and bound to `binding` (the session's own context): what
/// every party echoes so that a relay cannot show different broadcasts to
/// different parties.
pub(crate) fn echo_digest(
    domain: &[u8],
    binding: &[u8],
    round: u16,
    broadcasts: &BTreeMap<NodeId, &[u8]>,
) -> [u8; 32] {
    let mut h = hasher(domain);
    h.update(binding);
    h.update(round.to_be_bytes());
    h.update((broadcasts.len() as u32).to_be_bytes());
    for (node, bytes) in broadcasts {
        h.update(node.get().to_be_bytes());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    h.finalize().into()
}

/// A payload field naming DKLs23 parties must name the message's sender
/// (and, for direct messages, `me` as receiver).
pub(crate) fn check_parties(
    roster: &Roster,
    me: PartyIndex,
    from: NodeId,
    sender: PartyIndex,
    receiver: Option<PartyIndex>,
) -> Result<(), ProtocolError> {
    if sender != roster.index(from)? || receiver.is_some_and(|r| r != me) {
        return Err(ProtocolError::Malformed {
            from,
            reason: "payload names other DKLs23 parties than its sender and recipient".into(),
        });
    }
    Ok(())
}

/// Maps a dkls23 abort to a protocol error, naming culprits by node id.
///
/// - `BanCounterparty(p)`: the counterparty failed a check on the reusable
///   OT state (DKLs23 §3.5): [`ProtocolError::Banned`] names it; it must be
///   excluded from every future session with this key.
/// - Recoverable aborts whose reason is a check on messages only that
///   counterparty produced (its proof, commitments, multiplication
///   messages) name it too. The state machines reach those checks only
///   after the session parameters were confirmed equal (the DKG echo, the
///   signing session binding), so a failure there is the sender's doing.
/// - Local faults (our own state, our own parameters) are
///   [`ProtocolError::InvalidParameters`]; everything else is
///   [`ProtocolError::Misbehaviour`] with no culprit.
pub(crate) fn blame(roster: &Roster, me: PartyIndex, abort: Abort) -> ProtocolError {
    let named = |p: PartyIndex| {
        if p == me {
            None
        } else {
            roster.node(p).map(|node| (p, node))
        }
    };
    let culprit = match (&abort.kind, &abort.reason) {
        (AbortKind::BanCounterparty(p), _) => named(*p),
        (
            AbortKind::Recoverable,
            AbortReason::ProofVerificationFailed { counterparty }
            | AbortReason::CommitmentMismatch { counterparty }
            | AbortReason::ZeroShareDecommitFailed { counterparty }
            | AbortReason::MultiplicationVerificationFailed { counterparty, .. }
            | AbortReason::TrivialInstancePoint { counterparty }
            | AbortReason::GammaUInconsistency { counterparty }
            | AbortReason::OtConsistencyCheckFailed { counterparty },
        ) => named(*counterparty),
        (AbortKind::Recoverable, AbortReason::ChainCodeCommitmentFailed { party }) => named(*party),
        _ => None,
    };
    if let Some((index, node)) = culprit {
        let reason = format!("DKLs23 abort: {} (party {index} is {node})", abort.reason);
        return if matches!(abort.kind, AbortKind::BanCounterparty(_)) {
            ProtocolError::Banned {
                banned: node,
                reason,
            }
        } else {
            ProtocolError::Misbehaviour {
                culprits: vec![node],
                reason,
            }
        };
    }
    match abort.reason {
        AbortReason::InvalidPartyIndex { .. }
        | AbortReason::WrongCounterpartyCount { .. }
        | AbortReason::DuplicateCounterparty { .. }
        | AbortReason::SelfInCounterparties
        | AbortReason::MissingMulState { .. }
        | AbortReason::InvalidLocalState { .. }
        | AbortReason::PhaseCalledOutOfOrder { .. }
        | AbortReason::LagrangeCoefficientFailed => {
            ProtocolError::InvalidParameters(format!("DKLs23 refused: {}", abort.reason))
        }
        reason => ProtocolError::Misbehaviour {
            culprits: Vec::new(),
            reason: format!("DKLs23 abort: {reason}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: u16) -> NodeId {
        NodeId::new(id).expect("nonzero")
    }

    #[test]
    fn roster_maps_sorted_nodes_to_one_based_indices() {
        let roster = Roster::new(Some(n(5)), &[n(9), n(2), n(5)]).expect("roster");
        assert_eq!(roster.nodes(), &[n(2), n(5), n(9)]);
        let indices: Vec<u8> = roster
            .nodes()
            .iter()
            .map(|node| roster.index(*node).map(|i| i.as_u8()))
            .collect::<Result<_, _>>()
            .expect("indices");
        assert_eq!(indices, vec![1, 2, 3]);
        for node in roster.nodes() {
            assert_eq!(
                roster.index(*node).ok().and_then(|i| roster.node(i)),
                Some(*node)
            );
        }
        assert_eq!(
            roster.index(n(3)),
            Err(ProtocolError::UnknownSender { from: n(3) })
        );
        assert_eq!(roster.node(PartyIndex::new(4).expect("nonzero")), None);
    }

    #[test]
    fn roster_refuses_bad_lists() {
        assert_eq!(
            Roster::new(None, &[n(1), n(2), n(1)]),
            Err(ProtocolError::InvalidParameters(
                "node-1 appears twice in the participant list".into()
            ))
        );
        assert_eq!(
            Roster::new(Some(n(4)), &[n(1), n(2)]),
            Err(ProtocolError::InvalidParameters(
                "node-4 is not in the participant list".into()
            ))
        );
        assert!(Roster::new(None, &[]).is_err());
        let many: Vec<NodeId> = (1..=256).map(n).collect();
        assert_eq!(
            Roster::new(None, &many),
            Err(ProtocolError::InvalidParameters(
                "DKLs23 supports at most 255 participants, got 256".into()
            ))
        );
        assert!(Roster::new(None, &many[..255]).is_ok());
    }

    #[test]
    fn aborts_name_culprits_only_where_attributable() {
        let roster = Roster::new(None, &[n(2), n(5), n(9)]).expect("roster");
        let p = |i| PartyIndex::new(i).expect("nonzero");
        let ban = Abort::ban(
            p(1),
            p(3),
            AbortReason::OtConsistencyCheckFailed { counterparty: p(3) },
        );
        let banned = blame(&roster, p(1), ban);
        assert!(
            matches!(
                banned,
                ProtocolError::Banned { banned: node, ref reason }
                    if node == n(9) && reason.contains("party 3 is node-9")
            ),
            "{banned:?}"
        );
        assert_eq!(banned.banned(), Some(n(9)));
        assert_eq!(banned.culprits(), vec![n(9)]);
        assert!(!banned.implicates_relay());
        assert!(banned.to_string().contains("future session"), "{banned}");
        // A ban that names this party itself (a corrupt abort) bans nobody.
        let self_ban = Abort::ban(
            p(1),
            p(1),
            AbortReason::OtConsistencyCheckFailed { counterparty: p(1) },
        );
        assert_eq!(blame(&roster, p(1), self_ban).banned(), None);
        // Recoverable aborts name culprits but ban nobody.
        let recoverable =
            Abort::recoverable(p(1), AbortReason::CommitmentMismatch { counterparty: p(3) });
        assert_eq!(blame(&roster, p(1), recoverable).banned(), None);
        let commitment =
            Abort::recoverable(p(1), AbortReason::CommitmentMismatch { counterparty: p(2) });
        assert_eq!(blame(&roster, p(1), commitment).culprits(), vec![n(5)]);
        // A check on our own values never blames us.
        let own = Abort::recoverable(
            p(1),
            AbortReason::ProofVerificationFailed { counterparty: p(1) },
        );
        assert!(matches!(
            blame(&roster, p(1), own),
            ProtocolError::Misbehaviour { ref culprits, .. } if culprits.is_empty()
        ));
        // Session mismatch: the coordinator may have given signers different
        // parameters, so the sender is not named.
        let binding = Abort::recoverable(
            p(1),
            AbortReason::SessionBindingMismatch { counterparty: p(2) },
        );
        assert!(blame(&roster, p(1), binding).culprits().is_empty());
        let local = Abort::recoverable(p(1), AbortReason::MissingMulState { counterparty: p(2) });
        assert!(matches!(
            blame(&roster, p(1), local),
            ProtocolError::InvalidParameters(_)
        ));
    }

    #[test]
    fn decode_refuses_trailing_bytes_and_garbage() {
        let bytes = encode(&(7u32, [1u8; 4])).expect("encode");
        assert_eq!(decode::<(u32, [u8; 4])>(&bytes), Ok((7, [1; 4])));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode::<(u32, [u8; 4])>(&longer).is_err());
        assert!(decode::<(u32, [u8; 4])>(&bytes[..2]).is_err());
        let secret = encode_secret(&(7u32, [1u8; 4])).expect("encode");
        assert_eq!(secret.as_slice(), bytes.as_slice());
    }
}
