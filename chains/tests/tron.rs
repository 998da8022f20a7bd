//! TRON transactions (`sigil_chains::tron`): real mainnet transactions
//! (`vectors/tron_mainnet.json`), everything the decoder refuses, and a
//! round trip signed with k256.

use k256::ecdsa::SigningKey;
use prost::Message as _;
use serde_json::{Value, json};
use sigil_chains::tron::proto::{self, transaction::contract::ContractType};
use sigil_chains::tron::{
    self, TronContract, TronError, check_expiration, check_owner, decode_raw_data, recover_address,
    signed_transaction, signing_hash, transaction_id, tron_signature, tron_signature_for_key,
};
use sigil_chains::{U256, ethereum_address_bytes};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test hex")
}

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/tron_mainnet.json")).expect("vector JSON")
}

/// A vector's raw_data, 65-byte signature and txID.
fn vector(name: &str) -> (Vec<u8>, [u8; 65], String, Value) {
    let v = vectors()[name].clone();
    let raw = unhex(v["raw_data_hex"].as_str().expect("raw_data_hex"));
    let signature: [u8; 65] = unhex(v["signature"].as_str().expect("signature"))
        .try_into()
        .expect("65-byte signature");
    let txid = v["txID"].as_str().expect("txID").to_owned();
    (raw, signature, txid, v)
}

/// The `T…` form of a vector's `41…` hex address.
fn base58(hex41: &str) -> String {
    let bytes = unhex(hex41);
    bs58::encode(bytes).with_check().into_string()
}

// --- Test keys and transactions built with TRON's prost types -------------

/// Account #0 of the Hardhat / Anvil development mnemonic: a publicly
/// known test key that never holds real funds.
const ANVIL0_SECRET: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn anvil0() -> SigningKey {
    SigningKey::from_slice(&unhex(ANVIL0_SECRET)).expect("valid secret")
}

fn public_key(key: &SigningKey) -> Vec<u8> {
    key.verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec()
}

fn account_of(key: &SigningKey) -> [u8; 20] {
    ethereum_address_bytes(&public_key(key)).expect("valid key")
}

fn address41(account: &[u8; 20]) -> Vec<u8> {
    tron::tron_address_hex_bytes(account).to_vec()
}

const USDT: &str = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c";
const RECIPIENT: [u8; 20] = [0x11; 20];
const EXPIRATION: i64 = 1_800_000_060_000;
const NOW: i64 = 1_800_000_000_000;

fn any(type_url: &str, value: Vec<u8>) -> prost_types::Any {
    prost_types::Any {
        type_url: type_url.to_owned(),
        value,
    }
}

fn contract(kind: ContractType, parameter: prost_types::Any) -> proto::transaction::Contract {
    proto::transaction::Contract {
        r#type: kind as i32,
        parameter: Some(parameter),
        ..Default::default()
    }
}

fn transfer_contract(owner: &[u8; 20], amount: i64) -> proto::transaction::Contract {
    let value = proto::TransferContract {
        owner_address: address41(owner),
        to_address: address41(&RECIPIENT),
        amount,
    };
    contract(
        ContractType::TransferContract,
        any(
            "type.googleapis.com/protocol.TransferContract",
            value.encode_to_vec(),
        ),
    )
}

fn trigger_contract(value: proto::TriggerSmartContract) -> proto::transaction::Contract {
    contract(
        ContractType::TriggerSmartContract,
        any(
            "type.googleapis.com/protocol.TriggerSmartContract",
            value.encode_to_vec(),
        ),
    )
}

/// TRC-20 `transfer(to, amount)` call data, canonically encoded.
fn trc20_transfer_data(to: &[u8; 20], amount: u64) -> Vec<u8> {
    let mut data = unhex("a9059cbb");
    data.extend_from_slice(&[0u8; 12]);
    data.extend_from_slice(to);
    data.extend_from_slice(&U256::from(amount).to_be_bytes::<32>());
    data
}

fn usdt_call(owner: &[u8; 20], data: Vec<u8>) -> proto::TriggerSmartContract {
    proto::TriggerSmartContract {
        owner_address: address41(owner),
        contract_address: unhex(USDT),
        data,
        ..Default::default()
    }
}

fn raw_with(contracts: Vec<proto::transaction::Contract>) -> proto::transaction::Raw {
    proto::transaction::Raw {
        ref_block_bytes: unhex("a1b2"),
        ref_block_hash: unhex("0102030405060708"),
        expiration: EXPIRATION,
        contract: contracts,
        timestamp: EXPIRATION - 60_000,
        fee_limit: 30_000_000,
        ..Default::default()
    }
}

