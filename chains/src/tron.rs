//! TRON addresses and transactions.
//!
//! A TRON account is derived exactly like an Ethereum one — the last 20
//! bytes of Keccak-256 of the uncompressed public key's `x ‖ y` — prefixed
//! with the network byte `0x41` (the "hex" form `41…`) and shown as
//! Base58Check: Base58 (Bitcoin alphabet) of the 21 bytes followed by the
//! first 4 bytes of their double SHA-256 (`bs58`'s `check` encoding).
//! Mainnet addresses start with `T` (so do Nile's and Shasta's: every TRON
//! network uses the `0x41` prefix).
//!
//! Transactions are protobuf messages of TRON's own definitions
//! ([`proto`], generated from the `.proto` files of
//! github.com/tronprotocol/protocol):
//!
//! - [`transaction`]: [`decode_raw_data`] reads an unsigned
//!   `Transaction.raw` exactly (TRX transfers, TRC-20 transfers, other
//!   contract calls; everything else refused), [`check_owner`] and
//!   [`check_expiration`] check it against a key and a time.
//! - [`signing`]: the digest ([`signing_hash`], SHA-256 of `raw_data`, also
//!   the transaction id), the 65-byte signature ([`tron_signature`],
//!   `v = 27 + recovery id`, low-S), the signed transaction and its
//!   broadcast JSON ([`signed_transaction`]), and [`recover_address`].

use crate::ChainError;
use crate::ethereum::ethereum_address_bytes;

pub mod proto;
pub mod signing;
pub mod transaction;

pub use signing::{
    SignedTronTransaction, recover_address, signed_transaction, signing_hash, transaction_id,
    tron_signature, tron_signature_for_key,
};
pub use transaction::{
    TRC20_TRANSFER_SELECTOR, TronAddress, TronContract, TronError, TronTransaction,
    check_expiration, check_owner, decode_raw_data,
};

/// The network byte that prefixes every TRON address.
pub const TRON_ADDRESS_PREFIX: u8 = 0x41;

/// The 21-byte "hex" form of a TRON address: `0x41` ‖ the 20-byte account.
pub fn tron_address_hex_bytes(account: &[u8; 20]) -> [u8; 21] {
    let mut out = [0u8; 21];
    out[0] = TRON_ADDRESS_PREFIX;
    out[1..].copy_from_slice(account);
    out
}

/// The Base58Check TRON address (`T…`) of a 20-byte account (the same
/// bytes as the Ethereum address of the same key).
pub fn tron_address_from_account(account: &[u8; 20]) -> String {
    bs58::encode(tron_address_hex_bytes(account))
        .with_check()
        .into_string()
}

/// The Base58Check TRON address (`T…`) of a secp256k1 public key (33-byte
/// compressed or 65-byte uncompressed SEC1).
pub fn tron_address(public_key: &[u8]) -> Result<String, ChainError> {
    Ok(tron_address_from_account(&ethereum_address_bytes(
        public_key,
    )?))
}

/// Parses a Base58Check TRON address (`T…`) into its 20-byte account,
/// checking the checksum and the `0x41` prefix.
pub fn parse_tron_address(address: &str) -> Result<[u8; 20], ChainError> {
    let bad = |why: &str| ChainError::InvalidAddress(format!("{address:?}: {why}"));
    let body = bs58::decode(address)
        .with_check(None)
        .into_vec()
        .map_err(|e| match e {
            bs58::decode::Error::InvalidChecksum { .. } => bad("checksum mismatch"),
            _ => bad("not Base58Check"),
        })?;
    match body.split_first() {
        Some((&TRON_ADDRESS_PREFIX, account)) => {
            account.try_into().map_err(|_| bad("wrong length"))
        }
        Some(_) if body.len() == 21 => Err(bad("not a TRON address (prefix is not 0x41)")),
        _ => Err(bad("wrong length")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public key of private key 1 (the generator), compressed.
    const KEY1: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    #[test]
    fn private_key_one() {
        // Private key 1's TRON address. Its hex form 41 ‖ 7e5f4552…5bdf is
        // the Ethereum address 0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf
        // (EIP-55) behind the 0x41 prefix; the Base58Check string was
        // cross-checked independently (Python: base58 of the 21 bytes and
        // the first 4 bytes of their double SHA-256).
        let pk = hex::decode(KEY1).expect("hex");
        let addr = tron_address(&pk).expect("valid key");
        assert_eq!(addr, "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC");
        let account = parse_tron_address(&addr).expect("round trip");
        assert_eq!(
            hex::encode(tron_address_hex_bytes(&account)),
            "417e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
        // The uncompressed form of the same key gives the same address.
        let u = crate::uncompressed_public_key(&pk).expect("valid");
        assert_eq!(tron_address(&u).expect("valid key"), addr);
    }

    #[test]
    fn usdt_contract_address() {
        // The TRC-20 USDT contract, TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t, whose
        // hex form is 41a614f803b6fd780986a42c78ec9c7f77e6ded13c.
        let account = parse_tron_address("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t").expect("valid");
        assert_eq!(
            hex::encode(tron_address_hex_bytes(&account)),
            "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"
        );
        assert_eq!(
            tron_address_from_account(&account),
            "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in [
            "",
            "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HD", // last character changed
            "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2H",  // truncated
            "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2H0", // '0' is not base58
            "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", // a Bitcoin P2PKH address (prefix 0x00)
        ] {
            assert!(
                matches!(parse_tron_address(bad), Err(ChainError::InvalidAddress(_))),
                "{bad:?}"
            );
        }
        assert!(tron_address(&[0u8; 33]).is_err());
    }
}
