//! The redistribution state machine [`Vsr`]: one party's view of one
//! session (see the module documentation of [`crate::reshare`] for the
//! scheme, the rounds and the checks).
//!
//! Secrets: a dealer's polynomial lives only inside [`Vsr::new`] (in a
//! zeroizing vector); what survives construction are the subshares it
//! evaluates to, each in a zeroizing box, dropped as soon as they are sent.
//! A new participant's received subshares and its resulting share are held
//! the same way. Any error leaves the machine in `Done`, dropping every secret.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::SigningShare;
use frost_core::{Ciphersuite, Element, Group, Scalar};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::math::{
    Secret, base_mul, decode_element, decode_scalar, element_len, encode_element, encode_secret,
    evaluate, evaluate_commitment, from_signing_share, internal, lagrange_at_zero, random_nonzero,
    to_signing_share, x_scalar,
};
use super::{Committee, VsrOutput, VsrParams};
use crate::engine::ReshareKind;
use crate::rounds::{Expect, check_echoes, sort_inbound};
use crate::{Message, NodeId, Protocol, ProtocolError, Recipient, Scheme, SessionId, Transition};

/// Domain of the session context digest.
const CONTEXT_DOMAIN: &[u8] = b"sigil/v1/vsr/context";
/// Domain of a dealer's round-1 hash commitment to its commitment vector.
const COMMIT_DOMAIN: &[u8] = b"sigil/v1/vsr/commitment-hash";
/// Domain of the round-2 echo (of the round-1 hashes).
const ECHO1_DOMAIN: &[u8] = b"sigil/v1/vsr/round1-echo";
/// Domain of the round-3 echo (of the revealed commitment vectors).
const ECHO2_DOMAIN: &[u8] = b"sigil/v1/vsr/round2-echo";
/// Length of a digest (hash commitment or echo).
const DIGEST_LEN: usize = 32;

type Digest32 = [u8; DIGEST_LEN];

/// One round's inbound payloads: broadcasts and (secret) direct messages, by sender.
type SortedRound = (
    BTreeMap<NodeId, Vec<u8>>,
    BTreeMap<NodeId, Zeroizing<Vec<u8>>>,
);

/// What a dealer deals: its Feldman commitment vector `C_{i,k} = a_{i,k}·G`
/// (and its encoding), and the subshare `f_i(x_j)` of every new participant.
struct Deal<C: Ciphersuite> {
    commitment: Vec<Element<C>>,
    encoded: Vec<u8>,
    subshares: BTreeMap<NodeId, Zeroizing<Secret<C>>>,
}

impl<C: Ciphersuite> Deal<C> {
    /// Deals the polynomial with `coefficients` (`a_{i,0} = w_i` first) to
    /// the new participants at `new_xs`.
    fn new(
        coefficients: &[Secret<C>],
        new_xs: &BTreeMap<NodeId, Scalar<C>>,
    ) -> Result<Self, ProtocolError> {
        let commitment: Vec<Element<C>> =
            coefficients.iter().map(|a| base_mul::<C>(&a.0)).collect();
        let mut encoded = Vec::new();
        for c in &commitment {
            encoded.extend_from_slice(&encode_element::<C>(c)?);
        }
        let subshares = new_xs
            .iter()
            .map(|(node, x)| (*node, Zeroizing::new(evaluate(coefficients, x))))
            .collect();
        Ok(Self {
            commitment,
            encoded,
            subshares,
        })
    }
}

enum State<C: Ciphersuite> {
    /// Constructed; `start` not called yet. `deal` is `Some` for a dealer.
    Ready { deal: Option<Deal<C>> },
    /// Round 1 sent (a dealer's hash commitment); waiting for the dealers' hashes.
    AwaitRound1 { deal: Option<Deal<C>> },
    /// Round 2 sent (echo, and a dealer's commitment vector and subshares);
    /// waiting for the echoes, the revealed vectors and this party's subshares.
    AwaitRound2 {
        hashes: BTreeMap<NodeId, Digest32>,
        digest: Digest32,
        own: Option<(Vec<Element<C>>, Vec<u8>)>,
        own_subshare: Option<Zeroizing<Secret<C>>>,
    },
    /// Round 3 sent (echo of the vectors); waiting for everyone's echo.
    AwaitRound3 {
        commitments: BTreeMap<NodeId, Vec<Element<C>>>,
        subshares: BTreeMap<NodeId, Zeroizing<Secret<C>>>,
        digest: Digest32,
    },
    /// Finished or failed: nothing secret is left.
    Done,
}

