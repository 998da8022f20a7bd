//! Cluster tests of FROST keys over real mTLS: DKG, then signing, then
//! verification with independent verifiers, for every scheme; quorum and
//! availability behaviour; idempotency; no plaintext share at rest.

use anyhow::{Context, Result};
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::TestCluster;
use tonic::Code;

async fn create_key(
    tc: &TestCluster,
    scheme: pb::Scheme,
    threshold: u32,
    nodes: &[u32],
) -> Result<pb::KeyInfo> {
    let resp = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: scheme as i32,
            threshold,
            nodes: nodes.to_vec(),
            label: "test".into(),
        })
        .await?
        .into_inner();
    resp.key.context("no key in response")
}

async fn sign(
    tc: &TestCluster,
    key_id: &str,
    message: &[u8],
    idem: &str,
) -> Result<pb::SignResponse, tonic::Status> {
    let ch = tc
        .coordinator_as("signer")
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    SigningClient::new(ch)
        .sign(
            tc.intended(pb::SignRequest {
                key_id: key_id.into(),
                message: message.to_vec(),
                idempotency_key: idem.into(),
                ..Default::default()
            })
            .await?,
        )
        .await
        .map(tonic::Response::into_inner)
}

fn verify_independently(scheme: pb::Scheme, public_key: &[u8], message: &[u8], signature: &[u8]) {
    match scheme {
        pb::Scheme::FrostSecp256k1 => {
            assert_eq!((public_key.len(), signature.len()), (33, 65));
            sigil_protocol::frost::verify(
                sigil_protocol::Scheme::FrostSecp256k1,
                public_key,
                message,
                signature,
            )
            .expect("FROST(secp256k1) signature verifies");
        }
        pb::Scheme::FrostTaproot => {
            assert_eq!((public_key.len(), signature.len()), (32, 64));
            let vk = k256::schnorr::VerifyingKey::from_bytes(public_key).expect("x-only key");
            let sig = k256::schnorr::Signature::try_from(signature).expect("64-byte signature");
            // BIP-340 over the raw message (k256's `Verifier` would hash it first).
            vk.verify_raw(message, &sig)
                .expect("BIP-340 signature verifies");
        }
        pb::Scheme::FrostEd25519 => {
            let vk = ed25519_dalek::VerifyingKey::from_bytes(
                public_key.try_into().expect("32-byte key"),
            )
            .expect("key");
            let sig = ed25519_dalek::Signature::from_slice(signature).expect("64-byte signature");
            vk.verify_strict(message, &sig)
                .expect("Ed25519 signature verifies");
        }
        other => panic!("not a FROST scheme: {other:?}"),
    }
}

async fn dkg_sign_verify(scheme: pb::Scheme) -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, scheme, 2, &[]).await?;
    assert_eq!(
        (key.threshold, key.participants.clone()),
        (2, vec![1, 2, 3])
    );
    let message = b"pay 1 BTC to bc1q...".to_vec();
    let sig = sign(&tc, &key.key_id, &message, "req-1").await?;
    assert_eq!(sig.public_key, key.public_key);
    assert_eq!(sig.signers.len(), 2);
    verify_independently(scheme, &key.public_key, &message, &sig.signature);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn frost_secp256k1_dkg_sign_verify() -> Result<()> {
    dkg_sign_verify(pb::Scheme::FrostSecp256k1).await
}

#[tokio::test]
async fn frost_taproot_dkg_sign_verify() -> Result<()> {
    dkg_sign_verify(pb::Scheme::FrostTaproot).await
}

#[tokio::test]
async fn frost_ed25519_dkg_sign_verify() -> Result<()> {
    dkg_sign_verify(pb::Scheme::FrostEd25519).await
}

