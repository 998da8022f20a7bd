//! EIP-712 typed data (`sigil_chains::eip712`) against the EIP's own
//! example, a real mainnet USDC permit, Permit2's and DAI's on-chain domain
//! separators, alloy's static (`sol!`) encoding, end-to-end signing with
//! k256, and malformed or misnamed inputs.
//!
//! Vector sources:
//! - `vectors/eip712/mail.json`: EIP-712's `assets/eip-712/Example.js`
//!   (ethereum/EIPs), with its expected `hashStruct`s, signing hash and the
//!   signature by `keccak256("cow")`.
//! - `vectors/eip712/usdc_permit_mainnet.json`: the USDC permit in mainnet
//!   transaction `0x9050798d7989583632defa0c26e42d9fdfc30a66aa016fea849af303d7eda969`
//!   (owner, spender, value, deadline and `(r, s, v)` from its calldata); the
//!   domain separator is USDC's on-chain `DOMAIN_SEPARATOR()`.
//! - `vectors/eip712/permit2_permit_single.json`: a Permit2 `PermitSingle`
//!   whose struct hash was published as captured from MetaMask's
//!   `eth-sig-util`; Permit2's mainnet domain separator is the one its
//!   deployed bytecode returns on chain id 1.

use alloy_primitives::{Address, B256, U256, address, b256, keccak256};
use alloy_sol_types::{Eip712Domain, SolStruct, eip712_domain, sol};
use k256::ecdsa::SigningKey;
use serde_json::{Value, json};
use sigil_chains::RecoverableSignature;
use sigil_chains::eip712::{
    Allowance, ApprovalStandard, Eip712Error, MAX_TYPED_DATA_LEN, PERMIT2_ADDRESS, TypedDataKind,
    TypedMessage, parse_typed_data,
};
use sigil_chains::ethereum::ethereum_address_bytes;

const MAIL: &str = include_str!("vectors/eip712/mail.json");
const USDC_PERMIT: &str = include_str!("vectors/eip712/usdc_permit_mainnet.json");
const PERMIT2_SINGLE: &str = include_str!("vectors/eip712/permit2_permit_single.json");

