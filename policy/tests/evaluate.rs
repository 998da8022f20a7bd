//! The policy decision on real payloads: unsigned transactions built with
//! alloy, parsed as a node parses them, evaluated against TOML documents.

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{Address, Bytes, TxKind, U256, address};
use sigil_policy::{
    Amount, ApprovalNeed, Decision, EvalRequest, KeyView, Parsed, PolicyDocument, PolicyRules,
    Usage, evaluate, parse,
};
use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;

const USDC: Address = address!("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
const WETH: Address = address!("c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2");
const ALICE: Address = address!("1111111111111111111111111111111111111111");
const BOB: Address = address!("2222222222222222222222222222222222222222");
const DEAD: Address = address!("000000000000000000000000000000000000dead");

const USDC_ASSET: &str = "evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48";
const ETH: u64 = 1_000_000_000_000_000_000;

const POLICY: &str = r#"
key_id = "key-abc"
version = 1
requesters = ["payments"]

[[assets]]
asset = "evm:1/native"
max_per_tx = "1000000000000000000"
max_per_day = "5000000000000000000"
max_count_per_day = 20

[[assets]]
asset = "evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
max_per_tx = "10000000000"

[[destinations]]
chain = "evm:1"
deny = ["0x000000000000000000000000000000000000dead"]

[[contracts]]
chain = "evm:1"
address = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
selectors = ["0xd0e30db0"]

[approver_groups]
treasury = ["approver-1", "approver-2", "approver-3"]
"#;

fn rules(text: &str) -> PolicyRules {
    PolicyDocument::from_toml(text)
        .unwrap_or_else(|e| panic!("policy parses: {e}"))
        .rules
}

fn policy() -> PolicyRules {
    rules(POLICY)
}

fn tx(to: Address, value: U256, input: Vec<u8>) -> Parsed {
    let tx = TxEip1559 {
        chain_id: 1,
        nonce: 7,
        gas_limit: 100_000,
        max_fee_per_gas: 30_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input: Bytes::from(input),
    };
    parse_payload(
        Scheme::EcdsaSecp256k1,
        pb::payload::Kind::EthereumTransaction(tx.encoded_for_signing()),
    )
}

fn parse_payload(scheme: Scheme, kind: pb::payload::Kind) -> Parsed {
    parse(
        &KeyView::new(scheme, &[], &[]),
        &pb::Payload { kind: Some(kind) },
    )
    .unwrap_or_else(|e| panic!("parses: {e}"))
}

fn eth_transfer(to: Address, wei: u64) -> Parsed {
    tx(to, U256::from(wei), Vec::new())
}

fn word(bytes: &[u8]) -> Vec<u8> {
    let mut w = vec![0u8; 32 - bytes.len()];
    w.extend_from_slice(bytes);
    w
}

/// ERC-20 `transfer(to, amount)` call data, written out by hand.
fn transfer_data(to: Address, amount: u64) -> Vec<u8> {
    let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
    data.extend(word(to.as_slice()));
    data.extend(word(&amount.to_be_bytes()));
    data
}

fn usdc_transfer(to: Address, amount: u64) -> Parsed {
    tx(USDC, U256::ZERO, transfer_data(to, amount))
}

fn request<'a>(parsed: &'a Parsed, approvers: &'a [String]) -> EvalRequest<'a> {
    EvalRequest {
        requester: "payments",
        parsed,
        approvers,
    }
}

fn nothing_spent(_: &str) -> Usage {
    Usage::default()
}

#[track_caller]
fn denied_by(decision: Decision) -> (String, String) {
    match decision {
        Decision::Deny(d) => (d.rule, d.reason),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_native_transfer_within_every_limit_is_allowed_and_reports_its_spend() {
    let parsed = eth_transfer(ALICE, ETH / 2);
    assert_eq!(
        evaluate(&policy(), &request(&parsed, &[]), nothing_spent),
        Decision::Allow {
            spends: vec![("evm:1/native".into(), Amount::from(ETH / 2))]
        }
    );
}

#[test]
fn a_requester_not_on_the_list_is_denied() {
    let parsed = eth_transfer(ALICE, 1);
    let req = EvalRequest {
        requester: "intruder",
        parsed: &parsed,
        approvers: &[],
    };
    let (rule, reason) = denied_by(evaluate(&policy(), &req, nothing_spent));
    assert_eq!(rule, "requesters");
    assert_eq!(reason, "client intruder is not a requester of this key");
}

#[test]
fn raw_messages_digests_and_personal_messages_are_denied_unless_raw_signing_is_allowed() {
    let payloads = [
        parse_payload(
            Scheme::FrostEd25519,
            pb::payload::Kind::RawMessage(pb::RawMessage {
                message: b"opaque".to_vec(),
                encoding: pb::MessageEncoding::Raw as i32,
            }),
        ),
        parse_payload(
            Scheme::EcdsaSecp256k1,
            pb::payload::Kind::RawDigest(vec![9; 32]),
        ),
        parse_payload(
            Scheme::EcdsaSecp256k1,
            pb::payload::Kind::Eip191Message(b"login".to_vec()),
        ),
    ];
    let mut allowing = policy();
    allowing.allow_raw = true;
    for parsed in &payloads {
        let (rule, _) = denied_by(evaluate(&policy(), &request(parsed, &[]), nothing_spent));
        assert_eq!(rule, "raw_signing", "{:?}", parsed.kind);
        assert_eq!(
            evaluate(&allowing, &request(parsed, &[]), nothing_spent),
            Decision::Allow { spends: vec![] },
            "{:?}",
            parsed.kind
        );
    }
}

#[test]
fn a_native_transfer_above_the_per_transaction_limit_is_denied_naming_the_rule() {
    let parsed = eth_transfer(ALICE, 2 * ETH);
    let (rule, reason) = denied_by(evaluate(&policy(), &request(&parsed, &[]), nothing_spent));
    assert_eq!(rule, "assets[0].max_per_tx");
    assert_eq!(
        reason,
        "2000000000000000000 wei of evm:1/native exceeds the per-transaction limit 1000000000000000000"
    );
    // Exactly the limit is allowed.
    let at_limit = eth_transfer(ALICE, ETH);
    assert!(matches!(
        evaluate(&policy(), &request(&at_limit, &[]), nothing_spent),
        Decision::Allow { .. }
    ));
}

#[test]
fn the_rolling_daily_amount_counts_what_was_spent_before() {
    let parsed = eth_transfer(ALICE, ETH);
    let spent = |amount: u64| {
        move |asset: &str| {
            assert_eq!(asset, "evm:1/native");
            Usage {
                amount: Amount::from(amount),
                count: 3,
            }
        }
    };
    assert!(matches!(
        evaluate(&policy(), &request(&parsed, &[]), spent(4 * ETH)),
        Decision::Allow { .. }
    ));
    let (rule, reason) = denied_by(evaluate(
        &policy(),
        &request(&parsed, &[]),
        spent(4 * ETH + 1),
    ));
    assert_eq!(rule, "assets[0].max_per_day");
    assert!(reason.contains("5000000000000000001"), "{reason}");
}

#[test]
fn the_rolling_daily_count_includes_this_spend() {
    let parsed = eth_transfer(ALICE, 1);
    let count = |count: u64| {
        move |_: &str| Usage {
            amount: Amount::ZERO,
            count,
        }
    };
    assert!(matches!(
        evaluate(&policy(), &request(&parsed, &[]), count(19)),
        Decision::Allow { .. }
    ));
    let (rule, reason) = denied_by(evaluate(&policy(), &request(&parsed, &[]), count(20)));
    assert_eq!(rule, "assets[0].max_count_per_day");
    assert_eq!(
        reason,
        "evm:1/native was spent 20 times in the last 24 hours; the limit is 20"
    );
}

#[test]
fn a_denylisted_destination_is_denied_even_when_also_allowlisted() {
    let text = POLICY.replace(
        "deny = [",
        "allow = [\"0x000000000000000000000000000000000000dead\"]\ndeny = [",
    );
    for rules in [policy(), rules(&text)] {
        let parsed = eth_transfer(DEAD, 1);
        let (rule, reason) = denied_by(evaluate(&rules, &request(&parsed, &[]), nothing_spent));
        assert_eq!(rule, "destinations.deny");
        assert_eq!(
            reason,
            "0x000000000000000000000000000000000000dead is on the evm:1 denylist"
        );
    }
}

#[test]
fn a_destination_not_on_the_chains_allowlist_is_denied() {
    let text = POLICY.replace(
        "deny = [",
        "allow = [\"0x1111111111111111111111111111111111111111\"]\ndeny = [",
    );
    let rules = rules(&text);
    let to_bob = eth_transfer(BOB, 1);
    let (rule, _) = denied_by(evaluate(&rules, &request(&to_bob, &[]), nothing_spent));
    assert_eq!(rule, "destinations.allow");
    let to_alice = eth_transfer(ALICE, 1);
    assert!(matches!(
        evaluate(&rules, &request(&to_alice, &[]), nothing_spent),
        Decision::Allow { .. }
    ));
    // The allowlist applies to token recipients too.
    let usdc_to_bob = usdc_transfer(BOB, 5);
    let (rule, _) = denied_by(evaluate(&rules, &request(&usdc_to_bob, &[]), nothing_spent));
    assert_eq!(rule, "destinations.allow");
}

#[test]
fn an_allowlist_of_another_chain_does_not_restrict_this_one() {
    let text = POLICY.replace(
        "[[contracts]]",
        "[[destinations]]\nchain = \"evm:8453\"\nallow = [\"0x1111111111111111111111111111111111111111\"]\n\n[[contracts]]",
    );
    let parsed = eth_transfer(BOB, 1);
    assert!(matches!(
        evaluate(&rules(&text), &request(&parsed, &[]), nothing_spent),
        Decision::Allow { .. }
    ));
}

#[test]
fn an_erc20_transfer_within_the_token_limit_is_allowed_as_a_token_spend() {
    let parsed = usdc_transfer(ALICE, 2_500_000);
    assert_eq!(
        evaluate(&policy(), &request(&parsed, &[]), nothing_spent),
        Decision::Allow {
            spends: vec![(USDC_ASSET.into(), Amount::from(2_500_000u64))]
        }
    );
}

#[test]
fn erc20_transfer_above_the_token_limit_is_denied_naming_the_rule() {
    let parsed = usdc_transfer(ALICE, 10_000_000_001);
    let (rule, reason) = denied_by(evaluate(&policy(), &request(&parsed, &[]), nothing_spent));
    assert_eq!(rule, "assets[1].max_per_tx");
    assert_eq!(
        reason,
        format!(
            "10000000001 base units of {USDC_ASSET} exceeds the per-transaction limit 10000000000"
        )
    );
}

#[test]
fn an_erc20_approval_is_limited_like_a_transfer_to_the_spender() {
    let mut data = vec![0x09, 0x5e, 0xa7, 0xb3];
    data.extend(word(BOB.as_slice()));
    data.extend([0xff; 32]); // unlimited allowance
    let parsed = tx(USDC, U256::ZERO, data);
    let (rule, _) = denied_by(evaluate(&policy(), &request(&parsed, &[]), nothing_spent));
    assert_eq!(rule, "assets[1].max_per_tx");
}

#[test]
fn a_token_transfer_needs_the_tokens_asset_entry_not_a_contracts_entry() {
    // USDC's transfer method allowed as a contract call, but no USDC asset entry.
    let text = POLICY
        .replace(
            "asset = \"evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48\"\nmax_per_tx = \"10000000000\"",
            "asset = \"evm:8453/native\"",
        )
        .replace(
            "[approver_groups]",
            "[[contracts]]\nchain = \"evm:1\"\naddress = \"0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48\"\n\n[approver_groups]",
        );
    let parsed = usdc_transfer(ALICE, 1);
    let (rule, reason) = denied_by(evaluate(
        &rules(&text),
        &request(&parsed, &[]),
        nothing_spent,
    ));
    assert_eq!(rule, "no_allowance");
    assert_eq!(reason, format!("no assets entry allows {USDC_ASSET}"));
}

#[test]
fn an_asset_without_its_own_entry_falls_back_to_the_wildcard_limited_on_its_own() {
    let text = POLICY.replace(
        "[[destinations]]",
        "[[assets]]\nasset = \"*\"\nmax_per_tx = \"100\"\nmax_per_day = \"150\"\n\n[[destinations]]",
    );
    let rules = rules(&text);
    let dai = address!("6b175474e89094c44da98b954eedeac495271d0f");
    let dai_asset = "evm:1/0x6b175474e89094c44da98b954eedeac495271d0f";
    let parsed = tx(dai, U256::ZERO, transfer_data(ALICE, 100));
    let usage = |asset: &str| {
        assert_eq!(
            asset, dai_asset,
            "usage is asked for the asset itself, not *"
        );
        Usage {
            amount: Amount::from(50u64),
            count: 1,
        }
    };
    assert!(matches!(
        evaluate(&rules, &request(&parsed, &[]), usage),
        Decision::Allow { .. }
    ));
    let over = tx(dai, U256::ZERO, transfer_data(ALICE, 101));
    let (rule, _) = denied_by(evaluate(&rules, &request(&over, &[]), nothing_spent));
    assert_eq!(rule, "assets[2].max_per_tx");
    // The native asset keeps its own entry.
    let eth = eth_transfer(ALICE, ETH);
    assert!(matches!(
        evaluate(&rules, &request(&eth, &[]), nothing_spent),
        Decision::Allow { .. }
    ));
}

#[test]
fn an_asset_no_entry_allows_is_denied_by_default() {
    let parsed = tx(
        address!("6b175474e89094c44da98b954eedeac495271d0f"),
        U256::ZERO,
        transfer_data(ALICE, 1),
    );
    let (rule, _) = denied_by(evaluate(&policy(), &request(&parsed, &[]), nothing_spent));
    assert_eq!(rule, "no_allowance");
    let bare = rules("key_id = \"k\"\nversion = 1\nrequesters = [\"payments\"]");
    let eth = eth_transfer(ALICE, 0);
    let (rule, _) = denied_by(evaluate(&bare, &request(&eth, &[]), nothing_spent));
    assert_eq!(rule, "no_allowance");
}

#[test]
fn a_contract_call_to_a_selector_not_allowed_is_denied() {
    // WETH withdraw(uint256): 0x2e1a7d4d, only deposit() is allowed.
    let mut data = vec![0x2e, 0x1a, 0x7d, 0x4d];
    data.extend(word(&[1]));
    let parsed = tx(WETH, U256::ZERO, data);
    let (rule, reason) = denied_by(evaluate(&policy(), &request(&parsed, &[]), nothing_spent));
    assert_eq!(rule, "contracts");
    assert_eq!(
        reason,
        "no contracts entry allows method 0x2e1a7d4d of 0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2 on evm:1"
    );
    // Any other contract is denied as well.
    let elsewhere = tx(BOB, U256::ZERO, vec![0xd0, 0xe3, 0x0d, 0xb0]);
    let (rule, _) = denied_by(evaluate(
        &policy(),
        &request(&elsewhere, &[]),
        nothing_spent,
    ));
    assert_eq!(rule, "contracts");
}

#[test]
fn an_allowed_contract_call_without_value_moves_nothing() {
    let parsed = tx(WETH, U256::ZERO, vec![0xd0, 0xe3, 0x0d, 0xb0]);
    assert_eq!(
        evaluate(&policy(), &request(&parsed, &[]), nothing_spent),
        Decision::Allow { spends: vec![] }
    );
    // An entry without selectors allows every method of the contract.
    let any_method = POLICY.replace("selectors = [\"0xd0e30db0\"]", "");
    let withdraw = tx(
        WETH,
        U256::ZERO,
        [vec![0x2e, 0x1a, 0x7d, 0x4d], word(&[1])].concat(),
    );
    assert!(matches!(
        evaluate(&rules(&any_method), &request(&withdraw, &[]), nothing_spent),
        Decision::Allow { .. }
    ));
}

#[test]
fn the_value_of_an_allowed_contract_call_is_limited_like_any_native_spend() {
    let deposit = vec![0xd0, 0xe3, 0x0d, 0xb0];
    let small = tx(WETH, U256::from(ETH), deposit.clone());
    assert_eq!(
        evaluate(&policy(), &request(&small, &[]), nothing_spent),
        Decision::Allow {
            spends: vec![("evm:1/native".into(), Amount::from(ETH))]
        }
    );
    let large = tx(WETH, U256::from(2 * ETH), deposit);
    let (rule, _) = denied_by(evaluate(&policy(), &request(&large, &[]), nothing_spent));
    assert_eq!(rule, "assets[0].max_per_tx");
}

#[test]
fn a_malformed_erc20_transfer_is_denied_even_where_the_token_contract_is_allowed() {
    // With trailing bytes a token contract still executes the transfer, whose
    // amount Sigil does not read: no contracts entry may let it through.
    let text = POLICY.replace(
        "[approver_groups]",
        "[[contracts]]\nchain = \"evm:1\"\naddress = \"0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48\"\nselectors = [\"0xa9059cbb\"]\n\n[approver_groups]",
    );
    let mut data = transfer_data(ALICE, 10_000_000_000_000);
    data.push(0);
    let parsed = tx(USDC, U256::ZERO, data);
    assert_eq!(parsed.kind, sigil_policy::PayloadKind::ContractCall);
    let (rule, _) = denied_by(evaluate(
        &rules(&text),
        &request(&parsed, &[]),
        nothing_spent,
    ));
    assert_eq!(rule, "contracts.erc20_selector");
}

const TIERS: &str = r#"
[[approval_tiers]]
asset = "evm:1/native"
above = "100000000000000000"
group = "treasury"
required = 2

[[approval_tiers]]
asset = "*"
above = "500000000000000000"
group = "board"
required = 1
"#;

fn tiered() -> PolicyRules {
    let text = POLICY.replace("treasury = [", "board = [\"ceo\"]\ntreasury = [");
    rules(&format!("{text}{TIERS}"))
}

#[test]
fn an_amount_above_a_tier_with_fewer_than_the_required_approvals_needs_approval() {
    let parsed = eth_transfer(ALICE, ETH / 5);
    let approvers = names(&["approver-1"]);
    assert_eq!(
        evaluate(&tiered(), &request(&parsed, &approvers), nothing_spent),
        Decision::NeedsApproval(ApprovalNeed {
            tier: 0,
            rule: "approval_tiers[0] (evm:1/native above 100000000000000000)".into(),
            group: "treasury".into(),
            required: 2,
            have: 1,
        })
    );
    let approvers = names(&["approver-1", "approver-3"]);
    assert_eq!(
        evaluate(&tiered(), &request(&parsed, &approvers), nothing_spent),
        Decision::Allow {
            spends: vec![("evm:1/native".into(), Amount::from(ETH / 5))]
        }
    );
}

#[test]
fn an_amount_at_or_below_every_tier_needs_no_approval() {
    let parsed = eth_transfer(ALICE, ETH / 10);
    assert!(matches!(
        evaluate(&tiered(), &request(&parsed, &[]), nothing_spent),
        Decision::Allow { .. }
    ));
}

#[test]
fn an_approver_outside_the_group_does_not_count() {
    let parsed = eth_transfer(ALICE, ETH / 5);
    let approvers = names(&["approver-1", "ceo", "mallory"]);
    assert!(matches!(
        evaluate(&tiered(), &request(&parsed, &approvers), nothing_spent),
        Decision::NeedsApproval(ApprovalNeed {
            have: 1,
            required: 2,
            ..
        })
    ));
}

#[test]
fn a_duplicated_approver_counts_once() {
    let parsed = eth_transfer(ALICE, ETH / 5);
    let approvers = names(&["approver-2", "approver-2", "approver-2"]);
    assert!(matches!(
        evaluate(&tiered(), &request(&parsed, &approvers), nothing_spent),
        Decision::NeedsApproval(ApprovalNeed {
            have: 1,
            required: 2,
            ..
        })
    ));
}

#[test]
fn the_requester_cannot_approve_its_own_intent() {
    let text = POLICY.replace("treasury = [\"approver-1\"", "treasury = [\"payments\"");
    let rules = rules(&format!(
        "{text}\n[[approval_tiers]]\nasset = \"*\"\nabove = \"0\"\ngroup = \"treasury\"\nrequired = 1\n"
    ));
    let parsed = eth_transfer(ALICE, 1);
    let approvers = names(&["payments"]);
    assert!(matches!(
        evaluate(&rules, &request(&parsed, &approvers), nothing_spent),
        Decision::NeedsApproval(ApprovalNeed { have: 0, .. })
    ));
}

#[test]
fn the_highest_tier_the_amount_exceeds_decides() {
    // 0.6 ETH exceeds both tiers: the wildcard tier above 0.5 ETH decides.
    let parsed = eth_transfer(ALICE, 6 * ETH / 10);
    let treasury = names(&["approver-1", "approver-2"]);
    assert!(matches!(
        evaluate(&tiered(), &request(&parsed, &treasury), nothing_spent),
        Decision::NeedsApproval(ApprovalNeed { tier: 1, ref group, required: 1, have: 0, .. }) if group == "board"
    ));
    let board = names(&["ceo"]);
    assert!(matches!(
        evaluate(&tiered(), &request(&parsed, &board), nothing_spent),
        Decision::Allow { .. }
    ));
}

#[test]
fn limits_are_checked_before_approvals_so_approvals_cannot_lift_a_limit() {
    let parsed = eth_transfer(ALICE, 2 * ETH);
    let everyone = names(&["approver-1", "approver-2", "approver-3", "ceo"]);
    let (rule, _) = denied_by(evaluate(
        &tiered(),
        &request(&parsed, &everyone),
        nothing_spent,
    ));
    assert_eq!(rule, "assets[0].max_per_tx");
}

#[test]
fn rules_built_in_code_that_do_not_validate_sign_nothing() {
    let mut broken = policy();
    broken.approval_tiers.push(sigil_policy::ApprovalTier {
        asset: "*".into(),
        above: Amount::ZERO,
        group: "treasury".into(),
        required: 0,
    });
    let parsed = eth_transfer(ALICE, 1);
    let (rule, _) = denied_by(evaluate(&broken, &request(&parsed, &[]), nothing_spent));
    assert_eq!(rule, "invalid_policy");
    let mut shouting = policy();
    shouting.destinations[0].deny = vec!["0x000000000000000000000000000000000000DEAD".into()];
    let (rule, _) = denied_by(evaluate(&shouting, &request(&parsed, &[]), nothing_spent));
    assert_eq!(rule, "invalid_policy");
}

#[test]
fn the_permissive_development_rules_allow_transfers_and_raw_signing_but_not_contract_calls() {
    let dev = PolicyRules::permissive_dev(vec!["payments".into()]);
    let big = eth_transfer(ALICE, 18 * ETH);
    assert!(matches!(
        evaluate(&dev, &request(&big, &[]), nothing_spent),
        Decision::Allow { .. }
    ));
    let digest = parse_payload(
        Scheme::EcdsaSecp256k1,
        pb::payload::Kind::RawDigest(vec![1; 32]),
    );
    assert!(matches!(
        evaluate(&dev, &request(&digest, &[]), nothing_spent),
        Decision::Allow { .. }
    ));
    let call = tx(WETH, U256::ZERO, vec![0xd0, 0xe3, 0x0d, 0xb0]);
    let (rule, _) = denied_by(evaluate(&dev, &request(&call, &[]), nothing_spent));
    assert_eq!(rule, "contracts");
}