fn encode(raw: &proto::transaction::Raw) -> Vec<u8> {
    raw.encode_to_vec()
}

fn trx_transfer_raw(owner: &[u8; 20], amount: i64) -> Vec<u8> {
    encode(&raw_with(vec![transfer_contract(owner, amount)]))
}

fn usdt_transfer_raw(owner: &[u8; 20], amount: u64) -> Vec<u8> {
    let call = usdt_call(owner, trc20_transfer_data(&RECIPIENT, amount));
    encode(&raw_with(vec![trigger_contract(call)]))
}

/// Signs `raw_data`'s hash with `key` the way a threshold signer ends up
/// doing: a bare `r ‖ s` and its recovery id.
fn sign(key: &SigningKey, raw_data: &[u8]) -> ([u8; 64], u8) {
    let (signature, id) = key
        .sign_prehash_recoverable(&signing_hash(raw_data))
        .expect("signing");
    (signature.to_bytes().into(), id.to_byte())
}

// --- Real mainnet transactions --------------------------------------------

#[test]
fn a_real_mainnet_trx_transfer_decodes_hashes_to_its_txid_and_recovers_to_its_owner() {
    let (raw, signature, txid, v) = vector("trx_transfer");
    assert_eq!(transaction_id(&raw), txid);
    assert_eq!(hex::encode(signing_hash(&raw)), txid);
    let tx = decode_raw_data(&raw).expect("decodes");
    let owner = base58(v["owner_address"].as_str().expect("owner"));
    match &tx.contract {
        TronContract::Transfer {
            owner: o,
            to,
            amount,
        } => {
            assert_eq!(o.to_base58(), owner);
            assert_eq!(o.to_hex(), v["owner_address"].as_str().expect("owner"));
            assert_eq!(to.to_hex(), v["to_address"].as_str().expect("to"));
            assert_eq!(Some(*amount), v["amount"].as_i64());
        }
        other => panic!("not a TRX transfer: {other:?}"),
    }
    assert_eq!(hex::encode(tx.ref_block_bytes), v["ref_block_bytes"]);
    assert_eq!(hex::encode(tx.ref_block_hash), v["ref_block_hash"]);
    assert_eq!(Some(tx.expiration), v["expiration"].as_i64());
    assert_eq!(Some(tx.timestamp), v["timestamp"].as_i64());
    assert_eq!(tx.fee_limit, 0);
    assert!(tx.memo.is_empty());
    assert_eq!(tx.permission_id, 0);
    // Its signature (v = 0, as java-tron writes it) recovers to the owner.
    assert_eq!(signature[64], 0);
    assert_eq!(recover_address(&raw, &signature).expect("recovers"), owner);
    // The owner's key is the one that signs it; any other key is refused.
    let account = tx.owner().account();
    check_owner(&tx, &account).expect("the owner's key");
    check_expiration(&tx, 1_717_419_788_444).expect("not expired when it was built");
}

#[test]
fn a_real_trx_transfer_keeps_its_memo() {
    let (raw, signature, txid, v) = vector("trx_transfer_with_memo");
    assert_eq!(transaction_id(&raw), txid);
    let tx = decode_raw_data(&raw).expect("decodes");
    assert_eq!(hex::encode(&tx.memo), v["memo"]);
    assert_eq!(tx.memo, b"qq:84075041");
    assert!(matches!(
        tx.contract,
        TronContract::Transfer { amount: 10_000, .. }
    ));
    let owner = base58(v["owner_address"].as_str().expect("owner"));
    assert_eq!(recover_address(&raw, &signature).expect("recovers"), owner);
    // The broadcast JSON carries the memo in raw_data.data (this mainnet
    // signature is high-S: Sigil writes its low-S twin).
    let mut signature64 = [0u8; 64];
    signature64.copy_from_slice(&signature[..64]);
    let low = tron_signature(&signature64, signature[64] % 27).expect("normalized");
    assert_ne!(low[32..64], signature[32..64]);
    assert_eq!(recover_address(&raw, &low).expect("recovers"), owner);
    let signed = signed_transaction(&raw, &low).expect("signs");
    let json: Value = serde_json::from_str(&signed.json).expect("JSON");
    assert_eq!(json["raw_data"]["data"], v["memo"]);
}

