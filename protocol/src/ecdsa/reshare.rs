//! Refresh and reshare of threshold ECDSA (DKLs23) keys: one session in two
//! phases, driven through `engine::new_reshare`.
//!
//! A DKLs23 key share is more than a Shamir share: it carries pairwise
//! OT-based multiplication state and zero-sharing seeds tied to the
//! participant set. A redistribution therefore cannot simply hand out new
//! scalars; it hands out *hollow* shares and then completes them:
//!
//! 1. **Phase 1, rounds 1–3: verifiable secret redistribution**
//!    (`crate::reshare`, `Vsr<frost_secp256k1::Secp256K1Sha256>`: the same
//!    group and scalar field, secp256k1). Sigil's ECDSA keys evaluate
//!    shares at the 1-based position of the node in the ascending
//!    participant list (the DKLs23 party index), so both the old and the new
//!    committee use [`Coordinates::Position`]. The group key `Y` and the
//!    dealers' verifying shares `Y_i` come from the current
//!    [`EcdsaPublicKeyPackage`] (version 2), a dealer's `s_i` from its
//!    [`EcdsaKeyShare`] (checked to be this node's share of exactly that
//!    package). Each new participant `j` leaves phase 1 with `s'_j` and
//!    every new verifying share `Y'_k`, at the *new* positions.
//! 2. **Phase 2, rounds 4–7: DKLs23's complete refresh among the new
//!    participants** (`super::refresh`, [`RefreshStart::Hollow`] built from
//!    the phase-1 output, the unchanged group key and the key's BIP-32 chain
//!    code). It re-randomizes the shares once more and sets up fresh
//!    pairwise multiplication and zero-sharing state; its output is the new
//!    epoch: an [`EcdsaKeyShare`] per new participant and the refreshed
//!    version-2 package. The refresh's own rounds 1–4 are this session's
//!    rounds 4–7: outbound messages are renumbered `+3`, inbound ones must
//!    carry the session's current round (a message of phase 1 replayed in
//!    phase 2 is [`ProtocolError::WrongRound`]) and are renumbered `−3`.
//!
//! | round | phase | who sends | what |
//! |---|---|---|---|
//! | 1 | VSR 1 | each dealer | Broadcast: hash commitment to its vector |
//! | 2 | VSR 2 | each dealer; every party | Node(j): subshare `f_i(x'_j)`; Broadcast: echo (+ a dealer's vector) |
//! | 3 | VSR 3 | every party | Broadcast: echo of the vectors |
//! | 4 | refresh 1 | each new participant | Node(j): zero-constant polynomial evaluation; Broadcast: context digest ‖ verifying share |
//! | 5 | refresh 2 | each new participant | Broadcast: echo ‖ proof commitment; Node(j): zero-share seed commitment |
//! | 6 | refresh 3 | each new participant | Broadcast: echo ‖ proof; Node(j): seed opening ‖ base-OT setup |
//! | 7 | refresh 4 | each new participant | Broadcast: echo of round 6 |
//! | — | | | step 7: the new epoch |
//!
//! Every party of the session (dealers ∪ new participants) takes part in
//! every round and finishes at the same step, `3 + ecdsa::refresh_steps()`
//! = 7 steps after the start (`engine::reshare_steps`). The phase-1 output
//! arrives at step 3, where a new participant starts the refresh and returns
//! its round-4 messages. A dealer that is not a new participant sends
//! nothing in phase 2: at each of rounds 4–7 it accepts exactly one
//! broadcast from each new participant (the relay delivers broadcasts to
//! every party), checked for session, round and sender and otherwise
//! ignored, and finishes at step 7 with no share, the unchanged public key
//! and an **empty** `public_key_package`: the new epoch's package exists
//! only once the refresh among the new participants has re-randomized the
//! verifying shares, which a leaving dealer does not compute (the
//! intermediate, phase-1 verifying shares are never published as a package).
//!
//! # Keys without verifying shares (package version 1)
//!
//! The redistribution checks every dealer's contribution against its
//! verifying share `Y_i`, which packages written before verifying shares
//! were kept do not have. Such a key:
//!
//! - **refresh** (`ReshareKind::Refresh`): phase 1 is skipped. Rounds 1–3
//!   are idle (nobody sends anything, and anything received is refused) and
//!   rounds 4–7 run the complete refresh from every participant's existing
//!   share ([`RefreshStart::Existing`]), which learns the verifying shares in
//!   its round 1 (checked to interpolate to the group key) and outputs a
//!   version-2 package. Every participant must therefore hold and supply its
//!   current share (the dealer list is validated but plays no part). The
//!   step count is the same as for any other ECDSA session, so the
//!   coordinator drives every ECDSA refresh or reshare the same way.
//! - **reshare** (`ReshareKind::Reshare`): refused with
//!   [`ProtocolError::InvalidParameters`]; refresh the key once (which
//!   records its verifying shares), then reshare.
//!
//! # Secrets
//!
//! A dealer's `s_i` is read from its share into a zeroizing buffer and
//! handed to the redistribution as a (zeroizing) frost `SigningShare`; a
//! new participant's `s'_j` goes from the phase-1 output into a zeroizing
//! 32-byte buffer inside the hollow start, and from there into the refresh.
//! Any error leaves the machine in `Done`, dropping every secret.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::SigningShare;
use frost_secp256k1::Secp256K1Sha256;
use k256_dkls23::elliptic_curve::PrimeField as _;
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize as _, Zeroizing};

