//! Non-hardened BIP-32 derivation for threshold ECDSA keys: derivation
//! paths, and public child-key derivation (BIP-32 `CKDpub`) from a key's
//! public key package.
//!
//! BIP-32 (<https://github.com/bitcoin/bips/blob/master/bip-0032.mediawiki>)
//! derives a child key as `K_i = K + IL·G`, chain code `IR`, where
//! `IL ‖ IR = HMAC-SHA512(c, serP(K) ‖ ser32(i))`. For a non-hardened index
//! the tweak `IL` depends on public data only, so every DKLs23 party shifts
//! its share by the same `IL` and the parties jointly hold the child key
//! (dkls23's `Party::derive_child`). Hardened indices hash the *private*
//! key, which no party holds: they are refused.
//!
//! The coordinator derives child public keys here, with k256 0.13, from the
//! group key and chain code the DKG agreed on; the nodes derive their child
//! shares with dkls23. Tests check the two agree, and check this code
//! against BIP-32's published test vectors.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use k256::elliptic_curve::PrimeField as _;
use k256::elliptic_curve::group::Group as _;
use k256::elliptic_curve::sec1::ToEncodedPoint as _;
use k256::{FieldBytes, ProjectivePoint, PublicKey, Scalar};
use sha2::Sha512;

use super::keys::EcdsaPublicKeyPackage;
use crate::ProtocolError;

/// First hardened index (2^31).
const HARDENED: u32 = 1 << 31;

/// A BIP-32 path of non-hardened child indices from the master key:
/// `m`, `m/0/42`, … Parsing refuses hardened components (`'`, `h`, `H`, or
/// an index ≥ 2^31), paths deeper than 255, and anything malformed
/// (empty components, signs, spaces, leading zeros). [`fmt::Display`]
/// prints the canonical form, which parses back to the same path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DerivationPath(Vec<u32>);

impl DerivationPath {
    /// BIP-32 depth is one byte.
    pub const MAX_DEPTH: usize = 255;

    /// The master key itself (`m`).
    pub fn master() -> Self {
        Self(Vec::new())
    }

    /// A path from child indices, refusing hardened indices and depth > 255.
    pub fn from_indices(indices: &[u32]) -> Result<Self, ProtocolError> {
        if indices.len() > Self::MAX_DEPTH {
            return Err(ProtocolError::InvalidParameters(format!(
                "derivation path depth {} exceeds BIP-32's maximum of {}",
                indices.len(),
                Self::MAX_DEPTH
            )));
        }
        if let Some(index) = indices.iter().find(|i| **i >= HARDENED) {
            return Err(hardened(&index.to_string()));
        }
        Ok(Self(indices.to_vec()))
    }

    /// The child indices, from the master key down.
    pub fn indices(&self) -> &[u32] {
        &self.0
    }

    /// True for `m` (no derivation).
    pub fn is_master(&self) -> bool {
        self.0.is_empty()
    }
}

fn hardened(component: &str) -> ProtocolError {
    ProtocolError::InvalidParameters(format!(
        "hardened derivation ({component}) is impossible for a threshold key: \
         it needs the full private key, which no party holds; \
         use non-hardened indices below 2^31"
    ))
}

impl FromStr for DerivationPath {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = |why: &str| {
            ProtocolError::InvalidParameters(format!("malformed derivation path {s:?}: {why}"))
        };
        let mut parts = s.split('/');
        if parts.next() != Some("m") {
            return Err(malformed("must start with \"m\""));
        }
        let mut indices = Vec::new();
        for part in parts {
            if part.ends_with(['\'', 'h', 'H']) {
                return Err(hardened(part));
            }
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed(&format!("component {part:?} is not a number")));
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(malformed(&format!("component {part:?} has a leading zero")));
            }
            let index: u32 = part
                .parse()
                .map_err(|_| malformed(&format!("component {part:?} is out of range")))?;
            if index >= HARDENED {
                return Err(hardened(part));
            }
            if indices.len() == Self::MAX_DEPTH {
                return Err(ProtocolError::InvalidParameters(format!(
                    "derivation path deeper than BIP-32's maximum of {}",
                    Self::MAX_DEPTH
                )));
            }
            indices.push(index);
        }
        Ok(Self(indices))
    }
}

impl fmt::Display for DerivationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("m")?;
        for index in &self.0 {
            write!(f, "/{index}")?;
        }
        Ok(())
    }
}

/// BIP-32 `CKDpub` along `path` from the key and chain code of `package`:
/// the child public key (33-byte SEC1 compressed) and its chain code. For
/// `m` this is the group key and the DKG's chain code.
pub fn derive_public_key(
    package: &EcdsaPublicKeyPackage,
    path: &DerivationPath,
) -> Result<(Vec<u8>, [u8; 32]), ProtocolError> {
    let (key, chain_code) = derive_from(package.public_key(), package.chain_code(), path)?;
    Ok((key.to_encoded_point(true).as_bytes().to_vec(), chain_code))
}

