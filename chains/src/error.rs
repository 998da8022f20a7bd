//! The one error type of this crate.

/// Why an encoding could not be produced or an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// Not a 33-byte compressed or 65-byte uncompressed SEC1 secp256k1 point.
    #[error("invalid secp256k1 public key: {0}")]
    InvalidPublicKey(String),
    /// [`crate::MessageHash::Raw32`] was given something other than 32 bytes.
    #[error("a raw32 message must be a 32-byte digest, got {0} bytes")]
    NotADigest(usize),
    /// An unknown [`crate::MessageHash`] name.
    #[error("unknown message hash {0:?} (expected raw32, keccak256 or sha256)")]
    UnknownMessageHash(String),
    /// A malformed address string.
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    /// A mixed-case Ethereum address whose case does not match its EIP-55
    /// checksum (a typo, or a corrupted copy).
    #[error("address {0} fails its EIP-55 checksum")]
    BadChecksum(String),
    /// A malformed or out-of-range amount.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// A signature that is malformed, out of range, not low-S, or does not
    /// verify.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// A recovery id / y-parity other than 0 or 1.
    #[error("invalid recovery id {0} (must be 0 or 1)")]
    InvalidRecoveryId(u64),
    /// A legacy `v` that is neither 27/28 nor an EIP-155 value.
    #[error("invalid v {0}")]
    InvalidV(u64),
    /// A computed value does not fit its type (e.g. an EIP-155 `v` for a
    /// huge chain id).
    #[error("arithmetic overflow: {0}")]
    Overflow(&'static str),
    /// An unsigned transaction that does not decode.
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    /// An encoder refused its input (should not happen for validated input).
    #[error("encoding failed: {0}")]
    Encoding(String),
}
