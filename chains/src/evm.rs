//! Unsigned EVM transactions of every type Sigil signs (legacy with
//! EIP-155, EIP-2930, EIP-1559), put together with a threshold signature:
//! the raw signed transaction `eth_sendRawTransaction` takes, and its hash.
//!
//! The unsigned bytes are exactly what the nodes hashed (`0x01 ‖ rlp(…)`,
//! `0x02 ‖ rlp(…)`, or the legacy `rlp([…, chain_id, 0, 0])`); they are
//! decoded with alloy-consensus, the signature is low-S-normalized and its
//! recovery id found against the key ([`RecoverableSignature`]), and
//! alloy encodes the signed envelope (EIP-2718; EIP-155 `v` for legacy).

use alloy_consensus::{SignableTransaction, TxEip1559, TxEip2930, TxLegacy};
use alloy_eips::eip2718::Encodable2718 as _;
use alloy_primitives::{Signature, U256};
use alloy_rlp::Decodable;

use crate::{ChainError, RecoverableSignature, keccak256};

/// A signed EVM transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedEvmTransaction {
    /// The EIP-2718 encoding (legacy: the plain RLP list).
    pub raw: Vec<u8>,
    /// Keccak-256 of `raw`: the transaction hash.
    pub hash: [u8; 32],
}

/// Signs `unsigned` (the bytes the nodes hashed) with the 64-byte `r ‖ s`
/// signature `signature` by `public_key` (SEC1). Fails unless the
/// signature verifies for the transaction under the key.
pub fn signed_transaction(
    unsigned: &[u8],
    public_key: &[u8],
    signature: &[u8],
) -> Result<SignedEvmTransaction, ChainError> {
    let (r, s) = split(signature)?;
    let prehash = keccak256(unsigned);
    let rs = RecoverableSignature::from_prehash(public_key, &prehash, &r, &s)?;
    let signature = Signature::new(
        U256::from_be_bytes(rs.r),
        U256::from_be_bytes(rs.s),
        rs.recovery_id == 1,
    );
    let malformed = |e: alloy_rlp::Error| ChainError::InvalidTransaction(e.to_string());
    let raw = match unsigned.split_first() {
        Some((0x02, mut body)) => sign(
            TxEip1559::decode(&mut body).map_err(malformed)?,
            signature,
            unsigned,
        )?,
        Some((0x01, mut body)) => sign(
            TxEip2930::decode(&mut body).map_err(malformed)?,
            signature,
            unsigned,
        )?,
        Some((0xc0..=0xff, _)) => {
            let mut body = unsigned;
            sign(
                TxLegacy::decode(&mut body).map_err(malformed)?,
                signature,
                unsigned,
            )?
        }
        _ => {
            return Err(ChainError::InvalidTransaction(
                "not a legacy, EIP-2930 or EIP-1559 unsigned transaction".into(),
            ));
        }
    };
    let hash = keccak256(&raw);
    Ok(SignedEvmTransaction { raw, hash })
}

fn sign<T>(tx: T, signature: Signature, unsigned: &[u8]) -> Result<Vec<u8>, ChainError>
where
    T: SignableTransaction<Signature>,
    alloy_consensus::Signed<T>: alloy_eips::eip2718::Encodable2718,
{
    // What was decoded is what was hashed, byte for byte.
    if tx.encoded_for_signing() != unsigned {
        return Err(ChainError::InvalidTransaction(
            "the unsigned transaction is not canonically encoded".into(),
        ));
    }
    Ok(tx.into_signed(signature).encoded_2718())
}

fn split(signature: &[u8]) -> Result<([u8; 32], [u8; 32]), ChainError> {
    if signature.len() != 64 {
        return Err(ChainError::InvalidSignature(format!(
            "an ECDSA signature is r ‖ s (64 bytes), got {}",
            signature.len()
        )));
    }
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    s.copy_from_slice(&signature[32..]);
    Ok((r, s))
}

#[cfg(test)]
mod tests {
    use alloy_consensus::{Transaction as _, TxEnvelope};
    use alloy_eips::eip2718::Decodable2718 as _;
    use alloy_primitives::{Bytes, TxKind, address};
    use k256::ecdsa::SigningKey;

    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).expect("valid scalar")
    }

    fn sign_with(key: &SigningKey, unsigned: &[u8]) -> Vec<u8> {
        let (sig, _) = key
            .sign_prehash_recoverable(&keccak256(unsigned))
            .expect("signs");
        sig.to_bytes().to_vec()
    }

    fn check(unsigned: Vec<u8>) {
        let key = key();
        let public = key.verifying_key().to_encoded_point(true);
        let signed = signed_transaction(&unsigned, public.as_bytes(), &sign_with(&key, &unsigned))
            .expect("signs");
        let envelope = TxEnvelope::decode_2718(&mut signed.raw.as_slice()).expect("decodes");
        // Decoded independently: alloy's signature and signing hash of the envelope.
        let sig = envelope.signature();
        let recoverable = RecoverableSignature {
            r: sig.r().to_be_bytes(),
            s: sig.s().to_be_bytes(),
            recovery_id: u8::from(sig.v()),
        };
        let sender = recoverable
            .recover_address(&envelope.signature_hash().0)
            .expect("recovers");
        let expected = crate::ethereum_address_bytes(public.as_bytes()).expect("address");
        assert_eq!(sender, expected);
        assert_eq!(envelope.tx_hash().0, signed.hash);
        assert_eq!(envelope.value(), U256::from(5u64));
    }

    #[test]
    fn every_supported_type_is_signed_into_an_envelope_that_recovers_to_the_key() {
        let to = TxKind::Call(address!("1111111111111111111111111111111111111111"));
        check(
            TxEip1559 {
                chain_id: 1,
                nonce: 1,
                gas_limit: 21_000,
                max_fee_per_gas: 2,
                max_priority_fee_per_gas: 1,
                to,
                value: U256::from(5u64),
                access_list: Default::default(),
                input: Bytes::new(),
            }
            .encoded_for_signing(),
        );
        check(
            TxEip2930 {
                chain_id: 1,
                nonce: 1,
                gas_price: 2,
                gas_limit: 21_000,
                to,
                value: U256::from(5u64),
                access_list: Default::default(),
                input: Bytes::new(),
            }
            .encoded_for_signing(),
        );
        check(
            TxLegacy {
                chain_id: Some(1),
                nonce: 1,
                gas_price: 2,
                gas_limit: 21_000,
                to,
                value: U256::from(5u64),
                input: Bytes::new(),
            }
            .encoded_for_signing(),
        );
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let unsigned = TxEip1559 {
            chain_id: 1,
            to: TxKind::Call(address!("1111111111111111111111111111111111111111")),
            ..Default::default()
        }
        .encoded_for_signing();
        let other = SigningKey::from_slice(&[9u8; 32]).expect("valid scalar");
        let public = key().verifying_key().to_encoded_point(true);
        let err = signed_transaction(&unsigned, public.as_bytes(), &sign_with(&other, &unsigned));
        assert!(
            matches!(err, Err(ChainError::InvalidSignature(_))),
            "{err:?}"
        );
    }
}
