//! DKLs23 share refresh (eprint 2023/765; the *complete refresh* of the
//! `dkls23` crate, `Party::refresh_complete_phase1..4`) as a four-round
//! state machine with echo rounds, like the DKG.
//!
//! Why: a refresh re-randomizes every share of a key (the group key and the
//! BIP-32 chain code stay the same), so shares stolen before it are useless
//! with shares taken after it; and it sets up *fresh* pairwise OT-based
//! multiplication and zero-sharing state. The crate's complete refresh is
//! its DKG with every party's polynomial forced to a zero constant term: the
//! corrections add up to a sharing of zero, and every party's new share is
//! `p(i) + q(i)`. Because it rebuilds all pairwise state from scratch, it
//! also turns a *hollow* share into a full one: the crate's repair docs
//! (`protocols/repair.rs`) call hollow a `Party` whose share, group key and
//! derivation data are right but which has no zero-share seeds or
//! multiplication state, and prescribe a complete refresh across all `n`
//! parties to complete it. Sigil uses that for redistribution: a
//! Shamir-level redistribution hands each new participant a scalar share and
//! every participant's verifying share, and this refresh makes DKLs23 key
//! shares of them ([`RefreshStart::Hollow`]).
//!
//! Every start is reduced to a hollow party: the share `p(i)`, the group key
//! and the chain code (an existing share's OT state is dropped, the complete
//! refresh never uses it). Before anything is sent, a hollow start's scalar
//! must match its verifying share and the verifying shares must interpolate
//! to the group key.
//!
//! - `start`: phase 1 → round 1: to each other party, its evaluation of our
//!   zero-constant polynomial (direct, end-to-end encrypted), and a
//!   Broadcast of the refresh context digest and our current verifying
//!   share `p(i)·G`.
//! - `step(round 1)`: every context digest must equal ours (same session,
//!   key, chain code, threshold, participants and verifying shares), and
//!   every announced verifying share must be the expected one (a stale or
//!   wrong share is named) or, for a key whose package predates verifying
//!   shares, all of them must interpolate to the group key; phase 2 →
//!   round 2: a Broadcast of the echo of round 1 and the commitment to our
//!   proof of knowledge of `q(i)`, and per other party a direct zero-share
//!   seed commitment.
//! - `step(round 2)`: echoes checked; phase 3 → round 3: a Broadcast of the
//!   echo of round 2 and the proof itself, and per other party a direct
//!   message with the zero-share seed opening and the base-OT setup.
//! - `step(round 3)`: echoes checked; phase 4 checks every proof and
//!   opening, that the corrections share zero, and builds the new party; the
//!   verifying shares move by each party's committed correction
//!   (`PublicKeyPackage::refresh`) → round 4: a Broadcast echo of round 3.
//! - `step(round 4)`: echoes checked → [`EcdsaRefreshOutput`].
//!
//! The DKLs23 refresh id and the (hollow) parties' session id are hashes of
//! the context digest, which binds Sigil's session id: every proof, seed
//! commitment and OT instance belongs to this session, and messages of
//! another session or round are refused before any cryptography runs.
//! Refreshed shares do not sign together with shares from before the
//! refresh (their DKLs23 session ids differ), so the caller must keep the
//! old share until every participant has its new one, then erase it.

use std::collections::BTreeMap;

use dkls23::protocols::derivation::DerivData;
use dkls23::protocols::dkg::{
    KeepInitMulPhase3to4, KeepInitZeroSharePhase2to3, KeepInitZeroSharePhase3to4, ProofCommitment,
    TransmitInitMulPhase3to4, TransmitInitZeroSharePhase2to4, TransmitInitZeroSharePhase3to4,
};
use dkls23::protocols::{Parameters, PartyIndex, PublicKeyPackage};
use dkls23::utilities::hashes::{HashOutput, point_to_bytes};
use dkls23::utilities::proofs::DLogProof;
use dkls23::utilities::zero_shares::ZeroShare;
use k256_dkls23::elliptic_curve::PrimeField as _;
use k256_dkls23::elliptic_curve::group::GroupEncoding as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use zeroize::{Zeroize as _, Zeroizing};

