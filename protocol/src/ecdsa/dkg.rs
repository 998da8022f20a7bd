//! DKLs23 distributed key generation (eprint 2023/765 §3 with the DKG of
//! eprint 2023/602 Protocol 9.1, as dkls23 implements it) as a four-round
//! state machine, with echo rounds so a relay cannot equivocate.
//!
//! The DKG also sets up everything DKLs23 signing reuses: pairwise
//! zero-sharing seeds, pairwise OT-based multiplication (base OT) and a
//! jointly random BIP-32 chain code (commit, then reveal).
//!
//! - `start`: phase 1 → round 1: to each other party, its evaluation of
//!   our random polynomial (direct, so end-to-end encrypted).
//! - `step(round 1)`: phase 2 → round 2: a Broadcast of the *commitment*
//!   to our proof of knowledge of `p(i)` and of our chain-code commitment,
//!   plus one direct zero-share seed commitment per other party.
//! - `step(round 2)`: phase 3 → round 3: a Broadcast of the proof itself
//!   (revealed only now that every commitment is in), the chain-code
//!   opening, and an echo (digest of every round-2 broadcast as we saw it);
//!   plus, per other party, one direct message with the zero-share seed
//!   opening and the multiplication (base OT) setup.
//! - `step(round 3)`: every echo must equal our digest (else
//!   [`ProtocolError::InconsistentBroadcast`]); then phase 4 checks every
//!   proof and opening and builds our share → round 4: a Broadcast echo of
//!   every round-3 broadcast.
//! - `step(round 4)`: every echo must equal ours → [`EcdsaDkgOutput`].
//!
//! The public key package keeps every participant's verifying share
//! `p(j)·G` from dkls23's `PublicKeyPackage`, so later refreshes and
//! redistributions can check shares against it.
//!
//! The DKLs23 session id is a hash of Sigil's session id, the threshold and
//! the participants, so every proof and seed is bound to this session and
//! a party given different parameters fails the first echo check. Secret
//! state (polynomial evaluations, seeds, OT state) lives in dkls23's
//! `DkgSession`, which zeroizes it on drop, and moves from state to state.

use std::collections::BTreeMap;

use dkls23::DkgSession;
use dkls23::protocols::dkg::{
    BroadcastDerivationPhase2to4, BroadcastDerivationPhase3to4, ProofCommitment,
    TransmitInitMulPhase3to4, TransmitInitZeroSharePhase2to4, TransmitInitZeroSharePhase3to4,
};
use dkls23::protocols::{Parameters, PartyIndex};
use dkls23::utilities::hashes::HashOutput;
use dkls23::utilities::proofs::DLogProof;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use zeroize::{Zeroize as _, Zeroizing};

use super::common::{
    self, Curve, Roster, blame, decode, encode, encode_secret, hash_nodes, hasher, internal,
};
use super::keys::{EcdsaPublicKeyPackage, check_threshold, parse_public_key};
use super::{EcdsaDkgOutput, EcdsaKeyShare};
use crate::rounds::{Expect, check_echoes, parse, sort_inbound};
use crate::{Message, NodeId, Protocol, ProtocolError, Recipient, SessionId, Transition};

/// Domain of the DKLs23 session id.
const SESSION_DOMAIN: &[u8] = b"sigil/v1/ecdsa-dkg/dkls23-session-id";
/// Domain of the echo digests (rounds 3 and 4).
const ECHO_DOMAIN: &[u8] = b"sigil/v1/ecdsa-dkg/echo";

type Scalar = k256_dkls23::Scalar;

/// Round-2 broadcast: commitments only.
#[derive(Clone, Serialize, Deserialize)]
struct Round2Broadcast {
    /// Commitment to our discrete-log proof for `P(i)` (revealed in round 3).
    proof_commitment: HashOutput,
    /// Commitment to our share of the chain code.
    derivation: BroadcastDerivationPhase2to4,
}

/// Round-3 broadcast: the openings of round 2, and the round-2 echo.
#[derive(Serialize, Deserialize)]
struct Round3Broadcast {
    echo: [u8; 32],
    proof: DLogProof<Curve>,
    derivation: BroadcastDerivationPhase3to4,
}