#[tokio::test]
async fn two_of_three_signs_with_one_node_stopped() -> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostEd25519, 2, &[]).await?;
    assert!(tc.cluster.stop_node(2).await);
    // Several requests, so quorums that would include node 2 are exercised too.
    for i in 0..4 {
        let msg = format!("transfer #{i}").into_bytes();
        let sig = sign(&tc, &key.key_id, &msg, &format!("down-{i}")).await?;
        assert!(
            !sig.signers.contains(&2),
            "stopped node listed as signer: {:?}",
            sig.signers
        );
        verify_independently(
            pb::Scheme::FrostEd25519,
            &key.public_key,
            &msg,
            &sig.signature,
        );
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn three_of_five_works_and_quorums_span_zones() -> Result<()> {
    let tc = TestCluster::start(5).await?;
    for scheme in [pb::Scheme::FrostSecp256k1, pb::Scheme::FrostTaproot] {
        let key = create_key(&tc, scheme, 3, &[]).await?;
        assert_eq!(key.participants, vec![1, 2, 3, 4, 5]);
        let sig = sign(&tc, &key.key_id, b"3-of-5", &format!("{scheme:?}")).await?;
        assert_eq!(sig.signers.len(), 3);
        let mut zones: Vec<_> = sig.signers.iter().map(|s| sigil_cli_zone(*s)).collect();
        zones.dedup();
        assert_eq!(
            zones.len(),
            3,
            "quorum not spread over distinct zones: {:?}",
            sig.signers
        );
        verify_independently(scheme, &key.public_key, b"3-of-5", &sig.signature);
    }
    tc.shutdown().await;
    Ok(())
}

fn sigil_cli_zone(id: u32) -> String {
    sigil_testkit::sigil_cli::local::zone_of(u16::try_from(id).expect("small id"))
}

#[tokio::test]
async fn fewer_than_threshold_nodes_fails_unavailable_naming_them() -> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[]).await?;
    assert!(tc.cluster.stop_node(2).await);
    assert!(tc.cluster.stop_node(3).await);
    let err = sign(&tc, &key.key_id, b"no quorum", "nq")
        .await
        .expect_err("signed without a quorum");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("[2, 3]"),
        "nodes not named: {}",
        err.message()
    );
    // The failed request did not consume its idempotency key.
    let err = sign(&tc, &key.key_id, b"no quorum", "nq")
        .await
        .expect_err("still no quorum");
    assert_eq!(err.code(), Code::Unavailable);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn idempotency_returns_the_stored_signature_and_refuses_changes() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[]).await?;
    let first = sign(&tc, &key.key_id, b"message A", "idem-1").await?;
    assert!(!first.replayed);
    let again = sign(&tc, &key.key_id, b"message A", "idem-1").await?;
    assert!(again.replayed);
    assert_eq!(
        (again.signature, again.session_id),
        (first.signature.clone(), first.session_id.clone())
    );

    let err = sign(&tc, &key.key_id, b"message B", "idem-1")
        .await
        .expect_err("reuse accepted");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    let err = sign(&tc, &key.key_id, b"message B", "")
        .await
        .expect_err("missing key accepted");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("malformed intent"), "{err:?}");
    let err = sign(&tc, "key-does-not-exist", b"m", "x")
        .await
        .expect_err("unknown key");
    assert_eq!(err.code(), Code::NotFound);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn keys_report_their_chain_addresses() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let taproot = create_key(&tc, pb::Scheme::FrostTaproot, 2, &[]).await?;
    let addr = taproot
        .addresses
        .get("bitcoin")
        .context("no bitcoin address")?;
    assert!(addr.starts_with("bc1p") && addr.len() == 62, "{addr}");
    assert_eq!(
        sigil_chains::taproot_address(&taproot.public_key, sigil_chains::BitcoinNetwork::Mainnet)?,
        *addr
    );
    let ed = create_key(&tc, pb::Scheme::FrostEd25519, 2, &[]).await?;
    let sol = ed.addresses.get("solana").context("no solana address")?;
    assert_eq!(sigil_chains::solana_address(&ed.public_key)?, *sol);
    // The key list shows both.
    let list = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .list_keys(pb::ListKeysRequest {})
        .await?
        .into_inner();
    assert_eq!(list.keys.len(), 2);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn invalid_key_requests_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let mut admin = KeyAdminClient::new(tc.coordinator_as("operator")?);
    let cases = [
        (
            pb::CreateKeyRequest {
                scheme: pb::Scheme::Unspecified as i32,
                threshold: 2,
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            pb::CreateKeyRequest {
                scheme: pb::Scheme::FrostSecp256k1 as i32,
                threshold: 1,
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            pb::CreateKeyRequest {
                scheme: pb::Scheme::FrostSecp256k1 as i32,
                threshold: 4,
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            pb::CreateKeyRequest {
                scheme: pb::Scheme::FrostSecp256k1 as i32,
                threshold: 2,
                nodes: vec![1, 1, 2],
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
        (
            pb::CreateKeyRequest {
                scheme: pb::Scheme::FrostSecp256k1 as i32,
                threshold: 2,
                nodes: vec![1, 9],
                ..Default::default()
            },
            Code::InvalidArgument,
        ),
    ];
    for (req, code) in cases {
        let err = admin
            .create_key(req.clone())
            .await
            .expect_err("invalid request accepted");
        assert_eq!(err.code(), code, "{req:?}: {err:?}");
    }
    assert!(
        admin
            .list_keys(pb::ListKeysRequest {})
            .await?
            .into_inner()
            .keys
            .is_empty()
    );
    tc.shutdown().await;
    Ok(())
}

/// The DKG of a 2-of-3 key with one node down fails cleanly, naming it.
#[tokio::test]
async fn key_creation_needs_every_participant() -> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    assert!(tc.cluster.stop_node(3).await);
    let err = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[])
        .await
        .expect_err("DKG without node 3");
    let status = err
        .downcast_ref::<tonic::Status>()
        .context("not a gRPC status")?;
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("[3]"), "{}", status.message());
    // With the live nodes only, it works.
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1, 2, &[1, 2]).await?;
    assert_eq!(key.participants, vec![1, 2]);
    tc.shutdown().await;
    Ok(())
}