use super::EcdsaRefreshOutput;
use super::common::{
    self, Curve, Party, Roster, blame, decode, encode, encode_secret, hash_nodes, hasher, internal,
};
use super::keys::{
    EcdsaKeyShare, EcdsaPublicKeyPackage, PUBLIC_KEY_LEN, check_share_polynomial, check_threshold,
    parse_public_key,
};
use crate::rounds::{Expect, Sorted, check_echoes, parse, sort_inbound};
use crate::{Message, NodeId, Protocol, ProtocolError, Recipient, Scheme, SessionId, Transition};

/// Domain of the refresh context digest.
const CONTEXT_DOMAIN: &[u8] = b"sigil/v1/ecdsa-refresh/context";
/// Domain of the DKLs23 refresh id.
const REFRESH_ID_DOMAIN: &[u8] = b"sigil/v1/ecdsa-refresh/dkls23-refresh-id";
/// Domain of the session id the hollow parties start from.
const SESSION_DOMAIN: &[u8] = b"sigil/v1/ecdsa-refresh/dkls23-session-id";
/// Domain of the echo digests (rounds 2, 3 and 4).
const ECHO_DOMAIN: &[u8] = b"sigil/v1/ecdsa-refresh/echo";
/// Round-1 broadcast: context digest ‖ verifying share.
const ROUND1_LEN: usize = 32 + PUBLIC_KEY_LEN;

type Scalar = k256_dkls23::Scalar;
type AffinePoint = k256_dkls23::AffinePoint;
type VerifyingShares = BTreeMap<NodeId, [u8; PUBLIC_KEY_LEN]>;

/// What a refresh starts from.
#[derive(Clone)]
pub enum RefreshStart {
    /// This node's share of the key being refreshed, of the same
    /// participants and threshold (a plain refresh). Its package may
    /// predate verifying shares (version 1): the participants then announce
    /// theirs, checked against the group key, and the output has them.
    Existing(EcdsaKeyShare),
    /// A share without DKLs23 multiplication or zero-sharing state, e.g.
    /// from a Shamir-level redistribution.
    Hollow {
        /// `p(i)` at this node's party index (its position among the sorted
        /// participants, 1-based), a 32-byte big-endian scalar. Secret.
        share: Zeroizing<[u8; 32]>,
        /// The group key, SEC1 compressed.
        public_key: [u8; PUBLIC_KEY_LEN],
        /// The key's BIP-32 chain code.
        chain_code: [u8; 32],
        /// Every participant's verifying share `p(j)·G`, SEC1 compressed.
        verifying_shares: VerifyingShares,
    },
}

impl std::fmt::Debug for RefreshStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Existing(share) => f.debug_tuple("Existing").field(share).finish(),
            Self::Hollow {
                public_key,
                verifying_shares,
                ..
            } => f
                .debug_struct("Hollow")
                .field("share", &"<redacted>")
                .field("public_key", &hex::encode(public_key))
                .field("participants", &verifying_shares.keys())
                .finish_non_exhaustive(),
        }
    }
}

/// Round-2 broadcast: the round-1 echo and our proof commitment.
#[derive(Serialize, Deserialize)]
struct Round2Broadcast {
    echo: [u8; 32],
    proof_commitment: HashOutput,
}

/// Round-3 broadcast: the round-2 echo and the proof it committed to.
#[derive(Serialize, Deserialize)]
struct Round3Broadcast {
    echo: [u8; 32],
    proof: DLogProof<Curve>,
}

/// Round-3 direct message (secret): zero-share seed opening and base-OT setup.
#[derive(Serialize, Deserialize)]
struct Round3Direct {
    zero_share: TransmitInitZeroSharePhase3to4,
    multiplication: TransmitInitMulPhase3to4<Curve>,
}

