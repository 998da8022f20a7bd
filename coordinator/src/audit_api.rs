//! The `sigil.v1.Audit` service behind its handlers: the coordinator's own
//! log, and the nodes' logs relayed through `Node.ExportAudit` and
//! `Node.GetAuditHeads`.
//!
//! Relaying does not make the coordinator a trusted party for node logs:
//! records travel unchanged (every field is covered by the node's hash
//! chain) and auditors check each node's chain against that node's signed
//! heads, which only the node's certificate key can make. A coordinator
//! that dropped or altered node records would be caught by verification.
//!
//! Each node head fetched here is recorded in the coordinator's own log as
//! seen (`head_seen`, [`crate::audit::CoordinatorAudit::head_seen`]): a
//! node's log later truncated together with its own heads then no longer
//! matches what the coordinator saw.

use futures::StreamExt;
use sigil_audit::{COORDINATOR_PROCESS, Filter, node_id_of, node_process};
use sigil_proto::audit::{
    export_request, filter_from_wire, head_from_wire, head_to_wire, record_to_wire,
};
use sigil_proto::v1 as pb;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::CoordinatorError;
use crate::nodes::NodeConn;
use crate::service::Coordinator;

/// Deadline of a relayed export (it may carry a whole log).
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Whose log a request is about.
enum Process<'a> {
    Coordinator,
    Node(&'a NodeConn),
}

/// A node's failure, as an auditor sees it.
fn node_failure(id: u16, status: &Status) -> CoordinatorError {
    match status.code() {
        tonic::Code::InvalidArgument => {
            CoordinatorError::InvalidRequest(format!("node {id}: {}", status.message()))
        }
        _ => CoordinatorError::Unavailable(format!(
            "node {id} did not answer: {:?}: {}",
            status.code(),
            status.message()
        )),
    }
}

