//! Hash functions, and [`MessageHash`]: how Sigil turns a sign request's
//! message into the 32-byte digest that ECDSA signs.
//!
//! ECDSA signs a fixed-size digest, and which hash a chain expects is part
//! of the chain's rules: Ethereum signs Keccak-256 digests (the original
//! Keccak padding, *not* NIST SHA3-256), TRON signs SHA-256 of a
//! transaction's `raw_data` (its addresses use Keccak-256), Bitcoin signs
//! (double) SHA-256 sighashes. A client that has already computed the chain's digest
//! (an EIP-1559 signing hash, a BIP-143 sighash) asks for
//! [`MessageHash::Raw32`] and Sigil signs those 32 bytes as they are.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use sha3::Keccak256;

use crate::ChainError;

/// Keccak-256 (the pre-standard Keccak padding Ethereum uses).
pub fn keccak256(data: impl AsRef<[u8]>) -> [u8; 32] {
    Keccak256::digest(data.as_ref()).into()
}

/// SHA-256 (FIPS 180-4).
pub fn sha256(data: impl AsRef<[u8]>) -> [u8; 32] {
    Sha256::digest(data.as_ref()).into()
}

/// How a sign request's message becomes the 32-byte digest ECDSA signs.
///
/// Serialized (serde, [`Display`](fmt::Display), [`FromStr`]) as `raw32`,
/// `keccak256` or `sha256`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageHash {
    /// The message already is the 32-byte digest (e.g. an EIP-1559 signing
    /// hash or a Bitcoin sighash computed by the client); signed as is.
    Raw32,
    /// Keccak-256 of the message (Ethereum; TRON messages signed the TIP-191 way).
    Keccak256,
    /// SHA-256 of the message.
    Sha256,
}

impl MessageHash {
    /// Every variant, in a stable order.
    pub const ALL: [MessageHash; 3] = [Self::Raw32, Self::Keccak256, Self::Sha256];

    /// The variant's name: `raw32`, `keccak256` or `sha256`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Raw32 => "raw32",
            Self::Keccak256 => "keccak256",
            Self::Sha256 => "sha256",
        }
    }

    /// The 32-byte digest to sign for `message`. Fails only for
    /// [`MessageHash::Raw32`] when `message` is not exactly 32 bytes.
    pub fn digest(self, message: &[u8]) -> Result<[u8; 32], ChainError> {
        match self {
            Self::Raw32 => message
                .try_into()
                .map_err(|_| ChainError::NotADigest(message.len())),
            Self::Keccak256 => Ok(keccak256(message)),
            Self::Sha256 => Ok(sha256(message)),
        }
    }
}

impl fmt::Display for MessageHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageHash {
    type Err = ChainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| ChainError::UnknownMessageHash(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0; 32];
        hex::decode_to_slice(s, &mut out).expect("test hex");
        out
    }

    #[test]
    fn known_digests() {
        // Keccak-256 of "" and "abc" (Keccak team's reference values; note
        // they differ from NIST SHA3-256).
        assert_eq!(
            keccak256(b""),
            hex32("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
        );
        assert_eq!(
            keccak256(b"abc"),
            hex32("4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45")
        );
        // FIPS 180-2 appendix B.1.
        assert_eq!(
            sha256(b"abc"),
            hex32("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[test]
    fn message_hash_digests() {
        let msg = b"abc";
        assert_eq!(MessageHash::Keccak256.digest(msg), Ok(keccak256(msg)));
        assert_eq!(MessageHash::Sha256.digest(msg), Ok(sha256(msg)));
        let digest = [7u8; 32];
        assert_eq!(MessageHash::Raw32.digest(&digest), Ok(digest));
        assert_eq!(
            MessageHash::Raw32.digest(&[0; 31]),
            Err(ChainError::NotADigest(31))
        );
        assert_eq!(
            MessageHash::Raw32.digest(&[0; 33]),
            Err(ChainError::NotADigest(33))
        );
        assert_eq!(
            MessageHash::Raw32.digest(b""),
            Err(ChainError::NotADigest(0))
        );
    }

    #[test]
    fn message_hash_names_round_trip() {
        for h in MessageHash::ALL {
            assert_eq!(h.to_string().parse::<MessageHash>(), Ok(h));
            let json = serde_json::to_string(&h).expect("serialize");
            assert_eq!(json, format!("\"{h}\""));
            assert_eq!(
                serde_json::from_str::<MessageHash>(&json).expect("deserialize"),
                h
            );
        }
        assert!(matches!(
            "sha3".parse::<MessageHash>(),
            Err(ChainError::UnknownMessageHash(_))
        ));
    }
}
