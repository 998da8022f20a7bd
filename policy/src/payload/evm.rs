//! Ethereum and EVM chains: unsigned transactions and EIP-191 messages.
//!
//! An unsigned transaction is decoded with alloy's transaction types and
//! accepted only if it is exactly what alloy encodes for signing: the
//! decoded transaction is re-encoded and must give the input bytes back, so
//! there are no trailing bytes, no non-canonical RLP and no second reading
//! of the same bytes. The node then signs Keccak-256 of those bytes, which
//! is the transaction's signature hash.
//!
//! | first byte | transaction | accepted |
//! |---|---|---|
//! | `0x02` | EIP-1559 | yes |
//! | `0x01` | EIP-2930 | yes |
//! | `0xc0`–`0xff` (RLP list) | legacy | with an EIP-155 chain id only (a pre-EIP-155 signature replays on every chain) |
//! | other | blob (0x03), EIP-7702 (0x04), unknown | no |
//!
//! Contract creation (no recipient) is refused. Call data is read exactly:
//!
//! | call data | kind | movements |
//! |---|---|---|
//! | empty | native transfer | the value to the recipient (also when 0, so destination rules apply) |
//! | ERC-20 `transfer(to, amount)`, `transferFrom(from, to, amount)` | token transfer | `amount` of `<chain>/<contract>` to `to` |
//! | ERC-20 `approve(spender, amount)` | token approval | `amount` of `<chain>/<contract>` to `spender` |
//! | anything else of 4 bytes or more | contract call | none |
//! | 1 to 3 bytes | refused | |
//!
//! An ERC-20 call is recognized only when its selector matches and its
//! arguments are exactly the canonical ABI encoding (strict decoding, then
//! re-encoding gives the same bytes); otherwise it is a contract call like
//! any other. A non-zero native value on any call is a further movement to
//! the contract.

use alloy_consensus::{SignableTransaction, Transaction, TxEip1559, TxEip2930, TxLegacy};
use alloy_primitives::{Signature, TxKind};
use alloy_rlp::{Decodable, Header};
use alloy_sol_types::SolCall;
use alloy_sol_types::abi::AbiDecoderConfig;
use sigil_protocol::engine::Encoding;

use super::{Call, Movement, Parsed, PayloadError, PayloadKind, SignPart, check_len};
use crate::amount::Amount;
use crate::chain::{evm_address, evm_chain, native_asset, token_asset};

/// The ERC-20 methods whose value movement Sigil reads.
mod erc20 {
    alloy_sol_types::sol! {
        /// ERC-20 `transfer`.
        function transfer(address to, uint256 amount) returns (bool);
        /// ERC-20 `transferFrom`.
        function transferFrom(address from, address to, uint256 amount) returns (bool);
        /// ERC-20 `approve`.
        function approve(address spender, uint256 amount) returns (bool);
    }
}

/// Selectors of the ERC-20 methods whose value movement is read: `transfer`
/// (`0xa9059cbb`), `transferFrom` (`0x23b872dd`), `approve` (`0x095ea7b3`).
/// A contract call with one of them did not decode exactly (see the module docs).
pub const ERC20_MOVEMENT_SELECTORS: [[u8; 4]; 3] = [
    erc20::transferCall::SELECTOR,
    erc20::transferFromCall::SELECTOR,
    erc20::approveCall::SELECTOR,
];

/// Reads an unsigned Ethereum transaction (see the module docs).
pub fn parse_transaction(bytes: &[u8]) -> Result<Parsed, PayloadError> {
    check_len(bytes)?;
    let (&first, body) = bytes.split_first().ok_or(PayloadError::EmptyTransaction)?;
    match first {
        0x02 => finish(decode_exact::<TxEip1559>(body)?, bytes),
        0x01 => finish(decode_exact::<TxEip2930>(body)?, bytes),
        0xc0..=0xff => finish(decode_exact::<TxLegacy>(bytes)?, bytes),
        0x80..=0xbf => Err(PayloadError::MalformedTransaction(
            "an RLP string where a transaction list or a type byte belongs".into(),
        )),
        ty => Err(PayloadError::UnsupportedTransactionType(ty)),
    }
}