/// `CKDpub` along `path` from any extended public key (SEC1 key and chain code).
pub(crate) fn derive_from(
    public_key: &[u8],
    chain_code: &[u8; 32],
    path: &DerivationPath,
) -> Result<(PublicKey, [u8; 32]), ProtocolError> {
    let mut key = PublicKey::from_sec1_bytes(public_key)
        .map_err(|_| ProtocolError::InvalidParameters("invalid secp256k1 public key".into()))?;
    let mut chain_code = *chain_code;
    for &index in path.indices() {
        (key, chain_code) = ckd_pub(&key, &chain_code, index)?;
    }
    Ok((key, chain_code))
}

/// One non-hardened BIP-32 public derivation step.
fn ckd_pub(
    parent: &PublicKey,
    chain_code: &[u8; 32],
    index: u32,
) -> Result<(PublicKey, [u8; 32]), ProtocolError> {
    if index >= HARDENED {
        return Err(hardened(&index.to_string()));
    }
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(chain_code)
        .map_err(|e| ProtocolError::InvalidParameters(format!("HMAC key: {e}")))?;
    mac.update(parent.to_encoded_point(true).as_bytes());
    mac.update(&index.to_be_bytes());
    let i = mac.finalize().into_bytes();
    let (il, ir) = i.split_at(32);
    // BIP-32: if parse256(IL) ≥ n or the child is the point at infinity, the
    // index is invalid (probability below 2^-127); the caller moves on to the next.
    let invalid = || {
        ProtocolError::InvalidParameters(format!(
            "BIP-32 child index {index} is invalid for this key (IL ≥ n or point at infinity); use the next index"
        ))
    };
    let mut il_bytes = [0u8; 32];
    il_bytes.copy_from_slice(il);
    let tweak = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(il_bytes)))
        .ok_or_else(invalid)?;
    let child = ProjectivePoint::GENERATOR * tweak + parent.to_projective();
    if bool::from(child.is_identity()) {
        return Err(invalid());
    }
    let child = PublicKey::from_affine(child.to_affine()).map_err(|_| invalid())?;
    let mut next = [0u8; 32];
    next.copy_from_slice(ir);
    Ok((child, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DerivationPath, ProtocolError> {
        s.parse()
    }

    #[test]
    fn paths_parse_and_round_trip() {
        assert_eq!(parse("m"), Ok(DerivationPath::master()));
        assert!(parse("m").expect("m").is_master());
        let path = parse("m/0/42/2147483647").expect("path");
        assert_eq!(path.indices(), &[0, 42, 2_147_483_647]);
        assert_eq!(path.to_string(), "m/0/42/2147483647");
        assert_eq!(parse(&path.to_string()), Ok(path.clone()));
        assert_eq!(
            DerivationPath::from_indices(&[0, 42, 2_147_483_647]),
            Ok(path)
        );
        let deepest = format!("m{}", "/1".repeat(255));
        assert_eq!(parse(&deepest).map(|p| p.indices().len()), Ok(255));
    }

    #[test]
    fn hardened_paths_are_refused_clearly() {
        for s in ["m/0'", "m/1/2h", "m/3H", "m/2147483648", "m/4294967295"] {
            match parse(s) {
                Err(ProtocolError::InvalidParameters(msg)) => {
                    assert!(msg.contains("hardened derivation"), "{s}: {msg}")
                }
                other => panic!("{s}: {other:?}"),
            }
        }
        assert!(matches!(
            DerivationPath::from_indices(&[1, HARDENED]),
            Err(ProtocolError::InvalidParameters(msg)) if msg.contains("hardened")
        ));
    }

    #[test]
    fn malformed_paths_are_refused() {
        for s in [
            "",
            "M",
            "m/",
            "m//1",
            "/0",
            "0/1",
            "m/a",
            "m/-1",
            "m/+1",
            "m/ 1",
            "m/1 ",
            "m/01",
            "m/4294967296",
            "m/1/",
            "n/1",
            "m\\1",
        ] {
            match parse(s) {
                Err(ProtocolError::InvalidParameters(msg)) => {
                    assert!(!msg.contains("hardened"), "{s}: {msg}")
                }
                other => panic!("{s:?}: {other:?}"),
            }
        }
        let too_deep = format!("m{}", "/1".repeat(256));
        assert!(matches!(
            parse(&too_deep),
            Err(ProtocolError::InvalidParameters(msg)) if msg.contains("maximum of 255")
        ));
        assert!(DerivationPath::from_indices(&[0; 256]).is_err());
    }
}