/// Secret state between rounds, zeroized on drop (the hollow party zeroizes
/// itself).
struct Secrets {
    party: Party,
    own_fragment: Scalar,
    correction: Scalar,
    zero_2to3: BTreeMap<PartyIndex, KeepInitZeroSharePhase2to3>,
    zero_3to4: BTreeMap<PartyIndex, KeepInitZeroSharePhase3to4>,
    multiplication: BTreeMap<PartyIndex, KeepInitMulPhase3to4<Curve>>,
}

impl Secrets {
    fn clear_zero_2to3(&mut self) {
        for kept in self.zero_2to3.values_mut() {
            kept.seed.zeroize();
            kept.salt.zeroize();
        }
        self.zero_2to3.clear();
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        self.own_fragment.zeroize();
        self.correction.zeroize();
        self.clear_zero_2to3();
        for kept in self.zero_3to4.values_mut() {
            kept.seed.zeroize();
        }
        for kept in self.multiplication.values_mut() {
            kept.ot_sender.s.zeroize();
            kept.ot_receiver.seed.zeroize();
            kept.nonce.zeroize();
            kept.vec_r.zeroize();
            kept.correlation.zeroize();
        }
    }
}

/// One middle round as received: the sorted messages, the decoded
/// broadcasts, and the digest of this round's broadcasts for the next echo.
type Received<B> = (Sorted, BTreeMap<NodeId, B>, [u8; 32]);

/// Public state between rounds.
#[derive(Default)]
struct Transcript {
    /// Every participant's verifying share before the refresh: the expected
    /// ones, or those announced in round 1.
    current: VerifyingShares,
    own_proof: Option<ProofCommitment<Curve>>,
    /// Proof commitments received in round 2, by sender.
    commitments: BTreeMap<NodeId, HashOutput>,
    /// Zero-share seed commitments received in round 2.
    zero_commitments: Vec<TransmitInitZeroSharePhase2to4>,
    /// Our broadcast of the round just sent.
    own_broadcast: Vec<u8>,
    /// Our digest of the previous round's broadcasts.
    digest: [u8; 32],
}

struct Running {
    secrets: Secrets,
    transcript: Transcript,
}

enum State {
    /// Constructed; `start` not called yet.
    Ready(Box<Running>),
    /// Round 1 sent.
    AwaitRound1(Box<Running>),
    /// Round 2 sent.
    AwaitRound2(Box<Running>),
    /// Round 3 sent.
    AwaitRound3(Box<Running>),
    /// Round 4 sent (the new share exists); waiting for the round-3 echoes.
    AwaitRound4 {
        output: Box<EcdsaRefreshOutput>,
        digest: [u8; 32],
    },
    /// Finished or failed: nothing secret is left.
    Done,
}

/// One party's ECDSA share refresh.
pub(crate) struct Refresh {
    session: SessionId,
    me: NodeId,
    index: PartyIndex,
    roster: Roster,
    threshold: u16,
    parameters: Parameters,
    public_key: [u8; PUBLIC_KEY_LEN],
    pk: AffinePoint,
    chain_code: [u8; 32],
    /// The verifying shares the start came with (`None`: a version-1
    /// package, learned in round 1).
    expected: Option<VerifyingShares>,
    own_verifying_share: [u8; PUBLIC_KEY_LEN],
    context: [u8; 32],
    refresh_id: [u8; 32],
    state: State,
}

impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcdsaRefresh")
            .field("session", &self.session)
            .field("me", &self.me)
            .field("participants", &self.roster.nodes())
            .field("threshold", &self.threshold)
            .field("public_key", &hex::encode(self.public_key))
            .field("round", &self.expected_round())
            .finish_non_exhaustive()
    }
}

/// The refresh context: Sigil's session, the key, the chain code, the
/// threshold, the participants and (if known) the verifying shares. Parties
/// that disagree on any of it stop after round 1.
fn context_digest(
    session: SessionId,
    threshold: u16,
    roster: &Roster,
    public_key: &[u8; PUBLIC_KEY_LEN],
    chain_code: &[u8; 32],
    verifying_shares: Option<&VerifyingShares>,
) -> [u8; 32] {
    let mut h = hasher(CONTEXT_DOMAIN);
    h.update([Scheme::EcdsaSecp256k1.tag()]);
    h.update(session.as_bytes());
    h.update(threshold.to_be_bytes());
    hash_nodes(&mut h, roster.nodes());
    h.update(public_key);
    h.update(chain_code);
    match verifying_shares {
        None => h.update([0]),
        Some(shares) => {
            h.update([1]);
            for share in shares.values() {
                h.update(share);
            }
        }
    }
    h.finalize().into()
}

