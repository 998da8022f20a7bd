//! Scheme-erased entry points: the one place where a [`Scheme`] chooses an
//! engine (FROST or DKLs23 ECDSA), so the node and the coordinator drive
//! every protocol through the same calls and never branch on the scheme.
//!
//! - [`new_dkg`] / [`DkgOutput`]: a DKG state machine and what it leaves;
//! - [`KeyShare`]: a node's share of any scheme, with its sealed-at-rest
//!   encoding;
//! - [`SignInput`]: what a sign request asks to sign, validated and reduced
//!   to what the engine signs (FROST: the message; ECDSA: a 32-byte digest
//!   that the *node* computes from the message and its encoding, so a node
//!   always knows what it signs, plus a BIP-32 path);
//! - [`new_signer`] / [`Aggregator`]: one signer's state machine and the
//!   coordinator's aggregation into a verified [`Signature`];
//! - [`dkg_steps`] / [`sign_steps`]: how many relay rounds each protocol takes;
//! - [`new_reshare`] / [`ReshareSpec`] / [`ReshareOutput`]: refresh the shares
//!   of a key, or move it to a new participant set and threshold (verifiable
//!   secret redistribution, see `crate::reshare`), and [`reshare_steps`].

use rand_core::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use sha3::Keccak256;
use zeroize::Zeroizing;

use crate::ecdsa::{self, DerivationPath, EcdsaKeyShare, EcdsaPublicKeyPackage};
use crate::frost;
use crate::{Message, NodeId, Protocol, ProtocolError, Scheme, SessionId, Transition};

/// How a sign request's message becomes what is signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// FROST: the message as given. ECDSA: the message is the 32-byte digest.
    Raw,
    /// ECDSA: Keccak-256 of the message (Ethereum).
    Keccak256,
    /// ECDSA: SHA-256 of the message (Bitcoin).
    Sha256,
}

/// Largest message accepted for signing (an Ethereum transaction with large
/// call data fits; anything larger is refused before any protocol runs).
pub const MAX_MESSAGE_LEN: usize = 128 * 1024;

/// What one signing session signs, validated for its scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignInput {
    /// FROST: the message itself.
    Message(Vec<u8>),
    /// ECDSA: a 32-byte digest under the key derived along `path`.
    Digest {
        digest: [u8; 32],
        path: DerivationPath,
    },
}

impl SignInput {
    /// Validates a request for `scheme` and reduces it to what is signed.
    /// `path` is the BIP-32 path text (empty: the key itself).
    pub fn new(
        scheme: Scheme,
        message: &[u8],
        encoding: Encoding,
        path: &str,
    ) -> Result<Self, ProtocolError> {
        let invalid = |m: String| Err(ProtocolError::InvalidParameters(m));
        if message.is_empty() || message.len() > MAX_MESSAGE_LEN {
            return invalid(format!("message must be 1 to {MAX_MESSAGE_LEN} bytes"));
        }
        if scheme == Scheme::EcdsaSecp256k1 {
            let digest: [u8; 32] = match encoding {
                Encoding::Raw => <[u8; 32]>::try_from(message).map_err(|_| {
                    ProtocolError::InvalidParameters(format!(
                        "{scheme} signs a 32-byte digest, got {} bytes; ask Sigil to hash the message (Keccak-256 or SHA-256)",
                        message.len()
                    ))
                })?,
                Encoding::Keccak256 => Keccak256::digest(message).into(),
                Encoding::Sha256 => Sha256::digest(message).into(),
            };
            let path = if path.is_empty() {
                DerivationPath::master()
            } else {
                path.parse()?
            };
            return Ok(Self::Digest { digest, path });
        }
        if !path.is_empty() {
            return invalid(format!("{scheme} keys have no derivation paths"));
        }
        if encoding != Encoding::Raw {
            return invalid(format!(
                "{scheme} signs the message as given; use the raw encoding"
            ));
        }
        Ok(Self::Message(message.to_vec()))
    }

