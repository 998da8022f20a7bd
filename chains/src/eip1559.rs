//! EIP-1559 ("type 2") Ethereum transactions: what to sign, and the signed
//! raw transaction to broadcast.
//!
//! EIP-2718 typed envelope: `TransactionType ‖ TransactionPayload`, with
//! type `0x02` for EIP-1559. The signing hash is
//!
//! ```text
//! keccak256(0x02 ‖ rlp([chain_id, nonce, max_priority_fee_per_gas,
//!                       max_fee_per_gas, gas_limit, to, value, data,
//!                       access_list]))
//! ```
//!
//! and the signed transaction (what `eth_sendRawTransaction` takes; its
//! Keccak-256 is the transaction hash) is
//!
//! ```text
//! 0x02 ‖ rlp([chain_id, nonce, max_priority_fee_per_gas, max_fee_per_gas,
//!             gas_limit, to, value, data, access_list,
//!             y_parity, r, s])
//! ```
//!
//! The encodings are alloy-consensus' (`TxEip1559`, EIP-2718 envelopes);
//! this module adds what Sigil needs around them: a transaction shape with
//! an empty access list, fee-cap validation, and low-S checks on threshold
//! signatures. Amounts are alloy-primitives' [`U256`].
//!
//! **Access lists** (EIP-2930) are not supported: the access list is always
//! empty (`0xc0`). Sigil signs plain transfers and contract calls; a
//! non-empty access list only changes gas accounting and can be added here
//! when a client needs it.
//!
//! Ethereum only accepts low-S signatures (EIP-2), so [`Eip1559Tx::encode_signed`]
//! refuses a high `s` rather than produce a transaction the network would
//! reject; normalize threshold signatures first with
//! [`crate::RecoverableSignature::from_prehash`] (which also finds the
//! y-parity).

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use k256::ecdsa::Signature;

use crate::ChainError;
use crate::ethereum::{RecoverableSignature, y_parity};
use crate::hash::keccak256;

/// The EIP-2718 transaction type of EIP-1559 transactions.
pub const EIP1559_TX_TYPE: u8 = 0x02;

/// An unsigned EIP-1559 transaction with an empty access list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Eip1559Tx {
    /// EIP-155 chain id (1 = Ethereum mainnet).
    pub chain_id: u64,
    /// The sender's account nonce.
    pub nonce: u64,
    /// Tip per gas to the block producer, in wei.
    pub max_priority_fee_per_gas: u128,
    /// Maximum total fee per gas (base fee + tip), in wei.
    pub max_fee_per_gas: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// Recipient; `None` creates a contract from `data`.
    pub to: Option<[u8; 20]>,
    /// Amount in wei (e.g. `parse_wei("1000000000000000000")?` for 1 ether).
    pub value: U256,
    /// Call data (or init code).
    pub data: Vec<u8>,
}

impl Eip1559Tx {
    /// Checks what the encoding alone cannot: EIP-1559 makes a transaction
    /// whose tip exceeds its fee cap invalid.
    pub fn validate(&self) -> Result<(), ChainError> {
        if self.max_priority_fee_per_gas > self.max_fee_per_gas {
            return Err(ChainError::InvalidAmount(format!(
                "max_priority_fee_per_gas {} exceeds max_fee_per_gas {}",
                self.max_priority_fee_per_gas, self.max_fee_per_gas
            )));
        }
        Ok(())
    }

    /// The same transaction as alloy-consensus' type.
    pub fn to_alloy(&self) -> TxEip1559 {
        TxEip1559 {
            chain_id: self.chain_id,
            nonce: self.nonce,
            gas_limit: self.gas_limit,
            max_fee_per_gas: self.max_fee_per_gas,
            max_priority_fee_per_gas: self.max_priority_fee_per_gas,
            to: match self.to {
                Some(address) => TxKind::Call(Address::from(address)),
                None => TxKind::Create,
            },
            value: self.value,
            access_list: Default::default(),
            input: Bytes::copy_from_slice(&self.data),
        }
    }