use super::EcdsaRefreshOutput;
use super::common::{Roster, internal};
use super::keys::{EcdsaKeyShare, EcdsaPublicKeyPackage, PUBLIC_KEY_LEN};
use super::refresh::{Refresh, RefreshStart};
use crate::engine::{KeyShare, ReshareKind, ReshareOutput, ReshareSpec};
use crate::reshare::{
    Committee, Coordinates, Vsr, VsrOutput, VsrParams, decode_element, encode_element,
};
use crate::rounds::{Expect, sort_inbound};
use crate::{Message, NodeId, Protocol, ProtocolError, Recipient, Scheme, SessionId, Transition};

/// The frost ciphersuite whose group is secp256k1: what the redistribution
/// of an ECDSA key computes with (k256 0.13; it meets dkls23's k256 0.14
/// only as bytes).
type Suite = Secp256K1Sha256;

/// Rounds of phase 1 (the redistribution).
const PHASE1_ROUNDS: u16 = 3;
/// Rounds of phase 2 (`ecdsa::refresh_steps()`; a unit test checks it).
const PHASE2_ROUNDS: u16 = 4;
/// The last round of the session: its messages are consumed by the last step.
const LAST_ROUND: u16 = PHASE1_ROUNDS + PHASE2_ROUNDS;

/// Relay rounds a refresh or reshare of an ECDSA key takes after the start.
pub(crate) fn steps() -> usize {
    usize::from(LAST_ROUND)
}

fn invalid(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::InvalidParameters(reason.into())
}

/// A participant set of an ECDSA key (position coordinates), named in errors.
fn committee(
    which: &str,
    participants: &[NodeId],
    threshold: u16,
) -> Result<Committee, ProtocolError> {
    let named = |e| match e {
        ProtocolError::InvalidParameters(reason) => invalid(format!("{which} set: {reason}")),
        other => other,
    };
    // DKLs23's limits (at most 255 parties) as well as the committee's.
    Roster::new(None, participants).map_err(named)?;
    Committee::new(participants, Coordinates::Position, threshold).map_err(named)
}

enum State {
    /// Phase 1 of a version-2 key: the redistribution.
    Redistribute(Box<Vsr<Suite>>),
    /// Phase 1 of a refresh of a version-1 key: nothing happens in rounds
    /// 1–3 (`round` is the one expected next); the complete refresh from the
    /// existing share is built and waits for round 4.
    Idle { round: u16, refresh: Box<Refresh> },
    /// Phase 2 at a new participant: the complete refresh.
    Complete(Box<Refresh>),
    /// Phase 2 at a dealer that leaves: it only accepts the new
    /// participants' broadcasts of `round`.
    Observe { round: u16 },
    /// Finished or failed: nothing secret is left.
    Done,
}

