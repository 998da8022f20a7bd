//! Creating a key: a distributed key generation among the requested nodes,
//! the check that they all agree on its output, its audit record, and the
//! commit that makes the new share current on every node.
//!
//! Kept apart from signing ([`crate::signing`]): a DKG needs every
//! participant, so nothing here retries with other nodes or excludes any;
//! a failure is reported as it is ([`Coordinator::drive_failure`]).
//!
//! Audit (fail closed, see [`crate::audit`]): the key becomes usable —
//! committed on the nodes, stored — only once its `key_created` record is
//! committed.

use sha2::{Digest, Sha256};
use sigil_proto::convert::{scheme_from_wire, scheme_to_wire};
use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;
use sigil_protocol::engine;

use crate::CoordinatorError;
use crate::driver::drive;
use crate::ops::{invalid, now_rfc3339, random_session};
use crate::service::Coordinator;
use crate::store::KeyRecord;

impl Coordinator {
    /// Runs a DKG among the requested nodes and records the new key.
    pub async fn create_key(
        &self,
        actor: &str,
        req: pb::CreateKeyRequest,
    ) -> Result<KeyRecord, CoordinatorError> {
        let scheme = scheme_from_wire(req.scheme).map_err(invalid)?;
        let mut ids: Vec<u16> = if req.nodes.is_empty() {
            self.nodes.nodes().iter().map(|n| n.endpoint.id).collect()
        } else {
            req.nodes
                .iter()
                .map(|&n| {
                    u16::try_from(n).map_err(|_| {
                        CoordinatorError::InvalidRequest(format!("node id {n} out of range"))
                    })
                })
                .collect::<Result<_, _>>()?
        };
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(CoordinatorError::InvalidRequest(
                "a node is listed twice".into(),
            ));
        }
        let conns = ids
            .iter()
            .map(|id| {
                self.nodes.get(*id).cloned().ok_or_else(|| {
                    CoordinatorError::InvalidRequest(format!("node {id} is not configured"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let threshold = u16::try_from(req.threshold)
            .map_err(|_| CoordinatorError::InvalidRequest("threshold out of range".into()))?;
        if threshold < 2 || usize::from(threshold) > ids.len() {
            return Err(CoordinatorError::InvalidRequest(format!(
                "threshold must be between 2 and the number of nodes ({}), got {threshold}",
                ids.len()
            )));
        }
        let key_id = format!("key-{}", uuid::Uuid::new_v4().simple());
        let session = random_session();
        let start = pb::StartSessionRequest {
            request_id: key_id.clone(),
            kind: Some(pb::start_session_request::Kind::Dkg(pb::DkgSession {
                key_id: key_id.clone(),
                scheme: scheme_to_wire(scheme) as i32,
                threshold: u32::from(threshold),
            })),
            ..Default::default()
        };
        tracing::info!(%key_id, %scheme, threshold, nodes = ?ids, session = %session, "creating key");
        let steps = engine::dkg_steps(scheme) as u16;
        let transcript = drive(
            &self.nodes,
            &conns,
            session,
            start,
            scheme,
            steps,
            self.dkg_timeout(scheme),
        )
        .await
        .map_err(|e| self.drive_failure("key creation", &key_id, session, e))?;

        // Every node must report the same group key and public key package.
        let mut agreed: Option<pb::DkgOutput> = None;
        for id in &ids {
            let out = match transcript.outputs.get(id).and_then(|o| o.output.clone()) {
                Some(pb::session_output::Output::Dkg(d)) => d,
                _ => {
                    return Err(CoordinatorError::Aborted(format!(
                        "node {id} reported no key after the DKG"
                    )));
                }
            };
            match &agreed {
                None => agreed = Some(out),
                Some(a) if *a == out => {}
                Some(_) => {
                    return Err(CoordinatorError::Aborted(format!(
                        "node {id} reports a different group key; key not created"
                    )));
                }
            }
        }
        let out = agreed.ok_or_else(|| CoordinatorError::Aborted("no DKG output".into()))?;
        let record = KeyRecord {
            key_id: key_id.clone(),
            scheme,
            threshold,
            participants: ids,
            public_key: out.public_key,
            public_key_package: out.public_key_package,
            epoch: 0,
            label: req.label,
            created_at: now_rfc3339(),
        };
        // Fail closed: the key becomes usable (committed, stored) only once recorded.
        self.audit
            .key_created(
                actor.to_owned(),
                &key_id,
                &record.participants,
                &session.to_string(),
                Sha256::digest(&record.public_key_package).to_vec(),
                format!(
                    "{scheme} {threshold}-of-{}, public key {}",
                    record.participants.len(),
                    hex::encode(&record.public_key)
                ),
            )
            .await?;
        self.commit_on_nodes(&conns, &key_id, &record.public_key_package)
            .await?;
        self.store.insert_key(&record).await?;
        tracing::info!(%key_id, public_key = %hex::encode(&record.public_key), "key created");
        Ok(record)
    }

    /// Promotes the DKG output to current on every participant (idempotent on the nodes).
    async fn commit_on_nodes(
        &self,
        conns: &[crate::nodes::NodeConn],
        key_id: &str,
        package: &[u8],
    ) -> Result<(), CoordinatorError> {
        let digest = Sha256::digest(package).to_vec();
        let calls = conns.iter().map(|n| {
            let mut client = n.client.clone();
            let mut req = tonic::Request::new(pb::CommitKeyRequest {
                key_id: key_id.to_owned(),
                epoch: 0,
                public_key_package_sha256: digest.clone(),
            });
            req.set_timeout(self.nodes.timeout());
            async move { (n.endpoint.id, client.commit_key(req).await) }
        });
        let failed: Vec<String> = futures::future::join_all(calls)
            .await
            .into_iter()
            .filter_map(|(id, r)| r.err().map(|s| format!("node {id}: {}", s.message())))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(CoordinatorError::Unavailable(format!(
                "key {key_id} not committed on every node: {}",
                failed.join("; ")
            )))
        }
    }

    /// The DKG deadline per round: ECDSA's OT setup is far heavier than
    /// FROST's. Refresh, reshare and drill sessions use it too.
    pub(crate) fn dkg_timeout(&self, scheme: Scheme) -> std::time::Duration {
        let base = self.nodes.timeout();
        match scheme {
            Scheme::EcdsaSecp256k1 => base.max(std::time::Duration::from_secs(30)),
            _ => base,
        }
    }
}
