//! Cluster tests of backups and recovery drills over real mTLS: every node
//! seals its shares to the offline backup key; a drill restores one node's
//! backup into an isolated drill node that co-signs with a live node, the
//! signature verifies under the group key and the drill node is gone
//! afterwards; tampered, re-labelled and stale backups are refused before
//! any node starts; nodes take part in a drill only with the officers'
//! authorization; a node without a backup recipient exports nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, ensure};
use sigil_policy::backup::{BackupError, BackupFile};
use sigil_proto::v1 as pb;
use sigil_proto::v1::key_admin_client::KeyAdminClient;
use sigil_testkit::sigil_cli::drill::{
    DrillError, DrillReport, DrillSpec, DrillStep, read_backup, run_drill, write_backups,
};
use sigil_testkit::sigil_cli::local::{backup_key_path, load_backup_key};
use sigil_testkit::{RogueCoordinator, TestCluster, session_id};
use tonic::Code;

async fn create_key(tc: &TestCluster, scheme: pb::Scheme) -> Result<pb::KeyInfo> {
    KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: scheme as i32,
            threshold: 2,
            nodes: vec![1, 2, 3],
            label: "drill".into(),
        })
        .await?
        .into_inner()
        .key
        .context("no key in response")
}

async fn get_key(tc: &TestCluster, key_id: &str) -> Result<pb::KeyInfo> {
    Ok(KeyAdminClient::new(tc.coordinator_as("operator")?)
        .get_key(pb::GetKeyRequest {
            key_id: key_id.to_owned(),
        })
        .await?
        .into_inner())
}

/// `sigil backup --key K --out DIR`: every node's backup of the key, written.
async fn backup(tc: &TestCluster, key: &pb::KeyInfo, dir: &Path) -> Result<Vec<PathBuf>> {
    let out = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .export_backups(pb::ExportBackupsRequest {
            key_id: key.key_id.clone(),
        })
        .await?
        .into_inner();
    ensure!(out.failed.is_empty(), "failed: {:?}", out.failed);
    ensure!(out.backups.len() == 3, "{} backups", out.backups.len());
    Ok(write_backups(dir, &out.backups)?)
}

fn spec(tc: &TestCluster, key: &pb::KeyInfo, dir: &Path) -> Result<DrillSpec> {
    Ok(DrillSpec {
        key_id: key.key_id.clone(),
        backup_dir: dir.to_owned(),
        node: None,
        backup_key: load_backup_key(&backup_key_path(&tc.data_dir()))?,
        officers: vec!["officer-1".into(), "officer-2".into()],
    })
}

async fn drill(tc: &TestCluster, spec: &DrillSpec) -> Result<DrillReport, DrillError> {
    let mut steps = Vec::new();
    let mut progress = |s: &DrillStep| steps.push(s.step);
    let report = run_drill(&tc.data_dir(), spec, &mut progress).await;
    if report.is_ok() {
        assert_eq!(
            steps,
            ["load", "open", "start", "co-sign", "verify", "destroy"]
        );
    }
    report
}

/// Drill node directories left in the data directory.
fn drill_dirs(tc: &TestCluster) -> Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(tc.data_dir())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("drill-"))
        })
        .collect())
}

/// The backup error of a failed drill.
fn backup_error(result: Result<DrillReport, DrillError>) -> Result<(PathBuf, u16, BackupError)> {
    match result {
        Err(DrillError::Backup { file, node, error }) => Ok((file, node, error)),
        other => anyhow::bail!("expected a refused backup, got {other:?}"),
    }
}

