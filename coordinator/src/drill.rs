//! Backups and recovery drills, as the coordinator runs them. The
//! coordinator relays: it never holds a backup key, and what it relays of a
//! backup is ciphertext sealed by each node.
//!
//! | call | what happens |
//! |---|---|
//! | `ExportBackups` | `Node.ExportBackup` on every node (of the key, or every configured node); each node seals its current shares to its own configured backup recipient and records it. Failures are listed per node, never skipped silently |
//! | `Drill` | a node restored from a backup, reached at the given endpoint as `node/<id>` of the cluster CA (outside the node pool: its identity is never cached, it is never in a quorum), signs a drill message with the live current participants the officers' authorization names; the signature is aggregated under the key's current package, verified under the group key, and recorded (`recovery_drill`, fail closed) |
//!
//! A drill changes nothing about the key and excludes no node: a failure
//! is reported (and recorded), never turned into an exclusion of the
//! production node whose backup was drilled.

use std::collections::BTreeSet;
use std::time::Instant;

use sigil_proto::v1 as pb;
use sigil_protocol::NodeId;
use sigil_protocol::engine::{self, Aggregator, Encoding, SignInput};

use crate::CoordinatorError;
use crate::audit::SignAudit;
use crate::driver::{DriveError, drive};
use crate::ops::random_session;
use crate::service::Coordinator;

