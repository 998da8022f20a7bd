//! Solana: addresses of Ed25519 keys, and transaction messages as a
//! signing node sees them (pure decoding, no I/O).
//!
//! # Addresses
//!
//! An account is its Ed25519 public key (RFC 8032, 32 bytes), shown in
//! Base58 (Bitcoin alphabet, no checksum). `frost-ed25519` keys are checked
//! before they are encoded ([`solana_address()`]): the bytes must decode to a
//! curve point that is neither of small order nor outside the prime-order
//! subgroup (as every Ed25519 key pair's public key is), so a corrupted key
//! never turns into an address nobody can sign for.
//!
//! # Messages
//!
//! What a Solana transaction's signatures sign is its *message*: legacy, or
//! version 0 with address lookup tables. [`decode_message`] reads one
//! exactly (the Solana crates' `VersionedMessage`, wincode-encoded, must
//! re-encode to the same bytes) and refuses:
//!
//! - empty or truncated bytes, trailing bytes, non-canonical encodings;
//! - versions other than legacy and 0 (`0x81`…, and `0xff`, the off-chain
//!   message prefix);
//! - header inconsistencies: no signer, more signers than keys, a read-only
//!   fee payer, read-only counts that do not fit, more than 256 keys;
//! - instructions whose program index is 0 (the fee payer), past the
//!   message's own keys (v0 programs cannot come from lookup tables), or
//!   whose account indexes are out of range;
//! - a v0 message loading from a lookup table whose contents are not
//!   supplied (the error names the table), or an index past the supplied
//!   table's end; a table supplied twice with different contents;
//! - an account key appearing twice (Solana refuses those transactions);
//! - a message whose signed transaction would exceed Solana's 1232 bytes.
//!
//! A v0 message's accounts are resolved in Solana's order: the static keys,
//! then the writable loaded addresses of every table, then the read-only
//! ones. **Lookup table contents are the caller's word**: the message's
//! signature does not commit to them, and the nodes cannot read the chain.
//! [`DecodedMessage::lookup_table_of`] tells which accounts come from a
//! table, so a policy can refuse to trust them.
//!
//! Each instruction is summarized as an [`InstructionKind`] (see
//! [`instruction`]): System Program transfers and account creations,
//! durable-nonce advances, ComputeBudget settings, SPL Token / Token-2022
//! `Transfer` and `TransferChecked`; anything else is a call of its program.
//!
//! # Signing
//!
//! [`check_signer`] finds the key among the message's required signers (the
//! fee payer, account 0, or another one) and says whether other signatures
//! are needed. [`signed_transaction`] verifies the key's signature over the
//! message and returns the wire transaction with it in the key's slot.

pub mod error;
pub mod instruction;
pub mod message;
pub mod transaction;

pub use error::SolanaError;
pub use instruction::{ComputeBudget, InstructionKind, TokenProgram};
pub use message::{
    DecodedInstruction, DecodedMessage, LookupTable, MAX_TRANSACTION_LEN, MessageVersion,
    SignerSlot, check_signer, decode_message,
};
pub use solana_message::{Address, Hash, MessageHeader};
pub use transaction::{SignedSolanaTransaction, signed_transaction};

use ed25519_dalek::VerifyingKey;

use crate::ChainError;

/// The Solana address (Base58) of an Ed25519 public key.
pub fn solana_address(public_key: &[u8]) -> Result<String, ChainError> {
    let bytes: &[u8; 32] = public_key.try_into().map_err(|_| {
        ChainError::InvalidPublicKey(format!(
            "an Ed25519 public key is 32 bytes, got {}",
            public_key.len()
        ))
    })?;
    let key = VerifyingKey::from_bytes(bytes)
        .map_err(|_| ChainError::InvalidPublicKey("not an Ed25519 point".into()))?;
    if key.is_weak() || !key.to_edwards().is_torsion_free() {
        return Err(ChainError::InvalidPublicKey(
            "not in the prime-order subgroup of Ed25519".into(),
        ));
    }
    Ok(bs58::encode(bytes).into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys() {
        // The Ed25519 base point B.
        let b = hex::decode("5866666666666666666666666666666666666666666666666666666666666666")
            .expect("hex");
        assert_eq!(
            solana_address(&b).expect("valid"),
            "6x5SYnLroiN7WYq8NQYU9KHcH4YjpBbwpUfVu3EB7ieH"
        );
        // RFC 8032 §7.1 TEST 1's public key (secret 9d61b19d…7f60).
        let test1 = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
            .expect("hex");
        let address = solana_address(&test1).expect("valid");
        assert_eq!(address, "FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z");
        assert_eq!(bs58::decode(&address).into_vec().expect("base58"), test1);
    }

    #[test]
    fn rejects_non_keys() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        // A point of order 8 (a torsion point): small order.
        let order8 =
            hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
                .expect("hex");
        // (−B_x, −B_y) = B + the order-2 point (0, −1): on the curve, outside the
        // prime-order subgroup.
        let mixed = hex::decode("9599999999999999999999999999999999999999999999999999999999999999")
            .expect("hex");
        // y = 2: no x solves the curve equation.
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        for bad in [
            &identity[..],
            &order8,
            &mixed,
            &not_on_curve,
            &[0u8; 31],
            &[],
        ] {
            assert!(
                matches!(solana_address(bad), Err(ChainError::InvalidPublicKey(_))),
                "{}",
                hex::encode(bad)
            );
        }
    }
}
