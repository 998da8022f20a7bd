//! Refresh and reshare, as the coordinator runs them: one redistribution
//! session, test signatures with the new epoch, a durable commit
//! certificate, then the switch on every node.
//!
//! | step | what happens | after a crash here |
//! |---|---|---|
//! | 1. redistribute | dealers (current holders that answer, at least `t`) and new participants run `engine::new_reshare`; each new participant stores its share as `next` and returns a signed acknowledgement | nothing switched; the `next` shares expire at the nodes (`[epochs] next_ttl`) or are replaced by the next attempt |
//! | 2. test signatures | quorums of the new epoch that together cover every new participant sign a message each node derives itself (`epoch_test`); the coordinator verifies each signature under the unchanged group key | as above |
//! | 3. certificate | one acknowledgement per new participant, each verified, written durably with the key's new record in one transaction | the coordinator resumes step 4 at start and every `epoch_resume_interval` (30 s) |
//! | 4. commit | `CommitEpoch` to every previous and new participant; each verifies the certificate itself and switches in one transaction (a removed node deletes its share) | a node that missed it gets it on the next resume |
//!
//! The key's record moves to the new epoch at step 3, so signing requests
//! go to the new epoch from then on; a node that has not switched yet
//! refuses them (epoch mismatch) and the retry logic picks another quorum.
//! Nodes on different epochs never sign together.

use std::collections::BTreeSet;
use std::time::Instant;

use prost::Message as _;
use sha2::{Digest, Sha256};
use sigil_proto::convert::scheme_to_wire;
use sigil_proto::v1 as pb;
use sigil_protocol::NodeId;
use sigil_protocol::engine::{self, Aggregator, Encoding, SignInput};

use crate::CoordinatorError;
use crate::driver::drive;
use crate::ops::{now_rfc3339, random_session};
use crate::service::Coordinator;
use crate::store::KeyRecord;

/// Where a redistribution stops on purpose, as if the coordinator crashed
/// there (compiled in with the `fault-injection` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// New shares are staged as `next`; no test signature yet.
    Redistributed,
    /// Test signatures verified; no certificate yet.
    Tested,
    /// The certificate is written; no node was told.
    Certified,
}

/// Test-only misbehaviour of the coordinator.
#[derive(Clone, Debug, Default)]
pub struct CoordinatorFaults {
    /// Stop the redistribution after this stage.
    pub stop_after: Option<Stage>,
    /// Do not send the certificate to these nodes on the redistribution's
    /// own commit (the resume sends it).
    pub skip_commit_to: Vec<u16>,
}

impl Coordinator {
    #[cfg(feature = "fault-injection")]
    fn crash_point(&self, stage: Stage) -> Result<(), CoordinatorError> {
        if self.faults.stop_after == Some(stage) {
            tracing::warn!(?stage, "fault injection: redistribution stopped");
            return Err(CoordinatorError::Unavailable(format!(
                "fault injection: coordinator stopped after {stage:?}"
            )));
        }
        Ok(())
    }

    #[cfg(not(feature = "fault-injection"))]
    fn crash_point(&self, _stage: Stage) -> Result<(), CoordinatorError> {
        Ok(())
    }

    #[cfg(feature = "fault-injection")]
    fn commit_skips(&self) -> &[u16] {
        &self.faults.skip_commit_to
    }

    #[cfg(not(feature = "fault-injection"))]
    fn commit_skips(&self) -> &[u16] {
        &[]
    }
}

/// What an operator asked for.
#[derive(Clone, Debug)]
pub struct Redistribution {
    pub key_id: String,
    pub refresh: bool,
    /// Empty for a refresh: the current participants.
    pub new_nodes: Vec<u16>,
    /// 0 for a refresh: the current threshold.
    pub new_threshold: u16,
    pub authorization: Option<pb::SignedOperation>,
}

