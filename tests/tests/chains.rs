//! Chain transactions end to end: the payment service sends an unsigned
//! transaction in its signed intent, every node decodes it and computes
//! what it signs, and the coordinator returns the transaction ready for its
//! chain. Signatures are checked by an independent implementation of each
//! chain's rules (Bitcoin Core's script interpreter, libbitcoinconsensus,
//! for Bitcoin).
//!
//! Each test runs a 3-node cluster on the default dev policy (any asset,
//! no limits) unless it applies its own.

use anyhow::{Context, Result};
use bitcoin::hashes::Hash as _;
use bitcoin::key::{CompressedPublicKey, TweakedPublicKey};
use bitcoin::psbt::Psbt;
use bitcoin::secp256k1::XOnlyPublicKey;
use bitcoin::{
    Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid,
    Witness, absolute::LockTime, consensus, transaction::Version,
};
use sigil_proto::v1 as pb;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::{RogueCoordinator, TestCluster};
use tonic::Code;

async fn public_key(tc: &TestCluster, key: &pb::KeyInfo, path: &str) -> Result<Vec<u8>> {
    Ok(SigningClient::new(tc.coordinator_as("signer")?)
        .get_public_key(pb::GetPublicKeyRequest {
            key_id: key.key_id.clone(),
            derivation_path: path.into(),
        })
        .await?
        .into_inner()
        .public_key)
}

/// Applies `toml` signed by officers 1 and 2; every node takes it.
async fn apply_policy(tc: &TestCluster, toml: &str) -> Result<()> {
    let resp = tc
        .apply_policy_toml(toml, &["officer-1", "officer-2"])
        .await?;
    assert_eq!(resp.accepted, [1, 2, 3], "{resp:?}");
    Ok(())
}

/// Applies version 1 of `key`'s policy for the `signer` requester: each
/// asset with its per-transaction limit (`None`: allowed, unlimited), then
/// `rest` (more TOML tables).
async fn apply_limits(
    tc: &TestCluster,
    key: &pb::KeyInfo,
    assets: &[(&str, Option<&str>)],
    rest: &str,
) -> Result<()> {
    let mut toml = format!(
        "key_id = \"{}\"\nversion = 1\nrequesters = [\"signer\"]\n",
        key.key_id
    );
    for (asset, max_per_tx) in assets {
        toml.push_str(&format!("\n[[assets]]\nasset = \"{asset}\"\n"));
        if let Some(max) = max_per_tx {
            toml.push_str(&format!("max_per_tx = \"{max}\"\n"));
        }
    }
    toml.push_str(rest);
    apply_policy(tc, &toml).await
}

/// The same intent sent straight to every node (as a compromised
/// coordinator would) is refused by each as invalid, naming `fragment`.
async fn every_node_finds_it_invalid(
    tc: &TestCluster,
    intent: &pb::SignedIntent,
    fragment: &str,
) -> Result<()> {
    let rogue = RogueCoordinator::new(tc)?;
    for (id, status) in (1u16..).zip(rogue.refusals(intent, &[1, 2, 3]).await?) {
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "node {id}: {status:?}"
        );
        assert!(status.message().contains(fragment), "node {id}: {status:?}");
    }
    Ok(())
}

fn taproot_script(output_key: &[u8]) -> Result<ScriptBuf> {
    let q = XOnlyPublicKey::from_slice(output_key)?;
    Ok(ScriptBuf::new_p2tr_tweaked(
        TweakedPublicKey::dangerous_assume_tweaked(q),
    ))
}

fn p2wpkh_script(public_key: &[u8]) -> Result<ScriptBuf> {
    let pk = CompressedPublicKey::from_slice(public_key)?;
    Ok(ScriptBuf::new_p2wpkh(&pk.wpubkey_hash()))
}

/// Someone else's P2WPKH output (BIP-173's example key).
fn stranger() -> Result<ScriptBuf> {
    p2wpkh_script(&hex::decode(
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    )?)
}