    /// The bytes the signature is over (the message, or the digest).
    pub fn signed_bytes(&self) -> &[u8] {
        match self {
            Self::Message(m) => m,
            Self::Digest { digest, .. } => digest,
        }
    }

    /// The derivation path, if the scheme has them.
    pub fn path(&self) -> Option<&DerivationPath> {
        match self {
            Self::Message(_) => None,
            Self::Digest { path, .. } => Some(path),
        }
    }
}

/// A node's share of one key, of any scheme (secret: seal it at rest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyShare {
    Frost(frost::KeyShare),
    Ecdsa(EcdsaKeyShare),
}

impl KeyShare {
    /// The key's scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            Self::Frost(s) => s.scheme(),
            Self::Ecdsa(s) => s.scheme(),
        }
    }

    /// The versioned, scheme-tagged encoding of the share.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        match self {
            Self::Frost(s) => s.to_bytes(),
            Self::Ecdsa(s) => s.to_bytes(),
        }
    }

    /// Parses [`KeyShare::to_bytes`] of a share of `scheme`, refusing a
    /// share of any other scheme.
    pub fn from_bytes(scheme: Scheme, bytes: &[u8]) -> Result<Self, ProtocolError> {
        let share = if scheme == Scheme::EcdsaSecp256k1 {
            Self::Ecdsa(EcdsaKeyShare::from_bytes(bytes)?)
        } else {
            Self::Frost(frost::KeyShare::from_bytes(bytes)?)
        };
        if share.scheme() != scheme {
            return Err(ProtocolError::InvalidParameters(format!(
                "stored share is a {} share, expected {scheme}",
                share.scheme()
            )));
        }
        Ok(share)
    }

    /// The public key package this share belongs to (public).
    pub fn public_key_package(&self) -> Vec<u8> {
        match self {
            Self::Frost(s) => s.public_key_package().to_vec(),
            Self::Ecdsa(s) => s.public_key_package(),
        }
    }

    /// This node's public verifying share `s·G`, computed from the secret
    /// share and checked against the verifying share the share's public key
    /// package records for its node (FROST: frost's `VerifyingShare`
    /// encoding; ECDSA: 33-byte SEC1 compressed; an ECDSA package of
    /// version 1 records none). What proves a share restored from a backup
    /// is the one the key's package commits to.
    pub fn verifying_share(&self) -> Result<Vec<u8>, ProtocolError> {
        match self {
            Self::Frost(s) => frost_verifying_share(s),
            Self::Ecdsa(s) => {
                // `party()` checks s·G against the package's verifying share.
                let party = s.party()?;
                let point =
                    (k256_dkls23::ProjectivePoint::GENERATOR * party.poly_point).to_affine();
                Ok(
                    dkls23::utilities::hashes::point_to_bytes::<k256_dkls23::Secp256k1>(&point)
                        .to_vec(),
                )
            }
        }
    }
}

/// [`KeyShare::verifying_share`] of a FROST share.
fn frost_verifying_share(share: &frost::KeyShare) -> Result<Vec<u8>, ProtocolError> {
    fn of<C: frost_core::Ciphersuite>(share: &frost::KeyShare) -> Result<Vec<u8>, ProtocolError> {
        use frost_core::keys::{KeyPackage, PublicKeyPackage, VerifyingShare};
        let bad =
            |what: &str| ProtocolError::InvalidParameters(format!("invalid key share: {what}"));
        let key_package = KeyPackage::<C>::deserialize(share.key_package_bytes())
            .map_err(|_| bad("key package"))?;
        let package = PublicKeyPackage::<C>::deserialize(share.public_key_package())
            .map_err(|_| bad("public key package"))?;
        let id = frost_core::Identifier::<C>::try_from(share.node_id().get())
            .map_err(|_| bad("identifier"))?;
        let computed = VerifyingShare::<C>::from(*key_package.signing_share());
        if package.verifying_shares().get(&id) != Some(&computed) {
            return Err(bad(
                "the secret share does not match its verifying share in the public key package",
            ));
        }
        computed.serialize().map_err(|e| bad(&e.to_string()))
    }
    match share.scheme() {
        Scheme::FrostSecp256k1 => of::<frost_secp256k1::Secp256K1Sha256>(share),
        Scheme::FrostTaproot => of::<frost_secp256k1_tr::Secp256K1Sha256TR>(share),
        Scheme::FrostEd25519 => of::<frost_ed25519::Ed25519Sha512>(share),
        Scheme::EcdsaSecp256k1 => Err(ProtocolError::InvalidParameters(format!(
            "{} is not a FROST scheme",
            Scheme::EcdsaSecp256k1
        ))),
    }
}

