//! In-process, crypto-only signing throughput (FROST or DKLs23 ECDSA): the
//! baseline `sigil bench sign` compares a running cluster against.
//!
//! One thread plays every party. A DKG for the scheme and `t`-of-`n` shape
//! of the benchmarked key runs once; then, until the time budget is spent,
//! each iteration does exactly the cryptographic work of one cluster
//! signature: every signer's rounds (FROST: nonces and commitment, then the
//! signature share; ECDSA: the three DKLs23 signing phases), each wrapped in a [`SecureSession`] (sender
//! signatures with ECDSA P-256 identity keys like the nodes' certificate
//! keys, HPKE for direct messages) and routed through a [`RoundRelay`], then
//! the coordinator's [`Aggregator`] (share verification, aggregation,
//! verification of the final signature). Nothing else: no gRPC, TLS,
//! storage, key-share unsealing or participant certificate checks — those
//! are what the cluster adds on top of this figure.
//!
//! [`Envelope::Bare`] drops the envelope too: the engine's own round
//! functions for every party, messages routed as they are (unsigned,
//! unsealed), then the same aggregator — the floor the protocol itself
//! sets, against which both the enveloped figure and the cluster are read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use rand::rngs::OsRng;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use sigil_protocol::engine::{self, Aggregator, DkgOutput, Encoding, KeyShare, SignInput};
use sigil_protocol::envelope::{
    ContextKind, EncryptionKeypair, EncryptionPublicKey, IdentitySigner, PeerVerifier,
    SecureSession, SessionContext, SignedMessage,
};
use sigil_protocol::relay::{Deliveries, RelayError, RoundRelay};
use sigil_protocol::{Message, NodeId, Protocol, ProtocolError, Scheme, SessionId, Transition};

/// Why the in-process baseline could not run.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("invalid benchmark parameters: {0}")]
    Parameters(String),
    #[error("protocol failed in-process: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("relay refused an in-process message: {0}")]
    Relay(#[from] RelayError),
    #[error("identity key generation failed")]
    IdentityKey,
    #[error("in-process {0} did not finish")]
    Unfinished(&'static str),
}

/// Whether the in-process parties wrap their protocol in the nodes' envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Envelope {
    /// Sender signatures and HPKE, as the nodes run (the cluster's baseline).
    Sealed,
    /// The engine's round functions alone: the protocol's floor.
    Bare,
}

/// What the baseline measured.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub envelope: Envelope,
    pub scheme: Scheme,
    pub threshold: u16,
    pub participants: u16,
    /// Signatures completed in the measured loop.
    pub signatures: u64,
    /// Wall time of the measured loop.
    pub elapsed: Duration,
}

impl Baseline {
    /// Signatures per second on one thread.
    pub fn throughput(&self) -> f64 {
        per_second(self.signatures, self.elapsed)
    }

    /// Mean time of one signature (all parties and the aggregator).
    pub fn mean(&self) -> Duration {
        match u32::try_from(self.signatures) {
            Ok(n) if n > 0 => self.elapsed / n,
            _ => Duration::ZERO,
        }
    }
}

/// `count / elapsed`, 0 for an empty interval.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// A party's identity key: ECDSA P-256 / SHA-256, ASN.1 DER signatures, as
/// the nodes sign protocol messages with their certificate keys.
struct IdentityKey {
    node: NodeId,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl IdentitySigner for IdentityKey {
    fn node_id(&self) -> NodeId {
        self.node
    }

    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        // An empty signature never verifies: the run fails loudly at the peers.
        self.key
            .sign(&self.rng, bytes)
            .map(|s| s.as_ref().to_vec())
            .unwrap_or_default()
    }
}

/// Every party's identity public key (uncompressed P-256 points).
struct PeerKeys(BTreeMap<NodeId, Vec<u8>>);

impl PeerVerifier for PeerKeys {
    fn verify(&self, node: NodeId, bytes: &[u8], signature: &[u8]) -> bool {
        self.0.get(&node).is_some_and(|key| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
                .verify(bytes, signature)
                .is_ok()
        })
    }
}

/// The long-lived keys of an in-process cluster of `n` parties.
struct Parties {
    ids: Vec<NodeId>,
    identities: BTreeMap<NodeId, Arc<IdentityKey>>,
    verifier: Arc<PeerKeys>,
    encryption: BTreeMap<NodeId, EncryptionKeypair>,
}

impl Parties {
    fn new(n: u16) -> Result<Self, BaselineError> {
        let rng = SystemRandom::new();
        let mut ids = Vec::with_capacity(usize::from(n));
        let mut identities = BTreeMap::new();
        let mut public = BTreeMap::new();
        let mut encryption = BTreeMap::new();
        for i in 1..=n {
            let id = NodeId::new(i)?;
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .map_err(|_| BaselineError::IdentityKey)?;
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                    .map_err(|_| BaselineError::IdentityKey)?;
            public.insert(id, key.public_key().as_ref().to_vec());
            identities.insert(
                id,
                Arc::new(IdentityKey {
                    node: id,
                    key,
                    rng: rng.clone(),
                }),
            );
            encryption.insert(id, EncryptionKeypair::generate(&mut OsRng));
            ids.push(id);
        }
        Ok(Self {
            ids,
            identities,
            verifier: Arc::new(PeerKeys(public)),
            encryption,
        })
    }