#[test]
fn a_real_usdt_transfer_decodes_as_a_trc20_transfer_and_recovers_to_its_owner() {
    let (raw, signature, txid, v) = vector("usdt_transfer");
    assert_eq!(transaction_id(&raw), txid);
    let tx = decode_raw_data(&raw).expect("decodes");
    match &tx.contract {
        TronContract::Trc20Transfer {
            owner,
            token,
            recipient,
            amount,
        } => {
            assert_eq!(owner.to_hex(), v["owner_address"].as_str().expect("owner"));
            assert_eq!(token.to_base58(), "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t");
            assert_eq!(recipient.to_hex(), v["recipient"].as_str().expect("to"));
            // 0x465000 = 4 608 000 base units = 4.608 USDT.
            assert_eq!(*amount, U256::from(4_608_000u64));
        }
        other => panic!("not a TRC-20 transfer: {other:?}"),
    }
    assert_eq!(Some(tx.fee_limit), v["fee_limit"].as_i64());
    assert_eq!(Some(tx.expiration), v["expiration"].as_i64());
    assert_eq!(Some(tx.timestamp), v["timestamp"].as_i64());
    let owner = base58(v["owner_address"].as_str().expect("owner"));
    assert_eq!(recover_address(&raw, &signature).expect("recovers"), owner);
}

#[test]
fn a_real_trc20_transfer_with_a_prefixed_address_word_is_only_a_contract_call() {
    // Some tools write the recipient word as 11 zero bytes, 0x41 and the
    // account. That is not the canonical ABI encoding, so its amount is not
    // read: it is a call of a9059cbb like any other (which policies refuse).
    let (raw, signature, txid, v) = vector("trc20_transfer_with_prefixed_address_word");
    assert_eq!(transaction_id(&raw), txid);
    let tx = decode_raw_data(&raw).expect("decodes");
    match &tx.contract {
        TronContract::ContractCall {
            contract,
            selector,
            call_value,
            data,
            ..
        } => {
            assert_eq!(
                contract.to_hex(),
                v["contract_address"].as_str().expect("contract")
            );
            assert_eq!(*selector, tron::TRC20_TRANSFER_SELECTOR);
            assert_eq!(*call_value, 0);
            assert_eq!(data.len(), 68);
        }
        other => panic!("not a contract call: {other:?}"),
    }
    let owner = base58(v["owner_address"].as_str().expect("owner"));
    assert_eq!(recover_address(&raw, &signature).expect("recovers"), owner);
}

#[test]
fn a_real_transaction_signed_again_gives_the_broadcast_json_trongrid_shows() {
    // This mainnet signature is high-S (valid on TRON, never written by
    // Sigil): signed_transaction refuses it as it is, and takes its low-S
    // twin, which TronGrid's JSON shows with the twin's signature.
    let (raw, signature, txid, v) = vector("usdt_transfer");
    assert!(matches!(
        signed_transaction(&raw, &signature),
        Err(TronError::InvalidSignature(_))
    ));
    let mut signature64 = [0u8; 64];
    signature64.copy_from_slice(&signature[..64]);
    let signature = tron_signature(&signature64, signature[64] % 27).expect("normalized");
    let signed = signed_transaction(&raw, &signature).expect("signs");
    assert_eq!(signed.txid, txid);
    let json: Value = serde_json::from_str(&signed.json).expect("JSON");
    let expected = json!({
        "visible": false,
        "txID": txid,
        "raw_data": {
            "contract": [{
                "parameter": {
                    "value": {
                        "data": "a9059cbb000000000000000000000000a33564d0de15b3c7c4d6c50ab72b32c59ef5bd940000000000000000000000000000000000000000000000000000000000465000",
                        "owner_address": v["owner_address"],
                        "contract_address": v["contract_address"],
                    },
                    "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
                },
                "type": "TriggerSmartContract",
            }],
            "ref_block_bytes": v["ref_block_bytes"],
            "ref_block_hash": v["ref_block_hash"],
            "expiration": v["expiration"],
            "fee_limit": v["fee_limit"],
            "timestamp": v["timestamp"],
        },
        "raw_data_hex": v["raw_data_hex"],
        "signature": [hex::encode(signature)],
    });
    assert_eq!(json, expected);

    // The protobuf Transaction holds the raw_data bytes and the signature.
    let decoded = proto::Transaction::decode(signed.raw.as_slice()).expect("protobuf");
    assert_eq!(decoded.signature, vec![signature.to_vec()]);
    assert_eq!(
        decoded.raw_data.expect("raw_data").encode_to_vec(),
        raw,
        "the signed transaction holds raw_data byte for byte"
    );

    // A TRX transfer's value has owner_address, to_address and amount.
    let (raw, signature, _, v) = vector("trx_transfer");
    let json: Value =
        serde_json::from_str(&signed_transaction(&raw, &signature).expect("signs").json)
            .expect("JSON");
    assert_eq!(
        json["raw_data"]["contract"][0],
        json!({
            "parameter": {
                "value": {
                    "amount": 5,
                    "owner_address": v["owner_address"],
                    "to_address": v["to_address"],
                },
                "type_url": "type.googleapis.com/protocol.TransferContract",
            },
            "type": "TransferContract",
        })
    );
    assert!(json["raw_data"].get("fee_limit").is_none());
}

