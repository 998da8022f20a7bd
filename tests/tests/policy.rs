//! Every node enforces its own copy of a key's signed policy: per-transaction
//! and rolling 24-hour limits, destination and contract lists, raw signing,
//! approvals, the accounting quorum, and who may change the policy.
//!
//! Each test creates one threshold-ECDSA (DKLs23) 2-of-3 key as operator,
//! applies a policy document written in TOML and signed by security
//! officers through the coordinator's `Policy` service, and signs unsigned
//! EIP-1559 transactions through `Signing` as the payment service. Refusals
//! are asserted with their gRPC code, message and metadata, and that no node
//! issued a signature share; where the coordinator refuses first, the same
//! intent sent straight to every node (as a compromised coordinator would)
//! is refused by each node on its own.

use std::collections::BTreeMap;

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_primitives::{Address, Bytes, TxKind, U256, address};
use alloy_sol_types::SolCall;
use anyhow::{Context, Result};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use sha3::{Digest, Keccak256};
use sigil_audit::{Filter, Record, action};
use sigil_policy::PolicyDocument;
use sigil_proto::v1 as pb;
use sigil_proto::v1::approvals_client::ApprovalsClient;
use sigil_proto::v1::policy_client::PolicyClient;
use sigil_testkit::sigil_cli::intent::DEFAULT_INTENT_TTL;
use sigil_testkit::{RogueCoordinator, TestCluster, session_id};
use tonic::Code;

mod erc20 {
    alloy_sol_types::sol! {
        function transfer(address to, uint256 amount) returns (bool);
    }
}

mod weth {
    alloy_sol_types::sol! {
        function deposit();
        function withdraw(uint256 amount);
    }
}

const ALICE: Address = address!("1111111111111111111111111111111111111111");
const BOB: Address = address!("2222222222222222222222222222222222222222");
const CAROL: Address = address!("3333333333333333333333333333333333333333");
const DEAD: Address = address!("000000000000000000000000000000000000dead");
const USDC: Address = address!("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
const WETH: Address = address!("c02aaa39b223fe8d0a0e5c4f27ead9083c756cc2");

/// One ether in wei.
const ETH: u128 = 1_000_000_000_000_000_000;

/// `n` thousandths of an ether, in wei.
fn milli_eth(n: u128) -> u128 {
    n * ETH / 1000
}

fn addr(a: Address) -> String {
    format!("0x{}", hex::encode(a.as_slice()))
}

/// An unsigned EIP-1559 transaction, as a wallet hands it to be signed.
fn tx(chain_id: u64, nonce: u64, to: Address, value_wei: u128, input: Vec<u8>) -> Vec<u8> {
    TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 100_000,
        max_fee_per_gas: 40_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::from(value_wei),
        access_list: Default::default(),
        input: Bytes::from(input),
    }
    .encoded_for_signing()
}

/// A native transfer on Ethereum mainnet.
fn pay(nonce: u64, to: Address, wei: u128) -> Vec<u8> {
    tx(1, nonce, to, wei, Vec::new())
}

fn eth_tx(bytes: Vec<u8>) -> pb::payload::Kind {
    pb::payload::Kind::EthereumTransaction(bytes)
}

async fn create_key(tc: &TestCluster) -> Result<pb::KeyInfo> {
    tc.create_key(pb::Scheme::EcdsaSecp256k1, 2).await
}

/// A policy document from TOML, signed by `officers`.
fn signed_policy(tc: &TestCluster, toml: &str, officers: &[&str]) -> Result<pb::SignedPolicy> {
    let document = PolicyDocument::from_toml(toml)?.to_document_bytes();
    let mut signatures = Vec::new();
    for officer in officers {
        signatures.push(tc.signer(officer)?.sign_policy(&document)?);
    }
    Ok(pb::SignedPolicy {
        document,
        signatures,
    })
}

