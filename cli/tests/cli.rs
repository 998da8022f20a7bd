//! End-to-end tests of the `sigil` binary: a local cluster (coordinator and
//! three nodes on ephemeral ports, real mTLS) runs in the test's runtime,
//! and the built binary is run against its data directory with `--json`:
//! key creation for every FROST scheme, signing (every request carries an
//! intent signed by the dev `signer` identity), offline verification (valid
//! and tampered), idempotent retries, the signing load generator, signed
//! policies (propose, officers sign, apply) enforced on `eth sign-tx`, the
//! approval round trip, and `btc sign-psbt`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use sigil_cli::local::{ClusterSpec, LocalCluster};

struct Env {
    cluster: LocalCluster,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().join("data");
        let cluster = LocalCluster::start(ClusterSpec::new(&data_dir, 3))
            .await
            .expect("cluster starts");
        Self {
            cluster,
            data_dir,
            _dir: dir,
        }
    }

    async fn sigil(&self, args: &[&str]) -> Output {
        sigil(&self.data_dir, args).await
    }

    /// Runs a command that must succeed and print one JSON value.
    async fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.sigil(&all).await;
        assert!(
            out.status.success(),
            "sigil {args:?} failed: {}",
            describe(&out)
        );
        parse(&out)
    }

    async fn create_key(&self, scheme: &str, extra: &[&str]) -> Value {
        let mut args = vec!["key", "create", "--scheme", scheme, "--threshold", "2"];
        args.extend_from_slice(extra);
        self.json(&args).await
    }

    async fn stop(self) {
        self.cluster.shutdown().await;
    }
}

/// Runs the `sigil` binary off the runtime's worker threads (the cluster
/// serves on them meanwhile).
async fn sigil(data_dir: &Path, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"));
    cmd.arg("--data-dir").arg(data_dir).args(args);
    // Only the data directory: no connection settings or profiles of the
    // environment the tests run in.
    for var in [
        "SIGIL_DATA_DIR",
        "SIGIL_COORDINATOR",
        "SIGIL_CA",
        "SIGIL_CERT",
        "SIGIL_KEY",
        "SIGIL_PROFILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("SIGIL_PROFILES", data_dir.join("no-profiles.toml"))
        .env("SIGIL_LOG", "warn");
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run the sigil binary")
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn parse(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", describe(out)))
}

fn str_field<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string {field:?} in {v}"))
}

fn verify_args<'a>(
    scheme: &'a str,
    public_key: &'a str,
    message_hex: &'a str,
    signature: &'a str,
) -> Vec<&'a str> {
    vec![
        "verify",
        "--scheme",
        scheme,
        "--public-key",
        public_key,
        "--message-hex",
        message_hex,
        "--signature",
        signature,
    ]
}

/// Flips one bit in the middle of a hex string.
fn tamper(hex_text: &str) -> String {
    let mut bytes = hex::decode(hex_text).expect("hex");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    hex::encode(bytes)
}

