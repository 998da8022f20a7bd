//! Cluster tests of threshold ECDSA (DKLs23) keys over real mTLS: DKG, then
//! signing, then verification with k256 and by public-key recovery; BIP-32
//! child keys derived from public data alone; an EIP-1559 transaction that
//! recovers to the key's Ethereum address; availability and quorum shapes;
//! requests the coordinator and the nodes refuse.

use anyhow::{Context, Result};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use sha3::{Digest, Keccak256};
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::TestCluster;
use tonic::Code;

async fn create_key(tc: &TestCluster, threshold: u32, nodes: &[u32]) -> Result<pb::KeyInfo> {
    let resp = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: pb::Scheme::EcdsaSecp256k1 as i32,
            threshold,
            nodes: nodes.to_vec(),
            label: "ecdsa".into(),
        })
        .await?
        .into_inner();
    resp.key.context("no key in response")
}

async fn sign(
    tc: &TestCluster,
    key_id: &str,
    message: &[u8],
    encoding: pb::MessageEncoding,
    path: &str,
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
                derivation_path: path.into(),
                encoding: encoding as i32,
                ..Default::default()
            })
            .await?,
        )
        .await
        .map(tonic::Response::into_inner)
}

async fn public_key(
    tc: &TestCluster,
    key_id: &str,
    path: &str,
) -> Result<pb::GetPublicKeyResponse, tonic::Status> {
    let ch = tc
        .coordinator_as("signer")
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    SigningClient::new(ch)
        .get_public_key(pb::GetPublicKeyRequest {
            key_id: key_id.into(),
            derivation_path: path.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Checks a 64-byte `r‖s` low-S signature over `digest` with k256 alone:
/// it verifies under `public_key`, and (r, s, recovery id) recovers it.
fn verify_and_recover(public_key: &[u8], digest: &[u8; 32], resp: &pb::SignResponse) {
    assert_eq!(public_key.len(), 33, "compressed SEC1 key");
    assert_eq!(resp.signature.len(), 64, "r‖s");
    let key = VerifyingKey::from_sec1_bytes(public_key).expect("valid key");
    let signature = Signature::from_slice(&resp.signature).expect("r‖s");
    assert!(signature.normalize_s().is_none(), "signature is low-S");
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    key.verify_prehash(digest, &signature)
        .expect("signature verifies under the key");
    let id = RecoveryId::from_byte(u8::try_from(resp.recovery_id).expect("small"))
        .expect("recovery id 0..=3");
    let recovered =
        VerifyingKey::recover_from_prehash(digest, &signature, id).expect("recoverable");
    assert_eq!(recovered, key, "recovery id recovers the signing key");
}

/// The Ethereum address of a key, computed here from k256 and Keccak-256 only.
fn eth_address(public_key: &[u8]) -> [u8; 20] {
    let key = VerifyingKey::from_sec1_bytes(public_key).expect("valid key");
    let point = key.to_encoded_point(false);
    let hash = Keccak256::digest(&point.as_bytes()[1..]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

#[tokio::test]
async fn ecdsa_dkg_sign_verify_and_recover() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, 2, &[]).await?;
    assert_eq!(key.scheme, pb::Scheme::EcdsaSecp256k1 as i32);
    assert_eq!(
        (key.threshold, key.participants.clone()),
        (2, vec![1, 2, 3])
    );
    let eth = key.addresses.get("ethereum").context("ethereum address")?;
    assert_eq!(
        eth.to_lowercase(),
        format!("0x{}", hex::encode(eth_address(&key.public_key)))
    );
    assert_ne!(eth, &eth.to_lowercase(), "EIP-55 checksummed");
    assert!(
        key.addresses
            .get("tron")
            .is_some_and(|a| a.starts_with('T'))
    );
    // Every address of the key, as sigil-chains encodes them.
    let expected: std::collections::HashMap<_, _> =
        sigil_chains::addresses(sigil_protocol::Scheme::EcdsaSecp256k1, &key.public_key)?
            .into_iter()
            .collect();
    assert_eq!(key.addresses, expected);
    assert!(
        key.addresses
            .get("bitcoin")
            .is_some_and(|a| a.starts_with("bc1q"))
    );

    // A digest given as is.
    let digest: [u8; 32] = Keccak256::digest(b"withdrawal #1").into();
    let resp = sign(
        &tc,
        &key.key_id,
        &digest,
        pb::MessageEncoding::Raw,
        "",
        "raw-1",
    )
    .await?;
    assert_eq!(resp.public_key, key.public_key);
    assert_eq!(resp.signers.len(), 2);
    verify_and_recover(&key.public_key, &digest, &resp);

    // A message Sigil hashes (Keccak-256 and SHA-256).
    let resp = sign(
        &tc,
        &key.key_id,
        b"withdrawal #1",
        pb::MessageEncoding::Keccak256,
        "",
        "k-1",
    )
    .await?;
    verify_and_recover(&key.public_key, &digest, &resp);
    let sha: [u8; 32] = sha2_digest(b"withdrawal #1");
    let resp = sign(
        &tc,
        &key.key_id,
        b"withdrawal #1",
        pb::MessageEncoding::Sha256,
        "",
        "s-1",
    )
    .await?;
    verify_and_recover(&key.public_key, &sha, &resp);

    // Idempotency: same key and request → the stored signature; different request → refused.
    let again = sign(
        &tc,
        &key.key_id,
        b"withdrawal #1",
        pb::MessageEncoding::Sha256,
        "",
        "s-1",
    )
    .await?;
    assert!(again.replayed);
    assert_eq!(again.signature, resp.signature);
    let conflict = sign(
        &tc,
        &key.key_id,
        b"withdrawal #2",
        pb::MessageEncoding::Sha256,
        "",
        "s-1",
    )
    .await;
    assert_eq!(conflict.err().map(|s| s.code()), Some(Code::AlreadyExists));
    tc.shutdown().await;
    Ok(())
}

fn sha2_digest(bytes: &[u8]) -> [u8; 32] {
    use k256::sha2::Sha256;
    Sha256::digest(bytes).into()
}

#[tokio::test]
async fn child_keys_sign_under_keys_derived_from_public_data() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, 2, &[]).await?;
    let digest: [u8; 32] = Keccak256::digest(b"deposit sweep").into();
    let mut seen = Vec::new();
    for path in ["m/0/42", "m/0/43", "m/7"] {
        let child = public_key(&tc, &key.key_id, path).await?;
        assert_ne!(
            child.public_key, key.public_key,
            "{path} is a different key"
        );
        assert!(child.addresses.contains_key("ethereum"));
        let resp = sign(
            &tc,
            &key.key_id,
            &digest,
            pb::MessageEncoding::Raw,
            path,
            path,
        )
        .await?;
        // The nodes derived their child shares; the coordinator derived the
        // child key from the master public key and chain code alone.
        assert_eq!(resp.public_key, child.public_key, "{path}");
        verify_and_recover(&child.public_key, &digest, &resp);
        seen.push(child.public_key);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3);
    // "m" is the key itself.
    assert_eq!(
        public_key(&tc, &key.key_id, "m").await?.public_key,
        key.public_key
    );

    // Hardened and malformed paths are refused with a clear error, before any protocol runs.
    for bad in ["m/0'", "m/0h", "m/2147483648", "0/1", "m//1", "m/x"] {
        let status = sign(
            &tc,
            &key.key_id,
            &digest,
            pb::MessageEncoding::Raw,
            bad,
            bad,
        )
        .await
        .err()
        .with_context(|| format!("{bad} was accepted"))?;
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
        let status = public_key(&tc, &key.key_id, bad)
            .await
            .err()
            .context("accepted")?;
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn eip1559_transaction_recovers_to_the_key_address() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, 2, &[]).await?;
    let path = "m/0/5";
    let account = public_key(&tc, &key.key_id, path).await?;
    let tx = sigil_chains::Eip1559Tx {
        chain_id: 1,
        nonce: 9,
        max_priority_fee_per_gas: 2_000_000_000,
        max_fee_per_gas: 40_000_000_000,
        gas_limit: 21_000,
        to: Some([0x11; 20]),
        value: sigil_chains::U256::from(1_000_000_000_000_000_000u128),
        data: Vec::new(),
    };
    let payload = tx.signing_payload();
    // The nodes receive the unsigned transaction and hash it themselves.
    let resp = sign(
        &tc,
        &key.key_id,
        &payload,
        pb::MessageEncoding::Keccak256,
        path,
        "tx-9",
    )
    .await?;
    let signing_hash: [u8; 32] = Keccak256::digest(&payload).into();
    assert_eq!(signing_hash, tx.signing_hash());
    verify_and_recover(&account.public_key, &signing_hash, &resp);

    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&resp.signature[..32]);
    s.copy_from_slice(&resp.signature[32..]);
    let raw = tx.encode_signed(r, s, u8::try_from(resp.recovery_id & 1)?)?;
    assert_eq!(raw.first(), Some(&0x02), "EIP-2718 type 2");
    // Recover the sender from the raw transaction's own bytes: the signing
    // hash is keccak(0x02 ‖ rlp(first nine fields)); r, s and y-parity are
    // the last three items.
    let signature = Signature::from_scalars(r, s)?;
    let id = RecoveryId::from_byte(u8::try_from(resp.recovery_id)?).context("recovery id")?;
    let sender = VerifyingKey::recover_from_prehash(&signing_hash, &signature, id)?;
    let sender = eth_address(sender.to_encoded_point(true).as_bytes());
    let expected = account.addresses.get("ethereum").context("address")?;
    assert_eq!(
        format!("0x{}", hex::encode(sender)),
        expected.to_lowercase()
    );
    // RLP writes s as a minimal big-endian integer: without leading zeros.
    let s_minimal: Vec<u8> = s.iter().copied().skip_while(|b| *b == 0).collect();
    assert!(
        hex::encode(&raw).ends_with(&hex::encode(s_minimal)),
        "s is the last item"
    );
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn two_of_three_signs_with_one_node_stopped_and_three_of_five_works() -> Result<()> {
    let mut tc = TestCluster::start(5).await?;
    let small = create_key(&tc, 2, &[1, 2, 3]).await?;
    let big = create_key(&tc, 3, &[]).await?;
    assert_eq!(big.participants, vec![1, 2, 3, 4, 5]);
    assert!(tc.cluster.stop_node(2).await);
    for i in 0..3 {
        let digest: [u8; 32] = Keccak256::digest(format!("payout {i}")).into();
        let resp = sign(
            &tc,
            &small.key_id,
            &digest,
            pb::MessageEncoding::Raw,
            "",
            &format!("s{i}"),
        )
        .await?;
        assert!(
            !resp.signers.contains(&2),
            "stopped node signed: {:?}",
            resp.signers
        );
        verify_and_recover(&small.public_key, &digest, &resp);
        let resp = sign(
            &tc,
            &big.key_id,
            &digest,
            pb::MessageEncoding::Raw,
            "m/1",
            &format!("b{i}"),
        )
        .await?;
        assert_eq!(resp.signers.len(), 3);
        assert!(!resp.signers.contains(&2));
        let child = public_key(&tc, &big.key_id, "m/1").await?;
        verify_and_recover(&child.public_key, &digest, &resp);
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn malformed_ecdsa_requests_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, 2, &[]).await?;
    // A raw ECDSA message must be a 32-byte digest.
    let status = sign(
        &tc,
        &key.key_id,
        b"not a digest",
        pb::MessageEncoding::Raw,
        "",
        "x1",
    )
    .await
    .err()
    .context("accepted")?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("a raw digest is 32 bytes"),
        "{}",
        status.message()
    );
    // Unknown encodings are refused.
    let status = sign(
        &tc,
        &key.key_id,
        &[0u8; 32],
        pb::MessageEncoding::Raw,
        "",
        "x2",
    );
    assert!(status.await.is_ok());
    let ch = tc.coordinator_as("signer")?;
    let status = SigningClient::new(ch)
        .sign(
            tc.intended(pb::SignRequest {
                key_id: key.key_id.clone(),
                message: vec![1; 32],
                idempotency_key: "x3".into(),
                encoding: 99,
                ..Default::default()
            })
            .await?,
        )
        .await
        .err()
        .context("accepted")?;
    assert_eq!(status.code(), Code::InvalidArgument);
    // FROST keys take no paths and no hashing.
    let frost = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: pb::Scheme::FrostSecp256k1 as i32,
            threshold: 2,
            ..Default::default()
        })
        .await?
        .into_inner()
        .key
        .context("key")?;
    for (encoding, path) in [
        (pb::MessageEncoding::Raw, "m/1"),
        (pb::MessageEncoding::Keccak256, ""),
    ] {
        let status = sign(&tc, &frost.key_id, b"hello", encoding, path, "x4")
            .await
            .err()
            .context("accepted")?;
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    tc.shutdown().await;
    Ok(())
}
