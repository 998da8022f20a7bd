//! Every address a key can receive funds at, by chain name: the one place
//! where a signature scheme meets the chains that use it.
//!
//! | scheme | name | address |
//! | --- | --- | --- |
//! | `ecdsa-secp256k1` | `ethereum` | EIP-55 checksummed `0x…` ([`crate::ethereum`]) |
//! | `ecdsa-secp256k1` | `tron` | Base58Check `T…` ([`crate::tron`]) |
//! | `ecdsa-secp256k1` | `bitcoin` | P2WPKH `bc1q…` ([`crate::bitcoin`]) |
//! | `frost-taproot` | `bitcoin` | P2TR `bc1p…` ([`crate::bitcoin`]) |
//! | `frost-ed25519` | `solana` | Base58 ([`crate::solana`]) |
//! | `frost-secp256k1` | — | (no chain verifies RFC 9591 secp256k1 signatures) |
//!
//! Bitcoin addresses are mainnet ones; other networks are one call away
//! ([`crate::bitcoin_p2wpkh_address`], [`crate::taproot_address`] with a
//! [`crate::BitcoinNetwork`]). The names are part of Sigil's API (the
//! `addresses` map of `KeyInfo` and `GetPublicKeyResponse`) and never change.

use std::collections::BTreeMap;

use sigil_protocol::Scheme;

use crate::{BitcoinNetwork, ChainError};

/// Ethereum (and every EVM chain: the same account everywhere).
pub const ETHEREUM: &str = "ethereum";
/// TRON.
pub const TRON: &str = "tron";
/// Bitcoin mainnet: P2WPKH for ECDSA keys, P2TR for Taproot keys.
pub const BITCOIN: &str = "bitcoin";
/// Solana.
pub const SOLANA: &str = "solana";

/// The addresses of `public_key` (in `scheme`'s standard key encoding),
/// keyed by chain name (see the module documentation). Empty for schemes
/// no chain uses; an error if the key is not a valid key of the scheme.
pub fn addresses(
    scheme: Scheme,
    public_key: &[u8],
) -> Result<BTreeMap<String, String>, ChainError> {
    let entries = match scheme {
        Scheme::EcdsaSecp256k1 => vec![
            (ETHEREUM, crate::ethereum_address(public_key)?),
            (TRON, crate::tron_address(public_key)?),
            (
                BITCOIN,
                crate::bitcoin_p2wpkh_address(public_key, BitcoinNetwork::Mainnet)?,
            ),
        ],
        Scheme::FrostTaproot => vec![(
            BITCOIN,
            crate::taproot_address(public_key, BitcoinNetwork::Mainnet)?,
        )],
        Scheme::FrostEd25519 => vec![(SOLANA, crate::solana_address(public_key)?)],
        Scheme::FrostSecp256k1 => Vec::new(),
    };
    Ok(entries
        .into_iter()
        .map(|(chain, address)| (chain.to_owned(), address))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_address_of_a_key() {
        // Private key 1 (the generator G) as an ECDSA key.
        let g = hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
            .expect("hex");
        assert_eq!(
            addresses(Scheme::EcdsaSecp256k1, &g),
            Ok(map(&[
                (ETHEREUM, "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"),
                (TRON, "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC"),
                (BITCOIN, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            ]))
        );
        // The same x coordinate as a Taproot output key.
        assert_eq!(
            addresses(Scheme::FrostTaproot, &g[1..]),
            Ok(map(&[(
                BITCOIN,
                "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
            )]))
        );
        let b = hex::decode("5866666666666666666666666666666666666666666666666666666666666666")
            .expect("hex");
        assert_eq!(
            addresses(Scheme::FrostEd25519, &b),
            Ok(map(&[(
                SOLANA,
                "6x5SYnLroiN7WYq8NQYU9KHcH4YjpBbwpUfVu3EB7ieH"
            )]))
        );
        assert_eq!(addresses(Scheme::FrostSecp256k1, &g), Ok(BTreeMap::new()));
    }

    #[test]
    fn refuses_keys_of_another_scheme() {
        let g = hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
            .expect("hex");
        // A 33-byte SEC1 key is not an x-only key, nor an Ed25519 key.
        for scheme in [Scheme::FrostTaproot, Scheme::FrostEd25519] {
            assert!(
                matches!(addresses(scheme, &g), Err(ChainError::InvalidPublicKey(_))),
                "{scheme}"
            );
        }
        assert!(addresses(Scheme::EcdsaSecp256k1, &g[1..]).is_err());
    }
}