/// Rewrites one entry of a backup file.
fn tamper(path: &Path, change: impl FnOnce(&mut BackupFile)) -> Result<PathBuf> {
    let mut file = read_backup(path)?;
    change(&mut file);
    let dir = path
        .parent()
        .context("no parent")?
        .with_extension(format!("tampered-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join(path.file_name().context("no name")?);
    std::fs::write(&out, serde_json::to_vec(&file)?)?;
    Ok(out)
}

fn flip_hex(text: &mut String) {
    let first = if text.starts_with('0') { "1" } else { "0" };
    text.replace_range(0..1, first);
}

#[tokio::test]
async fn a_restored_backup_co_signs_with_a_live_node_for_frost_and_ecdsa() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    for scheme in [pb::Scheme::FrostSecp256k1, pb::Scheme::EcdsaSecp256k1] {
        let key = create_key(&tc, scheme).await?;
        let dir = tc.data_dir().join(format!("backups-{}", key.key_id));
        let files = backup(&tc, &key, &dir).await?;
        // Each file holds the key's share of its node, sealed, and nothing in clear.
        for (i, path) in files.iter().enumerate() {
            let file = read_backup(path)?;
            assert_eq!(usize::from(file.node_id), i + 1);
            let entry = file.entry(&key.key_id).context("entry")?;
            assert_eq!((entry.epoch, entry.node_id), (0, file.node_id));
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(std::fs::metadata(path)?.permissions().mode() & 0o777, 0o600);
            }
        }

        let report = drill(&tc, &spec(&tc, &key, &dir)?).await?;
        eprintln!(
            "drill {:?}: {} ms in total; steps {:?}",
            scheme,
            report.total_ms,
            report
                .steps
                .iter()
                .map(|s| (s.step, s.ms))
                .collect::<Vec<_>>()
        );
        assert_eq!(report.node_id, 1);
        assert_eq!(report.signers.len(), 2);
        assert!(report.signers.contains(&1), "{:?}", report.signers);
        // The signature verifies under the unchanged group key, independently.
        let sigil_scheme = sigil_proto::convert::scheme_from_wire(key.scheme)?;
        let message =
            sigil_policy::drill_message(&key.key_id, key.epoch, &hex::decode(&report.session_id)?);
        let encoding = if sigil_scheme == sigil_protocol::Scheme::EcdsaSecp256k1 {
            sigil_protocol::engine::Encoding::Sha256
        } else {
            sigil_protocol::engine::Encoding::Raw
        };
        let input = sigil_protocol::engine::SignInput::new(sigil_scheme, &message, encoding, "")?;
        sigil_protocol::engine::verify(
            sigil_scheme,
            &key.public_key,
            &input,
            &hex::decode(&report.signature)?,
        )?;
        assert_eq!(report.public_key, hex::encode(&key.public_key));
        // The drill node is gone.
        assert!(drill_dirs(&tc)?.is_empty(), "{:?}", drill_dirs(&tc)?);

        // On record: the coordinator's drill and session, the live node's session.
        let records = tc
            .cluster
            .coordinator
            .audit
            .query(
                &sigil_audit::Filter::default()
                    .key_id(key.key_id.clone())
                    .limit(10_000),
            )
            .await?;
        let drill_record = records
            .iter()
            .find(|r| r.action == "recovery_drill")
            .context("no recovery_drill record")?;
        assert_eq!(drill_record.outcome, "ok");
        assert_eq!(drill_record.session_id, report.session_id);
        assert!(
            records
                .iter()
                .any(|r| r.action == "sign_session" && r.session_id == report.session_id),
            "no sign_session record of the drill"
        );
        assert!(records.iter().any(|r| r.action == "request"
            && r.detail.contains("recovery drill of node 1")
            && r.outcome == "ok"));
        let live = *report
            .signers
            .iter()
            .find(|s| **s != 1)
            .context("a live signer")?;
        let node = tc
            .cluster
            .nodes
            .iter()
            .find(|n| u32::from(n.id) == live)
            .context("live node")?;
        let node_records: Vec<_> = node
            .handle
            .audit
            .query(
                &sigil_audit::Filter::default()
                    .key_id(key.key_id.clone())
                    .limit(10_000),
            )
            .await?;
        for action in ["session_start", "share_issued"] {
            assert!(
                node_records.iter().any(|r| r.action == action
                    && r.session_id == report.session_id
                    && r.outcome == "ok"
                    && r.detail.contains("drill")),
                "node {live} has no {action} record of the drill: {node_records:?}"
            );
        }
        assert!(
            node_records
                .iter()
                .any(|r| r.action == "backup_exported" && r.outcome == "ok"),
            "node {live} did not record its backup export"
        );
        // The auditors' cross-check finds the drill session in the coordinator's log.
        let node_log = sigil_audit::NodeLog {
            node_id: node.id,
            records: &node_records,
        };
        let report_check = sigil_audit::cross_check(&records, &[node_log]);
        assert!(
            report_check.findings.is_empty(),
            "{:?}",
            report_check.findings
        );
    }
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn tampered_relabelled_and_stale_backups_are_refused() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1).await?;
    let dir = tc.data_dir().join("backups");
    let files = backup(&tc, &key, &dir).await?;
    let node1 = files.first().context("node 1's backup")?.clone();

    // The ciphertext altered: it does not open; the error names the file and node.
    let altered = tamper(&node1, |f| flip_hex(&mut f.entries[0].ciphertext))?;
    let mut s = spec(&tc, &key, altered.parent().context("dir")?)?;
    let (file, node, e) = backup_error(drill(&tc, &s).await)?;
    assert_eq!((file, node), (altered.clone(), 1));
    assert!(matches!(e, BackupError::Open { .. }), "{e:?}");
    let message = DrillError::Backup {
        file: altered.clone(),
        node: 1,
        error: e,
    }
    .to_string();
    assert!(
        message.contains("node-1.json (node 1)") && message.contains("does not open"),
        "{message}"
    );

    // An authenticated label altered (the verifying share): it does not open either.
    let altered = tamper(&node1, |f| flip_hex(&mut f.entries[0].verifying_share))?;
    s.backup_dir = altered.parent().context("dir")?.to_owned();
    let (_, _, e) = backup_error(drill(&tc, &s).await)?;
    assert!(matches!(e, BackupError::Open { .. }), "{e:?}");

    // Sealed to another backup key: refused the same way.
    s.backup_dir = dir.clone();
    s.backup_key = sigil_policy::backup::BackupSecretKey::generate(&mut rand::rngs::OsRng);
    let (_, _, e) = backup_error(drill(&tc, &s).await)?;
    assert!(matches!(e, BackupError::Open { .. }), "{e:?}");
    assert!(drill_dirs(&tc)?.is_empty());

    // After a refresh the backup is of an older epoch.
    let out = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .refresh_key(pb::RefreshKeyRequest {
            key_id: key.key_id.clone(),
            authorization: Some(authorization(
                &tc,
                sigil_policy::OperationKind::Refresh,
                &key,
                &[1, 2, 3],
            )?),
        })
        .await?
        .into_inner();
    assert_eq!(out.key.as_ref().map(|k| k.epoch), Some(1));
    let s = spec(&tc, &key, &dir)?;
    let (_, _, e) = backup_error(drill(&tc, &s).await)?;
    assert_eq!(
        e,
        BackupError::Epoch {
            key_id: key.key_id.clone(),
            backup: 0,
            current: 1
        }
    );
    assert!(
        e.to_string().starts_with(&format!(
            "backup of epoch 0, key {} is at epoch 1",
            key.key_id
        )),
        "{e}"
    );
    // Re-labelled as the current epoch: the epoch is authenticated, so it does not open.
    let relabelled = tamper(&node1, |f| f.entries[0].epoch = 1)?;
    let s = spec(&tc, &key, relabelled.parent().context("dir")?)?;
    let (_, _, e) = backup_error(drill(&tc, &s).await)?;
    assert!(matches!(e, BackupError::Open { epoch: 1, .. }), "{e:?}");
    assert!(drill_dirs(&tc)?.is_empty());

    // A backup of the new epoch drills.
    let fresh = tc.data_dir().join("backups-epoch-1");
    backup(&tc, &get_key(&tc, &key.key_id).await?, &fresh).await?;
    let mut s = spec(&tc, &key, &fresh)?;
    s.node = Some(3);
    let report = drill(&tc, &s).await?;
    assert_eq!((report.epoch, report.node_id), (1, 3));
    assert!(drill_dirs(&tc)?.is_empty());
    tc.shutdown().await;
    Ok(())
}

