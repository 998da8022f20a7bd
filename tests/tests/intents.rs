//! A compromised coordinator cannot make a node sign without a valid signed
//! intent of the payment service.
//!
//! Attacker model: the harness holds the coordinator's own mTLS certificate
//! and key and calls the nodes' `Node` service directly
//! ([`RogueCoordinator`]), so every check the real coordinator makes is
//! skipped. What it does not hold is the payment service's certificate key
//! (except where a test hands it over explicitly: genuine intents, made as
//! the payment service would make them, to show what the rogue can and
//! cannot do with them).
//!
//! Each case opens a signing session of a FROST secp256k1 2-of-3 key for
//! signers 1 and 2 at node 1 and asserts that node 1 refuses it before any
//! nonce is drawn: the gRPC code, a distinctive message fragment, a
//! `session_start` record refused with the right kind in node 1's audit
//! log, and that no session exists and no signature share was issued.
//! An honestly relayed session with a valid intent and its receipts does
//! produce shares, so the refusals are not vacuous.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use prost::Message as _;
use sigil_audit::{Filter, action};
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::recipient::To;
use sigil_testkit::sigil_cli::intent::DEFAULT_INTENT_TTL;
use sigil_testkit::{RogueCoordinator, TestCluster, session_id};
use tonic::Code;

/// One round's messages, by the node that produced them.
type Outputs = BTreeMap<u16, Vec<pb::ProtocolMessage>>;

const MESSAGE: &[u8] = b"pay 10 to alice";

async fn create_key(tc: &TestCluster) -> Result<pb::KeyInfo> {
    KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: pb::Scheme::FrostSecp256k1 as i32,
            threshold: 2,
            ..Default::default()
        })
        .await?
        .into_inner()
        .key
        .context("no key")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The payload of a FROST raw message.
fn raw(message: &[u8]) -> pb::payload::Kind {
    pb::payload::Kind::RawMessage(pb::RawMessage {
        message: message.to_vec(),
        encoding: pb::MessageEncoding::Raw as i32,
    })
}

/// An intent of the payment service (`signer`), built field by field.
fn intent_of(tc: &TestCluster, key: &pb::KeyInfo, message: &[u8]) -> Result<pb::Intent> {
    Ok(pb::Intent {
        intent_id: format!("intent-{}", hex::encode(session_id())),
        requester: tc.signer("signer")?.uri().to_owned(),
        key_id: key.key_id.clone(),
        derivation_path: String::new(),
        payload: Some(pb::Payload {
            kind: Some(raw(message)),
        }),
        idempotency_key: format!("idem-{}", hex::encode(session_id())),
        not_after_unix_ms: now_ms() + 300_000,
    })
}

/// A signing session of `key` for signers 1 and 2, signing `message` as
/// the session says, with `intent` and `receipts` attached.
async fn start_request(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
    session: &[u8],
    message: &[u8],
    intent: Option<pb::SignedIntent>,
    receipts: Vec<pb::SpendReceipt>,
) -> Result<pb::StartSessionRequest> {
    Ok(pb::StartSessionRequest {
        session_id: session.to_vec(),
        request_id: "rogue".into(),
        participants: rogue.identities(&[1, 2]).await?,
        deadline_unix_ms: 0,
        kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
            key_id: key.key_id.clone(),
            epoch: key.epoch,
            message: message.to_vec(),
            derivation_path: String::new(),
            encoding: pb::MessageEncoding::Raw as i32,
            intent,
            receipts,
            epoch_test: false,
            part: 0,
        })),
    })
}

/// Node 1's audit records of `what` for `session`.
async fn session_records(
    tc: &TestCluster,
    what: &str,
    session: &[u8],
) -> Result<Vec<(String, String)>> {
    let node = tc
        .cluster
        .nodes
        .iter()
        .find(|n| n.id == 1)
        .context("node 1")?;
    let hex = hex::encode(session);
    Ok(node
        .handle
        .audit
        .query(&Filter::default().action(what).limit(10_000))
        .await?
        .into_iter()
        .filter(|r| r.session_id == hex)
        .map(|r| (r.outcome, r.detail))
        .collect())
}