// --- What is refused --------------------------------------------------------

#[test]
fn empty_and_non_protobuf_raw_data_are_refused() {
    assert_eq!(decode_raw_data(&[]), Err(TronError::Empty));
    for garbage in [&b"\xff\xff\xff"[..], b"hello, world", &[0x0a, 0x05, 0x01]] {
        assert!(
            matches!(
                decode_raw_data(garbage),
                Err(TronError::Malformed { .. } | TronError::NonCanonical(_))
            ),
            "{garbage:?}"
        );
    }
}

#[test]
fn truncated_raw_data_is_refused_unless_it_ends_between_fields() {
    // Cut between two fields, protobuf is another, shorter message: here
    // the transaction without its fee_limit (198 + 7 bytes) or without its
    // timestamp and fee_limit (198 bytes), whose txIDs differ. Every other
    // cut is refused.
    let (raw, ..) = vector("usdt_transfer");
    assert_eq!(raw.len(), 211);
    let decodes: Vec<usize> = (0..raw.len())
        .filter(|&len| decode_raw_data(&raw[..len]).is_ok())
        .collect();
    assert_eq!(decodes, [198, 205]);
    let shorter = decode_raw_data(&raw[..205]).expect("decodes");
    assert_eq!(shorter.fee_limit, 0);
    assert_ne!(transaction_id(&raw[..205]), transaction_id(&raw));
}

#[test]
fn trailing_bytes_and_unknown_fields_are_refused_as_non_canonical() {
    let (raw, ..) = vector("trx_transfer");
    // A trailing varint field 99 (tag 0x98 0x06): valid protobuf, unknown.
    let mut unknown = raw.clone();
    unknown.extend_from_slice(&[0x98, 0x06, 0x01]);
    assert_eq!(
        decode_raw_data(&unknown),
        Err(TronError::NonCanonical("raw_data"))
    );
    // The expiration written a second time: prost keeps the last one.
    let mut repeated = raw.clone();
    repeated.extend_from_slice(&[0x40, 0x01]);
    assert_eq!(
        decode_raw_data(&repeated),
        Err(TronError::NonCanonical("raw_data"))
    );
    // A trailing zero byte (field number 0) does not decode at all.
    let mut zero = raw.clone();
    zero.push(0);
    assert!(decode_raw_data(&zero).is_err());
    // A non-minimal varint (ref_block_bytes length 2 written as 0x82 0x00).
    let mut long = vec![0x0a, 0x82, 0x00];
    long.extend_from_slice(&raw[2..]);
    assert_eq!(
        decode_raw_data(&long),
        Err(TronError::NonCanonical("raw_data"))
    );
    // An unknown field inside the contract parameter is refused too.
    let key = anvil0();
    let mut value = proto::TransferContract {
        owner_address: address41(&account_of(&key)),
        to_address: address41(&RECIPIENT),
        amount: 1,
    }
    .encode_to_vec();
    value.extend_from_slice(&[0x20, 0x07]);
    let raw = encode(&raw_with(vec![contract(
        ContractType::TransferContract,
        any("type.googleapis.com/protocol.TransferContract", value),
    )]));
    assert_eq!(
        decode_raw_data(&raw),
        Err(TronError::NonCanonical("the TransferContract parameter"))
    );
}

#[test]
fn a_parameter_whose_type_url_does_not_match_the_contract_type_is_refused() {
    let owner = account_of(&anvil0());
    let mut c = transfer_contract(&owner, 1);
    if let Some(p) = c.parameter.as_mut() {
        p.type_url = "type.googleapis.com/protocol.TriggerSmartContract".into();
    }
    let err = decode_raw_data(&encode(&raw_with(vec![c]))).expect_err("refused");
    assert_eq!(
        err,
        TronError::TypeUrlMismatch {
            contract: "TransferContract",
            expected: "type.googleapis.com/protocol.TransferContract",
            got: "type.googleapis.com/protocol.TriggerSmartContract".into(),
        }
    );
    // Without its parameter at all.
    let mut c = transfer_contract(&owner, 1);
    c.parameter = None;
    assert_eq!(
        decode_raw_data(&encode(&raw_with(vec![c]))),
        Err(TronError::MissingParameter)
    );
}