const USDC: Address = address!("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
/// USDC's `DOMAIN_SEPARATOR()` on Ethereum mainnet.
const USDC_DOMAIN_SEPARATOR: B256 =
    b256!("06c37168a7db5138defc7866392bb87a741f9b3d104deb5094588ce041cae335");
/// Permit2's `DOMAIN_SEPARATOR()` on Ethereum mainnet.
const PERMIT2_MAINNET_SEPARATOR: B256 =
    b256!("866a5aba21966af95d6c7ab78eb2b2fc913915c28be3b9aa07cc04ff903e3f28");
/// `Permit2Lib.DAI_DOMAIN_SEPARATOR` (Uniswap/permit2): DAI on mainnet.
const DAI_DOMAIN_SEPARATOR: B256 =
    b256!("dbb8cf42e1ecb028be3f3dbc922e1d878b963f411dc388ced501601c60f7c6f7");
const DAI: Address = address!("6b175474e89094c44da98b954eedeac495271d0f");

/// Hardhat / Anvil account #0: a publicly known test key, never funded.
const TEST_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const TEST_ACCOUNT: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

fn parse_value(v: &Value) -> Result<TypedMessage, Eip712Error> {
    parse_typed_data(&v.to_string())
}

fn vector(json: &str) -> Value {
    serde_json::from_str(json).expect("test vector")
}

fn parsed(v: &Value) -> TypedMessage {
    parse_value(v).expect("valid typed data")
}

fn recover(hash: B256, r: B256, s: B256, v: u8) -> Address {
    let signature = RecoverableSignature {
        r: r.0,
        s: s.0,
        recovery_id: v - 27,
    };
    Address::from(signature.recover_address(&hash.0).expect("recoverable"))
}

/// Signs the message's signing hash with the test key (as the threshold
/// signature would arrive: bare `(r, s)`) and recovers the signer.
fn sign_and_recover(message: &TypedMessage) -> Address {
    let key = SigningKey::from_slice(&hex::decode(TEST_KEY).expect("hex")).expect("key");
    let (signature, _) = key
        .sign_prehash_recoverable(message.signing_hash().as_slice())
        .expect("sign");
    let (r, s) = signature.split_bytes();
    let public = key.verifying_key().to_encoded_point(true);
    let recoverable = RecoverableSignature::from_prehash(
        public.as_bytes(),
        &message.signing_hash().0,
        &r.into(),
        &s.into(),
    )
    .expect("verifies");
    assert_eq!(
        Address::from(ethereum_address_bytes(public.as_bytes()).expect("address")),
        TEST_ACCOUNT
    );
    Address::from(
        recoverable
            .recover_address(&message.signing_hash().0)
            .expect("recover"),
    )
}

fn err_of(v: &Value) -> Eip712Error {
    parse_value(v).expect_err("refused")
}

// ---------------------------------------------------------------------------
// Known answers
// ---------------------------------------------------------------------------

#[test]
fn the_eip712_mail_example_hashes_to_the_values_in_the_eip() {
    let mail = parse_typed_data(MAIL).expect("the EIP's example");
    assert_eq!(
        mail.encode_type(),
        "Mail(Person from,Person to,string contents)Person(string name,address wallet)"
    );
    assert_eq!(
        mail.domain_separator(),
        b256!("f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f")
    );
    assert_eq!(
        mail.struct_hash(),
        b256!("c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e")
    );
    assert_eq!(
        mail.signing_hash(),
        b256!("be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2")
    );
    let preimage = mail.signing_preimage();
    assert_eq!(preimage[..2], [0x19, 0x01]);
    assert_eq!(preimage[2..34], mail.domain_separator()[..]);
    assert_eq!(preimage[34..], mail.struct_hash()[..]);
    assert_eq!(keccak256(preimage), mail.signing_hash());
    assert_eq!(mail.kind(), &TypedDataKind::Other);
    assert_eq!(mail.primary_type(), "Mail");
    assert_eq!(mail.domain().name.as_deref(), Some("Ether Mail"));
    assert_eq!(mail.domain().version.as_deref(), Some("1"));
    assert_eq!(mail.domain().evm_chain_id(), Ok(Some(1)));
    assert_eq!(
        mail.domain().verifying_contract,
        Some(address!("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"))
    );
    assert_eq!(mail.domain().salt, None);
}

#[test]
fn the_eip712_example_signature_recovers_to_cows_wallet() {
    let mail = parse_typed_data(MAIL).expect("the EIP's example");
    let signer = recover(
        mail.signing_hash(),
        b256!("4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"),
        b256!("07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b91562"),
        28,
    );
    assert_eq!(signer, address!("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"));
}

#[test]
fn a_real_mainnet_usdc_permit_is_an_eip2612_approval_whose_signature_recovers_to_its_owner() {
    let permit = parse_typed_data(USDC_PERMIT).expect("USDC permit");
    assert_eq!(permit.domain_separator(), USDC_DOMAIN_SEPARATOR);
    assert_eq!(
        permit.encode_type(),
        sigil_chains::eip712::EIP2612_PERMIT_TYPE
    );
    // The signature in the transaction's calldata.
    let signer = recover(
        permit.signing_hash(),
        b256!("d0e5696f21d14218bff84c8818dbe6c79812f6fdda9424a7efec907c6d7ef002"),
        b256!("70b6afeb66a51f42881763c7a19d8e1421b9b5fc0200cd4cee06a1a9a4d3207f"),
        28,
    );
    let owner = address!("B1700C08Aa433b319dEF2b4bB31d6De5C8512D96");
    assert_eq!(signer, owner);

    let approval = permit.approval().expect("an approval");
    assert_eq!(approval.standard, ApprovalStandard::Eip2612);
    assert_eq!(approval.owner, Some(owner));
    assert_eq!(approval.deadline, U256::from(1_666_327_223u64));
    assert_eq!(
        approval.allowances,
        vec![Allowance {
            token: USDC,
            spender: address!("68b3465833fb72A70ecDF485E0e4C7bD8665Fc45"),
            amount: U256::from(49_817_428u64),
            expiration: None,
        }]
    );
}

#[test]
fn another_usdc_permit_matches_its_published_struct_and_signing_hashes() {
    // A permit fixture of a typed-data review tool, with its computed hashes.
    let mut permit = vector(USDC_PERMIT);
    permit["message"] = json!({
        "owner": "0x974caa59e49682cda0ad2bbe82983419a2ecc400",
        "spender": "0x4a6c312ec70e8747a587ee860a0353cd42be0ae0",
        "value": "9420522466979",
        "nonce": "0",
        "deadline": "1780517526",
    });
    let permit = parsed(&permit);
    assert_eq!(permit.domain_separator(), USDC_DOMAIN_SEPARATOR);
    assert_eq!(
        permit.struct_hash(),
        b256!("33d9ffb4d245f25e56ff09019a4261a3a75ef9838969fcc4848d86ae34c673eb")
    );
    assert_eq!(
        permit.signing_hash(),
        b256!("e6410f9a0c14ed6005ef600c3268feb65bd11bdfc646565fe58b1abd74988698")
    );
}

#[test]
fn a_permit2_permit_single_matches_permit2s_mainnet_domain_and_its_published_struct_hash() {
    let permit = parse_typed_data(PERMIT2_SINGLE).expect("PermitSingle");
    assert_eq!(permit.domain_separator(), PERMIT2_MAINNET_SEPARATOR);
    assert_eq!(
        permit.struct_hash(),
        b256!("8c5e0f9cb48313e505efa2c4040320595098ae1eda6224aa7d007098fc2b5d08")
    );
    let approval = permit.approval().expect("an approval");
    assert_eq!(approval.standard, ApprovalStandard::Permit2Single);
    assert_eq!(approval.owner, None);
    assert_eq!(approval.deadline, U256::from(1_735_689_600u64));
    assert_eq!(
        approval.allowances,
        vec![Allowance {
            token: USDC,
            spender: address!("3fC91A3afd70395Cd496C647d5a6CC9D4B2b7FAD"),
            amount: U256::from(1_000_000_000u64),
            expiration: Some(1_735_689_600),
        }]
    );
    assert_eq!(sign_and_recover(&permit), TEST_ACCOUNT);
}

#[test]
fn a_signature_over_a_usdc_permit_made_here_recovers_to_the_signing_key() {
    let permit = parse_typed_data(USDC_PERMIT).expect("USDC permit");
    assert_eq!(sign_and_recover(&permit), TEST_ACCOUNT);
}

// ---------------------------------------------------------------------------
// Permit2 and DAI forms, checked against alloy's static encoding
// ---------------------------------------------------------------------------

sol! {
    struct PermitDetails { address token; uint160 amount; uint48 expiration; uint48 nonce; }
    struct PermitSingle { PermitDetails details; address spender; uint256 sigDeadline; }
    struct PermitBatch { PermitDetails[] details; address spender; uint256 sigDeadline; }
    struct TokenPermissions { address token; uint256 amount; }
    struct PermitTransferFrom { TokenPermissions permitted; address spender; uint256 nonce; uint256 deadline; }
    struct PermitBatchTransferFrom { TokenPermissions[] permitted; address spender; uint256 nonce; uint256 deadline; }
    struct Permit { address holder; address spender; uint256 nonce; uint256 expiry; bool allowed; }
}

const WETH: Address = address!("C02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2");
const ROUTER: Address = address!("3fC91A3afd70395Cd496C647d5a6CC9D4B2b7FAD");

fn permit2_domain_json() -> Value {
    json!({
        "name": "Permit2",
        "chainId": 1,
        "verifyingContract": "0x000000000022D473030F116dDEE9F6B43aC78BA3",
    })
}

fn permit2_domain() -> Eip712Domain {
    eip712_domain! { name: "Permit2", chain_id: 1, verifying_contract: PERMIT2_ADDRESS, }
}

fn domain_type(fields: &[&str]) -> Value {
    let all = [
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
        ("salt", "bytes32"),
    ];
    Value::Array(
        all.iter()
            .filter(|(n, _)| fields.contains(n))
            .map(|(n, t)| json!({ "name": n, "type": t }))
            .collect(),
    )
}

fn details_type() -> Value {
    json!([
        { "name": "token", "type": "address" },
        { "name": "amount", "type": "uint160" },
        { "name": "expiration", "type": "uint48" },
        { "name": "nonce", "type": "uint48" },
    ])
}

fn token_permissions_type() -> Value {
    json!([
        { "name": "token", "type": "address" },
        { "name": "amount", "type": "uint256" },
    ])
}

fn permit2_batch_json() -> Value {
    json!({
        "types": {
            "EIP712Domain": domain_type(&["name", "chainId", "verifyingContract"]),
            "PermitBatch": [
                { "name": "details", "type": "PermitDetails[]" },
                { "name": "spender", "type": "address" },
                { "name": "sigDeadline", "type": "uint256" },
            ],
            "PermitDetails": details_type(),
        },
        "primaryType": "PermitBatch",
        "domain": permit2_domain_json(),
        "message": {
            "details": [
                { "token": USDC.to_string(), "amount": "1461501637330902918203684832716283019655932542975", "expiration": "1735689600", "nonce": "3" },
                { "token": WETH.to_string(), "amount": "5", "expiration": 0, "nonce": 0 },
            ],
            "spender": ROUTER.to_string(),
            "sigDeadline": "1735689601",
        },
    })
}

#[test]
fn a_permit2_batch_is_one_allowance_per_details_entry_and_hashes_as_soliditys_struct() {
    let batch = parsed(&permit2_batch_json());
    assert_eq!(
        batch.encode_type(),
        sigil_chains::eip712::PERMIT2_BATCH_TYPE
    );
    let max160 = (U256::from(1u8) << 160) - U256::from(1u8);
    let expected = PermitBatch {
        details: vec![
            PermitDetails {
                token: USDC,
                amount: alloy_primitives::aliases::U160::MAX,
                expiration: alloy_primitives::aliases::U48::from(1_735_689_600u64),
                nonce: alloy_primitives::aliases::U48::from(3u8),
            },
            PermitDetails {
                token: WETH,
                amount: alloy_primitives::aliases::U160::from(5u8),
                expiration: alloy_primitives::aliases::U48::ZERO,
                nonce: alloy_primitives::aliases::U48::ZERO,
            },
        ],
        spender: ROUTER,
        sigDeadline: U256::from(1_735_689_601u64),
    };
    assert_eq!(batch.struct_hash(), expected.eip712_hash_struct());
    assert_eq!(
        batch.signing_hash(),
        expected.eip712_signing_hash(&permit2_domain())
    );
    assert_eq!(batch.domain_separator(), PERMIT2_MAINNET_SEPARATOR);
    let approval = batch.approval().expect("an approval");
    assert_eq!(approval.standard, ApprovalStandard::Permit2Batch);
    assert_eq!(approval.deadline, U256::from(1_735_689_601u64));
    assert_eq!(
        approval.allowances,
        vec![
            Allowance {
                token: USDC,
                spender: ROUTER,
                amount: max160,
                expiration: Some(1_735_689_600)
            },
            Allowance {
                token: WETH,
                spender: ROUTER,
                amount: U256::from(5u8),
                expiration: Some(0)
            },
        ]
    );
    assert_eq!(sign_and_recover(&batch), TEST_ACCOUNT);
}

#[test]
fn permit2_signature_transfers_single_and_batch_are_approvals_to_their_spender() {
    let single = json!({
        "types": {
            "EIP712Domain": domain_type(&["name", "chainId", "verifyingContract"]),
            "PermitTransferFrom": [
                { "name": "permitted", "type": "TokenPermissions" },
                { "name": "spender", "type": "address" },
                { "name": "nonce", "type": "uint256" },
                { "name": "deadline", "type": "uint256" },
            ],
            "TokenPermissions": token_permissions_type(),
        },
        "primaryType": "PermitTransferFrom",
        "domain": permit2_domain_json(),
        "message": {
            "permitted": { "token": USDC.to_string(), "amount": "2500000" },
            "spender": ROUTER.to_string(),
            "nonce": "7",
            "deadline": "1735689600",
        },
    });
    let single = parsed(&single);
    assert_eq!(
        single.encode_type(),
        sigil_chains::eip712::PERMIT2_TRANSFER_FROM_TYPE
    );
    let expected = PermitTransferFrom {
        permitted: TokenPermissions {
            token: USDC,
            amount: U256::from(2_500_000u64),
        },
        spender: ROUTER,
        nonce: U256::from(7u8),
        deadline: U256::from(1_735_689_600u64),
    };
    assert_eq!(
        single.signing_hash(),
        expected.eip712_signing_hash(&permit2_domain())
    );
    let approval = single.approval().expect("an approval");
    assert_eq!(approval.standard, ApprovalStandard::Permit2TransferFrom);
    assert_eq!(
        approval.allowances,
        vec![Allowance {
            token: USDC,
            spender: ROUTER,
            amount: U256::from(2_500_000u64),
            expiration: None
        }]
    );

    let batch = json!({
        "types": {
            "EIP712Domain": domain_type(&["name", "chainId", "verifyingContract"]),
            "PermitBatchTransferFrom": [
                { "name": "permitted", "type": "TokenPermissions[]" },
                { "name": "spender", "type": "address" },
                { "name": "nonce", "type": "uint256" },
                { "name": "deadline", "type": "uint256" },
            ],
            "TokenPermissions": token_permissions_type(),
        },
        "primaryType": "PermitBatchTransferFrom",
        "domain": permit2_domain_json(),
        "message": {
            "permitted": [
                { "token": USDC.to_string(), "amount": "1" },
                { "token": WETH.to_string(), "amount": "2" },
            ],
            "spender": ROUTER.to_string(),
            "nonce": "8",
            "deadline": "1735689600",
        },
    });
    let batch = parsed(&batch);
    let expected = PermitBatchTransferFrom {
        permitted: vec![
            TokenPermissions {
                token: USDC,
                amount: U256::from(1u8),
            },
            TokenPermissions {
                token: WETH,
                amount: U256::from(2u8),
            },
        ],
        spender: ROUTER,
        nonce: U256::from(8u8),
        deadline: U256::from(1_735_689_600u64),
    };
    assert_eq!(
        batch.signing_hash(),
        expected.eip712_signing_hash(&permit2_domain())
    );
    let approval = batch.approval().expect("an approval");
    assert_eq!(
        approval.standard,
        ApprovalStandard::Permit2BatchTransferFrom
    );
    let pairs: Vec<_> = approval
        .allowances
        .iter()
        .map(|a| (a.token, a.spender, a.amount))
        .collect();
    assert_eq!(
        pairs,
        vec![
            (USDC, ROUTER, U256::from(1u8)),
            (WETH, ROUTER, U256::from(2u8))
        ]
    );
}

fn dai_permit_json(allowed: bool) -> Value {
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
        "domain": {
            "name": "Dai Stablecoin",
            "version": "1",
            "chainId": 1,
            "verifyingContract": DAI.to_string(),
        },
        "message": {
            "holder": TEST_ACCOUNT.to_string(),
            "spender": ROUTER.to_string(),
            "nonce": 0,
            "expiry": 0,
            "allowed": allowed,
        },
    })
}