/// Starts `req` at node 1 and asserts the refusal: `code`, a message
/// containing `fragment`, a `session_start` record with outcome `outcome`
/// for the session, and nothing left to sign with: no session, no share.
#[track_caller]
fn refused_at_node_1<'a>(
    tc: &'a TestCluster,
    rogue: &'a RogueCoordinator,
    req: pb::StartSessionRequest,
    code: Code,
    fragment: &'a str,
    outcome: &'a str,
) -> impl std::future::Future<Output = Result<tonic::Status>> + 'a {
    let caller = std::panic::Location::caller();
    async move {
        let session = req.session_id.clone();
        let status = rogue
            .node(1)?
            .start_session(req)
            .await
            .map(|r| r.into_inner())
            .expect_err(&format!("{caller}: node 1 started the session"));
        assert_eq!(status.code(), code, "{caller}: {status:?}");
        assert!(
            status.message().contains(fragment),
            "{caller}: expected {fragment:?} in {:?}",
            status.message()
        );
        let started = session_records(tc, "session_start", &session).await?;
        assert_eq!(started.len(), 1, "{caller}: {started:?}");
        assert!(
            started[0].0.starts_with("refused:"),
            "{caller}: {started:?}"
        );
        assert_eq!(started[0].0, outcome, "{caller}: {started:?}");
        // Nothing to sign with: no session holds a nonce, no share left.
        let step = rogue
            .node(1)?
            .step(pb::StepRequest {
                session_id: session.clone(),
                round: 1,
                messages: Vec::new(),
                receipts: Vec::new(),
            })
            .await
            .expect_err("the refused session exists");
        assert_eq!(step.code(), Code::NotFound, "{caller}: {step:?}");
        let shares = session_records(tc, action::SHARE_ISSUED, &session).await?;
        assert!(shares.is_empty(), "{caller}: {shares:?}");
        Ok(status)
    }
}

/// Starts `req` at node 1 (it must start: the intent is valid), then
/// delivers round one with `receipts` and asserts the accounting-quorum
/// refusal containing `fragment`, after which the session is gone. Returns
/// node 1's own receipt from the start.
async fn refused_at_first_step(
    rogue: &RogueCoordinator,
    req: pb::StartSessionRequest,
    receipts: Vec<pb::SpendReceipt>,
    fragment: &str,
) -> Result<pb::SpendReceipt> {
    let session = req.session_id.clone();
    let started = rogue.node(1)?.start_session(req).await?.into_inner();
    let own = started.receipt.context("node 1 returned no receipt")?;
    let step = |receipts| pb::StepRequest {
        session_id: session.clone(),
        round: 1,
        messages: Vec::new(),
        receipts,
    };
    let status = rogue
        .node(1)?
        .step(step(receipts))
        .await
        .expect_err("round one went ahead without the accounting quorum");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains(fragment),
        "expected {fragment:?} in {:?}",
        status.message()
    );
    let gone = rogue
        .node(1)?
        .step(step(Vec::new()))
        .await
        .expect_err("the refused session survived");
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    Ok(own)
}

/// A cluster, its FROST key and a rogue coordinator.
async fn setup() -> Result<(TestCluster, pb::KeyInfo, RogueCoordinator)> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    Ok((tc, key, rogue))
}

