//! FROST distributed key generation (Pedersen DKG with proofs of knowledge,
//! RFC 9591's companion DKG as implemented by `frost-core`), as a three-step
//! state machine with an echo round so a relay cannot equivocate.
//!
//! - `start`: `part1` → round 1, a Broadcast of this party's commitment package.
//! - `step(round 1)`: `part2` → round 2, one direct (to be end-to-end
//!   encrypted) secret share per other party, plus a Broadcast echo: a digest
//!   of every party's round-1 package as this party saw it.
//! - `step(round 2)`: every echo must equal our own digest (else
//!   [`ProtocolError::InconsistentBroadcast`]), then `part3` verifies each
//!   received share against its sender's commitment → [`DkgOutput`].
//!
//! Secret packages move by value from state to state and are zeroized on
//! drop by `frost-core`.

use std::collections::BTreeMap;

use frost_core::keys::dkg::{self, round1, round2};
use frost_core::{Identifier, keys::KeyPackage};
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::common::{Roster, Suite, internal};
use super::{DkgOutput, KeyShare};
use crate::rounds::{Expect, check_echoes, parse, sort_inbound};
use crate::{Message, NodeId, Protocol, ProtocolError, Recipient, SessionId, Transition};

/// Domain separator of the round-1 echo digest.
const ECHO_DOMAIN: &[u8] = b"sigil/v1/frost-dkg/round1-echo";

enum State<C: Suite> {
    /// Constructed; `start` not called yet.
    Ready {
        secret: round1::SecretPackage<C>,
        package: Vec<u8>,
    },
    /// Round 1 sent; waiting for everyone else's round-1 packages.
    AwaitRound1 {
        secret: round1::SecretPackage<C>,
        package: Vec<u8>,
    },
    /// Round 2 sent; waiting for shares and echoes.
    AwaitRound2 {
        secret: round2::SecretPackage<C>,
        round1: BTreeMap<Identifier<C>, round1::Package<C>>,
        digest: [u8; 32],
    },
    /// Finished or failed: nothing secret is left.
    Done,
}

/// One party's DKG.
pub(crate) struct Dkg<C: Suite> {
    session: SessionId,
    me: NodeId,
    roster: Roster<C>,
    threshold: u16,
    state: State<C>,
}

impl<C: Suite> std::fmt::Debug for Dkg<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dkg")
            .field("scheme", &C::SCHEME)
            .field("session", &self.session)
            .field("me", &self.me)
            .field("threshold", &self.threshold)
            .field("round", &self.expected_round())
            .finish_non_exhaustive()
    }
}