impl Coordinator {
    /// Every node's backup of `key_id` (empty: of every key).
    pub async fn export_backups(
        &self,
        key_id: &str,
    ) -> Result<pb::ExportBackupsResponse, CoordinatorError> {
        let targets: Vec<u16> = if key_id.is_empty() {
            self.nodes.nodes().iter().map(|n| n.endpoint.id).collect()
        } else {
            self.key(key_id).await?.participants
        };
        let calls = targets.iter().map(|id| {
            let conn = self.nodes.get(*id).cloned();
            let timeout = self.nodes.timeout();
            let key_id = key_id.to_owned();
            async move {
                let Some(conn) = conn else {
                    return (*id, Err(format!("node {id} is not configured")));
                };
                let mut client = conn.client.clone();
                let mut req = tonic::Request::new(pb::ExportBackupRequest { key_id });
                req.set_timeout(timeout);
                let result = client
                    .export_backup(req)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
                    .and_then(|b| {
                        if b.node_id == u32::from(*id)
                            && b.entries.iter().all(|e| e.node_id == u32::from(*id))
                        {
                            Ok(b)
                        } else {
                            Err("returned entries of another node".to_owned())
                        }
                    });
                (*id, result)
            }
        });
        let mut out = pb::ExportBackupsResponse::default();
        for (id, result) in futures::future::join_all(calls).await {
            match result {
                Ok(backup) => out.backups.push(backup),
                Err(reason) => {
                    tracing::warn!(node = id, %reason, "backup export failed");
                    out.failed.push(pb::NodeBackupFailure {
                        node_id: u32::from(id),
                        reason,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Runs a recovery drill (see the module docs).
    pub async fn drill(
        &self,
        actor: &str,
        req: pb::DrillRequest,
    ) -> Result<pb::DrillResponse, CoordinatorError> {
        let key = self.key(&req.key_id).await?;
        let node = u16::try_from(req.node_id)
            .ok()
            .filter(|n| key.participants.contains(n))
            .ok_or_else(|| {
                CoordinatorError::InvalidRequest(format!(
                    "node {} holds no share of key {}",
                    req.node_id, key.key_id
                ))
            })?;
        if req.endpoint.trim().is_empty() {
            return Err(CoordinatorError::InvalidRequest(
                "the drill node's endpoint is required".into(),
            ));
        }
        let authorization = req.authorization.clone().ok_or_else(|| {
            CoordinatorError::PermissionDenied(
                "a recovery drill needs the security officers' signed authorization".into(),
            )
        })?;
        // An early, clear answer; every node checks the signatures itself.
        let op = sigil_policy::KeyOperation::from_document_bytes(&authorization.document)
            .map_err(|e| CoordinatorError::InvalidRequest(e.to_string()))?;
        let signers: BTreeSet<u16> = op.new_participants.iter().copied().collect();
        if op.operation != sigil_policy::OperationKind::Drill
            || op.key_id != key.key_id
            || op.from_epoch != key.epoch
            || op.new_threshold != key.threshold
            || signers.len() != op.new_participants.len()
            || signers.len() != usize::from(key.threshold)
            || !signers.contains(&node)
            || !signers.iter().all(|s| key.participants.contains(s))
        {
            return Err(CoordinatorError::FailedPrecondition {
                message: format!(
                    "the officers authorized a {} of {} at epoch {} by nodes {:?} with threshold {}, not a drill of node {node} at epoch {} with {} of nodes {:?}",
                    op.operation,
                    op.key_id,
                    op.from_epoch,
                    op.new_participants,
                    op.new_threshold,
                    key.epoch,
                    key.threshold,
                    key.participants
                ),
                metadata: Vec::new(),
            });
        }

        // The live co-signers must answer now; the drill node is reached at its endpoint.
        let healthy = self.nodes.healthy().await;
        let live: Vec<u16> = signers.iter().copied().filter(|s| *s != node).collect();
        if let Some(down) = live.iter().find(|n| !healthy.contains(n)) {
            return Err(CoordinatorError::Unavailable(format!(
                "node {down}, named by the drill authorization, does not answer; have the officers authorize a drill with live nodes"
            )));
        }
        let live_conns = live
            .iter()
            .map(|id| {
                self.nodes.get(*id).cloned().ok_or_else(|| {
                    CoordinatorError::InvalidRequest(format!("node {id} is not configured"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let drill_conn = self.nodes.dial(node, &req.endpoint, "drill")?;
        let drill_identity = self.nodes.fetch_identity(&drill_conn).await.map_err(|e| {
            CoordinatorError::Unavailable(format!(
                "the drill node at {} does not answer as node {node} of this cluster: {e}",
                req.endpoint
            ))
        })?;
        let live_identities = self
            .nodes
            .identities(&live_conns)
            .await
            .map_err(|e| CoordinatorError::Unavailable(e.to_string()))?;
        let mut parties: Vec<(crate::nodes::NodeConn, pb::NodeIdentity)> = live_conns
            .into_iter()
            .zip(live_identities)
            .chain(std::iter::once((drill_conn, drill_identity)))
            .collect();
        parties.sort_by_key(|(c, _)| c.endpoint.id);
        let (conns, identities): (Vec<_>, Vec<_>) = parties.into_iter().unzip();
        let quorum: Vec<u16> = conns.iter().map(|c| c.endpoint.id).collect();
        let ids: Vec<NodeId> = quorum
            .iter()
            .map(|n| NodeId::new(*n))
            .collect::<Result<_, _>>()
            .map_err(|e| CoordinatorError::InvalidRequest(e.to_string()))?;

        let session = random_session();
        let message = sigil_policy::drill_message(&key.key_id, key.epoch, session.as_bytes());
        let encoding = if key.scheme == sigil_protocol::Scheme::EcdsaSecp256k1 {
            Encoding::Sha256
        } else {
            Encoding::Raw
        };
        let input = SignInput::new(key.scheme, &message, encoding, "")
            .map_err(|e| CoordinatorError::Config(format!("drill input: {e}")))?;
        let request_id = format!("{}@{}/drill", key.key_id, key.epoch);
        let sign = SignAudit {
            actor: actor.to_owned(),
            key_id: key.key_id.clone(),
            request_id: request_id.clone(),
            digest: crate::audit::signed_digest(input.signed_bytes()),
        };
        let session_hex = session.to_string();
        // The session is on record before any node is asked for a share.
        self.audit
            .sign_session(&sign, &quorum, &session_hex)
            .await?;
        tracing::info!(
            key_id = %key.key_id, epoch = key.epoch, node, endpoint = %req.endpoint,
            signers = ?quorum, session = %session, nonce = %op.nonce, "recovery drill started"
        );

        let started = Instant::now();
        let start = pb::StartSessionRequest {
            request_id,
            participants: identities,
            kind: Some(pb::start_session_request::Kind::Drill(pb::DrillSession {
                key_id: key.key_id.clone(),
                epoch: key.epoch,
                authorization: Some(authorization),
            })),
            ..Default::default()
        };
        let result = async {
            let transcript = drive(
                &self.nodes,
                &conns,
                session,
                start,
                key.scheme,
                engine::sign_steps(key.scheme) as u16,
                self.dkg_timeout(key.scheme),
            )
            .await
            .map_err(|e| drill_failure(node, e))?;
            let mut aggregator = Aggregator::new(
                key.scheme,
                session,
                &key.public_key_package,
                &key.public_key,
                &ids,
                &input,
            )
            .map_err(|e| CoordinatorError::Config(format!("aggregator: {e}")))?;
            let signature = transcript.aggregate(&mut aggregator).map_err(|e| {
                CoordinatorError::Misbehaviour {
                    culprits: e.culprits().iter().map(|c| c.get()).collect(),
                    message: format!(
                        "the drill signature of nodes {quorum:?} does not aggregate: {e}{}",
                        restored_blame(node, &e.culprits())
                    ),
                }
            })?;
            engine::verify(key.scheme, &key.public_key, &input, &signature.bytes).map_err(|e| {
                CoordinatorError::Aborted(format!(
                    "the drill signature does not verify under the group key: {e}"
                ))
            })?;
            Ok::<_, CoordinatorError>(signature)
        }
        .await;
        let sign_ms = started.elapsed().as_millis() as u64;
        let signature = match result {
            Ok(signature) => signature,
            Err(e) => {
                let kind = crate::audit::error_kind(&e);
                let culprits = match &e {
                    CoordinatorError::Misbehaviour { culprits, .. } => culprits.clone(),
                    _ => Vec::new(),
                };
                let reason = e.to_string();
                self.audit
                    .sign_session_failed(&sign, &quorum, &session_hex, kind, &culprits, &reason)
                    .await;
                self.audit
                    .recovery_drill_failed(&sign, &quorum, &session_hex, kind, &reason)
                    .await;
                return Err(e);
            }
        };
        // Fail closed: the drill is reported only once it is on record.
        self.audit
            .recovery_drill(
                &sign,
                &quorum,
                &session_hex,
                format!(
                    "node {node} restored from its backup of epoch {} at {} co-signed with nodes {live:?}; signature verified under the group key {}; authorization nonce {}",
                    key.epoch,
                    req.endpoint,
                    hex::encode(&key.public_key),
                    op.nonce
                ),
            )
            .await?;
        tracing::info!(key_id = %key.key_id, epoch = key.epoch, node, signers = ?quorum, sign_ms, "recovery drill passed");
        Ok(pb::DrillResponse {
            key_id: key.key_id.clone(),
            epoch: key.epoch,
            node_id: u32::from(node),
            signers: quorum.iter().map(|n| u32::from(*n)).collect(),
            session_id: session_hex,
            message,
            signature: signature.bytes,
            public_key: key.public_key.clone(),
            sign_ms,
        })
    }
}

/// " (the restored node N)" when the protocol blames the drilled node.
fn restored_blame(node: u16, culprits: &[NodeId]) -> String {
    if culprits.iter().any(|c| c.get() == node) {
        format!(" (node {node} is the node restored from the backup)")
    } else {
        String::new()
    }
}

/// A failed drill session as an error; unlike a signing request, nothing
/// is retried and no node is excluded.
fn drill_failure(node: u16, e: DriveError) -> CoordinatorError {
    match e {
        DriveError::Unavailable { nodes, detail } => CoordinatorError::Unavailable(format!(
            "the drill needs every signer; nodes {nodes:?} did not answer: {detail}"
        )),
        DriveError::Denied {
            node: refuser,
            code,
            message,
            metadata,
        } => crate::intents::refused_by_node(refuser, code, &message, metadata).unwrap_or(
            CoordinatorError::Aborted(format!("node {refuser} refused the drill: {message}")),
        ),
        DriveError::Refused {
            node: refuser,
            message,
            ..
        } => CoordinatorError::Aborted(format!("node {refuser} refused the drill: {message}")),
        e => {
            let culprits = e.culprits();
            let blame = if culprits.contains(&node) {
                format!(" (node {node} is the node restored from the backup)")
            } else {
                String::new()
            };
            CoordinatorError::Misbehaviour {
                culprits,
                message: format!("the drill session aborted: {e}{blame}"),
            }
        }
    }
}
