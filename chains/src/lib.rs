//! Chain-specific encodings for Sigil's keys: every address a key can use,
//! and what a chain needs around a threshold signature.
//!
//! The threshold protocols produce a group public key and, per signing
//! session, a signature over a message or digest. Turning those into
//! something a blockchain accepts is chain-specific and lives here, away
//! from the protocols and the daemons:
//!
//! - [`addresses()`]: every address of a key, by chain name, for any
//!   [`Scheme`](sigil_protocol::Scheme) (the `addresses` map of the API).
//! - [`hash`]: Keccak-256, SHA-256, and [`MessageHash`], the rule that turns a
//!   sign request's message into the 32-byte digest ECDSA signs.
//! - [`ethereum`]: addresses (EIP-55 checksums), address parsing, EIP-191
//!   personal messages, `v` / y-parity, and [`RecoverableSignature`], which
//!   low-S-normalizes a threshold signature and finds its recovery id.
//! - [`evm`]: any unsigned EVM transaction Sigil signs (legacy EIP-155,
//!   EIP-2930, EIP-1559) with its threshold signature, as a raw signed
//!   transaction and its hash.
//! - [`eip1559`]: EIP-1559 (EIP-2718 type `0x02`) transactions: the signing
//!   hash and the signed raw encoding (alloy-consensus), wei amounts.
//! - [`eip712`]: EIP-712 typed data (`eth_signTypedData_v4` JSON, alloy-dyn-abi):
//!   strict parsing, the signing preimage and hash, token approvals (EIP-2612,
//!   DAI, Permit2) read from the message.
//! - [`tron`]: TRON addresses (Base58Check of `0x41` ‖ the Ethereum hash)
//!   and transactions: `raw_data` decoded exactly (TRON's own protobuf
//!   definitions), the SHA-256 signing hash, 65-byte signatures, the signed
//!   transaction and its broadcast JSON.
//! - [`bitcoin`](mod@bitcoin): P2WPKH (`bc1q…`) addresses of ECDSA keys and
//!   P2TR (`bc1p…`) addresses of Taproot keys, one [`BitcoinNetwork`].
//! - [`solana`]: Solana addresses of Ed25519 keys, and legacy / v0
//!   transaction messages: exact decoding (lookup tables resolved, System,
//!   ComputeBudget, SPL Token and Token-2022 transfers read), the signer
//!   check, the signed wire transaction.
//! - [`key`]: SEC1 public-key parsing shared by the secp256k1 encodings.
//!
//! Everything here is pure: no I/O, no async runtime, no global state.
//! Public keys are always checked to be valid keys (points on the curve)
//! before an address is derived from them.

pub mod addresses;
pub mod bitcoin;
pub mod eip1559;
pub mod eip712;
mod error;
pub mod ethereum;
pub mod evm;
pub mod hash;
pub mod key;
pub mod solana;
pub mod tron;

pub use self::bitcoin::{BitcoinNetwork, bitcoin_p2wpkh_address, taproot_address};
pub use addresses::addresses;
pub use alloy_primitives::U256;
pub use eip1559::{Eip1559Tx, parse_wei};
pub use error::ChainError;
pub use ethereum::{
    RecoverableSignature, eip155_v, ethereum_address, ethereum_address_bytes, legacy_v,
    parse_address, personal_message, personal_message_hash, recovery_id_from_v,
    to_checksum_address, y_parity,
};
pub use hash::{MessageHash, keccak256, sha256};
pub use key::{compressed_public_key, uncompressed_public_key};
pub use solana::solana_address;
pub use tron::{parse_tron_address, tron_address};
