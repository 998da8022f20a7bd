//! Verifiable secret redistribution: refresh the shares of an existing key,
//! or move the key to a new participant set with a new threshold, without
//! the key ever existing in one place and without changing it (same group
//! key, same addresses).
//!
//! # Scheme
//!
//! The redistribution of Desmedt and Jajodia, made verifiable with Feldman
//! commitments as Wong, Wang and Wing do:
//!
//! - Y. Desmedt, S. Jajodia, *Redistributing secret shares to new access
//!   structures and its applications*, Technical Report ISSE-TR-97-01,
//!   George Mason University, July 1997 ("DJ97"): each shareholder of an
//!   authorized subset re-shares its share with the new access structure;
//!   each new shareholder combines the subshares it receives with the
//!   Lagrange coefficients of that subset.
//! - T. M. Wong, C. Wang, J. M. Wing, *Verifiable secret redistribution for
//!   archive systems*, Proc. 1st International IEEE Security in Storage
//!   Workshop (SISW 2002), pp. 94–105 ("WWW02"; extended as CMU-CS-02-114):
//!   the old shareholders publish Feldman commitments to their subshare
//!   polynomials, so that each new shareholder verifies its subshares
//!   against them and verifies that each polynomial shares the dealer's
//!   *current* share, checked against the share commitments of the current
//!   epoch; and the group key is unchanged.
//!
//! (Equation numbers below are this module's, (1)–(7); the papers' own
//! numbering is not reproduced here.)
//!
//! A key `Y = x·G` is Shamir-shared over the old set with degree `t − 1`:
//! old participant `i` holds `s_i` with verifying share `Y_i = s_i·G`, at
//! x-coordinate `x_i`. A set `D` of at least `t` old participants, the
//! *dealers*, re-shares to the new set `N'` with threshold `t'`:
//!
//! 1. dealer `i` computes `w_i = λ_i(D)·s_i`, with `λ_i(D) = Π_{j∈D, j≠i} x_j / (x_j − x_i)`,
//!    so that `Σ_{i∈D} w_i = x` (DJ97's combination, moved to the dealer);
//! 2. it draws `f_i(z) = w_i + a_{i,1}·z + … + a_{i,t'−1}·z^{t'−1}` and
//!    publishes `C_{i,k} = a_{i,k}·G` for `k = 0..t'−1` (`a_{i,0} = w_i`);
//! 3. it sends `f_i(x'_j)` to each new participant `j` (end-to-end encrypted
//!    by the envelope layer);
//! 4. new participant `j` holds `s'_j = Σ_{i∈D} f_i(x'_j)`, a share of
//!    `F = Σ_i f_i`, of degree `t' − 1` with `F(0) = Σ_i w_i = x`;
//! 5. new verifying shares are public: `Y'_k = Σ_{i∈D} Σ_l C_{i,l}·x'_k^l`.
//!
//! Checks, each naming the dealer at fault (WWW02's verification of
//! subshares, and of the shares they were generated from):
//!
//! - (1) the revealed vector hashes to the dealer's round-1 commitment;
//! - (2) it has exactly `t'` coefficients (more or fewer would raise or lower the threshold);
//! - (3) every point and scalar is canonically encoded and no point is the
//!   identity (frost-core's `Group::deserialize` / `Field::deserialize`);
//! - (4) `C_{i,0} = λ_i(D)·Y_i`, with `Y_i` from the *current* epoch's public key package;
//! - (5) `Σ_{i∈D} C_{i,0} = Y` (the group key is unchanged);
//! - (6) at new participant `j`: `f_i(x'_j)·G = Σ_l C_{i,l}·x'_j^l`;
//! - (7) and finally `s'_j·G = Y'_j`.
//!
//! Checks (4) and (5) are public, so every party (dealer or not) reaches the
//! same verdict; (6) is private to each new participant. No complaint round
//! resolves a disputed subshare: a new participant that rejects one fails
//! the session naming the dealer, and the session produces no new epoch.
//!
//! # Rounds
//!
//! The parties of a session are `D ∪ N'`; every one of them takes part in
//! every round and finishes at the same step (a party with nothing to send
//! returns no messages). Commit-then-reveal keeps a dealer from choosing its
//! polynomial after seeing the others'; the echoes make the relay's
//! broadcasts consistent, as in the FROST DKG.
//!
//! | round | sender | recipient | payload |
//! |---|---|---|---|
//! | 1 (`start`) | each dealer | Broadcast | `H(domain, session, dealer, context, vector)` (32 bytes) |
//! | 2 (`step` 1) | each dealer | Node(j), each new participant `j` ≠ itself | `f_i(x'_j)`, a canonical scalar |
//! | 2 | every party | Broadcast | echo: digest of all round-1 hashes as seen (32 bytes), then for a dealer its vector `C_{i,0}‖…‖C_{i,t'−1}` |
//! | 3 (`step` 2) | every party | Broadcast | echo: digest of all revealed vectors as seen (32 bytes) |
//! | — (`step` 3) | | | round-3 echoes checked, then (4)–(7); output |
//!
//! `step` 1 sorts the dealers' hashes; `step` 2 checks the round-1 echoes
//! first ([`ProtocolError::InconsistentBroadcast`]), then (1)–(3); `step` 3
//! checks the round-2 echoes, then (4)–(7). The `context` bound into every
//! hash and echo is a digest of the scheme, ciphersuite, session, kind, both
//! sets with their x-coordinates and thresholds, the dealers, `Y` and the
//! dealers' `Y_i`: parties that disagree on any of them fail at the first echo.
//!
//! # Coordinates
//!
//! The state machine [`Vsr`] is generic over `frost_core::Ciphersuite` and
//! takes every x-coordinate explicitly ([`Committee`]), because Sigil's keys
//! use two conventions:
//!
//! - FROST keys evaluate shares at the node id (frost's `Identifier` is the
//!   node id): [`Coordinates::NodeId`]; see `crate::frost::reshare`.
//! - Sigil's DKLs23 ECDSA keys evaluate at the 1-based position of the node
//!   in the ascending participant list: [`Coordinates::Position`]. The
//!   ECDSA adapter (`crate::ecdsa::reshare`, phase 1 of its two-phase
//!   session) runs `Vsr<frost_secp256k1::Secp256K1Sha256>` (the same group
//!   and scalar field, secp256k1) with position coordinates for both sets:
//!
//! ```text
//! let old = Committee::new(&old_participants, Coordinates::Position, old_threshold)?;
//! let new = Committee::new(&new_participants, Coordinates::Position, new_threshold)?;
//! let vsr = Vsr::<frost_secp256k1::Secp256K1Sha256>::new(
//!     VsrParams { scheme: Scheme::EcdsaSecp256k1, kind, session, me, old,
//!                 dealers, new, group_key, verifying_shares },
//!     share.as_ref(), // the dealer's s_i as a frost SigningShare (32-byte big-endian scalar)
//!     rng,
//! )?;
//! // Output: s'_j (a SigningShare: serialize() gives the 32-byte scalar),
//! // Y'_k by node id, at the *new* positions.
//! ```
//!
//! (the unit tests run exactly this path with sparse node ids).