#[test]
fn a_transaction_needs_exactly_one_contract() {
    let owner = account_of(&anvil0());
    let two = raw_with(vec![
        transfer_contract(&owner, 1),
        transfer_contract(&owner, 2),
    ]);
    assert_eq!(
        decode_raw_data(&encode(&two)),
        Err(TronError::ContractCount(2))
    );
    assert_eq!(
        decode_raw_data(&encode(&raw_with(vec![]))),
        Err(TronError::ContractCount(0))
    );
}

#[test]
fn contract_types_other_than_transfers_and_calls_are_refused() {
    // A real mainnet FreezeBalanceV2Contract (ledger-live's fixture, txID
    // 10a748b8…bc94).
    let freeze = unhex(
        "0a0280b9220863e75a2a561115d940a0da8791e3315a59083612550a34747970652e676f6f676c65617069732e636f6d2f70726f746f636f6c2e467265657a6542616c616e63655632436f6e7472616374121d0a154105cc125604448afeb6867eb688efb7e80411d57a10c0843d18017085978491e331",
    );
    assert_eq!(
        transaction_id(&freeze),
        "10a748b856b46356ed8d7ae96f2b540dd40870f073981689c2f758e3359bbc94"
    );
    assert_eq!(
        decode_raw_data(&freeze),
        Err(TronError::UnsupportedContract(
            "FreezeBalanceV2Contract".into()
        ))
    );
    // A type number TRON does not define.
    let owner = account_of(&anvil0());
    let mut c = transfer_contract(&owner, 1);
    c.r#type = 7;
    assert!(matches!(
        decode_raw_data(&encode(&raw_with(vec![c]))),
        Err(TronError::UnsupportedContract(_))
    ));
}

#[test]
fn addresses_must_be_21_bytes_behind_the_0x41_prefix() {
    let owner = account_of(&anvil0());
    let with = |owner_address: Vec<u8>| {
        let value = proto::TransferContract {
            owner_address,
            to_address: address41(&RECIPIENT),
            amount: 1,
        };
        encode(&raw_with(vec![contract(
            ContractType::TransferContract,
            any(
                "type.googleapis.com/protocol.TransferContract",
                value.encode_to_vec(),
            ),
        )]))
    };
    // The bare 20-byte account, an Ethereum-style address.
    assert!(matches!(
        decode_raw_data(&with(owner.to_vec())),
        Err(TronError::InvalidAddress {
            field: "owner_address",
            ..
        })
    ));
    // 21 bytes with another prefix (0xa0: the pre-mainnet testnet byte).
    let mut a0 = address41(&owner);
    a0[0] = 0xa0;
    assert!(matches!(
        decode_raw_data(&with(a0)),
        Err(TronError::InvalidAddress { .. })
    ));
    assert!(matches!(
        decode_raw_data(&with(Vec::new())),
        Err(TronError::InvalidAddress { .. })
    ));
    // A contract call's contract address too.
    let mut call = usdt_call(&owner, trc20_transfer_data(&RECIPIENT, 1));
    call.contract_address.truncate(20);
    assert!(matches!(
        decode_raw_data(&encode(&raw_with(vec![trigger_contract(call)]))),
        Err(TronError::InvalidAddress {
            field: "contract_address",
            ..
        })
    ));
}

#[test]
fn zero_and_negative_amounts_are_refused() {
    let owner = account_of(&anvil0());
    for amount in [0, -1, i64::MIN] {
        assert_eq!(
            decode_raw_data(&trx_transfer_raw(&owner, amount)),
            Err(TronError::NonPositiveAmount {
                field: "amount",
                value: amount,
            })
        );
    }
    assert_eq!(
        decode_raw_data(&usdt_transfer_raw(&owner, 0)),
        Err(TronError::ZeroTokenAmount)
    );
}

#[test]
fn a_trc20_transfer_that_also_moves_trx_or_trc10_tokens_is_refused() {
    let owner = account_of(&anvil0());
    let data = trc20_transfer_data(&RECIPIENT, 5);
    type Set = fn(&mut proto::TriggerSmartContract);
    let cases: [(&str, Set); 3] = [
        ("call_value", |c| c.call_value = 1),
        ("call_token_value", |c| c.call_token_value = 1),
        ("token_id", |c| c.token_id = 1_000_001),
    ];
    for (field, set) in cases {
        let mut call = usdt_call(&owner, data.clone());
        set(&mut call);
        assert_eq!(
            decode_raw_data(&encode(&raw_with(vec![trigger_contract(call)]))),
            Err(TronError::ValueBesidesToken(field)),
            "{field}"
        );
    }
}