#[tokio::test]
async fn a_session_without_an_intent_is_refused() -> Result<()> {
    let (tc, key, rogue) = setup().await?;
    let req = start_request(&rogue, &key, &session_id(), MESSAGE, None, Vec::new()).await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::PermissionDenied,
        "signed intent",
        "refused:permission_denied",
    )
    .await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_intent_altered_after_signing_is_refused() -> Result<()> {
    let (tc, key, rogue) = setup().await?;
    let (mut signed, receipts) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[1, 2])
        .await?;
    assert_eq!(receipts.len(), 2, "the genuine intent is counted");
    // The rogue swaps the payload inside the signed bytes.
    let altered = b"pay 10000 to mallory";
    let mut intent = pb::Intent::decode(signed.intent.as_slice())?;
    intent.payload = Some(pb::Payload {
        kind: Some(raw(altered)),
    });
    signed.intent = intent.encode_to_vec();
    let req = start_request(&rogue, &key, &session_id(), altered, Some(signed), receipts).await?;
    let status = refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::PermissionDenied,
        "does not verify",
        "refused:permission_denied",
    )
    .await?;
    assert!(status.message().contains("signer"), "{status:?}");
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_intent_naming_the_payment_service_but_signed_by_another_client_is_refused() -> Result<()>
{
    let (tc, key, rogue) = setup().await?;
    let intent = intent_of(&tc, &key, MESSAGE)?;
    // The operator's certificate key and chain, the payment service named as requester.
    let forged = tc.signer("operator")?.sign_intent(&intent)?;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(forged.clone()),
        Vec::new(),
    )
    .await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::PermissionDenied,
        "requester certificate refused",
        "refused:permission_denied",
    )
    .await?;
    // The payment service's own chain beside the operator's signature.
    let genuine_chain = tc.signer("signer")?.sign_intent(&intent)?.certificate_chain;
    let swapped = pb::SignedIntent {
        certificate_chain: genuine_chain,
        ..forged
    };
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(swapped),
        Vec::new(),
    )
    .await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::PermissionDenied,
        "intent signature of signer does not verify",
        "refused:permission_denied",
    )
    .await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_intent_of_a_client_the_keys_policy_does_not_name_is_refused_naming_the_rule()
-> Result<()> {
    let (tc, key, rogue) = setup().await?;
    // A valid client signing its own intent: the operator is no requester of the key.
    let operator = tc.signer("operator")?;
    let signed = operator.intent(&key.key_id, "", raw(MESSAGE), "op-1", DEFAULT_INTENT_TTL)?;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(signed),
        Vec::new(),
    )
    .await?;
    let status = refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "client operator is not a requester of this key",
        "refused:policy_denied",
    )
    .await?;
    assert_eq!(
        status
            .metadata()
            .get("sigil-policy-rule")
            .and_then(|v| v.to_str().ok()),
        Some("requesters"),
        "{status:?}"
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_intent_for_another_key_is_refused() -> Result<()> {
    let (tc, key, rogue) = setup().await?;
    let mut intent = intent_of(&tc, &key, MESSAGE)?;
    intent.key_id = "key-elsewhere".into();
    let signed = rogue.payment_service().sign_intent(&intent)?;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(signed),
        Vec::new(),
    )
    .await?;
    let status = refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "intent is for key key-elsewhere",
        "refused:intent_refused",
    )
    .await?;
    assert!(status.message().contains(&key.key_id), "{status:?}");
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_session_on_another_derivation_path_than_the_intents_is_refused() -> Result<()> {
    let (tc, key, rogue) = setup().await?;
    let (signed, receipts) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[1, 2])
        .await?;
    let mut req =
        start_request(&rogue, &key, &session_id(), MESSAGE, Some(signed), receipts).await?;
    if let Some(pb::start_session_request::Kind::Sign(s)) = req.kind.as_mut() {
        s.derivation_path = "m/0/7".into();
    }
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "derivation path",
        "refused:intent_refused",
    )
    .await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_session_signing_another_message_than_the_intents_payload_is_refused() -> Result<()> {
    let (tc, key, rogue) = setup().await?;
    let (signed, receipts) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[1, 2])
        .await?;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        b"pay 10000 to mallory",
        Some(signed),
        receipts,
    )
    .await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "differs from the intent",
        "refused:intent_refused",
    )
    .await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_expired_intent_and_one_valid_for_longer_than_the_window_are_refused() -> Result<()> {
    let (tc, key, rogue) = setup().await?;
    let payment_service = rogue.payment_service();
    // Expired a minute ago: beyond the 30 s of tolerated clock skew.
    let mut expired = intent_of(&tc, &key, MESSAGE)?;
    expired.not_after_unix_ms = now_ms() - 60_000;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(payment_service.sign_intent(&expired)?),
        Vec::new(),
    )
    .await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "expired",
        "refused:intent_refused",
    )
    .await?;
    // Valid for 11 minutes: longer than the nodes' 10-minute window (+30 s skew).
    let mut lasting = intent_of(&tc, &key, MESSAGE)?;
    lasting.not_after_unix_ms = now_ms() + 11 * 60_000;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(payment_service.sign_intent(&lasting)?),
        Vec::new(),
    )
    .await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "longer than the 10 min 0 s accepted",
        "refused:intent_refused",
    )
    .await?;
    tc.shutdown().await;
    Ok(())
}