    /// Wraps `inner`, run by `me`, in the envelope the nodes use.
    fn secure<P: Protocol>(
        &self,
        me: NodeId,
        context: SessionContext,
        inner: P,
    ) -> Result<SecureSession<P>, BaselineError> {
        let (Some(identity), Some(keypair)) = (self.identities.get(&me), self.encryption.get(&me))
        else {
            return Err(BaselineError::Parameters(format!("{me} is not a party")));
        };
        let peers: BTreeMap<NodeId, EncryptionPublicKey> = self
            .encryption
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, k)| (*id, k.public_key()))
            .collect();
        Ok(SecureSession::new(
            inner,
            context,
            identity.clone(),
            self.verifier.clone(),
            keypair.clone(),
            peers,
            &mut OsRng,
        ))
    }
}

fn random_session() -> SessionId {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    SessionId::from_bytes(bytes)
}

/// Every party's output and each round's deliveries (index 0: round 1).
type Run<O> = (BTreeMap<NodeId, O>, Vec<Deliveries>);

/// One in-process party: a protocol in the nodes' envelope, or bare.
trait Party {
    type Output;
    fn start(&mut self) -> Result<Vec<SignedMessage>, ProtocolError>;
    fn step(
        &mut self,
        inbound: Vec<SignedMessage>,
    ) -> Result<Transition<Self::Output, SignedMessage>, ProtocolError>;
}

impl<P: Protocol> Party for SecureSession<P> {
    type Output = P::Output;

    fn start(&mut self) -> Result<Vec<SignedMessage>, ProtocolError> {
        SecureSession::start(self)
    }

    fn step(
        &mut self,
        inbound: Vec<SignedMessage>,
    ) -> Result<Transition<P::Output, SignedMessage>, ProtocolError> {
        SecureSession::step(self, inbound)
    }
}

/// The engine's protocol alone: its messages travel unsigned and unsealed
/// (the relay only routes them).
struct Bare<P>(P);

fn unsigned(messages: Vec<Message>) -> Vec<SignedMessage> {
    messages
        .into_iter()
        .map(|message| SignedMessage {
            message,
            signature: Vec::new(),
        })
        .collect()
}

impl<P: Protocol> Party for Bare<P> {
    type Output = P::Output;

    fn start(&mut self) -> Result<Vec<SignedMessage>, ProtocolError> {
        Ok(unsigned(self.0.start()?))
    }

    fn step(
        &mut self,
        inbound: Vec<SignedMessage>,
    ) -> Result<Transition<P::Output, SignedMessage>, ProtocolError> {
        let inbound = inbound.into_iter().map(|s| s.message).collect();
        Ok(match self.0.step(inbound)? {
            Transition::Continue(messages) => Transition::Continue(unsigned(messages)),
            Transition::Finished { messages, output } => Transition::Finished {
                messages: unsigned(messages),
                output,
            },
        })
    }
}

/// Drives every party's session to completion through the relay, round by
/// round, as the coordinator's driver does.
fn drive<P: Party>(
    session: SessionId,
    mut sessions: BTreeMap<NodeId, P>,
    what: &'static str,
) -> Result<Run<P::Output>, BaselineError> {
    let parties: Vec<NodeId> = sessions.keys().copied().collect();
    let mut relay = RoundRelay::new(session, &parties)?;
    for (&id, s) in sessions.iter_mut() {
        relay.collect(id, 1, s.start()?)?;
    }
    let mut outputs = BTreeMap::new();
    let mut rounds = Vec::new();
    let mut round: u16 = 1;
    loop {
        let deliveries = relay.deliveries()?;
        if outputs.len() == parties.len() {
            rounds.push(deliveries);
            return Ok((outputs, rounds));
        }
        // A protocol that never finishes must not spin forever.
        if round > 8 {
            return Err(BaselineError::Unfinished(what));
        }
        round += 1;
        relay = RoundRelay::new(session, &parties)?;
        let mut inbound = deliveries.inbound.clone();
        for (&id, s) in sessions.iter_mut() {
            let messages = match s.step(inbound.remove(&id).unwrap_or_default())? {
                Transition::Continue(messages) => messages,
                Transition::Finished { messages, output } => {
                    outputs.insert(id, output);
                    messages
                }
            };
            relay.collect(id, round, messages)?;
        }
        rounds.push(deliveries);
    }
}

/// A DKG among every party.
fn dkg(
    parties: &Parties,
    scheme: Scheme,
    threshold: u16,
) -> Result<BTreeMap<NodeId, DkgOutput>, BaselineError> {
    let session = random_session();
    let context = SessionContext::new(ContextKind::Dkg, scheme, "bench", 0, &parties.ids);
    let mut sessions = BTreeMap::new();
    for &me in &parties.ids {
        let protocol = engine::new_dkg(scheme, session, me, &parties.ids, threshold, &mut OsRng)?;
        sessions.insert(me, parties.secure(me, context, protocol)?);
    }
    Ok(drive(session, sessions, "DKG")?.0)
}