#[test]
fn a_dai_permit_allowing_is_unlimited_and_one_disallowing_is_a_revocation() {
    let allow = parsed(&dai_permit_json(true));
    assert_eq!(allow.domain_separator(), DAI_DOMAIN_SEPARATOR);
    let expected = Permit {
        holder: TEST_ACCOUNT,
        spender: ROUTER,
        nonce: U256::ZERO,
        expiry: U256::ZERO,
        allowed: true,
    };
    let dai_domain = eip712_domain! {
        name: "Dai Stablecoin", version: "1", chain_id: 1, verifying_contract: DAI,
    };
    assert_eq!(
        allow.signing_hash(),
        expected.eip712_signing_hash(&dai_domain)
    );
    let approval = allow.approval().expect("an approval");
    assert_eq!(approval.standard, ApprovalStandard::DaiPermit);
    assert_eq!(approval.owner, Some(TEST_ACCOUNT));
    assert_eq!(approval.deadline, U256::ZERO);
    assert_eq!(
        approval.allowances,
        vec![Allowance {
            token: DAI,
            spender: ROUTER,
            amount: U256::MAX,
            expiration: None
        }]
    );

    let revoke = parsed(&dai_permit_json(false));
    let approval = revoke.approval().expect("an approval");
    assert_eq!(approval.allowances[0].amount, U256::ZERO);
    assert_ne!(revoke.signing_hash(), allow.signing_hash());
}