/// One party's refresh or reshare of an ECDSA key.
pub(crate) struct EcdsaReshare {
    session: SessionId,
    me: NodeId,
    /// Every party of the session: dealers ∪ new participants.
    parties: BTreeSet<NodeId>,
    /// The new participants, ascending.
    new_participants: Vec<NodeId>,
    new_threshold: u16,
    /// The group key, SEC1 compressed (unchanged).
    public_key: [u8; PUBLIC_KEY_LEN],
    /// The key's BIP-32 chain code (unchanged).
    chain_code: [u8; 32],
    started: bool,
    state: State,
}

impl std::fmt::Debug for EcdsaReshare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcdsaReshare")
            .field("session", &self.session)
            .field("me", &self.me)
            .field("parties", &self.parties)
            .field("new_participants", &self.new_participants)
            .field("new_threshold", &self.new_threshold)
            .field("public_key", &hex::encode(self.public_key))
            .field("round", &self.expected_round())
            .finish_non_exhaustive()
    }
}

impl EcdsaReshare {
    pub(crate) fn new<R: RngCore + CryptoRng>(
        session: SessionId,
        me: NodeId,
        spec: &ReshareSpec,
        current_public_key_package: &[u8],
        share: Option<&EcdsaKeyShare>,
        rng: &mut R,
    ) -> Result<Self, ProtocolError> {
        let package = EcdsaPublicKeyPackage::from_bytes(current_public_key_package)
            .map_err(|e| invalid(format!("corrupt public key package: {e}")))?;
        let old = committee(
            "old participant",
            &spec.old_participants,
            spec.old_threshold,
        )?;
        let new = committee(
            "new participant",
            &spec.new_participants,
            spec.new_threshold,
        )?;
        // The package must describe exactly the old set and threshold.
        if !package.participants().iter().copied().eq(old.nodes()) {
            return Err(invalid(
                "the old participants are not the holders of the current key",
            ));
        }
        if package.threshold() != spec.old_threshold {
            return Err(invalid(format!(
                "the current key has threshold {}, not {}",
                package.threshold(),
                spec.old_threshold
            )));
        }
        check_dealers(spec, &old)?;
        if spec.kind == ReshareKind::Refresh && new != old {
            return Err(invalid(
                "a refresh cannot change the threshold or the participant set",
            ));
        }
        let parties: BTreeSet<NodeId> = spec.parties().into_iter().collect();
        if !parties.contains(&me) {
            return Err(invalid(format!(
                "{me} is neither a dealer nor a new participant"
            )));
        }
        let new_participants: Vec<NodeId> = new.nodes().collect();

        let state = match package.verifying_shares() {
            None if spec.kind == ReshareKind::Reshare => {
                return Err(invalid(
                    "the key's public key package has no verifying shares (version 1), which a reshare checks every dealer against: refresh the key once to record its verifying shares, then reshare",
                ));
            }
            None => {
                // A complete refresh among all participants, from their shares.
                let share = share.ok_or_else(|| {
                    invalid(format!(
                        "{me} needs its share: a key without verifying shares (version 1) is refreshed by every participant from its own share"
                    ))
                })?;
                check_share(me, share, &package)?;
                let refresh = Refresh::new(
                    session,
                    me,
                    &new_participants,
                    spec.new_threshold,
                    RefreshStart::Existing(share.clone()),
                )?;
                State::Idle {
                    round: 1,
                    refresh: Box::new(refresh),
                }
            }
            Some(shares) => {
                package.check_verifying_shares()?;
                let element = |bytes: &[u8]| decode_element::<Suite>(bytes).map_err(internal);
                let group_key = element(package.public_key())?;
                let mut verifying_shares = BTreeMap::new();
                for (node, share) in shares {
                    verifying_shares.insert(*node, element(share)?);
                }
                let signing_share = if spec.dealers.contains(&me) {
                    let share =
                        share.ok_or_else(|| invalid(format!("dealer {me} needs its share")))?;
                    Some(dealer_share(me, share, &package)?)
                } else {
                    None
                };
                let vsr = Vsr::<Suite>::new(
                    VsrParams {
                        scheme: Scheme::EcdsaSecp256k1,
                        kind: spec.kind,
                        session,
                        me,
                        old,
                        dealers: spec.dealers.clone(),
                        new,
                        group_key,
                        verifying_shares,
                    },
                    signing_share.as_deref(),
                    rng,
                )?;
                State::Redistribute(Box::new(vsr))
            }
        };
        Ok(Self {
            session,
            me,
            parties,
            new_participants,
            new_threshold: spec.new_threshold,
            public_key: *package.public_key(),
            chain_code: *package.chain_code(),
            started: false,
            state,
        })
    }