    /// `0x02 ‖ rlp([fields…])`: the bytes whose Keccak-256 is signed.
    pub fn signing_payload(&self) -> Vec<u8> {
        self.to_alloy().encoded_for_signing()
    }

    /// The 32-byte digest to sign: Keccak-256 of [`Self::signing_payload`].
    /// Sign it with [`crate::MessageHash::Raw32`].
    pub fn signing_hash(&self) -> [u8; 32] {
        keccak256(self.signing_payload())
    }

    /// The signed raw transaction `0x02 ‖ rlp([fields…, y_parity, r, s])`,
    /// ready for `eth_sendRawTransaction`; its Keccak-256 is the
    /// transaction hash.
    ///
    /// `r` and `s` are 32-byte big-endian scalars; both must be in
    /// `[1, n−1]` and `s` must be low (EIP-2: `s ≤ n/2`). `y_parity` must
    /// be 0 or 1. The signature is not checked against the transaction
    /// (this function does not know the sender's key): use
    /// [`crate::RecoverableSignature::from_prehash`] for that.
    pub fn encode_signed(
        &self,
        r: [u8; 32],
        s: [u8; 32],
        y_parity: u8,
    ) -> Result<Vec<u8>, ChainError> {
        let y_parity = crate::ethereum::y_parity(y_parity)?;
        let signature = Signature::from_scalars(r, s).map_err(|_| {
            ChainError::InvalidSignature("r or s is zero or not below the group order".into())
        })?;
        if signature.normalize_s().is_some() {
            return Err(ChainError::InvalidSignature(
                "s is not low (EIP-2); normalize the signature first".into(),
            ));
        }
        let signature = alloy_primitives::Signature::new(
            U256::from_be_bytes(r),
            U256::from_be_bytes(s),
            y_parity == 1,
        );
        Ok(self.to_alloy().into_signed(signature).encoded_2718())
    }

    /// [`Self::encode_signed`] with a [`RecoverableSignature`].
    pub fn encode_with_signature(
        &self,
        signature: &RecoverableSignature,
    ) -> Result<Vec<u8>, ChainError> {
        self.encode_signed(signature.r, signature.s, y_parity(signature.recovery_id)?)
    }
}

/// The transaction hash of a signed raw transaction (Keccak-256 of the
/// typed envelope), as block explorers and `eth_getTransactionByHash` use.
pub fn transaction_hash(raw_signed: &[u8]) -> [u8; 32] {
    keccak256(raw_signed)
}

/// Parses a wei amount: a non-negative decimal integer below 2^256 (ASCII
/// digits only: no sign, separators, `0x` prefix, exponent or whitespace;
/// leading zeros are allowed).
pub fn parse_wei(s: &str) -> Result<U256, ChainError> {
    if s.is_empty() {
        return Err(ChainError::InvalidAmount("empty".into()));
    }
    if !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ChainError::InvalidAmount(format!(
            "{s:?} is not a decimal integer"
        )));
    }
    U256::from_str_radix(s, 10)
        .map_err(|_| ChainError::InvalidAmount(format!("{s} does not fit in 256 bits")))
}

#[cfg(test)]
mod tests {
    use alloy_rlp::{Decodable, Header};
    use k256::ecdsa::{RecoveryId, VerifyingKey};

