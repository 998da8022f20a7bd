//! The coordinator's client-facing gRPC services: `Signing` (role signer),
//! `KeyAdmin` and `Policy` (operator), `Approvals` (approver) and `Audit`
//! (auditor). Authorization has already
//! happened in the [`sigil_tls::authz`] layer by the time a handler runs;
//! handlers validate input, call the store or the nodes, and map errors
//! deliberately. Each call is recorded in the audit log by the
//! [`crate::audit::RequestAuditLayer`]; handlers only name the key and
//! request it concerns ([`RequestSlot::note`]). Every free-text field is
//! bounded here, before anything stores or logs it ([`crate::limits`]), and
//! `Sign` calls in flight are bounded per client.

use std::sync::Arc;

use sigil_proto::v1 as pb;
use sigil_proto::v1::approvals_server::Approvals;
use sigil_proto::v1::audit_server::Audit;
use sigil_proto::v1::key_admin_server::KeyAdmin;
use sigil_proto::v1::policy_server::Policy;
use sigil_proto::v1::signing_server::Signing;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::CoordinatorError;
use crate::audit::{CoordinatorAudit, RequestSlot, actor_of};
use crate::limits::{
    InflightLimiter, MAX_DERIVATION_PATH_LEN, MAX_ENDPOINT_LEN, MAX_FILTER_LEN, MAX_ID_LEN,
    MAX_LABEL_LEN, MAX_REASON_LEN, check_len,
};
use crate::nodes::NodePool;
use crate::store::{CoordinatorStore, KeyRecord};

/// State shared by every client-facing handler.
pub struct Coordinator {
    pub(crate) store: Arc<dyn CoordinatorStore>,
    pub(crate) nodes: Arc<NodePool>,
    pub(crate) audit: CoordinatorAudit,
    /// This coordinator's TLS material: its CA bundle verifies intents,
    /// approvals and policy signatures.
    pub(crate) tls: Arc<sigil_tls::ReloadableTls>,
    pub(crate) policy: crate::config::PolicyConfig,
    pub(crate) policy_cache: crate::intents::PolicyCache,
    /// `Sign` calls in flight per client identity.
    pub(crate) sign_inflight: InflightLimiter,
    /// Test-only crash points (set with the `fault-injection` feature).
    #[allow(dead_code)]
    pub(crate) faults: crate::epochs::CoordinatorFaults,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("nodes", &self.nodes.nodes().len())
            .finish_non_exhaustive()
    }
}

/// The handle every gRPC service is implemented on (cheap to clone).
#[derive(Clone, Debug)]
pub struct Api(pub Arc<Coordinator>);

impl std::ops::Deref for Api {
    type Target = Coordinator;
    fn deref(&self) -> &Coordinator {
        &self.0
    }
}

/// The caller's identity, as authenticated by mTLS.
fn requester<T>(req: &Request<T>) -> Result<String, Status> {
    req.extensions()
        .get::<sigil_tls::PeerInfo>()
        .map(|p| p.identity.to_string())
        .ok_or_else(|| Status::unauthenticated("no authenticated identity"))
}

/// Refuses a key id longer than [`MAX_ID_LEN`].
fn check_key_id(key_id: &str) -> Result<(), Status> {
    check_len("key_id", key_id, MAX_ID_LEN)
}

/// The caller's identity as the audit log records it (SPIFFE URI).
fn actor<T>(api: &Api, req: &Request<T>) -> String {
    actor_of(req.extensions().get(), api.audit.domain())
}

/// Wire form of a stored key.
pub fn key_info(k: &KeyRecord) -> pb::KeyInfo {
    pb::KeyInfo {
        key_id: k.key_id.clone(),
        scheme: sigil_proto::convert::scheme_to_wire(k.scheme) as i32,
        threshold: u32::from(k.threshold),
        participants: k.participants.iter().copied().map(u32::from).collect(),
        public_key: k.public_key.clone(),
        addresses: crate::ops::addresses(k.scheme, &k.public_key),
        epoch: k.epoch,
        label: k.label.clone(),
        created_at: k.created_at.clone(),
        public_key_package: k.public_key_package.clone(),
    }
}