async fn apply(
    tc: &TestCluster,
    policy: pb::SignedPolicy,
) -> Result<pb::ApplyPolicyResponse, tonic::Status> {
    let channel = tc
        .coordinator_as("operator")
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    PolicyClient::new(channel)
        .apply_policy(pb::ApplyPolicyRequest {
            policy: Some(policy),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Applies `toml` signed by officers 1 and 2 and checks that every node took it.
async fn apply_ok(tc: &TestCluster, toml: &str) -> Result<pb::SignedPolicy> {
    let policy = signed_policy(tc, toml, &["officer-1", "officer-2"])?;
    let resp = apply(tc, policy.clone()).await?;
    assert_eq!(resp.accepted, [1, 2, 3], "{resp:?}");
    assert!(resp.failed.is_empty(), "{resp:?}");
    Ok(policy)
}

/// A sign request carrying only the payment service's signed intent.
fn request(
    tc: &TestCluster,
    key: &pb::KeyInfo,
    payload: pb::payload::Kind,
    idempotency_key: &str,
) -> Result<pb::SignRequest> {
    tc.intent_request(key, "", payload, idempotency_key)
}

async fn sign(tc: &TestCluster, req: pb::SignRequest) -> Result<pb::SignResponse, tonic::Status> {
    tc.sign(req).await
}

/// The signature of `tx` verifies under the key and recovers to it.
fn assert_signs_tx(key: &pb::KeyInfo, tx: &[u8], resp: &pb::SignResponse) {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    let digest: [u8; 32] = Keccak256::digest(tx).into();
    assert_eq!(resp.public_key, key.public_key, "the key itself signed");
    let public = VerifyingKey::from_sec1_bytes(&key.public_key).expect("valid key");
    let signature = Signature::from_slice(&resp.signature).expect("r‖s");
    public
        .verify_prehash(&digest, &signature)
        .expect("the signature verifies under the key");
    let id =
        RecoveryId::from_byte(u8::try_from(resp.recovery_id).expect("small")).expect("recovery id");
    let recovered = VerifyingKey::recover_from_prehash(&digest, &signature, id).expect("recovers");
    assert_eq!(recovered, public, "recovers to the key");
}

/// `FAILED_PRECONDITION` naming `rule` in `sigil-policy-rule` and `fragment` in the message.
#[track_caller]
fn assert_denied(status: &tonic::Status, rule: &str, fragment: &str) {
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(
        status
            .metadata()
            .get("sigil-policy-rule")
            .and_then(|v| v.to_str().ok()),
        Some(rule),
        "{status:?}"
    );
    assert!(
        status.message().contains(fragment),
        "expected {fragment:?} in {:?}",
        status.message()
    );
    assert!(
        status.message().contains(&format!("(rule {rule})")),
        "{:?}",
        status.message()
    );
}

fn metadata<'a>(status: &'a tonic::Status, name: &str) -> Option<&'a str> {
    status.metadata().get(name).and_then(|v| v.to_str().ok())
}

/// Node `id`'s audit records of `what` for `key_id`.
async fn node_records(tc: &TestCluster, id: u16, what: &str, key_id: &str) -> Result<Vec<Record>> {
    let node = tc
        .cluster
        .nodes
        .iter()
        .find(|n| n.id == id)
        .context("no such node")?;
    Ok(node
        .handle
        .audit
        .query(&Filter::default().action(what).key_id(key_id).limit(10_000))
        .await?)
}

/// Signature shares issued for `key_id`, by node.
async fn shares_issued(tc: &TestCluster, key_id: &str) -> Result<BTreeMap<u16, usize>> {
    let mut out = BTreeMap::new();
    for n in &tc.cluster.nodes {
        out.insert(
            n.id,
            node_records(tc, n.id, action::SHARE_ISSUED, key_id)
                .await?
                .len(),
        );
    }
    Ok(out)
}

/// Sends `intent` straight to every node's `ReserveSpend`, as a compromised
/// coordinator would, and returns each node's refusal.
async fn every_node_refuses(
    rogue: &RogueCoordinator,
    intent: &pb::SignedIntent,
) -> Result<Vec<tonic::Status>> {
    rogue.refusals(intent, &[1, 2, 3]).await
}

#[tokio::test]
async fn a_one_eth_limit_signs_half_an_eth_and_refuses_two_naming_the_rule() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    apply_ok(
        &tc,
        &format!(
            r#"
key_id = "{}"
version = 1
requesters = ["signer"]

[[assets]]
asset = "evm:1/native"
max_per_tx = "{ETH}"
"#,
            key.key_id
        ),
    )
    .await?;

    let half = pay(0, ALICE, milli_eth(500));
    let resp = sign(&tc, request(&tc, &key, eth_tx(half.clone()), "half")?).await?;
    assert_signs_tx(&key, &half, &resp);
    assert!(!resp.replayed);

    let before = shares_issued(&tc, &key.key_id).await?;
    let two = request(&tc, &key, eth_tx(pay(1, ALICE, 2 * ETH)), "two")?;
    let err = sign(&tc, two.clone())
        .await
        .expect_err("2 ETH over a 1 ETH limit");
    assert_denied(
        &err,
        "assets[0].max_per_tx",
        &format!(
            "{} wei of evm:1/native exceeds the per-transaction limit {ETH}",
            2 * ETH
        ),
    );
    // Each node refuses it by its own copy of the policy too.
    for status in every_node_refuses(&rogue, two.intent.as_ref().context("intent")?).await? {
        assert_denied(
            &status,
            "assets[0].max_per_tx",
            "exceeds the per-transaction limit",
        );
    }
    assert_eq!(
        shares_issued(&tc, &key.key_id).await?,
        before,
        "nothing signed"
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn rolling_daily_amount_and_count_limits_count_each_intent_once_and_survive_restarts()
-> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    let key = create_key(&tc).await?;
    // Every node counts every spend, so the counters agree.
    apply_ok(
        &tc,
        &format!(
            r#"
key_id = "{}"
version = 1
requesters = ["signer"]
accounting_quorum = 3

[[assets]]
asset = "evm:1/native"
max_per_day = "{ETH}"
max_count_per_day = 3
"#,
            key.key_id
        ),
    )
    .await?;

    let first_tx = pay(0, ALICE, milli_eth(400));
    let first = request(&tc, &key, eth_tx(first_tx.clone()), "day-1")?;
    let signed = sign(&tc, first.clone()).await?;
    assert_signs_tx(&key, &first_tx, &signed);
    let second_tx = pay(1, ALICE, milli_eth(400));
    assert_signs_tx(
        &key,
        &second_tx,
        &sign(&tc, request(&tc, &key, eth_tx(second_tx.clone()), "day-2")?).await?,
    );

    // 0.8 + 0.4 > 1 ETH.
    let before = shares_issued(&tc, &key.key_id).await?;
    let err = sign(
        &tc,
        request(&tc, &key, eth_tx(pay(2, ALICE, milli_eth(400))), "day-3")?,
    )
    .await
    .expect_err("over the daily amount");
    assert_denied(
        &err,
        "assets[0].max_per_day",
        &format!(
            "would bring the last 24 hours to {}, over the daily limit {ETH}",
            milli_eth(1200)
        ),
    );
    assert_eq!(
        shares_issued(&tc, &key.key_id).await?,
        before,
        "nothing signed"
    );

    // 0.9 ETH in three spends: the count is exhausted next.
    let third_tx = pay(3, ALICE, milli_eth(100));
    assert_signs_tx(
        &key,
        &third_tx,
        &sign(&tc, request(&tc, &key, eth_tx(third_tx.clone()), "day-4")?).await?,
    );
    let fourth = request(&tc, &key, eth_tx(pay(4, ALICE, milli_eth(50))), "day-5")?;
    let before = shares_issued(&tc, &key.key_id).await?;
    let err = sign(&tc, fourth.clone())
        .await
        .expect_err("over the daily count");
    assert_denied(
        &err,
        "assets[0].max_count_per_day",
        "was spent 3 times in the last 24 hours; the limit is 3",
    );

    // The first request retried: the stored signature, counted no further.
    let replay = sign(&tc, first).await?;
    assert!(replay.replayed, "{replay:?}");
    assert_eq!(replay.signature, signed.signature);
    assert_eq!(replay.session_id, signed.session_id);
    let err = sign(&tc, fourth)
        .await
        .expect_err("still over the daily count");
    assert_denied(&err, "assets[0].max_count_per_day", "was spent 3 times");
    assert_eq!(
        shares_issued(&tc, &key.key_id).await?,
        before,
        "nothing signed"
    );
    // Every node counted the three spends (accounting quorum 3), once each.
    // The refusals came from whichever node was asked first: a node outside
    // the signing quorum (spend receipt) or a signer (session start).
    let mut refusals = 0;
    for id in [1u16, 2, 3] {
        let counted = node_records(&tc, id, "spend_counted", &key.key_id).await?;
        assert_eq!(counted.len(), 3, "node {id}: {counted:?}");
        let mut refused = node_records(&tc, id, "spend_refused", &key.key_id).await?;
        refused.extend(
            node_records(&tc, id, "session_start", &key.key_id)
                .await?
                .into_iter()
                .filter(|r| r.outcome.starts_with("refused:")),
        );
        assert!(
            refused.iter().all(|r| r.outcome == "refused:policy_denied"),
            "node {id}: {refused:?}"
        );
        refusals += refused.len();
    }
    assert!(
        refusals >= 3,
        "three refused requests, {refusals} refusals on record"
    );

    // The counters are durable: restarted nodes still refuse.
    tc.restart_node(1).await?;
    tc.restart_node(2).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    let payment_service = rogue.payment_service();
    let over_amount = payment_service.intent(
        &key.key_id,
        "",
        eth_tx(pay(5, ALICE, milli_eth(200))),
        "after-restart-1",
        DEFAULT_INTENT_TTL,
    )?;
    let err = rogue
        .receipts(&over_amount, &[1])
        .await
        .expect_err("node 1 forgot its daily amount");
    assert_denied(
        &err,
        "assets[0].max_per_day",
        &format!("would bring the last 24 hours to {}", milli_eth(1100)),
    );
    let over_count = payment_service.intent(
        &key.key_id,
        "",
        eth_tx(pay(6, ALICE, milli_eth(50))),
        "after-restart-2",
        DEFAULT_INTENT_TTL,
    )?;
    let err = rogue
        .receipts(&over_count, &[2])
        .await
        .expect_err("node 2 forgot its daily count");
    assert_denied(&err, "assets[0].max_count_per_day", "was spent 3 times");
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn destination_lists_token_limits_contract_calls_unparseable_and_raw_payloads_are_refused()
-> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    apply_ok(
        &tc,
        &format!(
            r#"
key_id = "{key_id}"
version = 1
requesters = ["signer"]
allow_raw = false

[[assets]]
asset = "evm:1/native"
max_per_tx = "{ETH}"

[[assets]]
asset = "evm:1/{usdc}"
max_per_tx = "1000000"

[[destinations]]
chain = "evm:1"
allow = ["{alice}", "{bob}", "{dead}"]
deny = ["{dead}"]

[[contracts]]
chain = "evm:1"
address = "{weth}"
selectors = ["0x{deposit}"]
"#,
            key_id = key.key_id,
            usdc = addr(USDC),
            alice = addr(ALICE),
            bob = addr(BOB),
            dead = addr(DEAD),
            weth = addr(WETH),
            deposit = hex::encode(weth::depositCall::SELECTOR),
        ),
    )
    .await?;

    // Allowed: half a USDC to Alice, and the allowed method of WETH.
    let usdc = |to: Address, amount: u64| {
        tx(
            1,
            0,
            USDC,
            0,
            erc20::transferCall {
                to,
                amount: U256::from(amount),
            }
            .abi_encode(),
        )
    };
    let token = usdc(ALICE, 500_000);
    let resp = sign(&tc, request(&tc, &key, eth_tx(token.clone()), "usdc-ok")?).await?;
    assert_signs_tx(&key, &token, &resp);
    let deposit = tx(1, 1, WETH, 0, weth::depositCall {}.abi_encode());
    let resp = sign(&tc, request(&tc, &key, eth_tx(deposit.clone()), "weth-ok")?).await?;
    assert_signs_tx(&key, &deposit, &resp);

    let before = shares_issued(&tc, &key.key_id).await?;
    let withdraw = weth::withdrawCall {
        amount: U256::from(ETH),
    }
    .abi_encode();
    let denied: [(&str, pb::payload::Kind, &str, String); 5] = [
        (
            "denied destination",
            eth_tx(pay(2, DEAD, milli_eth(100))),
            "destinations.deny",
            format!("{} is on the evm:1 denylist", addr(DEAD)),
        ),
        (
            "destination not on the allowlist",
            eth_tx(pay(3, CAROL, milli_eth(100))),
            "destinations.allow",
            format!("{} is not on the evm:1 allowlist", addr(CAROL)),
        ),
        (
            "ERC-20 transfer above the token's limit",
            eth_tx(usdc(ALICE, 2_000_000)),
            "assets[1].max_per_tx",
            format!(
                "2000000 base units of evm:1/{} exceeds the per-transaction limit 1000000",
                addr(USDC)
            ),
        ),
        (
            "contract method not allowed",
            eth_tx(tx(1, 4, WETH, 0, withdraw)),
            "contracts",
            format!(
                "no contracts entry allows method 0x{} of {} on evm:1",
                hex::encode(weth::withdrawCall::SELECTOR),
                addr(WETH)
            ),
        ),
        (
            "raw digest without allow_raw",
            pb::payload::Kind::RawDigest(Keccak256::digest(b"anything at all").to_vec()),
            "raw_signing",
            "raw_digest payloads are signed only where the policy allows raw signing".into(),
        ),
    ];
    for (i, (what, payload, rule, fragment)) in denied.into_iter().enumerate() {
        let req = request(&tc, &key, payload, &format!("denied-{i}"))?;
        let err = sign(&tc, req.clone()).await.expect_err(what);
        assert_denied(&err, rule, &fragment);
        for status in every_node_refuses(&rogue, req.intent.as_ref().context("intent")?).await? {
            assert_denied(&status, rule, &fragment);
        }
    }

    // Bytes that are no transaction: refused as an invalid payload.
    let garbage = request(&tc, &key, eth_tx(vec![0x02, 0xc1, 0xff]), "garbage")?;
    let err = sign(&tc, garbage.clone()).await.expect_err("unparseable");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("payload"), "{err:?}");
    for status in every_node_refuses(&rogue, garbage.intent.as_ref().context("intent")?).await? {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("payload"), "{status:?}");
    }
    assert_eq!(
        shares_issued(&tc, &key.key_id).await?,
        before,
        "nothing signed"
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_large_payment_waits_for_two_distinct_treasury_approvers_and_nobody_else_counts()
-> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    apply_ok(
        &tc,
        &format!(
            r#"
key_id = "{}"
version = 1
requesters = ["signer"]

[[assets]]
asset = "evm:1/native"

[approver_groups]
treasury = ["approver-1", "approver-2", "approver-3"]

[[approval_tiers]]
asset = "evm:1/native"
above = "{}"
group = "treasury"
required = 2
"#,
            key.key_id,
            milli_eth(300)
        ),
    )
    .await?;
    let approvals = |who: &str| -> Result<ApprovalsClient<tonic::transport::Channel>> {
        Ok(ApprovalsClient::new(tc.coordinator_as(who)?))
    };

    let big = pay(0, BOB, milli_eth(400));
    let req = request(&tc, &key, eth_tx(big.clone()), "big-1")?;
    let intent = req.intent.clone().context("intent")?;
    let before = shares_issued(&tc, &key.key_id).await?;
    let err = sign(&tc, req.clone()).await.expect_err("held for approval");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("approval required"), "{err:?}");
    let approval_id = metadata(&err, "sigil-approval-id")
        .context("no sigil-approval-id")?
        .to_owned();
    assert_eq!(
        metadata(&err, "sigil-approval-required"),
        Some("treasury:0/2")
    );

    let pending = approvals("approver-1")?
        .list_pending(pb::ListPendingApprovalsRequest {
            key_id: key.key_id.clone(),
        })
        .await?
        .into_inner()
        .pending;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let held = &pending[0];
    assert_eq!(held.approval_id, approval_id);
    assert_eq!(held.group, "treasury");
    assert_eq!(held.required, 2);
    assert!(held.approved_by.is_empty());
    assert_eq!(held.requester, tc.signer("signer")?.uri());
    assert_eq!(
        held.intent.as_ref().map(|i| &i.intent),
        Some(&intent.intent)
    );
    assert!(
        held.summary.contains(&milli_eth(400).to_string()),
        "{}",
        held.summary
    );

    let approve = |who: &str, approval: pb::Approval| {
        let id = approval_id.clone();
        let client = approvals(who);
        async move {
            client
                .map_err(|e| tonic::Status::internal(e.to_string()))?
                .approve(pb::ApproveRequest {
                    approval_id: id,
                    approval: Some(approval),
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    let approver_1 = tc.signer("approver-1")?;
    let first = approve("approver-1", approver_1.approve(&intent)?).await?;
    assert_eq!(
        first.pending.context("pending")?.approved_by,
        [approver_1.uri().to_owned()]
    );
    let still = |err: tonic::Status| {
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert_eq!(
            metadata(&err, "sigil-approval-required"),
            Some("treasury:1/2")
        );
        assert_eq!(
            metadata(&err, "sigil-approval-id"),
            Some(approval_id.as_str())
        );
    };
    still(sign(&tc, req.clone()).await.expect_err("1 of 2 approvals"));

    // The operator holds no approver role.
    let err = approve("operator", tc.signer("operator")?.approve(&intent)?)
        .await
        .expect_err("operator approval");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("lacks role approver"), "{err:?}");
    // An approval of another intent.
    let other = request(&tc, &key, eth_tx(pay(1, BOB, milli_eth(400))), "big-2")?;
    let err = approve(
        "approver-2",
        tc.signer("approver-2")?
            .approve(other.intent.as_ref().context("intent")?)?,
    )
    .await
    .expect_err("approval of another intent");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("does not verify"), "{err:?}");
    // The same approver again counts once.
    let again = approve("approver-1", approver_1.approve(&intent)?).await?;
    assert_eq!(again.pending.context("pending")?.approved_by.len(), 1);
    still(sign(&tc, req.clone()).await.expect_err("approver-1 twice"));
    // Approvals attached by the payment service itself: a valid client that
    // is no member of the group, and approver-1 once more.
    let mut attached = req.clone();
    if let Some(i) = attached.intent.as_mut() {
        i.approvals = vec![
            tc.signer("officer-1")?.approve(&intent)?,
            approver_1.approve(&intent)?,
        ];
    }
    still(
        sign(&tc, attached.clone())
            .await
            .expect_err("non-member approval"),
    );
    // Each node counts the same way on its own.
    for status in every_node_refuses(&rogue, attached.intent.as_ref().context("intent")?).await? {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(status.message().contains("approval required"), "{status:?}");
        assert_eq!(
            metadata(&status, "sigil-approval-required"),
            Some("treasury:1/2")
        );
    }
    assert_eq!(
        shares_issued(&tc, &key.key_id).await?,
        before,
        "nothing signed"
    );

    let second = approve("approver-2", tc.signer("approver-2")?.approve(&intent)?).await?;
    assert_eq!(second.pending.context("pending")?.approved_by.len(), 2);
    let resp = sign(&tc, req).await?;
    assert!(!resp.replayed);
    assert_signs_tx(&key, &big, &resp);
    tc.shutdown().await;
    Ok(())
}

/// Node pairs a compromised coordinator spreads its spends over.
const QUORUMS: [[u16; 2]; 3] = [[1, 2], [1, 3], [2, 3]];

/// A compromised coordinator holding the payment service's key spends
/// `per_intent` wei of `chain_id`'s native asset `attempts` times, each
/// time asking only `accounting_quorum` nodes (the two signers first) to
/// count it, then opening the session at both signers. Returns the wei of
/// intents that both signers accepted, i.e. that could be signed.
async fn rogue_spend(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
    chain_id: u64,
    per_intent: u128,
    accounting_quorum: usize,
    attempts: usize,
) -> Result<(u128, usize)> {
    let mut total = 0u128;
    let mut signable = 0usize;
    for i in 0..attempts {
        let signers = QUORUMS[i % QUORUMS.len()];
        let mut counters: Vec<u16> = signers.to_vec();
        for n in [1u16, 2, 3] {
            if counters.len() < accounting_quorum && !counters.contains(&n) {
                counters.push(n);
            }
        }
        let bytes = tx(chain_id, i as u64, ALICE, per_intent, Vec::new());
        let intent = rogue.payment_service().intent(
            &key.key_id,
            "",
            eth_tx(bytes.clone()),
            &format!("rogue-{chain_id}-{i}"),
            DEFAULT_INTENT_TTL,
        )?;
        let mut receipts = Vec::new();
        for n in &counters {
            if let Ok(mut r) = rogue.receipts(&intent, &[*n]).await {
                receipts.append(&mut r);
            }
        }
        let session = session_id();
        let start = pb::StartSessionRequest {
            session_id: session.clone(),
            request_id: format!("rogue-{i}"),
            participants: rogue.identities(&signers).await?,
            deadline_unix_ms: 0,
            kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
                key_id: key.key_id.clone(),
                epoch: key.epoch,
                message: bytes,
                derivation_path: String::new(),
                encoding: pb::MessageEncoding::Keccak256 as i32,
                intent: Some(intent),
                receipts,
                epoch_test: false,
                part: 0,
            })),
        };
        let mut accepted = 0;
        for n in signers {
            match rogue.node(n)?.start_session(start.clone()).await {
                Ok(_) => accepted += 1,
                Err(status) => assert_eq!(
                    status.code(),
                    Code::FailedPrecondition,
                    "node {n}: {status:?}"
                ),
            }
        }
        if accepted == signers.len() {
            total += per_intent;
            signable += 1;
        }
        for n in signers {
            rogue
                .node(n)?
                .abort_session(pb::AbortSessionRequest {
                    session_id: session.clone(),
                    reason: "rogue spend counted".into(),
                })
                .await?;
        }
    }
    Ok((total, signable))
}