/// A PSBT spending `prevouts` (script, satoshi) to `outputs`, each input
/// with its `witness_utxo`.
fn psbt(prevouts: &[(ScriptBuf, u64)], outputs: &[(ScriptBuf, u64)]) -> Result<Psbt> {
    let tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: (0..prevouts.len())
            .map(|i| TxIn {
                previous_output: OutPoint {
                    txid: Txid::from_byte_array([u8::try_from(i).unwrap_or(0) + 1; 32]),
                    vout: 0,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs
            .iter()
            .map(|(script, sat)| TxOut {
                value: Amount::from_sat(*sat),
                script_pubkey: script.clone(),
            })
            .collect(),
    };
    let mut psbt = Psbt::from_unsigned_tx(tx)?;
    for (input, (script, sat)) in psbt.inputs.iter_mut().zip(prevouts) {
        input.witness_utxo = Some(TxOut {
            value: Amount::from_sat(*sat),
            script_pubkey: script.clone(),
        });
    }
    Ok(psbt)
}

fn psbt_payload(psbt: &Psbt) -> pb::payload::Kind {
    pb::payload::Kind::BitcoinPsbt(pb::BitcoinPsbt {
        psbt: psbt.serialize(),
        network: String::new(),
    })
}

/// Every input of `raw` spends its prevout under Bitcoin Core's rules.
fn assert_core_accepts(raw: &[u8], prevouts: &[(ScriptBuf, u64)]) -> Result<()> {
    let utxos: Vec<bitcoinconsensus::Utxo> = prevouts
        .iter()
        .map(|(script, sat)| bitcoinconsensus::Utxo {
            script_pubkey: script.as_bytes().as_ptr(),
            script_pubkey_len: u32::try_from(script.len()).unwrap_or(u32::MAX),
            value: i64::try_from(*sat).unwrap_or(i64::MAX),
        })
        .collect();
    for (i, (script, sat)) in prevouts.iter().enumerate() {
        bitcoinconsensus::verify(script.as_bytes(), *sat, raw, Some(&utxos), i)
            .map_err(|e| anyhow::anyhow!("input {i} rejected by libbitcoinconsensus: {e:?}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn a_taproot_key_path_spend_with_two_inputs_is_signed_and_bitcoin_core_accepts_it()
-> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = tc.create_key(pb::Scheme::FrostTaproot, 2).await?;
    let ours = taproot_script(&key.public_key)?;
    let prevouts = [(ours.clone(), 70_000), (ours.clone(), 50_000)];
    let psbt = psbt(&prevouts, &[(stranger()?, 100_000), (ours, 19_000)])?;
    let resp = tc
        .sign(tc.intent_request(&key, "", psbt_payload(&psbt), "taproot-2-inputs")?)
        .await?;

    assert_eq!(resp.parts.len(), 2, "one signature per input: {resp:?}");
    let tx = resp.transaction.context("a signed transaction")?;
    assert_core_accepts(&tx.raw, &prevouts)?;
    let decoded: Transaction = consensus::deserialize(&tx.raw)?;
    assert_eq!(tx.id, decoded.compute_txid().to_string());
    assert_eq!(decoded.compute_txid(), psbt.unsigned_tx.compute_txid());
    let signed = Psbt::deserialize(&bitcoin::base64::Engine::decode(
        &bitcoin::base64::engine::general_purpose::STANDARD,
        &tx.psbt,
    )?)?;
    assert!(
        signed
            .inputs
            .iter()
            .all(|i| i.final_script_witness.is_some()),
        "every input finalized"
    );
    Ok(())
}

#[tokio::test]
async fn a_p2wpkh_spend_from_a_child_key_is_signed_and_bitcoin_core_accepts_it() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = tc.create_key(pb::Scheme::EcdsaSecp256k1, 2).await?;
    let child = public_key(&tc, &key, "m/0/5").await?;
    let ours = p2wpkh_script(&child)?;
    let master = p2wpkh_script(&key.public_key)?;
    // One input at the request's child path, one at the master key.
    let prevouts = [(ours.clone(), 40_000), (master, 25_000)];
    let psbt = psbt(&prevouts, &[(stranger()?, 60_000), (ours, 4_000)])?;
    let resp = tc
        .sign(tc.intent_request(&key, "m/0/5", psbt_payload(&psbt), "p2wpkh-child")?)
        .await?;
    let tx = resp.transaction.context("a signed transaction")?;
    assert_core_accepts(&tx.raw, &prevouts)?;
    assert_eq!(resp.parts.len(), 2);
    assert_eq!(
        resp.parts[0].public_key, child,
        "input 0 signed by the child key"
    );
    assert_eq!(
        resp.parts[1].public_key, key.public_key,
        "input 1 by the master key"
    );
    Ok(())
}

#[tokio::test]
async fn a_psbt_over_the_bitcoin_limit_counting_its_fee_is_refused_by_policy() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = tc.create_key(pb::Scheme::FrostTaproot, 2).await?;
    let denied = Address::from_script(
        &p2wpkh_script(&hex::decode(
            "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5",
        )?)?,
        Network::Bitcoin,
    )?;
    apply_limits(
        &tc,
        &key,
        &[("bitcoin:mainnet/native", Some("100000"))],
        &format!("\n[[destinations]]\nchain = \"bitcoin:mainnet\"\ndeny = [\"{denied}\"]\n"),
    )
    .await?;
    let ours = taproot_script(&key.public_key)?;
    let prevouts = [(ours.clone(), 150_000)];

    // 99 000 to someone else and a 2 000 fee: 101 000 leave the key.
    let over = psbt(&prevouts, &[(stranger()?, 99_000), (ours.clone(), 49_000)])?;
    let err = tc
        .sign(tc.intent_request(&key, "", psbt_payload(&over), "btc-over")?)
        .await
        .expect_err("over the limit");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("max_per_tx"), "{err:?}");

    // A denied destination.
    let denied = p2wpkh_script(&hex::decode(
        "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5",
    )?)?;
    let to_denied = psbt(&prevouts, &[(denied, 1_000), (ours.clone(), 148_000)])?;
    let err = tc
        .sign(tc.intent_request(&key, "", psbt_payload(&to_denied), "btc-denied")?)
        .await
        .expect_err("denied destination");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("denylist"), "{err:?}");

    // Within the limit: signed.
    let within = psbt(&prevouts, &[(stranger()?, 90_000), (ours, 58_000)])?;
    let resp = tc
        .sign(tc.intent_request(&key, "", psbt_payload(&within), "btc-ok")?)
        .await?;
    assert_core_accepts(&resp.transaction.context("signed")?.raw, &prevouts)?;
    Ok(())
}

#[tokio::test]
async fn a_psbt_spending_another_keys_output_is_invalid_at_the_coordinator_and_at_every_node()
-> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = tc.create_key(pb::Scheme::FrostTaproot, 2).await?;
    let ours = taproot_script(&key.public_key)?;
    let prevouts = [(ours.clone(), 50_000), (stranger()?, 50_000)];
    let theirs = psbt(&prevouts, &[(ours, 90_000)])?;
    let req = tc.intent_request(&key, "", psbt_payload(&theirs), "btc-theirs")?;
    let err = tc.sign(req.clone()).await.expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("input 1"), "{err:?}");

    every_node_finds_it_invalid(&tc, &req.intent.context("intent")?, "input 1").await?;

    // Without its previous output, an input's amount is unknown: refused.
    let mut bare = psbt(
        &[(taproot_script(&key.public_key)?, 50_000)],
        &[(stranger()?, 40_000)],
    )?;
    bare.inputs[0].witness_utxo = None;
    let err = tc
        .sign(tc.intent_request(&key, "", psbt_payload(&bare), "btc-bare")?)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    // Truncated bytes.
    let mut bytes = theirs.serialize();
    bytes.truncate(bytes.len() - 3);
    let truncated = pb::payload::Kind::BitcoinPsbt(pb::BitcoinPsbt {
        psbt: bytes,
        network: String::new(),
    });
    let err = tc
        .sign(tc.intent_request(&key, "", truncated, "btc-truncated")?)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    Ok(())
}