/// Quorums of `threshold` consecutive nodes (wrapping) that together cover
/// every node of `nodes`: the fewest test signatures that exercise every
/// new share.
pub fn covering_quorums(nodes: &[u16], threshold: u16) -> Vec<Vec<u16>> {
    let n = nodes.len();
    let t = usize::from(threshold).min(n);
    if t == 0 {
        return Vec::new();
    }
    let mut quorums = Vec::new();
    let mut start = 0;
    while start < n {
        let mut q: Vec<u16> = (0..t).map(|k| nodes[(start + k) % n]).collect();
        q.sort_unstable();
        quorums.push(q);
        start += t;
    }
    quorums
}

impl Coordinator {
    /// Runs a refresh or reshare to the end (see the module docs).
    pub async fn redistribute(
        &self,
        actor: &str,
        req: Redistribution,
    ) -> Result<pb::RedistributeResponse, CoordinatorError> {
        let key = self.key(&req.key_id).await?;
        // A certified switch that some node has not confirmed comes first.
        if self
            .store
            .uncommitted_epochs()
            .await?
            .iter()
            .any(|u| u.key_id == key.key_id)
        {
            self.resume_commits().await;
            return Err(CoordinatorError::FailedPrecondition {
                message: format!(
                    "key {} has a certified epoch that not every node confirmed yet; retried now, try again once `sigil key epochs` shows it committed",
                    key.key_id
                ),
                metadata: Vec::new(),
            });
        }
        let (mut new_nodes, new_threshold) = if req.refresh {
            (key.participants.clone(), key.threshold)
        } else {
            (req.new_nodes.clone(), req.new_threshold)
        };
        new_nodes.sort_unstable();
        if new_nodes.windows(2).any(|w| w[0] == w[1]) {
            return Err(CoordinatorError::InvalidRequest(
                "a node is listed twice".into(),
            ));
        }
        if new_threshold < 2 || usize::from(new_threshold) > new_nodes.len() {
            return Err(CoordinatorError::InvalidRequest(format!(
                "threshold must be between 2 and the number of nodes ({}), got {new_threshold}",
                new_nodes.len()
            )));
        }
        if !req.refresh && new_nodes == key.participants && new_threshold == key.threshold {
            return Err(CoordinatorError::InvalidRequest(
                "this reshare changes nothing; use a refresh".into(),
            ));
        }
        for id in &new_nodes {
            if self.nodes.get(*id).is_none() {
                return Err(CoordinatorError::InvalidRequest(format!(
                    "node {id} is not configured"
                )));
            }
        }
        let authorization = req.authorization.clone().ok_or_else(|| {
            CoordinatorError::PermissionDenied(
                "a refresh or reshare needs the security officers' signed authorization".into(),
            )
        })?;
        // An early, clear answer; every node checks the signatures itself.
        let op = sigil_policy::KeyOperation::from_document_bytes(&authorization.document)
            .map_err(|e| CoordinatorError::InvalidRequest(e.to_string()))?;
        if op.key_id != key.key_id
            || op.from_epoch != key.epoch
            || op.new_threshold != new_threshold
            || {
                let mut signed = op.new_participants.clone();
                signed.sort_unstable();
                signed != new_nodes
            }
            || (op.operation == sigil_policy::OperationKind::Refresh) != req.refresh
        {
            return Err(CoordinatorError::FailedPrecondition {
                message: format!(
                    "the officers authorized a {} of {} from epoch {} to nodes {:?} with threshold {}, not this request (epoch {}, nodes {new_nodes:?}, threshold {new_threshold})",
                    op.operation,
                    op.key_id,
                    op.from_epoch,
                    op.new_participants,
                    op.new_threshold,
                    key.epoch
                ),
                metadata: Vec::new(),
            });
        }

        // Dealers: every current holder that answers (at least t).
        let healthy = self.nodes.healthy().await;
        let dealers: Vec<u16> = key
            .participants
            .iter()
            .copied()
            .filter(|n| healthy.contains(n))
            .collect();
        if dealers.len() < usize::from(key.threshold) {
            return Err(CoordinatorError::Unavailable(format!(
                "only nodes {dealers:?} of key {} answer; {} current holders are needed to deal",
                key.key_id, key.threshold
            )));
        }
        if let Some(down) = new_nodes.iter().find(|n| !healthy.contains(n)) {
            return Err(CoordinatorError::Unavailable(format!(
                "new participant node {down} does not answer"
            )));
        }
        let parties: BTreeSet<u16> = dealers.iter().chain(&new_nodes).copied().collect();
        let conns = parties
            .iter()
            .map(|id| {
                self.nodes.get(*id).cloned().ok_or_else(|| {
                    CoordinatorError::InvalidRequest(format!("node {id} is not configured"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let what = if req.refresh { "refresh" } else { "reshare" };
        let new_epoch = key.epoch + 1;
        let session = random_session();
        tracing::info!(
            key_id = %key.key_id, from_epoch = key.epoch, ?dealers, ?new_nodes, new_threshold,
            session = %session, "{what} started"
        );
        let started = Instant::now();
        let start = pb::StartSessionRequest {
            request_id: format!("{}@{new_epoch}", key.key_id),
            kind: Some(pb::start_session_request::Kind::Reshare(
                pb::ReshareSession {
                    key_id: key.key_id.clone(),
                    scheme: scheme_to_wire(key.scheme) as i32,
                    epoch: key.epoch,
                    refresh: req.refresh,
                    dealers: dealers.iter().map(|n| u32::from(*n)).collect(),
                    new_participants: new_nodes.iter().map(|n| u32::from(*n)).collect(),
                    new_threshold: u32::from(new_threshold),
                    public_key_package: key.public_key_package.clone(),
                    authorization: Some(authorization.clone()),
                    threshold: u32::from(key.threshold),
                    participants: key.participants.iter().map(|n| u32::from(*n)).collect(),
                },
            )),
            ..Default::default()
        };
        let transcript = drive(
            &self.nodes,
            &conns,
            session,
            start,
            key.scheme,
            engine::reshare_steps(key.scheme) as u16,
            self.dkg_timeout(key.scheme),
        )
        .await
        .map_err(|e| self.drive_failure(what, &key.key_id, session, e))?;
        let redistribute_ms = started.elapsed().as_millis() as u64;
        self.crash_point(Stage::Redistributed)?;

        // Every new participant reports the same package and acknowledges it.
        let mut package: Option<Vec<u8>> = None;
        let mut acks = Vec::with_capacity(new_nodes.len());
        for id in &new_nodes {
            let out = match transcript.outputs.get(id).and_then(|o| o.output.clone()) {
                Some(pb::session_output::Output::Reshare(r)) => r,
                _ => {
                    return Err(CoordinatorError::Aborted(format!(
                        "node {id} reported no share after the {what}"
                    )));
                }
            };
            if out.public_key != key.public_key || out.epoch != new_epoch {
                return Err(CoordinatorError::Misbehaviour {
                    culprits: vec![*id],
                    message: format!(
                        "node {id} reports another public key or epoch after the {what}"
                    ),
                });
            }
            match &package {
                None => package = Some(out.public_key_package.clone()),
                Some(p) if *p == out.public_key_package => {}
                Some(_) => {
                    return Err(CoordinatorError::Aborted(format!(
                        "node {id} reports a different public key package; nothing switched"
                    )));
                }
            }
            let ack = out.ack.ok_or_else(|| {
                CoordinatorError::Aborted(format!("node {id} did not acknowledge its share"))
            })?;
            sigil_policy::epoch::verify_ack(&self.tls, &ack, *id).map_err(|e| {
                CoordinatorError::Misbehaviour {
                    culprits: vec![*id],
                    message: format!("acknowledgement of node {id}: {e}"),
                }
            })?;
            acks.push(ack);
        }
        let package =
            package.ok_or_else(|| CoordinatorError::Aborted("no new participant".into()))?;
        let package_sha256: [u8; 32] = Sha256::digest(&package).into();

        // Test signatures with the new epoch, before anything switches.
        let test_started = Instant::now();
        let quorums = covering_quorums(&new_nodes, new_threshold);
        for quorum in &quorums {
            self.test_sign(actor, &key, new_epoch, &package, quorum)
                .await?;
        }
        let test_sign_ms = test_started.elapsed().as_millis() as u64;
        self.crash_point(Stage::Tested)?;

        // The certificate makes the switch irrevocable: written before any node switches.
        let certificate = pb::CommitCertificate {
            key_id: key.key_id.clone(),
            epoch: new_epoch,
            public_key_package_sha256: package_sha256.to_vec(),
            threshold: u32::from(new_threshold),
            participants: new_nodes.iter().map(|n| u32::from(*n)).collect(),
            acks,
            authorization: Some(authorization),
        };
        sigil_policy::epoch::verify_certificate(&self.tls, &certificate)
            .map_err(|e| CoordinatorError::Aborted(format!("commit certificate: {e}")))?;
        let notify: Vec<u16> = key
            .participants
            .iter()
            .chain(&new_nodes)
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let record = KeyRecord {
            threshold: new_threshold,
            participants: new_nodes.clone(),
            public_key_package: package.clone(),
            epoch: new_epoch,
            ..key.clone()
        };
        self.audit
            .epoch_certified(
                actor.to_owned(),
                &record,
                key.epoch,
                &session.to_string(),
                package_sha256.to_vec(),
                format!(
                    "{what} (nonce {}): epoch {} {}-of-{:?} → epoch {new_epoch} {new_threshold}-of-{new_nodes:?}; dealers {dealers:?}; test quorums {quorums:?}",
                    op.nonce, key.epoch, key.threshold, key.participants
                ),
            )
            .await?;
        self.store
            .certify_epoch(
                &record,
                &certificate.encode_to_vec(),
                &notify,
                &now_rfc3339(),
            )
            .await?;
        self.crash_point(Stage::Certified)?;

        let commit_started = Instant::now();
        if let Err(e) = self
            .commit_certificate(
                &key.key_id,
                new_epoch,
                &certificate,
                &notify,
                self.commit_skips(),
            )
            .await
        {
            // Certified: the switch completes when the nodes come back.
            tracing::warn!(key_id = %key.key_id, epoch = new_epoch, error = %e, "epoch certified; some nodes will switch on the next resume");
        }
        let commit_ms = commit_started.elapsed().as_millis() as u64;
        tracing::info!(key_id = %key.key_id, epoch = new_epoch, redistribute_ms, test_sign_ms, commit_ms, "{what} committed");
        Ok(pb::RedistributeResponse {
            key: Some(crate::service::key_info(&record)),
            previous_epoch: key.epoch,
            test_quorums: quorums
                .into_iter()
                .map(|q| pb::TestQuorum {
                    signers: q.into_iter().map(u32::from).collect(),
                })
                .collect(),
            redistribute_ms,
            test_sign_ms,
            commit_ms,
        })
    }

    /// One test signature by `quorum` with the `next` epoch, verified under
    /// the key's (unchanged) public key and the new package.
    async fn test_sign(
        &self,
        actor: &str,
        key: &KeyRecord,
        epoch: u64,
        package: &[u8],
        quorum: &[u16],
    ) -> Result<(), CoordinatorError> {
        let conns = quorum
            .iter()
            .map(|id| {
                self.nodes.get(*id).cloned().ok_or_else(|| {
                    CoordinatorError::InvalidRequest(format!("node {id} is not configured"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<NodeId> = quorum
            .iter()
            .map(|n| NodeId::new(*n))
            .collect::<Result<_, _>>()
            .map_err(|e| CoordinatorError::InvalidRequest(e.to_string()))?;
        let session = random_session();
        let message = sigil_policy::epoch_test_message(&key.key_id, epoch, session.as_bytes());
        let encoding = if key.scheme == sigil_protocol::Scheme::EcdsaSecp256k1 {
            Encoding::Sha256
        } else {
            Encoding::Raw
        };
        let input = SignInput::new(key.scheme, &message, encoding, "")
            .map_err(|e| CoordinatorError::Config(format!("epoch test input: {e}")))?;
        let request_id = format!("{}@{epoch}/test", key.key_id);
        // On record before any node is asked for a share, like every signing
        // session (the audit cross-check pairs it with the nodes' records).
        self.audit
            .sign_session(
                &crate::audit::SignAudit {
                    actor: actor.to_owned(),
                    key_id: key.key_id.clone(),
                    request_id: request_id.clone(),
                    digest: crate::audit::signed_digest(input.signed_bytes()),
                },
                quorum,
                &session.to_string(),
            )
            .await?;
        let start = pb::StartSessionRequest {
            request_id,
            kind: Some(pb::start_session_request::Kind::Sign(pb::SignSession {
                key_id: key.key_id.clone(),
                epoch,
                epoch_test: true,
                ..Default::default()
            })),
            ..Default::default()
        };
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
        .map_err(|e| self.drive_failure("epoch test signature", &key.key_id, session, e))?;
        let mut aggregator =
            Aggregator::new(key.scheme, session, package, &key.public_key, &ids, &input)
                .map_err(|e| CoordinatorError::Config(format!("aggregator: {e}")))?;
        transcript
            .aggregate(&mut aggregator)
            .map_err(|e| CoordinatorError::Misbehaviour {
                culprits: e.culprits().iter().map(|c| c.get()).collect(),
                message: format!(
                    "test signature of epoch {epoch} by {quorum:?} failed: {e}; nothing switched"
                ),
            })?;
        tracing::info!(key_id = %key.key_id, epoch, ?quorum, "epoch test signature verified");
        Ok(())
    }

    /// Sends the certificate to every node in `notify`; marks it complete
    /// when all of them confirmed.
    async fn commit_certificate(
        &self,
        key_id: &str,
        epoch: u64,
        certificate: &pb::CommitCertificate,
        notify: &[u16],
        skip: &[u16],
    ) -> Result<(), CoordinatorError> {
        let skipped: Vec<u16> = notify
            .iter()
            .copied()
            .filter(|n| skip.contains(n))
            .collect();
        let calls = notify
            .iter()
            .filter(|id| !skip.contains(id))
            .filter_map(|id| self.nodes.get(*id))
            .map(|n| {
                let mut client = n.client.clone();
                let mut req = tonic::Request::new(pb::CommitEpochRequest {
                    certificate: Some(certificate.clone()),
                });
                req.set_timeout(self.nodes.timeout());
                async move { (n.endpoint.id, client.commit_epoch(req).await) }
            });
        let failed: Vec<String> = futures::future::join_all(calls)
            .await
            .into_iter()
            .filter_map(|(id, r)| r.err().map(|s| format!("node {id}: {}", s.message())))
            .collect();
        let unconfigured: Vec<u16> = notify
            .iter()
            .copied()
            .filter(|id| self.nodes.get(*id).is_none())
            .collect();
        if failed.is_empty() && unconfigured.is_empty() && skipped.is_empty() {
            self.store
                .complete_epoch(key_id, epoch, &now_rfc3339())
                .await?;
            tracing::info!(%key_id, epoch, "epoch switch confirmed by every node");
            Ok(())
        } else {
            Err(CoordinatorError::Unavailable(format!(
                "epoch {epoch} of key {key_id} not confirmed by every node: {}{}",
                failed.join("; "),
                if unconfigured.is_empty() && skipped.is_empty() {
                    String::new()
                } else {
                    format!(" (nodes {unconfigured:?} are not configured, {skipped:?} skipped)")
                }
            )))
        }
    }

    /// Pushes every certified but unconfirmed epoch switch again (at start
    /// and every `epoch_resume_interval`).
    pub async fn resume_commits(&self) {
        self.resume(None).await
    }

    /// [`Self::resume_commits`] for one key (a node refused a session over its epoch).
    pub(crate) async fn resume_commits_of(&self, key_id: &str) {
        self.resume(Some(key_id)).await
    }

    async fn resume(&self, only: Option<&str>) {
        let open = match self.store.uncommitted_epochs().await {
            Ok(open) => open,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read uncommitted epoch certificates");
                return;
            }
        };
        for u in open
            .into_iter()
            .filter(|u| only.is_none_or(|k| k == u.key_id))
        {
            let certificate = match pb::CommitCertificate::decode(u.certificate.as_slice()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(key_id = %u.key_id, epoch = u.epoch, error = %e, "stored commit certificate does not decode");
                    continue;
                }
            };
            match self
                .commit_certificate(&u.key_id, u.epoch, &certificate, &u.notify, &[])
                .await
            {
                Ok(()) => {
                    tracing::info!(key_id = %u.key_id, epoch = u.epoch, "resumed epoch switch completed")
                }
                Err(e) => {
                    tracing::warn!(key_id = %u.key_id, epoch = u.epoch, error = %e, "epoch switch still incomplete")
                }
            }
        }
    }

    /// The key's epochs as the coordinator and each node see them.
    pub async fn key_epochs(
        &self,
        key_id: &str,
    ) -> Result<pb::ListKeyEpochsResponse, CoordinatorError> {
        let key = self.key(key_id).await?;
        let uncommitted = self
            .store
            .uncommitted_epochs()
            .await?
            .into_iter()
            .filter(|u| u.key_id == key.key_id)
            .map(|u| u.epoch)
            .collect();
        let calls = self.nodes.nodes().iter().map(|n| {
            let mut client = n.client.clone();
            let mut req = tonic::Request::new(pb::ListEpochsRequest {
                key_id: key.key_id.clone(),
            });
            req.set_timeout(self.nodes.timeout());
            async move {
                let id = u32::from(n.endpoint.id);
                match client.list_epochs(req).await {
                    Ok(r) => pb::NodeEpochs {
                        node_id: id,
                        epochs: r.into_inner().epochs,
                        error: String::new(),
                    },
                    Err(s) => pb::NodeEpochs {
                        node_id: id,
                        epochs: Vec::new(),
                        error: format!("{:?}: {}", s.code(), s.message()),
                    },
                }
            }
        });
        Ok(pb::ListKeyEpochsResponse {
            key_id: key.key_id.clone(),
            current_epoch: key.epoch,
            nodes: futures::future::join_all(calls).await,
            uncommitted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_quorums_cover_every_new_participant() {
        assert_eq!(
            covering_quorums(&[1, 2, 3], 2),
            vec![vec![1, 2], vec![1, 3]]
        );
        assert_eq!(
            covering_quorums(&[1, 2, 3, 4, 5], 3),
            vec![vec![1, 2, 3], vec![1, 4, 5]]
        );
        assert_eq!(covering_quorums(&[1, 3, 4], 3), vec![vec![1, 3, 4]]);
        assert_eq!(
            covering_quorums(&[4, 5, 6, 7], 2),
            vec![vec![4, 5], vec![6, 7]]
        );
        for (nodes, t) in [(vec![1u16, 2, 3, 4, 5, 6, 7], 3u16), (vec![2, 9], 2)] {
            let covered: BTreeSet<u16> =
                covering_quorums(&nodes, t).into_iter().flatten().collect();
            assert_eq!(covered, nodes.iter().copied().collect());
            assert!(
                covering_quorums(&nodes, t)
                    .iter()
                    .all(|q| q.len() == usize::from(t))
            );
        }
    }
}
