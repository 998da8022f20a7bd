//! FROST threshold Schnorr signatures (RFC 9591 and BIP-340 / Taproot):
//! distributed key generation, signing, aggregation and verification, behind
//! a scheme-erased API so the node and the coordinator never see generics.
//!
//! The state machines are written once, generically over
//! `frost_core::Ciphersuite` (see `dkg` and `sign`); [`Scheme`] picks the
//! ciphersuite at a single dispatch point (`with_suite!`). Standard
//! encodings of keys and signatures:
//!
//! | scheme | group key | signature |
//! | --- | --- | --- |
//! | `frost-secp256k1` | 33-byte SEC1 compressed | 65-byte `R‖z` (RFC 9591) |
//! | `frost-taproot` | 32-byte x-only (BIP-340) | 64-byte BIP-340 |
//! | `frost-ed25519` | 32 bytes (RFC 8032) | 64 bytes (RFC 8032) |
//!
//! Keys are refreshed or reshared by the generic verifiable secret
//! redistribution (`reshare`, through [`crate::engine::new_reshare`]).
//!
//! Taproot: frost-secp256k1-tr applies the BIP-341 "no script path" tweak
//! to the DKG output (`post_dkg`), so the returned x-only key is the tweaked
//! *output* key Q: signatures verify under it and it is what a `bc1p`
//! address encodes (`sigil-chains` encodes addresses).

mod common;
mod dkg;
mod reshare;
mod sign;

use std::fmt;

use frost_core::keys::{KeyPackage, PublicKeyPackage};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use self::common::{Suite, internal};
use crate::codec::{decode_share_header, encode_share};
use crate::{Message, NodeId, Protocol, ProtocolError, Scheme, SessionId};

/// Runs `$body` with `$C` bound to the ciphersuite of `$scheme`. The one
/// place where a scheme becomes a type.
macro_rules! with_suite {
    ($scheme:expr, |$C:ident| $body:expr) => {
        match $scheme {
            Scheme::FrostSecp256k1 => {
                type $C = frost_secp256k1::Secp256K1Sha256;
                $body
            }
            Scheme::FrostTaproot => {
                type $C = frost_secp256k1_tr::Secp256K1Sha256TR;
                $body
            }
            Scheme::FrostEd25519 => {
                type $C = frost_ed25519::Ed25519Sha512;
                $body
            }
            Scheme::EcdsaSecp256k1 => Err(ProtocolError::InvalidParameters(format!(
                "{} is not a FROST scheme (see sigil_protocol::ecdsa)",
                Scheme::EcdsaSecp256k1
            ))),
        }
    };
}

/// A boxed DKG state machine.
pub type DkgProtocol = Box<dyn Protocol<Output = DkgOutput> + Send>;
/// A boxed signing state machine; its only output is the share it sends.
pub type SignerProtocol = Box<dyn Protocol<Output = ()> + Send>;

/// Creates this node's DKG state machine for `participants` (which must
/// include `me`) and a `threshold`-of-n key.
pub fn new_dkg<R: RngCore + CryptoRng>(
    scheme: Scheme,
    session: SessionId,
    me: NodeId,
    participants: &[NodeId],
    threshold: u16,
    rng: &mut R,
) -> Result<DkgProtocol, ProtocolError> {
    with_suite!(scheme, |C| {
        let dkg = dkg::Dkg::<C>::new(session, me, participants, threshold, rng)?;
        Ok(Box::new(dkg) as DkgProtocol)
    })
}

/// Creates this node's refresh or reshare of a FROST key (see
/// [`crate::engine::new_reshare`], the public entry point).
pub(crate) fn new_reshare<R: RngCore + CryptoRng>(
    scheme: Scheme,
    session: SessionId,
    me: NodeId,
    spec: &crate::engine::ReshareSpec,
    current_public_key_package: &[u8],
    share: Option<&KeyShare>,
    rng: &mut R,
) -> Result<crate::engine::ReshareProtocol, ProtocolError> {
    with_suite!(scheme, |C| {
        let reshare = reshare::FrostReshare::<C>::new(
            session,
            me,
            spec,
            current_public_key_package,
            share,
            rng,
        )?;
        Ok(Box::new(reshare) as crate::engine::ReshareProtocol)
    })
}