/// One signature by `signers`, aggregated and verified as the coordinator does.
#[allow(clippy::too_many_arguments)]
fn sign_once(
    parties: &Parties,
    envelope: Envelope,
    scheme: Scheme,
    signers: &[NodeId],
    shares: &BTreeMap<NodeId, KeyShare>,
    public_key_package: &[u8],
    public_key: &[u8],
    message: &[u8],
) -> Result<Vec<u8>, BaselineError> {
    let session = random_session();
    let input = SignInput::new(scheme, message, Encoding::Raw, "")?;
    let context = SessionContext::new(ContextKind::Sign, scheme, "bench", 0, signers);
    let mut sealed = BTreeMap::new();
    let mut bare = BTreeMap::new();
    for &me in signers {
        let share = shares
            .get(&me)
            .ok_or_else(|| BaselineError::Parameters(format!("no key share for {me}")))?;
        let protocol = engine::new_signer(share, session, me, signers, &input, &mut OsRng)?;
        match envelope {
            Envelope::Sealed => {
                sealed.insert(me, parties.secure(me, context, protocol)?);
            }
            Envelope::Bare => {
                bare.insert(me, Bare(protocol));
            }
        }
    }
    let (_, rounds) = match envelope {
        Envelope::Sealed => drive(session, sealed, "signing")?,
        Envelope::Bare => drive(session, bare, "signing")?,
    };
    let mut aggregator = Aggregator::new(
        scheme,
        session,
        public_key_package,
        public_key,
        signers,
        &input,
    )?;
    let broadcasts: Vec<Vec<_>> = rounds
        .iter()
        .map(|d| d.broadcasts.iter().map(|m| m.message.clone()).collect())
        .collect();
    let finals = rounds
        .last()
        .map(|d| d.to_coordinator.iter().map(|m| m.message.clone()).collect())
        .ok_or(BaselineError::Unfinished("signing"))?;
    Ok(aggregator.aggregate(&broadcasts, finals)?.bytes)
}

/// Measures in-process signing throughput for `scheme` with a `threshold`-of-
/// `participants` key and `message_size`-byte messages, for about `duration`
/// (at least one signature) on the calling thread, with or without the
/// envelope. Blocking: call it from a blocking task.
pub fn run(
    envelope: Envelope,
    scheme: Scheme,
    threshold: u16,
    participants: u16,
    message_size: usize,
    duration: Duration,
) -> Result<Baseline, BaselineError> {
    if scheme == Scheme::EcdsaSecp256k1 && message_size != 32 {
        return Err(BaselineError::Parameters(format!(
            "{scheme} signs 32-byte digests; message size must be 32"
        )));
    }
    if threshold < 2 || threshold > participants {
        return Err(BaselineError::Parameters(format!(
            "threshold must be between 2 and the number of participants ({participants}), got {threshold}"
        )));
    }
    if message_size == 0 {
        return Err(BaselineError::Parameters(
            "message size must be at least 1 byte".into(),
        ));
    }
    let parties = Parties::new(participants)?;
    let outputs = dkg(&parties, scheme, threshold)?;
    let shares: BTreeMap<NodeId, KeyShare> = outputs
        .iter()
        .map(|(id, o)| (*id, o.key_share.clone()))
        .collect();
    let (public_key_package, public_key) = outputs
        .values()
        .next()
        .map(|o| (o.public_key_package.clone(), o.public_key.clone()))
        .ok_or(BaselineError::Unfinished("DKG"))?;
    let signers = &parties.ids[..usize::from(threshold)];
    let mut message = vec![0u8; message_size];

    let started = Instant::now();
    let mut signatures = 0u64;
    loop {
        OsRng.fill_bytes(&mut message);
        sign_once(
            &parties,
            envelope,
            scheme,
            signers,
            &shares,
            &public_key_package,
            &public_key,
            &message,
        )?;
        signatures += 1;
        if started.elapsed() >= duration {
            break;
        }
    }
    Ok(Baseline {
        envelope,
        scheme,
        threshold,
        participants,
        signatures,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_signs_with_every_scheme_with_and_without_the_envelope() {
        for envelope in [Envelope::Sealed, Envelope::Bare] {
            for scheme in Scheme::ALL {
                let b = run(envelope, scheme, 2, 3, 32, Duration::ZERO).expect("baseline");
                assert_eq!(b.signatures, 1, "{scheme} {envelope:?}");
                assert!(b.throughput() > 0.0, "{scheme} {envelope:?}");
            }
        }
    }

    #[test]
    fn baseline_refuses_bad_parameters() {
        let run = |scheme, t, n, size| run(Envelope::Bare, scheme, t, n, size, Duration::ZERO);
        assert!(run(Scheme::FrostSecp256k1, 1, 3, 32).is_err());
        assert!(run(Scheme::FrostSecp256k1, 4, 3, 32).is_err());
        assert!(run(Scheme::FrostSecp256k1, 2, 3, 0).is_err());
        assert!(run(Scheme::EcdsaSecp256k1, 2, 3, 33).is_err());
    }
}