/// Gives `key` a rolling daily limit (the limits receipts protect), signed
/// by two dev officers and applied at every node.
async fn with_a_rolling_limit(tc: &TestCluster, key: &pb::KeyInfo) -> Result<()> {
    let toml = format!(
        "key_id = \"{}\"\nversion = 1\nrequesters = [\"signer\"]\nallow_raw = true\n\n[[assets]]\nasset = \"*\"\nmax_count_per_day = 1000\n",
        key.key_id
    );
    let document = sigil_policy::PolicyDocument::from_toml(&toml)?.to_document_bytes();
    let signatures = ["officer-1", "officer-2"]
        .iter()
        .map(|o| Ok(tc.signer(o)?.sign_policy(&document)?))
        .collect::<Result<Vec<_>>>()?;
    let resp = sigil_proto::v1::policy_client::PolicyClient::new(tc.coordinator_as("operator")?)
        .apply_policy(pb::ApplyPolicyRequest {
            policy: Some(pb::SignedPolicy {
                document,
                signatures,
            }),
        })
        .await?
        .into_inner();
    anyhow::ensure!(resp.failed.is_empty(), "{resp:?}");
    Ok(())
}

#[tokio::test]
async fn a_valid_intent_without_the_accounting_quorums_receipts_is_refused() -> Result<()> {
    let (tc, key, rogue) = setup().await?;
    with_a_rolling_limit(&tc, &key).await?;
    // Counted by no other node: node 1 alone counts it.
    let (signed, _) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[])
        .await?;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(signed),
        Vec::new(),
    )
    .await?;
    // The session starts (node 1 counts the spend and returns its receipt
    // for the other signers), but nothing beyond round one is released
    // until the accounting quorum's receipts arrive with the first step.
    let own = refused_at_first_step(&rogue, req, Vec::new(), "spend counted by 1 of the 2").await?;

    // Node 1's own receipt, twice, is still one count.
    let (signed, _) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[])
        .await?;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(signed),
        Vec::new(),
    )
    .await?;
    let mine = rogue
        .node(1)?
        .start_session(req.clone())
        .await?
        .into_inner();
    let mine = mine.receipt.context("node 1 returned no receipt")?;
    let session = req.session_id.clone();
    let status = rogue
        .node(1)?
        .step(pb::StepRequest {
            session_id: session.clone(),
            round: 1,
            messages: Vec::new(),
            receipts: vec![mine.clone(), mine],
        })
        .await
        .expect_err("one count passed as two");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("spend counted by 1 of the 2"),
        "{status:?}"
    );
    // Node 2's receipt for another intent delivered with round one (node 1's
    // own receipt counts for nothing more: its count is already in).
    let (_, elsewhere) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[2])
        .await?;
    let (signed, _) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[])
        .await?;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(signed),
        Vec::new(),
    )
    .await?;
    refused_at_first_step(
        &rogue,
        req,
        [vec![own], elsewhere].concat(),
        "is for another key or intent",
    )
    .await?;
    let shares = session_records(&tc, action::SHARE_ISSUED, &session).await?;
    assert!(shares.is_empty(), "{shares:?}");

    // Node 2's receipt for another intent.
    let (signed, _) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[])
        .await?;
    let (_, elsewhere) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[2])
        .await?;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(signed),
        elsewhere,
    )
    .await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "is for another key or intent",
        "refused:intent_refused",
    )
    .await?;

    // Node 3's receipt passed off as node 2's.
    let (signed, mut from_3) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[3])
        .await?;
    let mut body = pb::SpendReceiptBody::decode(from_3[0].body.as_slice())?;
    body.node_id = 2;
    from_3[0].body = body.encode_to_vec();
    let req = start_request(&rogue, &key, &session_id(), MESSAGE, Some(signed), from_3).await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "spend receipt 0 from node 2",
        "refused:intent_refused",
    )
    .await?;
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_replayed_intent_is_refused_also_after_a_node_restart() -> Result<()> {
    let (mut tc, key, rogue) = setup().await?;
    let (signed, receipts) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[1, 2])
        .await?;
    assert_eq!(receipts.len(), 2);
    // The coordinator's retry budget: three sessions per intent at a node.
    let mut opened = Vec::new();
    for _ in 0..3 {
        let session = session_id();
        let req = start_request(
            &rogue,
            &key,
            &session,
            MESSAGE,
            Some(signed.clone()),
            receipts.clone(),
        )
        .await?;
        let first = rogue.node(1)?.start_session(req).await?.into_inner();
        assert!(!first.messages.is_empty(), "round-one commitments");
        opened.push(session);
    }
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(signed.clone()),
        receipts.clone(),
    )
    .await?;
    let status = refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "replayed intent",
        "refused:intent_refused",
    )
    .await?;
    assert!(
        status
            .message()
            .contains("already opened 3 signing sessions"),
        "{status:?}"
    );
    for session in &opened {
        rogue
            .node(1)?
            .abort_session(pb::AbortSessionRequest {
                session_id: session.clone(),
                reason: "test done".into(),
            })
            .await?;
    }

    // The node remembers the intent durably.
    tc.restart_node(1).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    let req = start_request(
        &rogue,
        &key,
        &session_id(),
        MESSAGE,
        Some(signed.clone()),
        receipts.clone(),
    )
    .await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "replayed intent",
        "refused:intent_refused",
    )
    .await?;

    // Another intent of the payment service under the same intent id.
    let mut other = pb::Intent::decode(signed.intent.as_slice())?;
    let altered = b"pay 10000 to mallory";
    other.payload = Some(pb::Payload {
        kind: Some(raw(altered)),
    });
    let other = rogue.payment_service().sign_intent(&other)?;
    let req = start_request(&rogue, &key, &session_id(), altered, Some(other), receipts).await?;
    refused_at_node_1(
        &tc,
        &rogue,
        req,
        Code::FailedPrecondition,
        "different contents",
        "refused:intent_refused",
    )
    .await?;
    tc.shutdown().await;
    Ok(())
}