/// Round-3 direct message (secret): zero-share seed opening and base-OT setup.
#[derive(Serialize, Deserialize)]
struct Round3Direct {
    zero_share: TransmitInitZeroSharePhase3to4,
    multiplication: TransmitInitMulPhase3to4<Curve>,
}

enum State {
    /// Constructed; `start` not called yet.
    Ready { session: Box<DkgSession<Curve>> },
    /// Round 1 sent; waiting for the other parties' polynomial evaluations.
    AwaitRound1 {
        session: Box<DkgSession<Curve>>,
        own_fragment: Zeroizing<Vec<Scalar>>,
    },
    /// Round 2 sent; waiting for commitments.
    AwaitRound2 {
        session: Box<DkgSession<Curve>>,
        own_proof: ProofCommitment<Curve>,
        own_broadcast: Round2Broadcast,
    },
    /// Round 3 sent; waiting for openings and echoes.
    AwaitRound3(Box<Round3State>),
    /// Round 4 sent (the share exists); waiting for the round-3 echoes.
    AwaitRound4 {
        output: EcdsaDkgOutput,
        digest: [u8; 32],
    },
    /// Finished or failed: nothing secret is left.
    Done,
}

struct Round3State {
    session: Box<DkgSession<Curve>>,
    own_proof: ProofCommitment<Curve>,
    /// Every party's round-2 broadcast, ours included.
    round2: BTreeMap<NodeId, Round2Broadcast>,
    /// Zero-share seed commitments received in round 2.
    zero_commitments: Vec<TransmitInitZeroSharePhase2to4>,
    /// Our round-3 broadcast (its bytes enter the round-4 echo).
    own_broadcast: Vec<u8>,
    own_derivation: BroadcastDerivationPhase3to4,
    /// Our digest of round 2.
    digest: [u8; 32],
}

/// One party's ECDSA DKG.
pub(crate) struct Dkg {
    session: SessionId,
    me: NodeId,
    index: PartyIndex,
    roster: Roster,
    threshold: u16,
    dkls_session: [u8; 32],
    state: State,
}

impl std::fmt::Debug for Dkg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcdsaDkg")
            .field("session", &self.session)
            .field("me", &self.me)
            .field("participants", &self.roster.nodes())
            .field("threshold", &self.threshold)
            .field("round", &self.expected_round())
            .finish_non_exhaustive()
    }
}

/// The DKLs23 session id: binds the transcript to Sigil's session, the
/// threshold and the (sorted) participant list.
fn dkls_session_id(session: SessionId, threshold: u16, roster: &Roster) -> [u8; 32] {
    let mut h = hasher(SESSION_DOMAIN);
    h.update(session.as_bytes());
    h.update(threshold.to_be_bytes());
    hash_nodes(&mut h, roster.nodes());
    h.finalize().into()
}

impl Dkg {
    pub(crate) fn new(
        session: SessionId,
        me: NodeId,
        participants: &[NodeId],
        threshold: u16,
    ) -> Result<Self, ProtocolError> {
        let roster = Roster::new(Some(me), participants)?;
        check_threshold(threshold, roster.len())?;
        let parameters = Parameters::new(
            u8::try_from(threshold).map_err(internal)?,
            u8::try_from(roster.len()).map_err(internal)?,
        )
        .map_err(|e| ProtocolError::InvalidParameters(e.to_string()))?;
        let index = roster.index(me)?;
        let dkls_session = dkls_session_id(session, threshold, &roster);
        let dkg = DkgSession::new(parameters, index, dkls_session.to_vec());
        Ok(Self {
            session,
            me,
            index,
            roster,
            threshold,
            dkls_session,
            state: State::Ready {
                session: Box::new(dkg),
            },
        })
    }

    fn message(&self, round: u16, to: Recipient, payload: Vec<u8>) -> Message {
        Message {
            session: self.session,
            round,
            from: self.me,
            to,
            payload,
        }
    }

    fn node_of(&self, index: PartyIndex) -> Result<NodeId, ProtocolError> {
        self.roster.node_at(index)
    }

    /// Digest of one round's broadcasts (ours included), sorted by sender.
    fn echo_digest(&self, round: u16, broadcasts: &BTreeMap<NodeId, &[u8]>) -> [u8; 32] {
        common::echo_digest(ECHO_DOMAIN, &self.dkls_session, round, broadcasts)
    }