impl<C: Suite> Dkg<C> {
    pub(crate) fn new<R: RngCore + CryptoRng>(
        session: SessionId,
        me: NodeId,
        participants: &[NodeId],
        threshold: u16,
        rng: &mut R,
    ) -> Result<Self, ProtocolError> {
        let roster = Roster::<C>::new(Some(me), participants)?;
        let max_signers = u16::try_from(roster.len())
            .map_err(|_| ProtocolError::InvalidParameters("too many participants".into()))?;
        if threshold < 2 || threshold > max_signers {
            return Err(ProtocolError::InvalidParameters(format!(
                "threshold {threshold} must be between 2 and the number of participants ({max_signers})"
            )));
        }
        let (secret, package) = dkg::part1::<C, _>(roster.id(me)?, max_signers, threshold, rng)
            .map_err(|e| ProtocolError::InvalidParameters(format!("DKG part 1: {e}")))?;
        let package = package.serialize().map_err(internal)?;
        Ok(Self {
            session,
            me,
            roster,
            threshold,
            state: State::Ready { secret, package },
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

    /// Digest of every party's round-1 package (ours included), sorted by sender.
    fn echo_digest(&self, packages: &BTreeMap<NodeId, &[u8]>) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update((ECHO_DOMAIN.len() as u32).to_be_bytes());
        h.update(ECHO_DOMAIN);
        h.update([C::SCHEME.tag()]);
        h.update(self.session.as_bytes());
        h.update(self.threshold.to_be_bytes());
        h.update((packages.len() as u32).to_be_bytes());
        for (node, bytes) in packages {
            h.update(node.get().to_be_bytes());
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
        h.finalize().into()
    }

    fn round1(
        &mut self,
        secret: round1::SecretPackage<C>,
        own_package: Vec<u8>,
        inbound: Vec<Message>,
    ) -> Result<Transition<DkgOutput>, ProtocolError> {
        let others = self.roster.others(Some(self.me));
        let expect = Expect {
            broadcast: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(self.session, 1, Some(self.me), &others, expect, inbound)?;

        let mut round1 = BTreeMap::new();
        for (&from, bytes) in &sorted.broadcast {
            let package = parse(
                from,
                "DKG round-1 package",
                round1::Package::<C>::deserialize(bytes),
            )?;
            let coefficients =
                parse(from, "DKG commitment", package.commitment().serialize())?.len();
            if coefficients != usize::from(self.threshold) {
                return Err(ProtocolError::Malformed {
                    from,
                    reason: format!(
                        "commitment has {coefficients} coefficients, expected {}",
                        self.threshold
                    ),
                });
            }
            round1.insert(self.roster.id(from)?, package);
        }

        let mut seen: BTreeMap<NodeId, &[u8]> = sorted
            .broadcast
            .iter()
            .map(|(n, b)| (*n, b.as_slice()))
            .collect();
        seen.insert(self.me, &own_package);
        let digest = self.echo_digest(&seen);

        let (secret, shares) = dkg::part2(secret, &round1).map_err(|e| self.roster.blame(e))?;
        let mut out = Vec::with_capacity(shares.len() + 1);
        for node in others {
            let share = shares
                .get(&self.roster.id(node)?)
                .ok_or_else(|| internal("missing share"))?;
            out.push(self.message(
                2,
                Recipient::Node(node),
                share.serialize().map_err(internal)?,
            ));
        }
        drop(shares);
        out.push(self.message(2, Recipient::Broadcast, digest.to_vec()));
        self.state = State::AwaitRound2 {
            secret,
            round1,
            digest,
        };
        Ok(Transition::Continue(out))
    }

    fn round2(
        &mut self,
        secret: round2::SecretPackage<C>,
        round1: BTreeMap<Identifier<C>, round1::Package<C>>,
        digest: [u8; 32],
        inbound: Vec<Message>,
    ) -> Result<Transition<DkgOutput>, ProtocolError> {
        let others = self.roster.others(Some(self.me));
        let expect = Expect {
            broadcast: true,
            direct: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(self.session, 2, Some(self.me), &others, expect, inbound)?;

        // Echo check first: no share is used unless everyone saw the same round 1.
        check_echoes(
            sorted.broadcast.iter().map(|(n, e)| (*n, e.as_slice())),
            &digest,
        )?;

        let mut round2 = BTreeMap::new();
        for (&from, bytes) in &sorted.direct {
            let package = parse(
                from,
                "DKG round-2 package",
                round2::Package::<C>::deserialize(bytes),
            )?;
            round2.insert(self.roster.id(from)?, package);
        }
        let (key_package, public_key_package) =
            dkg::part3(&secret, &round1, &round2).map_err(|e| self.roster.blame(e))?;
        drop(round2);
        drop(secret);

        let output = self.output(&key_package, &public_key_package)?;
        self.state = State::Done;
        Ok(Transition::Finished {
            messages: Vec::new(),
            output,
        })
    }

    fn output(
        &self,
        key_package: &KeyPackage<C>,
        public_key_package: &frost_core::keys::PublicKeyPackage<C>,
    ) -> Result<DkgOutput, ProtocolError> {
        let public_key_package = public_key_package.serialize().map_err(internal)?;
        let key_share = KeyShare::new::<C>(
            self.me,
            Zeroizing::new(key_package.serialize().map_err(internal)?),
            public_key_package.clone(),
        )?;
        Ok(DkgOutput {
            public_key: C::encode_key(key_package.verifying_key())?,
            public_key_package,
            key_share,
        })
    }
}

impl<C: Suite> Protocol for Dkg<C> {
    type Output = DkgOutput;

    fn session_id(&self) -> SessionId {
        self.session
    }

    fn expected_round(&self) -> u16 {
        match self.state {
            State::Ready { .. } | State::AwaitRound1 { .. } => 1,
            State::AwaitRound2 { .. } => 2,
            State::Done => 3,
        }
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Ready { secret, package } => {
                let message = self.message(1, Recipient::Broadcast, package.clone());
                self.state = State::AwaitRound1 { secret, package };
                Ok(vec![message])
            }
            _ => Err(ProtocolError::OutOfOrder("DKG already started".into())),
        }
    }

    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<DkgOutput>, ProtocolError> {
        // Any failure leaves the state at `Done`: secrets are dropped and the
        // instance cannot be stepped again.
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitRound1 { secret, package } => self.round1(secret, package, inbound),
            State::AwaitRound2 {
                secret,
                round1,
                digest,
            } => self.round2(secret, round1, digest, inbound),
            State::Ready { .. } => {
                Err(ProtocolError::OutOfOrder("DKG stepped before start".into()))
            }
            State::Done => Err(ProtocolError::OutOfOrder(
                "DKG already finished or failed".into(),
            )),
        }
    }
}
