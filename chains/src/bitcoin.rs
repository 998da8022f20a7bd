//! Bitcoin addresses, encoded by the `bitcoin` crate (rust-bitcoin):
//!
//! - **P2WPKH** (`bc1q…`, BIP-141 program, BIP-173 bech32) for secp256k1
//!   ECDSA keys. The witness program is HASH160 of the 33-byte *compressed*
//!   public key: BIP-143 makes uncompressed keys non-standard in segwit v0,
//!   so an uncompressed key is compressed first (it is the same point, hence
//!   the same key).
//! - **P2TR** (`bc1p…`, BIP-341 output key, BIP-350 bech32m) for
//!   `frost-taproot` keys. The FROST DKG already applies the BIP-341 "no
//!   script path" tweak, so the 32-byte x-only group key *is* the output key
//!   Q and is encoded as it is.
//!
//! [`BitcoinNetwork`] picks the human-readable part (`bc`, `tb`, `bcrt`).

pub mod psbt;

use ::bitcoin::key::{CompressedPublicKey, TweakedPublicKey, XOnlyPublicKey};
use ::bitcoin::{Address, KnownHrp};

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

impl From<BitcoinNetwork> for KnownHrp {
    fn from(network: BitcoinNetwork) -> Self {
        match network {
            BitcoinNetwork::Mainnet => KnownHrp::Mainnet,
            BitcoinNetwork::Testnet => KnownHrp::Testnets,
            BitcoinNetwork::Regtest => KnownHrp::Regtest,
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
    let compressed = key::compressed_public_key(public_key)?;
    let key = CompressedPublicKey::from_slice(&compressed)
        .map_err(|e| ChainError::InvalidPublicKey(e.to_string()))?;
    Ok(Address::p2wpkh(&key, network).to_string())
}

/// The P2TR address (`bc1p…`) of a Taproot output key: a 32-byte x-only
/// key (BIP-340), as `frost-taproot` keys are. Refuses anything that is not
/// the x coordinate of a curve point: funds sent to it would be lost.
pub fn taproot_address(xonly: &[u8], network: BitcoinNetwork) -> Result<String, ChainError> {
    if xonly.len() != 32 {
        return Err(ChainError::InvalidPublicKey(format!(
            "an x-only public key is 32 bytes, got {}",
            xonly.len()
        )));
    }
    let key = XOnlyPublicKey::from_slice(xonly)
        .map_err(|_| ChainError::InvalidPublicKey("not the x coordinate of a point".into()))?;
    let output_key = TweakedPublicKey::dangerous_assume_tweaked(key);
    Ok(Address::p2tr_tweaked(output_key, network).to_string())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use ::bitcoin::address::{Address, NetworkUnchecked};
    use ::bitcoin::{Network, WitnessVersion};

    use super::*;

    /// BIP-173's example key: the generator G (private key 1), compressed.
    const KEY1: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    #[test]
    fn bip173_examples() {
        // BIP-173, "Examples": P2WPKH of 0279BE66…1798.
        let pk = hex::decode(KEY1).expect("hex");
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
        // And it parses back to the key's witness program, HASH160 = 751e76e8…3bd6.
        let parsed =
            Address::<NetworkUnchecked>::from_str("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4")
                .expect("valid")
                .require_network(Network::Bitcoin)
                .expect("mainnet");
        let program = parsed.witness_program().expect("segwit");
        assert_eq!(program.version(), WitnessVersion::V0);
        assert_eq!(
            hex::encode(program.program().as_bytes()),
            "751e76e8199196d454941c45d1b3a323f1433bd6"
        );
    }

    #[test]
    fn bip84_example() {
        // BIP-84, "Test vectors": the first receiving address of the
        // "abandon … about" mnemonic, m/84'/0'/0'/0/0.
        let pk = hex::decode("0330d54fd0dd420a6e5f8d3624f5f3482cae350f79d5f0753bf5beef9c2d91af3c")
            .expect("hex");
        assert_eq!(
            bitcoin_p2wpkh_address(&pk, BitcoinNetwork::Mainnet).expect("valid"),
            "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"
        );
    }

    #[test]
    fn p2wpkh_rejects_invalid_keys() {
        // x ≥ p: not a point.
        let mut bad = [0xffu8; 33];
        bad[0] = 2;
        assert!(matches!(
            bitcoin_p2wpkh_address(&bad, BitcoinNetwork::Mainnet),
            Err(ChainError::InvalidPublicKey(_))
        ));
        assert!(bitcoin_p2wpkh_address(&[], BitcoinNetwork::Mainnet).is_err());
    }

    #[test]
    fn taproot_addresses() {
        // BIP-350 test vector: the generator's x coordinate as a witness v1 program.
        let g = hex::decode("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
            .expect("hex");
        assert_eq!(
            taproot_address(&g, BitcoinNetwork::Mainnet).expect("valid"),
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
        );
        // BIP-86, "Test vectors": the first receiving address of the
        // "abandon … about" mnemonic, m/86'/0'/0'/0/0, from its (tweaked)
        // output key.
        let q = hex::decode("a60869f0dbcf1dc659c9cecbaf8050135ea9e8cdc487053f1dc6880949dc684c")
            .expect("hex");
        assert_eq!(
            taproot_address(&q, BitcoinNetwork::Mainnet).expect("valid"),
            "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"
        );
        assert!(
            taproot_address(&g, BitcoinNetwork::Testnet)
                .expect("valid")
                .starts_with("tb1p")
        );
        assert!(
            taproot_address(&g, BitcoinNetwork::Regtest)
                .expect("valid")
                .starts_with("bcrt1p")
        );
    }

    #[test]
    fn taproot_rejects_invalid_keys() {
        let g = hex::decode("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
            .expect("hex");
        for bad in [&[0u8; 32][..], &[0xff; 32], &g[..31], &[], &[2u8; 33]] {
            assert!(
                matches!(
                    taproot_address(bad, BitcoinNetwork::Mainnet),
                    Err(ChainError::InvalidPublicKey(_))
                ),
                "{}",
                hex::encode(bad)
            );
        }
    }
}