#[test]
fn other_contract_calls_keep_their_selector_and_trx_value_but_not_trc10_value() {
    let owner = account_of(&anvil0());
    // approve(address,uint256): a call like any other here.
    let mut data = unhex("095ea7b3");
    data.extend_from_slice(&[0u8; 64]);
    let mut call = usdt_call(&owner, data.clone());
    call.call_value = 7;
    let tx = decode_raw_data(&encode(&raw_with(vec![trigger_contract(call)]))).expect("decodes");
    assert_eq!(
        tx.contract,
        TronContract::ContractCall {
            owner: tron::TronAddress::from_account(&owner),
            contract: tron::TronAddress::from_bytes(&unhex(USDT), "usdt").expect("valid"),
            selector: [0x09, 0x5e, 0xa7, 0xb3],
            call_value: 7,
            data: data.clone(),
        }
    );
    let mut call = usdt_call(&owner, data.clone());
    call.call_token_value = 1;
    assert_eq!(
        decode_raw_data(&encode(&raw_with(vec![trigger_contract(call)]))),
        Err(TronError::Trc10Value("call_token_value"))
    );
    let mut call = usdt_call(&owner, data);
    call.call_value = -1;
    assert!(matches!(
        decode_raw_data(&encode(&raw_with(vec![trigger_contract(call)]))),
        Err(TronError::Negative {
            field: "call_value",
            ..
        })
    ));
    // Call data shorter than a selector.
    for len in 0..4 {
        let call = usdt_call(&owner, vec![0xa9; len]);
        assert_eq!(
            decode_raw_data(&encode(&raw_with(vec![trigger_contract(call)]))),
            Err(TronError::ShortCallData(len))
        );
    }
}

#[test]
fn a_transfer_call_with_extra_or_dirty_words_is_only_a_contract_call() {
    let owner = account_of(&anvil0());
    let mut long = trc20_transfer_data(&RECIPIENT, 5);
    long.push(0);
    let mut dirty = trc20_transfer_data(&RECIPIENT, 5);
    dirty[4] = 0x01; // a padding byte of the address word
    for data in [long, dirty] {
        let call = usdt_call(&owner, data);
        let tx =
            decode_raw_data(&encode(&raw_with(vec![trigger_contract(call)]))).expect("decodes");
        assert!(
            matches!(tx.contract, TronContract::ContractCall { selector, .. } if selector == tron::TRC20_TRANSFER_SELECTOR)
        );
    }
}

#[test]
fn unused_fields_short_reference_blocks_and_negative_fee_limits_are_refused() {
    let owner = account_of(&anvil0());
    let mut raw = raw_with(vec![transfer_contract(&owner, 1)]);
    raw.scripts = vec![1];
    assert_eq!(
        decode_raw_data(&encode(&raw)),
        Err(TronError::UnusedField("raw_data.scripts"))
    );
    let mut raw = raw_with(vec![transfer_contract(&owner, 1)]);
    raw.auths = vec![proto::Authority::default()];
    assert_eq!(
        decode_raw_data(&encode(&raw)),
        Err(TronError::UnusedField("raw_data.auths"))
    );
    let mut c = transfer_contract(&owner, 1);
    c.provider = vec![1];
    assert_eq!(
        decode_raw_data(&encode(&raw_with(vec![c]))),
        Err(TronError::UnusedField("contract.provider"))
    );
    let mut c = transfer_contract(&owner, 1);
    c.contract_name = b"x".to_vec();
    assert_eq!(
        decode_raw_data(&encode(&raw_with(vec![c]))),
        Err(TronError::UnusedField("contract.ContractName"))
    );
    let mut raw = raw_with(vec![transfer_contract(&owner, 1)]);
    raw.ref_block_bytes = vec![1, 2, 3];
    assert!(matches!(
        decode_raw_data(&encode(&raw)),
        Err(TronError::FieldLength {
            field: "raw_data.ref_block_bytes",
            len: 3,
            expected: 2,
        })
    ));
    let mut raw = raw_with(vec![transfer_contract(&owner, 1)]);
    raw.ref_block_hash = vec![];
    assert!(matches!(
        decode_raw_data(&encode(&raw)),
        Err(TronError::FieldLength { .. })
    ));
    let mut raw = raw_with(vec![transfer_contract(&owner, 1)]);
    raw.fee_limit = -1;
    assert!(matches!(
        decode_raw_data(&encode(&raw)),
        Err(TronError::Negative {
            field: "raw_data.fee_limit",
            ..
        })
    ));
    // A permission other than the owner's is kept, so signers can see it.
    let mut c = transfer_contract(&owner, 1);
    c.permission_id = 2;
    let tx = decode_raw_data(&encode(&raw_with(vec![c]))).expect("decodes");
    assert_eq!(tx.permission_id, 2);
}