/// The officers' authorization of `kind` of `key` at its epoch by `nodes`.
fn authorization(
    tc: &TestCluster,
    kind: sigil_policy::OperationKind,
    key: &pb::KeyInfo,
    nodes: &[u16],
) -> Result<pb::SignedOperation> {
    tc.authorization(
        kind,
        key,
        nodes,
        key.threshold as u16,
        &["officer-1", "officer-2"],
    )
}

#[tokio::test]
async fn nodes_take_part_in_a_drill_only_with_the_officers_authorization() -> Result<()> {
    let tc = TestCluster::start(3).await?;
    let key = create_key(&tc, pb::Scheme::FrostSecp256k1).await?;
    let rogue = RogueCoordinator::new(&tc)?;
    let start = |authorization: Option<pb::SignedOperation>| async {
        Ok::<_, anyhow::Error>(pb::StartSessionRequest {
            session_id: session_id(),
            request_id: "rogue".into(),
            participants: rogue.identities(&[1, 2]).await?,
            deadline_unix_ms: 0,
            kind: Some(pb::start_session_request::Kind::Drill(pb::DrillSession {
                key_id: key.key_id.clone(),
                epoch: key.epoch,
                authorization,
            })),
        })
    };

    // No authorization: refused before the share is touched, and on record.
    let req = start(None).await?;
    let session = hex::encode(&req.session_id);
    let err = rogue
        .node(2)?
        .start_session(req)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("needs the security officers' authorization"),
        "{}",
        err.message()
    );
    let node = tc
        .cluster
        .nodes
        .iter()
        .find(|n| n.id == 2)
        .context("node 2")?;
    let refusals: Vec<_> = node
        .handle
        .audit
        .query(
            &sigil_audit::Filter::default()
                .action("session_start")
                .limit(10_000),
        )
        .await?
        .into_iter()
        .filter(|r| r.session_id == session)
        .collect();
    assert!(
        refusals
            .iter()
            .any(|r| r.outcome == "refused:permission_denied" && r.detail.starts_with("drill")),
        "{refusals:?}"
    );

    // A refresh authorization is no drill authorization.
    let refresh = authorization(&tc, sigil_policy::OperationKind::Refresh, &key, &[1, 2, 3])?;
    let err = rogue
        .node(1)?
        .start_session(start(Some(refresh)).await?)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("operation"), "{}", err.message());

    // A drill authorization for other signers than the session's.
    let other = authorization(&tc, sigil_policy::OperationKind::Drill, &key, &[1, 3])?;
    let err = rogue
        .node(1)?
        .start_session(start(Some(other)).await?)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("participants"), "{}", err.message());

    // The coordinator refuses a drill without authorization too.
    let err = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .drill(pb::DrillRequest {
            key_id: key.key_id.clone(),
            node_id: 1,
            endpoint: tc.node_addr(1)?.to_string(),
            authorization: None,
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // With it, the genuine node 1 signs a drill message with node 2: nothing
    // but the derived message, and the key is unchanged.
    let genuine = authorization(&tc, sigil_policy::OperationKind::Drill, &key, &[1, 2])?;
    let out = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .drill(pb::DrillRequest {
            key_id: key.key_id.clone(),
            node_id: 1,
            endpoint: tc.node_addr(1)?.to_string(),
            authorization: Some(genuine),
        })
        .await?
        .into_inner();
    assert_eq!(out.signers, vec![1, 2]);
    assert!(out.message.starts_with(b"sigil.v1.Drill\0"));
    assert_eq!(get_key(&tc, &key.key_id).await?.epoch, 0);
    tc.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_node_without_a_backup_recipient_exports_nothing() -> Result<()> {
    let tc = TestCluster::start_spec(2, |spec| spec.backup = false).await?;
    let key = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .create_key(pb::CreateKeyRequest {
            scheme: pb::Scheme::FrostEd25519 as i32,
            threshold: 2,
            nodes: vec![1, 2],
            label: "no backup".into(),
        })
        .await?
        .into_inner()
        .key
        .context("no key")?;
    let rogue = RogueCoordinator::new(&tc)?;
    let err = rogue
        .node(1)?
        .export_backup(pb::ExportBackupRequest {
            key_id: key.key_id.clone(),
        })
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("no backup recipient configured"),
        "{}",
        err.message()
    );
    let out = KeyAdminClient::new(tc.coordinator_as("operator")?)
        .export_backups(pb::ExportBackupsRequest {
            key_id: String::new(),
        })
        .await?
        .into_inner();
    assert!(out.backups.is_empty());
    assert_eq!(
        out.failed.iter().map(|f| f.node_id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(
        out.failed
            .iter()
            .all(|f| f.reason.contains("FailedPrecondition")),
        "{:?}",
        out.failed
    );
    let refused: Vec<_> = tc
        .cluster
        .nodes
        .first()
        .context("node 1")?
        .handle
        .audit
        .query(
            &sigil_audit::Filter::default()
                .action("backup_exported")
                .limit(100),
        )
        .await?;
    assert!(
        !refused.is_empty()
            && refused
                .iter()
                .all(|r| r.outcome == "refused:backup_not_configured"),
        "{refused:?}"
    );
    tc.shutdown().await;
    Ok(())
}
