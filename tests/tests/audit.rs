//! The audit log wired into a real cluster (coordinator and nodes over
//! mTLS): what is recorded, live and offline verification through the same
//! code as `sigil audit verify`, detection of every kind of tampering done
//! directly in SQLite (named by process and sequence), a rogue coordinator
//! caught by the cross-check, and fail-closed signing when an audit store
//! cannot be written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use sigil_audit::{Filter, Record, SignedHead, TlsHeadSigner, action};
use sigil_proto::v1 as pb;
use sigil_proto::v1::audit_client::AuditClient;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_proto::v1::signing_client::SigningClient;
use sigil_testkit::sigil_cli::audit::{self as cli_audit, AuditData, Verification};
use sigil_testkit::{RogueCoordinator, TestCluster, session_id};
use sigil_tls::Identity;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Row};
use tonic::Code;

async fn create_key(tc: &TestCluster, threshold: u32) -> Result<pb::KeyInfo> {
    KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: pb::Scheme::FrostSecp256k1 as i32,
            threshold,
            ..Default::default()
        })
        .await?
        .into_inner()
        .key
        .context("no key")
}

async fn sign(
    tc: &TestCluster,
    key_id: &str,
    idempotency_key: &str,
) -> Result<pb::SignResponse, tonic::Status> {
    let channel = tc
        .coordinator_as("signer")
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    SigningClient::new(channel)
        .sign(
            tc.intended(pb::SignRequest {
                key_id: key_id.to_owned(),
                message: format!("pay {idempotency_key}").into_bytes(),
                idempotency_key: idempotency_key.to_owned(),
                ..Default::default()
            })
            .await?,
        )
        .await
        .map(tonic::Response::into_inner)
}

/// Every log fetched through the coordinator and verified, as `sigil audit verify` does.
async fn verify_live(tc: &TestCluster) -> Result<Verification> {
    let live = cli_audit::fetch_live(tc.coordinator_as("auditor")?).await?;
    Ok(cli_audit::verify(&live, &verifier(&tc.data_dir())?))
}

fn verifier(tc_dir: &Path) -> Result<sigil_audit::TlsHeadVerifier> {
    Ok(cli_audit::verifier(
        &tc_dir.join("pki/ca.pem"),
        &Default::default(),
    )?)
}

/// A process's state database.
fn db_of(dir: &Path, process: &str) -> PathBuf {
    if process == "coordinator" {
        dir.join("coordinator/coordinator.db")
    } else {
        dir.join(process).join("node.db")
    }
}

/// A process's audit database (the default: its own file beside the state database).
fn audit_db_of(dir: &Path, process: &str) -> PathBuf {
    sigil_audit::default_database(&db_of(dir, process))
}

/// Every process's log, read from its database in `dir`.
async fn load_all(dir: &Path, nodes: u16) -> Result<AuditData> {
    let mut dbs = vec![("coordinator".to_owned(), audit_db_of(dir, "coordinator"))];
    for n in 1..=nodes {
        let p = format!("node-{n}");
        dbs.push((p.clone(), audit_db_of(dir, &p)));
    }
    Ok(cli_audit::load_dbs(&dbs).await?)
}

async fn verify_dir(dir: &Path, nodes: u16) -> Result<Verification> {
    Ok(cli_audit::verify(
        &load_all(dir, nodes).await?,
        &verifier(dir)?,
    ))
}

