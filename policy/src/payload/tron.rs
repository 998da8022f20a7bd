//! TRON transactions as the policy sees them: [`sigil_chains::tron`]
//! decodes the unsigned `Transaction.raw` exactly (TRON's own protobuf
//! definitions; see [`sigil_chains::tron::transaction`] for everything it
//! refuses), checks that its owner is the key and that it has not expired;
//! this module turns it into a [`Parsed`].
//!
//! | TRON transaction | [`Parsed`] |
//! |---|---|
//! | network (`TronTransaction.network`: `""`/`mainnet`, `nile`, `shasta`) | chain `tron:<network>` (other names refused) |
//! | owner (`owner_address`) | must be the key's TRON address at the intent's derivation path (`0x41` ‖ its Ethereum account), else refused |
//! | `expiration` | must be in the future, else refused |
//! | `TransferContract` | native transfer: a movement of `amount` sun of `tron:<network>/native` to `to_address` |
//! | `TriggerSmartContract`, TRC-20 `transfer(to, amount)` (exact ABI encoding, no TRX or TRC-10 value) | token transfer: a movement of `amount` of `tron:<network>/<token contract>` to `to`, and a call of the token contract with selector `a9059cbb` |
//! | any other `TriggerSmartContract` | contract call: a call of the contract with its selector, and a movement of `call_value` sun of `tron:<network>/native` to the contract when it is not 0 |
//! | fee (`fee_limit`, bandwidth) | none: TRON fees are burnt from resources, not fixed by the payload |
//! | what is signed | one part: SHA-256 of `raw_data` (the transaction id), 32 bytes, encoding RAW |
//!
//! Addresses — destinations, token contracts, called contracts — are
//! written in TRON's Base58Check form (`T…`), as policy documents must
//! write them. A call of `a9059cbb` whose arguments are not the exact ABI
//! encoding (such as a recipient word with TRON's `41` prefix in it) is a
//! contract call whose amount is not read; so are TRC-20 `transferFrom`
//! (`23b872dd`) and `approve` (`095ea7b3`), which this decoder does not
//! read. The evaluation refuses all of them (the ERC-20 movement selectors
//! are never signed as plain contract calls).
//! Everything the decoder refuses is refused with its reason
//! ([`PayloadError::Tron`]).

use std::time::{SystemTime, UNIX_EPOCH};

use sigil_chains::tron::{self, TronContract};
use sigil_proto::v1 as pb;
use sigil_protocol::engine::Encoding;

use super::{Call, KeyView, Movement, Parsed, PayloadError, PayloadKind, SignPart, check_len};
use crate::amount::Amount;
use crate::chain::{native_asset, token_asset};

/// Reads a TRON transaction for `key` (an `ecdsa-secp256k1` key), now.
pub fn parse_transaction(
    key: &KeyView<'_>,
    tx: &pb::TronTransaction,
) -> Result<Parsed, PayloadError> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    parse_transaction_at(key, tx, now_ms)
}

/// [`parse_transaction`] at `now_ms` (milliseconds since the Unix epoch).
pub fn parse_transaction_at(
    key: &KeyView<'_>,
    tx: &pb::TronTransaction,
    now_ms: i64,
) -> Result<Parsed, PayloadError> {
    let chain = format!("tron:{}", network(&tx.network)?);
    check_len(&tx.raw_data)?;
    let refused = |e: tron::TronError| PayloadError::Tron(e.to_string());
    let decoded = tron::decode_raw_data(&tx.raw_data).map_err(refused)?;
    let public_key = key.signing_public_key()?;
    let account = sigil_chains::ethereum_address_bytes(&public_key)
        .map_err(|e| PayloadError::Key(e.to_string()))?;
    tron::check_owner(&decoded, &account).map_err(refused)?;
    tron::check_expiration(&decoded, now_ms).map_err(refused)?;

    let (kind, movements, calls) = match &decoded.contract {
        TronContract::Transfer { to, amount, .. } => (
            PayloadKind::NativeTransfer,
            vec![Movement {
                asset: native_asset(&chain),
                amount: Amount::from(amount.unsigned_abs()),
                destination: to.to_base58(),
            }],
            Vec::new(),
        ),
        TronContract::Trc20Transfer {
            token,
            recipient,
            amount,
            ..
        } => {
            let token = token.to_base58();
            (
                PayloadKind::TokenTransfer,
                vec![Movement {
                    asset: token_asset(&chain, &token),
                    amount: Amount::new(*amount),
                    destination: recipient.to_base58(),
                }],
                vec![Call {
                    contract: token,
                    selector: Some(tron::TRC20_TRANSFER_SELECTOR),
                }],
            )
        }
        TronContract::ContractCall {
            contract,
            selector,
            call_value,
            ..
        } => {
            let contract = contract.to_base58();
            let movements = if *call_value > 0 {
                vec![Movement {
                    asset: native_asset(&chain),
                    amount: Amount::from(call_value.unsigned_abs()),
                    destination: contract.clone(),
                }]
            } else {
                Vec::new()
            };
            (
                PayloadKind::ContractCall,
                movements,
                vec![Call {
                    contract,
                    selector: Some(*selector),
                }],
            )
        }
    };
    Ok(Parsed {
        chain: Some(chain),
        kind,
        movements,
        calls,
        fee: None,
        parts: vec![SignPart::new(
            tron::signing_hash(&tx.raw_data).to_vec(),
            Encoding::Raw,
        )],
    })
}

