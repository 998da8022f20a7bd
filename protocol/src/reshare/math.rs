//! The arithmetic of the redistribution, written once over `frost-core`'s
//! [`Group`] and [`Field`] traits so that every ciphersuite (secp256k1,
//! Taproot, Ed25519) runs the same code: x-coordinates as scalars, Lagrange
//! coefficients at 0, polynomial and commitment evaluation, and the
//! canonical encodings of points and scalars.
//!
//! Secret scalars live in [`Secret`], which `zeroize` wipes with a volatile
//! write of zero (the same mechanism `frost-core` uses for its
//! `SigningShare`). Transient copies in registers and on the stack during a
//! computation are beyond what generic code can wipe; every value that
//! outlives a function is held in a zeroizing container.

use std::collections::BTreeMap;

use frost_core::keys::SigningShare;
use frost_core::{Ciphersuite, Element, Field, Group, Identifier, Scalar};
use zeroize::{DefaultIsZeroes, Zeroizing};

use crate::{NodeId, ProtocolError};

/// The scalar field of `C`.
pub(crate) type ScalarField<C> = <<C as Ciphersuite>::Group as Group>::Field;

/// A secret scalar (a polynomial coefficient, a subshare or a share): never
/// printed, wiped by `zeroize` (wrap it in [`Zeroizing`]).
pub(crate) struct Secret<C: Ciphersuite>(pub(crate) Scalar<C>);

impl<C: Ciphersuite> Clone for Secret<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: Ciphersuite> Copy for Secret<C> {}

impl<C: Ciphersuite> Default for Secret<C> {
    fn default() -> Self {
        Self(<ScalarField<C>>::zero())
    }
}

/// `zeroize` overwrites the value with `Default` (zero) using a volatile write.
impl<C: Ciphersuite> DefaultIsZeroes for Secret<C> {}

impl<C: Ciphersuite> std::fmt::Debug for Secret<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// An error that input cannot cause (encoding well-formed values).
pub(crate) fn internal(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::InvalidParameters(format!("internal redistribution error: {e}"))
}

/// Parses a canonical scalar encoding (wrong length or a value ≥ the group
/// order is refused).
pub(crate) fn decode_scalar<C: Ciphersuite>(bytes: &[u8]) -> Option<Scalar<C>> {
    let buf = <ScalarField<C> as Field>::Serialization::try_from(bytes).ok()?;
    <ScalarField<C>>::deserialize(&buf).ok()
}

/// The canonical encoding of a secret scalar, in a zeroizing buffer.
pub(crate) fn encode_secret<C: Ciphersuite>(secret: &Secret<C>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(<ScalarField<C>>::serialize(&secret.0).as_ref().to_vec())
}

/// Parses a canonical point encoding. The identity, non-canonical encodings
/// and (Ed25519) points outside the prime-order subgroup are refused by the
/// ciphersuite's `Group::deserialize`.
pub(crate) fn decode_element<C: Ciphersuite>(bytes: &[u8]) -> Result<Element<C>, String> {
    let buf = <C::Group as Group>::Serialization::try_from(bytes)
        .map_err(|_| format!("a point encoding of {} bytes", bytes.len()))?;
    <C::Group>::deserialize(&buf).map_err(|e| e.to_string())
}

/// The canonical encoding of a point; the identity has none.
pub(crate) fn encode_element<C: Ciphersuite>(
    element: &Element<C>,
) -> Result<Vec<u8>, ProtocolError> {
    <C::Group>::serialize(element)
        .map(|s| s.as_ref().to_vec())
        .map_err(internal)
}

/// Length of one encoded point.
pub(crate) fn element_len<C: Ciphersuite>() -> Result<usize, ProtocolError> {
    Ok(encode_element::<C>(&<C::Group>::generator())?.len())
}

/// `s·G`.
pub(crate) fn base_mul<C: Ciphersuite>(s: &Scalar<C>) -> Element<C> {
    <C::Group>::generator() * *s
}

/// The x-coordinate `x` as a scalar: exactly the scalar frost-core's
/// `Identifier::try_from(x)` evaluates shares at.
pub(crate) fn x_scalar<C: Ciphersuite>(x: u16) -> Result<Scalar<C>, ProtocolError> {
    let id = Identifier::<C>::try_from(x).map_err(|e| {
        ProtocolError::InvalidParameters(format!("x-coordinate {x} is not valid: {e}"))
    })?;
    decode_scalar::<C>(&id.serialize()).ok_or_else(|| internal("identifier encoding"))
}

/// `λ_i(0)` over the x-coordinates `xs`: `Π_{j≠i} x_j / (x_j − x_i)`.
pub(crate) fn lagrange_at_zero<C: Ciphersuite>(
    xs: &BTreeMap<NodeId, Scalar<C>>,
    i: NodeId,
) -> Result<Scalar<C>, ProtocolError> {
    let x_i = *xs.get(&i).ok_or_else(|| internal("no x-coordinate"))?;
    let mut num = <ScalarField<C>>::one();
    let mut den = <ScalarField<C>>::one();
    for (&j, &x_j) in xs {
        if j != i {
            num = num * x_j;
            den = den * (x_j - x_i);
        }
    }
    let inverse = <ScalarField<C>>::invert(&den)
        .map_err(|_| ProtocolError::InvalidParameters("duplicate x-coordinates".into()))?;
    Ok(num * inverse)
}

/// `f(x) = Σ_k a_k·x^k` (Horner).
pub(crate) fn evaluate<C: Ciphersuite>(coefficients: &[Secret<C>], x: &Scalar<C>) -> Secret<C> {
    let mut acc = Secret::<C>::default();
    for a in coefficients.iter().rev() {
        acc = Secret(acc.0 * *x + a.0);
    }
    acc
}

/// `Σ_k C_k·x^k` (Horner): the public image `f(x)·G` of a Feldman commitment.
pub(crate) fn evaluate_commitment<C: Ciphersuite>(
    commitment: &[Element<C>],
    x: &Scalar<C>,
) -> Element<C> {
    let mut acc = <C::Group>::identity();
    for c in commitment.iter().rev() {
        acc = acc * *x + *c;
    }
    acc
}

/// A nonzero random scalar (a polynomial coefficient, so that no honest
/// commitment is the identity, which has no encoding).
pub(crate) fn random_nonzero<C: Ciphersuite, R: rand_core::RngCore + rand_core::CryptoRng>(
    rng: &mut R,
) -> Secret<C> {
    loop {
        let s = <ScalarField<C>>::random(rng);
        if s != <ScalarField<C>>::zero() {
            return Secret(s);
        }
    }
}

/// A secret scalar as frost's (zeroizing) `SigningShare`.
pub(crate) fn to_signing_share<C: Ciphersuite>(
    secret: &Secret<C>,
) -> Result<Zeroizing<SigningShare<C>>, ProtocolError> {
    let bytes = encode_secret(secret);
    SigningShare::<C>::deserialize(&bytes)
        .map(Zeroizing::new)
        .map_err(internal)
}

/// frost's `SigningShare` as a secret scalar.
pub(crate) fn from_signing_share<C: Ciphersuite>(
    share: &SigningShare<C>,
) -> Result<Secret<C>, ProtocolError> {
    let bytes = Zeroizing::new(share.serialize());
    decode_scalar::<C>(&bytes)
        .map(Secret)
        .ok_or_else(|| internal("signing share encoding"))
}