#[test]
fn a_transaction_whose_owner_is_not_the_key_is_refused_naming_both_addresses() {
    let key = anvil0();
    let raw = trx_transfer_raw(&account_of(&key), 1);
    let tx = decode_raw_data(&raw).expect("decodes");
    check_owner(&tx, &account_of(&key)).expect("the key's own transaction");
    let other = [0x22; 20];
    let err = check_owner(&tx, &other).expect_err("refused");
    let owner = tron::tron_address_from_account(&account_of(&key));
    let key_address = tron::tron_address_from_account(&other);
    assert_eq!(
        err,
        TronError::WrongOwner {
            owner: owner.clone(),
            key: key_address.clone(),
        }
    );
    let message = err.to_string();
    assert!(message.contains(&owner) && message.contains(&key_address));
    assert!(owner.starts_with('T') && key_address.starts_with('T'));
}

#[test]
fn an_expired_transaction_is_refused() {
    let raw = trx_transfer_raw(&account_of(&anvil0()), 1);
    let tx = decode_raw_data(&raw).expect("decodes");
    check_expiration(&tx, NOW).expect("a minute left");
    check_expiration(&tx, EXPIRATION - 1).expect("a millisecond left");
    assert_eq!(
        check_expiration(&tx, EXPIRATION),
        Err(TronError::Expired {
            expiration: EXPIRATION,
            now_ms: EXPIRATION,
        })
    );
    assert!(check_expiration(&tx, EXPIRATION + 1).is_err());
    // A real transaction from 2024 has long expired.
    let (raw, ..) = vector("trx_transfer");
    let tx = decode_raw_data(&raw).expect("decodes");
    assert!(matches!(
        check_expiration(&tx, NOW),
        Err(TronError::Expired { .. })
    ));
}

#[test]
fn single_byte_changes_never_panic() {
    let (raw, signature, ..) = vector("usdt_transfer");
    for i in 0..raw.len() {
        for bit in [0x01u8, 0x80] {
            let mut changed = raw.clone();
            changed[i] ^= bit;
            let _ = decode_raw_data(&changed);
            let _ = signed_transaction(&changed, &signature);
            let _ = recover_address(&changed, &signature);
        }
    }
}

// --- Signing ----------------------------------------------------------------

#[test]
fn a_trx_transfer_built_with_trons_types_round_trips_through_signing() {
    let key = anvil0();
    let owner = account_of(&key);
    let raw = trx_transfer_raw(&owner, 1_500_000);
    let tx = decode_raw_data(&raw).expect("decodes");
    check_owner(&tx, &owner).expect("owner");
    check_expiration(&tx, NOW).expect("valid");

    let (signature64, id) = sign(&key, &raw);
    let signature = tron_signature(&signature64, id).expect("signature");
    assert!(matches!(signature[64], 27 | 28), "v = 27 + recovery id");
    // The threshold path (no recovery id, found against the key) agrees.
    assert_eq!(
        tron_signature_for_key(&public_key(&key), &raw, &signature64).expect("verifies"),
        signature
    );

    let signed = signed_transaction(&raw, &signature).expect("signs");
    assert_eq!(signed.txid, hex::encode(signing_hash(&raw)));
    let owner_address = tron::tron_address_from_account(&owner);
    assert_eq!(
        recover_address(&raw, &signature).expect("recovers"),
        owner_address
    );
    let decoded = proto::Transaction::decode(signed.raw.as_slice()).expect("protobuf");
    assert_eq!(decoded.raw_data.expect("raw_data").encode_to_vec(), raw);
    assert_eq!(decoded.signature, vec![signature.to_vec()]);
    let json: Value = serde_json::from_str(&signed.json).expect("JSON");
    assert_eq!(json["visible"], false);
    assert_eq!(json["txID"], signed.txid);
    assert_eq!(json["raw_data_hex"], hex::encode(&raw));
    assert_eq!(json["signature"][0], hex::encode(signature));
    assert_eq!(
        json["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"],
        hex::encode(address41(&owner))
    );
    assert_eq!(json["raw_data"]["fee_limit"], 30_000_000);
    assert_eq!(json["raw_data"]["expiration"], EXPIRATION);
}