/// One party's verifiable secret redistribution (dealer, new participant, or both).
pub(crate) struct Vsr<C: Ciphersuite> {
    scheme: Scheme,
    session: SessionId,
    me: NodeId,
    old: Committee,
    new: Committee,
    dealers: BTreeSet<NodeId>,
    /// Dealers ∪ new participants: everyone who takes part in every round.
    parties: BTreeSet<NodeId>,
    group_key: Element<C>,
    /// `λ_i·Y_i` per dealer: what its constant-term commitment must be.
    expected_constants: BTreeMap<NodeId, Element<C>>,
    /// The new participants' x-coordinates as scalars.
    new_xs: BTreeMap<NodeId, Scalar<C>>,
    /// Digest of every public parameter of the session, bound into every
    /// hash commitment and echo.
    context: Digest32,
    state: State<C>,
}

impl<C: Ciphersuite> std::fmt::Debug for Vsr<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vsr")
            .field("scheme", &self.scheme)
            .field("suite", &C::ID)
            .field("session", &self.session)
            .field("me", &self.me)
            .field("old", &self.old)
            .field("dealers", &self.dealers)
            .field("new", &self.new)
            .field("round", &self.expected_round())
            .finish_non_exhaustive()
    }
}

fn invalid(reason: impl Into<String>) -> ProtocolError {
    ProtocolError::InvalidParameters(reason.into())
}