/// What a finished DKG leaves with a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgOutput {
    /// This node's share (secret).
    pub key_share: KeyShare,
    /// The group key in the scheme's standard encoding.
    pub public_key: Vec<u8>,
    /// The public key package (public): what the coordinator stores and every node must agree on.
    pub public_key_package: Vec<u8>,
}

impl From<frost::DkgOutput> for DkgOutput {
    fn from(o: frost::DkgOutput) -> Self {
        Self {
            key_share: KeyShare::Frost(o.key_share),
            public_key: o.public_key,
            public_key_package: o.public_key_package,
        }
    }
}

impl From<ecdsa::EcdsaDkgOutput> for DkgOutput {
    fn from(o: ecdsa::EcdsaDkgOutput) -> Self {
        Self {
            key_share: KeyShare::Ecdsa(o.key_share),
            public_key: o.public_key,
            public_key_package: o.public_key_package,
        }
    }
}

/// A boxed DKG state machine of any scheme.
pub type DkgProtocol = Box<dyn Protocol<Output = DkgOutput> + Send>;
/// A boxed signing state machine of any scheme.
pub type SignerProtocol = Box<dyn Protocol<Output = ()> + Send>;

/// Adapts a protocol's output type.
struct MapOutput<P>(P);

impl<P> std::fmt::Debug for MapOutput<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MapOutput")
    }
}

impl<P, O> Protocol for MapOutput<P>
where
    P: Protocol<Output = O>,
    O: Into<DkgOutput>,
{
    type Output = DkgOutput;

    fn session_id(&self) -> SessionId {
        self.0.session_id()
    }

    fn expected_round(&self) -> u16 {
        self.0.expected_round()
    }

    fn start(&mut self) -> Result<Vec<Message>, ProtocolError> {
        self.0.start()
    }

    fn step(&mut self, inbound: Vec<Message>) -> Result<Transition<DkgOutput>, ProtocolError> {
        Ok(match self.0.step(inbound)? {
            Transition::Continue(m) => Transition::Continue(m),
            Transition::Finished { messages, output } => Transition::Finished {
                messages,
                output: output.into(),
            },
        })
    }
}

/// This node's DKG for a `threshold`-of-`participants` key of `scheme`.
pub fn new_dkg<R: RngCore + CryptoRng>(
    scheme: Scheme,
    session: SessionId,
    me: NodeId,
    participants: &[NodeId],
    threshold: u16,
    rng: &mut R,
) -> Result<DkgProtocol, ProtocolError> {
    Ok(match scheme {
        Scheme::EcdsaSecp256k1 => Box::new(MapOutput(ecdsa::new_dkg(
            session,
            me,
            participants,
            threshold,
        )?)),
        _ => Box::new(MapOutput(frost::new_dkg(
            scheme,
            session,
            me,
            participants,
            threshold,
            rng,
        )?)),
    })
}

/// Relay rounds a DKG of `scheme` takes after the start.
pub fn dkg_steps(scheme: Scheme) -> usize {
    match scheme {
        Scheme::EcdsaSecp256k1 => 4,
        _ => 2,
    }
}

/// Relay rounds a signing session of `scheme` takes after the start.
pub fn sign_steps(scheme: Scheme) -> usize {
    match scheme {
        Scheme::EcdsaSecp256k1 => 2,
        _ => 1,
    }
}

