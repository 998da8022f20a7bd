//! DKLs23 signing (eprint 2023/765, Protocol 3.6): the signer state machine
//! each node runs, and the coordinator's aggregator that turns the signers'
//! final values into a verified, low-S ECDSA signature.
//!
//! - `start`: phase 1 → round 1: to each other signer, a commitment to our
//!   nonce point and the first message of the pairwise multiplication (OT
//!   extension), direct (end-to-end encrypted).
//! - `step(round 1)`: phase 2 → round 2: to each other signer, the
//!   multiplication's second message, the decommitment and the
//!   consistency values, direct.
//! - `step(round 2)`: phase 3 checks every counterparty (commitments,
//!   multiplication consistency) → finished, with one message to the
//!   coordinator: `x(R) ‖ u_i ‖ w_i` (32 bytes each).
//! - The aggregator computes `s = Σw / Σu`, normalizes to low S, verifies
//!   under the (child) key with k256 and computes the recovery id.
//!
//! The signer never takes the message from the coordinator's relay: it is
//! given the 32-byte digest (and derivation path) it was authorized to sign,
//! and DKLs23 binds every message to the digest, the signer set, the key
//! and a sign id derived from the session, so a relay that shows signers
//! different digests makes the signing abort. Per-signature secrets live
//! only in dkls23's kept-data types, which are moved from state to state
//! (never copied) and zeroized on drop; after finishing or failing nothing
//! is left and the instance refuses to step again.

use std::collections::{BTreeMap, BTreeSet};

use dkls23::protocols::signing::{
    KeepPhase1to2, KeepPhase2to3, SignData, TransmitPhase1to2, TransmitPhase2to3, UniqueKeep1to2,
    UniqueKeep2to3,
};
use dkls23::protocols::{PartiesMessage, PartyIndex};
use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use k256::elliptic_curve::PrimeField as _;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::sec1::ToEncodedPoint as _;
use k256::{FieldBytes, Scalar, U256};
use sha2::Digest as _;

use super::common::{Curve, Party, Roster, blame, decode, encode_secret, hasher, internal};
use super::derivation::{DerivationPath, derive_from};
use super::keys::{EcdsaKeyShare, EcdsaPublicKeyPackage, parse_public_key};
use crate::rounds::{Expect, parse, sort_inbound};
use crate::{Message, NodeId, Protocol, ProtocolError, Recipient, Scheme, SessionId, Transition};

/// Domain of the DKLs23 sign id.
const SIGN_ID_DOMAIN: &[u8] = b"sigil/v1/ecdsa-sign/sign-id";
/// The round of the signers' final messages to the coordinator.
const FINAL_ROUND: u16 = 3;
/// `x(R) ‖ u ‖ w`.
const FINAL_LEN: usize = 96;

/// The DKLs23 sign id: binds the signing transcript to Sigil's session,
/// the digest and the derivation path (DKLs23 itself adds the key, the
/// signer set and the digest).
fn sign_id(session: SessionId, digest: &[u8; 32], path: &DerivationPath) -> [u8; 32] {
    let mut h = hasher(SIGN_ID_DOMAIN);
    h.update([Scheme::EcdsaSecp256k1.tag()]);
    h.update(session.as_bytes());
    h.update(digest);
    h.update((path.indices().len() as u32).to_be_bytes());
    for index in path.indices() {
        h.update(index.to_be_bytes());
    }
    h.finalize().into()
}

/// Checks a signer set against a key: no duplicates, every signer holds a
/// share, and exactly `t` of them (DKLs23 signs with exactly `t` parties).
fn check_signers(
    roster: &Roster,
    threshold: u16,
    signers: &[NodeId],
) -> Result<BTreeSet<NodeId>, ProtocolError> {
    let mut set = BTreeSet::new();
    for &node in signers {
        if !set.insert(node) {
            return Err(ProtocolError::InvalidParameters(format!(
                "{node} appears twice in the signer list"
            )));
        }
        if !roster.contains(node) {
            return Err(ProtocolError::InvalidParameters(format!(
                "{node} holds no share of this key"
            )));
        }
    }
    if set.len() != usize::from(threshold) {
        return Err(ProtocolError::InvalidParameters(format!(
            "DKLs23 signs with exactly the threshold of {threshold} signers, got {}",
            set.len()
        )));
    }
    Ok(set)
}

