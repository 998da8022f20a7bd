//! Threshold ECDSA over secp256k1 with DKLs23 (Doerner, Kondi, Lee, shelat:
//! "Threshold ECDSA in Three Rounds", IACR eprint 2023/765), as pure
//! sans-I/O state machines around the `dkls23` crate's low-level phases.
//!
//! Why DKLs23: Bitcoin (pre-Taproot), Ethereum and most other chains verify
//! plain ECDSA, which FROST cannot produce. DKLs23 signs with any `t` of
//! `n` parties in three rounds using oblivious-transfer-based two-party
//! multiplication (no Paillier, no range proofs), and no party ever holds
//! the private key.
//!
//! | | |
//! | --- | --- |
//! | DKG | [`new_dkg`]: 4 rounds, see `dkg` (commit/reveal with echo checks) |
//! | refresh | [`new_refresh`]: 4 rounds, see `refresh` (dkls23's complete refresh: new shares and OT state, same key; also completes hollow shares from a redistribution) |
//! | refresh / reshare of a key | `engine::new_reshare`: 7 rounds, see `reshare` (verifiable secret redistribution to the new set and threshold, then the complete refresh among the new participants) |
//! | signing | [`new_signer`]: 2 rounds between signers + 1 message to the coordinator, see `sign` |
//! | aggregation | [`EcdsaAggregator`] (coordinator, pure): `s = Σw / Σu`, low-S, verified, recovery id |
//! | keys | 33-byte SEC1 compressed; [`EcdsaPublicKeyPackage`] = key, chain code, `t`, participants, verifying shares |
//! | signatures | [`EcdsaSignature`]: 64-byte `r‖s` (low-S) + recovery id; [`verify`] |
//! | derivation | non-hardened BIP-32 ([`DerivationPath`], [`derive_public_key`]) |
//!
//! DKLs23 numbers parties `1..=n`: a key's participants sorted ascending get
//! party indices 1, 2, … (at most 255 participants). Signing takes exactly
//! `t` signers (dkls23 requires it) and a 32-byte digest (the caller hashes
//! the message the chain's way: SHA-256d, Keccak-256, …).
//!
//! Error attribution follows dkls23's aborts: a party that fails a check
//! protecting the reusable OT state (`AbortKind::BanCounterparty`) is named
//! in [`ProtocolError::Misbehaviour`] and must be excluded from every future
//! session with the key (DKLs23 §3.5: continuing to sign with it leaks the
//! key); see `common::blame` for the rest.
//!
//! Arithmetic: dkls23 computes with k256 0.14; everything Sigil computes
//! itself (aggregation, verification, recovery ids, public derivation) uses
//! k256 0.13, and the two meet only as bytes.

mod common;
mod derivation;
mod dkg;
mod keys;
mod refresh;
mod reshare;
mod sign;

pub use self::derivation::{DerivationPath, derive_public_key};
pub use self::keys::{EcdsaKeyShare, EcdsaPublicKeyPackage};
pub use self::refresh::RefreshStart;
pub use self::sign::{EcdsaAggregator, EcdsaSignature, verify};
use crate::{NodeId, Protocol, ProtocolError, SessionId};

/// A boxed ECDSA DKG state machine.
pub type EcdsaDkgProtocol = Box<dyn Protocol<Output = EcdsaDkgOutput> + Send>;
/// A boxed ECDSA signing state machine; its only output is the final
/// message it sends to the coordinator.
pub type EcdsaSignerProtocol = Box<dyn Protocol<Output = ()> + Send>;
/// A boxed ECDSA share refresh state machine.
pub type EcdsaRefreshProtocol = Box<dyn Protocol<Output = EcdsaRefreshOutput> + Send>;

/// Creates this node's DKG state machine for `participants` (which must
/// include `me`; any order, at most 255) and a `threshold`-of-n key
/// (`2 ≤ threshold ≤ n`). Randomness comes from the operating system
/// (dkls23 draws its own).
pub fn new_dkg(
    session: SessionId,
    me: NodeId,
    participants: &[NodeId],
    threshold: u16,
) -> Result<EcdsaDkgProtocol, ProtocolError> {
    Ok(Box::new(dkg::Dkg::new(
        session,
        me,
        participants,
        threshold,
    )?))
}