    fn is_new_participant(&self) -> bool {
        self.new_participants.binary_search(&self.me).is_ok()
    }

    /// The new participants other than this party.
    fn other_new_participants(&self) -> BTreeSet<NodeId> {
        self.new_participants
            .iter()
            .copied()
            .filter(|n| *n != self.me)
            .collect()
    }

    /// A message of this session and `round` from another party of the
    /// session that has no such message to send (a broadcast from a party
    /// not in `broadcasters`, a direct message to this party from one not
    /// in `direct_from`) was signed by that party: [`ProtocolError::Malformed`]
    /// naming it. Everything else is left to the strict sorting that follows.
    fn refuse_uninvited(
        &self,
        round: u16,
        broadcasters: &BTreeSet<NodeId>,
        direct_from: &BTreeSet<NodeId>,
        inbound: &[Message],
    ) -> Result<(), ProtocolError> {
        for m in inbound {
            if m.session != self.session
                || m.round != round
                || m.from == self.me
                || !self.parties.contains(&m.from)
            {
                continue;
            }
            let uninvited = match m.to {
                Recipient::Broadcast => !broadcasters.contains(&m.from),
                Recipient::Node(to) => to == self.me && !direct_from.contains(&m.from),
                Recipient::Coordinator => false,
            };
            if uninvited {
                return Err(ProtocolError::Malformed {
                    from: m.from,
                    reason: format!("a message this party does not send in round {round}"),
                });
            }
        }
        Ok(())
    }

    /// Phase 2 inbound for the refresh: every message must be of this
    /// session and carry the session's round (checked here, before the
    /// renumbering, so a phase-1 message replayed now is refused as such);
    /// then its round becomes the refresh's.
    fn to_refresh(&self, round: u16, inbound: Vec<Message>) -> Result<Vec<Message>, ProtocolError> {
        let others = self.other_new_participants();
        self.refuse_uninvited(round, &others, &others, &inbound)?;
        inbound
            .into_iter()
            .map(|mut m| {
                if m.session != self.session {
                    return Err(ProtocolError::WrongSession { from: m.from });
                }
                if m.round != round {
                    return Err(ProtocolError::WrongRound {
                        from: m.from,
                        expected: round,
                        got: m.round,
                    });
                }
                m.round = round - PHASE1_ROUNDS;
                Ok(m)
            })
            .collect()
    }

    /// The refresh's outbound messages, renumbered to the session's rounds.
    fn from_refresh(messages: Vec<Message>) -> Vec<Message> {
        messages
            .into_iter()
            .map(|mut m| {
                m.round += PHASE1_ROUNDS;
                m
            })
            .collect()
    }

    /// Starts phase 2 with `refresh`: its round-1 messages as round 4.
    fn begin_refresh(
        &mut self,
        mut refresh: Box<Refresh>,
        mut messages: Vec<Message>,
    ) -> Result<Transition<ReshareOutput>, ProtocolError> {
        messages.extend(Self::from_refresh(refresh.start()?));
        self.state = State::Complete(refresh);
        Ok(Transition::Continue(messages))
    }