enum State {
    /// Constructed; `start` not called yet.
    Ready { party: Box<Party> },
    /// Round 1 sent.
    AwaitRound1 {
        party: Box<Party>,
        unique: UniqueKeep1to2<Curve>,
        kept: BTreeMap<PartyIndex, KeepPhase1to2<Curve>>,
    },
    /// Round 2 sent.
    AwaitRound2 {
        party: Box<Party>,
        unique: UniqueKeep2to3<Curve>,
        kept: BTreeMap<PartyIndex, KeepPhase2to3<Curve>>,
    },
    /// Final values sent, or failed: the key share and every secret are gone.
    Done,
}

/// One signer's DKLs23 signing session.
pub(crate) struct Signer {
    session: SessionId,
    me: NodeId,
    index: PartyIndex,
    /// The key's participants (party indices).
    roster: Roster,
    /// The other signers.
    others: BTreeSet<NodeId>,
    data: SignData,
    state: State,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcdsaSigner")
            .field("session", &self.session)
            .field("me", &self.me)
            .field("others", &self.others)
            .field("round", &self.expected_round())
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub(crate) fn new(
        session: SessionId,
        me: NodeId,
        signers: &[NodeId],
        share: &EcdsaKeyShare,
        digest: [u8; 32],
        path: &DerivationPath,
    ) -> Result<Self, ProtocolError> {
        if share.node_id() != me {
            return Err(ProtocolError::InvalidParameters(format!(
                "key share belongs to {}, not {me}",
                share.node_id()
            )));
        }
        let roster = share.package().roster()?;
        let set = check_signers(&roster, share.threshold(), signers)?;
        if !set.contains(&me) {
            return Err(ProtocolError::InvalidParameters(format!(
                "{me} is not in the signer list"
            )));
        }
        let index = roster.index(me)?;
        let mut party = share.party()?;
        if !path.is_master() {
            party = Box::new(
                party
                    .derive_from_path(&path.to_string(), |_| String::new())
                    .map_err(|e| {
                        ProtocolError::InvalidParameters(format!(
                            "cannot derive {path}: {}",
                            e.description
                        ))
                    })?,
            );
        }
        let others: BTreeSet<NodeId> = set.into_iter().filter(|n| *n != me).collect();
        let counterparties = others
            .iter()
            .map(|n| roster.index(*n))
            .collect::<Result<Vec<_>, _>>()?;
        let data = SignData {
            sign_id: sign_id(session, &digest, path).to_vec(),
            counterparties,
            message_hash: digest,
        };
        Ok(Self {
            session,
            me,
            index,
            roster,
            others,
            data,
            state: State::Ready { party },
        })
    }

    fn direct(
        &self,
        round: u16,
        receiver: PartyIndex,
        payload: Vec<u8>,
    ) -> Result<Message, ProtocolError> {
        let to = self
            .roster
            .node(receiver)
            .ok_or_else(|| internal(format!("no participant with party index {receiver}")))?;
        Ok(Message {
            session: self.session,
            round,
            from: self.me,
            to: Recipient::Node(to),
            payload,
        })
    }

    /// A payload's DKLs23 sender and receiver must be its actual sender and us.
    fn check_parties(
        &self,
        from: NodeId,
        sender: PartyIndex,
        receiver: PartyIndex,
    ) -> Result<(), ProtocolError> {
        if sender != self.roster.index(from)? || receiver != self.index {
            return Err(ProtocolError::Malformed {
                from,
                reason: "payload names other DKLs23 parties than its sender and recipient".into(),
            });
        }
        Ok(())
    }