/// Creates this node's share refresh state machine: all `participants`
/// (any order, must include `me`; party index = position in ascending
/// order + 1, which is also the x-coordinate of a hollow share) run DKLs23's
/// complete refresh of a `threshold`-of-n key from `start`, and each leaves
/// with a new share of the same key (same chain code), fresh pairwise
/// multiplication state and updated verifying shares. Every participant
/// must take part: a refresh cannot leave anyone out. A
/// [`RefreshStart::Hollow`] start is checked first (its scalar against its
/// verifying share, the verifying shares against the group key) and refused
/// with [`ProtocolError::InvalidParameters`] if either fails.
pub fn new_refresh(
    session: SessionId,
    me: NodeId,
    participants: &[NodeId],
    threshold: u16,
    start: RefreshStart,
) -> Result<EcdsaRefreshProtocol, ProtocolError> {
    Ok(Box::new(refresh::Refresh::new(
        session,
        me,
        participants,
        threshold,
        start,
    )?))
}

/// Relay rounds a refresh takes after the start.
pub fn refresh_steps() -> usize {
    4
}

/// This node's refresh or reshare of an ECDSA key (see `reshare`); the
/// engine's `new_reshare` documents the parameters.
pub(crate) fn new_reshare<R: rand_core::RngCore + rand_core::CryptoRng>(
    session: SessionId,
    me: NodeId,
    spec: &crate::engine::ReshareSpec,
    current_public_key_package: &[u8],
    share: Option<&EcdsaKeyShare>,
    rng: &mut R,
) -> Result<crate::engine::ReshareProtocol, ProtocolError> {
    Ok(Box::new(reshare::EcdsaReshare::new(
        session,
        me,
        spec,
        current_public_key_package,
        share,
        rng,
    )?))
}

/// Relay rounds a refresh or reshare of an ECDSA key takes after the start:
/// the redistribution's 3, then [`refresh_steps`].
pub(crate) fn reshare_steps() -> usize {
    reshare::steps()
}

/// Creates this node's signing state machine: exactly `threshold` `signers`
/// (including `me`, all holding shares of the key) sign the 32-byte
/// `digest` with the key of `share` derived along `path` (`m` for the key
/// itself).
pub fn new_signer(
    session: SessionId,
    me: NodeId,
    signers: &[NodeId],
    share: &EcdsaKeyShare,
    digest: [u8; 32],
    path: &DerivationPath,
) -> Result<EcdsaSignerProtocol, ProtocolError> {
    Ok(Box::new(sign::Signer::new(
        session, me, signers, share, digest, path,
    )?))
}

/// What a finished DKG leaves with a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdsaDkgOutput {
    /// This node's share (secret), to be encrypted at rest.
    pub key_share: EcdsaKeyShare,
    /// The group key, 33-byte SEC1 compressed.
    pub public_key: Vec<u8>,
    /// [`EcdsaPublicKeyPackage::to_bytes`] (public): what the coordinator stores.
    pub public_key_package: Vec<u8>,
}