#[tokio::test]
async fn with_a_compromised_payment_service_and_coordinator_spending_never_exceeds_the_limit_times_n_over_q()
-> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    let (n, limit) = (3u128, ETH);
    let policy = |version: u64, quorum: u16| {
        format!(
            r#"
key_id = "{}"
version = {version}
requesters = ["signer"]
accounting_quorum = {quorum}

[[assets]]
asset = "evm:1/native"
max_per_tx = "{}"
max_per_day = "{limit}"

[[assets]]
asset = "evm:10/native"
max_per_tx = "{}"
max_per_day = "{limit}"
"#,
            key.key_id,
            milli_eth(500),
            milli_eth(500)
        )
    };

    // q = t = 2 of n = 3: every spend is counted at two nodes, each node
    // counts at most the limit, so at most limit × n / q.
    apply_ok(&tc, &policy(1, 2)).await?;
    let (total, signable) = rogue_spend(&rogue, &key, 1, milli_eth(500), 2, 9).await?;
    assert!(total <= limit * n / 2, "{total} wei over the bound");
    assert_eq!((total, signable), (milli_eth(1500), 3));

    // q = n: every spend is counted everywhere, so exactly the limit.
    apply_ok(&tc, &policy(2, 3)).await?;
    let (total, signable) = rogue_spend(&rogue, &key, 10, milli_eth(500), 3, 9).await?;
    assert!(total <= limit * n / 3, "{total} wei over the bound");
    assert_eq!((total, signable), (limit, 2));
    assert!(
        shares_issued(&tc, &key.key_id)
            .await?
            .values()
            .all(|s| *s == 0),
        "the rogue sessions issued no share"
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn policy_changes_need_the_officer_quorum_and_never_roll_back() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    let document = |version: u64, max_per_tx: u128| {
        format!(
            r#"
key_id = "{}"
version = {version}
requesters = ["signer"]

[[assets]]
asset = "evm:1/native"
max_per_tx = "{max_per_tx}"
"#,
            key.key_id
        )
    };
    let v1 = apply_ok(&tc, &document(1, ETH)).await?;
    let v1_sha = sigil_policy::document_sha256(&v1.document).to_vec();

    // Every node keeps v1 and the coordinator's copy is v1.
    let unchanged = || async {
        for id in [1u16, 2, 3] {
            let p = rogue
                .node(id)?
                .get_policy(pb::NodeGetPolicyRequest {
                    key_id: key.key_id.clone(),
                })
                .await?
                .into_inner();
            assert_eq!((p.version, &p.document_sha256), (1, &v1_sha), "node {id}");
            assert!(!p.is_default, "node {id}");
        }
        let p = PolicyClient::new(tc.coordinator_as("operator")?)
            .get_policy(pb::GetPolicyRequest {
                key_id: key.key_id.clone(),
            })
            .await?
            .into_inner();
        assert_eq!(p.version, 1);
        assert_eq!(p.policy.map(|s| s.document), Some(v1.document.clone()));
        anyhow::Ok(())
    };
    unchanged().await?;

    let v2 = |officers: &[&str]| signed_policy(&tc, &document(2, 10 * ETH), officers);
    let mut altered = v2(&["officer-1", "officer-2"])?;
    let text = String::from_utf8(altered.document.clone())?;
    let raised = text.replace(&(10 * ETH).to_string(), &(1000 * ETH).to_string());
    assert_ne!(raised, text);
    altered.document = raised.into_bytes();
    let cases: [(&str, pb::SignedPolicy, &str); 5] = [
        (
            "one officer",
            v2(&["officer-1"])?,
            "1 distinct officer signatures, 2 needed",
        ),
        (
            "one officer twice",
            v2(&["officer-1", "officer-1"])?,
            "1 distinct officer signatures, 2 needed",
        ),
        (
            "an officer and the operator",
            v2(&["officer-1", "operator"])?,
            "operator is not a security officer",
        ),
        (
            "version 1 again",
            signed_policy(&tc, &document(1, 10 * ETH), &["officer-1", "officer-2"])?,
            "policy version 1 does not supersede version 1 in force",
        ),
        (
            "altered after signing",
            altered,
            "does not verify for this document",
        ),
    ];
    let mut refused_docs = Vec::new();
    for (what, policy, fragment) in cases {
        refused_docs.push((
            sigil_policy::document_sha256(&policy.document).to_vec(),
            fragment,
        ));
        let err = apply(&tc, policy).await.expect_err(what);
        assert_eq!(err.code(), Code::FailedPrecondition, "{what}: {err:?}");
        assert!(
            err.message().contains("no node accepted policy"),
            "{what}: {err:?}"
        );
        for id in 1..=3 {
            assert!(
                err.message().contains(&format!("node {id}: ")),
                "{what}: {err:?}"
            );
        }
        assert_eq!(
            err.message().matches(fragment).count(),
            3,
            "{what}: every node refuses: {err:?}"
        );
        unchanged().await?;
    }

    // Version 0 (the configured default's) is no document at all: the
    // coordinator refuses it, and so does each node when handed it directly.
    let mut v0 = signed_policy(&tc, &document(2, ETH), &["officer-1", "officer-2"])?;
    let text = String::from_utf8(v0.document.clone())?;
    v0.document = text.replace("\"version\":2", "\"version\":0").into_bytes();
    v0.signatures = vec![
        tc.signer("officer-1")?.sign_policy(&v0.document)?,
        tc.signer("officer-2")?.sign_policy(&v0.document)?,
    ];
    let err = apply(&tc, v0.clone()).await.expect_err("version 0");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("reserved"), "{err:?}");
    for id in [1u16, 2, 3] {
        let err = rogue
            .node(id)?
            .apply_policy(pb::NodeApplyPolicyRequest {
                policy: Some(v0.clone()),
            })
            .await
            .expect_err("version 0 at a node");
        assert_eq!(err.code(), Code::InvalidArgument, "node {id}: {err:?}");
        assert!(err.message().contains("reserved"), "node {id}: {err:?}");
    }
    let v0_sha = sigil_policy::document_sha256(&v0.document).to_vec();
    unchanged().await?;

    // Each node's audit log: v1 applied, every other document refused.
    for id in [1u16, 2, 3] {
        let applied = node_records(&tc, id, "policy_applied", &key.key_id).await?;
        assert_eq!(applied.len(), 1, "node {id}: {applied:?}");
        assert_eq!(applied[0].digest, v1_sha, "node {id}");
        assert_eq!(applied[0].outcome, "ok", "node {id}");
        let refused = node_records(&tc, id, "policy_refused", &key.key_id).await?;
        assert_eq!(refused.len(), refused_docs.len(), "node {id}: {refused:?}");
        for (r, (digest, fragment)) in refused.iter().zip(&refused_docs) {
            assert_eq!(&r.digest, digest, "node {id}: {r:?}");
            assert!(r.outcome.starts_with("refused:"), "node {id}: {r:?}");
            assert!(r.detail.contains(fragment), "node {id}: {r:?}");
        }
        // A document that does not parse names no key.
        let unparsed = node_records(&tc, id, "policy_refused", "").await?;
        let unparsed: Vec<&Record> = unparsed.iter().filter(|r| r.digest == v0_sha).collect();
        assert_eq!(unparsed.len(), 1, "node {id}: {unparsed:?}");
        assert_eq!(unparsed[0].outcome, "refused:invalid_request", "node {id}");
        assert!(unparsed[0].detail.contains("reserved"), "node {id}");
    }
    tc.shutdown().await;
    Ok(())
}