/// Refresh the shares of a key among the same participants, or reshare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReshareKind {
    /// Same participants, same threshold: fresh shares of the same key, so
    /// shares leaked before the refresh are useless with shares from after it.
    Refresh,
    /// Any new participant set (overlapping the old one or not) and any
    /// threshold from 2 to its size.
    Reshare,
}

/// The public parameters of one refresh or reshare of a key; every party
/// must be given the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReshareSpec {
    pub kind: ReshareKind,
    /// Every holder of a share of the current epoch (as in its public key package).
    pub old_participants: Vec<NodeId>,
    /// The current threshold `t`.
    pub old_threshold: u16,
    /// The old participants that deal (at least `t` of them), each re-sharing its share.
    pub dealers: Vec<NodeId>,
    /// Who holds a share of the new epoch.
    pub new_participants: Vec<NodeId>,
    /// The new threshold `t'`.
    pub new_threshold: u16,
}

impl ReshareSpec {
    /// Every party of the session, ascending: the dealers and the new
    /// participants. Each takes part in every round (the relay's participant list).
    pub fn parties(&self) -> Vec<NodeId> {
        let parties: std::collections::BTreeSet<NodeId> = self
            .dealers
            .iter()
            .chain(&self.new_participants)
            .copied()
            .collect();
        parties.into_iter().collect()
    }
}

/// What a finished refresh or reshare leaves with a party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReshareOutput {
    /// This party's share of the new epoch (secret); `None` for a dealer
    /// that is not a new participant.
    pub key_share: Option<KeyShare>,
    /// The group key in the scheme's standard encoding: unchanged.
    pub public_key: Vec<u8>,
    /// The new epoch's public key package (new verifying shares and
    /// threshold). Empty for a dealer of an ECDSA key that is not a new
    /// participant: the new epoch's verifying shares are fixed by the DKLs23
    /// refresh among the new participants, which it does not take part in
    /// (the new participants' outputs carry the package).
    pub public_key_package: Vec<u8>,
}

/// A boxed refresh or reshare state machine of any scheme.
pub type ReshareProtocol = Box<dyn Protocol<Output = ReshareOutput> + Send>;

/// This node's refresh or reshare of the key described by
/// `current_public_key_package` (the current epoch's, as stored). `share`
/// is this node's current share: required if it is a dealer, not used
/// otherwise. Every party of the session ([`ReshareSpec::parties`]) runs one;
/// the coordinator relays [`reshare_steps`] rounds after the start.
///
/// ECDSA keys (`crate::ecdsa`'s `reshare` module): the redistribution, then
/// DKLs23's complete refresh among the new participants, in one session. A
/// key whose package predates verifying shares (version 1) can only be
/// refreshed, by all its participants, each from its own `share` (required
/// of every party then); its reshare is refused until it has been refreshed
/// once.
pub fn new_reshare<R: RngCore + CryptoRng>(
    scheme: Scheme,
    session: SessionId,
    me: NodeId,
    spec: &ReshareSpec,
    current_public_key_package: &[u8],
    share: Option<&KeyShare>,
    rng: &mut R,
) -> Result<ReshareProtocol, ProtocolError> {
    let mismatch = |other: &KeyShare| {
        Err(ProtocolError::InvalidParameters(format!(
            "a {} share cannot reshare a {scheme} key",
            other.scheme()
        )))
    };
    if scheme == Scheme::EcdsaSecp256k1 {
        let share = match share {
            None => None,
            Some(KeyShare::Ecdsa(share)) => Some(share),
            Some(other) => return mismatch(other),
        };
        return ecdsa::new_reshare(session, me, spec, current_public_key_package, share, rng);
    }
    let share = match share {
        None => None,
        Some(KeyShare::Frost(share)) => Some(share),
        Some(other) => return mismatch(other),
    };
    frost::new_reshare(
        scheme,
        session,
        me,
        spec,
        current_public_key_package,
        share,
        rng,
    )
}

/// Relay rounds a refresh or reshare of `scheme` takes after the start:
/// FROST 3 (the redistribution); ECDSA 7 (the redistribution, then DKLs23's
/// complete refresh among the new participants, whatever the key's package
/// version).
pub fn reshare_steps(scheme: Scheme) -> usize {
    match scheme {
        Scheme::EcdsaSecp256k1 => ecdsa::reshare_steps(),
        _ => 3,
    }
}