    /// A payload field naming a DKLs23 party must name the message's sender
    /// (and, for direct messages, us as receiver).
    fn check_parties(
        &self,
        from: NodeId,
        sender: PartyIndex,
        receiver: Option<PartyIndex>,
    ) -> Result<(), ProtocolError> {
        common::check_parties(&self.roster, self.index, from, sender, receiver)
    }

    fn begin(&mut self, session: Box<DkgSession<Curve>>) -> Result<Vec<Message>, ProtocolError> {
        let fragments = Zeroizing::new(session.phase1());
        let mut out = Vec::with_capacity(self.roster.len() - 1);
        // Room for every party's evaluation: round 1 adds the others' without reallocating.
        let mut own_fragment = Zeroizing::new(Vec::with_capacity(self.roster.len()));
        for (position, fragment) in fragments.iter().enumerate() {
            let node = *self
                .roster
                .nodes()
                .get(position)
                .ok_or_else(|| internal("too many polynomial evaluations"))?;
            if node == self.me {
                own_fragment.push(*fragment);
            } else {
                let mut payload = encode_secret(fragment)?;
                let payload = std::mem::take(&mut *payload);
                out.push(self.message(1, Recipient::Node(node), payload));
            }
        }
        if own_fragment.len() != 1 || out.len() + 1 != self.roster.len() {
            return Err(internal("wrong number of polynomial evaluations"));
        }
        self.state = State::AwaitRound1 {
            session,
            own_fragment,
        };
        Ok(out)
    }