/// Reads an EIP-191 personal message: the node adds the prefix itself.
pub fn parse_personal_message(message: &[u8]) -> Result<Parsed, PayloadError> {
    let prefix = format!("\x19Ethereum Signed Message:\n{}", message.len());
    let mut signed = Vec::with_capacity(prefix.len() + message.len());
    signed.extend_from_slice(prefix.as_bytes());
    signed.extend_from_slice(message);
    check_len(&signed)?;
    Ok(Parsed {
        chain: None,
        kind: PayloadKind::PersonalMessage,
        movements: Vec::new(),
        calls: Vec::new(),
        fee: None,
        parts: vec![SignPart::new(signed, Encoding::Keccak256)],
    })
}

fn rlp_error(e: alloy_rlp::Error, len: usize) -> PayloadError {
    match e {
        alloy_rlp::Error::InputTooShort => PayloadError::TruncatedTransaction { len },
        other => PayloadError::MalformedTransaction(other.to_string()),
    }
}

/// Decodes one RLP list that spans `rlp` exactly.
fn decode_exact<T: Decodable>(rlp: &[u8]) -> Result<T, PayloadError> {
    let mut rest = rlp;
    let header = Header::decode(&mut rest).map_err(|e| rlp_error(e, rlp.len()))?;
    if !header.list {
        return Err(PayloadError::MalformedTransaction(
            "the transaction is an RLP string, not a list".into(),
        ));
    }
    let header_len = rlp.len() - rest.len();
    let total = header_len
        .checked_add(header.payload_length)
        .ok_or(PayloadError::TruncatedTransaction { len: rlp.len() })?;
    if total > rlp.len() {
        return Err(PayloadError::TruncatedTransaction { len: rlp.len() });
    }
    if total < rlp.len() {
        return Err(PayloadError::TrailingBytes(rlp.len() - total));
    }
    let mut buf = rlp;
    let tx = T::decode(&mut buf).map_err(|e| rlp_error(e, rlp.len()))?;
    if !buf.is_empty() {
        return Err(PayloadError::TrailingBytes(buf.len()));
    }
    Ok(tx)
}

fn finish<T>(tx: T, bytes: &[u8]) -> Result<Parsed, PayloadError>
where
    T: SignableTransaction<Signature> + Transaction,
{
    // Exactly what alloy signs for this transaction, byte for byte.
    if tx.encoded_for_signing() != bytes {
        return Err(PayloadError::NonCanonicalTransaction);
    }
    let chain_id = tx.chain_id().ok_or(PayloadError::PreEip155)?;
    if chain_id == 0 {
        return Err(PayloadError::ZeroChainId);
    }
    let to = match tx.kind() {
        TxKind::Call(to) => to,
        TxKind::Create => return Err(PayloadError::ContractCreation),
    };
    let chain = evm_chain(chain_id);
    let to = evm_address(&to);
    let value = Amount::new(tx.value());
    let data = tx.input();
    let native = |destination: &str| Movement {
        asset: native_asset(&chain),
        amount: value,
        destination: destination.to_owned(),
    };

    let (kind, movements, calls) = if data.is_empty() {
        (PayloadKind::NativeTransfer, vec![native(&to)], Vec::new())
    } else {
        let selector: [u8; 4] = data
            .get(..4)
            .and_then(|s| <[u8; 4]>::try_from(s).ok())
            .ok_or(PayloadError::ShortCalldata(data.len()))?;
        let mut movements = Vec::new();
        let kind = match read_erc20(data) {
            Some((kind, amount, destination)) => {
                movements.push(Movement {
                    asset: token_asset(&chain, &to),
                    amount,
                    destination,
                });
                kind
            }
            None => PayloadKind::ContractCall,
        };
        if !value.is_zero() {
            movements.push(native(&to));
        }
        let call = Call {
            contract: to,
            selector: Some(selector),
        };
        (kind, movements, vec![call])
    };
    Ok(Parsed {
        chain: Some(chain),
        kind,
        movements,
        calls,
        fee: None,
        parts: vec![SignPart::new(bytes.to_vec(), Encoding::Keccak256)],
    })
}

/// The call as `C`, if `data` is exactly its canonical ABI encoding.
fn decode_strict<C: SolCall>(data: &[u8]) -> Option<C> {
    let call = C::abi_decode_with_config(data, AbiDecoderConfig::new().strict(true)).ok()?;
    (call.abi_encode() == data).then_some(call)
}