/// `node-2, node-5`.
fn list(nodes: &[NodeId]) -> String {
    nodes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn derive_id(domain: &[u8], context: &[u8; 32]) -> [u8; 32] {
    let mut h = hasher(domain);
    h.update(context);
    h.finalize().into()
}

/// `scalar·G`, SEC1 compressed (dkls23's curve).
fn verifying_share_of(scalar: &Scalar) -> Vec<u8> {
    point_to_bytes::<Curve>(&(k256_dkls23::ProjectivePoint::GENERATOR * scalar).to_affine())
}

/// A compressed point as dkls23's affine point.
fn dkls_point(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<AffinePoint, ProtocolError> {
    let repr = (*bytes).into();
    Option::<AffinePoint>::from(AffinePoint::from_bytes(&repr))
        .ok_or_else(|| ProtocolError::InvalidParameters("invalid secp256k1 point".into()))
}

impl Refresh {
    pub(crate) fn new(
        session: SessionId,
        me: NodeId,
        participants: &[NodeId],
        threshold: u16,
        start: RefreshStart,
    ) -> Result<Self, ProtocolError> {
        let roster = Roster::new(Some(me), participants)?;
        check_threshold(threshold, roster.len())?;
        let parameters = Parameters::new(
            u8::try_from(threshold).map_err(internal)?,
            u8::try_from(roster.len()).map_err(internal)?,
        )
        .map_err(|e| ProtocolError::InvalidParameters(e.to_string()))?;
        let index = roster.index(me)?;
        let invalid = |m: String| ProtocolError::InvalidParameters(m);

        let (poly_point, public_key, chain_code, expected) = match start {
            RefreshStart::Existing(share) => {
                if share.node_id() != me {
                    return Err(invalid(format!(
                        "key share belongs to {}, not {me}",
                        share.node_id()
                    )));
                }
                if share.participants() != roster.nodes() || share.threshold() != threshold {
                    return Err(invalid(format!(
                        "the key share is for a {}-of-[{}] key, not {threshold}-of-[{}]; a refresh keeps the participants and the threshold",
                        share.threshold(),
                        list(share.participants()),
                        list(roster.nodes())
                    )));
                }
                // Checked against its package, including its verifying share.
                let party = share.party()?;
                let package = share.package();
                if package.verifying_shares().is_some() {
                    package.check_verifying_shares()?;
                }
                (
                    Zeroizing::new(party.poly_point),
                    *package.public_key(),
                    *package.chain_code(),
                    package.verifying_shares().cloned(),
                )
            }
            RefreshStart::Hollow {
                share,
                public_key,
                chain_code,
                verifying_shares,
            } => {
                if !verifying_shares.keys().eq(roster.nodes().iter()) {
                    return Err(invalid(
                        "a hollow start needs the verifying share of exactly every participant"
                            .into(),
                    ));
                }
                // Valid points on one polynomial through the group key.
                EcdsaPublicKeyPackage::with_verifying_shares(
                    &public_key,
                    chain_code,
                    threshold,
                    &verifying_shares,
                )?;
                let mut repr = k256_dkls23::FieldBytes::from(*share);
                let scalar = Option::<Scalar>::from(Scalar::from_repr(repr));
                repr.zeroize();
                let scalar = Zeroizing::new(scalar.unwrap_or(Scalar::ZERO));
                let mine = verifying_shares.get(&me).copied();
                if bool::from(scalar.is_zero())
                    || mine.is_none_or(|mine| verifying_share_of(&scalar) != mine)
                {
                    return Err(invalid(format!(
                        "the hollow share of {me} does not match its verifying share"
                    )));
                }
                (scalar, public_key, chain_code, Some(verifying_shares))
            }
        };

        let pk = dkls_point(&public_key)?;
        let own_verifying_share = parse_public_key(&verifying_share_of(&poly_point))?;
        let context = context_digest(
            session,
            threshold,
            &roster,
            &public_key,
            &chain_code,
            expected.as_ref(),
        );
        let refresh_id = derive_id(REFRESH_ID_DOMAIN, &context);
        // The hollow party every start is reduced to, as the crate's
        // `repair_assemble` builds it: no zero-share seeds, no multiplication
        // state, master derivation data. Its session id is common to all
        // participants (the complete refresh derives the pairwise OT session
        // ids and seed contexts from it and chains it into the new one).
        let party = Party {
            parameters: parameters.clone(),
            party_index: index,
            session_id: derive_id(SESSION_DOMAIN, &context).to_vec(),
            poly_point: *poly_point,
            pk,
            zero_share: ZeroShare::initialize(Vec::new()),
            mul_senders: BTreeMap::new(),
            mul_receivers: BTreeMap::new(),
            derivation_data: DerivData {
                depth: 0,
                child_number: 0,
                parent_fingerprint: [0; 4],
                poly_point: *poly_point,
                pk,
                chain_code,
            },
            // Sigil's DKG keeps no address in its parties either.
            address: String::new(),
        };
        drop(poly_point);
        let running = Running {
            secrets: Secrets {
                party,
                own_fragment: Scalar::ZERO,
                correction: Scalar::ZERO,
                zero_2to3: BTreeMap::new(),
                zero_3to4: BTreeMap::new(),
                multiplication: BTreeMap::new(),
            },
            transcript: Transcript::default(),
        };
        Ok(Self {
            session,
            me,
            index,
            roster,
            threshold,
            parameters,
            public_key,
            pk,
            chain_code,
            expected,
            own_verifying_share,
            context,
            refresh_id,
            state: State::Ready(Box::new(running)),
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
        common::echo_digest(ECHO_DOMAIN, &self.context, round, broadcasts)
    }

    /// A payload naming DKLs23 parties must name its sender and us.
    fn check_parties(
        &self,
        from: NodeId,
        sender: PartyIndex,
        receiver: PartyIndex,
    ) -> Result<(), ProtocolError> {
        common::check_parties(&self.roster, self.index, from, sender, Some(receiver))
    }

    /// One middle round in: its messages sorted strictly, its broadcasts
    /// decoded, their echoes of the previous round checked against ours
    /// (before anything else of the round is used), and the digest of this
    /// round's broadcasts (ours included) that the next round echoes.
    fn receive<B: serde::de::DeserializeOwned>(
        &self,
        round: u16,
        what: &str,
        transcript: &Transcript,
        inbound: Vec<Message>,
        echo: impl Fn(&B) -> &[u8],
    ) -> Result<Received<B>, ProtocolError> {
        let others = self.roster.others(self.me);
        let sorted = sort_inbound(
            self.session,
            round,
            Some(self.me),
            &others,
            Self::expect_both(),
            inbound,
        )?;
        let mut broadcasts = BTreeMap::new();
        for (&from, bytes) in &sorted.broadcast {
            let broadcast: B = parse(from, what, decode(bytes))?;
            broadcasts.insert(from, broadcast);
        }
        check_echoes(
            broadcasts.iter().map(|(n, b)| (*n, echo(b))),
            &transcript.digest,
        )?;
        let mut seen: BTreeMap<NodeId, &[u8]> = sorted
            .broadcast
            .iter()
            .map(|(n, b)| (*n, b.as_slice()))
            .collect();
        seen.insert(self.me, &transcript.own_broadcast);
        let digest = self.echo_digest(round, &seen);
        Ok((sorted, broadcasts, digest))
    }

    fn expect_both() -> Expect {
        Expect {
            broadcast: true,
            direct: true,
            ..Expect::default()
        }
    }

    fn begin(&mut self, mut run: Box<Running>) -> Result<Vec<Message>, ProtocolError> {
        let fragments = Zeroizing::new(run.secrets.party.refresh_complete_phase1());
        if fragments.len() != self.roster.len() {
            return Err(internal("wrong number of polynomial evaluations"));
        }
        let mut out = Vec::with_capacity(self.roster.len());
        for (fragment, &node) in fragments.iter().zip(self.roster.nodes()) {
            if node == self.me {
                run.secrets.own_fragment = *fragment;
            } else {
                let mut payload = encode_secret(fragment)?;
                let payload = std::mem::take(&mut *payload);
                out.push(self.message(1, Recipient::Node(node), payload));
            }
        }
        let mut broadcast = Vec::with_capacity(ROUND1_LEN);
        broadcast.extend_from_slice(&self.context);
        broadcast.extend_from_slice(&self.own_verifying_share);
        out.push(self.message(1, Recipient::Broadcast, broadcast.clone()));
        run.transcript.own_broadcast = broadcast;
        self.state = State::AwaitRound1(run);
        Ok(out)
    }

    /// Round 1 in: contexts, verifying shares, polynomial evaluations.
    fn round1(
        &mut self,
        mut run: Box<Running>,
        inbound: Vec<Message>,
    ) -> Result<Transition<EcdsaRefreshOutput>, ProtocolError> {
        let others = self.roster.others(self.me);
        let sorted = sort_inbound(
            self.session,
            1,
            Some(self.me),
            &others,
            Self::expect_both(),
            inbound,
        )?;

        let mut announced = VerifyingShares::new();
        let mut differing = Vec::new();
        for (&from, bytes) in &sorted.broadcast {
            if bytes.len() != ROUND1_LEN {
                return Err(ProtocolError::Malformed {
                    from,
                    reason: format!("refresh round-1 broadcast of {} bytes", bytes.len()),
                });
            }
            let (context, share) = bytes.split_at(32);
            let share = parse(from, "verifying share", parse_public_key(share))?;
            if context != self.context {
                differing.push(from);
            }
            announced.insert(from, share);
        }
        if !differing.is_empty() {
            return Err(ProtocolError::InvalidParameters(format!(
                "{} run this refresh for another session, key, chain code, threshold, participant set or set of verifying shares",
                list(&differing)
            )));
        }
        announced.insert(self.me, self.own_verifying_share);
        match &self.expected {
            Some(expected) => {
                let stale: Vec<NodeId> = announced
                    .iter()
                    .filter(|(node, share)| expected.get(node) != Some(share))
                    .map(|(node, _)| *node)
                    .collect();
                if !stale.is_empty() {
                    return Err(ProtocolError::Misbehaviour {
                        culprits: stale,
                        reason: "their shares do not match their verifying shares in the key package (stale or corrupted shares)".into(),
                    });
                }
            }
            None => {
                let in_order: Vec<[u8; PUBLIC_KEY_LEN]> = announced.values().copied().collect();
                check_share_polynomial(&self.public_key, self.threshold, &in_order).map_err(
                    |_| ProtocolError::Misbehaviour {
                        culprits: Vec::new(),
                        reason: "the verifying shares the participants announced do not interpolate to the group key".into(),
                    },
                )?;
            }
        }
        run.transcript.current = announced;

        let mut seen: BTreeMap<NodeId, &[u8]> = sorted
            .broadcast
            .iter()
            .map(|(n, b)| (*n, b.as_slice()))
            .collect();
        seen.insert(self.me, &run.transcript.own_broadcast);
        let digest = self.echo_digest(1, &seen);

        let mut fragments = Zeroizing::new(Vec::with_capacity(self.roster.len()));
        fragments.push(run.secrets.own_fragment);
        run.secrets.own_fragment.zeroize();
        for (&from, bytes) in &sorted.direct {
            fragments.push(parse(
                from,
                "refresh polynomial evaluation",
                decode::<Scalar>(bytes),
            )?);
        }
        let (correction, own_proof, zero_kept, zero_commitments) = run
            .secrets
            .party
            .refresh_complete_phase2(&self.refresh_id, &fragments);
        drop(fragments);
        run.secrets.correction = correction;
        run.secrets.zero_2to3 = zero_kept;

        let broadcast = encode(&Round2Broadcast {
            echo: digest,
            proof_commitment: own_proof.commitment,
        })?;
        let mut out = Vec::with_capacity(self.roster.len());
        out.push(self.message(2, Recipient::Broadcast, broadcast.clone()));
        for transmit in &zero_commitments {
            let to = self.node_of(transmit.parties.receiver)?;
            out.push(self.message(2, Recipient::Node(to), encode(transmit)?));
        }
        run.transcript.own_proof = Some(own_proof);
        run.transcript.own_broadcast = broadcast;
        run.transcript.digest = digest;
        self.state = State::AwaitRound2(run);
        Ok(Transition::Continue(out))
    }

    /// Round 2 in: echoes of round 1, proof and seed commitments.
    fn round2(
        &mut self,
        mut run: Box<Running>,
        inbound: Vec<Message>,
    ) -> Result<Transition<EcdsaRefreshOutput>, ProtocolError> {
        // Nothing of round 2 is used unless everyone saw the same round 1.
        let (sorted, broadcasts, digest) = self.receive::<Round2Broadcast>(
            2,
            "refresh round-2 broadcast",
            &run.transcript,
            inbound,
            |b| &b.echo,
        )?;

        let mut zero_commitments = Vec::with_capacity(sorted.direct.len());
        for (&from, bytes) in &sorted.direct {
            let transmit: TransmitInitZeroSharePhase2to4 =
                parse(from, "refresh zero-share commitment", decode(bytes))?;
            self.check_parties(from, transmit.parties.sender, transmit.parties.receiver)?;
            zero_commitments.push(transmit);
        }

        let (zero_kept, zero_openings, mul_kept, multiplication) = run
            .secrets
            .party
            .refresh_complete_phase3(&self.refresh_id, &run.secrets.zero_2to3);
        run.secrets.clear_zero_2to3();
        run.secrets.zero_3to4 = zero_kept;
        run.secrets.multiplication = mul_kept;

        let own_proof = run
            .transcript
            .own_proof
            .as_ref()
            .ok_or_else(|| internal("no proof after round 1"))?;
        let broadcast = encode(&Round3Broadcast {
            echo: digest,
            proof: own_proof.proof.clone(),
        })?;
        let mut out = Vec::with_capacity(self.roster.len());
        out.push(self.message(3, Recipient::Broadcast, broadcast.clone()));
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
        run.transcript.commitments = broadcasts
            .into_iter()
            .map(|(node, b)| (node, b.proof_commitment))
            .collect();
        run.transcript.zero_commitments = zero_commitments;
        run.transcript.own_broadcast = broadcast;
        run.transcript.digest = digest;
        self.state = State::AwaitRound3(run);
        Ok(Transition::Continue(out))
    }

    /// Round 3 in: echoes of round 2, proofs, seed openings, OT setup; the
    /// new share.
    fn round3(
        &mut self,
        run: Box<Running>,
        inbound: Vec<Message>,
    ) -> Result<Transition<EcdsaRefreshOutput>, ProtocolError> {
        // No proof or opening is used unless everyone saw the same round 2.
        let (sorted, broadcasts, round3_digest) = self.receive::<Round3Broadcast>(
            3,
            "refresh round-3 broadcast",
            &run.transcript,
            inbound,
            |b| &b.echo,
        )?;

        let mut zero_openings = Vec::with_capacity(sorted.direct.len());
        let mut multiplication = Vec::with_capacity(sorted.direct.len());
        for (&from, bytes) in &sorted.direct {
            let Round3Direct {
                zero_share,
                multiplication: mul,
            } = parse(from, "refresh round-3 direct message", decode(bytes))?;
            self.check_parties(from, zero_share.parties.sender, zero_share.parties.receiver)?;
            self.check_parties(from, mul.parties.sender, mul.parties.receiver)?;
            zero_openings.push(zero_share);
            multiplication.push(mul);
        }

        // Every party's proof against the commitment it broadcast in round 2.
        let own_proof = run
            .transcript
            .own_proof
            .clone()
            .ok_or_else(|| internal("no proof after round 1"))?;
        let mut proofs = vec![own_proof];
        for (node, broadcast) in broadcasts {
            let commitment = *run
                .transcript
                .commitments
                .get(&node)
                .ok_or_else(|| internal("missing round-2 commitment"))?;
            proofs.push(ProofCommitment {
                index: self.roster.index(node)?,
                proof: broadcast.proof,
                commitment,
            });
        }

        let secrets = &run.secrets;
        let result = secrets.party.refresh_complete_phase4(
            &self.refresh_id,
            &secrets.correction,
            &proofs,
            &secrets.zero_3to4,
            &run.transcript.zero_commitments,
            &zero_openings,
            &secrets.multiplication,
            &multiplication,
        );
        for opening in &mut zero_openings {
            opening.seed.zeroize();
            opening.salt.zeroize();
        }
        drop(multiplication);
        let party = result.map_err(|e| blame(&self.roster, self.index, e))?;
        let transcript = &run.transcript;

        // The verifying shares move by each party's committed correction.
        let mut current = BTreeMap::new();
        for (node, share) in &transcript.current {
            current.insert(self.roster.index(*node)?, dkls_point(share)?);
        }
        let refreshed = PublicKeyPackage::<Curve>::new(self.pk, current, self.parameters.clone())
            .refresh(&self.refresh_id, &proofs)
            .map_err(|reason| internal(format!("refreshing the verifying shares: {reason}")))?;
        let mut verifying_shares = VerifyingShares::new();
        for &node in self.roster.nodes() {
            let point = refreshed
                .verifying_share(self.roster.index(node)?)
                .ok_or_else(|| internal(format!("no refreshed verifying share for {node}")))?;
            verifying_shares.insert(node, parse_public_key(&point_to_bytes::<Curve>(point))?);
        }
        let package = EcdsaPublicKeyPackage::with_verifying_shares(
            &self.public_key,
            self.chain_code,
            self.threshold,
            &verifying_shares,
        )?;
        let public_key_package = package.to_bytes();
        // Checks the new party against the package: same key and chain
        // code, multiplication state with every other participant, and its
        // share matching its new verifying share.
        let key_share = EcdsaKeyShare::from_party(self.me, package, &party)?;
        drop(party);
        drop(run);
        let output = Box::new(EcdsaRefreshOutput {
            key_share,
            public_key: self.public_key.to_vec(),
            public_key_package,
        });
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
        output: Box<EcdsaRefreshOutput>,
        digest: [u8; 32],
        inbound: Vec<Message>,
    ) -> Result<Transition<EcdsaRefreshOutput>, ProtocolError> {
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
            output: *output,
        })
    }
}

impl Protocol for Refresh {
    type Output = EcdsaRefreshOutput;

    fn session_id(&self) -> SessionId {
        self.session
    }

    fn expected_round(&self) -> u16 {
        match self.state {
            State::Ready(_) | State::AwaitRound1(_) => 1,
            State::AwaitRound2(_) => 2,
            State::AwaitRound3(_) => 3,
            State::AwaitRound4 { .. } => 4,
            State::Done => 5,
        }
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Ready(run) => self.begin(run),
            _ => Err(ProtocolError::OutOfOrder("refresh already started".into())),
        }
    }

    fn step(
        &mut self,
        inbound: Vec<Message>,
    ) -> Result<Transition<EcdsaRefreshOutput>, ProtocolError> {
        // Any failure leaves the state at `Done`: secrets are dropped and the
        // instance cannot be stepped again.
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitRound1(run) => self.round1(run, inbound),
            State::AwaitRound2(run) => self.round2(run, inbound),
            State::AwaitRound3(run) => self.round3(run, inbound),
            State::AwaitRound4 { output, digest } => self.round4(output, digest, inbound),
            State::Ready(_) => Err(ProtocolError::OutOfOrder(
                "refresh stepped before start".into(),
            )),
            State::Done => Err(ProtocolError::OutOfOrder(
                "refresh already finished or failed".into(),
            )),
        }
    }
}