    fn round1(
        &mut self,
        mut session: Box<DkgSession<Curve>>,
        mut fragments: Zeroizing<Vec<Scalar>>,
        inbound: Vec<Message>,
    ) -> Result<Transition<EcdsaDkgOutput>, ProtocolError> {
        let others = self.roster.others(self.me);
        let expect = Expect {
            direct: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(self.session, 1, Some(self.me), &others, expect, inbound)?;
        for (&from, bytes) in &sorted.direct {
            fragments.push(parse(
                from,
                "DKG polynomial evaluation",
                decode::<Scalar>(bytes),
            )?);
        }
        let (own_proof, zero_commitments, derivation) = session
            .phase2(&fragments)
            .map_err(|e| blame(&self.roster, self.index, e))?;
        drop(fragments);

        let own_broadcast = Round2Broadcast {
            proof_commitment: own_proof.commitment,
            derivation,
        };
        let mut out = Vec::with_capacity(self.roster.len());
        out.push(self.message(2, Recipient::Broadcast, encode(&own_broadcast)?));
        for transmit in &zero_commitments {
            let to = self.node_of(transmit.parties.receiver)?;
            out.push(self.message(2, Recipient::Node(to), encode(transmit)?));
        }
        self.state = State::AwaitRound2 {
            session,
            own_proof,
            own_broadcast,
        };
        Ok(Transition::Continue(out))
    }

    fn round2(
        &mut self,
        mut session: Box<DkgSession<Curve>>,
        own_proof: ProofCommitment<Curve>,
        own_broadcast: Round2Broadcast,
        inbound: Vec<Message>,
    ) -> Result<Transition<EcdsaDkgOutput>, ProtocolError> {
        let others = self.roster.others(self.me);
        let expect = Expect {
            broadcast: true,
            direct: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(self.session, 2, Some(self.me), &others, expect, inbound)?;

        let own_bytes = encode(&own_broadcast)?;
        let mut seen: BTreeMap<NodeId, &[u8]> = BTreeMap::new();
        let mut round2 = BTreeMap::new();
        for (&from, bytes) in &sorted.broadcast {
            let broadcast: Round2Broadcast = parse(from, "DKG round-2 broadcast", decode(bytes))?;
            self.check_parties(from, broadcast.derivation.sender_index, None)?;
            round2.insert(from, broadcast);
            seen.insert(from, bytes);
        }
        seen.insert(self.me, &own_bytes);
        let digest = self.echo_digest(2, &seen);
        round2.insert(self.me, own_broadcast);

        let mut zero_commitments = Vec::with_capacity(sorted.direct.len());
        for (&from, bytes) in &sorted.direct {
            let transmit: TransmitInitZeroSharePhase2to4 =
                parse(from, "DKG zero-share commitment", decode(bytes))?;
            self.check_parties(
                from,
                transmit.parties.sender,
                Some(transmit.parties.receiver),
            )?;
            zero_commitments.push(transmit);
        }

        let (zero_openings, multiplication, own_derivation) = session
            .phase3()
            .map_err(|e| blame(&self.roster, self.index, e))?;
        let broadcast = Round3Broadcast {
            echo: digest,
            proof: own_proof.proof.clone(),
            derivation: own_derivation.clone(),
        };
        let own_broadcast = encode(&broadcast)?;
        let mut out = Vec::with_capacity(self.roster.len());
        out.push(self.message(3, Recipient::Broadcast, own_broadcast.clone()));
        let mut multiplication: BTreeMap<PartyIndex, TransmitInitMulPhase3to4<Curve>> =
            multiplication
                .into_iter()
                .map(|m| (m.parties.receiver, m))
                .collect();
        for zero_share in zero_openings {
            let receiver = zero_share.parties.receiver;
            let to = self.node_of(receiver)?;
            let multiplication = multiplication
                .remove(&receiver)
                .ok_or_else(|| internal("missing multiplication setup"))?;
            let direct = Round3Direct {
                zero_share,
                multiplication,
            };
            let mut payload = encode_secret(&direct)?;
            let payload = std::mem::take(&mut *payload);
            let Round3Direct { mut zero_share, .. } = direct;
            zero_share.seed.zeroize();
            zero_share.salt.zeroize();
            out.push(self.message(3, Recipient::Node(to), payload));
        }
        self.state = State::AwaitRound3(Box::new(Round3State {
            session,
            own_proof,
            round2,
            zero_commitments,
            own_broadcast,
            own_derivation,
            digest,
        }));
        Ok(Transition::Continue(out))
    }

    fn round3(
        &mut self,
        state: Box<Round3State>,
        inbound: Vec<Message>,
    ) -> Result<Transition<EcdsaDkgOutput>, ProtocolError> {
        let Round3State {
            session,
            own_proof,
            round2,
            zero_commitments,
            own_broadcast,
            own_derivation,
            digest,
        } = *state;
        let others = self.roster.others(self.me);
        let expect = Expect {
            broadcast: true,
            direct: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(self.session, 3, Some(self.me), &others, expect, inbound)?;

        let mut broadcasts = BTreeMap::new();
        for (&from, bytes) in &sorted.broadcast {
            let broadcast: Round3Broadcast = parse(from, "DKG round-3 broadcast", decode(bytes))?;
            self.check_parties(from, broadcast.derivation.sender_index, None)?;
            broadcasts.insert(from, broadcast);
        }
        // Echo check first: no opening is used unless everyone saw the same round 2.
        check_echoes(
            broadcasts.iter().map(|(n, b)| (*n, b.echo.as_slice())),
            &digest,
        )?;

        let mut zero_openings = Vec::with_capacity(sorted.direct.len());
        let mut multiplication = Vec::with_capacity(sorted.direct.len());
        for (&from, bytes) in &sorted.direct {
            let direct: Round3Direct = parse(from, "DKG round-3 direct message", decode(bytes))?;
            let Round3Direct {
                zero_share,
                multiplication: mul,
            } = direct;
            self.check_parties(
                from,
                zero_share.parties.sender,
                Some(zero_share.parties.receiver),
            )?;
            self.check_parties(from, mul.parties.sender, Some(mul.parties.receiver))?;
            zero_openings.push(zero_share);
            multiplication.push(mul);
        }

        // Every party's proof against the commitment it broadcast in round 2.
        let mut proofs = vec![own_proof];
        let mut derivation2 = BTreeMap::new();
        let mut derivation3 = BTreeMap::new();
        derivation3.insert(self.index, own_derivation);
        for (&node, broadcast) in &round2 {
            derivation2.insert(self.roster.index(node)?, broadcast.derivation.clone());
        }
        let mut seen: BTreeMap<NodeId, &[u8]> = sorted
            .broadcast
            .iter()
            .map(|(n, b)| (*n, b.as_slice()))
            .collect();
        seen.insert(self.me, &own_broadcast);
        let round3_digest = self.echo_digest(3, &seen);
        for (node, broadcast) in broadcasts {
            let index = self.roster.index(node)?;
            let commitment = round2
                .get(&node)
                .ok_or_else(|| internal("missing round-2 broadcast"))?
                .proof_commitment;
            proofs.push(ProofCommitment {
                index,
                proof: broadcast.proof,
                commitment,
            });
            derivation3.insert(index, broadcast.derivation);
        }

        let result = session.phase4(
            &proofs,
            &zero_commitments,
            &zero_openings,
            &multiplication,
            &derivation2,
            &derivation3,
            |_| String::new(),
        );
        for opening in &mut zero_openings {
            opening.seed.zeroize();
            opening.salt.zeroize();
        }
        drop(multiplication);
        let (party, dkls_package) = result.map_err(|e| blame(&self.roster, self.index, e))?;

        let public_key = dkls23::utilities::hashes::point_to_bytes::<Curve>(&party.pk);
        // Every participant's verifying share `p(j)·G`, as dkls23 computed
        // them from the committed points it just verified.
        let mut verifying_shares = BTreeMap::new();
        for &node in self.roster.nodes() {
            let point = dkls_package
                .verifying_share(self.roster.index(node)?)
                .ok_or_else(|| internal(format!("dkls23 kept no verifying share for {node}")))?;
            let bytes = dkls23::utilities::hashes::point_to_bytes::<Curve>(point);
            verifying_shares.insert(node, parse_public_key(&bytes)?);
        }
        let package = EcdsaPublicKeyPackage::with_verifying_shares(
            &public_key,
            party.derivation_data.chain_code,
            self.threshold,
            &verifying_shares,
        )?;
        let public_key_package = package.to_bytes();
        let key_share = EcdsaKeyShare::from_party(self.me, package, &party)?;
        drop(party);
        let output = EcdsaDkgOutput {
            key_share,
            public_key,
            public_key_package,
        };
        self.state = State::AwaitRound4 {
            output,
            digest: round3_digest,
        };
        Ok(Transition::Continue(vec![self.message(
            4,
            Recipient::Broadcast,
            round3_digest.to_vec(),
        )]))
    }

    fn round4(
        &mut self,
        output: EcdsaDkgOutput,
        digest: [u8; 32],
        inbound: Vec<Message>,
    ) -> Result<Transition<EcdsaDkgOutput>, ProtocolError> {
        let others = self.roster.others(self.me);
        let expect = Expect {
            broadcast: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(self.session, 4, Some(self.me), &others, expect, inbound)?;
        check_echoes(
            sorted.broadcast.iter().map(|(n, e)| (*n, e.as_slice())),
            &digest,
        )?;
        Ok(Transition::Finished {
            messages: Vec::new(),
            output,
        })
    }
}

impl Protocol for Dkg {
    type Output = EcdsaDkgOutput;

    fn session_id(&self) -> SessionId {
        self.session
    }

    fn expected_round(&self) -> u16 {
        match self.state {
            State::Ready { .. } | State::AwaitRound1 { .. } => 1,
            State::AwaitRound2 { .. } => 2,
            State::AwaitRound3(_) => 3,
            State::AwaitRound4 { .. } => 4,
            State::Done => 5,
        }
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Ready { session } => self.begin(session),
            _ => Err(ProtocolError::OutOfOrder("DKG already started".into())),
        }
    }

    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<EcdsaDkgOutput>, ProtocolError> {
        // Any failure leaves the state at `Done`: secrets are dropped and the
        // instance cannot be stepped again.
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitRound1 {
                session,
                own_fragment,
            } => self.round1(session, own_fragment, inbound),
            State::AwaitRound2 {
                session,
                own_proof,
                own_broadcast,
            } => self.round2(session, own_proof, own_broadcast, inbound),
            State::AwaitRound3(state) => self.round3(state, inbound),
            State::AwaitRound4 { output, digest } => self.round4(output, digest, inbound),
            State::Ready { .. } => {
                Err(ProtocolError::OutOfOrder("DKG stepped before start".into()))
            }
            State::Done => Err(ProtocolError::OutOfOrder(
                "DKG already finished or failed".into(),
            )),
        }
    }
}
