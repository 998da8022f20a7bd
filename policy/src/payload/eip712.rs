//! EIP-712 typed data (`eth_signTypedData_v4` JSON) as the policy sees it:
//! [`sigil_chains::eip712`] parses and checks the JSON, computes the
//! signing preimage and recognizes token approvals; this module turns its
//! result into a [`Parsed`].
//!
//! | typed data | kind | chain | movements | calls |
//! |---|---|---|---|---|
//! | EIP-2612 `Permit` | token approval | `evm:<domain chainId>` (required) | `value` of `evm:<id>/<verifyingContract>` to `spender` | the verifying contract (the token) |
//! | DAI `Permit` | token approval | same | `allowed`: 2^256 − 1 (unlimited), else 0 (a revocation), of the token to `spender` | the token |
//! | Permit2 `PermitSingle` / `PermitBatch` / `PermitTransferFrom` / `PermitBatchTransferFrom` | token approval | same | one per token: its amount of `evm:<id>/<token>` to `spender` | Permit2 |
//! | anything else | typed data (signed only where raw signing is allowed) | `evm:<domain chainId>`, or none without one | none | the verifying contract, if the domain has one |
//!
//! Every payload is one part: the 66-byte preimage
//! `0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message)` with encoding
//! KECCAK256, so the node hashes what it signs itself (as for EIP-191
//! messages). No fee: gas is paid by whoever submits the signature.
//!
//! Refused: everything [`sigil_chains::eip712::parse_typed_data`] refuses
//! (with its reason), a domain `chainId` of 0 or above 2^64 − 1, a token
//! approval whose domain has no `chainId` (it would be valid on every
//! chain), and a Permit2 batch of no tokens.
//!
//! The permit's owner (EIP-2612 `owner`, DAI `holder`) is not compared with
//! the signing key here: the decoder sees only the JSON. A signature by
//! another key than the owner's is simply invalid on chain.

use sigil_chains::eip712::{self, Eip712Error, TypedDataKind};
use sigil_protocol::engine::Encoding;

use super::{Call, Movement, Parsed, PayloadError, PayloadKind, SignPart};
use crate::amount::Amount;
use crate::chain::{evm_address, evm_chain, token_asset};

/// Reads `eth_signTypedData_v4` JSON (see the module docs).
pub fn parse_typed_data(json: &str) -> Result<Parsed, PayloadError> {
    let typed = eip712::parse_typed_data(json).map_err(refused)?;
    let chain_id = typed.domain().evm_chain_id().map_err(refused)?;
    let calls: Vec<Call> = typed
        .domain()
        .verifying_contract
        .iter()
        .map(|contract| Call {
            contract: evm_address(contract),
            selector: None,
        })
        .collect();
    let parts = vec![SignPart::new(
        typed.signing_preimage().to_vec(),
        Encoding::Keccak256,
    )];
    match typed.kind() {
        TypedDataKind::Approval(approval) => {
            let chain_id = chain_id.ok_or_else(|| {
                PayloadError::TypedData(format!(
                    "{} without a domain chainId: it would be valid on every chain",
                    approval.standard
                ))
            })?;
            if approval.allowances.is_empty() {
                return Err(PayloadError::TypedData(format!(
                    "{} of no tokens",
                    approval.standard
                )));
            }
            let chain = evm_chain(chain_id);
            let movements = approval
                .allowances
                .iter()
                .map(|a| Movement {
                    asset: token_asset(&chain, &evm_address(&a.token)),
                    amount: Amount::new(a.amount),
                    destination: evm_address(&a.spender),
                })
                .collect();
            Ok(Parsed {
                chain: Some(chain),
                kind: PayloadKind::TokenApproval,
                movements,
                calls,
                fee: None,
                parts,
            })
        }
        TypedDataKind::Other => Ok(Parsed {
            chain: chain_id.map(evm_chain),
            kind: PayloadKind::TypedData,
            movements: Vec::new(),
            calls,
            fee: None,
            parts,
        }),
    }
}