#[tonic::async_trait]
impl Signing for Api {
    async fn sign(
        &self,
        req: Request<pb::SignRequest>,
    ) -> Result<Response<pb::SignResponse>, Status> {
        let requester = requester(&req)?;
        {
            let r = req.get_ref();
            check_key_id(&r.key_id)?;
            check_len("idempotency_key", &r.idempotency_key, MAX_ID_LEN)?;
            check_len(
                "derivation_path",
                &r.derivation_path,
                MAX_DERIVATION_PATH_LEN,
            )?;
        }
        // Held until the response is ready (or the call is dropped).
        let _in_flight = self.sign_inflight.acquire(&requester)?;
        let actor = actor(self, &req);
        RequestSlot::note(&req, |n| {
            n.key_id = req.get_ref().key_id.clone();
            n.request_id = req.get_ref().idempotency_key.clone();
        });
        let slot = req.extensions().get::<RequestSlot>().cloned();
        Ok(Response::new(
            self.0
                .sign(&requester, &actor, req.into_inner(), slot)
                .await?,
        ))
    }

    async fn get_public_key(
        &self,
        req: Request<pb::GetPublicKeyRequest>,
    ) -> Result<Response<pb::GetPublicKeyResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        check_len(
            "derivation_path",
            &req.get_ref().derivation_path,
            MAX_DERIVATION_PATH_LEN,
        )?;
        RequestSlot::note(&req, |n| n.key_id = req.get_ref().key_id.clone());
        let req = req.into_inner();
        Ok(Response::new(
            self.0.public_key(&req.key_id, &req.derivation_path).await?,
        ))
    }
}

#[tonic::async_trait]
impl KeyAdmin for Api {
    async fn create_key(
        &self,
        req: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        check_len("label", &req.get_ref().label, MAX_LABEL_LEN)?;
        let actor = actor(self, &req);
        let slot = req.extensions().get::<RequestSlot>().cloned();
        let key = self.0.create_key(&actor, req.into_inner()).await?;
        if let Some(slot) = slot {
            slot.fill(|n| n.key_id = key.key_id.clone());
        }
        Ok(Response::new(pb::CreateKeyResponse {
            key: Some(key_info(&key)),
        }))
    }