#[test]
fn a_usdt_transfer_built_with_trons_types_round_trips_through_signing() {
    let key = anvil0();
    let owner = account_of(&key);
    let raw = usdt_transfer_raw(&owner, 2_500_000);
    let tx = decode_raw_data(&raw).expect("decodes");
    assert_eq!(
        tx.contract,
        TronContract::Trc20Transfer {
            owner: tron::TronAddress::from_account(&owner),
            token: tron::TronAddress::from_bytes(&unhex(USDT), "usdt").expect("valid"),
            recipient: tron::TronAddress::from_account(&RECIPIENT),
            amount: U256::from(2_500_000u64),
        }
    );
    let (signature64, id) = sign(&key, &raw);
    let signature = tron_signature(&signature64, id).expect("signature");
    let signed = signed_transaction(&raw, &signature).expect("signs");
    assert_eq!(
        recover_address(&raw, &signature).expect("recovers"),
        tron::tron_address_from_account(&owner)
    );
    let json: Value = serde_json::from_str(&signed.json).expect("JSON");
    let value = &json["raw_data"]["contract"][0]["parameter"]["value"];
    assert_eq!(value["contract_address"], USDT);
    assert_eq!(
        value["data"],
        hex::encode(trc20_transfer_data(&RECIPIENT, 2_500_000))
    );
    assert!(value.get("call_value").is_none());
}

#[test]
fn a_high_s_signature_is_normalized_and_its_recovery_id_flipped() {
    let key = anvil0();
    let raw = trx_transfer_raw(&account_of(&key), 1);
    let (signature64, id) = sign(&key, &raw);
    // k256 signs low-S; its mirror image (n − s, other parity) also verifies.
    let signature = k256::ecdsa::Signature::from_slice(&signature64).expect("signature");
    let (r, s) = signature.split_scalars();
    let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes())
        .expect("high-S signature");
    assert!(high.normalize_s().is_some(), "really high-S");
    let high64: [u8; 64] = high.to_bytes().into();
    let normalized = tron_signature(&high64, id ^ 1).expect("normalized");
    assert_eq!(normalized, tron_signature(&signature64, id).expect("low-S"));
    assert_eq!(
        tron_signature_for_key(&public_key(&key), &raw, &high64).expect("verifies"),
        normalized
    );
    // A high-S signature is read as nodes read it, but never put into a
    // signed transaction.
    let mut high65 = [0u8; 65];
    high65[..64].copy_from_slice(&high64);
    high65[64] = 27 + (id ^ 1);
    assert_eq!(
        recover_address(&raw, &high65).expect("recovers"),
        tron::tron_address_from_account(&account_of(&key))
    );
    assert!(matches!(
        signed_transaction(&raw, &high65),
        Err(TronError::InvalidSignature(_))
    ));
}

#[test]
fn v_is_read_as_27_or_28_and_as_0_or_1_and_nothing_else() {
    let key = anvil0();
    let raw = trx_transfer_raw(&account_of(&key), 1);
    let (signature64, id) = sign(&key, &raw);
    let signature = tron_signature(&signature64, id).expect("signature");
    let address = tron::tron_address_from_account(&account_of(&key));
    let mut bare = signature;
    bare[64] -= 27;
    assert_eq!(recover_address(&raw, &bare).expect("0/1"), address);
    // signed_transaction keeps the signature as given.
    let json: Value =
        serde_json::from_str(&signed_transaction(&raw, &bare).expect("signs").json).expect("JSON");
    assert_eq!(json["signature"][0], hex::encode(bare));
    for v in [2u8, 26, 29, 35, 255] {
        let mut bad = signature;
        bad[64] = v;
        assert!(
            matches!(
                recover_address(&raw, &bad),
                Err(TronError::InvalidSignature(_))
            ),
            "v = {v}"
        );
    }
    assert!(tron_signature(&signature64, 2).is_err());
    assert!(tron_signature(&[0u8; 64], 0).is_err());
    assert!(tron_signature(&[0xff; 64], 0).is_err());
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let key = anvil0();
    let raw = trx_transfer_raw(&account_of(&key), 1);
    let other = SigningKey::from_slice(&[0x42; 32]).expect("valid secret");
    let (signature64, id) = sign(&other, &raw);
    let signature = tron_signature(&signature64, id).expect("signature");
    assert!(matches!(
        signed_transaction(&raw, &signature),
        Err(TronError::InvalidSignature(_))
    ));
    assert!(tron_signature_for_key(&public_key(&key), &raw, &signature64).is_err());
}