fn records_with<'a>(records: &'a [Record], act: &str, request_id: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.action == act && r.request_id == request_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_cluster_verifies_live_and_offline_and_records_everything() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, 2).await?;
    let mut signatures = Vec::new();
    for i in 0..3 {
        signatures.push(sign(&tc, &key.key_id, &format!("clean-{i}")).await?);
    }
    // A refusal by authorization: a signer may not list keys.
    let denied = KeyAdminClient::new(tc.coordinator_as("signer")?)
        .list_keys(pb::ListKeysRequest {})
        .await
        .expect_err("signer may not list keys");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Live, through the coordinator, as `sigil audit verify` does it.
    let live = cli_audit::fetch_live(tc.coordinator_as("auditor")?).await?;
    let result = cli_audit::verify(&live, &verifier(&tc.data_dir())?);
    assert!(result.is_ok(), "{:#?}", result.problems);
    assert_eq!(
        result.processes,
        ["coordinator", "node-1", "node-2", "node-3"]
    );
    assert!(result.heads_matched >= 4, "{result:?}");

    let coordinator = &live.records["coordinator"];
    for (i, sig) in signatures.iter().enumerate() {
        let request = format!("clean-{i}");
        let returned = records_with(coordinator, action::SIGNATURE_RETURNED, &request);
        assert_eq!(returned.len(), 1, "{request}");
        let returned = returned[0];
        assert_eq!(returned.session_id, sig.session_id);
        assert_eq!(returned.key_id, key.key_id);
        assert_eq!(returned.actor, "spiffe://sigil.local/client/signer");
        let signers: Vec<u16> = sig.signers.iter().map(|s| *s as u16).collect();
        assert_eq!(returned.quorum, signers);
        assert_eq!(
            records_with(coordinator, action::SIGN_SESSION, &request).len(),
            1
        );
        // A share record on each of the t signers, for that session and digest.
        for node in &signers {
            let shares = records_with(
                &live.records[&format!("node-{node}")],
                action::SHARE_ISSUED,
                &request,
            );
            assert_eq!(shares.len(), 1, "node {node}, {request}");
            // Each signer's session: its start, then its share.
            let session_actions: Vec<&str> = live.records[&format!("node-{node}")]
                .iter()
                .filter(|r| r.session_id == sig.session_id)
                .map(|r| r.action.as_str())
                .collect();
            assert_eq!(
                session_actions,
                ["session_start", action::SHARE_ISSUED],
                "node {node}"
            );
            assert_eq!(shares[0].session_id, sig.session_id);
            assert_eq!(shares[0].digest, returned.digest);
            assert_eq!(shares[0].actor, "spiffe://sigil.local/coordinator");
        }
        // Each sign request is recorded, with its outcome.
        let requests = records_with(coordinator, action::REQUEST, &request);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].outcome, "ok");
        assert!(requests[0].detail.starts_with("/sigil.v1.Signing/Sign"));
    }
    assert!(coordinator.iter().any(|r| r.action == action::KEY_CREATED
        && r.key_id == key.key_id
        && r.actor == "spiffe://sigil.local/client/operator"));
    for n in 1..=3 {
        let log = &live.records[&format!("node-{n}")];
        assert_eq!(log[0].action, action::PROCESS_START);
        assert!(
            log.iter()
                .any(|r| r.action == action::DKG_SHARE_STORED && r.key_id == key.key_id)
        );
    }

    // The Audit service's filters: the refusal, by requester and outcome.
    let mut audit = AuditClient::new(tc.coordinator_as("auditor")?);
    let refused = audit
        .query_records(pb::QueryRecordsRequest {
            actor: "spiffe://sigil.local/client/signer".into(),
            outcome: "refused".into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .records;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].outcome, "refused:permission_denied");
    assert!(refused[0].detail.contains("/sigil.v1.KeyAdmin/ListKeys"));
    // By key and action, on a node's log relayed by the coordinator.
    let shares = audit
        .query_records(pb::QueryRecordsRequest {
            process: format!("node-{}", signatures[0].signers[0]),
            key_id: key.key_id.clone(),
            action: action::SHARE_ISSUED.into(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .records;
    assert!(!shares.is_empty());
    assert!(
        shares
            .iter()
            .all(|r| r.key_id == key.key_id && r.action == action::SHARE_ISSUED)
    );
    // Latest heads of every process.
    let heads = audit
        .get_signed_heads(pb::GetSignedHeadsRequest::default())
        .await?
        .into_inner();
    assert_eq!(heads.heads.len(), 4, "{heads:?}");
    assert!(heads.unavailable.is_empty());
    // Other roles may not read the audit trail.
    let err = AuditClient::new(tc.coordinator_as("operator")?)
        .get_signed_heads(pb::GetSignedHeadsRequest::default())
        .await
        .expect_err("operator is not an auditor");
    assert_eq!(err.code(), Code::PermissionDenied);

    // Offline: export, then verify the files alone.
    let export = tempfile::tempdir()?;
    let files = cli_audit::write_dir(&live, export.path())?;
    assert_eq!(files.len(), 8);
    let offline = cli_audit::verify(
        &cli_audit::load_dir(export.path())?,
        &verifier(&tc.data_dir())?,
    );
    assert!(offline.is_ok(), "{:#?}", offline.problems);
    assert_eq!(offline.records, result.records);

    // A node that is down is reported, not skipped.
    let mut tc = tc;
    assert!(tc.cluster.stop_node(3).await);
    let result = verify_live(&tc).await?;
    let problem = result
        .first_for("node-3")
        .context("down node not reported")?;
    assert_eq!(problem.kind, "unavailable");
    tc.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// Tampering directly in SQLite.

/// A stopped 3-node cluster with a key and three signatures; its data
/// directory is copied for each tampering case.
struct Fixture {
    dir: tempfile::TempDir,
    key_id: String,
    /// The first signature's session and signers.
    session: String,
    signers: Vec<u16>,
}

async fn fixture() -> Result<Fixture> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, 2).await?;
    let first = sign(&tc, &key.key_id, "tamper-0").await?;
    for i in 1..3 {
        sign(&tc, &key.key_id, &format!("tamper-{i}")).await?;
    }
    let dir = tc.stop().await;
    let result = verify_dir(dir.path(), 3).await?;
    ensure!(
        result.is_ok(),
        "the untampered cluster does not verify: {:#?}",
        result.problems
    );
    Ok(Fixture {
        dir,
        key_id: key.key_id,
        session: first.session_id,
        signers: first.signers.iter().map(|s| *s as u16).collect(),
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

impl Fixture {
    /// A private copy of the stopped cluster's data directory.
    fn copy(&self) -> Result<tempfile::TempDir> {
        let copy = tempfile::tempdir()?;
        copy_dir(self.dir.path(), copy.path())?;
        Ok(copy)
    }
}

/// A raw connection to `process`'s database with the append-only triggers
/// dropped, as an attacker with the file would do first.
async fn attacker(dir: &Path, process: &str) -> Result<SqliteConnection> {
    let mut conn = SqliteConnectOptions::new()
        .filename(audit_db_of(dir, process))
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    for sql in [
        "DROP TRIGGER IF EXISTS audit_records_no_update",
        "DROP TRIGGER IF EXISTS audit_records_no_delete",
        "DROP TRIGGER IF EXISTS audit_heads_no_update",
        "DROP TRIGGER IF EXISTS audit_heads_no_delete",
    ] {
        sqlx::query(sql).execute(&mut conn).await?;
    }
    Ok(conn)
}

async fn records_of(dir: &Path, process: &str) -> Result<Vec<Record>> {
    let data = cli_audit::load_dbs(&[(process.to_owned(), audit_db_of(dir, process))]).await?;
    Ok(data.records[process].clone())
}

async fn heads_of(dir: &Path, process: &str) -> Result<Vec<SignedHead>> {
    let data = cli_audit::load_dbs(&[(process.to_owned(), audit_db_of(dir, process))]).await?;
    Ok(data.heads[process].clone())
}

async fn insert_record(conn: &mut SqliteConnection, r: &Record) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_records (sequence, process, timestamp, actor, action, key_id, \
         request_id, digest, quorum, session_id, outcome, culprits, detail, previous_hash, \
         record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(r.sequence as i64)
    .bind(&r.process)
    .bind(&r.timestamp)
    .bind(&r.actor)
    .bind(&r.action)
    .bind(&r.key_id)
    .bind(&r.request_id)
    .bind(&r.digest)
    .bind(serde_json::to_string(&r.quorum)?)
    .bind(&r.session_id)
    .bind(&r.outcome)
    .bind(serde_json::to_string(&r.culprits)?)
    .bind(&r.detail)
    .bind(&r.previous_hash[..])
    .bind(&r.record_hash[..])
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_head(conn: &mut SqliteConnection, h: &SignedHead) -> Result<()> {
    let chain: Vec<String> = h.certificate_chain.iter().map(hex::encode).collect();
    sqlx::query(
        "INSERT INTO audit_heads (process, sequence, head_hash, timestamp, signature, \
         certificate_chain, head_index, previous_head) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&h.process)
    .bind(h.sequence as i64)
    .bind(&h.head_hash[..])
    .bind(&h.timestamp)
    .bind(&h.signature)
    .bind(serde_json::to_string(&chain)?)
    .bind(h.link.map(|l| l.index as i64))
    .bind(h.link.map(|l| l.previous.to_vec()))
    .execute(conn)
    .await?;
    Ok(())
}

/// The first problem found in `process`'s log, as (sequence, kind).
fn first(result: &Verification, process: &str) -> (u64, String) {
    let p = result
        .first_for(process)
        .unwrap_or_else(|| panic!("tampering of {process} not found: {:#?}", result.problems));
    (p.sequence, p.kind.clone())
}

/// The sequence of `process`'s share record of the fixture's first signature.
fn share_sequence(records: &[Record], session: &str) -> Result<u64> {
    records
        .iter()
        .find(|r| r.action == action::SHARE_ISSUED && r.session_id == session)
        .map(|r| r.sequence)
        .context("no share record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_in_sqlite_is_named_by_process_and_sequence() -> Result<()> {
    let fx = fixture().await?;
    let signer = format!("node-{}", fx.signers[0]);

    // 1. A field edited: the share record's key id.
    {
        let dir = fx.copy()?;
        let seq = share_sequence(&records_of(dir.path(), &signer).await?, &fx.session)?;
        let mut conn = attacker(dir.path(), &signer).await?;
        sqlx::query("UPDATE audit_records SET key_id = 'key-other' WHERE sequence = ?")
            .bind(seq as i64)
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let result = verify_dir(dir.path(), 3).await?;
        assert_eq!(
            first(&result, &signer),
            (seq, "hash_mismatch".into()),
            "edit"
        );
        assert!(result.first_for("coordinator").is_none(), "{result:?}");
    }

    // 2. A record deleted: the coordinator's sign_session record.
    {
        let dir = fx.copy()?;
        let seq = records_of(dir.path(), "coordinator")
            .await?
            .iter()
            .find(|r| r.action == action::SIGN_SESSION && r.session_id == fx.session)
            .map(|r| r.sequence)
            .context("sign_session")?;
        let mut conn = attacker(dir.path(), "coordinator").await?;
        sqlx::query("DELETE FROM audit_records WHERE sequence = ?")
            .bind(seq as i64)
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let result = verify_dir(dir.path(), 3).await?;
        assert_eq!(
            first(&result, "coordinator"),
            (seq, "missing".into()),
            "delete"
        );
    }

    // 3. The tail truncated: the last three records of node-1 (its final
    //    signed head, made at stop, still covers them).
    {
        let dir = fx.copy()?;
        let last = records_of(dir.path(), "node-1")
            .await?
            .last()
            .map(|r| r.sequence)
            .context("records")?;
        let mut conn = attacker(dir.path(), "node-1").await?;
        sqlx::query("DELETE FROM audit_records WHERE sequence > ?")
            .bind((last - 3) as i64)
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let result = verify_dir(dir.path(), 3).await?;
        assert_eq!(
            first(&result, "node-1"),
            (last - 2, "truncated".into()),
            "truncate"
        );
    }

    // 4. Two records swapped (reordered) in the coordinator's log.
    {
        let dir = fx.copy()?;
        let seq = 3i64;
        let mut conn = attacker(dir.path(), "coordinator").await?;
        for sql in [
            "UPDATE audit_records SET sequence = 1000000 WHERE sequence = ?1",
            "UPDATE audit_records SET sequence = ?1 WHERE sequence = ?1 + 1",
            "UPDATE audit_records SET sequence = ?1 + 1 WHERE sequence = 1000000",
        ] {
            sqlx::query(sql).bind(seq).execute(&mut conn).await?;
        }
        conn.close().await?;
        let result = verify_dir(dir.path(), 3).await?;
        assert_eq!(
            first(&result, "coordinator"),
            (3, "hash_mismatch".into()),
            "reorder"
        );
        assert!(
            result
                .problems
                .iter()
                .any(|p| p.process == "coordinator" && p.sequence == 4),
            "{:#?}",
            result.problems
        );
    }

    // 5. A forged record inserted in the middle of node-2's log: a share
    //    for a session that never was, hashed and chained to its
    //    predecessor; the records after it are renumbered.
    {
        let dir = fx.copy()?;
        let records = records_of(dir.path(), "node-2").await?;
        let at = 3u64;
        let mut forged = records[at as usize - 1].clone();
        forged.action = action::SHARE_ISSUED.into();
        forged.key_id = fx.key_id.clone();
        forged.session_id = "feedfacefeedfacefeedfacefeedface".into();
        forged.request_id = "forged".into();
        forged.previous_hash = records[at as usize - 2].record_hash;
        forged.record_hash = forged.compute_hash();
        let mut conn = attacker(dir.path(), "node-2").await?;
        sqlx::query("UPDATE audit_records SET sequence = sequence + 1000000 WHERE sequence >= ?")
            .bind(at as i64)
            .execute(&mut conn)
            .await?;
        sqlx::query(
            "UPDATE audit_records SET sequence = sequence - 999999 WHERE sequence > 1000000",
        )
        .execute(&mut conn)
        .await?;
        insert_record(&mut conn, &forged).await?;
        conn.close().await?;
        let result = verify_dir(dir.path(), 3).await?;
        // The forged record itself chains; the one displaced after it does not.
        assert_eq!(
            first(&result, "node-2"),
            (at + 1, "hash_mismatch".into()),
            "insert: {:#?}",
            result.problems
        );
        assert!(
            result
                .problems
                .iter()
                .any(|p| p.process == "node-2" && p.sequence == at && p.kind == "unknown_session"),
            "the cross-check names the forged share: {:#?}",
            result.problems
        );
    }

    // 6. A signed head replaced: the coordinator's last record rewritten
    //    (hash recomputed, so the chain alone cannot tell) and its final
    //    head replaced by one over the new hash, signed with another
    //    process's certificate key.
    {
        let dir = fx.copy()?;
        let records = records_of(dir.path(), "coordinator").await?;
        let mut last = records.last().context("records")?.clone();
        last.detail = "nothing happened".into();
        last.record_hash = last.compute_hash();
        let heads = heads_of(dir.path(), "coordinator").await?;
        let old = heads.last().context("heads")?.clone();
        assert_eq!(old.sequence, last.sequence, "a final head at stop");
        let mut forged = old.clone();
        forged.head_hash = last.record_hash;
        let pki = sigil_tls::pki::PkiLayout::new(dir.path().join("pki"));
        let tls = sigil_tls::ReloadableTls::load(
            pki.identity_files(&Identity::Node(1)),
            Default::default(),
        )?;
        let signature =
            sigil_audit::HeadSigner::sign_head(&TlsHeadSigner::new(tls), &forged.signing_bytes())?;
        forged.signature = signature.signature;
        forged.certificate_chain = signature.certificate_chain;
        let mut conn = attacker(dir.path(), "coordinator").await?;
        sqlx::query("UPDATE audit_records SET detail = ?, record_hash = ? WHERE sequence = ?")
            .bind(&last.detail)
            .bind(&last.record_hash[..])
            .bind(last.sequence as i64)
            .execute(&mut conn)
            .await?;
        sqlx::query("DELETE FROM audit_heads WHERE sequence = ?")
            .bind(old.sequence as i64)
            .execute(&mut conn)
            .await?;
        insert_head(&mut conn, &forged).await?;
        conn.close().await?;
        let result = verify_dir(dir.path(), 3).await?;
        assert_eq!(
            first(&result, "coordinator"),
            (last.sequence, "head_signature".into()),
            "head: {:#?}",
            result.problems
        );
    }
    Ok(())
}

/// A compromised coordinator rewrites its own log to hide a signing
/// session — removing its records, re-chaining everything after, and
/// re-signing its heads with its own (genuine) key. Its log then verifies
/// on its own; the nodes' share records for that session give it away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_coordinator_hiding_a_session_is_caught_by_the_cross_check() -> Result<()> {
    let fx = fixture().await?;
    let dir = fx.copy()?;
    let session = fx.session.clone();
    rewrite_coordinator(dir.path(), |records| {
        records.retain(|r| r.session_id != session)
    })
    .await?;

    let result = verify_dir(dir.path(), 3).await?;
    assert!(
        result.first_for("coordinator").is_none(),
        "the rewritten coordinator log verifies on its own: {:#?}",
        result.problems
    );
    for node in &fx.signers {
        let process = format!("node-{node}");
        let seq = share_sequence(&records_of(dir.path(), &process).await?, &fx.session)?;
        assert_eq!(
            first(&result, &process),
            (seq, "unknown_session".into()),
            "{:#?}",
            result.problems
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Heads: their own chain, and heads seen by another process.

/// Deletes `process`'s records after `keep` and every head covering them,
/// as an attacker hiding the tail of a log would.
async fn truncate_with_heads(dir: &Path, process: &str, keep: u64) -> Result<()> {
    let mut conn = attacker(dir, process).await?;
    sqlx::query("DELETE FROM audit_records WHERE sequence > ?")
        .bind(keep as i64)
        .execute(&mut conn)
        .await?;
    sqlx::query("DELETE FROM audit_heads WHERE sequence > ?")
        .bind(keep as i64)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// The highest sequence of `process` the coordinator recorded seeing.
fn seen_sequence(coordinator: &[Record], process: &str) -> Option<u64> {
    coordinator
        .iter()
        .filter_map(sigil_audit::parse_head_seen)
        .filter(|s| s.process == process)
        .map(|s| s.sequence)
        .max()
}

/// Fetching the nodes' heads (as `sigil audit verify` does) makes the
/// coordinator record them in its own log. A node's tail deleted together
/// with its heads then verifies on its own but not against that record,
/// and the node is named; so is a node whose log was emptied. Deleting one
/// of the coordinator's heads is a head sequence gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_with_heads_is_caught_by_heads_the_coordinator_saw() -> Result<()> {
    // Heads signed often, so that the heads fetched cover the signatures.
    let tc = TestCluster::start_spec(3, |spec| {
        spec.node_audit.head_interval = Duration::from_millis(200);
        spec.coordinator_audit.head_interval = Duration::from_millis(200);
    })
    .await?;
    let key = create_key(&tc, 2).await?;
    for i in 0..3 {
        sign(&tc, &key.key_id, &format!("seen-{i}")).await?;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let live = verify_live(&tc).await?;
    assert!(live.is_ok(), "{:#?}", live.problems);
    let dir = tc.stop().await;
    let coordinator = records_of(dir.path(), "coordinator").await?;
    let result = verify_dir(dir.path(), 3).await?;
    assert!(result.is_ok(), "{:#?}", result.problems);

    // node-1: the tail and its heads deleted.
    {
        let copy = tempfile::tempdir()?;
        copy_dir(dir.path(), copy.path())?;
        let seen = seen_sequence(&coordinator, "node-1").context("node-1 head seen")?;
        ensure!(seen >= 3, "node-1 had {seen} records when seen");
        let keep = seen - 2;
        truncate_with_heads(copy.path(), "node-1", keep).await?;
        let data = load_all(copy.path(), 3).await?;
        let alone = sigil_audit::verify_log(
            "node-1",
            &data.records["node-1"],
            &data.heads["node-1"],
            &verifier(copy.path())?,
        );
        assert!(alone.is_ok(), "node-1's log verifies on its own: {alone}");
        let result = verify_dir(copy.path(), 3).await?;
        assert_eq!(
            first(&result, "node-1"),
            (keep + 1, "truncated_seen_head".into()),
            "{:#?}",
            result.problems
        );
    }

    // node-2: every record and head deleted.
    {
        let copy = tempfile::tempdir()?;
        copy_dir(dir.path(), copy.path())?;
        truncate_with_heads(copy.path(), "node-2", 0).await?;
        let result = verify_dir(copy.path(), 3).await?;
        assert_eq!(
            first(&result, "node-2"),
            (1, "empty_log_seen_head".into()),
            "{:#?}",
            result.problems
        );
    }

    // The coordinator: one of its heads deleted is a gap in the head chain.
    {
        let copy = tempfile::tempdir()?;
        copy_dir(dir.path(), copy.path())?;
        let heads = heads_of(copy.path(), "coordinator").await?;
        ensure!(heads.len() >= 3, "{} coordinator heads", heads.len());
        let mut conn = attacker(copy.path(), "coordinator").await?;
        sqlx::query("DELETE FROM audit_heads WHERE head_index = ?")
            .bind(2i64)
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let result = verify_dir(copy.path(), 3).await?;
        let after_gap = heads
            .iter()
            .find(|h| h.link.is_some_and(|l| l.index == 3))
            .context("head #3")?;
        assert_eq!(
            first(&result, "coordinator"),
            (after_gap.sequence, "head_gap".into()),
            "{:#?}",
            result.problems
        );
    }

    // The coordinator's tail deleted with its heads: nodes never see the
    // coordinator's heads, so only the cross-check can tell, through the
    // nodes' share records of the sessions that disappeared.
    {
        let copy = tempfile::tempdir()?;
        copy_dir(dir.path(), copy.path())?;
        let last_session = coordinator
            .iter()
            .rfind(|r| r.action == action::SIGN_SESSION)
            .context("a session")?;
        truncate_with_heads(copy.path(), "coordinator", last_session.sequence - 1).await?;
        let result = verify_dir(copy.path(), 3).await?;
        assert!(
            result.first_for("coordinator").is_none(),
            "the coordinator's log verifies on its own: {:#?}",
            result.problems
        );
        for node in &last_session.quorum {
            let process = format!("node-{node}");
            let seq = share_sequence(
                &records_of(copy.path(), &process).await?,
                &last_session.session_id,
            )?;
            assert_eq!(
                first(&result, &process),
                (seq, "unknown_session".into()),
                "{:#?}",
                result.problems
            );
        }
    }
    Ok(())
}

/// A compromised coordinator rewrites its own log with `edit` (records
/// changed, dropped), re-numbers and re-chains it and re-signs one head
/// over it with its own key: its log verifies on its own.
async fn rewrite_coordinator(
    dir: &Path,
    edit: impl FnOnce(&mut Vec<Record>),
) -> Result<Vec<Record>> {
    let mut records = records_of(dir, "coordinator").await?;
    edit(&mut records);
    let mut previous = sigil_audit::genesis_hash("coordinator");
    for (i, r) in records.iter_mut().enumerate() {
        r.sequence = i as u64 + 1;
        r.previous_hash = previous;
        r.record_hash = r.compute_hash();
        previous = r.record_hash;
    }
    let last = records.last().context("records")?;
    let pki = sigil_tls::pki::PkiLayout::new(dir.join("pki"));
    let tls = sigil_tls::ReloadableTls::load(
        pki.identity_files(&Identity::Coordinator),
        Default::default(),
    )?;
    let mut head = heads_of(dir, "coordinator")
        .await?
        .last()
        .context("heads")?
        .clone();
    head.sequence = last.sequence;
    head.head_hash = last.record_hash;
    head.link = Some(sigil_audit::HeadLink::FIRST);
    let signature =
        sigil_audit::HeadSigner::sign_head(&TlsHeadSigner::new(tls), &head.signing_bytes())?;
    head.signature = signature.signature;
    head.certificate_chain = signature.certificate_chain;
    let mut conn = attacker(dir, "coordinator").await?;
    sqlx::query("DELETE FROM audit_records")
        .execute(&mut conn)
        .await?;
    sqlx::query("DELETE FROM audit_heads")
        .execute(&mut conn)
        .await?;
    for r in &records {
        insert_record(&mut conn, r).await?;
    }
    insert_head(&mut conn, &head).await?;
    conn.close().await?;
    Ok(records)
}

/// A coordinator that records a signed session as failed (without blaming
/// anyone), or a session without its digest, is named by the cross-check
/// even though its rewritten log verifies on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_recorded_as_failed_or_without_digest_are_named() -> Result<()> {
    let fx = fixture().await?;

    // The signature hidden as a failure: every signer issued its share.
    let dir = fx.copy()?;
    let session = fx.session.clone();
    let records = rewrite_coordinator(dir.path(), |records| {
        for r in records {
            if r.action == action::SIGNATURE_RETURNED && r.session_id == session {
                r.action = action::SIGN_SESSION_FAILED.into();
                r.outcome = "error:unavailable".into();
            }
        }
    })
    .await?;
    let failed = records
        .iter()
        .find(|r| r.action == action::SIGN_SESSION_FAILED && r.session_id == fx.session)
        .context("rewritten record")?;
    let result = verify_dir(dir.path(), 3).await?;
    assert_eq!(
        first(&result, "coordinator"),
        (failed.sequence, "shares_for_failed_session".into()),
        "{:#?}",
        result.problems
    );
    for node in &fx.signers {
        assert!(
            result.first_for(&format!("node-{node}")).is_none(),
            "{:#?}",
            result.problems
        );
    }

    // A session recorded without its digest.
    let dir = fx.copy()?;
    let session = fx.session.clone();
    let records = rewrite_coordinator(dir.path(), |records| {
        for r in records {
            if r.action == action::SIGN_SESSION && r.session_id == session {
                r.digest.clear();
            }
        }
    })
    .await?;
    let opened = records
        .iter()
        .find(|r| r.action == action::SIGN_SESSION && r.session_id == fx.session)
        .context("rewritten record")?;
    let result = verify_dir(dir.path(), 3).await?;
    assert_eq!(
        first(&result, "coordinator"),
        (opened.sequence, "empty_session_field".into()),
        "{:#?}",
        result.problems
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Fail closed.

async fn share_records(tc: &TestCluster) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for n in &tc.cluster.nodes {
        out.extend(
            n.handle
                .audit
                .query(&Filter::default().action(action::SHARE_ISSUED).limit(10_000))
                .await?,
        );
    }
    Ok(out)
}

async fn stored_responses(dir: &Path, idempotency_key: &str) -> Result<i64> {
    let mut conn = SqliteConnectOptions::new()
        .filename(db_of(dir, "coordinator"))
        .connect()
        .await?;
    let row = sqlx::query("SELECT count(*) AS n FROM sign_requests WHERE idempotency_key = ?")
        .bind(idempotency_key)
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(row.try_get("n")?)
}

/// Node 2's audit store is locked by another connection while a 2-of-2
/// key signs: node 2 refuses the session `UNAVAILABLE` before any share
/// exists, no quorum without it remains, and the client gets
/// `UNAVAILABLE`. Once the lock is released the same request signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_audit_store_is_unwritable_issues_no_share() -> Result<()> {
    let tc = TestCluster::start_spec(2, |spec| {
        spec.node_audit.busy_timeout = Duration::from_millis(300);
    })
    .await?;
    let key = create_key(&tc, 2).await?;
    sign(&tc, &key.key_id, "warm-up").await?;
    let shares_before = share_records(&tc).await?.len();

    let mut lock = SqliteConnectOptions::new()
        .filename(audit_db_of(&tc.data_dir(), "node-2"))
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let tx = lock.begin_with("BEGIN EXCLUSIVE").await?;
    let err = sign(&tc, &key.key_id, "blocked")
        .await
        .expect_err("fail closed");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    tx.rollback().await?;
    lock.close().await?;

    let shares = share_records(&tc).await?;
    assert_eq!(
        shares.len(),
        shares_before,
        "a share was issued: {shares:#?}"
    );
    assert!(shares.iter().all(|r| r.request_id != "blocked"));
    let coordinator = tc
        .cluster
        .coordinator
        .audit
        .query(&Filter::default().limit(10_000))
        .await?;
    assert!(
        records_with(&coordinator, action::SIGNATURE_RETURNED, "blocked").is_empty(),
        "a signature was returned"
    );
    let failed = records_with(&coordinator, "sign_session_failed", "blocked");
    assert!(!failed.is_empty(), "the failed session is recorded");
    assert_eq!(stored_responses(&tc.data_dir(), "blocked").await?, 0);

    // Writable again: the same request signs, and every log still verifies.
    let sig = sign(&tc, &key.key_id, "blocked").await?;
    assert!(!sig.replayed);
    let shares = share_records(&tc).await?;
    assert_eq!(
        shares.iter().filter(|r| r.request_id == "blocked").count(),
        2
    );
    let result = verify_live(&tc).await?;
    assert!(result.is_ok(), "{:#?}", result.problems);
    tc.shutdown().await;
    Ok(())
}

/// The coordinator's audit store refuses writes (as a full or failing disk
/// would, simulated by a trigger): signing fails `UNAVAILABLE` before any
/// node is asked for a share, nothing is stored for replays, and signing resumes when
/// the store accepts writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_whose_audit_store_is_unwritable_returns_no_signature() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, 2).await?;
    sign(&tc, &key.key_id, "before").await?;
    let shares_before = share_records(&tc).await?.len();

    let mut conn = SqliteConnectOptions::new()
        .filename(audit_db_of(&tc.data_dir(), "coordinator"))
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    sqlx::query(
        "CREATE TRIGGER audit_store_unwritable BEFORE INSERT ON audit_records \
         BEGIN SELECT RAISE(ABORT, 'disk I/O error (simulated)'); END",
    )
    .execute(&mut conn)
    .await?;
    let err = sign(&tc, &key.key_id, "unaudited")
        .await
        .expect_err("fail closed");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(
        share_records(&tc).await?.len(),
        shares_before,
        "a node issued a share"
    );
    assert_eq!(stored_responses(&tc.data_dir(), "unaudited").await?, 0);

    sqlx::query("DROP TRIGGER audit_store_unwritable")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let sig = sign(&tc, &key.key_id, "unaudited").await?;
    assert!(!sig.replayed);
    assert_eq!(stored_responses(&tc.data_dir(), "unaudited").await?, 1);
    let result = verify_live(&tc).await?;
    assert!(result.is_ok(), "{:#?}", result.problems);
    tc.shutdown().await;
    Ok(())
}

/// Threshold ECDSA (DKLs23): each signer records exactly one
/// `share_issued` per signature (its final `x‖u‖w` message), with the same
/// digest as the coordinator (the Keccak-256 the nodes computed), and the
/// cluster verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_signatures_are_backed_by_share_records() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: pb::Scheme::EcdsaSecp256k1 as i32,
            threshold: 2,
            ..Default::default()
        })
        .await?
        .into_inner()
        .key
        .context("no key")?;
    let sig = SigningClient::new(tc.coordinator_as("signer")?)
        .sign(
            tc.intended(pb::SignRequest {
                key_id: key.key_id.clone(),
                message: b"ecdsa payment".to_vec(),
                idempotency_key: "ecdsa-1".into(),
                derivation_path: "m/0/7".into(),
                encoding: pb::MessageEncoding::Keccak256 as i32,
                ..Default::default()
            })
            .await?,
        )
        .await?
        .into_inner();
    let live = cli_audit::fetch_live(tc.coordinator_as("auditor")?).await?;
    let result = cli_audit::verify(&live, &verifier(&tc.data_dir())?);
    assert!(result.is_ok(), "{:#?}", result.problems);
    let returned = records_with(
        &live.records["coordinator"],
        action::SIGNATURE_RETURNED,
        "ecdsa-1",
    );
    assert_eq!(returned.len(), 1);
    use sha3::Digest as _;
    let keccak = sha3::Keccak256::digest(b"ecdsa payment");
    assert_eq!(
        returned[0].digest,
        <sha2::Sha256 as sha2::Digest>::digest(keccak).to_vec()
    );
    for node in &sig.signers {
        let shares = records_with(
            &live.records[&format!("node-{node}")],
            action::SHARE_ISSUED,
            "ecdsa-1",
        );
        assert_eq!(shares.len(), 1, "node {node}");
        assert_eq!(shares[0].digest, returned[0].digest);
    }
    tc.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------
// Sessions that never finish.

/// Starts a signing session on node 1 (quorum 1, 2) and walks away after
/// round one (nonce commitments). `deadline_ms`: from now; 0 = the node's TTL.
async fn abandon_session(
    rogue: &RogueCoordinator,
    key: &pb::KeyInfo,
    request_id: &str,
    deadline_ms: u64,
) -> Result<Vec<u8>> {
    let session = session_id();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let message = b"never finished".to_vec();
    let (intent, receipts) = rogue
        .genuine_intent(key, &message, pb::MessageEncoding::Raw, &[1, 2])
        .await?;
    let started = rogue
        .node(1)?
        .start_session(pb::StartSessionRequest {
            session_id: session.clone(),
            request_id: request_id.into(),
            participants: rogue.identities(&[1, 2]).await?,
            deadline_unix_ms: if deadline_ms == 0 {
                0
            } else {
                now_ms + deadline_ms
            },
            kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
                key_id: key.key_id.clone(),
                message,
                intent: Some(intent),
                receipts,
                ..Default::default()
            })),
        })
        .await?
        .into_inner();
    ensure!(!started.messages.is_empty(), "no round-one messages");
    Ok(session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_signing_session_is_recorded_when_it_expires() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, 2).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    // The coordinator walks away and the session reaches its deadline.
    let session = abandon_session(&rogue, &key, "abandoned", 300).await?;

    let log = tc.cluster.nodes[0].handle.audit.clone();
    let mut commits = log.subscribe();
    let session_hex = hex::encode(&session);
    let expired = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            commits.borrow_and_update();
            let found = log
                .query(&Filter::default().action("session_expired"))
                .await?;
            if let Some(r) = found.into_iter().find(|r| r.session_id == session_hex) {
                return anyhow::Ok(r);
            }
            commits.changed().await?;
        }
    })
    .await
    .context("no session_expired record")??;
    assert_eq!(expired.outcome, "error:session_expired");
    assert_eq!(expired.key_id, key.key_id);
    assert_eq!(expired.request_id, "abandoned");
    assert_eq!(expired.quorum, vec![1, 2]);
    assert_eq!(expired.actor, "spiffe://sigil.local/coordinator");
    // Started and expired; no share.
    let all = log.query(&Filter::default().limit(10_000)).await?;
    let of_session: Vec<&str> = all
        .iter()
        .filter(|r| r.session_id == session_hex)
        .map(|r| r.action.as_str())
        .collect();
    assert_eq!(of_session, ["session_start", "session_expired"]);
    // The session is gone: a late round two is refused.
    let late = rogue
        .node(1)?
        .step(pb::StepRequest {
            session_id: session.clone(),
            round: 2,
            messages: Vec::new(),
            receipts: Vec::new(),
        })
        .await
        .expect_err("an expired session cannot continue");
    assert_eq!(late.code(), Code::NotFound, "{late:?}");
    tc.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_open_when_a_node_stops_are_recorded_as_aborted() -> Result<()> {
    let mut tc = TestCluster::start(3).await?;
    let key = create_key(&tc, 2).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    let session = hex::encode(abandon_session(&rogue, &key, "cut-short", 0).await?);
    assert!(tc.cluster.stop_node(1).await);

    let records = records_of(&tc.data_dir(), "node-1").await?;
    let of_session: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r.session_id == session)
        .map(|r| (r.action.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        of_session,
        [
            ("session_start", "ok"),
            ("session_aborted", "refused:aborted")
        ]
    );
    let aborted = records
        .iter()
        .find(|r| r.session_id == session && r.action == "session_aborted")
        .context("no session_aborted")?;
    assert!(aborted.detail.contains("node stopping"), "{aborted:?}");
    // ...before the process's own stop record.
    assert_eq!(
        records.last().map(|r| r.action.as_str()),
        Some(action::PROCESS_STOP)
    );
    tc.shutdown().await;
    Ok(())
}