// ---------------------------------------------------------------------------
// Not approvals
// ---------------------------------------------------------------------------

#[test]
fn a_permit_with_a_misnamed_field_is_other_typed_data() {
    let mut permit = vector(USDC_PERMIT);
    permit["types"]["Permit"][2] = json!({ "name": "amount", "type": "uint256" });
    let value = permit["message"]["value"].take();
    let message = permit["message"].as_object_mut().expect("object");
    message.remove("value");
    message.insert("amount".into(), value);
    let parsed = parsed(&permit);
    assert_eq!(parsed.kind(), &TypedDataKind::Other);
    assert_eq!(parsed.approval(), None);
}

#[test]
fn a_permit_with_a_narrower_field_type_is_other_typed_data() {
    let mut permit = vector(USDC_PERMIT);
    permit["types"]["Permit"][2] = json!({ "name": "value", "type": "uint128" });
    assert_eq!(parsed(&permit).kind(), &TypedDataKind::Other);
}

#[test]
fn a_permit2_shaped_message_outside_permit2s_domain_is_other_typed_data() {
    let mut other_contract = vector(PERMIT2_SINGLE);
    other_contract["domain"]["verifyingContract"] = json!(ROUTER.to_string());
    assert_eq!(parsed(&other_contract).kind(), &TypedDataKind::Other);

    let mut other_name = vector(PERMIT2_SINGLE);
    other_name["domain"]["name"] = json!("Permit3");
    assert_eq!(parsed(&other_name).kind(), &TypedDataKind::Other);
}