    use super::*;
    use crate::ethereum::tests::{ANVIL0_ADDRESS, ANVIL0_SECRET, public_key_of, signing_key};
    use crate::{parse_address, to_checksum_address};

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0; 32];
        hex::decode_to_slice(s, &mut out).expect("test hex");
        out
    }

    /// A signed EIP-1559 transaction decoded independently of the encoder
    /// above: RLP items are read with alloy-rlp's decoders, and the
    /// signing payload is rebuilt from the raw bytes of the first nine
    /// items.
    #[derive(Debug)]
    struct Decoded {
        tx: Eip1559Tx,
        y_parity: u8,
        r: [u8; 32],
        s: [u8; 32],
        signing_hash: [u8; 32],
    }

    fn left_pad32(bytes: &[u8]) -> [u8; 32] {
        assert!(bytes.len() <= 32, "integer longer than 32 bytes");
        assert!(bytes.first() != Some(&0), "non-canonical integer");
        let mut out = [0u8; 32];
        out[32 - bytes.len()..].copy_from_slice(bytes);
        out
    }

    fn decode_signed(raw: &[u8]) -> Decoded {
        let (&ty, rest) = raw.split_first().expect("non-empty");
        assert_eq!(ty, 0x02, "EIP-2718 type");
        let mut buf = rest;
        let header = Header::decode(&mut buf).expect("list header");
        assert!(header.list);
        assert_eq!(header.payload_length, buf.len(), "no trailing bytes");
        let payload = buf;

        let chain_id = u64::decode(&mut buf).expect("chain_id");
        let nonce = u64::decode(&mut buf).expect("nonce");
        let max_priority_fee_per_gas = u128::decode(&mut buf).expect("tip");
        let max_fee_per_gas = u128::decode(&mut buf).expect("fee cap");
        let gas_limit = u64::decode(&mut buf).expect("gas_limit");
        let to = match Header::decode_bytes(&mut buf, false).expect("to") {
            [] => None,
            bytes => Some(<[u8; 20]>::try_from(bytes).expect("20-byte to")),
        };
        let value = U256::from_be_bytes(left_pad32(
            Header::decode_bytes(&mut buf, false).expect("value"),
        ));
        let data = Header::decode_bytes(&mut buf, false)
            .expect("data")
            .to_vec();
        let access_list = Header::decode_bytes(&mut buf, true).expect("access list");
        assert!(access_list.is_empty());
        let unsigned_fields = &payload[..payload.len() - buf.len()];

        let y_parity = u8::decode(&mut buf).expect("y_parity");
        let r = left_pad32(Header::decode_bytes(&mut buf, false).expect("r"));
        let s = left_pad32(Header::decode_bytes(&mut buf, false).expect("s"));
        assert!(buf.is_empty(), "exactly twelve items");

        let mut preimage = vec![0x02];
        Header {
            list: true,
            payload_length: unsigned_fields.len(),
        }
        .encode(&mut preimage);
        preimage.extend_from_slice(unsigned_fields);

        Decoded {
            tx: Eip1559Tx {
                chain_id,
                nonce,
                max_priority_fee_per_gas,
                max_fee_per_gas,
                gas_limit,
                to,
                value,
                data,
            },
            y_parity,
            r,
            s,
            signing_hash: keccak256(&preimage),
        }
    }

    fn recover(decoded: &Decoded) -> String {
        let signature = Signature::from_scalars(decoded.r, decoded.s).expect("in range");
        let recovery = RecoveryId::from_byte(decoded.y_parity).expect("0 or 1");
        let key = VerifyingKey::recover_from_prehash(&decoded.signing_hash, &signature, recovery)
            .expect("recovers");
        crate::ethereum_address(key.to_encoded_point(true).as_bytes()).expect("valid key")
    }

    /// alloy-consensus `recover_signer_eip1559` / `encode_decode_eip1559`
    /// (crates/consensus/src/transaction/eip1559.rs): Ethereum mainnet
    /// transaction 0x0ec0b6a2…2ee0 (an ERC-721 `setApprovalForAll`) from
    /// 0xdd6b8b3d…4cea, with its published signing hash, r, s, y-parity and
    /// transaction hash. Matching the transaction hash (Keccak-256 of the
    /// raw bytes) checks the raw encoding byte for byte.
    #[test]
    fn mainnet_transaction_vector() {
        let tx = Eip1559Tx {
            chain_id: 1,
            nonce: 0x42,
            max_priority_fee_per_gas: 0x3b9aca00,
            max_fee_per_gas: 0x4a817c800,
            gas_limit: 44386,
            to: Some(parse_address("0x6069a6c32cf691f5982febae4faf8a6f3ab2f0f6").expect("valid")),
            value: U256::ZERO,
            data: hex::decode(
                "a22cb4650000000000000000000000005eee75727d804a2b13038928d36f8b188945a57a\
                 0000000000000000000000000000000000000000000000000000000000000000",
            )
            .expect("hex"),
        };
        assert_eq!(
            tx.signing_hash(),
            hex32("0d5688ac3897124635b6cf1bc0e29d6dfebceebdc10a54d74f2ef8b56535b682")
        );
        let r = hex32("840cfc572845f5786e702984c2a582528cad4b49b2a10b9db1be7fca90058565");
        let s = hex32("25e7109ceb98168d95b09b18bbf6b685130e0562f233877d492b94eee0c5b6d1");
        let raw = tx.encode_signed(r, s, 0).expect("valid signature");
        assert_eq!(
            transaction_hash(&raw),
            hex32("0ec0b6a2df4d87424e5f6ad2a654e27aaeb7dac20ae9e8385cc09087ad532ee0")
        );

        let decoded = decode_signed(&raw);
        assert_eq!(decoded.tx, tx);
        assert_eq!(decoded.signing_hash, tx.signing_hash());
        assert_eq!(
            recover(&decoded),
            to_checksum_address(
                &parse_address("0xdd6b8b3dc6b7ad97db52f08a275ff4483e024cea").expect("valid")
            )
        );
    }

    /// viem's `signTransaction` EIP-1559 tests
    /// (src/accounts/utils/signTransaction.test.ts), signed with Anvil
    /// account #0. viem and k256 both use RFC 6979 deterministic nonces and
    /// low-S, so signing the signing hash with k256 and encoding must give
    /// viem's raw transactions byte for byte. All are contract creations
    /// (`to` absent) with value 0.
    #[test]
    fn viem_vectors() {
        let base = Eip1559Tx {
            chain_id: 1,
            nonce: 785,
            gas_limit: 21000,
            ..Eip1559Tx::default()
        };
        let cases = [
            (
                "default",
                base.clone(),
                "02f850018203118080825208808080c080a04012522854168b27e5dc3d5839bab5e6b39e1a0ffd343901ce1622e3d64b48f1a04e00902ae0502c4728cbf12156290df99c3ed7de85b1dbfe20b5c36931733a33",
            ),
            (
                "minimal (w/ maxFeePerGas)",
                Eip1559Tx {
                    chain_id: 1,
                    max_fee_per_gas: 1,
                    ..Eip1559Tx::default()
                },
                "02f84c0180800180808080c080a0c95f157628e67a435b1b85584db1b8346cbccf9890d28466f6edfed07d097793a03bdfde4f59a340a4308b5b4d2c89da83838d691c8059b228d0667309f1d2e893",
            ),
            (
                "minimal (w/ type)",
                Eip1559Tx {
                    chain_id: 1,
                    ..Eip1559Tx::default()
                },
                "02f84c0180808080808080c001a0db5b8a12b90b68aeb786379ac14219ac85934e833082dee6cf03fd912809224da06902cc208e3b14a056dca2005c96f59eae33118b899f642551a58cff09044c9a",
            ),
            (
                "args: data",
                Eip1559Tx {
                    data: vec![0x12, 0x34],
                    ..base.clone()
                },
                "02f8520182031180808252088080821234c001a054d552c58a162c9003633c20871d8e381ef7a3c35d1c8a79c7c12d5cf09a0914a03c5d6241f8c4fcf8b35262de038d3ab1940feb1a70b934ae5d40ea6bce912e2d",
            ),
            (
                "args: maxFeePerGas/maxPriorityFeePerGas",
                Eip1559Tx {
                    max_fee_per_gas: 20_000_000_000,
                    max_priority_fee_per_gas: 2_000_000_000,
                    ..base.clone()
                },
                "02f8590182031184773594008504a817c800825208808080c001a06ea33b188b30a5f5d0d1cec62b2bac7203ff428a49048766596727737689043fa0255b74c8e704e3692497a29cd246ffc4344b4107457ce1c914fe2b4e09993859",
            ),
        ];
        let key = signing_key(ANVIL0_SECRET);
        let pk = public_key_of(&key);
        for (name, tx, expected) in cases {
            let hash = tx.signing_hash();
            let (sig, _) = key.sign_prehash_recoverable(&hash).expect("sign");
            let (r, s) = sig.split_bytes();
            let rec = RecoverableSignature::from_prehash(&pk, &hash, &r.into(), &s.into())
                .expect("verifies");
            let raw = tx.encode_with_signature(&rec).expect("encodes");
            assert_eq!(hex::encode(&raw), expected, "{name}");
            let decoded = decode_signed(&raw);
            assert_eq!(decoded.tx, tx, "{name}");
            assert_eq!(recover(&decoded), ANVIL0_ADDRESS, "{name}");
        }
    }

    /// Sign with k256, assemble with `encode_signed`, then decode the raw
    /// bytes independently, recompute the signing hash from the decoded
    /// fields, recover the signer and check its address — over shapes that
    /// exercise every RLP length class.
    #[test]
    fn sign_encode_decode_recover() {
        // EIP-155's example key (0x4646…46); its address is checked against
        // EIP-155's example signature in `ethereum::tests`.
        let key = signing_key("4646464646464646464646464646464646464646464646464646464646464646");
        let expected = "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F";
        assert_eq!(
            crate::ethereum_address(&public_key_of(&key)).expect("valid"),
            expected
        );
        let to = Some(parse_address("0x3535353535353535353535353535353535353535").expect("valid"));
        let txs = [
            Eip1559Tx {
                chain_id: 1,
                nonce: 9,
                max_priority_fee_per_gas: 1_500_000_000,
                max_fee_per_gas: 30_000_000_000,
                gas_limit: 21000,
                to,
                value: parse_wei("1000000000000000000").expect("decimal"),
                data: vec![],
            },
            // Single byte ≥ 0x80 as data (must be 0x81 0x80, not 0x80), a
            // value above u128, and extreme integers.
            Eip1559Tx {
                chain_id: u64::MAX,
                nonce: u64::MAX,
                max_priority_fee_per_gas: u128::MAX,
                max_fee_per_gas: u128::MAX,
                gas_limit: u64::MAX,
                to,
                value: U256::MAX,
                data: vec![0x80],
            },
            // Long data (list payload ≥ 56 and ≥ 256 bytes), contract creation.
            Eip1559Tx {
                chain_id: 11155111,
                nonce: 0,
                max_priority_fee_per_gas: 0,
                max_fee_per_gas: 1,
                gas_limit: 3_000_000,
                to: None,
                value: U256::ZERO,
                data: (0..=255u8).cycle().take(1000).collect(),
            },
            Eip1559Tx {
                data: vec![0x7f],
                ..Eip1559Tx::default()
            },
        ];
        for tx in txs {
            let hash = tx.signing_hash();
            let (sig, id) = key.sign_prehash_recoverable(&hash).expect("sign");
            let (r, s) = sig.split_bytes();
            let raw = tx
                .encode_signed(r.into(), s.into(), y_parity(id.to_byte()).expect("0/1"))
                .expect("encodes");
            assert_eq!(raw[0], EIP1559_TX_TYPE);
            let decoded = decode_signed(&raw);
            assert_eq!(decoded.tx, tx);
            assert_eq!(decoded.signing_hash, hash);
            assert_eq!(decoded.y_parity, id.to_byte());
            assert_eq!(recover(&decoded), expected);
            // The unsigned payload is the same list, minus the signature.
            let payload = tx.signing_payload();
            assert_eq!(keccak256(&payload), hash);
        }
    }

    #[test]
    fn encodes_to_and_data_as_strings() {
        let tx = Eip1559Tx {
            data: vec![0x80],
            to: Some([0xab; 20]),
            ..Eip1559Tx::default()
        };
        let payload = tx.signing_payload();
        // 02, list header, chain_id 0, nonce 0, tip 0, cap 0, gas 0,
        // 0x94 ‖ to, value 0, 0x81 0x80, empty access list.
        let mut expected = vec![0x02, 0xc0 + 30, 0x80, 0x80, 0x80, 0x80, 0x80, 0x94];
        expected.extend_from_slice(&[0xab; 20]);
        expected.extend_from_slice(&[0x80, 0x81, 0x80, 0xc0]);
        assert_eq!(payload, expected);
    }

    #[test]
    fn encode_signed_rejects_bad_signatures() {
        let tx = Eip1559Tx::default();
        let key = signing_key(ANVIL0_SECRET);
        let (sig, _) = key
            .sign_prehash_recoverable(&tx.signing_hash())
            .expect("sign");
        let (r, s) = sig.split_bytes();
        let (r, s): ([u8; 32], [u8; 32]) = (r.into(), s.into());
        assert!(tx.encode_signed(r, s, 0).is_ok());
        assert_eq!(
            tx.encode_signed(r, s, 2),
            Err(ChainError::InvalidRecoveryId(2))
        );
        assert!(matches!(
            tx.encode_signed([0; 32], s, 0),
            Err(ChainError::InvalidSignature(_))
        ));
        assert!(matches!(
            tx.encode_signed(r, [0xff; 32], 0),
            Err(ChainError::InvalidSignature(_))
        ));
        // High S: n − s.
        let high = Signature::from_scalars(r, -*sig.s()).expect("in range");
        let (_, hs) = high.split_bytes();
        assert!(matches!(
            tx.encode_signed(r, hs.into(), 0),
            Err(ChainError::InvalidSignature(_))
        ));
    }

    #[test]
    fn validate_fee_cap() {
        let mut tx = Eip1559Tx {
            max_priority_fee_per_gas: 2,
            max_fee_per_gas: 2,
            ..Eip1559Tx::default()
        };
        assert!(tx.validate().is_ok());
        tx.max_priority_fee_per_gas = 3;
        assert!(matches!(tx.validate(), Err(ChainError::InvalidAmount(_))));
    }

    #[test]
    fn parses_wei() {
        for s in [
            "0",
            "1",
            "255",
            "256",
            "1000000000000000000",
            "340282366920938463463374607431768211455", // u128::MAX
            "340282366920938463463374607431768211456", // u128::MAX + 1
        ] {
            assert_eq!(parse_wei(s).expect("valid").to_string(), s);
        }
        assert_eq!(
            parse_wei("1000000000000000000"),
            Ok(U256::from(1_000_000_000_000_000_000u128))
        );
        assert_eq!(parse_wei("007"), Ok(U256::from(7u64)));
        let mut above = [0u8; 32];
        above[15] = 1;
        assert_eq!(
            parse_wei("340282366920938463463374607431768211456"),
            Ok(U256::from_be_bytes(above))
        );
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(parse_wei(max), Ok(U256::MAX));
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(matches!(parse_wei(over), Err(ChainError::InvalidAmount(_))));
        assert!(parse_wei(&"9".repeat(100)).is_err());
    }

    #[test]
    fn parse_wei_rejects_non_decimal() {
        for bad in [
            "", " 1", "1 ", "-1", "+1", "1_000", "1e18", "0x10", "1.5", "١",
        ] {
            assert!(
                matches!(parse_wei(bad), Err(ChainError::InvalidAmount(_))),
                "{bad:?}"
            );
        }
    }
}