    /// Phase 1 done: a new participant completes its hollow share with the
    /// refresh; a dealer that leaves waits for the end of the session.
    fn end_of_phase1(
        &mut self,
        out: VsrOutput<Suite>,
        messages: Vec<Message>,
    ) -> Result<Transition<ReshareOutput>, ProtocolError> {
        if encode_element::<Suite>(&out.group_key)? != self.public_key {
            return Err(internal("the group key changed"));
        }
        if !self.is_new_participant() {
            drop(out);
            self.state = State::Observe {
                round: PHASE1_ROUNDS + 1,
            };
            return Ok(Transition::Continue(messages));
        }
        let share = out
            .share
            .as_ref()
            .ok_or_else(|| internal("a new participant without a new share"))?;
        let bytes = Zeroizing::new(share.serialize());
        let mut scalar = Zeroizing::new([0u8; 32]);
        if bytes.len() != scalar.len() {
            return Err(internal("scalar encoding"));
        }
        scalar.copy_from_slice(&bytes);
        drop(bytes);
        let mut verifying_shares = BTreeMap::new();
        for (node, y) in &out.verifying_shares {
            let encoded = encode_element::<Suite>(y)?;
            let y: [u8; PUBLIC_KEY_LEN] = encoded
                .as_slice()
                .try_into()
                .map_err(|_| internal("point encoding"))?;
            verifying_shares.insert(*node, y);
        }
        drop(out);
        let refresh = Refresh::new(
            self.session,
            self.me,
            &self.new_participants,
            self.new_threshold,
            RefreshStart::Hollow {
                share: scalar,
                public_key: self.public_key,
                chain_code: self.chain_code,
                verifying_shares,
            },
        )?;
        self.begin_refresh(Box::new(refresh), messages)
    }

    /// The new epoch at a new participant.
    fn output(&self, out: EcdsaRefreshOutput) -> Result<ReshareOutput, ProtocolError> {
        let share = &out.key_share;
        if out.public_key != self.public_key
            || share.public_key() != self.public_key
            || share.chain_code() != &self.chain_code
        {
            return Err(internal("the group key or its chain code changed"));
        }
        if share.participants() != self.new_participants
            || share.threshold() != self.new_threshold
            || share.node_id() != self.me
        {
            return Err(internal(
                "the new share is not of the new participants and threshold",
            ));
        }
        Ok(ReshareOutput {
            key_share: Some(KeyShare::Ecdsa(out.key_share)),
            public_key: out.public_key,
            public_key_package: out.public_key_package,
        })
    }
}

/// The dealers: no duplicates, all holders of the current key, at least `t`
/// of them (the redistribution checks the same; a version-1 refresh does not
/// run it).
fn check_dealers(spec: &ReshareSpec, old: &Committee) -> Result<(), ProtocolError> {
    let mut dealers = BTreeSet::new();
    for &dealer in &spec.dealers {
        if !dealers.insert(dealer) {
            return Err(invalid(format!("{dealer} appears twice among the dealers")));
        }
        if !old.contains(dealer) {
            return Err(invalid(format!(
                "dealer {dealer} is not a participant of the current key"
            )));
        }
    }
    if dealers.len() < usize::from(old.threshold()) {
        return Err(invalid(format!(
            "{} dealers cannot redistribute a key with threshold {}",
            dealers.len(),
            old.threshold()
        )));
    }
    Ok(())
}

/// `share` is `me`'s share of the key (and epoch) described by `package`.
fn check_share(
    me: NodeId,
    share: &EcdsaKeyShare,
    package: &EcdsaPublicKeyPackage,
) -> Result<(), ProtocolError> {
    if share.node_id() != me {
        return Err(invalid(format!("key share belongs to {}", share.node_id())));
    }
    if share.package() != package {
        return Err(invalid(
            "key share belongs to another epoch or key than the given public key package",
        ));
    }
    Ok(())
}

/// A dealer's current share `s_i` as the redistribution takes it, after
/// checking that `share` is `me`'s share of the key described by `package`
/// (the redistribution then checks `s_i·G = Y_i`).
fn dealer_share(
    me: NodeId,
    share: &EcdsaKeyShare,
    package: &EcdsaPublicKeyPackage,
) -> Result<Zeroizing<SigningShare<Suite>>, ProtocolError> {
    check_share(me, share, package)?;
    // Decoding the party checks it against its package, including its
    // verifying share.
    let party = share.party()?;
    let mut repr = party.poly_point.to_repr();
    drop(party);
    let bytes = Zeroizing::new(repr.to_vec());
    repr.zeroize();
    SigningShare::<Suite>::deserialize(&bytes)
        .map(Zeroizing::new)
        .map_err(internal)
}