#[test]
fn an_eip2612_permit_without_a_verifying_contract_is_refused() {
    let mut permit = vector(USDC_PERMIT);
    permit["domain"]
        .as_object_mut()
        .expect("object")
        .remove("verifyingContract");
    permit["types"]["EIP712Domain"] = domain_type(&["name", "version", "chainId"]);
    assert_eq!(
        err_of(&permit),
        Eip712Error::PermitWithoutToken(ApprovalStandard::Eip2612)
    );
}

// ---------------------------------------------------------------------------
// Domains
// ---------------------------------------------------------------------------

#[test]
fn a_domain_without_a_chain_id_is_accepted_and_reported_as_such() {
    let mut mail = vector(MAIL);
    mail["domain"]
        .as_object_mut()
        .expect("object")
        .remove("chainId");
    mail["types"]["EIP712Domain"] = domain_type(&["name", "version", "verifyingContract"]);
    let parsed = parsed(&mail);
    assert_eq!(parsed.domain().chain_id, None);
    assert_eq!(parsed.domain().evm_chain_id(), Ok(None));
    assert_ne!(
        parsed.domain_separator(),
        parse_typed_data(MAIL).expect("mail").domain_separator()
    );
}

#[test]
fn a_chain_id_of_zero_or_above_u64_is_read_but_names_no_evm_chain() {
    let mut mail = vector(MAIL);
    mail["domain"]["chainId"] = json!(0);
    let zero = parsed(&mail);
    assert_eq!(zero.domain().chain_id, Some(U256::ZERO));
    assert_eq!(
        zero.domain().evm_chain_id(),
        Err(Eip712Error::ChainId(U256::ZERO))
    );

    mail["domain"]["chainId"] = json!("18446744073709551616");
    let huge = parsed(&mail);
    assert!(matches!(
        huge.domain().evm_chain_id(),
        Err(Eip712Error::ChainId(_))
    ));
    mail["domain"]["chainId"] = json!("0x2105");
    assert_eq!(parsed(&mail).domain().evm_chain_id(), Ok(Some(8453)));
}