/// This node's signing state machine: `signers` (including `me`) sign `input` with `share`.
pub fn new_signer<R: RngCore + CryptoRng>(
    share: &KeyShare,
    session: SessionId,
    me: NodeId,
    signers: &[NodeId],
    input: &SignInput,
    rng: &mut R,
) -> Result<SignerProtocol, ProtocolError> {
    match (share, input) {
        (KeyShare::Frost(share), SignInput::Message(message)) => {
            frost::new_signer(share.scheme(), session, me, signers, share, message, rng)
        }
        (KeyShare::Ecdsa(share), SignInput::Digest { digest, path }) => {
            ecdsa::new_signer(session, me, signers, share, *digest, path)
        }
        (share, _) => Err(ProtocolError::InvalidParameters(format!(
            "sign input does not fit a {} key",
            share.scheme()
        ))),
    }
}

/// A verified signature in the scheme's standard encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// FROST: the scheme's encoding; ECDSA: 64-byte `r‖s`, low-S.
    pub bytes: Vec<u8>,
    /// ECDSA: the public key recovery id (0..=3).
    pub recovery_id: Option<u8>,
    /// The key the signature verifies under (the child key for a derived ECDSA path).
    pub public_key: Vec<u8>,
}

/// The coordinator's aggregator for one signing session (pure: no I/O).
#[derive(Debug)]
pub enum Aggregator {
    Frost {
        inner: frost::SigningAggregator,
        public_key: Vec<u8>,
    },
    Ecdsa(ecdsa::EcdsaAggregator),
}

impl Aggregator {
    /// An aggregator for `signers` signing `input` with the key described by
    /// `public_key_package` (as stored at key creation); `public_key` is the
    /// stored group key.
    pub fn new(
        scheme: Scheme,
        session: SessionId,
        public_key_package: &[u8],
        public_key: &[u8],
        signers: &[NodeId],
        input: &SignInput,
    ) -> Result<Self, ProtocolError> {
        match input {
            SignInput::Message(message) if scheme != Scheme::EcdsaSecp256k1 => Ok(Self::Frost {
                inner: frost::SigningAggregator::new(
                    scheme,
                    session,
                    public_key_package,
                    signers,
                    message,
                )?,
                public_key: public_key.to_vec(),
            }),
            SignInput::Digest { digest, path } if scheme == Scheme::EcdsaSecp256k1 => {
                Ok(Self::Ecdsa(ecdsa::EcdsaAggregator::new(
                    session,
                    public_key_package,
                    signers,
                    *digest,
                    path,
                )?))
            }
            _ => Err(ProtocolError::InvalidParameters(format!(
                "sign input does not fit a {scheme} key"
            ))),
        }
    }

    /// Aggregates a finished session: `broadcasts` are the broadcasts of each
    /// round (in round order), `to_coordinator` the messages addressed to the
    /// coordinator in the last round.
    pub fn aggregate(
        &mut self,
        broadcasts: &[Vec<Message>],
        to_coordinator: Vec<Message>,
    ) -> Result<Signature, ProtocolError> {
        match self {
            Self::Frost { inner, public_key } => {
                inner.add_commitments(broadcasts.first().cloned().unwrap_or_default())?;
                Ok(Signature {
                    bytes: inner.aggregate(to_coordinator)?,
                    recovery_id: None,
                    public_key: public_key.clone(),
                })
            }
            Self::Ecdsa(inner) => {
                let signature = inner.aggregate(to_coordinator)?;
                Ok(Signature {
                    bytes: signature.to_bytes().to_vec(),
                    recovery_id: Some(signature.recovery_id),
                    public_key: signature.public_key,
                })
            }
        }
    }
}