fn inbound_for(outputs: &Outputs, to: u16) -> Vec<pb::ProtocolMessage> {
    outputs
        .iter()
        .filter(|(from, _)| **from != to)
        .flat_map(|(_, ms)| ms.iter())
        .filter(|m| match m.recipient.as_ref().and_then(|r| r.to.as_ref()) {
            Some(To::Broadcast(_)) => true,
            Some(To::Node(n)) => *n == u32::from(to),
            _ => false,
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn an_honestly_relayed_session_with_a_valid_intent_and_receipts_yields_signature_shares()
-> Result<()> {
    let (tc, key, rogue) = setup().await?;
    let (signed, receipts) = rogue
        .genuine_intent(&key, MESSAGE, pb::MessageEncoding::Raw, &[1, 2])
        .await?;
    let session = session_id();
    let req = start_request(&rogue, &key, &session, MESSAGE, Some(signed), receipts).await?;
    let mut commitments = Outputs::new();
    for id in [1u16, 2] {
        let resp = rogue
            .node(id)?
            .start_session(req.clone())
            .await?
            .into_inner();
        commitments.insert(id, resp.messages);
    }
    // FROST: one relay round (commitments), then each signer's share.
    for id in [1u16, 2] {
        let resp = rogue
            .node(id)?
            .step(pb::StepRequest {
                session_id: session.clone(),
                round: 1,
                messages: inbound_for(&commitments, id),
                receipts: Vec::new(),
            })
            .await?
            .into_inner();
        assert_eq!(resp.messages.len(), 1, "node {id}: one share");
        assert!(
            matches!(
                resp.messages[0]
                    .recipient
                    .as_ref()
                    .and_then(|r| r.to.as_ref()),
                Some(To::Coordinator(_))
            ),
            "node {id}: {:?}",
            resp.messages[0].recipient
        );
    }
    let started = session_records(&tc, "session_start", &session).await?;
    assert_eq!(
        started.iter().map(|(o, _)| o.as_str()).collect::<Vec<_>>(),
        ["ok"]
    );
    assert_eq!(
        session_records(&tc, action::SHARE_ISSUED, &session)
            .await?
            .len(),
        1
    );
    tc.shutdown().await;
    Ok(())
}