impl Coordinator {
    fn process<'a>(&'a self, name: &str) -> Result<Process<'a>, CoordinatorError> {
        if name.is_empty() || name == COORDINATOR_PROCESS {
            return Ok(Process::Coordinator);
        }
        let id = node_id_of(name).ok_or_else(|| {
            CoordinatorError::InvalidRequest(format!(
                "process must be \"coordinator\" or \"node-<id>\", not {name:?}"
            ))
        })?;
        self.nodes
            .get(id)
            .map(Process::Node)
            .ok_or_else(|| CoordinatorError::NotFound(format!("node {id} is not configured")))
    }

    /// Every process with a log: the coordinator, then each configured node.
    pub fn audit_processes(&self) -> Vec<String> {
        let mut out = vec![COORDINATOR_PROCESS.to_owned()];
        out.extend(
            self.nodes
                .nodes()
                .iter()
                .map(|n| node_process(n.endpoint.id)),
        );
        out
    }

    /// `Audit.QueryRecords`.
    pub async fn query_records(
        &self,
        req: pb::QueryRecordsRequest,
    ) -> Result<pb::QueryRecordsResponse, CoordinatorError> {
        let filter = filter_from_wire(&req);
        let records = match self.process(&req.process)? {
            Process::Coordinator => self
                .audit
                .log()
                .query(&filter)
                .await?
                .iter()
                .map(record_to_wire)
                .collect(),
            Process::Node(node) => {
                // The node's export has no default page: ask for exactly
                // the records a query of the coordinator's own log returns.
                let page = Filter {
                    limit: Some(filter.effective_limit()),
                    ..filter
                };
                let mut stream = self.node_export(node, export_request(&page)).await?;
                let mut records = Vec::new();
                while let Some(item) = stream.next().await {
                    records.push(item.map_err(|s| node_failure(node.endpoint.id, &s))?);
                }
                records
            }
        };
        Ok(pb::QueryRecordsResponse { records })
    }

    async fn node_export(
        &self,
        node: &NodeConn,
        req: pb::ExportAuditRequest,
    ) -> Result<tonic::Streaming<pb::AuditRecord>, CoordinatorError> {
        let mut client = node.client.clone();
        let mut request = tonic::Request::new(req);
        request.set_timeout(EXPORT_TIMEOUT);
        Ok(client
            .export_audit(request)
            .await
            .map_err(|s| node_failure(node.endpoint.id, &s))?
            .into_inner())
    }

    /// `Audit.ExportRecords`: every matching record (or `limit`), streamed.
    pub async fn export_records(
        &self,
        req: pb::QueryRecordsRequest,
    ) -> Result<ReceiverStream<Result<pb::AuditRecord, Status>>, CoordinatorError> {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let filter = filter_from_wire(&req);
        match self.process(&req.process)? {
            Process::Coordinator => {
                let mut records = self.audit.log().export(&filter)?;
                tokio::spawn(async move {
                    while let Some(item) = records.recv().await {
                        let item = item
                            .map(|r| record_to_wire(&r))
                            .map_err(|e| CoordinatorError::from(e).into());
                        let failed = item.is_err();
                        if tx.send(item).await.is_err() || failed {
                            return;
                        }
                    }
                });
            }
            Process::Node(node) => {
                let id = node.endpoint.id;
                let mut stream = self.node_export(node, export_request(&filter)).await?;
                tokio::spawn(async move {
                    while let Some(item) = stream.next().await {
                        let item = item.map_err(|s| Status::from(node_failure(id, &s)));
                        let failed = item.is_err();
                        if tx.send(item).await.is_err() || failed {
                            return;
                        }
                    }
                });
            }
        }
        Ok(ReceiverStream::new(rx))
    }

    /// `Audit.GetSignedHeads`: the latest (or every) signed head of one
    /// process, or of the coordinator and every node. Nodes that do not
    /// answer are listed in `unavailable`.
    pub async fn signed_heads(
        &self,
        req: pb::GetSignedHeadsRequest,
    ) -> Result<pb::GetSignedHeadsResponse, CoordinatorError> {
        let targets: Vec<Process<'_>> = if req.process.is_empty() {
            std::iter::once(Process::Coordinator)
                .chain(self.nodes.nodes().iter().map(Process::Node))
                .collect()
        } else {
            vec![self.process(&req.process)?]
        };
        let single = !req.process.is_empty();
        let calls = targets.into_iter().map(|target| {
            let all = req.all;
            async move {
                match target {
                    Process::Coordinator => {
                        let log = self.audit.log();
                        let heads = if all {
                            log.all_signed_heads().await
                        } else {
                            log.latest_head().await.map(|h| h.into_iter().collect())
                        };
                        (
                            COORDINATOR_PROCESS.to_owned(),
                            heads
                                .map(|h| h.iter().map(head_to_wire).collect::<Vec<_>>())
                                .map_err(CoordinatorError::from),
                        )
                    }
                    Process::Node(node) => {
                        let id = node.endpoint.id;
                        let mut client = node.client.clone();
                        let mut request = tonic::Request::new(pb::GetAuditHeadsRequest { all });
                        request.set_timeout(self.nodes.timeout());
                        let process = node_process(id);
                        let heads = client
                            .get_audit_heads(request)
                            .await
                            .map(|r| r.into_inner().heads)
                            .map_err(|s| node_failure(id, &s));
                        // The latest head (heads come oldest first) of this node.
                        if let Some(latest) = heads.as_ref().ok().and_then(|h| h.last())
                            && let Ok(head) = head_from_wire(latest.clone())
                            && head.process == process
                        {
                            self.audit.head_seen(&head).await;
                        }
                        (process, heads)
                    }
                }
            }
        });
        let mut out = pb::GetSignedHeadsResponse::default();
        for (process, result) in futures::future::join_all(calls).await {
            out.processes.push(process.clone());
            match result {
                Ok(heads) => out.heads.extend(heads),
                // Asked for one process: its failure is the answer.
                Err(e) if single => return Err(e),
                Err(e) => out.unavailable.push(pb::ProcessError {
                    process,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(out)
    }
}