/// Verifies `signature` (the scheme's standard encoding) over `input` under
/// `public_key` (for ECDSA: the key of the input's path, e.g. as returned
/// with the signature).
pub fn verify(
    scheme: Scheme,
    public_key: &[u8],
    input: &SignInput,
    signature: &[u8],
) -> Result<(), ProtocolError> {
    match input {
        SignInput::Digest { digest, .. } if scheme == Scheme::EcdsaSecp256k1 => {
            ecdsa::verify(public_key, digest, signature)
        }
        SignInput::Message(message) if scheme != Scheme::EcdsaSecp256k1 => {
            frost::verify(scheme, public_key, message, signature)
        }
        _ => Err(ProtocolError::InvalidParameters(format!(
            "sign input does not fit a {scheme} key"
        ))),
    }
}

/// The public key a request's signature verifies under: the stored group
/// key, or for an ECDSA path the child key derived from public data alone.
pub fn public_key_for(
    scheme: Scheme,
    public_key: &[u8],
    public_key_package: &[u8],
    path: &str,
) -> Result<Vec<u8>, ProtocolError> {
    if scheme != Scheme::EcdsaSecp256k1 {
        if !path.is_empty() {
            return Err(ProtocolError::InvalidParameters(format!(
                "{scheme} keys have no derivation paths"
            )));
        }
        return Ok(public_key.to_vec());
    }
    if path.is_empty() {
        return Ok(public_key.to_vec());
    }
    let package = EcdsaPublicKeyPackage::from_bytes(public_key_package)?;
    Ok(ecdsa::derive_public_key(&package, &path.parse()?)?.0)
}

/// The BIP-32 chain code of an ECDSA key (from its public key package);
/// `None` for FROST schemes, which have no child keys.
pub fn chain_code(
    scheme: Scheme,
    public_key_package: &[u8],
) -> Result<Option<[u8; 32]>, ProtocolError> {
    if scheme != Scheme::EcdsaSecp256k1 {
        return Ok(None);
    }
    let package = EcdsaPublicKeyPackage::from_bytes(public_key_package)?;
    Ok(Some(*package.chain_code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_inputs_are_validated_per_scheme() {
        let digest = [7u8; 32];
        assert_eq!(
            SignInput::new(Scheme::EcdsaSecp256k1, &digest, Encoding::Raw, ""),
            Ok(SignInput::Digest {
                digest,
                path: DerivationPath::master()
            })
        );
        // Raw ECDSA input must be a digest; hashing is done here, the same on every node.
        assert!(SignInput::new(Scheme::EcdsaSecp256k1, b"short", Encoding::Raw, "").is_err());
        let hashed = SignInput::new(Scheme::EcdsaSecp256k1, b"", Encoding::Keccak256, "");
        assert!(hashed.is_err(), "empty messages are refused");
        let hashed = SignInput::new(Scheme::EcdsaSecp256k1, b"abc", Encoding::Keccak256, "m/1")
            .expect("valid");
        assert_eq!(
            hex::encode(hashed.signed_bytes()),
            "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
        );
        assert_eq!(
            hashed.path().map(ToString::to_string).as_deref(),
            Some("m/1")
        );
        let sha =
            SignInput::new(Scheme::EcdsaSecp256k1, b"abc", Encoding::Sha256, "").expect("valid");
        assert_eq!(
            hex::encode(sha.signed_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(SignInput::new(Scheme::EcdsaSecp256k1, &digest, Encoding::Raw, "m/0'").is_err());
        // FROST: raw messages only, no paths.
        assert_eq!(
            SignInput::new(Scheme::FrostEd25519, b"hi", Encoding::Raw, ""),
            Ok(SignInput::Message(b"hi".to_vec()))
        );
        assert!(SignInput::new(Scheme::FrostEd25519, b"hi", Encoding::Raw, "m/1").is_err());
        assert!(SignInput::new(Scheme::FrostTaproot, b"hi", Encoding::Sha256, "").is_err());
        let too_long = vec![0u8; MAX_MESSAGE_LEN + 1];
        assert!(SignInput::new(Scheme::FrostSecp256k1, &too_long, Encoding::Raw, "").is_err());
    }
}
