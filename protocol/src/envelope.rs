//! End-to-end security of protocol messages between nodes, so the
//! coordinator only ever relays signed ciphertext.
//!
//! A [`SecureSession`] wraps any [`Protocol`]:
//! - outbound, every payload addressed to one node ([`Recipient::Node`]) is
//!   sealed to that node's X25519 encryption key with HPKE (RFC 9180, base
//!   mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305,
//!   `info` = a Sigil domain string and the [`SessionContext`], AAD = the
//!   message header), then every message is signed by the node's identity
//!   key over [`SessionContext::signing_bytes`] of the sealed form →
//!   [`SignedMessage`];
//! - inbound, every sender signature is verified first (failure:
//!   [`ProtocolError::BadSenderSignature`], which implicates the relay),
//!   then sealed payloads are opened (failure despite a valid signature:
//!   [`ProtocolError::Undecryptable`], which blames the sender), and only then
//!   are plaintext messages handed to the inner protocol.
//!
//! The [`SessionContext`] — protocol kind, scheme, key id, epoch and the
//! ordered participants, as each node reads them from its own request —
//! is bound into every signature and every HPKE `info`. A message is
//! accepted only by a party that was told the same context: one taken from
//! a session about another key, epoch, kind or set of participants, even
//! under the same session id, fails its sender signature (blamed on the
//! relay, the only party that moves messages between sessions) and its
//! sealed payload does not open.
//!
//! Identity keys are the nodes' certificate keys: [`IdentitySigner`] and
//! [`PeerVerifier`] are implemented by the TLS crate. Randomness comes in as
//! a `rand_core` 0.6 RNG (the one `frost` uses) and seeds a ChaCha20 RNG of
//! the `rand_core` version `hpke` expects.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand_chacha::rand_core::SeedableRng as _;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::{Message, NodeId, Protocol, ProtocolError, Recipient, Scheme, SessionId, Transition};

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// HPKE `info`: binds every sealed payload to this use.
const HPKE_INFO: &[u8] = b"sigil/v1/envelope/hpke-x25519-sha256-chacha20poly1305";
/// Length of an X25519 encapsulated key, which prefixes every sealed payload.
const ENC_LEN: usize = 32;
/// Domain of [`SessionContext`] digests.
const CONTEXT_DOMAIN: &[u8] = b"sigil/v1/session-context";

/// What kind of session a [`SessionContext`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextKind {
    /// Distributed key generation.
    Dkg,
    /// Signing what a requester's intent asks for.
    Sign,
    /// Signing the test message of a staged epoch.
    EpochTest,
    /// Signing a recovery drill's message.
    Drill,
    /// Refresh or reshare of a key's shares.
    Reshare,
}

impl ContextKind {
    fn tag(self) -> &'static [u8] {
        match self {
            Self::Dkg => b"dkg",
            Self::Sign => b"sign",
            Self::EpochTest => b"epoch-test",
            Self::Drill => b"drill",
            Self::Reshare => b"reshare",
        }
    }
}

/// What a session is about: the digest of its kind, scheme, key id, epoch
/// and ordered participants, bound into every message signature and HPKE
/// `info` of the session (see the module docs). Each party builds it from
/// its own request; parties told different things cannot talk.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionContext([u8; 32]);

impl SessionContext {
    /// The context of a `kind` session of `scheme` for `key_id` at `epoch`
    /// (the epoch signed with, or redistributed from; 0 for key generation)
    /// among `participants` (in any order: sorted here).
    pub fn new(
        kind: ContextKind,
        scheme: Scheme,
        key_id: &str,
        epoch: u64,
        participants: &[NodeId],
    ) -> Self {
        let mut sorted = participants.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(CONTEXT_DOMAIN);
        field(kind.tag());
        field(scheme.to_string().as_bytes());
        field(key_id.as_bytes());
        field(&epoch.to_be_bytes());
        let ids: Vec<u8> = sorted.iter().flat_map(|n| n.get().to_be_bytes()).collect();
        field(&ids);
        Self(h.finalize().into())
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The bytes a sender signs for `message` in this context: the
    /// context digest, then [`Message::signing_bytes`].
    pub fn signing_bytes(&self, message: &Message) -> Vec<u8> {
        let mut out = self.0.to_vec();
        out.extend_from_slice(&message.signing_bytes());
        out
    }

    /// The HPKE `info` of sealed payloads in this context.
    fn hpke_info(&self) -> Vec<u8> {
        let mut info = HPKE_INFO.to_vec();
        info.extend_from_slice(&self.0);
        info
    }
}

impl fmt::Debug for SessionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionContext({})", hex::encode(self.0))
    }
}

/// Signs with this node's identity key (its certificate key).
pub trait IdentitySigner: Send + Sync {
    /// The node whose key this is.
    fn node_id(&self) -> NodeId;
    /// Signs `bytes`.
    fn sign(&self, bytes: &[u8]) -> Vec<u8>;
}