impl Protocol for EcdsaReshare {
    type Output = ReshareOutput;

    fn session_id(&self) -> SessionId {
        self.session
    }

    fn expected_round(&self) -> u16 {
        match &self.state {
            State::Redistribute(vsr) => vsr.expected_round(),
            State::Idle { round, .. } | State::Observe { round } => *round,
            State::Complete(refresh) => refresh.expected_round() + PHASE1_ROUNDS,
            State::Done => LAST_ROUND + 1,
        }
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        if std::mem::replace(&mut self.started, true) {
            return Err(ProtocolError::OutOfOrder(
                "refresh or reshare already started".into(),
            ));
        }
        match &mut self.state {
            State::Redistribute(vsr) => vsr.start(),
            // A version-1 refresh sends nothing before round 4.
            State::Idle { .. } => Ok(Vec::new()),
            _ => Err(internal("a session that did not start in phase 1")),
        }
    }

    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<ReshareOutput>, ProtocolError> {
        if !self.started {
            return Err(ProtocolError::OutOfOrder(
                "refresh or reshare stepped before start".into(),
            ));
        }
        // Any failure leaves the state at `Done`: secrets are dropped and the
        // instance cannot be stepped again.
        match std::mem::replace(&mut self.state, State::Done) {
            State::Redistribute(mut vsr) => match vsr.step(inbound)? {
                Transition::Continue(messages) => {
                    self.state = State::Redistribute(vsr);
                    Ok(Transition::Continue(messages))
                }
                Transition::Finished { messages, output } => {
                    drop(vsr);
                    self.end_of_phase1(output, messages)
                }
            },
            State::Idle { round, refresh } => {
                let none = BTreeSet::new();
                self.refuse_uninvited(round, &none, &none, &inbound)?;
                let others: BTreeSet<NodeId> = self
                    .parties
                    .iter()
                    .copied()
                    .filter(|n| *n != self.me)
                    .collect();
                sort_inbound(
                    self.session,
                    round,
                    Some(self.me),
                    &others,
                    Expect::default(),
                    inbound,
                )?;
                if round < PHASE1_ROUNDS {
                    self.state = State::Idle {
                        round: round + 1,
                        refresh,
                    };
                    Ok(Transition::Continue(Vec::new()))
                } else {
                    self.begin_refresh(refresh, Vec::new())
                }
            }
            State::Complete(mut refresh) => {
                let round = refresh.expected_round() + PHASE1_ROUNDS;
                let inbound = self.to_refresh(round, inbound)?;
                match refresh.step(inbound)? {
                    Transition::Continue(messages) => {
                        self.state = State::Complete(refresh);
                        Ok(Transition::Continue(Self::from_refresh(messages)))
                    }
                    Transition::Finished { messages, output } => {
                        drop(refresh);
                        Ok(Transition::Finished {
                            messages: Self::from_refresh(messages),
                            output: self.output(output)?,
                        })
                    }
                }
            }
            State::Observe { round } => {
                let senders: BTreeSet<NodeId> = self.new_participants.iter().copied().collect();
                self.refuse_uninvited(round, &senders, &BTreeSet::new(), &inbound)?;
                let broadcast_only = Expect {
                    broadcast: true,
                    ..Expect::default()
                };
                // Checked, then ignored: the refresh is the new participants'.
                sort_inbound(
                    self.session,
                    round,
                    Some(self.me),
                    &senders,
                    broadcast_only,
                    inbound,
                )?;
                if round < LAST_ROUND {
                    self.state = State::Observe { round: round + 1 };
                    return Ok(Transition::Continue(Vec::new()));
                }
                Ok(Transition::Finished {
                    messages: Vec::new(),
                    output: ReshareOutput {
                        key_share: None,
                        public_key: self.public_key.to_vec(),
                        public_key_package: Vec::new(),
                    },
                })
            }
            State::Done => Err(ProtocolError::OutOfOrder(
                "refresh or reshare already finished or failed".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_2_is_the_complete_refresh() {
        assert_eq!(usize::from(PHASE2_ROUNDS), super::super::refresh_steps());
        assert_eq!(steps(), 7);
    }
}