    fn begin(&mut self, party: Box<Party>) -> Result<Vec<Message>, ProtocolError> {
        let (unique, kept, transmit) = party
            .sign_phase1(&self.data)
            .map_err(|e| blame(&self.roster, self.index, e))?;
        let out = transmit
            .iter()
            .map(|m| {
                let mut payload = encode_secret(m)?;
                self.direct(1, m.parties.receiver, std::mem::take(&mut *payload))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.state = State::AwaitRound1 {
            party,
            unique,
            kept,
        };
        Ok(out)
    }

    /// This round's direct messages, one from every other signer, decoded
    /// and checked to name the right sender and receiver party indices.
    fn receive<T: serde::de::DeserializeOwned>(
        &self,
        round: u16,
        what: &str,
        inbound: Vec<Message>,
        parties: impl Fn(&T) -> &PartiesMessage,
    ) -> Result<Vec<T>, ProtocolError> {
        let expect = Expect {
            direct: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(
            self.session,
            round,
            Some(self.me),
            &self.others,
            expect,
            inbound,
        )?;
        let mut received = Vec::with_capacity(sorted.direct.len());
        for (&from, bytes) in &sorted.direct {
            let m: T = parse(from, what, decode(bytes))?;
            let p = parties(&m);
            self.check_parties(from, p.sender, p.receiver)?;
            received.push(m);
        }
        Ok(received)
    }

    fn round1(
        &mut self,
        party: Box<Party>,
        unique: UniqueKeep1to2<Curve>,
        kept: BTreeMap<PartyIndex, KeepPhase1to2<Curve>>,
        inbound: Vec<Message>,
    ) -> Result<Transition<()>, ProtocolError> {
        let received: Vec<TransmitPhase1to2> = self.receive(
            1,
            "signing round-1 message",
            inbound,
            |m: &TransmitPhase1to2| &m.parties,
        )?;
        let (unique, kept, transmit) = party
            .sign_phase2(&self.data, unique, kept, &received)
            .map_err(|e| blame(&self.roster, self.index, e))?;
        drop(received);
        let out = transmit
            .iter()
            .map(|m| {
                let mut payload = encode_secret(m)?;
                self.direct(2, m.parties.receiver, std::mem::take(&mut *payload))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.state = State::AwaitRound2 {
            party,
            unique,
            kept,
        };
        Ok(Transition::Continue(out))
    }

    fn round2(
        &mut self,
        party: Box<Party>,
        unique: UniqueKeep2to3<Curve>,
        kept: BTreeMap<PartyIndex, KeepPhase2to3<Curve>>,
        inbound: Vec<Message>,
    ) -> Result<Transition<()>, ProtocolError> {
        let received: Vec<TransmitPhase2to3<Curve>> = self.receive(
            2,
            "signing round-2 message",
            inbound,
            |m: &TransmitPhase2to3<Curve>| &m.parties,
        )?;
        let (x_coordinate, values) = party
            .sign_phase3(&self.data, unique, kept, &received)
            .map_err(|e| blame(&self.roster, self.index, e))?;
        drop(received);
        drop(party);
        let mut payload = Vec::with_capacity(FINAL_LEN);
        payload.extend_from_slice(&hex::decode(&x_coordinate).map_err(internal)?);
        payload.extend_from_slice(&dkls23::utilities::hashes::scalar_to_bytes::<Curve>(
            &values.u,
        ));
        payload.extend_from_slice(&dkls23::utilities::hashes::scalar_to_bytes::<Curve>(
            &values.w,
        ));
        if payload.len() != FINAL_LEN {
            return Err(internal("final values are not 96 bytes"));
        }
        Ok(Transition::Finished {
            messages: vec![Message {
                session: self.session,
                round: FINAL_ROUND,
                from: self.me,
                to: Recipient::Coordinator,
                payload,
            }],
            output: (),
        })
    }
}

impl Protocol for Signer {
    type Output = ();

    fn session_id(&self) -> SessionId {
        self.session
    }

    fn expected_round(&self) -> u16 {
        match self.state {
            State::Ready { .. } | State::AwaitRound1 { .. } => 1,
            State::AwaitRound2 { .. } => 2,
            State::Done => FINAL_ROUND,
        }
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Ready { party } => self.begin(party),
            _ => Err(ProtocolError::OutOfOrder("signing already started".into())),
        }
    }

    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<()>, ProtocolError> {
        // Whatever happens, the kept data is consumed: a failed or finished
        // signer is `Done` and refuses to step again.
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitRound1 {
                party,
                unique,
                kept,
            } => self.round1(party, unique, kept, inbound),
            State::AwaitRound2 {
                party,
                unique,
                kept,
            } => self.round2(party, unique, kept, inbound),
            State::Ready { .. } => Err(ProtocolError::OutOfOrder(
                "signing stepped before start".into(),
            )),
            State::Done => Err(ProtocolError::OutOfOrder(
                "signing already finished or failed: its secrets are gone".into(),
            )),
        }
    }
}

/// A verified ECDSA signature over a 32-byte digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// `r`, big-endian.
    pub r: [u8; 32],
    /// `s`, big-endian, always low-S (BIP-62 / BIP-146).
    pub s: [u8; 32],
    /// Public key recovery id (0..=3): bit 0 is the parity of R's y, bit 1
    /// says R's x was reduced mod n. Ethereum's `v` is derived from it.
    pub recovery_id: u8,
    /// The key the signature verifies under (the derived child key when a
    /// derivation path was used), 33-byte SEC1 compressed.
    pub public_key: Vec<u8>,
}

impl EcdsaSignature {
    /// The 64-byte `r ‖ s` encoding.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }
}

/// The coordinator's side of one ECDSA signing session (pure: no I/O). It
/// receives exactly one final message per signer and returns a signature
/// that verifies under the (child) key, or an error and nothing.
#[derive(Debug)]
pub struct EcdsaAggregator {
    session: SessionId,
    signers: BTreeSet<NodeId>,
    digest: [u8; 32],
    key: VerifyingKey,
    public_key: Vec<u8>,
}

impl EcdsaAggregator {
    /// An aggregator for `signers` signing `digest` with the key of
    /// `public_key_package` ([`EcdsaPublicKeyPackage::to_bytes`]) derived along `path`.
    pub fn new(
        session: SessionId,
        public_key_package: &[u8],
        signers: &[NodeId],
        digest: [u8; 32],
        path: &DerivationPath,
    ) -> Result<Self, ProtocolError> {
        let package = EcdsaPublicKeyPackage::from_bytes(public_key_package)?;
        let signers = check_signers(&package.roster()?, package.threshold(), signers)?;
        let (key, _) = derive_from(package.public_key(), package.chain_code(), path)?;
        let public_key = key.to_encoded_point(true).as_bytes().to_vec();
        Ok(Self {
            session,
            signers,
            digest,
            key: VerifyingKey::from(key),
            public_key,
        })
    }

    /// The key signatures must verify under (SEC1 compressed).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// Combines the signers' final messages (exactly one per signer,
    /// addressed to the coordinator, round 3) into a verified low-S signature.
    pub fn aggregate(&mut self, finals: Vec<Message>) -> Result<EcdsaSignature, ProtocolError> {
        let expect = Expect {
            coordinator: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(
            self.session,
            FINAL_ROUND,
            None,
            &self.signers,
            expect,
            finals,
        )?;
        let mut by_x: BTreeMap<[u8; 32], Vec<NodeId>> = BTreeMap::new();
        let mut sum_u = Scalar::ZERO;
        let mut sum_w = Scalar::ZERO;
        for (&from, payload) in &sorted.coordinator {
            if payload.len() != FINAL_LEN {
                return Err(ProtocolError::Malformed {
                    from,
                    reason: format!(
                        "final values of {} bytes, expected {FINAL_LEN}",
                        payload.len()
                    ),
                });
            }
            let mut x = [0u8; 32];
            x.copy_from_slice(&payload[..32]);
            by_x.entry(x).or_default().push(from);
            sum_u += canonical_scalar(from, "u", &payload[32..64])?;
            sum_w += canonical_scalar(from, "w", &payload[64..])?;
        }
        if by_x.len() > 1 {
            // An honest signer's x(R) is the sum of the nonce points it was
            // sent; a signer that sent different points to different signers
            // splits them, and the majority need not be honest: nobody is named.
            let views: Vec<&Vec<NodeId>> = by_x.values().collect();
            return Err(ProtocolError::Misbehaviour {
                culprits: Vec::new(),
                reason: format!(
                    "signers disagree on R's x coordinate (groups {views:?}): a signer sent \
                     inconsistent nonce points"
                ),
            });
        }
        let Some(x) = by_x.into_keys().next() else {
            return Err(internal("no final values"));
        };
        // ECDSA: r = x(R) mod n.
        let r = <Scalar as Reduce<U256>>::reduce_bytes(&FieldBytes::from(x));
        let inverse = Option::<Scalar>::from(sum_u.invert()).ok_or_else(|| {
            ProtocolError::InvalidSignature("the signers' u values sum to zero".into())
        })?;
        let s = sum_w * inverse;
        let signature = Signature::from_scalars(r, s)
            .map_err(|e| ProtocolError::InvalidSignature(format!("r or s is zero: {e}")))?;
        // Low-S (BIP-62): both s and n - s verify; Bitcoin accepts only the low one.
        let signature = signature.normalize_s().unwrap_or(signature);
        self.key
            .verify_prehash(&self.digest, &signature)
            .map_err(|_| {
                ProtocolError::InvalidSignature(
                    "aggregated signature does not verify: a signer sent wrong u or w values \
                     (DKLs23 cannot tell which)"
                        .into(),
                )
            })?;
        let recovery_id =
            RecoveryId::trial_recovery_from_prehash(&self.key, &self.digest, &signature).map_err(
                |_| ProtocolError::InvalidSignature("no recovery id recovers the key".into()),
            )?;
        let (r, s) = signature.split_bytes();
        Ok(EcdsaSignature {
            r: r.into(),
            s: s.into(),
            recovery_id: recovery_id.to_byte(),
            public_key: self.public_key.clone(),
        })
    }
}

/// A scalar from a signer, which must be canonical (< n).
fn canonical_scalar(from: NodeId, what: &str, bytes: &[u8]) -> Result<Scalar, ProtocolError> {
    let repr: [u8; 32] = bytes.try_into().map_err(|_| ProtocolError::Malformed {
        from,
        reason: format!("{what} is not 32 bytes"),
    })?;
    Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(repr))).ok_or_else(|| {
        ProtocolError::Malformed {
            from,
            reason: format!("{what} is not a canonical scalar"),
        }
    })
}

/// Verifies a 64-byte `r ‖ s` ECDSA signature over a 32-byte digest under a
/// 33-byte SEC1 compressed key. High-S signatures are refused (Sigil only
/// produces low-S ones, and Bitcoin only accepts those).
pub fn verify(public_key: &[u8], digest: &[u8; 32], signature: &[u8]) -> Result<(), ProtocolError> {
    let key = parse_public_key(public_key)?;
    let key = VerifyingKey::from_sec1_bytes(&key)
        .map_err(|_| ProtocolError::InvalidParameters("invalid secp256k1 public key".into()))?;
    if signature.len() != 64 {
        return Err(ProtocolError::InvalidSignature(format!(
            "ECDSA signature must be 64 bytes (r ‖ s), got {}",
            signature.len()
        )));
    }
    let signature = Signature::from_slice(signature)
        .map_err(|_| ProtocolError::InvalidSignature("r or s is zero or not below n".into()))?;
    if signature.normalize_s().is_some() {
        return Err(ProtocolError::InvalidSignature(
            "high-S signature (not BIP-62 normalized)".into(),
        ));
    }
    key.verify_prehash(digest, &signature)
        .map_err(|_| ProtocolError::InvalidSignature("signature does not verify".into()))
}
