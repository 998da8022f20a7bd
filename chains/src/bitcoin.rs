//! Bitcoin native segwit v0 pay-to-witness-public-key-hash (P2WPKH)
//! addresses (BIP-141 program, BIP-173 bech32 encoding).
//!
//! The witness program is HASH160 (RIPEMD-160 of SHA-256) of the 33-byte
//! *compressed* public key: BIP-143 makes uncompressed keys non-standard in
//! segwit v0, so an uncompressed key is compressed first (it is the same
//! point, hence the same key).
//!
//! Taproot (`bc1p…`, BIP-341/350) addresses belong to FROST keys and live in
//! `sigil-protocol` (`frost::taproot_address`).

use crate::hash::hash160;
use crate::{ChainError, key};

/// A Bitcoin network, for the address's human-readable part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BitcoinNetwork {
    /// `bc1…`
    Mainnet,
    /// `tb1…` (testnet and signet)
    Testnet,
    /// `bcrt1…`
    Regtest,
}

impl BitcoinNetwork {
    fn hrp(self) -> bech32::Hrp {
        match self {
            Self::Mainnet => bech32::hrp::BC,
            Self::Testnet => bech32::hrp::TB,
            Self::Regtest => bech32::hrp::BCRT,
        }
    }
}

/// The P2WPKH address (`bc1q…`) of a secp256k1 public key (33-byte
/// compressed or 65-byte uncompressed SEC1; the address is always that of
/// the compressed key).
pub fn bitcoin_p2wpkh_address(
    public_key: &[u8],
    network: BitcoinNetwork,
) -> Result<String, ChainError> {
    let program = hash160(key::compressed_public_key(public_key)?);
    bech32::segwit::encode_v0(network.hrp(), &program)
        .map_err(|e| ChainError::Encoding(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BIP-173's example key: the generator G (private key 1), compressed.
    const KEY1: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    #[test]
    fn bip173_examples() {
        // BIP-173, "Examples": P2WPKH of 0279BE66…1798.
        let pk = hex::decode(KEY1).expect("hex");
        assert_eq!(
            hex::encode(hash160(&pk)),
            "751e76e8199196d454941c45d1b3a323f1433bd6"
        );
        assert_eq!(
            bitcoin_p2wpkh_address(&pk, BitcoinNetwork::Mainnet).expect("valid"),
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        );
        assert_eq!(
            bitcoin_p2wpkh_address(&pk, BitcoinNetwork::Testnet).expect("valid"),
            "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"
        );
        let regtest = bitcoin_p2wpkh_address(&pk, BitcoinNetwork::Regtest).expect("valid");
        assert!(regtest.starts_with("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7k"));
        // The uncompressed encoding of the same key gives the same address.
        let u = crate::uncompressed_public_key(&pk).expect("valid");
        assert_eq!(
            bitcoin_p2wpkh_address(&u, BitcoinNetwork::Mainnet).expect("valid"),
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        );
        // And it decodes back to the witness program.
        let (hrp, version, program) =
            bech32::segwit::decode("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4").expect("valid");
        assert_eq!(hrp, bech32::hrp::BC);
        assert_eq!(version, bech32::segwit::VERSION_0);
        assert_eq!(program, hash160(&pk));
    }

    #[test]
    fn rejects_invalid_keys() {
        // x ≥ p: not a point.
        let mut bad = [0xffu8; 33];
        bad[0] = 2;
        assert!(matches!(
            bitcoin_p2wpkh_address(&bad, BitcoinNetwork::Mainnet),
            Err(ChainError::InvalidPublicKey(_))
        ));
        assert!(bitcoin_p2wpkh_address(&[], BitcoinNetwork::Mainnet).is_err());
    }
}