async fn create_sign_verify(scheme: &str, key_len: usize, sig_len: usize, address: Option<&str>) {
    let env = Env::start().await;
    let key = env
        .create_key(scheme, &["--nodes", "1,2,3", "--label", "cli test"])
        .await;
    let key_id = str_field(&key, "key_id").to_owned();
    let public_key = str_field(&key, "public_key").to_owned();
    assert_eq!(str_field(&key, "scheme"), scheme);
    assert_eq!(key["threshold"], 2);
    assert_eq!(key["participants"], serde_json::json!([1, 2, 3]));
    assert_eq!(key["label"], "cli test");
    assert_eq!(hex::decode(&public_key).expect("hex").len(), key_len);
    if let Some(chain) = address {
        assert!(key["addresses"][chain].is_string(), "{key}");
    }

    let message_hex = hex::encode(b"pay 1 unit to bob, invoice 42");
    let signed = env
        .json(&["sign", "--key", &key_id, "--message-hex", &message_hex])
        .await;
    let signature = str_field(&signed, "signature").to_owned();
    assert_eq!(hex::decode(&signature).expect("hex").len(), sig_len);
    assert_eq!(str_field(&signed, "public_key"), public_key);
    assert_eq!(str_field(&signed, "scheme"), scheme);
    assert_eq!(signed["signers"].as_array().map(Vec::len), Some(2));
    assert_eq!(signed["replayed"], false);
    assert!(!str_field(&signed, "session_id").is_empty());
    assert!(!str_field(&signed, "idempotency_key").is_empty());

    // Valid, in JSON and in human form.
    let args = verify_args(scheme, &public_key, &message_hex, &signature);
    assert_eq!(env.json(&args).await, serde_json::json!({"valid": true}));
    let out = env.sigil(&args).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "valid");

    // A tampered signature, another message, another key: non-zero, valid: false.
    let other_message = hex::encode(b"pay 2 units to bob, invoice 42");
    let tampered_signature = tamper(&signature);
    let tampered_key = tamper(&public_key);
    for args in [
        verify_args(scheme, &public_key, &message_hex, &tampered_signature),
        verify_args(scheme, &public_key, &other_message, &signature),
        verify_args(scheme, &tampered_key, &message_hex, &signature),
    ] {
        let mut all = vec!["--json"];
        all.extend_from_slice(&args);
        let out = env.sigil(&all).await;
        assert!(!out.status.success(), "accepted: {}", describe(&out));
        let v = parse(&out);
        assert_eq!(v["valid"], false, "{v}");
        assert!(!str_field(&v, "error").is_empty());
        let out = env.sigil(&args).await;
        assert!(!out.status.success(), "accepted: {}", describe(&out));
        assert!(out.stdout.is_empty(), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not valid"),
            "{}",
            describe(&out)
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn frost_secp256k1_key_create_sign_verify() {
    create_sign_verify("frost-secp256k1", 33, 65, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn frost_taproot_key_create_sign_verify() {
    create_sign_verify("frost-taproot", 32, 64, Some("bitcoin")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn frost_ed25519_key_create_sign_verify() {
    create_sign_verify("frost-ed25519", 32, 64, Some("solana")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_with_the_same_idempotency_key_replays_the_signature() {
    let env = Env::start().await;
    let key = env.create_key("frost-secp256k1", &[]).await;
    let key_id = str_field(&key, "key_id").to_owned();
    let file = env.data_dir.join("message.bin");
    std::fs::write(&file, b"transfer #7, exactly once").expect("write message");
    let file = file.to_string_lossy().into_owned();
    let sign = [
        "sign",
        "--key",
        &key_id,
        "--message-file",
        &file,
        "--idempotency-key",
        "order-7",
    ];

    let first = env.json(&sign).await;
    let second = env.json(&sign).await;
    assert_eq!(first["replayed"], false);
    assert_eq!(second["replayed"], true);
    assert_eq!(first["signature"], second["signature"]);
    assert_eq!(first["session_id"], second["session_id"]);
    assert_eq!(second["idempotency_key"], "order-7");

    // The same idempotency key for another message is refused.
    let out = env
        .sigil(&[
            "sign",
            "--key",
            &key_id,
            "--message-hex",
            "00",
            "--idempotency-key",
            "order-7",
        ])
        .await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AlreadyExists"),
        "{}",
        describe(&out)
    );

    // Without --idempotency-key a fresh one is generated and printed.
    let out = env
        .sigil(&["sign", "--key", &key_id, "--message-hex", "0102"])
        .await;
    assert!(out.status.success(), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("idempotency key"), "{stdout}");
    assert!(stdout.contains("signature"), "{stdout}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_sign_completes_every_request_and_measures_the_baseline() {
    let env = Env::start().await;
    let key = env.create_key("frost-secp256k1", &[]).await;
    let key_id = str_field(&key, "key_id").to_owned();
    let report = env
        .json(&[
            "bench",
            "sign",
            "--key",
            &key_id,
            "--requests",
            "20",
            "--concurrency",
            "4",
            "--baseline-duration",
            "200ms",
        ])
        .await;
    let cluster = &report["cluster"];
    assert_eq!(cluster["ok"], 20, "{report}");
    assert_eq!(cluster["failed"], 0, "{report}");
    assert_eq!(cluster["requests"], 20, "{report}");
    assert!(cluster["throughput_rps"].as_f64() > Some(0.0), "{report}");
    let latency = &cluster["latency_ms"];
    for p in ["p50", "p95", "p99", "max"] {
        assert!(latency[p].as_f64() > Some(0.0), "{report}");
    }
    assert!(
        latency["p50"].as_f64() <= latency["p99"].as_f64(),
        "{report}"
    );
    assert!(
        latency["p99"].as_f64() <= latency["max"].as_f64(),
        "{report}"
    );
    assert_eq!(report["scheme"], "frost-secp256k1");
    assert_eq!(report["threshold"], 2);
    assert_eq!(report["participants"], 3);
    assert!(
        report["in_process"]["signatures"].as_u64() >= Some(1),
        "{report}"
    );
    assert!(report["ratio"].as_f64() > Some(0.0), "{report}");
    // Beside it, the engine's rounds alone (no envelope), and every ratio.
    assert!(report["bare"]["signatures"].as_u64() >= Some(1), "{report}");
    for ratio in ["ratio_to_bare", "in_process_to_bare", "p50_over_bare_mean"] {
        assert!(report[ratio].as_f64() > Some(0.0), "{ratio}: {report}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_sign_with_an_unknown_key_fails_clearly() {
    let env = Env::start().await;
    let out = env
        .sigil(&["bench", "sign", "--key", "key-missing", "--requests", "1"])
        .await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{}",
        describe(&out)
    );
    env.stop().await;
}

/// `verify` needs no cluster: signatures made by independent libraries
/// verify, malformed input is refused with `valid: false`.
#[tokio::test(flavor = "multi_thread")]
async fn verify_works_offline_with_independent_signatures() {
    use ed25519_dalek::Signer as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let no_cluster = dir.path().join("nothing-here");
    let message = b"offline verification";
    let message_hex = hex::encode(message);

    let ed = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let ed_key = hex::encode(ed.verifying_key().to_bytes());
    let ed_sig = hex::encode(ed.sign(message).to_bytes());

    let schnorr = k256::schnorr::SigningKey::from_bytes(&[9u8; 32]).expect("key");
    let tr_key = hex::encode(schnorr.verifying_key().to_bytes());
    let tr_sig = hex::encode(
        schnorr
            .sign_raw(message, &[0u8; 32])
            .expect("BIP-340 signature")
            .to_bytes(),
    );

    for (scheme, key, sig) in [
        ("frost-ed25519", &ed_key, &ed_sig),
        ("frost-taproot", &tr_key, &tr_sig),
    ] {
        let mut args = vec!["--json"];
        args.extend(verify_args(scheme, key, &message_hex, sig));
        let out = sigil(&no_cluster, &args).await;
        assert!(out.status.success(), "{scheme}: {}", describe(&out));
        assert_eq!(parse(&out), serde_json::json!({"valid": true}));
    }

    // Wrong scheme for the key, bad hex, unknown scheme, truncated signature.
    let truncated = &ed_sig[..ed_sig.len() - 2];
    for args in [
        verify_args("frost-taproot", &ed_key, &message_hex, &ed_sig),
        verify_args("frost-ed25519", &ed_key, "zz", &ed_sig),
        verify_args("frost-rsa", &ed_key, &message_hex, &ed_sig),
        verify_args("frost-ed25519", &ed_key, &message_hex, truncated),
        verify_args("ecdsa-secp256k1", &ed_key, &message_hex, &ed_sig),
    ] {
        let mut all = vec!["--json"];
        all.extend_from_slice(&args);
        let out = sigil(&no_cluster, &all).await;
        assert!(
            !out.status.success(),
            "accepted {args:?}: {}",
            describe(&out)
        );
        let v = parse(&out);
        assert_eq!(v["valid"], false, "{v}");
        assert!(!str_field(&v, "error").is_empty());
    }

    // Exactly one message source.
    let out = sigil(
        &no_cluster,
        &[
            "verify",
            "--scheme",
            "frost-ed25519",
            "--public-key",
            &ed_key,
            "--signature",
            &ed_sig,
        ],
    )
    .await;
    assert!(!out.status.success(), "{}", describe(&out));
}

#[tokio::test]
async fn ecdsa_key_create_sign_with_path_verify_and_eth_sign_tx() {
    let env = Env::start().await;
    let key = env.create_key("ecdsa-secp256k1", &[]).await;
    let key_id = str_field(&key, "key_id").to_owned();
    let public_key = str_field(&key, "public_key").to_owned();
    assert_eq!(hex::decode(&public_key).expect("hex").len(), 33);
    let address = str_field(&key, "ethereum_address");
    assert!(address.starts_with("0x") && address.len() == 42, "{key}");

    // Sign a message that every node hashes with Keccak-256, under a child key.
    let signed = env
        .json(&[
            "sign",
            "--key",
            &key_id,
            "--message-hex",
            "68656c6c6f",
            "--hash",
            "keccak256",
            "--path",
            "m/0/7",
        ])
        .await;
    let signature = str_field(&signed, "signature").to_owned();
    let child = str_field(&signed, "public_key").to_owned();
    assert_eq!(hex::decode(&signature).expect("hex").len(), 64);
    assert!(
        signed["recovery_id"].as_u64().is_some_and(|r| r <= 3),
        "{signed}"
    );
    assert_ne!(child, public_key, "the child key signed");
    let mut args = verify_args("ecdsa-secp256k1", &child, "68656c6c6f", &signature);
    args.extend(["--hash", "keccak256"]);
    assert_eq!(env.json(&args).await["valid"], true);
    // Under the master key, or with the wrong hash, it does not verify.
    let mut args = verify_args("ecdsa-secp256k1", &public_key, "68656c6c6f", &signature);
    args.extend(["--hash", "keccak256"]);
    assert!(!env.sigil(&args).await.status.success());
    let mut args = verify_args("ecdsa-secp256k1", &child, "68656c6c6f", &signature);
    args.extend(["--hash", "sha256"]);
    assert!(!env.sigil(&args).await.status.success());

    // A hardened path is refused with a clear error.
    let out = env
        .sigil(&[
            "sign",
            "--key",
            &key_id,
            "--message-hex",
            &"11".repeat(32),
            "--path",
            "m/0'",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hardened"),
        "{}",
        describe(&out)
    );

    // An EIP-1559 transaction, signed and assembled.
    let tx = env
        .json(&[
            "eth",
            "sign-tx",
            "--key",
            &key_id,
            "--path",
            "m/0/7",
            "--chain-id",
            "1",
            "--nonce",
            "3",
            "--to",
            "0x1111111111111111111111111111111111111111",
            "--value",
            "1000000000000000000",
            "--gas",
            "21000",
            "--max-fee",
            "40000000000",
            "--max-priority-fee",
            "2000000000",
        ])
        .await;
    let raw = str_field(&tx, "raw_transaction");
    assert!(raw.starts_with("0x02"), "{tx}");
    let child_address = {
        let from = str_field(&tx, "from");
        assert!(from.starts_with("0x") && from.len() == 42);
        from.to_owned()
    };
    assert_ne!(child_address, address, "sent from the child account");
    env.stop().await;
}

/// `sigil audit`: query, heads, export, and `verify` live, on an export and
/// on a database file — clean, then tampered (non-zero exit naming the
/// process and sequence).
#[tokio::test(flavor = "multi_thread")]
async fn audit_commands_query_export_and_verify() {
    let env = Env::start().await;
    let key = env.create_key("frost-ed25519", &[]).await;
    let key_id = str_field(&key, "key_id").to_owned();
    for i in 0..2 {
        let idem = format!("audit-{i}");
        env.json(&[
            "sign",
            "--key",
            &key_id,
            "--message-hex",
            "0102",
            "--idempotency-key",
            &idem,
        ])
        .await;
    }

    let live = env.json(&["audit", "verify"]).await;
    assert_eq!(live["ok"], true, "{live}");
    assert_eq!(live["processes"].as_array().map(Vec::len), Some(4));

    let returned = env
        .json(&[
            "audit",
            "query",
            "--key",
            &key_id,
            "--action",
            "signature_returned",
            "--actor",
            "client/signer",
        ])
        .await;
    let records = returned["records"].as_array().expect("records");
    assert_eq!(records.len(), 2, "{returned}");
    assert_eq!(records[0]["request_id"], "audit-0");

    let heads = env.json(&["audit", "heads"]).await;
    assert_eq!(heads["heads"].as_array().map(Vec::len), Some(4), "{heads}");

    let export = env.data_dir.join("export");
    let export_arg = export.to_string_lossy().into_owned();
    env.json(&["audit", "export", "--out", &export_arg]).await;
    let offline = env.json(&["audit", "verify", "--dir", &export_arg]).await;
    assert_eq!(offline["ok"], true, "{offline}");
    let db = env.data_dir.join("node-1/node-audit.db");
    let db_arg = db.to_string_lossy().into_owned();
    let one = env
        .json(&["audit", "verify", "--db", &db_arg, "--process", "node-1"])
        .await;
    assert_eq!(one["ok"], true, "{one}");
    // The state database holds no log: a clear error, not a schema write.
    let state = env.data_dir.join("node-1/node.db");
    let out = env
        .sigil(&[
            "audit",
            "verify",
            "--db",
            &state.to_string_lossy(),
            "--process",
            "node-1",
        ])
        .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no audit log in this database"), "{stderr}");

    // Edit one exported record of node-2: verification names it and fails.
    let file = export.join("node-2.records.jsonl");
    let text = std::fs::read_to_string(&file).expect("read export");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut record: Value = serde_json::from_str(&lines[1]).expect("record");
    record["actor"] = Value::from("spiffe://sigil.local/client/mallory");
    lines[1] = record.to_string();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write export");
    let out = env
        .sigil(&["--json", "audit", "verify", "--dir", &export_arg])
        .await;
    assert!(!out.status.success(), "{}", describe(&out));
    let report = parse(&out);
    assert_eq!(report["ok"], false);
    assert_eq!(report["first"]["node-2"]["sequence"], 2, "{report}");
    assert_eq!(
        report["first"]["node-2"]["kind"], "hash_mismatch",
        "{report}"
    );
    let out = env.sigil(&["audit", "verify", "--dir", &export_arg]).await;
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("* node-2 2 hash_mismatch"),
        "{}",
        describe(&out)
    );
    env.stop().await;
}

/// The arguments of `eth sign-tx` paying `value` wei on chain 1.
fn eth_tx<'a>(key_id: &'a str, value: &'a str) -> Vec<&'a str> {
    vec![
        "eth",
        "sign-tx",
        "--key",
        key_id,
        "--chain-id",
        "1",
        "--nonce",
        "0",
        "--to",
        "0x1111111111111111111111111111111111111111",
        "--value",
        value,
        "--gas",
        "21000",
        "--max-fee",
        "40000000000",
        "--max-priority-fee",
        "2000000000",
    ]
}

impl Env {
    /// Writes `rules` as version 1 of `key_id`'s policy and applies it through
    /// the CLI: propose, officer-1 and officer-2 sign, apply.
    async fn apply_policy(&self, key_id: &str, rules: &str) {
        let toml = self.data_dir.join("policy.toml");
        std::fs::write(
            &toml,
            format!("key_id = \"{key_id}\"\nversion = 1\nrequesters = [\"signer\"]\n{rules}"),
        )
        .expect("write policy");
        let toml = toml.to_string_lossy().into_owned();
        let proposal = self.data_dir.join("policy.proposal.json");
        let proposal = proposal.to_string_lossy().into_owned();
        let proposed = self
            .json(&[
                "policy", "propose", "--key", key_id, "--file", &toml, "--out", &proposal,
            ])
            .await;
        assert_eq!(proposed["version"], 1, "{proposed}");
        assert_eq!(
            str_field(&proposed, "document_sha256").len(),
            64,
            "{proposed}"
        );
        // The proposal holds the exact document text officers sign.
        let file: Value =
            serde_json::from_str(&std::fs::read_to_string(&proposal).expect("read proposal"))
                .expect("proposal is JSON");
        let document = str_field(&file, "document");
        assert!(
            document.starts_with(&format!("{{\"key_id\":\"{key_id}\",\"version\":1,")),
            "{document}"
        );

        let one = self
            .json(&["policy", "sign", "--file", &proposal, "--as", "officer-1"])
            .await;
        assert_eq!(one["signed_by"], serde_json::json!(["officer-1"]), "{one}");
        // One officer is below the nodes' quorum of two: every node refuses.
        let out = self.sigil(&["policy", "apply", "--file", &proposal]).await;
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("officer signatures"),
            "{}",
            describe(&out)
        );

        let two = self
            .json(&["policy", "sign", "--file", &proposal, "--as", "officer-2"])
            .await;
        assert_eq!(
            two["signed_by"],
            serde_json::json!(["officer-1", "officer-2"]),
            "{two}"
        );
        let applied = self.json(&["policy", "apply", "--file", &proposal]).await;
        assert_eq!(applied["version"], 1, "{applied}");
        assert_eq!(
            applied["accepted"],
            serde_json::json!([1, 2, 3]),
            "{applied}"
        );
        assert_eq!(applied["failed"], serde_json::json!([]), "{applied}");

        let shown = self.json(&["policy", "show", "--key", key_id]).await;
        assert_eq!(shown["version"], 1, "{shown}");
        assert_eq!(shown["is_default"], false, "{shown}");
        assert_eq!(
            shown["officers"],
            serde_json::json!(["officer-1", "officer-2"]),
            "{shown}"
        );
        assert_eq!(shown["document_sha256"], proposed["document_sha256"]);
    }
}

/// A signed policy with a 1 ETH per-transaction limit, applied through the
/// CLI: `eth sign-tx` signs 0.5 ETH and refuses 2 ETH naming the rule.
#[tokio::test(flavor = "multi_thread")]
async fn eth_sign_tx_within_and_above_a_signed_per_transaction_limit() {
    let env = Env::start().await;
    let key = env.create_key("ecdsa-secp256k1", &[]).await;
    let key_id = str_field(&key, "key_id").to_owned();
    let shown = env.json(&["policy", "show", "--key", &key_id]).await;
    assert_eq!(shown["is_default"], true, "{shown}");
    assert_eq!(shown["version"], 0, "{shown}");

    env.apply_policy(
        &key_id,
        "[[assets]]\nasset = \"evm:1/native\"\nmax_per_tx = \"1000000000000000000\"\n",
    )
    .await;

    let tx = env.json(&eth_tx(&key_id, "500000000000000000")).await;
    assert!(
        str_field(&tx, "raw_transaction").starts_with("0x02"),
        "{tx}"
    );

    let out = env.sigil(&eth_tx(&key_id, "2000000000000000000")).await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused by policy"), "{stderr}");
    assert!(stderr.contains("assets[0].max_per_tx"), "{stderr}");
    assert!(stderr.contains("sigil-policy-rule"), "{stderr}");

    // The policy allows no raw signing: `sign` is refused too, naming the rule.
    let out = env
        .sigil(&["sign", "--key", &key_id, "--message-hex", &"11".repeat(32)])
        .await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused by policy"),
        "{}",
        describe(&out)
    );
    env.stop().await;
}

/// Above 0.3 ETH the policy asks one approval from the treasury group: the
/// first run is held with an approval id, an approver approves, and the
/// same command (same idempotency key and intent file) signs.
#[tokio::test(flavor = "multi_thread")]
async fn eth_sign_tx_held_for_approval_signs_after_an_approver_approves() {
    let env = Env::start().await;
    let key = env.create_key("ecdsa-secp256k1", &[]).await;
    let key_id = str_field(&key, "key_id").to_owned();
    env.apply_policy(
        &key_id,
        r#"
[[assets]]
asset = "evm:1/native"
max_per_tx = "1000000000000000000"

[approver_groups]
treasury = ["approver-1", "approver-2"]

[[approval_tiers]]
asset = "evm:1/native"
above = "300000000000000000"
group = "treasury"
required = 1
"#,
    )
    .await;

    let intent_file = env.data_dir.join("pay-7.intent.json");
    let intent_file = intent_file.to_string_lossy().into_owned();
    let mut args = eth_tx(&key_id, "500000000000000000");
    args.extend(["--idempotency-key", "pay-7", "--intent-file", &intent_file]);

    let out = env.sigil(&args).await;
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("approval required"), "{stderr}");
    assert!(stderr.contains("--idempotency-key pay-7"), "{stderr}");
    let approval_id = stderr
        .split_whitespace()
        .find(|w| w.starts_with("appr-"))
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .unwrap_or_else(|| panic!("no approval id in {stderr}"))
        .to_owned();
    assert!(
        std::path::Path::new(&intent_file).exists(),
        "the signed intent is kept for the retry"
    );

    let listed = env.json(&["approvals", "list", "--key", &key_id]).await;
    let pending = listed["pending"].as_array().expect("pending");
    assert_eq!(pending.len(), 1, "{listed}");
    assert_eq!(pending[0]["approval_id"], approval_id.as_str(), "{listed}");
    assert_eq!(pending[0]["group"], "treasury", "{listed}");
    assert_eq!(pending[0]["required"], 1, "{listed}");
    assert_eq!(pending[0]["approved_by"], serde_json::json!([]), "{listed}");
    assert!(
        str_field(&pending[0], "decoded_summary").contains("500000000000000000"),
        "{listed}"
    );

    // Not a member of the group: refused, and nothing is counted.
    let out = env
        .sigil(&["approvals", "approve", &approval_id, "--as", "approver-3"])
        .await;
    assert!(!out.status.success(), "{}", describe(&out));

    let approved = env
        .json(&["approvals", "approve", &approval_id, "--as", "approver-2"])
        .await;
    let by = approved["approved_by"].as_array().expect("approved_by");
    assert_eq!(by.len(), 1, "{approved}");
    assert!(
        by[0]
            .as_str()
            .is_some_and(|u| u.ends_with("/client/approver-2")),
        "{approved}"
    );

    let mut all = vec!["--json"];
    all.extend_from_slice(&args);
    let out = env.sigil(&all).await;
    assert!(out.status.success(), "{}", describe(&out));
    let tx = parse(&out);
    assert!(
        str_field(&tx, "raw_transaction").starts_with("0x02"),
        "{tx}"
    );
    assert_eq!(tx["idempotency_key"], "pay-7");
    env.stop().await;
}

/// CLI: `btc sign-psbt` signs a Taproot key-path spend of a frost-taproot
/// key; Bitcoin Core's script interpreter accepts the transaction printed.
#[tokio::test(flavor = "multi_thread")]
async fn btc_sign_psbt_prints_a_transaction_bitcoin_core_accepts() {
    use bitcoin::hashes::Hash as _;
    use bitcoin::key::TweakedPublicKey;
    use bitcoin::secp256k1::XOnlyPublicKey;
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

    let env = Env::start().await;
    let key = env.create_key("frost-taproot", &[]).await;
    let key_id = str_field(&key, "key_id").to_owned();
    let q = hex::decode(str_field(&key, "public_key")).expect("hex");
    let ours = ScriptBuf::new_p2tr_tweaked(TweakedPublicKey::dangerous_assume_tweaked(
        XOnlyPublicKey::from_slice(&q).expect("x-only key"),
    ));
    let tx = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint {
                txid: bitcoin::Txid::from_byte_array([7; 32]),
                vout: 1,
            },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(9_000),
            script_pubkey: ScriptBuf::new_op_return([1u8, 2, 3]),
        }],
    };
    let mut psbt = bitcoin::psbt::Psbt::from_unsigned_tx(tx).expect("unsigned");
    psbt.inputs[0].witness_utxo = Some(TxOut {
        value: Amount::from_sat(10_000),
        script_pubkey: ours.clone(),
    });
    let file = env.data_dir.join("spend.psbt");
    std::fs::write(&file, psbt.to_string()).expect("write the PSBT (base64)");

    let signed = env
        .json(&[
            "btc",
            "sign-psbt",
            "--key",
            &key_id,
            "--psbt",
            file.to_str().expect("utf-8 path"),
        ])
        .await;
    let raw = hex::decode(str_field(&signed, "raw_transaction")).expect("hex");
    let utxo = bitcoinconsensus::Utxo {
        script_pubkey: ours.as_bytes().as_ptr(),
        script_pubkey_len: u32::try_from(ours.len()).expect("small"),
        value: 10_000,
    };
    bitcoinconsensus::verify(ours.as_bytes(), 10_000, &raw, Some(&[utxo]), 0)
        .expect("Bitcoin Core accepts the spend");
    assert_eq!(
        str_field(&signed, "transaction_id"),
        psbt.unsigned_tx.compute_txid().to_string()
    );
    assert!(!str_field(&signed, "psbt").is_empty());
    env.stop().await;
}