/// Creates this node's signing state machine: `signers` (including `me`)
/// sign `message` with the key of `key_share`. Draws fresh nonces from `rng`.
pub fn new_signer<R: RngCore + CryptoRng>(
    scheme: Scheme,
    session: SessionId,
    me: NodeId,
    signers: &[NodeId],
    key_share: &KeyShare,
    message: &[u8],
    rng: &mut R,
) -> Result<SignerProtocol, ProtocolError> {
    with_suite!(scheme, |C| {
        let signer = sign::Signer::<C>::new(session, me, signers, key_share, message, |kp| {
            Ok(frost_core::round1::commit(kp.signing_share(), rng).0)
        })?;
        Ok(Box::new(signer) as SignerProtocol)
    })
}

/// Like [`new_signer`] but with fixed nonces (serialized scalars). Only for
/// known-answer tests (RFC 9591 vectors): reusing nonces leaks the key.
///
/// Compiled only into this crate's own tests and with the `test-vectors`
/// feature, which only the crate's dev-dependency on itself enables: a
/// node or coordinator build does not contain it.
#[cfg(any(test, feature = "test-vectors"))]
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn new_signer_with_fixed_nonces(
    scheme: Scheme,
    session: SessionId,
    me: NodeId,
    signers: &[NodeId],
    key_share: &KeyShare,
    message: &[u8],
    hiding: &[u8],
    binding: &[u8],
) -> Result<SignerProtocol, ProtocolError> {
    with_suite!(scheme, |C| {
        use frost_core::round1::{Nonce, SigningNonces};
        let signer = sign::Signer::<C>::new(session, me, signers, key_share, message, |_| {
            let hiding = Nonce::<C>::deserialize(hiding).map_err(internal)?;
            let binding = Nonce::<C>::deserialize(binding).map_err(internal)?;
            Ok(SigningNonces::from_nonces(hiding, binding))
        })?;
        Ok(Box::new(signer) as SignerProtocol)
    })
}

/// The coordinator's aggregator for one signing session (pure: no I/O).
///
/// Feed it every signer's round-1 broadcast ([`Self::add_commitments`]),
/// then every signature share ([`Self::aggregate`]). Bad shares are pinned
/// on their signers with frost's cheater detection; the aggregate signature
/// is verified under the group key before it is returned.
#[derive(Debug)]
pub struct SigningAggregator {
    scheme: Scheme,
    inner: Box<dyn sign::ErasedAggregator>,
}

impl SigningAggregator {
    /// An aggregator for `signers` signing `message` under the key described
    /// by `public_key_package` (as in [`DkgOutput::public_key_package`]).
    pub fn new(
        scheme: Scheme,
        session: SessionId,
        public_key_package: &[u8],
        signers: &[NodeId],
        message: &[u8],
    ) -> Result<Self, ProtocolError> {
        let inner: Box<dyn sign::ErasedAggregator> = with_suite!(scheme, |C| {
            let aggregator =
                sign::Aggregator::<C>::new(session, public_key_package, signers, message)?;
            Ok(Box::new(aggregator) as Box<dyn sign::ErasedAggregator>)
        })?;
        Ok(Self { scheme, inner })
    }

    /// The scheme being aggregated.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Records the signers' round-1 commitments: exactly one Broadcast per signer.
    pub fn add_commitments(&mut self, round1: Vec<Message>) -> Result<(), ProtocolError> {
        self.inner.add_commitments(round1)
    }

    /// Aggregates the round-2 shares (one per signer, addressed to the
    /// coordinator) into a verified signature in the scheme's standard encoding.
    pub fn aggregate(&mut self, shares: Vec<Message>) -> Result<Vec<u8>, ProtocolError> {
        self.inner.aggregate(shares)
    }
}

/// Verifies a signature in the scheme's standard encoding under a group key
/// in the scheme's standard encoding.
pub fn verify(
    scheme: Scheme,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), ProtocolError> {
    with_suite!(scheme, |C| {
        let key = C::decode_key(public_key)?;
        let signature = C::decode_signature(signature)?;
        key.verify(message, &signature)
            .map_err(|e| ProtocolError::InvalidSignature(e.to_string()))
    })
}

/// What a finished DKG leaves with a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkgOutput {
    /// This node's share (secret), to be encrypted at rest.
    pub key_share: KeyShare,
    /// The group key in the scheme's standard encoding.
    pub public_key: Vec<u8>,
    /// Serialized frost `PublicKeyPackage` (group key and every verifying share), public.
    pub public_key_package: Vec<u8>,
}

/// One node's share of one key: a serialized frost `KeyPackage` (secret)
/// and `PublicKeyPackage` (public), tagged with scheme and node.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyShare {
    scheme: Scheme,
    node: NodeId,
    key_package: Zeroizing<Vec<u8>>,
    public_key_package: Vec<u8>,
}