/// Verifies other nodes' identity signatures (against their certificate keys).
pub trait PeerVerifier: Send + Sync {
    /// True if `signature` is `node`'s valid signature of `bytes`. Unknown nodes fail.
    fn verify(&self, node: NodeId, bytes: &[u8], signature: &[u8]) -> bool;
}

/// A node's X25519 public encryption key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EncryptionPublicKey([u8; 32]);

impl EncryptionPublicKey {
    /// Parses 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ProtocolError> {
        <[u8; 32]>::try_from(bytes).map(Self).map_err(|_| {
            ProtocolError::InvalidParameters(format!(
                "encryption key must be 32 bytes, got {}",
                bytes.len()
            ))
        })
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for EncryptionPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionPublicKey({})", hex::encode(self.0))
    }
}

/// A node's X25519 encryption keypair. The secret is zeroized on drop and never printed.
#[derive(Clone)]
pub struct EncryptionKeypair {
    secret: Zeroizing<[u8; 32]>,
    public: EncryptionPublicKey,
}

impl fmt::Debug for EncryptionKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeypair")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl EncryptionKeypair {
    /// Generates a fresh keypair.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ikm.as_mut());
        let (secret, public) = Kem::derive_keypair(ikm.as_ref());
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&secret.to_bytes());
        let mut public_bytes = [0u8; 32];
        public_bytes.copy_from_slice(&public.to_bytes());
        Self {
            secret: bytes,
            public: EncryptionPublicKey(public_bytes),
        }
    }

    /// Restores a keypair from its stored secret.
    pub fn from_secret_bytes(secret: &[u8]) -> Result<Self, ProtocolError> {
        let key = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret).map_err(|e| {
            ProtocolError::InvalidParameters(format!("invalid encryption secret key: {e}"))
        })?;
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&key.to_bytes());
        let mut public_bytes = [0u8; 32];
        public_bytes.copy_from_slice(&Kem::sk_to_pk(&key).to_bytes());
        Ok(Self {
            secret: bytes,
            public: EncryptionPublicKey(public_bytes),
        })
    }

    /// The secret, for storage (encrypt it at rest).
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.secret.clone()
    }

    /// The public key, to publish to the other nodes.
    pub fn public_key(&self) -> EncryptionPublicKey {
        self.public
    }
}

/// A message with its sender's identity signature over
/// [`Message::signing_bytes`] (of the sealed form, for direct messages).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    pub message: Message,
    pub signature: Vec<u8>,
}

/// The HPKE associated data: the message header (everything but the payload),
/// canonically encoded, so a sealed payload cannot be moved to another
/// session, round, sender or recipient.
fn header_aad(message: &Message) -> Vec<u8> {
    Message {
        session: message.session,
        round: message.round,
        from: message.from,
        to: message.to,
        payload: Vec::new(),
    }
    .signing_bytes()
}

/// A [`Protocol`] wrapped with sender signatures and end-to-end encryption.
pub struct SecureSession<P: Protocol> {
    inner: P,
    context: SessionContext,
    me: NodeId,
    identity: Arc<dyn IdentitySigner>,
    verifier: Arc<dyn PeerVerifier>,
    keypair: EncryptionKeypair,
    peers: BTreeMap<NodeId, EncryptionPublicKey>,
    rng: rand_chacha::ChaCha20Rng,
}

