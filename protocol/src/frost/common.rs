//! Plumbing shared by the FROST state machines: the per-ciphersuite
//! [`Suite`] trait (standard key and signature encodings), the participant
//! roster (node ids ↔ FROST identifiers), and mapping of `frost-core` errors
//! to [`ProtocolError`]s that name culprits by node id. Strict sorting of a
//! round's inbound messages is shared with ECDSA (`crate::rounds`).
//!
//! Everything here is written once, generically; the three ciphersuites
//! differ only in their [`Suite`] implementations.

use std::collections::{BTreeMap, BTreeSet};

use crate::{NodeId, ProtocolError, Scheme};
use frost_core::{Ciphersuite, Identifier, Signature, VerifyingKey};

/// A FROST ciphersuite Sigil runs, with its standard public encodings.
pub(crate) trait Suite: Ciphersuite {
    /// The scheme this ciphersuite implements.
    const SCHEME: Scheme;

    /// The group key in the scheme's standard encoding.
    fn encode_key(key: &VerifyingKey<Self>) -> Result<Vec<u8>, ProtocolError> {
        key.serialize().map_err(internal)
    }

    /// Parses a group key in the scheme's standard encoding.
    fn decode_key(bytes: &[u8]) -> Result<VerifyingKey<Self>, ProtocolError> {
        VerifyingKey::deserialize(bytes).map_err(|e| {
            ProtocolError::InvalidParameters(format!("invalid {} public key: {e}", Self::SCHEME))
        })
    }

    /// A signature in the scheme's standard encoding (frost-core's
    /// serialization is already the standard one for all three suites).
    fn encode_signature(signature: &Signature<Self>) -> Result<Vec<u8>, ProtocolError> {
        signature.serialize().map_err(internal)
    }

    /// Parses a signature in the scheme's standard encoding.
    fn decode_signature(bytes: &[u8]) -> Result<Signature<Self>, ProtocolError> {
        Signature::deserialize(bytes).map_err(|e| {
            ProtocolError::InvalidSignature(format!("malformed {} signature: {e}", Self::SCHEME))
        })
    }
}

impl Suite for frost_secp256k1::Secp256K1Sha256 {
    const SCHEME: Scheme = Scheme::FrostSecp256k1;
}

impl Suite for frost_ed25519::Ed25519Sha512 {
    const SCHEME: Scheme = Scheme::FrostEd25519;
}

impl Suite for frost_secp256k1_tr::Secp256K1Sha256TR {
    const SCHEME: Scheme = Scheme::FrostTaproot;

    /// BIP-340 x-only key: the x coordinate of the (tweaked) group key. Its
    /// y parity is irrelevant: BIP-340 verification lifts x to the even-y point,
    /// and frost-secp256k1-tr signs for that point.
    fn encode_key(key: &VerifyingKey<Self>) -> Result<Vec<u8>, ProtocolError> {
        let sec1 = key.serialize().map_err(internal)?;
        Ok(sec1.get(1..).unwrap_or_default().to_vec())
    }

    fn decode_key(bytes: &[u8]) -> Result<VerifyingKey<Self>, ProtocolError> {
        if bytes.len() != 32 {
            return Err(ProtocolError::InvalidParameters(format!(
                "x-only public key must be 32 bytes, got {}",
                bytes.len()
            )));
        }
        let mut sec1 = Vec::with_capacity(33);
        sec1.push(0x02);
        sec1.extend_from_slice(bytes);
        VerifyingKey::deserialize(&sec1).map_err(|e| {
            ProtocolError::InvalidParameters(format!("invalid x-only public key: {e}"))
        })
    }
}

/// An error that input cannot cause (serializing well-formed values).
pub(crate) fn internal(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::InvalidParameters(format!("internal FROST error: {e}"))
}

/// The participants of one session and their FROST identifiers.
#[derive(Debug)]
pub(crate) struct Roster<C: Ciphersuite> {
    ids: BTreeMap<NodeId, Identifier<C>>,
    nodes: BTreeMap<Identifier<C>, NodeId>,
}

impl<C: Ciphersuite> Roster<C> {
    /// Validates a participant list: non-empty, no duplicates, `me` (if any) included.
    pub(crate) fn new(me: Option<NodeId>, participants: &[NodeId]) -> Result<Self, ProtocolError> {
        if participants.is_empty() {
            return Err(ProtocolError::InvalidParameters(
                "empty participant list".into(),
            ));
        }
        let mut ids = BTreeMap::new();
        let mut nodes = BTreeMap::new();
        for &node in participants {
            let id = Identifier::<C>::try_from(node.get()).map_err(|e| {
                ProtocolError::InvalidParameters(format!("{node} is not a valid identifier: {e}"))
            })?;
            if ids.insert(node, id).is_some() {
                return Err(ProtocolError::InvalidParameters(format!(
                    "{node} appears twice in the participant list"
                )));
            }
            nodes.insert(id, node);
        }
        if let Some(me) = me
            && !ids.contains_key(&me)
        {
            return Err(ProtocolError::InvalidParameters(format!(
                "{me} is not in the participant list"
            )));
        }
        Ok(Self { ids, nodes })
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn id(&self, node: NodeId) -> Result<Identifier<C>, ProtocolError> {
        self.ids
            .get(&node)
            .copied()
            .ok_or(ProtocolError::UnknownSender { from: node })
    }

    pub(crate) fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.ids.keys().copied()
    }

    pub(crate) fn identifiers(&self) -> impl Iterator<Item = &Identifier<C>> + '_ {
        self.ids.values()
    }

    /// Everyone except `me`.
    pub(crate) fn others(&self, me: Option<NodeId>) -> BTreeSet<NodeId> {
        self.nodes().filter(|n| Some(*n) != me).collect()
    }

    /// Maps a FROST error to a protocol error, naming culprits by node id.
    pub(crate) fn blame(&self, e: frost_core::Error<C>) -> ProtocolError {
        let culprits: Vec<NodeId> = e
            .culprits()
            .iter()
            .filter_map(|id| self.nodes.get(id).copied())
            .collect();
        if culprits.is_empty() {
            internal(e)
        } else {
            ProtocolError::Misbehaviour {
                culprits,
                reason: e.to_string(),
            }
        }
    }
}
