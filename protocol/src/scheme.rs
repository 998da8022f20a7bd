//! The signature schemes Sigil can run, with their stable names.
//!
//! A key is generated for exactly one scheme and every later use of it (key
//! share encoding, signing, verification, addresses) is tagged with that
//! scheme, so a share of one scheme can never be fed to another. The string
//! names are part of Sigil's configuration and API surface and never change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ProtocolError;

/// A threshold signature scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scheme {
    /// FROST(secp256k1, SHA-256), RFC 9591: 33-byte SEC1 keys, 65-byte `R‖z` signatures.
    FrostSecp256k1,
    /// FROST for BIP-340 Schnorr / Taproot: 32-byte x-only keys, 64-byte signatures.
    FrostTaproot,
    /// FROST(Ed25519, SHA-512), RFC 9591: 32-byte keys, 64-byte RFC 8032 signatures.
    FrostEd25519,
    /// Threshold ECDSA over secp256k1 with DKLs23 (IACR eprint 2023/765), see
    /// [`crate::ecdsa`]: 33-byte SEC1 keys, 64-byte low-S `r‖s` signatures
    /// with a recovery id, non-hardened BIP-32 derivation.
    EcdsaSecp256k1,
}

impl Scheme {
    /// Every scheme, in tag order.
    pub const ALL: [Scheme; 4] = [
        Scheme::FrostSecp256k1,
        Scheme::FrostTaproot,
        Scheme::FrostEd25519,
        Scheme::EcdsaSecp256k1,
    ];

    /// The FROST schemes this crate implements.
    pub const FROST: [Scheme; 3] = [
        Scheme::FrostSecp256k1,
        Scheme::FrostTaproot,
        Scheme::FrostEd25519,
    ];

    /// The stable name used in configuration, APIs and logs.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::FrostSecp256k1 => "frost-secp256k1",
            Scheme::FrostTaproot => "frost-taproot",
            Scheme::FrostEd25519 => "frost-ed25519",
            Scheme::EcdsaSecp256k1 => "ecdsa-secp256k1",
        }
    }

    /// The stable one-byte tag used in binary encodings (key shares).
    pub fn tag(self) -> u8 {
        match self {
            Scheme::FrostSecp256k1 => 1,
            Scheme::FrostTaproot => 2,
            Scheme::FrostEd25519 => 3,
            Scheme::EcdsaSecp256k1 => 4,
        }
    }

    /// Inverse of [`Scheme::tag`].
    pub fn from_tag(tag: u8) -> Result<Self, ProtocolError> {
        Self::ALL
            .into_iter()
            .find(|s| s.tag() == tag)
            .ok_or_else(|| ProtocolError::InvalidParameters(format!("unknown scheme tag {tag}")))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scheme| scheme.name() == s)
            .ok_or_else(|| ProtocolError::InvalidParameters(format!("unknown scheme {s:?}")))
    }
}

impl TryFrom<String> for Scheme {
    type Error = ProtocolError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Scheme> for String {
    fn from(s: Scheme) -> String {
        s.name().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags_round_trip() {
        for scheme in Scheme::ALL {
            assert_eq!(scheme.to_string().parse::<Scheme>(), Ok(scheme));
            assert_eq!(Scheme::from_tag(scheme.tag()), Ok(scheme));
        }
        assert_eq!("frost-taproot".parse::<Scheme>(), Ok(Scheme::FrostTaproot));
        assert!("frost-p256".parse::<Scheme>().is_err());
        assert!(Scheme::from_tag(0).is_err());
    }
}