fn refused(e: Eip712Error) -> PayloadError {
    match e {
        Eip712Error::TooLong { len, max } => PayloadError::TooLong { len, max },
        Eip712Error::ChainId(id) if id.is_zero() => PayloadError::ZeroChainId,
        other => PayloadError::TypedData(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{U256, keccak256};
    use serde_json::{Value, json};
    use sigil_proto::v1 as pb;
    use sigil_protocol::Scheme;
    use sigil_protocol::engine::SignInput;

    use super::*;
    use crate::payload::parse_for;

    const USDC: &str = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";
    const WETH: &str = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2";
    const DAI: &str = "0x6b175474e89094c44da98b954eedeac495271d0f";
    const PERMIT2: &str = "0x000000000022d473030f116ddee9f6b43ac78ba3";
    const SPENDER: &str = "0x3fc91a3afd70395cd496c647d5a6cc9d4b2b7fad";
    const OWNER: &str = "0xb1700c08aa433b319def2b4bb31d6de5c8512d96";

    fn domain_type(fields: &[&str]) -> Value {
        let all = [
            ("name", "string"),
            ("version", "string"),
            ("chainId", "uint256"),
            ("verifyingContract", "address"),
        ];
        Value::Array(
            all.iter()
                .filter(|(n, _)| fields.contains(n))
                .map(|(n, t)| json!({ "name": n, "type": t }))
                .collect(),
        )
    }

    /// The USDC permit of mainnet transaction 0x9050798d…a969.
    fn usdc_permit() -> Value {
        json!({
            "types": {
                "EIP712Domain": domain_type(&["name", "version", "chainId", "verifyingContract"]),
                "Permit": [
                    { "name": "owner", "type": "address" },
                    { "name": "spender", "type": "address" },
                    { "name": "value", "type": "uint256" },
                    { "name": "nonce", "type": "uint256" },
                    { "name": "deadline", "type": "uint256" },
                ],
            },
            "primaryType": "Permit",
            "domain": { "name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": USDC },
            "message": {
                "owner": OWNER,
                "spender": "0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45",
                "value": "49817428",
                "nonce": "0",
                "deadline": "1666327223",
            },
        })
    }

    fn dai_permit(allowed: bool) -> Value {
        json!({
            "types": {
                "EIP712Domain": domain_type(&["name", "version", "chainId", "verifyingContract"]),
                "Permit": [
                    { "name": "holder", "type": "address" },
                    { "name": "spender", "type": "address" },
                    { "name": "nonce", "type": "uint256" },
                    { "name": "expiry", "type": "uint256" },
                    { "name": "allowed", "type": "bool" },
                ],
            },
            "primaryType": "Permit",
            "domain": { "name": "Dai Stablecoin", "version": "1", "chainId": 1, "verifyingContract": DAI },
            "message": { "holder": OWNER, "spender": SPENDER, "nonce": 0, "expiry": 0, "allowed": allowed },
        })
    }

    fn permit2_batch(details: Value, chain_id: u64) -> Value {
        json!({
            "types": {
                "EIP712Domain": domain_type(&["name", "chainId", "verifyingContract"]),
                "PermitBatch": [
                    { "name": "details", "type": "PermitDetails[]" },
                    { "name": "spender", "type": "address" },
                    { "name": "sigDeadline", "type": "uint256" },
                ],
                "PermitDetails": [
                    { "name": "token", "type": "address" },
                    { "name": "amount", "type": "uint160" },
                    { "name": "expiration", "type": "uint48" },
                    { "name": "nonce", "type": "uint48" },
                ],
            },
            "primaryType": "PermitBatch",
            "domain": { "name": "Permit2", "chainId": chain_id, "verifyingContract": PERMIT2 },
            "message": { "details": details, "spender": SPENDER, "sigDeadline": "1735689600" },
        })
    }

    /// EIP-712's own `Mail` example.
    fn mail() -> Value {
        json!({
            "types": {
                "EIP712Domain": domain_type(&["name", "version", "chainId", "verifyingContract"]),
                "Person": [
                    { "name": "name", "type": "string" },
                    { "name": "wallet", "type": "address" },
                ],
                "Mail": [
                    { "name": "from", "type": "Person" },
                    { "name": "to", "type": "Person" },
                    { "name": "contents", "type": "string" },
                ],
            },
            "primaryType": "Mail",
            "domain": {
                "name": "Ether Mail",
                "version": "1",
                "chainId": 1,
                "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
            },
            "message": {
                "from": { "name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826" },
                "to": { "name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" },
                "contents": "Hello, Bob!",
            },
        })
    }

    fn parse(v: &Value) -> Result<Parsed, PayloadError> {
        parse_typed_data(&v.to_string())
    }

    fn without_chain_id(mut v: Value) -> Value {
        if let Some(domain) = v["domain"].as_object_mut() {
            domain.remove("chainId");
        }
        let fields: Vec<&str> = ["name", "version", "verifyingContract"]
            .into_iter()
            .filter(|f| v["domain"].get(*f).is_some())
            .collect();
        v["types"]["EIP712Domain"] = domain_type(&fields);
        v
    }

    #[test]
    fn an_eip2612_permit_is_a_token_approval_of_its_value_to_its_spender() {
        let parsed = parse(&usdc_permit()).expect("parsed");
        assert_eq!(parsed.chain.as_deref(), Some("evm:1"));
        assert_eq!(parsed.kind, PayloadKind::TokenApproval);
        assert_eq!(
            parsed.movements,
            vec![Movement {
                asset: format!("evm:1/{USDC}"),
                amount: Amount::from(49_817_428u64),
                destination: "0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45".into(),
            }]
        );
        assert_eq!(
            parsed.calls,
            vec![Call {
                contract: USDC.into(),
                selector: None
            }]
        );
        assert_eq!(parsed.fee, None);
        assert_eq!(
            parsed.summary(),
            format!(
                "evm:1 ERC-20 approval of 49817428 evm:1/{USDC} to spender 0x68b3465833fb72a70ecdf485e0e4c7bd8665fc45"
            )
        );
    }

    #[test]
    fn the_signed_part_is_the_66_byte_preimage_which_the_engine_hashes_with_keccak() {
        let parsed = parse(&mail()).expect("parsed");
        assert_eq!(parsed.parts.len(), 1);
        let part = &parsed.parts[0];
        assert_eq!(part.encoding, Encoding::Keccak256);
        assert_eq!(part.derivation_path, None);
        assert_eq!(part.message.len(), 66);
        assert_eq!(part.message[..2], [0x19, 0x01]);
        // EIP-712's Example.js signing hash.
        let expected = "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2";
        assert_eq!(hex::encode(keccak256(&part.message)), expected);
        match SignInput::new(Scheme::EcdsaSecp256k1, &part.message, part.encoding, "") {
            Ok(SignInput::Digest { digest, .. }) => assert_eq!(hex::encode(digest), expected),
            other => panic!("engine input {other:?}"),
        }
    }

    #[test]
    fn a_dai_permit_approves_everything_when_allowed_and_nothing_when_not() {
        let allow = parse(&dai_permit(true)).expect("parsed");
        assert_eq!(allow.kind, PayloadKind::TokenApproval);
        assert_eq!(
            allow.movements,
            vec![Movement {
                asset: format!("evm:1/{DAI}"),
                amount: Amount::new(U256::MAX),
                destination: SPENDER.into(),
            }]
        );
        let revoke = parse(&dai_permit(false)).expect("parsed");
        assert_eq!(revoke.kind, PayloadKind::TokenApproval);
        assert_eq!(revoke.movements[0].amount, Amount::ZERO);
        assert_eq!(revoke.calls[0].contract, DAI);
    }

    #[test]
    fn a_permit2_batch_is_one_movement_per_token_called_on_permit2() {
        let details = json!([
            { "token": USDC, "amount": "2500000", "expiration": "1735689600", "nonce": "0" },
            { "token": WETH, "amount": "1000000000000000000", "expiration": "1735689600", "nonce": "0" },
        ]);
        let parsed = parse(&permit2_batch(details, 8453)).expect("parsed");
        assert_eq!(parsed.chain.as_deref(), Some("evm:8453"));
        assert_eq!(parsed.kind, PayloadKind::TokenApproval);
        assert_eq!(
            parsed.movements,
            vec![
                Movement {
                    asset: format!("evm:8453/{USDC}"),
                    amount: Amount::from(2_500_000u64),
                    destination: SPENDER.into(),
                },
                Movement {
                    asset: format!("evm:8453/{WETH}"),
                    amount: Amount::from(1_000_000_000_000_000_000u64),
                    destination: SPENDER.into(),
                },
            ]
        );
        assert_eq!(
            parsed.calls,
            vec![Call {
                contract: PERMIT2.into(),
                selector: None
            }]
        );
    }

    #[test]
    fn a_permit2_batch_of_no_tokens_is_refused() {
        assert!(matches!(
            parse(&permit2_batch(json!([]), 1)),
            Err(PayloadError::TypedData(_))
        ));
    }

    #[test]
    fn an_approval_without_a_chain_id_is_refused() {
        for permit in [usdc_permit(), dai_permit(true)] {
            let err = parse(&without_chain_id(permit)).expect_err("refused");
            assert!(
                matches!(&err, PayloadError::TypedData(m) if m.contains("chainId")),
                "{err}"
            );
        }
    }

    #[test]
    fn typed_data_that_is_not_an_approval_is_raw_typed_data_on_its_chain() {
        let parsed = parse(&mail()).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::TypedData);
        assert!(parsed.kind.is_raw());
        assert_eq!(parsed.chain.as_deref(), Some("evm:1"));
        assert!(parsed.movements.is_empty());
        assert_eq!(
            parsed.calls,
            vec![Call {
                contract: "0xcccccccccccccccccccccccccccccccccccccccc".into(),
                selector: None
            }]
        );
        assert_eq!(parsed.fee, None);
        assert_eq!(
            parsed.summary(),
            "evm:1 EIP-712 typed data for 0xcccccccccccccccccccccccccccccccccccccccc"
        );
    }

    #[test]
    fn typed_data_without_a_chain_id_or_contract_belongs_to_no_chain_and_calls_nothing() {
        let mut v = without_chain_id(mail());
        v["domain"] = json!({ "name": "Ether Mail" });
        v["types"]["EIP712Domain"] = domain_type(&["name"]);
        let parsed = parse(&v).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::TypedData);
        assert_eq!(parsed.chain, None);
        assert!(parsed.calls.is_empty());
        assert_eq!(parsed.summary(), "EIP-712 typed data");
    }

    #[test]
    fn a_misnamed_permit_is_typed_data_not_an_approval() {
        let mut v = usdc_permit();
        v["types"]["Permit"][2] = json!({ "name": "amount", "type": "uint256" });
        let message = v["message"].as_object_mut().expect("object");
        let value = message.remove("value").expect("value");
        message.insert("amount".into(), value);
        let parsed = parse(&v).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::TypedData);
        assert!(parsed.movements.is_empty());
    }

    #[test]
    fn a_chain_id_of_zero_or_beyond_u64_is_refused() {
        let mut zero = mail();
        zero["domain"]["chainId"] = json!(0);
        assert_eq!(parse(&zero), Err(PayloadError::ZeroChainId));
        let mut huge = mail();
        huge["domain"]["chainId"] = json!("18446744073709551616");
        assert!(matches!(parse(&huge), Err(PayloadError::TypedData(_))));
    }

    #[test]
    fn malformed_typed_data_is_refused_with_its_reason() {
        let err = parse_typed_data("{not json").expect_err("refused");
        assert!(
            matches!(&err, PayloadError::TypedData(m) if m.contains("not JSON")),
            "{err}"
        );

        let mut extra = mail();
        extra["message"]["amount"] = json!("1");
        let err = parse(&extra).expect_err("refused");
        assert!(
            matches!(&err, PayloadError::TypedData(m) if m.contains("amount")),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("EIP-712 typed data refused: "),
            "{err}"
        );

        let mut no_primary = mail();
        no_primary
            .as_object_mut()
            .expect("object")
            .remove("primaryType");
        assert!(matches!(
            parse(&no_primary),
            Err(PayloadError::TypedData(_))
        ));
    }

    #[test]
    fn typed_data_over_64_kib_is_refused_as_too_long() {
        let json = format!("{}{}", mail(), " ".repeat(eip712::MAX_TYPED_DATA_LEN));
        assert_eq!(
            parse_typed_data(&json),
            Err(PayloadError::TooLong {
                len: json.len(),
                max: eip712::MAX_TYPED_DATA_LEN
            })
        );
    }

    #[test]
    fn typed_data_is_dispatched_for_ecdsa_keys_only() {
        let payload = pb::Payload {
            kind: Some(pb::payload::Kind::Eip712TypedData(mail().to_string())),
        };
        let parsed = parse_for(Scheme::EcdsaSecp256k1, &payload).expect("parsed");
        assert_eq!(parsed.kind, PayloadKind::TypedData);
        assert!(matches!(
            parse_for(Scheme::FrostEd25519, &payload),
            Err(PayloadError::WrongScheme {
                what: "EIP-712 typed data",
                ..
            })
        ));
    }
}