#[test]
fn a_salted_domain_is_hashed_with_its_salt() {
    let mut mail = vector(MAIL);
    mail["domain"]["salt"] = json!(format!("0x{}", "ab".repeat(32)));
    mail["types"]["EIP712Domain"] =
        domain_type(&["name", "version", "chainId", "verifyingContract", "salt"]);
    let salted = parsed(&mail);
    assert_eq!(salted.domain().salt, Some(B256::repeat_byte(0xab)));
    let domain = eip712_domain! {
        name: "Ether Mail",
        version: "1",
        chain_id: 1,
        verifying_contract: address!("CcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC"),
        salt: B256::repeat_byte(0xab),
    };
    assert_eq!(salted.domain_separator(), domain.separator());
}

#[test]
fn an_eip712domain_type_that_differs_from_the_domain_given_is_refused() {
    // A field the domain does not have.
    let mut extra = vector(MAIL);
    extra["types"]["EIP712Domain"] =
        domain_type(&["name", "version", "chainId", "verifyingContract", "salt"]);
    assert!(matches!(err_of(&extra), Eip712Error::Types(_)));
    // Canonical fields in another order.
    let mut reordered = vector(MAIL);
    reordered["types"]["EIP712Domain"] = json!([
        { "name": "version", "type": "string" },
        { "name": "name", "type": "string" },
        { "name": "chainId", "type": "uint256" },
        { "name": "verifyingContract", "type": "address" },
    ]);
    assert!(matches!(err_of(&reordered), Eip712Error::Types(_)));
    // Another type for chainId.
    let mut retyped = vector(MAIL);
    retyped["types"]["EIP712Domain"][2] = json!({ "name": "chainId", "type": "uint64" });
    assert!(matches!(err_of(&retyped), Eip712Error::Types(_)));
    // No EIP712Domain at all.
    let mut missing = vector(MAIL);
    missing["types"]
        .as_object_mut()
        .expect("object")
        .remove("EIP712Domain");
    assert!(matches!(err_of(&missing), Eip712Error::Types(_)));
}

#[test]
fn a_domain_with_an_unknown_or_null_key_is_refused() {
    let mut unknown = vector(MAIL);
    unknown["domain"]["chain"] = json!(1);
    assert!(matches!(err_of(&unknown), Eip712Error::Domain(_)));
    let mut null = vector(MAIL);
    null["domain"]["name"] = Value::Null;
    assert!(matches!(err_of(&null), Eip712Error::Domain(_)));
    let mut bad_contract = vector(MAIL);
    bad_contract["domain"]["verifyingContract"] = json!("0x1234");
    assert!(matches!(err_of(&bad_contract), Eip712Error::Domain(_)));
    let mut bad_name = vector(MAIL);
    bad_name["domain"]["name"] = json!(5);
    assert!(matches!(err_of(&bad_name), Eip712Error::Domain(_)));
}

// ---------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------