    async fn list_keys(
        &self,
        _req: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let keys = self
            .store
            .list_keys()
            .await
            .map_err(CoordinatorError::from)?;
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(key_info).collect(),
        }))
    }

    async fn get_key(
        &self,
        req: Request<pb::GetKeyRequest>,
    ) -> Result<Response<pb::KeyInfo>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        RequestSlot::note(&req, |n| n.key_id = req.get_ref().key_id.clone());
        let key = self.key(&req.get_ref().key_id).await?;
        Ok(Response::new(key_info(&key)))
    }

    async fn list_nodes(
        &self,
        _req: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        Ok(Response::new(pb::ListNodesResponse {
            nodes: self.nodes.status().await,
        }))
    }

    async fn list_exclusions(
        &self,
        req: Request<pb::ListExclusionsRequest>,
    ) -> Result<Response<pb::ListExclusionsResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        let key_id = req.into_inner().key_id;
        let filter = (!key_id.is_empty()).then_some(key_id.as_str());
        let records = self
            .store
            .list_exclusions(filter)
            .await
            .map_err(CoordinatorError::from)?;
        Ok(Response::new(pb::ListExclusionsResponse {
            exclusions: records
                .into_iter()
                .map(|m| pb::Exclusion {
                    key_id: m.key_id,
                    node_id: u32::from(m.node_id),
                    session_id: m.session_id,
                    reason: m.reason,
                    created_at: m.created_at,
                    ban: m.ban,
                })
                .collect(),
        }))
    }

    async fn refresh_key(
        &self,
        req: Request<pb::RefreshKeyRequest>,
    ) -> Result<Response<pb::RedistributeResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        let actor = actor(self, &req);
        RequestSlot::note(&req, |n| n.key_id = req.get_ref().key_id.clone());
        let req = req.into_inner();
        let out = self
            .0
            .redistribute(
                &actor,
                crate::epochs::Redistribution {
                    key_id: req.key_id,
                    refresh: true,
                    new_nodes: Vec::new(),
                    new_threshold: 0,
                    authorization: req.authorization,
                },
            )
            .await?;
        Ok(Response::new(out))
    }

    async fn reshare_key(
        &self,
        req: Request<pb::ReshareKeyRequest>,
    ) -> Result<Response<pb::RedistributeResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        let actor = actor(self, &req);
        RequestSlot::note(&req, |n| n.key_id = req.get_ref().key_id.clone());
        let req = req.into_inner();
        let new_nodes = req
            .new_nodes
            .iter()
            .map(|&n| {
                u16::try_from(n).map_err(|_| {
                    CoordinatorError::InvalidRequest(format!("node id {n} out of range"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let new_threshold = u16::try_from(req.new_threshold)
            .map_err(|_| CoordinatorError::InvalidRequest("threshold out of range".into()))?;
        let out = self
            .0
            .redistribute(
                &actor,
                crate::epochs::Redistribution {
                    key_id: req.key_id,
                    refresh: false,
                    new_nodes,
                    new_threshold,
                    authorization: req.authorization,
                },
            )
            .await?;
        Ok(Response::new(out))
    }

    async fn list_epochs(
        &self,
        req: Request<pb::ListKeyEpochsRequest>,
    ) -> Result<Response<pb::ListKeyEpochsResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        Ok(Response::new(
            self.0.key_epochs(&req.get_ref().key_id).await?,
        ))
    }

    async fn export_backups(
        &self,
        req: Request<pb::ExportBackupsRequest>,
    ) -> Result<Response<pb::ExportBackupsResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        RequestSlot::note(&req, |n| n.key_id = req.get_ref().key_id.clone());
        let slot = req.extensions().get::<RequestSlot>().cloned();
        let out = self.0.export_backups(&req.get_ref().key_id).await?;
        if let Some(slot) = slot {
            let exported: Vec<String> = out
                .backups
                .iter()
                .map(|b| format!("node {}: {} share(s)", b.node_id, b.entries.len()))
                .collect();
            let failed: Vec<u32> = out.failed.iter().map(|f| f.node_id).collect();
            slot.fill(|n| {
                n.detail = format!(
                    "backups exported ({}); failed nodes {failed:?}",
                    exported.join(", ")
                )
            });
        }
        Ok(Response::new(out))
    }

    async fn drill(
        &self,
        req: Request<pb::DrillRequest>,
    ) -> Result<Response<pb::DrillResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        check_len("endpoint", &req.get_ref().endpoint, MAX_ENDPOINT_LEN)?;
        let actor = actor(self, &req);
        RequestSlot::note(&req, |n| {
            n.key_id = req.get_ref().key_id.clone();
            n.detail = format!(
                "recovery drill of node {} at {}",
                req.get_ref().node_id,
                req.get_ref().endpoint
            );
        });
        Ok(Response::new(self.0.drill(&actor, req.into_inner()).await?))
    }

    async fn clear_exclusion(
        &self,
        req: Request<pb::ClearExclusionRequest>,
    ) -> Result<Response<pb::ClearExclusionResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        check_len("reason", &req.get_ref().reason, MAX_REASON_LEN)?;
        let operator = requester(&req)?;
        let actor = actor(self, &req);
        RequestSlot::note(&req, |n| {
            n.key_id = req.get_ref().key_id.clone();
            n.detail = format!("node {}", req.get_ref().node_id);
        });
        let req = req.into_inner();
        let cleared = self
            .0
            .clear_exclusion(&operator, &actor, &req.key_id, req.node_id, &req.reason)
            .await?;
        Ok(Response::new(pb::ClearExclusionResponse { cleared }))
    }
}