impl fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShare")
            .field("scheme", &self.scheme)
            .field("node", &self.node)
            .field("key_package", &"<redacted>")
            .field(
                "public_key",
                &self.public_key().map(hex::encode).unwrap_or_default(),
            )
            .finish()
    }
}

impl KeyShare {
    fn new<C: Suite>(
        node: NodeId,
        key_package: Zeroizing<Vec<u8>>,
        public_key_package: Vec<u8>,
    ) -> Result<Self, ProtocolError> {
        let share = Self {
            scheme: C::SCHEME,
            node,
            key_package,
            public_key_package,
        };
        share.check::<C>()?;
        Ok(share)
    }

    /// Checks that the packages decode, belong to `node` and agree with each other.
    fn check<C: Suite>(&self) -> Result<(), ProtocolError> {
        let bad =
            |what: &str| ProtocolError::InvalidParameters(format!("invalid key share: {what}"));
        let key_package =
            KeyPackage::<C>::deserialize(&self.key_package).map_err(|_| bad("key package"))?;
        let public = PublicKeyPackage::<C>::deserialize(&self.public_key_package)
            .map_err(|_| bad("public key package"))?;
        let id = frost_core::Identifier::<C>::try_from(self.node.get())
            .map_err(|_| bad("identifier"))?;
        if *key_package.identifier() != id {
            return Err(bad("key package belongs to another node"));
        }
        if public.verifying_key() != key_package.verifying_key()
            || public.verifying_shares().get(&id) != Some(key_package.verifying_share())
        {
            return Err(bad("key package and public key package disagree"));
        }
        Ok(())
    }

    /// Builds a key share from serialized frost packages (e.g. imported or
    /// from test vectors), checking that they are consistent.
    pub fn from_frost_packages(
        scheme: Scheme,
        node: NodeId,
        key_package: Zeroizing<Vec<u8>>,
        public_key_package: Vec<u8>,
    ) -> Result<Self, ProtocolError> {
        with_suite!(scheme, |C| Self::new::<C>(
            node,
            key_package,
            public_key_package
        ))
    }

    /// The scheme of the key.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The node holding this share.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The serialized frost `PublicKeyPackage` (public).
    pub fn public_key_package(&self) -> &[u8] {
        &self.public_key_package
    }

    /// The serialized frost `KeyPackage` (secret).
    pub(crate) fn key_package_bytes(&self) -> &[u8] {
        &self.key_package
    }

    /// The group key in the scheme's standard encoding.
    pub fn public_key(&self) -> Result<Vec<u8>, ProtocolError> {
        with_suite!(self.scheme, |C| {
            let public =
                PublicKeyPackage::<C>::deserialize(&self.public_key_package).map_err(internal)?;
            C::encode_key(public.verifying_key())
        })
    }

    /// The signing threshold of the key.
    pub fn threshold(&self) -> Result<u16, ProtocolError> {
        with_suite!(self.scheme, |C| {
            let key_package = KeyPackage::<C>::deserialize(&self.key_package).map_err(internal)?;
            Ok(*key_package.min_signers())
        })
    }

    /// Versioned, scheme-tagged encoding (secret: encrypt it at rest): the
    /// key-share envelope (`codec::encode_share`) with two parts, the frost
    /// `KeyPackage` and `PublicKeyPackage`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        encode_share(
            self.scheme,
            self.node,
            &[&self.key_package, &self.public_key_package],
        )
    }

    /// Parses and validates [`KeyShare::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let (scheme, node, mut reader) = decode_share_header(bytes)?;
        let key_package = Zeroizing::new(reader.chunk()?.to_vec());
        let public_key_package = reader.chunk()?.to_vec();
        reader.finish()?;
        Self::from_frost_packages(scheme, node, key_package, public_key_package)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_is_not_a_frost_scheme() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let n = |i| NodeId::new(i).expect("nonzero");
        let err = new_dkg(
            Scheme::EcdsaSecp256k1,
            SessionId::from_bytes([0; 16]),
            n(1),
            &[n(1), n(2)],
            2,
            &mut rng,
        )
        .err();
        assert_eq!(
            err,
            Some(ProtocolError::InvalidParameters(
                "ecdsa-secp256k1 is not a FROST scheme (see sigil_protocol::ecdsa)".into()
            ))
        );
    }

    #[test]
    fn key_share_encoding_rejects_garbage() {
        for bytes in [
            &b""[..],
            b"SGKS",
            b"SGKS\x02\x01\x00\x01",
            b"XXXX\x01\x01\x00\x01\0\0\0\0\0\0\0\0",
        ] {
            assert!(matches!(
                KeyShare::from_bytes(bytes),
                Err(ProtocolError::InvalidParameters(_))
            ));
        }
    }
}
