//! FROST two-round signing (RFC 9591 §5): the signer state machine run by
//! each node, and the coordinator's aggregator.
//!
//! The signer never accepts a signing package from the coordinator: it
//! builds it itself from its own commitment, exactly one commitment from
//! every other signer, and the message it was asked (and authorized) to
//! sign. The relay therefore cannot substitute the message or this signer's
//! commitment. Nonces live only in memory, are consumed by the single
//! `round2::sign` call and are zeroized on drop by `frost-core`.

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::{KeyPackage, PublicKeyPackage};
use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::round2::SignatureShare;
use frost_core::{CheaterDetection, Identifier, SigningPackage};

use super::KeyShare;
use super::common::{Roster, Suite, internal};
use crate::rounds::{Expect, parse, sort_inbound};
use crate::{Message, NodeId, Protocol, ProtocolError, Recipient, SessionId, Transition};

enum State<C: Suite> {
    /// Nonces drawn; commitment not sent yet.
    Ready { nonces: SigningNonces<C> },
    /// Commitment sent; waiting for the other signers' commitments.
    Committed { nonces: SigningNonces<C> },
    /// Share produced, or failed: the nonces are gone.
    Done,
}

/// One signer's FROST signing session.
pub(crate) struct Signer<C: Suite> {
    session: SessionId,
    me: NodeId,
    roster: Roster<C>,
    key_package: KeyPackage<C>,
    message: Vec<u8>,
    state: State<C>,
}

impl<C: Suite> std::fmt::Debug for Signer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &C::SCHEME)
            .field("session", &self.session)
            .field("me", &self.me)
            .field("round", &self.expected_round())
            .finish_non_exhaustive()
    }
}

/// Deserializes a key share's packages and checks they belong to `node` and
/// that every signer holds a share of the key.
fn open_key_share<C: Suite>(
    key_share: &KeyShare,
    node: Option<NodeId>,
) -> Result<(Option<KeyPackage<C>>, PublicKeyPackage<C>), ProtocolError> {
    if key_share.scheme() != C::SCHEME {
        return Err(ProtocolError::InvalidParameters(format!(
            "key share is for {}, not {}",
            key_share.scheme(),
            C::SCHEME
        )));
    }
    let public =
        PublicKeyPackage::<C>::deserialize(key_share.public_key_package()).map_err(|e| {
            ProtocolError::InvalidParameters(format!("corrupt public key package: {e}"))
        })?;
    let Some(node) = node else {
        return Ok((None, public));
    };
    let key_package = KeyPackage::<C>::deserialize(key_share.key_package_bytes())
        .map_err(|e| ProtocolError::InvalidParameters(format!("corrupt key package: {e}")))?;
    let id = Identifier::<C>::try_from(node.get()).map_err(internal)?;
    if *key_package.identifier() != id
        || key_share.node_id() != node
        || public.verifying_shares().get(&id) != Some(key_package.verifying_share())
        || public.verifying_key() != key_package.verifying_key()
    {
        return Err(ProtocolError::InvalidParameters(format!(
            "key share does not belong to {node}"
        )));
    }
    Ok((Some(key_package), public))
}

/// Checks a signer set against a public key package.
fn check_signers<C: Suite>(
    roster: &Roster<C>,
    public: &PublicKeyPackage<C>,
) -> Result<(), ProtocolError> {
    let min = public.min_signers().unwrap_or(2);
    if roster.len() < usize::from(min) {
        return Err(ProtocolError::InvalidParameters(format!(
            "{} signers is below the threshold of {min}",
            roster.len()
        )));
    }
    if let Some(node) = roster.nodes().find(|n| {
        roster
            .id(*n)
            .map(|id| !public.verifying_shares().contains_key(&id))
            .unwrap_or(true)
    }) {
        return Err(ProtocolError::InvalidParameters(format!(
            "{node} holds no share of this key"
        )));
    }
    Ok(())
}

impl<C: Suite> Signer<C> {
    /// A signer with the given nonces (fresh ones from `round1::commit`, or
    /// fixed ones for test vectors).
    pub(crate) fn new(
        session: SessionId,
        me: NodeId,
        signers: &[NodeId],
        key_share: &KeyShare,
        message: &[u8],
        nonces: impl FnOnce(&KeyPackage<C>) -> Result<SigningNonces<C>, ProtocolError>,
    ) -> Result<Self, ProtocolError> {
        let roster = Roster::<C>::new(Some(me), signers)?;
        let (key_package, public) = open_key_share::<C>(key_share, Some(me))?;
        let key_package = key_package.ok_or_else(|| internal("no key package"))?;
        check_signers(&roster, &public)?;
        let nonces = nonces(&key_package)?;
        Ok(Self {
            session,
            me,
            roster,
            key_package,
            message: message.to_vec(),
            state: State::Ready { nonces },
        })
    }

    fn sign(
        &mut self,
        nonces: SigningNonces<C>,
        inbound: Vec<Message>,
    ) -> Result<Transition<()>, ProtocolError> {
        let others = self.roster.others(Some(self.me));
        let expect = Expect {
            broadcast: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(self.session, 1, Some(self.me), &others, expect, inbound)?;
        let mut commitments = parse_commitments(&self.roster, &sorted.broadcast)?;
        commitments.insert(*self.key_package.identifier(), *nonces.commitments());
        let package = SigningPackage::new(commitments, &self.message);
        let share = frost_core::round2::sign(&package, &nonces, &self.key_package)
            .map_err(|e| self.roster.blame(e))?;
        drop(nonces);
        let message = Message {
            session: self.session,
            round: 2,
            from: self.me,
            to: Recipient::Coordinator,
            payload: share.serialize(),
        };
        Ok(Transition::Finished {
            messages: vec![message],
            output: (),
        })
    }
}

fn parse_commitments<C: Suite>(
    roster: &Roster<C>,
    broadcasts: &BTreeMap<NodeId, Vec<u8>>,
) -> Result<BTreeMap<Identifier<C>, SigningCommitments<C>>, ProtocolError> {
    broadcasts
        .iter()
        .map(|(&from, bytes)| {
            let commitments = parse(
                from,
                "signing commitments",
                SigningCommitments::<C>::deserialize(bytes),
            )?;
            Ok((roster.id(from)?, commitments))
        })
        .collect()
}

impl<C: Suite> Protocol for Signer<C> {
    type Output = ();