#[tonic::async_trait]
impl Policy for Api {
    async fn get_policy(
        &self,
        req: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        RequestSlot::note(&req, |n| n.key_id = req.get_ref().key_id.clone());
        Ok(Response::new(
            self.0.get_policy(&req.get_ref().key_id).await?,
        ))
    }

    async fn apply_policy(
        &self,
        req: Request<pb::ApplyPolicyRequest>,
    ) -> Result<Response<pb::ApplyPolicyResponse>, Status> {
        let signed = req
            .get_ref()
            .policy
            .clone()
            .ok_or_else(|| Status::invalid_argument("a signed policy document is required"))?;
        if let Ok(doc) = sigil_policy::PolicyDocument::from_document_bytes(&signed.document) {
            RequestSlot::note(&req, |n| {
                n.key_id = doc.key_id.clone();
                n.detail = format!("policy version {}", doc.version);
            });
        }
        Ok(Response::new(self.0.apply_policy(signed).await?))
    }
}

#[tonic::async_trait]
impl Approvals for Api {
    async fn list_pending(
        &self,
        req: Request<pb::ListPendingApprovalsRequest>,
    ) -> Result<Response<pb::ListPendingApprovalsResponse>, Status> {
        check_key_id(&req.get_ref().key_id)?;
        Ok(Response::new(
            self.0.list_pending(&req.get_ref().key_id).await?,
        ))
    }

    async fn approve(
        &self,
        req: Request<pb::ApproveRequest>,
    ) -> Result<Response<pb::ApproveResponse>, Status> {
        check_len("approval_id", &req.get_ref().approval_id, MAX_ID_LEN)?;
        let actor = actor(self, &req);
        RequestSlot::note(&req, |n| n.request_id = req.get_ref().approval_id.clone());
        Ok(Response::new(
            self.0.approve(&actor, req.into_inner()).await?,
        ))
    }
}

#[tonic::async_trait]
impl Audit for Api {
    type ExportRecordsStream = ReceiverStream<Result<pb::AuditRecord, Status>>;

    async fn query_records(
        &self,
        req: Request<pb::QueryRecordsRequest>,
    ) -> Result<Response<pb::QueryRecordsResponse>, Status> {
        check_query(req.get_ref())?;
        RequestSlot::note(&req, |n| n.detail = audit_query_detail(req.get_ref()));
        Ok(Response::new(self.0.query_records(req.into_inner()).await?))
    }

    async fn export_records(
        &self,
        req: Request<pb::QueryRecordsRequest>,
    ) -> Result<Response<Self::ExportRecordsStream>, Status> {
        check_query(req.get_ref())?;
        RequestSlot::note(&req, |n| n.detail = audit_query_detail(req.get_ref()));
        Ok(Response::new(
            self.0.export_records(req.into_inner()).await?,
        ))
    }

    async fn get_signed_heads(
        &self,
        req: Request<pb::GetSignedHeadsRequest>,
    ) -> Result<Response<pb::GetSignedHeadsResponse>, Status> {
        check_len("process", &req.get_ref().process, MAX_FILTER_LEN)?;
        Ok(Response::new(self.0.signed_heads(req.into_inner()).await?))
    }
}

/// Refuses an audit query with an overlong filter.
fn check_query(req: &pb::QueryRecordsRequest) -> Result<(), Status> {
    check_key_id(&req.key_id)?;
    for (field, value) in [
        ("from_time", &req.from_time),
        ("to_time", &req.to_time),
        ("actor", &req.actor),
        ("action", &req.action),
        ("outcome", &req.outcome),
        ("process", &req.process),
    ] {
        check_len(field, value, MAX_FILTER_LEN)?;
    }
    Ok(())
}

/// Which log an auditor read, for the `request` record.
fn audit_query_detail(req: &pb::QueryRecordsRequest) -> String {
    let process = if req.process.is_empty() {
        sigil_audit::COORDINATOR_PROCESS
    } else {
        req.process.as_str()
    };
    format!("process {process}")
}