/// An exact ERC-20 transfer or approval: its kind, amount and recipient or spender.
fn read_erc20(data: &[u8]) -> Option<(PayloadKind, Amount, String)> {
    let selector = data.get(..4)?;
    if selector == erc20::transferCall::SELECTOR {
        let call = decode_strict::<erc20::transferCall>(data)?;
        Some((
            PayloadKind::TokenTransfer,
            Amount::new(call.amount),
            evm_address(&call.to),
        ))
    } else if selector == erc20::transferFromCall::SELECTOR {
        let call = decode_strict::<erc20::transferFromCall>(data)?;
        Some((
            PayloadKind::TokenTransfer,
            Amount::new(call.amount),
            evm_address(&call.to),
        ))
    } else if selector == erc20::approveCall::SELECTOR {
        let call = decode_strict::<erc20::approveCall>(data)?;
        Some((
            PayloadKind::TokenApproval,
            Amount::new(call.amount),
            evm_address(&call.spender),
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use alloy_consensus::TxEip1559;
    use alloy_primitives::{Address, Bytes, U256, address, eip191_hash_message, keccak256};
    use sigil_protocol::Scheme;
    use sigil_protocol::engine::SignInput;

    use super::*;
    use crate::payload::parse_for as parse;
    use sigil_proto::v1 as pb;

    const USDC: Address = address!("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
    const ALICE: Address = address!("1111111111111111111111111111111111111111");
    const BOB: Address = address!("2222222222222222222222222222222222222222");

    fn eth(n: u64) -> U256 {
        U256::from(n) * U256::from(1_000_000_000_000_000_000u64)
    }

    fn eip1559(to: TxKind, value: U256, input: Vec<u8>) -> TxEip1559 {
        TxEip1559 {
            chain_id: 1,
            nonce: 42,
            gas_limit: 21_000,
            max_fee_per_gas: 40_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to,
            value,
            access_list: Default::default(),
            input: Bytes::from(input),
        }
    }

    fn parse_tx(bytes: &[u8]) -> Result<Parsed, PayloadError> {
        parse(
            Scheme::EcdsaSecp256k1,
            &pb::Payload {
                kind: Some(pb::payload::Kind::EthereumTransaction(bytes.to_vec())),
            },
        )
    }

    fn the_engine_accepts(parsed: &Parsed) {
        let input = SignInput::new(
            Scheme::EcdsaSecp256k1,
            &parsed.parts[0].message,
            parsed.parts[0].encoding,
            "m/0/1",
        );
        assert!(input.is_ok(), "{input:?}");
    }

    fn transfer_data(to: Address, amount: U256) -> Vec<u8> {
        erc20::transferCall { to, amount }.abi_encode()
    }

    /// The EIP-155 example: nonce 9, gas price 20 gwei, gas 21000, to
    /// 0x3535…35, 1 ether, chain id 1.
    const EIP155_SIGNING_DATA: &str = "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080";
    const EIP155_SIGNING_HASH: &str =
        "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53";

    #[test]
    fn the_eip155_example_transaction_is_a_native_transfer_signed_under_its_spec_hash() {
        let bytes = hex::decode(EIP155_SIGNING_DATA).expect("hex");
        let parsed = parse_tx(&bytes).expect("the EIP-155 example parses");
        assert_eq!(parsed.chain.as_deref(), Some("evm:1"));
        assert_eq!(parsed.kind, PayloadKind::NativeTransfer);
        assert_eq!(
            parsed.movements,
            vec![Movement {
                asset: "evm:1/native".into(),
                amount: Amount::new(eth(1)),
                destination: "0x3535353535353535353535353535353535353535".into(),
            }]
        );
        assert_eq!(parsed.parts[0].encoding, Encoding::Keccak256);
        assert_eq!(parsed.parts[0].message, bytes);
        assert_eq!(
            hex::encode(keccak256(&parsed.parts[0].message)),
            EIP155_SIGNING_HASH
        );
        match SignInput::new(
            Scheme::EcdsaSecp256k1,
            &parsed.parts[0].message,
            parsed.parts[0].encoding,
            "",
        ) {
            Ok(SignInput::Digest { digest, .. }) => {
                assert_eq!(hex::encode(digest), EIP155_SIGNING_HASH)
            }
            other => panic!("engine input {other:?}"),
        }
    }

    #[test]
    fn an_eip1559_eth_transfer_is_signed_under_alloys_signature_hash() {
        let tx = eip1559(TxKind::Call(BOB), eth(2), Vec::new());
        let bytes = tx.encoded_for_signing();
        assert_eq!(bytes.first(), Some(&0x02));
        let parsed = parse_tx(&bytes).expect("parses");
        assert_eq!(parsed.kind, PayloadKind::NativeTransfer);
        assert_eq!(parsed.chain.as_deref(), Some("evm:1"));
        assert!(parsed.calls.is_empty());
        assert!(parsed.calls.is_empty());
        assert_eq!(
            parsed.movements,
            vec![Movement {
                asset: "evm:1/native".into(),
                amount: Amount::new(eth(2)),
                destination: "0x2222222222222222222222222222222222222222".into(),
            }]
        );
        assert_eq!(keccak256(&parsed.parts[0].message), tx.signature_hash());
        the_engine_accepts(&parsed);
        assert_eq!(
            parsed.summary(),
            "evm:1 native transfer of 2000000000000000000 evm:1/native to 0x2222222222222222222222222222222222222222"
        );
    }

    #[test]
    fn an_eip2930_transaction_on_another_chain_parses_with_that_chain() {
        let tx = TxEip2930 {
            chain_id: 8453,
            nonce: 1,
            gas_price: 1_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(ALICE),
            value: U256::from(5u64),
            access_list: Default::default(),
            input: Bytes::new(),
        };
        let bytes = tx.encoded_for_signing();
        let parsed = parse_tx(&bytes).expect("parses");
        assert_eq!(parsed.chain.as_deref(), Some("evm:8453"));
        assert_eq!(
            parsed.movements.first().map(|m| m.asset.as_str()),
            Some("evm:8453/native")
        );
        assert_eq!(keccak256(&parsed.parts[0].message), tx.signature_hash());
    }

    #[test]
    fn an_erc20_transfer_moves_the_token_to_the_recipient() {
        let amount = U256::from(2_500_000u64);
        let tx = eip1559(TxKind::Call(USDC), U256::ZERO, transfer_data(ALICE, amount));
        let bytes = tx.encoded_for_signing();
        let parsed = parse_tx(&bytes).expect("parses");
        assert_eq!(parsed.kind, PayloadKind::TokenTransfer);
        assert_eq!(
            parsed.calls.first().map(|c| c.contract.as_str()),
            Some("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
        );
        assert_eq!(parsed.calls[0].selector, Some([0xa9, 0x05, 0x9c, 0xbb]));
        assert_eq!(
            parsed.movements,
            vec![Movement {
                asset: "evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48".into(),
                amount: Amount::new(amount),
                destination: "0x1111111111111111111111111111111111111111".into(),
            }]
        );
        assert_eq!(keccak256(&parsed.parts[0].message), tx.signature_hash());
        the_engine_accepts(&parsed);
        assert_eq!(
            parsed.summary(),
            "evm:1 ERC-20 transfer of 2500000 evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48 to 0x1111111111111111111111111111111111111111"
        );
    }

    #[test]
    fn a_real_mainnet_usdc_transfer_calldata_decodes_as_erc20() {
        // transfer(0x28c6c06298d514db089934071355e5743bf21d60, 1000000000) to USDC.
        let data = hex::decode(concat!(
            "a9059cbb",
            "00000000000000000000000028c6c06298d514db089934071355e5743bf21d60",
            "000000000000000000000000000000000000000000000000000000003b9aca00"
        ))
        .expect("hex");
        let tx = eip1559(TxKind::Call(USDC), U256::ZERO, data);
        let parsed = parse_tx(&tx.encoded_for_signing()).expect("parses");
        assert_eq!(parsed.kind, PayloadKind::TokenTransfer);
        assert_eq!(
            parsed
                .movements
                .first()
                .map(|m| (m.amount, m.destination.as_str())),
            Some((
                Amount::from(1_000_000_000u64),
                "0x28c6c06298d514db089934071355e5743bf21d60"
            ))
        );
    }

    #[test]
    fn transfer_from_moves_the_token_to_its_recipient_and_approve_to_the_spender() {
        let from = erc20::transferFromCall {
            from: ALICE,
            to: BOB,
            amount: U256::from(7u64),
        }
        .abi_encode();
        let parsed = parse_tx(&eip1559(TxKind::Call(USDC), U256::ZERO, from).encoded_for_signing())
            .expect("parses");
        assert_eq!(parsed.kind, PayloadKind::TokenTransfer);
        assert_eq!(
            parsed.movements.first().map(|m| m.destination.as_str()),
            Some("0x2222222222222222222222222222222222222222")
        );

        let approve = erc20::approveCall {
            spender: BOB,
            amount: U256::MAX,
        }
        .abi_encode();
        let parsed =
            parse_tx(&eip1559(TxKind::Call(USDC), U256::ZERO, approve).encoded_for_signing())
                .expect("parses");
        assert_eq!(parsed.kind, PayloadKind::TokenApproval);
        assert_eq!(parsed.calls[0].selector, Some([0x09, 0x5e, 0xa7, 0xb3]));
        assert_eq!(
            parsed.movements,
            vec![Movement {
                asset: "evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48".into(),
                amount: Amount::new(U256::MAX),
                destination: "0x2222222222222222222222222222222222222222".into(),
            }]
        );
        assert!(parsed.summary().contains("ERC-20 approval of"));
    }

    #[test]
    fn any_other_calldata_is_a_contract_call_and_its_value_a_movement_to_the_contract() {
        // WETH deposit(): selector 0xd0e30db0, no arguments, 1 ETH attached.
        let tx = eip1559(TxKind::Call(BOB), eth(1), vec![0xd0, 0xe3, 0x0d, 0xb0]);
        let parsed = parse_tx(&tx.encoded_for_signing()).expect("parses");
        assert_eq!(parsed.kind, PayloadKind::ContractCall);
        assert_eq!(parsed.calls[0].selector, Some([0xd0, 0xe3, 0x0d, 0xb0]));
        assert_eq!(
            parsed.calls.first().map(|c| c.contract.as_str()),
            Some("0x2222222222222222222222222222222222222222")
        );
        assert_eq!(
            parsed.movements,
            vec![Movement {
                asset: "evm:1/native".into(),
                amount: Amount::new(eth(1)),
                destination: "0x2222222222222222222222222222222222222222".into(),
            }]
        );
        the_engine_accepts(&parsed);
        assert!(
            parsed
                .summary()
                .starts_with("evm:1 call of method 0xd0e30db0 on 0x2222")
        );

        let no_value = eip1559(TxKind::Call(BOB), U256::ZERO, vec![0xd0, 0xe3, 0x0d, 0xb0]);
        let parsed = parse_tx(&no_value.encoded_for_signing()).expect("parses");
        assert_eq!(parsed.kind, PayloadKind::ContractCall);
        assert!(parsed.movements.is_empty());
    }

    #[test]
    fn an_erc20_transfer_carrying_ether_moves_both() {
        let tx = eip1559(
            TxKind::Call(USDC),
            U256::from(3u64),
            transfer_data(ALICE, U256::from(9u64)),
        );
        let parsed = parse_tx(&tx.encoded_for_signing()).expect("parses");
        assert_eq!(parsed.kind, PayloadKind::TokenTransfer);
        let assets: Vec<_> = parsed.movements.iter().map(|m| m.asset.as_str()).collect();
        assert_eq!(
            assets,
            [
                "evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48",
                "evm:1/native"
            ]
        );
    }

    #[test]
    fn malformed_erc20_arguments_are_read_as_a_plain_contract_call() {
        let good = transfer_data(ALICE, U256::from(1u64));
        let mut trailing = good.clone();
        trailing.push(0);
        let truncated = good.get(..good.len() - 1).expect("shorter").to_vec();
        let mut dirty_address = good.clone();
        if let Some(b) = dirty_address.get_mut(4) {
            *b = 0xff; // high bytes of the address word must be zero
        }
        let selector_only = good.get(..4).expect("selector").to_vec();
        for data in [trailing, truncated, dirty_address, selector_only] {
            let tx = eip1559(TxKind::Call(USDC), U256::ZERO, data.clone());
            let parsed = parse_tx(&tx.encoded_for_signing()).expect("parses");
            assert_eq!(
                parsed.kind,
                PayloadKind::ContractCall,
                "{}",
                hex::encode(&data)
            );
            assert_eq!(
                parsed.calls[0].selector,
                Some(erc20::transferCall::SELECTOR)
            );
            assert!(parsed.movements.is_empty());
        }
    }

    #[test]
    fn calldata_shorter_than_a_selector_is_refused() {
        let tx = eip1559(TxKind::Call(USDC), U256::ZERO, vec![0xa9, 0x05, 0x9c]);
        assert_eq!(
            parse_tx(&tx.encoded_for_signing()),
            Err(PayloadError::ShortCalldata(3))
        );
    }

    #[test]
    fn contract_creation_is_refused() {
        let tx = eip1559(TxKind::Create, U256::ZERO, vec![0x60, 0x80, 0x60, 0x40]);
        assert_eq!(
            parse_tx(&tx.encoded_for_signing()),
            Err(PayloadError::ContractCreation)
        );
    }

    #[test]
    fn a_truncated_transaction_is_refused() {
        let bytes = eip1559(TxKind::Call(BOB), eth(1), Vec::new()).encoded_for_signing();
        for cut in [bytes.len() - 1, bytes.len() / 2, 2] {
            let short = bytes.get(..cut).expect("prefix");
            assert!(
                matches!(
                    parse_tx(short),
                    Err(PayloadError::TruncatedTransaction { .. })
                ),
                "cut at {cut}: {:?}",
                parse_tx(short)
            );
        }
        assert_eq!(
            parse_tx(&[0x02]),
            Err(PayloadError::TruncatedTransaction { len: 0 })
        );
        assert_eq!(parse_tx(&[]), Err(PayloadError::EmptyTransaction));
    }

    #[test]
    fn trailing_bytes_are_refused_and_counted() {
        let mut bytes = eip1559(TxKind::Call(BOB), eth(1), Vec::new()).encoded_for_signing();
        bytes.extend_from_slice(&[0, 0, 0]);
        let err = parse_tx(&bytes);
        assert_eq!(err, Err(PayloadError::TrailingBytes(3)));
        assert_eq!(
            err.expect_err("refused").to_string(),
            "the unsigned transaction has 3 trailing bytes"
        );
        let mut legacy = hex::decode(EIP155_SIGNING_DATA).expect("hex");
        legacy.push(0x80);
        assert_eq!(parse_tx(&legacy), Err(PayloadError::TrailingBytes(1)));
    }

    #[test]
    fn a_non_canonical_encoding_is_refused() {
        // The EIP-155 example with the nonce written as a one-byte string
        // (0x81 0x09) instead of the byte itself.
        let bytes = hex::decode(
            "ed81098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080",
        )
        .expect("hex");
        assert!(matches!(
            parse_tx(&bytes),
            Err(PayloadError::MalformedTransaction(_) | PayloadError::NonCanonicalTransaction)
        ));
        // A legacy transaction carrying r and s (a signed one) is not what is signed.
        let signed = hex::decode(
            "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080010101",
        )
        .expect("hex");
        assert_eq!(
            parse_tx(&signed),
            Err(PayloadError::NonCanonicalTransaction)
        );
    }

    #[test]
    fn a_pre_eip155_legacy_transaction_is_refused_as_replayable() {
        let tx = TxLegacy {
            chain_id: None,
            nonce: 9,
            gas_price: 20_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(ALICE),
            value: eth(1),
            input: Bytes::new(),
        };
        assert_eq!(
            parse_tx(&tx.encoded_for_signing()),
            Err(PayloadError::PreEip155)
        );
        let zero = TxLegacy {
            chain_id: Some(0),
            ..tx
        };
        assert_eq!(
            parse_tx(&zero.encoded_for_signing()),
            Err(PayloadError::ZeroChainId)
        );
    }

    #[test]
    fn blob_and_set_code_transactions_are_not_supported() {
        assert_eq!(
            parse_tx(&[0x03, 0xc0]),
            Err(PayloadError::UnsupportedTransactionType(3))
        );
        assert_eq!(
            parse_tx(&[0x04, 0xc0]),
            Err(PayloadError::UnsupportedTransactionType(4))
        );
        assert!(matches!(
            parse_tx(&[0x83, 1, 2, 3]),
            Err(PayloadError::MalformedTransaction(_))
        ));
    }

    #[test]
    fn an_eip191_message_is_prefixed_and_hashed_as_alloy_does() {
        let payload = pb::Payload {
            kind: Some(pb::payload::Kind::Eip191Message(b"Hello World".to_vec())),
        };
        let parsed = parse(Scheme::EcdsaSecp256k1, &payload).expect("parses");
        assert_eq!(parsed.kind, PayloadKind::PersonalMessage);
        assert_eq!(parsed.chain, None);
        assert!(parsed.movements.is_empty());
        assert_eq!(
            parsed.parts[0].message,
            b"\x19Ethereum Signed Message:\n11Hello World"
        );
        assert_eq!(parsed.parts[0].encoding, Encoding::Keccak256);
        assert_eq!(
            keccak256(&parsed.parts[0].message),
            eip191_hash_message(b"Hello World")
        );
        the_engine_accepts(&parsed);
    }
}