/// The network name a `TronTransaction` gives, as chain names write it.
pub fn network(name: &str) -> Result<&'static str, PayloadError> {
    Ok(match name {
        "" | "mainnet" => "mainnet",
        "nile" => "nile",
        "shasta" => "shasta",
        other => return Err(PayloadError::UnknownNetwork(other.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use sigil_chains::U256;
    use sigil_chains::tron::proto::{self, Any, transaction::contract::ContractType};
    use sigil_protocol::Scheme;

    use super::*;

    /// The public key of private key 1 (the generator), compressed; its
    /// TRON address is TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC.
    const KEY1: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    const KEY1_TRON: &str = "TMVQGm1qAQYVdetCeGRRkTWYYrLXuHK2HC";
    const USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
    const NOW: i64 = 1_800_000_000_000;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    fn key1() -> Vec<u8> {
        unhex(KEY1)
    }

    fn hex41(address: &str) -> Vec<u8> {
        let account = sigil_chains::parse_tron_address(address).expect("test address");
        tron::tron_address_hex_bytes(&account).to_vec()
    }

    /// A recipient account, `0x11…11`.
    fn recipient() -> String {
        tron::tron_address_from_account(&[0x11; 20])
    }

    fn raw_data(kind: ContractType, type_url: &str, value: Vec<u8>) -> Vec<u8> {
        proto::transaction::Raw {
            ref_block_bytes: vec![0xab, 0xcd],
            ref_block_hash: vec![1, 2, 3, 4, 5, 6, 7, 8],
            expiration: NOW + 60_000,
            contract: vec![proto::transaction::Contract {
                r#type: kind as i32,
                parameter: Some(Any {
                    type_url: type_url.to_owned(),
                    value,
                }),
                ..Default::default()
            }],
            timestamp: NOW,
            fee_limit: 30_000_000,
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn trx_transfer(owner: &str, amount: i64) -> Vec<u8> {
        let value = proto::TransferContract {
            owner_address: hex41(owner),
            to_address: hex41(&recipient()),
            amount,
        };
        raw_data(
            ContractType::TransferContract,
            "type.googleapis.com/protocol.TransferContract",
            value.encode_to_vec(),
        )
    }

    fn call(owner: &str, contract: &str, data: Vec<u8>, call_value: i64) -> Vec<u8> {
        let value = proto::TriggerSmartContract {
            owner_address: hex41(owner),
            contract_address: hex41(contract),
            data,
            call_value,
            ..Default::default()
        };
        raw_data(
            ContractType::TriggerSmartContract,
            "type.googleapis.com/protocol.TriggerSmartContract",
            value.encode_to_vec(),
        )
    }

    fn trc20_transfer_data(to: &str, amount: u64) -> Vec<u8> {
        let account = sigil_chains::parse_tron_address(to).expect("test address");
        let mut data = unhex("a9059cbb");
        data.extend_from_slice(&[0u8; 12]);
        data.extend_from_slice(&account);
        data.extend_from_slice(&U256::from(amount).to_be_bytes::<32>());
        data
    }

    fn parse(raw_data: Vec<u8>, network: &str) -> Result<Parsed, PayloadError> {
        let pk = key1();
        let key = KeyView::new(Scheme::EcdsaSecp256k1, &pk, &[]);
        parse_transaction_at(
            &key,
            &pb::TronTransaction {
                raw_data,
                network: network.to_owned(),
            },
            NOW,
        )
    }

    #[test]
    fn a_trx_transfer_is_a_native_transfer_in_sun_to_a_base58_address() {
        let raw = trx_transfer(KEY1_TRON, 1_500_000);
        let parsed = parse(raw.clone(), "").expect("parses");
        assert_eq!(
            parsed,
            Parsed {
                chain: Some("tron:mainnet".into()),
                kind: PayloadKind::NativeTransfer,
                movements: vec![Movement {
                    asset: "tron:mainnet/native".into(),
                    amount: Amount::from(1_500_000u64),
                    destination: recipient(),
                }],
                calls: Vec::new(),
                fee: None,
                parts: vec![SignPart::new(
                    sigil_chains::sha256(&raw).to_vec(),
                    Encoding::Raw
                )],
            }
        );
        assert!(recipient().starts_with('T'));
        assert_eq!(
            parsed.summary(),
            format!(
                "tron:mainnet native transfer of 1500000 tron:mainnet/native to {}",
                recipient()
            )
        );
    }

    #[test]
    fn a_trc20_transfer_is_a_token_transfer_with_a_call_of_the_token() {
        let data = trc20_transfer_data(&recipient(), 2_500_000);
        let parsed = parse(call(KEY1_TRON, USDT, data, 0), "nile").expect("parses");
        assert_eq!(parsed.chain.as_deref(), Some("tron:nile"));
        assert_eq!(parsed.kind, PayloadKind::TokenTransfer);
        assert_eq!(
            parsed.movements,
            vec![Movement {
                asset: format!("tron:nile/{USDT}"),
                amount: Amount::from(2_500_000u64),
                destination: recipient(),
            }]
        );
        assert_eq!(
            parsed.calls,
            vec![Call {
                contract: USDT.into(),
                selector: Some([0xa9, 0x05, 0x9c, 0xbb]),
            }]
        );
        assert_eq!(parsed.fee, None);
        assert_eq!(parsed.parts.len(), 1);
        assert_eq!(parsed.parts[0].message.len(), 32);
    }

    #[test]
    fn another_contract_call_is_a_contract_call_and_its_trx_value_a_movement() {
        // approve(spender, amount): a call like any other on TRON.
        let mut data = unhex("095ea7b3");
        data.extend_from_slice(&[0u8; 64]);
        let parsed = parse(call(KEY1_TRON, USDT, data.clone(), 0), "shasta").expect("parses");
        assert_eq!(parsed.chain.as_deref(), Some("tron:shasta"));
        assert_eq!(parsed.kind, PayloadKind::ContractCall);
        assert!(parsed.movements.is_empty());
        assert_eq!(
            parsed.calls,
            vec![Call {
                contract: USDT.into(),
                selector: Some([0x09, 0x5e, 0xa7, 0xb3]),
            }]
        );
        let parsed = parse(call(KEY1_TRON, USDT, data, 7), "mainnet").expect("parses");
        assert_eq!(
            parsed.movements,
            vec![Movement {
                asset: "tron:mainnet/native".into(),
                amount: Amount::from(7u64),
                destination: USDT.into(),
            }]
        );
        // A transfer call that is not the exact ABI encoding stays a call of
        // a9059cbb, whose amount is not read.
        let mut dirty = trc20_transfer_data(&recipient(), 5);
        dirty[15] = 0x41;
        let parsed = parse(call(KEY1_TRON, USDT, dirty, 0), "").expect("parses");
        assert_eq!(parsed.kind, PayloadKind::ContractCall);
        assert_eq!(parsed.calls[0].selector, Some([0xa9, 0x05, 0x9c, 0xbb]));
    }

    #[test]
    fn a_transaction_whose_owner_is_not_the_key_is_refused() {
        let other = tron::tron_address_from_account(&[0x22; 20]);
        let err = parse(trx_transfer(&other, 1), "").expect_err("refused");
        let PayloadError::Tron(message) = &err else {
            panic!("not a TRON refusal: {err:?}");
        };
        assert!(
            message.contains(&other) && message.contains(KEY1_TRON),
            "{message}"
        );
    }

    #[test]
    fn unknown_networks_are_refused() {
        for name in ["testnet", "Mainnet", "tron:mainnet", "evm:1"] {
            assert_eq!(
                parse(trx_transfer(KEY1_TRON, 1), name),
                Err(PayloadError::UnknownNetwork(name.into())),
                "{name}"
            );
        }
    }

    #[test]
    fn expired_and_malformed_transactions_are_refused_with_the_decoders_reason() {
        let pk = key1();
        let key = KeyView::new(Scheme::EcdsaSecp256k1, &pk, &[]);
        let tx = pb::TronTransaction {
            raw_data: trx_transfer(KEY1_TRON, 1),
            network: String::new(),
        };
        assert!(matches!(
            parse_transaction_at(&key, &tx, NOW + 60_000),
            Err(PayloadError::Tron(m)) if m.contains("expired")
        ));
        assert!(matches!(
            parse(Vec::new(), ""),
            Err(PayloadError::Tron(m)) if m.contains("empty")
        ));
        assert!(matches!(
            parse(trx_transfer(KEY1_TRON, 0), ""),
            Err(PayloadError::Tron(m)) if m.contains("positive")
        ));
    }

    #[test]
    fn tron_transactions_go_through_the_payload_dispatch_for_ecdsa_keys_only() {
        let payload = pb::Payload {
            kind: Some(pb::payload::Kind::TronTransaction(pb::TronTransaction {
                raw_data: trx_transfer(KEY1_TRON, 1),
                network: String::new(),
            })),
        };
        let pk = key1();
        assert!(matches!(
            super::super::parse(&KeyView::new(Scheme::FrostSecp256k1, &pk, &[]), &payload),
            Err(PayloadError::WrongScheme { .. })
        ));
        // Through the dispatch the current time is used: this transaction
        // expires in 2027, so it is either read or refused as expired.
        match super::super::parse(&KeyView::new(Scheme::EcdsaSecp256k1, &pk, &[]), &payload) {
            Ok(parsed) => assert_eq!(parsed.kind, PayloadKind::NativeTransfer),
            Err(PayloadError::Tron(m)) => assert!(m.contains("expired"), "{m}"),
            Err(other) => panic!("{other:?}"),
        }
    }
}