impl<C: Ciphersuite> Vsr<C> {
    /// Validates the parameters and, for a dealer, draws its polynomial
    /// `f_i` (degree `t' − 1`, `f_i(0) = λ_i·s_i`) and evaluates its subshares.
    /// `share` is this party's old share `s_i`: required for a dealer, not used otherwise.
    pub(crate) fn new<R: RngCore + CryptoRng>(
        params: VsrParams<C>,
        share: Option<&SigningShare<C>>,
        rng: &mut R,
    ) -> Result<Self, ProtocolError> {
        let VsrParams {
            scheme,
            kind,
            session,
            me,
            old,
            dealers: dealer_list,
            new,
            group_key,
            verifying_shares,
        } = params;

        let mut dealers = BTreeSet::new();
        for &dealer in &dealer_list {
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
        if kind == ReshareKind::Refresh && new != old {
            return Err(invalid(
                "a refresh cannot change the threshold or the participant set",
            ));
        }
        let parties: BTreeSet<NodeId> = dealers.iter().copied().chain(new.nodes()).collect();
        if !parties.contains(&me) {
            return Err(invalid(format!(
                "{me} is neither a dealer nor a new participant"
            )));
        }

        // Old x-coordinates of the dealers, and λ_i over them.
        let mut dealer_xs = BTreeMap::new();
        for &dealer in &dealers {
            let x = old
                .coordinate(dealer)
                .ok_or_else(|| internal("dealer without coordinate"))?;
            dealer_xs.insert(dealer, x_scalar::<C>(x)?);
        }
        let mut new_xs = BTreeMap::new();
        for (node, x) in new.coordinates() {
            new_xs.insert(*node, x_scalar::<C>(*x)?);
        }
        let mut lambdas = BTreeMap::new();
        let mut expected_constants = BTreeMap::new();
        let mut interpolated = <C::Group>::identity();
        for &dealer in &dealers {
            let y_i = verifying_shares.get(&dealer).ok_or_else(|| {
                invalid(format!(
                    "no verifying share of dealer {dealer} in the current key"
                ))
            })?;
            let lambda = lagrange_at_zero::<C>(&dealer_xs, dealer)?;
            let constant = *y_i * lambda;
            interpolated = interpolated + constant;
            lambdas.insert(dealer, lambda);
            expected_constants.insert(dealer, constant);
        }
        if interpolated != group_key {
            return Err(invalid(
                "the dealers' verifying shares do not interpolate to the group key",
            ));
        }

        let deal = if dealers.contains(&me) {
            let share =
                share.ok_or_else(|| invalid(format!("dealer {me} needs its current share")))?;
            let s = Zeroizing::new(from_signing_share(share)?);
            if Some(&base_mul::<C>(&s.0)) != verifying_shares.get(&me) {
                return Err(invalid(format!(
                    "the share of {me} does not match its verifying share in the current key"
                )));
            }
            let lambda = *lambdas.get(&me).ok_or_else(|| internal("no λ"))?;
            let mut coefficients = Zeroizing::new(Vec::with_capacity(usize::from(new.threshold())));
            coefficients.push(Secret(lambda * s.0));
            for _ in 1..new.threshold() {
                coefficients.push(random_nonzero::<C, R>(rng));
            }
            Some(Deal::new(&coefficients, &new_xs)?)
        } else {
            None
        };

        let context = context_digest::<C>(
            scheme,
            session,
            kind,
            &old,
            &dealers,
            &new,
            &group_key,
            &verifying_shares,
        )?;
        Ok(Self {
            scheme,
            session,
            me,
            old,
            new,
            dealers,
            parties,
            group_key,
            expected_constants,
            new_xs,
            context,
            state: State::Ready { deal },
        })
    }

    fn is_new_participant(&self) -> bool {
        self.new.contains(self.me)
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

    /// `H(domain, session, dealer, context, vector)`: a dealer's round-1
    /// commitment to the vector it reveals in round 2.
    pub(super) fn commitment_hash(&self, dealer: NodeId, encoded: &[u8]) -> Digest32 {
        let mut h = Sha256::new();
        put(&mut h, COMMIT_DOMAIN);
        h.update(self.session.as_bytes());
        h.update(dealer.get().to_be_bytes());
        h.update(self.context);
        put(&mut h, encoded);
        h.finalize().into()
    }

    /// Digest of every dealer's round-1 hash as this party saw it (its own included).
    fn echo1(&self, hashes: &BTreeMap<NodeId, Digest32>) -> Digest32 {
        let mut h = Sha256::new();
        put(&mut h, ECHO1_DOMAIN);
        h.update(self.context);
        h.update((hashes.len() as u32).to_be_bytes());
        for (node, hash) in hashes {
            h.update(node.get().to_be_bytes());
            h.update(hash);
        }
        h.finalize().into()
    }

    /// Digest of every dealer's revealed vector as this party saw it (its own included).
    fn echo2(&self, vectors: &BTreeMap<NodeId, &[u8]>) -> Digest32 {
        let mut h = Sha256::new();
        put(&mut h, ECHO2_DOMAIN);
        h.update(self.context);
        h.update((vectors.len() as u32).to_be_bytes());
        for (node, bytes) in vectors {
            h.update(node.get().to_be_bytes());
            put(&mut h, bytes);
        }
        h.finalize().into()
    }

    /// Everyone but this party.
    fn others(&self) -> BTreeSet<NodeId> {
        self.parties
            .iter()
            .copied()
            .filter(|n| *n != self.me)
            .collect()
    }

    /// Every dealer but this party.
    fn other_dealers(&self) -> BTreeSet<NodeId> {
        self.dealers
            .iter()
            .copied()
            .filter(|n| *n != self.me)
            .collect()
    }

    /// Sorts one round strictly. Not every party sends every kind of message
    /// in every round, so broadcasts and direct messages are sorted
    /// separately, each against the parties that must send it: `broadcasters`
    /// (each exactly one broadcast) and `direct_from` (each exactly one direct
    /// message to this party; `None`: this party receives none). A message
    /// of this session and round from a party of the session that has no
    /// such message to send is that party's fault: [`ProtocolError::Malformed`].
    fn sort_round(
        &self,
        round: u16,
        broadcasters: &BTreeSet<NodeId>,
        direct_from: Option<&BTreeSet<NodeId>>,
        inbound: Vec<Message>,
    ) -> Result<SortedRound, ProtocolError> {
        let no_one = BTreeSet::new();
        let direct_senders = direct_from.unwrap_or(&no_one);
        for m in &inbound {
            let ours = m.session == self.session && m.round == round && m.from != self.me;
            let uninvited = match m.to {
                Recipient::Broadcast => !broadcasters.contains(&m.from),
                Recipient::Node(to) => to == self.me && !direct_senders.contains(&m.from),
                Recipient::Coordinator => false,
            };
            if ours && uninvited && self.parties.contains(&m.from) {
                return Err(ProtocolError::Malformed {
                    from: m.from,
                    reason: format!("a message this party does not send in round {round}"),
                });
            }
        }
        let (direct, rest): (Vec<Message>, Vec<Message>) = inbound
            .into_iter()
            .partition(|m| matches!(m.to, Recipient::Node(_)));
        let broadcast_only = Expect {
            broadcast: true,
            ..Expect::default()
        };
        let broadcasts = sort_inbound(
            self.session,
            round,
            Some(self.me),
            broadcasters,
            broadcast_only,
            rest,
        )?
        .broadcast;
        let direct = match direct_from {
            Some(senders) => {
                let direct_only = Expect {
                    direct: true,
                    ..Expect::default()
                };
                sort_inbound(
                    self.session,
                    round,
                    Some(self.me),
                    senders,
                    direct_only,
                    direct,
                )?
                .direct
            }
            None => {
                // Nothing is expected: any direct message is refused.
                sort_inbound(
                    self.session,
                    round,
                    Some(self.me),
                    &self.others(),
                    Expect::default(),
                    direct,
                )?;
                BTreeMap::new()
            }
        };
        Ok((broadcasts, direct))
    }

    /// Parses a revealed commitment vector: a concatenation of canonical,
    /// non-identity points.
    fn decode_commitment(
        &self,
        from: NodeId,
        bytes: &[u8],
    ) -> Result<Vec<Element<C>>, ProtocolError> {
        let len = element_len::<C>()?;
        if bytes.is_empty() || !bytes.len().is_multiple_of(len) {
            return Err(ProtocolError::Malformed {
                from,
                reason: format!(
                    "commitment vector of {} bytes is not a sequence of {len}-byte points",
                    bytes.len()
                ),
            });
        }
        bytes
            .chunks(len)
            .enumerate()
            .map(|(k, chunk)| {
                decode_element::<C>(chunk).map_err(|e| ProtocolError::Malformed {
                    from,
                    reason: format!("commitment coefficient {k}: {e}"),
                })
            })
            .collect()
    }

    /// Round 1 in: the dealers' hash commitments. Round 2 out: the echo of
    /// those hashes, and (a dealer) its commitment vector and subshares.
    fn round1(
        &mut self,
        deal: Option<Deal<C>>,
        inbound: Vec<Message>,
    ) -> Result<Transition<VsrOutput<C>>, ProtocolError> {
        let (broadcasts, _) = self.sort_round(1, &self.other_dealers(), None, inbound)?;
        let mut hashes = BTreeMap::new();
        for (from, payload) in broadcasts {
            let hash =
                Digest32::try_from(payload.as_slice()).map_err(|_| ProtocolError::Malformed {
                    from,
                    reason: format!("hash commitment of {} bytes", payload.len()),
                })?;
            hashes.insert(from, hash);
        }
        if let Some(deal) = &deal {
            hashes.insert(self.me, self.commitment_hash(self.me, &deal.encoded));
        }
        let digest = self.echo1(&hashes);

        let mut out = Vec::new();
        let mut broadcast = digest.to_vec();
        let (own, own_subshare) = match deal {
            Some(Deal {
                commitment,
                encoded,
                mut subshares,
            }) => {
                broadcast.extend_from_slice(&encoded);
                for node in self.new.nodes().filter(|n| *n != self.me) {
                    let subshare = subshares
                        .remove(&node)
                        .ok_or_else(|| internal("missing subshare"))?;
                    let payload = encode_secret(&subshare);
                    out.push(self.message(2, Recipient::Node(node), payload.to_vec()));
                }
                (Some((commitment, encoded)), subshares.remove(&self.me))
            }
            None => (None, None),
        };
        out.push(self.message(2, Recipient::Broadcast, broadcast));
        self.state = State::AwaitRound2 {
            hashes,
            digest,
            own,
            own_subshare,
        };
        Ok(Transition::Continue(out))
    }

    /// Round 2 in: echoes of round 1 (checked first), the revealed vectors
    /// (checked against their hashes, decoded, `t'` coefficients) and this
    /// party's subshares (decoded). Round 3 out: the echo of the vectors.
    fn round2(
        &mut self,
        hashes: BTreeMap<NodeId, Digest32>,
        digest: Digest32,
        own: Option<(Vec<Element<C>>, Vec<u8>)>,
        own_subshare: Option<Zeroizing<Secret<C>>>,
        inbound: Vec<Message>,
    ) -> Result<Transition<VsrOutput<C>>, ProtocolError> {
        let other_dealers = self.other_dealers();
        let direct_from = self.is_new_participant().then_some(&other_dealers);
        let (broadcasts, direct) = self.sort_round(2, &self.others(), direct_from, inbound)?;

        // Split each broadcast into its echo and (a dealer's) revealed vector.
        let mut echoes = BTreeMap::new();
        let mut revealed: BTreeMap<NodeId, &[u8]> = BTreeMap::new();
        for (&from, payload) in &broadcasts {
            if payload.len() < DIGEST_LEN {
                return Err(ProtocolError::Malformed {
                    from,
                    reason: format!("round-2 broadcast of {} bytes", payload.len()),
                });
            }
            let (echo, rest) = payload.split_at(DIGEST_LEN);
            echoes.insert(from, echo);
            if self.dealers.contains(&from) {
                revealed.insert(from, rest);
            } else if !rest.is_empty() {
                return Err(ProtocolError::Malformed {
                    from,
                    reason: "a commitment vector from a party that is not a dealer".into(),
                });
            }
        }
        // Everyone saw the same hash commitments, or nothing else is looked at.
        check_echoes(echoes, &digest)?;

        let threshold = usize::from(self.new.threshold());
        let mut commitments = BTreeMap::new();
        for (&from, bytes) in &revealed {
            let committed = hashes.get(&from).ok_or_else(|| internal("no hash"))?;
            if self.commitment_hash(from, bytes) != *committed {
                return Err(ProtocolError::Misbehaviour {
                    culprits: vec![from],
                    reason: "revealed commitment vector does not match its round-1 hash".into(),
                });
            }
            let commitment = self.decode_commitment(from, bytes)?;
            if commitment.len() != threshold {
                return Err(ProtocolError::Misbehaviour {
                    culprits: vec![from],
                    reason: format!(
                        "commitment vector has {} coefficients, expected {threshold}: it would change the threshold",
                        commitment.len()
                    ),
                });
            }
            commitments.insert(from, commitment);
        }
        let own_encoded = own.as_ref().map(|(_, encoded)| encoded.clone());
        if let Some(encoded) = &own_encoded {
            revealed.insert(self.me, encoded);
        }
        let echo = self.echo2(&revealed);
        if let Some((commitment, _)) = own {
            commitments.insert(self.me, commitment);
        }

        let mut subshares = BTreeMap::new();
        for (&from, payload) in &direct {
            let subshare = decode_scalar::<C>(payload).ok_or_else(|| ProtocolError::Malformed {
                from,
                reason: "subshare is not a canonical scalar".into(),
            })?;
            subshares.insert(from, Zeroizing::new(Secret(subshare)));
        }
        drop(direct);
        if let Some(own) = own_subshare {
            subshares.insert(self.me, own);
        }

        self.state = State::AwaitRound3 {
            commitments,
            subshares,
            digest: echo,
        };
        Ok(Transition::Continue(vec![self.message(
            3,
            Recipient::Broadcast,
            echo.to_vec(),
        )]))
    }

    /// Round 3 in: echoes of the vectors (checked first). Then the checks
    /// of the module documentation, in order, and the output.
    fn round3(
        &mut self,
        commitments: BTreeMap<NodeId, Vec<Element<C>>>,
        subshares: BTreeMap<NodeId, Zeroizing<Secret<C>>>,
        digest: Digest32,
        inbound: Vec<Message>,
    ) -> Result<Transition<VsrOutput<C>>, ProtocolError> {
        let (broadcasts, _) = self.sort_round(3, &self.others(), None, inbound)?;
        check_echoes(broadcasts.iter().map(|(n, e)| (*n, e.as_slice())), &digest)?;

        // Public checks, the same at every party: C_{i,0} = λ_i·Y_i and Σ_i C_{i,0} = Y.
        let mut constant_sum = <C::Group>::identity();
        for (&dealer, commitment) in &commitments {
            let constant = commitment.first().ok_or_else(|| internal("empty vector"))?;
            if Some(constant) != self.expected_constants.get(&dealer) {
                return Err(ProtocolError::Misbehaviour {
                    culprits: vec![dealer],
                    reason: "constant-term commitment is not λ_i·Y_i: the dealer did not re-share its current share".into(),
                });
            }
            constant_sum = constant_sum + *constant;
        }
        if constant_sum != self.group_key {
            // Unreachable once every constant term is λ_i·Y_i (the
            // constructor checked Σ λ_i·Y_i = Y); kept as a last guard.
            return Err(internal("constant terms do not sum to the group key"));
        }

        // Private checks of a new participant: f_i(x_j)·G = Σ_l C_{i,l}·x_j^l.
        let share = if self.is_new_participant() {
            let x = self
                .new_xs
                .get(&self.me)
                .ok_or_else(|| internal("no x-coordinate"))?;
            let mut sum = Zeroizing::new(Secret::<C>::default());
            for (&dealer, commitment) in &commitments {
                let subshare = subshares
                    .get(&dealer)
                    .ok_or_else(|| internal("missing subshare"))?;
                if base_mul::<C>(&subshare.0) != evaluate_commitment::<C>(commitment, x) {
                    return Err(ProtocolError::Misbehaviour {
                        culprits: vec![dealer],
                        reason: "subshare does not match the dealer's commitment vector".into(),
                    });
                }
                *sum = Secret(sum.0 + subshare.0);
            }
            Some(sum)
        } else {
            None
        };
        drop(subshares);

        // The new group commitment Σ_i C_{i,l} and every new verifying share.
        let threshold = usize::from(self.new.threshold());
        let mut group_commitment = vec![<C::Group>::identity(); threshold];
        for commitment in commitments.values() {
            for (acc, c) in group_commitment.iter_mut().zip(commitment) {
                *acc = *acc + *c;
            }
        }
        let mut verifying_shares = BTreeMap::new();
        for (&node, x) in &self.new_xs {
            let y = evaluate_commitment::<C>(&group_commitment, x);
            if y == <C::Group>::identity() {
                return Err(internal(format!(
                    "the new verifying share of {node} is the identity"
                )));
            }
            verifying_shares.insert(node, y);
        }
        let share = match share {
            Some(s) => {
                if verifying_shares.get(&self.me) != Some(&base_mul::<C>(&s.0)) {
                    return Err(internal("new share does not match its verifying share"));
                }
                Some(to_signing_share(&s)?)
            }
            None => None,
        };

        self.state = State::Done;
        Ok(Transition::Finished {
            messages: Vec::new(),
            output: VsrOutput {
                share,
                verifying_shares,
                group_key: self.group_key,
                group_commitment,
                threshold: self.new.threshold(),
                participants: self.new.clone(),
            },
        })
    }
}

#[cfg(test)]
impl<C: Ciphersuite> Vsr<C> {
    /// Replaces this dealer's polynomial (tests of misbehaving dealers).
    pub(super) fn replace_polynomial(&mut self, coefficients: &[Secret<C>]) {
        let deal = Deal::new(coefficients, &self.new_xs).expect("deal");
        self.state = State::Ready { deal: Some(deal) };
    }

    /// Changes the subshare this dealer will send to `to` (tests).
    pub(super) fn tamper_subshare(&mut self, to: NodeId, f: impl FnOnce(&mut Secret<C>)) {
        if let State::Ready { deal: Some(deal) } = &mut self.state {
            f(deal.subshares.get_mut(&to).expect("subshare"));
        }
    }

    /// Makes this dealer commit to and reveal `encoded` instead of its
    /// vector's encoding (tests of malformed vectors).
    pub(super) fn replace_encoding(&mut self, encoded: Vec<u8>) {
        if let State::Ready { deal: Some(deal) } = &mut self.state {
            deal.encoded = encoded;
        }
    }

    /// The encoding of this dealer's commitment vector, before round 2 (tests).
    pub(super) fn deal_encoding(&self) -> Option<Vec<u8>> {
        match &self.state {
            State::Ready { deal: Some(deal) } | State::AwaitRound1 { deal: Some(deal) } => {
                Some(deal.encoded.clone())
            }
            _ => None,
        }
    }
}

/// Feeds a length-prefixed field into a hash.
fn put(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

/// Digest of the session's public parameters: scheme and ciphersuite,
/// session, kind, old and new sets with their x-coordinates and thresholds,
/// dealers, group key and the dealers' verifying shares. Parties that
/// disagree on any of it disagree on every echo.
#[allow(clippy::too_many_arguments)]
fn context_digest<C: Ciphersuite>(
    scheme: Scheme,
    session: SessionId,
    kind: ReshareKind,
    old: &Committee,
    dealers: &BTreeSet<NodeId>,
    new: &Committee,
    group_key: &Element<C>,
    verifying_shares: &BTreeMap<NodeId, Element<C>>,
) -> Result<Digest32, ProtocolError> {
    let mut h = Sha256::new();
    put(&mut h, CONTEXT_DOMAIN);
    h.update([scheme.tag()]);
    put(&mut h, C::ID.as_bytes());
    h.update(session.as_bytes());
    h.update([match kind {
        ReshareKind::Refresh => 1,
        ReshareKind::Reshare => 2,
    }]);
    for committee in [old, new] {
        h.update(committee.threshold().to_be_bytes());
        h.update((committee.len() as u32).to_be_bytes());
        for (node, x) in committee.coordinates() {
            h.update(node.get().to_be_bytes());
            h.update(x.to_be_bytes());
        }
    }
    h.update((dealers.len() as u32).to_be_bytes());
    for dealer in dealers {
        h.update(dealer.get().to_be_bytes());
        let y_i = verifying_shares
            .get(dealer)
            .ok_or_else(|| internal("no verifying share"))?;
        put(&mut h, &encode_element::<C>(y_i)?);
    }
    put(&mut h, &encode_element::<C>(group_key)?);
    Ok(h.finalize().into())
}

impl<C: Ciphersuite> Protocol for Vsr<C> {
    type Output = VsrOutput<C>;

    fn session_id(&self) -> SessionId {
        self.session
    }

    fn expected_round(&self) -> u16 {
        match self.state {
            State::Ready { .. } | State::AwaitRound1 { .. } => 1,
            State::AwaitRound2 { .. } => 2,
            State::AwaitRound3 { .. } => 3,
            State::Done => 4,
        }
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Ready { deal } => {
                let out = match &deal {
                    Some(deal) => vec![self.message(
                        1,
                        Recipient::Broadcast,
                        self.commitment_hash(self.me, &deal.encoded).to_vec(),
                    )],
                    None => Vec::new(),
                };
                self.state = State::AwaitRound1 { deal };
                Ok(out)
            }
            _ => Err(ProtocolError::OutOfOrder(
                "redistribution already started".into(),
            )),
        }
    }

    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<VsrOutput<C>>, ProtocolError> {
        // Any failure leaves the state at `Done`: secrets are dropped and the
        // instance cannot be stepped again.
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitRound1 { deal } => self.round1(deal, inbound),
            State::AwaitRound2 {
                hashes,
                digest,
                own,
                own_subshare,
            } => self.round2(hashes, digest, own, own_subshare, inbound),
            State::AwaitRound3 {
                commitments,
                subshares,
                digest,
            } => self.round3(commitments, subshares, digest, inbound),
            State::Ready { .. } => Err(ProtocolError::OutOfOrder(
                "redistribution stepped before start".into(),
            )),
            State::Done => Err(ProtocolError::OutOfOrder(
                "redistribution already finished or failed".into(),
            )),
        }
    }
}