#[test]
fn invalid_json_is_refused() {
    for bad in ["", "{", "{\"types\": }", "not json", "{} trailing"] {
        assert!(
            matches!(parse_typed_data(bad), Err(Eip712Error::Json(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn a_json_string_holding_typed_data_is_refused() {
    let as_string = Value::String(MAIL.to_owned());
    assert!(matches!(err_of(&as_string), Eip712Error::Shape(_)));
    assert!(matches!(err_of(&json!([])), Eip712Error::Shape(_)));
}

#[test]
fn typed_data_over_64_kib_is_refused_before_parsing() {
    let long = format!("{}{}", MAIL, " ".repeat(MAX_TYPED_DATA_LEN));
    assert_eq!(
        parse_typed_data(&long).map(|_| ()),
        Err(Eip712Error::TooLong {
            len: long.len(),
            max: MAX_TYPED_DATA_LEN
        })
    );
    // Exactly at the limit is read.
    let padded = format!("{}{}", MAIL, " ".repeat(MAX_TYPED_DATA_LEN - MAIL.len()));
    assert!(parse_typed_data(&padded).is_ok());
}

#[test]
fn duplicate_json_keys_are_refused_at_every_level() {
    let top = MAIL.replacen(
        "\"primaryType\": \"Mail\",",
        "\"primaryType\": \"Mail\", \"primaryType\": \"Person\",",
        1,
    );
    let in_domain = MAIL.replacen(
        "\"name\": \"Ether Mail\",",
        "\"name\": \"Ether Mail\", \"name\": \"Other Mail\",",
        1,
    );
    let in_message = MAIL.replacen(
        "\"contents\": \"Hello, Bob!\"",
        "\"contents\": \"Hello, Bob!\", \"contents\": \"Send it all\"",
        1,
    );
    let in_types = MAIL.replacen(
        "\"Mail\": [",
        "\"Mail\": [{ \"name\": \"x\", \"type\": \"string\" }], \"Mail\": [",
        1,
    );
    let escaped = MAIL.replacen(
        "\"contents\": \"Hello, Bob!\"",
        "\"contents\": \"Hello, Bob!\", \"\\u0063ontents\": \"Send it all\"",
        1,
    );
    for json in [top, in_domain, in_message, in_types, escaped] {
        assert_ne!(json, MAIL);
        assert!(
            matches!(parse_typed_data(&json), Err(Eip712Error::DuplicateKey(_))),
            "{json}"
        );
    }
}

#[test]
fn a_missing_or_unknown_top_level_key_is_refused() {
    for key in ["types", "primaryType", "domain", "message"] {
        let mut v = vector(MAIL);
        v.as_object_mut().expect("object").remove(key);
        assert!(matches!(err_of(&v), Eip712Error::Shape(_)), "{key}");
    }
    let mut extra = vector(MAIL);
    extra["signature"] = json!("0x");
    assert!(matches!(err_of(&extra), Eip712Error::Shape(_)));
}

#[test]
fn a_primary_type_that_is_not_a_defined_struct_is_refused() {
    for primary in [
        json!("Letter"),
        json!("EIP712Domain"),
        json!("string"),
        json!(1),
    ] {
        let mut v = vector(MAIL);
        v["primaryType"] = primary.clone();
        assert!(
            matches!(err_of(&v), Eip712Error::PrimaryType(_)),
            "{primary}"
        );
    }
}

#[test]
fn a_field_of_an_undefined_type_is_refused() {
    let mut v = vector(MAIL);
    v["types"]["Mail"][0] = json!({ "name": "from", "type": "Human" });
    assert!(matches!(err_of(&v), Eip712Error::Types(_)));
    // Also in a struct the primary type does not use.
    let mut unused = vector(MAIL);
    unused["types"]["Unused"] = json!([{ "name": "x", "type": "Nowhere" }]);
    assert!(matches!(err_of(&unused), Eip712Error::Types(_)));
}

#[test]
fn cyclic_and_self_referencing_types_are_refused() {
    let mut cycle = vector(MAIL);
    cycle["types"]["Person"] = json!([
        { "name": "name", "type": "string" },
        { "name": "wallet", "type": "address" },
        { "name": "last", "type": "Mail" },
    ]);
    assert!(matches!(err_of(&cycle), Eip712Error::Types(_)));
    let mut selfref = vector(MAIL);
    selfref["types"]["Person"] = json!([
        { "name": "name", "type": "string" },
        { "name": "wallet", "type": "address" },
        { "name": "friends", "type": "Person[]" },
    ]);
    assert!(matches!(err_of(&selfref), Eip712Error::Types(_)));
}

#[test]
fn malformed_type_definitions_are_refused() {
    let cases = [
        (
            "Person",
            json!([{ "name": "name", "type": "string" }, { "name": "name", "type": "address" }]),
        ),
        (
            "Person",
            json!([{ "name": "name", "type": "string", "indexed": true }, { "name": "wallet", "type": "address" }]),
        ),
        (
            "Person",
            json!([{ "name": "na me", "type": "string" }, { "name": "wallet", "type": "address" }]),
        ),
        (
            "Person",
            json!([{ "name": "name" }, { "name": "wallet", "type": "address" }]),
        ),
        ("Person", json!({ "name": "string" })),
        ("address", json!([{ "name": "x", "type": "uint256" }])),
        ("uint256", json!([{ "name": "x", "type": "uint256" }])),
        ("Bad Name", json!([{ "name": "x", "type": "uint256" }])),
        ("Tup", json!([{ "name": "x", "type": "(uint256,bool)" }])),
        ("Fun", json!([{ "name": "x", "type": "function" }])),
    ];
    for (name, def) in cases {
        let mut v = vector(MAIL);
        v["types"][name] = def.clone();
        assert!(matches!(err_of(&v), Eip712Error::Types(_)), "{name}: {def}");
    }
}

#[test]
fn message_values_of_the_wrong_type_are_refused() {
    let cases = [
        ("/contents", json!(5)),
        ("/from/wallet", json!("0x1234")),
        (
            "/from/wallet",
            json!("CD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"),
        ),
        // Mixed case that fails the EIP-55 checksum.
        (
            "/from/wallet",
            json!("0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD827"),
        ),
        ("/from/wallet", json!(1)),
        ("/from", json!("Cow")),
        ("/to", json!([])),
    ];
    for (pointer, value) in cases {
        let mut v = vector(MAIL);
        *v.pointer_mut(&format!("/message{pointer}")).expect("field") = value.clone();
        assert!(
            matches!(err_of(&v), Eip712Error::Message(_)),
            "{pointer} = {value}"
        );
    }
}

#[test]
fn integers_out_of_range_or_loosely_written_are_refused() {
    let cases = [
        json!("abc"),
        json!(""),
        json!("1_000"),
        json!("0b101"),
        json!("-1"),
        json!(1.5),
        json!(-1),
        json!("115792089237316195423570985008687907853269984665640564039457584007913129639936"),
        json!(true),
    ];
    for value in cases {
        let mut v = vector(USDC_PERMIT);
        v["message"]["value"] = value.clone();
        assert!(matches!(err_of(&v), Eip712Error::Message(_)), "{value}");
    }
    // A uint160 above 2^160 - 1.
    let mut v = vector(PERMIT2_SINGLE);
    v["message"]["details"]["amount"] = json!("1461501637330902918203684832716283019655932542976");
    assert!(matches!(err_of(&v), Eip712Error::Message(_)));
    // A uint48 above 2^48 - 1.
    let mut v = vector(PERMIT2_SINGLE);
    v["message"]["details"]["expiration"] = json!(281_474_976_710_656u64);
    assert!(matches!(err_of(&v), Eip712Error::Message(_)));
    // JSON integers and 0x-hex are read like decimal strings.
    let mut v = vector(USDC_PERMIT);
    v["message"]["value"] = json!(49_817_428u64);
    v["message"]["deadline"] = json!("0x635222b7");
    assert_eq!(
        parsed(&v).signing_hash(),
        parse_typed_data(USDC_PERMIT)
            .expect("permit")
            .signing_hash()
    );
}

#[test]
fn an_extra_message_field_is_refused() {
    let mut top = vector(MAIL);
    top["message"]["amount"] = json!("1000");
    assert!(matches!(err_of(&top), Eip712Error::Message(_)));
    let mut nested = vector(MAIL);
    nested["message"]["from"]["email"] = json!("cow@example.com");
    assert!(matches!(err_of(&nested), Eip712Error::Message(_)));
}

#[test]
fn a_missing_message_field_is_refused() {
    let mut v = vector(MAIL);
    v["message"]
        .as_object_mut()
        .expect("object")
        .remove("contents");
    assert!(matches!(err_of(&v), Eip712Error::Message(_)));
    let mut nested = vector(MAIL);
    nested["message"]["to"]
        .as_object_mut()
        .expect("object")
        .remove("wallet");
    assert!(matches!(err_of(&nested), Eip712Error::Message(_)));
}

#[test]
fn arrays_of_the_wrong_shape_are_refused() {
    let mut v = vector(MAIL);
    v["types"]["Mail"][1] = json!({ "name": "to", "type": "Person[2]" });
    v["message"]["to"] =
        json!([{ "name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB" }]);
    assert!(matches!(err_of(&v), Eip712Error::Message(_)));
    let mut item = vector(permit2_batch_json().to_string().as_str());
    item["message"]["details"][1]["extra"] = json!(1);
    assert!(matches!(err_of(&item), Eip712Error::Message(_)));
}

#[test]
fn errors_name_the_offending_path() {
    let mut v = vector(MAIL);
    v["message"]["from"]["email"] = json!("cow@example.com");
    let message = err_of(&v).to_string();
    assert!(message.contains("message.from"), "{message}");
    assert!(message.contains("email"), "{message}");

    let mut wrong = vector(PERMIT2_SINGLE);
    wrong["message"]["details"]["expiration"] = json!("281474976710656");
    let message = err_of(&wrong).to_string();
    assert!(message.contains("message.details.expiration"), "{message}");
}