mod tron {
    //! TRON: TRX and TRC-20 (USDT) transfers signed by an ECDSA key.

    use prost::Message as _;
    use sigil_chains::tron::{self, proto};

    use super::*;

    const USDT: &str = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c";
    const RECIPIENT: [u8; 20] = [0x11; 20];

    fn now_ms() -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }

    fn contract(
        kind: proto::transaction::contract::ContractType,
        type_url: &str,
        value: Vec<u8>,
    ) -> Vec<u8> {
        proto::transaction::Raw {
            ref_block_bytes: vec![0xa1, 0xb2],
            ref_block_hash: vec![1, 2, 3, 4, 5, 6, 7, 8],
            expiration: now_ms() + 60_000,
            timestamp: now_ms(),
            fee_limit: 30_000_000,
            contract: vec![proto::transaction::Contract {
                r#type: kind as i32,
                parameter: Some(proto::Any {
                    type_url: type_url.into(),
                    value,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// `raw_data` of a TRX transfer of `sun` from `owner`.
    pub fn trx_transfer(owner: &[u8; 20], sun: i64) -> Vec<u8> {
        contract(
            proto::transaction::contract::ContractType::TransferContract,
            "type.googleapis.com/protocol.TransferContract",
            proto::TransferContract {
                owner_address: tron::tron_address_hex_bytes(owner).to_vec(),
                to_address: tron::tron_address_hex_bytes(&RECIPIENT).to_vec(),
                amount: sun,
            }
            .encode_to_vec(),
        )
    }

    /// `raw_data` of a USDT (TRC-20) transfer of `amount` from `owner`.
    fn usdt_transfer(owner: &[u8; 20], amount: u64) -> Result<Vec<u8>> {
        let mut data = hex::decode("a9059cbb")?;
        data.extend_from_slice(&[0u8; 12]);
        data.extend_from_slice(&RECIPIENT);
        data.extend_from_slice(&[0u8; 24]);
        data.extend_from_slice(&amount.to_be_bytes());
        Ok(contract(
            proto::transaction::contract::ContractType::TriggerSmartContract,
            "type.googleapis.com/protocol.TriggerSmartContract",
            proto::TriggerSmartContract {
                owner_address: tron::tron_address_hex_bytes(owner).to_vec(),
                contract_address: hex::decode(USDT)?,
                data,
                ..Default::default()
            }
            .encode_to_vec(),
        ))
    }

    pub fn payload(raw_data: Vec<u8>) -> pb::payload::Kind {
        pb::payload::Kind::TronTransaction(pb::TronTransaction {
            raw_data,
            network: String::new(),
        })
    }

    /// The signed transaction's signature recovers to `address`.
    fn assert_recovers(tx: &pb::SignedTransaction, raw_data: &[u8], address: &str) -> Result<()> {
        let signed = proto::Transaction::decode(tx.raw.as_slice())?;
        assert_eq!(
            signed.raw_data.map(|r| r.encode_to_vec()).as_deref(),
            Some(raw_data)
        );
        let sig: [u8; 65] = signed
            .signature
            .first()
            .context("one signature")?
            .as_slice()
            .try_into()?;
        assert_eq!(tron::recover_address(raw_data, &sig)?, address);
        assert_eq!(tx.id, tron::transaction_id(raw_data));
        let json: serde_json::Value = serde_json::from_str(&tx.json)?;
        assert_eq!(json["txID"], tx.id);
        Ok(())
    }

    #[tokio::test]
    async fn a_trx_and_a_usdt_transfer_are_signed_and_recover_to_the_keys_tron_address()
    -> Result<()> {
        let tc = TestCluster::start(3).await?;
        let key = tc.create_key(pb::Scheme::EcdsaSecp256k1, 2).await?;
        let owner = sigil_chains::ethereum_address_bytes(&key.public_key)?;
        let address = tron::tron_address(&key.public_key)?;

        let trx = trx_transfer(&owner, 1_500_000);
        let resp = tc
            .sign(tc.intent_request(&key, "", payload(trx.clone()), "trx")?)
            .await?;
        assert_recovers(&resp.transaction.context("signed")?, &trx, &address)?;

        let usdt = usdt_transfer(&owner, 25_000_000)?;
        let resp = tc
            .sign(tc.intent_request(&key, "", payload(usdt.clone()), "usdt")?)
            .await?;
        assert_recovers(&resp.transaction.context("signed")?, &usdt, &address)?;
        Ok(())
    }

    #[tokio::test]
    async fn a_trx_transfer_over_the_limit_and_one_from_another_owner_are_refused() -> Result<()> {
        let tc = TestCluster::start(3).await?;
        let key = tc.create_key(pb::Scheme::EcdsaSecp256k1, 2).await?;
        apply_limits(&tc, &key, &[("tron:mainnet/native", Some("1000000"))], "").await?;
        let owner = sigil_chains::ethereum_address_bytes(&key.public_key)?;
        let err = tc
            .sign(tc.intent_request(
                &key,
                "",
                payload(trx_transfer(&owner, 2_000_000)),
                "trx-over",
            )?)
            .await
            .expect_err("over the limit");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("max_per_tx"), "{err:?}");
        tc.sign(tc.intent_request(&key, "", payload(trx_transfer(&owner, 900_000)), "trx-ok")?)
            .await?;

        // Someone else's account as the owner: not the key's transaction.
        let req = tc.intent_request(
            &key,
            "",
            payload(trx_transfer(&[0x22; 20], 1_000)),
            "trx-other-owner",
        )?;
        let err = tc.sign(req.clone()).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("owner"), "{err:?}");
        every_node_finds_it_invalid(&tc, &req.intent.context("intent")?, "owner").await?;
        Ok(())
    }
}

mod solana {
    //! Solana: a System transfer and an SPL Token transfer signed by a
    //! frost-ed25519 key, verified by the Solana crates' own code and
    //! executed by an independent Solana runtime (`sigil-solana-exec`,
    //! LiteSVM, built from `tests/solana-runtime`: its Solana crates cannot
    //! share this workspace's versions).

    use solana_address::Address;
    use solana_message::{Instruction, VersionedMessage};
    use solana_transaction::versioned::VersionedTransaction;

    use super::*;

    const TOKEN_PROGRAM: &str = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA";
    const USDC_MINT: &str = "EPjFWJd5AufqSSqeM5qZxM1wJ4ZuwMRdrAGyDbTd8vC";

    fn address(seed: u8) -> Address {
        Address::new_from_array([seed; 32])
    }

    fn message(instructions: &[Instruction], payer: &Address) -> Result<Vec<u8>> {
        let mut message = solana_message::Message::new(instructions, Some(payer));
        message.recent_blockhash = solana_message::Hash::new_from_array([9; 32]);
        Ok(wincode::serialize(&VersionedMessage::Legacy(message))?)
    }

    pub fn payload(message: Vec<u8>) -> pb::payload::Kind {
        pb::payload::Kind::SolanaMessage(pb::SolanaMessage {
            message,
            lookup_tables: Vec::new(),
            cluster: String::new(),
        })
    }

    fn key_address(key: &pb::KeyInfo) -> Result<Address> {
        Ok(Address::new_from_array(
            key.public_key.as_slice().try_into()?,
        ))
    }

    fn assert_solana_verifies(tx: &pb::SignedTransaction, message: &[u8]) -> Result<()> {
        let decoded: VersionedTransaction = wincode::deserialize(&tx.raw)?;
        decoded
            .verify_and_hash_message()
            .map_err(|e| anyhow::anyhow!("Solana refuses the transaction: {e:?}"))?;
        assert_eq!(wincode::serialize(&decoded.message)?, message);
        assert_eq!(tx.id, decoded.signatures[0].to_string());
        use bitcoin::base64::Engine as _;
        assert_eq!(
            bitcoin::base64::engine::general_purpose::STANDARD.decode(&tx.base64)?,
            tx.raw
        );
        Ok(())
    }

    /// The runtime's binary: `SIGIL_SOLANA_EXEC` if set (CI builds it
    /// first), else built here (a debug build, about two minutes cold).
    fn solana_exec() -> Result<std::path::PathBuf> {
        if let Ok(path) = std::env::var("SIGIL_SOLANA_EXEC") {
            return Ok(path.into());
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("solana-runtime");
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .args(["build", "--locked", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(dir.join("target"))
            .status()
            .context("building sigil-solana-exec")?;
        anyhow::ensure!(status.success(), "building sigil-solana-exec failed");
        Ok(dir.join("target/debug/sigil-solana-exec"))
    }

    /// Runs `input` (the tool's JSON contract) through the Solana runtime.
    fn execute(input: &serde_json::Value) -> Result<serde_json::Value> {
        use std::io::Write as _;
        let mut child = std::process::Command::new(solana_exec()?)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting sigil-solana-exec")?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(input.to_string().as_bytes())?;
        let out = child.wait_with_output()?;
        anyhow::ensure!(out.status.success(), "sigil-solana-exec: {}", out.status);
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    #[tokio::test]
    async fn a_system_transfer_and_an_spl_transfer_are_signed_and_executed_by_a_solana_runtime()
    -> Result<()> {
        let tc = TestCluster::start(3).await?;
        let key = tc.create_key(pb::Scheme::FrostEd25519, 2).await?;
        let payer = key_address(&key)?;

        let transfer = message(
            &[solana_system_interface::instruction::transfer(
                &payer,
                &address(7),
                1_500_000,
            )],
            &payer,
        )?;
        let resp = tc
            .sign(tc.intent_request(&key, "", payload(transfer.clone()), "sol")?)
            .await?;
        let sol_tx = resp.transaction.context("signed")?;
        assert_solana_verifies(&sol_tx, &transfer)?;

        let spl = message(
            &[spl_token_interface::instruction::transfer_checked(
                &TOKEN_PROGRAM.parse()?,
                &address(3),
                &USDC_MINT.parse()?,
                &address(4),
                &payer,
                &[],
                2_500_000,
                6,
            )?],
            &payer,
        )?;
        let resp = tc
            .sign(tc.intent_request(&key, "", payload(spl.clone()), "spl")?)
            .await?;
        let spl_tx = resp.transaction.context("signed")?;
        assert_solana_verifies(&spl_tx, &spl)?;

        // Both, as broadcast, in a Solana runtime with signature checks on:
        // the key's account pays 5000 lamports a signature and both move funds.
        let run = execute(&serde_json::json!({
            "accounts": [
                {"kind": "system", "address": payer.to_string(), "lamports": 1_000_000_000u64},
                {"kind": "token_mint", "address": USDC_MINT, "decimals": 6, "supply": 10_000_000u64},
                {"kind": "token_account", "address": address(3).to_string(), "mint": USDC_MINT,
                 "owner": payer.to_string(), "amount": 10_000_000u64},
                {"kind": "token_account", "address": address(4).to_string(), "mint": USDC_MINT,
                 "owner": address(5).to_string(), "amount": 0},
            ],
            "transactions": [sol_tx.base64, spl_tx.base64],
            "report": [payer.to_string(), address(7).to_string(), address(3).to_string(),
                       address(4).to_string()],
        }))?;
        for (i, result) in run["results"]
            .as_array()
            .context("results")?
            .iter()
            .enumerate()
        {
            assert_eq!(result["ok"], true, "transaction {i}: {result}");
        }
        assert_eq!(run["results"][0]["signature"], sol_tx.id.as_str());
        let accounts = &run["accounts"];
        assert_eq!(
            accounts[0]["lamports"],
            1_000_000_000u64 - 1_500_000 - 2 * 5_000
        );
        assert_eq!(accounts[1]["lamports"], 1_500_000);
        assert_eq!(accounts[2]["token_amount"], 10_000_000u64 - 2_500_000);
        assert_eq!(accounts[3]["token_amount"], 2_500_000);

        // The same transfer with one signature bit flipped: refused unexecuted.
        let mut forged = sol_tx.raw.clone();
        forged[1] ^= 1;
        use bitcoin::base64::Engine as _;
        let run = execute(&serde_json::json!({
            "accounts": [
                {"kind": "system", "address": payer.to_string(), "lamports": 1_000_000_000u64},
            ],
            "transactions": [bitcoin::base64::engine::general_purpose::STANDARD.encode(&forged)],
            "report": [address(7).to_string()],
        }))?;
        assert_eq!(run["results"][0]["ok"], false, "{run}");
        assert_eq!(run["results"][0]["error"], "SignatureFailure", "{run}");
        assert_eq!(run["accounts"][0]["lamports"], 0);
        Ok(())
    }

    #[tokio::test]
    async fn a_usdc_transfer_over_the_limit_and_a_message_paid_by_another_account_are_refused()
    -> Result<()> {
        let tc = TestCluster::start(3).await?;
        let key = tc.create_key(pb::Scheme::FrostEd25519, 2).await?;
        apply_limits(
            &tc,
            &key,
            &[
                (&format!("solana:mainnet/{USDC_MINT}"), Some("1000000")),
                ("solana:mainnet/native", None),
            ],
            "",
        )
        .await?;
        let payer = key_address(&key)?;
        let usdc = |amount| -> Result<Vec<u8>> {
            message(
                &[spl_token_interface::instruction::transfer_checked(
                    &TOKEN_PROGRAM.parse()?,
                    &address(3),
                    &USDC_MINT.parse()?,
                    &address(4),
                    &payer,
                    &[],
                    amount,
                    6,
                )?],
                &payer,
            )
        };
        let err = tc
            .sign(tc.intent_request(&key, "", payload(usdc(2_000_000)?), "usdc-over")?)
            .await
            .expect_err("over the limit");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("max_per_tx"), "{err:?}");
        tc.sign(tc.intent_request(&key, "", payload(usdc(900_000)?), "usdc-ok")?)
            .await?;

        // Paid by, and moving funds of, an account that is not the key.
        let other = address(8);
        let theirs = message(
            &[solana_system_interface::instruction::transfer(
                &other,
                &address(7),
                5,
            )],
            &other,
        )?;
        let req = tc.intent_request(&key, "", payload(theirs), "sol-theirs")?;
        let err = tc.sign(req.clone()).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("fee payer"), "{err:?}");
        every_node_finds_it_invalid(&tc, &req.intent.context("intent")?, "fee payer").await?;
        Ok(())
    }
}

mod ethereum {
    //! Ethereum: an EIP-1559 ERC-20 transfer returned as a raw signed
    //! transaction, and an EIP-2612 permit read as a token approval.

    use alloy_consensus::{SignableTransaction, Transaction as _, TxEip1559, TxEnvelope};
    use alloy_primitives::{Address, Bytes, TxKind, U256, address};
    use alloy_sol_types::SolCall;

    use super::*;

    const USDC: Address = address!("a0b86991c6218b36c1d19d4a2e9eb0ce3606eb48");
    const SPENDER: Address = address!("2222222222222222222222222222222222222222");

    alloy_sol_types::sol! {
        function transfer(address to, uint256 amount) returns (bool);
    }

    fn usdc_transfer(amount: u64) -> Vec<u8> {
        TxEip1559 {
            chain_id: 1,
            nonce: 3,
            gas_limit: 80_000,
            max_fee_per_gas: 30_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to: TxKind::Call(USDC),
            value: U256::ZERO,
            access_list: Default::default(),
            input: Bytes::from(
                transferCall {
                    to: SPENDER,
                    amount: U256::from(amount),
                }
                .abi_encode(),
            ),
        }
        .encoded_for_signing()
    }

    fn permit(owner: Address, value: u64) -> String {
        serde_json::json!({
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"}
                ],
                "Permit": [
                    {"name": "owner", "type": "address"},
                    {"name": "spender", "type": "address"},
                    {"name": "value", "type": "uint256"},
                    {"name": "nonce", "type": "uint256"},
                    {"name": "deadline", "type": "uint256"}
                ]
            },
            "primaryType": "Permit",
            "domain": {"name": "USD Coin", "version": "2", "chainId": 1, "verifyingContract": USDC},
            "message": {"owner": owner, "spender": SPENDER, "value": value.to_string(), "nonce": 0, "deadline": "1900000000"}
        })
        .to_string()
    }

    #[tokio::test]
    async fn an_erc20_transfer_comes_back_as_a_raw_transaction_from_the_key_and_a_permit_is_limited()
    -> Result<()> {
        let tc = TestCluster::start(3).await?;
        let key = tc.create_key(pb::Scheme::EcdsaSecp256k1, 2).await?;
        apply_limits(
            &tc,
            &key,
            &[(&format!("evm:1/{USDC:#x}"), Some("5000000"))],
            "",
        )
        .await?;
        let from = Address::from(sigil_chains::ethereum_address_bytes(&key.public_key)?);

        let tx = usdc_transfer(2_500_000);
        let resp = tc
            .sign(tc.intent_request(
                &key,
                "",
                pb::payload::Kind::EthereumTransaction(tx),
                "erc20",
            )?)
            .await?;
        let signed = resp.transaction.context("signed")?;
        let envelope = <TxEnvelope as alloy_eips::eip2718::Decodable2718>::decode_2718(
            &mut signed.raw.as_slice(),
        )?;
        assert_eq!(envelope.to(), Some(USDC));
        assert_eq!(signed.id, format!("{:#x}", envelope.tx_hash()));
        let sig = envelope.signature();
        let recovered = sigil_chains::RecoverableSignature {
            r: sig.r().to_be_bytes(),
            s: sig.s().to_be_bytes(),
            recovery_id: u8::from(sig.v()),
        }
        .recover_address(&envelope.signature_hash().0)?;
        assert_eq!(
            Address::from(recovered),
            from,
            "the raw transaction is from the key"
        );

        let over = usdc_transfer(6_000_000);
        let err = tc
            .sign(tc.intent_request(
                &key,
                "",
                pb::payload::Kind::EthereumTransaction(over),
                "erc20-over",
            )?)
            .await
            .expect_err("over the limit");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

        // A permit is an approval of the token to its spender: the same limit applies.
        let resp = tc
            .sign(tc.intent_request(
                &key,
                "",
                pb::payload::Kind::Eip712TypedData(permit(from, 1_000_000)),
                "permit",
            )?)
            .await?;
        let typed: alloy_dyn_abi::TypedData = serde_json::from_str(&permit(from, 1_000_000))?;
        let hash = typed.eip712_signing_hash()?;
        let signature = sigil_chains::RecoverableSignature::from_prehash(
            &key.public_key,
            &hash.0,
            resp.signature[..32].try_into()?,
            resp.signature[32..].try_into()?,
        )?;
        assert_eq!(Address::from(signature.recover_address(&hash.0)?), from);
        let err = tc
            .sign(tc.intent_request(
                &key,
                "",
                pb::payload::Kind::Eip712TypedData(permit(from, 9_000_000)),
                "permit-over",
            )?)
            .await
            .expect_err("over the limit");
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("max_per_tx"), "{err:?}");
        Ok(())
    }
}