/// What a finished refresh leaves with a node: the same shape as
/// [`EcdsaDkgOutput`]. The new share replaces the old one only once every
/// participant has finished (refreshed and old shares do not sign together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdsaRefreshOutput {
    /// This node's new share (secret), to be encrypted at rest.
    pub key_share: EcdsaKeyShare,
    /// The group key (unchanged), 33-byte SEC1 compressed.
    pub public_key: Vec<u8>,
    /// [`EcdsaPublicKeyPackage::to_bytes`] (public) with the refreshed
    /// verifying shares: what the coordinator stores.
    pub public_key_package: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::common::Curve;
    use super::*;
    use crate::{Message, Recipient, Transition};

    fn n(id: u16) -> NodeId {
        NodeId::new(id).expect("nonzero")
    }

    /// Runs bare DKG parties (no envelope) to completion.
    fn bare_dkg(nodes: &[NodeId], threshold: u16) -> BTreeMap<NodeId, EcdsaDkgOutput> {
        let session = SessionId::from_bytes([0xd1; 16]);
        let mut parties: BTreeMap<NodeId, EcdsaDkgProtocol> = nodes
            .iter()
            .map(|&me| (me, new_dkg(session, me, nodes, threshold).expect("dkg")))
            .collect();
        let mut messages: Vec<Message> = parties
            .values_mut()
            .flat_map(|p| p.start().expect("start"))
            .collect();
        let mut outputs = BTreeMap::new();
        while outputs.len() < nodes.len() {
            let mut next = Vec::new();
            for (me, party) in parties.iter_mut() {
                let inbound = messages
                    .iter()
                    .filter(|m| {
                        m.from != *me
                            && (m.to == Recipient::Broadcast || m.to == Recipient::Node(*me))
                    })
                    .cloned()
                    .collect();
                match party.step(inbound).expect("step") {
                    Transition::Continue(out) => next.extend(out),
                    Transition::Finished { messages, output } => {
                        assert!(messages.is_empty());
                        outputs.insert(*me, output);
                    }
                }
            }
            messages = next;
        }
        outputs
    }

    /// One 2-of-3 key on sparse node ids, shared by the tests below (a DKG
    /// takes seconds in debug builds).
    fn cached_dkg() -> &'static BTreeMap<NodeId, EcdsaDkgOutput> {
        static DKG: std::sync::OnceLock<BTreeMap<NodeId, EcdsaDkgOutput>> =
            std::sync::OnceLock::new();
        DKG.get_or_init(|| bare_dkg(&[n(2), n(5), n(9)], 2))
    }

    #[test]
    fn public_derivation_matches_dkls23_party_derivation() {
        let dkg = cached_dkg();
        let share = &dkg[&n(5)].key_share;
        let package = share.package().clone();
        let party = share.party().expect("party");
        for path in ["m", "m/0", "m/7/0/2147483647", "m/44/60/0/0/5"] {
            let path: DerivationPath = path.parse().expect("path");
            let child = party
                .derive_from_path(&path.to_string(), |_| String::new())
                .expect("dkls23 derivation");
            let (key, chain_code) = derive_public_key(&package, &path).expect("derive");
            assert_eq!(
                key,
                dkls23::utilities::hashes::point_to_bytes::<Curve>(&child.pk),
                "{path}"
            );
            assert_eq!(&chain_code, child.chain_code(), "{path}");
            // And step by step with derive_child.
            let mut stepwise = party.as_ref().clone();
            for index in path.indices() {
                stepwise = stepwise
                    .derive_child(*index, |_| String::new())
                    .expect("child");
            }
            assert_eq!(stepwise.pk, child.pk, "{path}");
        }
        // The master path is the group key itself.
        let (master, chain_code) =
            derive_public_key(&package, &DerivationPath::master()).expect("derive");
        assert_eq!(master, dkg[&n(5)].public_key);
        assert_eq!(&chain_code, share.chain_code());
    }

    #[test]
    fn key_share_round_trips_and_checks_its_parts() {
        let nodes = [n(2), n(5), n(9)];
        let dkg = cached_dkg();
        let share = &dkg[&n(5)].key_share;
        let bytes = share.to_bytes();
        assert_eq!(EcdsaKeyShare::from_bytes(&bytes).as_ref(), Ok(share));
        // Another node's share under this node's id, or another key's package, is refused.
        let other = dkg[&n(9)].key_share.to_bytes();
        let mut swapped = other.to_vec();
        swapped[6..8].copy_from_slice(&5u16.to_be_bytes());
        assert!(matches!(
            EcdsaKeyShare::from_bytes(&swapped),
            Err(ProtocolError::InvalidParameters(msg)) if msg.contains("another node")
        ));
        // Every truncation fails cleanly (sampled: the party is large).
        let step = (bytes.len() / 200).max(1);
        for len in (0..bytes.len()).step_by(step) {
            assert!(EcdsaKeyShare::from_bytes(&bytes[..len]).is_err(), "{len}");
        }
        // Flipped bytes in the serialized party never panic.
        for at in (60..bytes.len()).step_by(step) {
            let mut flipped = bytes.to_vec();
            flipped[at] ^= 0x80;
            let _ = EcdsaKeyShare::from_bytes(&flipped);
        }
        let debug = format!("{share:?}");
        assert!(debug.contains("redacted"), "{debug}");
        assert_eq!(share.scheme(), crate::Scheme::EcdsaSecp256k1);
        assert_eq!(share.threshold(), 2);
        assert_eq!(share.participants(), &nodes);
        assert_eq!(share.public_key_package(), dkg[&n(2)].public_key_package);
    }
}