    fn session_id(&self) -> SessionId {
        self.session
    }

    fn expected_round(&self) -> u16 {
        match self.state {
            State::Ready { .. } | State::Committed { .. } => 1,
            State::Done => 2,
        }
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Ready { nonces } => {
                let payload = nonces.commitments().serialize().map_err(internal)?;
                self.state = State::Committed { nonces };
                Ok(vec![Message {
                    session: self.session,
                    round: 1,
                    from: self.me,
                    to: Recipient::Broadcast,
                    payload,
                }])
            }
            _ => Err(ProtocolError::OutOfOrder("signing already started".into())),
        }
    }

    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<()>, ProtocolError> {
        // Whatever happens, the nonces are consumed: a second step finds `Done`.
        match std::mem::replace(&mut self.state, State::Done) {
            State::Committed { nonces } => self.sign(nonces, inbound),
            State::Ready { .. } => Err(ProtocolError::OutOfOrder(
                "signing stepped before start".into(),
            )),
            State::Done => Err(ProtocolError::OutOfOrder(
                "signing already finished: nonces are gone".into(),
            )),
        }
    }
}

/// Object-safe face of [`Aggregator`], for the scheme-erased API.
pub(crate) trait ErasedAggregator: Send + std::fmt::Debug {
    fn add_commitments(&mut self, round1: Vec<Message>) -> Result<(), ProtocolError>;
    fn aggregate(&mut self, shares: Vec<Message>) -> Result<Vec<u8>, ProtocolError>;
}

/// The coordinator's side of one signing session.
pub(crate) struct Aggregator<C: Suite> {
    session: SessionId,
    roster: Roster<C>,
    public: PublicKeyPackage<C>,
    message: Vec<u8>,
    commitments: Option<BTreeMap<Identifier<C>, SigningCommitments<C>>>,
}

impl<C: Suite> std::fmt::Debug for Aggregator<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("scheme", &C::SCHEME)
            .field("session", &self.session)
            .field("signers", &self.roster.nodes().collect::<Vec<_>>())
            .field("has_commitments", &self.commitments.is_some())
            .finish_non_exhaustive()
    }
}

impl<C: Suite> Aggregator<C> {
    pub(crate) fn new(
        session: SessionId,
        public_key_package: &[u8],
        signers: &[NodeId],
        message: &[u8],
    ) -> Result<Self, ProtocolError> {
        let public = PublicKeyPackage::<C>::deserialize(public_key_package).map_err(|e| {
            ProtocolError::InvalidParameters(format!("corrupt public key package: {e}"))
        })?;
        let roster = Roster::<C>::new(None, signers)?;
        check_signers(&roster, &public)?;
        Ok(Self {
            session,
            roster,
            public,
            message: message.to_vec(),
            commitments: None,
        })
    }

    fn signers(&self) -> BTreeSet<NodeId> {
        self.roster.others(None)
    }
}

impl<C: Suite> ErasedAggregator for Aggregator<C> {
    fn add_commitments(&mut self, round1: Vec<Message>) -> Result<(), ProtocolError> {
        if self.commitments.is_some() {
            return Err(ProtocolError::OutOfOrder(
                "commitments already added".into(),
            ));
        }
        let expect = Expect {
            broadcast: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(self.session, 1, None, &self.signers(), expect, round1)?;
        self.commitments = Some(parse_commitments(&self.roster, &sorted.broadcast)?);
        Ok(())
    }

    fn aggregate(&mut self, shares: Vec<Message>) -> Result<Vec<u8>, ProtocolError> {
        let commitments = self.commitments.clone().ok_or_else(|| {
            ProtocolError::OutOfOrder("aggregate called before add_commitments".into())
        })?;
        let expect = Expect {
            coordinator: true,
            ..Expect::default()
        };
        let sorted = sort_inbound(self.session, 2, None, &self.signers(), expect, shares)?;
        let mut signature_shares = BTreeMap::new();
        for (&from, bytes) in &sorted.coordinator {
            let share = parse(
                from,
                "signature share",
                SignatureShare::<C>::deserialize(bytes),
            )?;
            signature_shares.insert(self.roster.id(from)?, share);
        }
        debug_assert!(
            self.roster
                .identifiers()
                .all(|id| commitments.contains_key(id))
        );
        let package = SigningPackage::new(commitments, &self.message);
        let signature = frost_core::aggregate_custom(
            &package,
            &signature_shares,
            &self.public,
            CheaterDetection::AllCheaters,
        )
        .map_err(|e| match self.roster.blame(e) {
            e @ ProtocolError::Misbehaviour { .. } => e,
            other => ProtocolError::InvalidSignature(other.to_string()),
        })?;
        // Never hand out a signature that does not verify under the group key.
        self.public
            .verifying_key()
            .verify(&self.message, &signature)
            .map_err(|e| ProtocolError::InvalidSignature(e.to_string()))?;
        C::encode_signature(&signature)
    }
}
