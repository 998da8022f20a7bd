//! Chain-specific encodings for Sigil's threshold ECDSA (secp256k1) keys.
//!
//! The threshold protocol produces a group public key and, per signing
//! session, a plain ECDSA signature `(r, s)` over a 32-byte digest. Turning
//! those into something a blockchain accepts is chain-specific and lives
//! here, away from the protocol and the daemons:
//!
//! - [`hash`]: Keccak-256, SHA-256, and [`MessageHash`], the rule that turns a
//!   sign request's message into the 32-byte digest ECDSA signs.
//! - [`ethereum`]: addresses (EIP-55 checksums), address parsing, EIP-191
//!   personal messages, `v` / y-parity, and [`RecoverableSignature`], which
//!   low-S-normalizes a threshold signature and finds its recovery id.
//! - [`eip1559`]: EIP-1559 (EIP-2718 type `0x02`) transactions: the signing
//!   hash and the signed raw encoding.
//! - [`tron`]: TRON addresses (Base58Check of `0x41` ‖ the Ethereum hash).
//! - [`bitcoin`]: BIP-173 P2WPKH (`bc1q…`) addresses.
//! - [`key`]: SEC1 public-key parsing shared by all of the above.
//!
//! Everything here is pure: no I/O, no async runtime, no global state.
//! Public keys are accepted as 33-byte compressed or 65-byte uncompressed
//! SEC1 encodings and are always checked to be points on the curve.

pub mod bitcoin;
pub mod eip1559;
mod error;
pub mod ethereum;
pub mod hash;
pub mod key;
pub mod tron;
mod u256;

pub use bitcoin::{BitcoinNetwork, bitcoin_p2wpkh_address};
pub use eip1559::Eip1559Tx;
pub use error::ChainError;
pub use ethereum::{
    RecoverableSignature, eip155_v, ethereum_address, ethereum_address_bytes, legacy_v,
    parse_address, personal_message, personal_message_hash, recovery_id_from_v,
    to_checksum_address, y_parity,
};
pub use hash::{MessageHash, keccak256, sha256};
pub use key::{compressed_public_key, uncompressed_public_key};
pub use tron::{parse_tron_address, tron_address};
pub use u256::U256;