impl<P: Protocol> fmt::Debug for SecureSession<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecureSession")
            .field("session", &self.inner.session_id())
            .field("me", &self.me)
            .field("round", &self.inner.expected_round())
            .field("peers", &self.peers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> SecureSession<P> {
    /// Wraps `inner`, run by the node of `identity` in `context`. `peers`
    /// maps every other participant to its encryption public key; `rng`
    /// seeds the HPKE RNG.
    pub fn new<R: RngCore + CryptoRng>(
        inner: P,
        context: SessionContext,
        identity: Arc<dyn IdentitySigner>,
        verifier: Arc<dyn PeerVerifier>,
        keypair: EncryptionKeypair,
        peers: BTreeMap<NodeId, EncryptionPublicKey>,
        rng: &mut R,
    ) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        let rng = rand_chacha::ChaCha20Rng::from_seed(*seed);
        let me = identity.node_id();
        Self {
            inner,
            context,
            me,
            identity,
            verifier,
            keypair,
            peers,
            rng,
        }
    }

    /// The session of the inner protocol.
    pub fn session_id(&self) -> SessionId {
        self.inner.session_id()
    }

    /// What this session is about (bound into its signatures and sealing).
    pub fn context(&self) -> SessionContext {
        self.context
    }

    /// The round the inner protocol expects next.
    pub fn expected_round(&self) -> u16 {
        self.inner.expected_round()
    }

    /// The wrapped protocol.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// Starts the inner protocol; returns its round-1 messages sealed and signed.
    pub fn start(&mut self) -> Result<Vec<SignedMessage>, ProtocolError> {
        let messages = self.inner.start()?;
        self.seal_and_sign(messages)
    }

    /// Verifies and opens `inbound`, steps the inner protocol, and seals and
    /// signs what it returns.
    pub fn step(
        &mut self,
        inbound: Vec<SignedMessage>,
    ) -> Result<Transition<P::Output, SignedMessage>, ProtocolError> {
        // Every signature before any decryption: a relay's forgery is reported
        // as such, never as a sender's fault.
        for signed in &inbound {
            let m = &signed.message;
            // A sender outside the session is named as such (its signature
            // could not be checked against a participant's key anyway).
            if m.from != self.me && !self.peers.contains_key(&m.from) {
                return Err(ProtocolError::UnknownSender { from: m.from });
            }
            if !self
                .verifier
                .verify(m.from, &self.context.signing_bytes(m), &signed.signature)
            {
                return Err(ProtocolError::BadSenderSignature {
                    claimed_from: m.from,
                });
            }
        }
        let plaintext = inbound
            .into_iter()
            .map(|signed| self.open(signed.message))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match self.inner.step(plaintext)? {
            Transition::Continue(messages) => Transition::Continue(self.seal_and_sign(messages)?),
            Transition::Finished { messages, output } => Transition::Finished {
                messages: self.seal_and_sign(messages)?,
                output,
            },
        })
    }

    fn open(&self, mut message: Message) -> Result<Message, ProtocolError> {
        let from = message.from;
        match message.to {
            Recipient::Node(to) if to == self.me => {}
            Recipient::Node(_) => return Err(ProtocolError::Misaddressed { from }),
            Recipient::Broadcast | Recipient::Coordinator => return Ok(message),
        }
        let undecryptable = ProtocolError::Undecryptable { from };
        if message.payload.len() < ENC_LEN {
            return Err(undecryptable);
        }
        let (enc, ciphertext) = message.payload.split_at(ENC_LEN);
        let enc =
            <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| undecryptable.clone())?;
        let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(self.keypair.secret.as_ref())
            .map_err(|e| {
                ProtocolError::InvalidParameters(format!("invalid encryption secret key: {e}"))
            })?;
        let plaintext = hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &secret,
            &enc,
            &self.context.hpke_info(),
            ciphertext,
            &header_aad(&message),
        )
        .map_err(|_| undecryptable)?;
        message.payload = plaintext;
        Ok(message)
    }

    fn seal_and_sign(
        &mut self,
        messages: Vec<Message>,
    ) -> Result<Vec<SignedMessage>, ProtocolError> {
        messages
            .into_iter()
            .map(|mut message| {
                if message.from != self.me {
                    return Err(ProtocolError::InvalidParameters(format!(
                        "protocol of {} produced a message from {}",
                        self.me, message.from
                    )));
                }
                if let Recipient::Node(to) = message.to {
                    let key = self.peers.get(&to).ok_or_else(|| {
                        ProtocolError::InvalidParameters(format!("no encryption key for {to}"))
                    })?;
                    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(key.as_bytes())
                        .map_err(|e| {
                            ProtocolError::InvalidParameters(format!(
                                "bad encryption key of {to}: {e}"
                            ))
                        })?;
                    let plaintext = Zeroizing::new(std::mem::take(&mut message.payload));
                    let (enc, ciphertext) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
                        &OpModeS::Base,
                        &recipient,
                        &self.context.hpke_info(),
                        &plaintext,
                        &header_aad(&message),
                        &mut self.rng,
                    )
                    .map_err(|e| {
                        ProtocolError::InvalidParameters(format!("HPKE seal failed: {e}"))
                    })?;
                    let mut sealed = enc.to_bytes().to_vec();
                    sealed.extend_from_slice(&ciphertext);
                    message.payload = sealed;
                }
                let signature = self.identity.sign(&self.context.signing_bytes(&message));
                Ok(SignedMessage { message, signature })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn keypair_restores_from_its_secret_and_never_prints_it() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let keypair = EncryptionKeypair::generate(&mut rng);
        let restored =
            EncryptionKeypair::from_secret_bytes(keypair.secret_bytes().as_ref()).expect("restore");
        assert_eq!(restored.public_key(), keypair.public_key());
        let debug = format!("{keypair:?}");
        assert!(debug.contains("redacted"));
        assert!(!debug.contains(&hex::encode(keypair.secret_bytes().as_ref())));
        assert!(EncryptionKeypair::from_secret_bytes(&[1u8; 31]).is_err());
        assert!(EncryptionPublicKey::from_slice(&[1u8; 33]).is_err());
    }
}