mod math;
mod vsr;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use frost_core::keys::SigningShare;
use frost_core::{Ciphersuite, Element};
use zeroize::Zeroizing;

pub(crate) use self::math::{decode_element, encode_element};
pub(crate) use self::vsr::Vsr;
use crate::engine::ReshareKind;
use crate::{NodeId, ProtocolError, Scheme, SessionId};

/// How a key's participants map to the x-coordinates its shares are evaluated at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coordinates {
    /// `x` is the node id (FROST keys).
    NodeId,
    /// `x` is the 1-based position in the ascending participant list
    /// (Sigil's DKLs23 ECDSA keys).
    Position,
}

/// A participant set with the x-coordinate of each participant and the
/// threshold of the sharing over it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Committee {
    coordinates: BTreeMap<NodeId, u16>,
    threshold: u16,
}

impl Committee {
    /// `participants` (no duplicates; order does not matter) with their
    /// coordinates by `convention`, and `threshold` (`2 ≤ threshold ≤ n`, as
    /// for a DKG).
    pub(crate) fn new(
        participants: &[NodeId],
        convention: Coordinates,
        threshold: u16,
    ) -> Result<Self, ProtocolError> {
        let mut sorted = participants.to_vec();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(ProtocolError::InvalidParameters(format!(
                "{} appears twice in the participant list",
                pair[0]
            )));
        }
        let mut coordinates = BTreeMap::new();
        for (position, node) in sorted.iter().enumerate() {
            let x = match convention {
                Coordinates::NodeId => node.get(),
                Coordinates::Position => u16::try_from(position + 1).map_err(|_| {
                    ProtocolError::InvalidParameters("too many participants".into())
                })?,
            };
            coordinates.insert(*node, x);
        }
        Self::from_coordinates(coordinates, threshold)
    }

    /// Participants with explicit x-coordinates (non-zero, distinct).
    pub(crate) fn from_coordinates(
        coordinates: BTreeMap<NodeId, u16>,
        threshold: u16,
    ) -> Result<Self, ProtocolError> {
        if coordinates.is_empty() {
            return Err(ProtocolError::InvalidParameters(
                "empty participant list".into(),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (node, x) in &coordinates {
            if *x == 0 {
                return Err(ProtocolError::InvalidParameters(format!(
                    "{node} has x-coordinate 0, where the secret is"
                )));
            }
            if !seen.insert(*x) {
                return Err(ProtocolError::InvalidParameters(format!(
                    "x-coordinate {x} is used twice"
                )));
            }
        }
        let n = coordinates.len();
        if threshold < 2 || usize::from(threshold) > n {
            return Err(ProtocolError::InvalidParameters(format!(
                "threshold {threshold} must be between 2 and the number of participants ({n})"
            )));
        }
        Ok(Self {
            coordinates,
            threshold,
        })
    }

    pub(crate) fn threshold(&self) -> u16 {
        self.threshold
    }

    pub(crate) fn len(&self) -> usize {
        self.coordinates.len()
    }

    /// The participants and their x-coordinates, by node id.
    pub(crate) fn coordinates(&self) -> &BTreeMap<NodeId, u16> {
        &self.coordinates
    }

    pub(crate) fn coordinate(&self, node: NodeId) -> Option<u16> {
        self.coordinates.get(&node).copied()
    }

    pub(crate) fn contains(&self, node: NodeId) -> bool {
        self.coordinates.contains_key(&node)
    }

    /// The participants, ascending.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.coordinates.keys().copied()
    }
}

/// The public parameters of one redistribution session, as every party
/// must see them.
pub(crate) struct VsrParams<C: Ciphersuite> {
    /// The key's scheme (bound into every hash: an ECDSA session and a FROST
    /// one never accept each other's messages).
    pub(crate) scheme: Scheme,
    pub(crate) kind: ReshareKind,
    pub(crate) session: SessionId,
    pub(crate) me: NodeId,
    /// The current participant set and threshold `t`.
    pub(crate) old: Committee,
    /// `D`: at least `t` members of `old`.
    pub(crate) dealers: Vec<NodeId>,
    /// `N'` and `t'`.
    pub(crate) new: Committee,
    /// `Y`, the group key of the current epoch.
    pub(crate) group_key: Element<C>,
    /// `Y_i` of the current epoch, by node id (at least every dealer's).
    pub(crate) verifying_shares: BTreeMap<NodeId, Element<C>>,
}

/// What a finished redistribution leaves with a party.
pub(crate) struct VsrOutput<C: Ciphersuite> {
    /// `s'_j` for a new participant; `None` for a dealer that leaves.
    pub(crate) share: Option<Zeroizing<SigningShare<C>>>,
    /// `Y'_k` of every new participant.
    pub(crate) verifying_shares: BTreeMap<NodeId, Element<C>>,
    /// `Y`, unchanged.
    pub(crate) group_key: Element<C>,
    /// `Σ_i C_{i,l}`: the Feldman commitment of the new sharing (`t'` points).
    pub(crate) group_commitment: Vec<Element<C>>,
    /// `t'`.
    pub(crate) threshold: u16,
    /// `N'` with its x-coordinates.
    pub(crate) participants: Committee,
}

impl<C: Ciphersuite> std::fmt::Debug for VsrOutput<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VsrOutput")
            .field("share", &self.share.as_ref().map(|_| "<redacted>"))
            .field("threshold", &self.threshold)
            .field("participants", &self.participants)
            .finish_non_exhaustive()
    }
}
