//! Drives one protocol session across its nodes.
//!
//! The coordinator's part in every protocol is the same thin loop: open the
//! session on every participant (relaying their verified identities), then
//! for each round collect every node's output into a [`RoundRelay`], which
//! validates sender, session, round and recipients and verifies every
//! sender signature (under the node's certificate key, in the session's
//! context: kind, scheme, key, epoch, participants), so a node returning a
//! badly signed message is named here; then deliver each node its inbound
//! messages. The coordinator reads nothing but public
//! broadcasts and messages addressed to it; direct messages are sealed to
//! their recipient. Any failure aborts the session on every participant.
//!
//! A session may be *gated*: the first round (which carries no signature
//! share) runs while the gate is pending, and no further round is asked of
//! any node until the gate opens. The coordinator gates signing sessions on
//! their audit record, so the record's commit overlaps the nodes' first
//! round instead of preceding it, and a session whose record fails is
//! aborted before any node issues a share.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use sigil_proto::convert::{messages_from_wire, messages_to_wire, metadata};
use sigil_proto::v1 as pb;
use sigil_protocol::envelope::{ContextKind, SessionContext};
use sigil_protocol::relay::{Deliveries, RelayError, RoundRelay};
use sigil_protocol::{NodeId, Scheme, SessionId};
use tonic::{Code, Status};

use crate::nodes::{NodeConn, NodePool};

/// Why a session did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriveError {
    /// Nodes did not answer in time or could not be reached.
    #[error("nodes {nodes:?} did not answer: {detail}")]
    Unavailable { nodes: Vec<u16>, detail: String },
    /// A node refused the request (not a protocol fault of another party).
    #[error("node {node} refused: {code:?}: {message}")]
    Refused {
        node: u16,
        code: Code,
        message: String,
    },
    /// A node refused the request on its own authority (intent, policy,
    /// approvals): passed on to the client, never retried elsewhere.
    #[error("node {node} refused: {message}")]
    Denied {
        node: u16,
        code: Code,
        message: String,
        /// The refusal's machine-readable details (`sigil-policy-rule`, ...).
        metadata: Vec<(&'static str, String)>,
    },
    /// A node's protocol check failed and named culprits (possibly none).
    #[error("node {reporter} aborted the protocol: {message}")]
    Protocol {
        reporter: u16,
        culprits: Vec<u16>,
        /// The culprits a DKLs23 ban names (`sigil-banned`): the reporter
        /// never runs a session of the key with them again.
        banned: Vec<u16>,
        relay_suspected: bool,
        message: String,
    },
    /// A node's output was malformed or misrouted.
    #[error("invalid output from node(s) {culprits:?}: {message}")]
    BadOutput { culprits: Vec<u16>, message: String },
    /// The gate did not open: the session was aborted after its first round.
    #[error("session aborted before its second round (gate closed)")]
    GateClosed,
}

impl DriveError {
    /// Nodes to exclude from the next attempt.
    pub fn culprits(&self) -> Vec<u16> {
        match self {
            Self::Protocol { culprits, .. } | Self::BadOutput { culprits, .. } => culprits.clone(),
            Self::Unavailable { .. }
            | Self::Refused { .. }
            | Self::Denied { .. }
            | Self::GateClosed => Vec::new(),
        }
    }

    /// The culprits a node reported as DKLs23 bans (never anyone it did not
    /// also name as a culprit).
    pub fn banned(&self) -> Vec<u16> {
        match self {
            Self::Protocol {
                culprits, banned, ..
            } => banned
                .iter()
                .copied()
                .filter(|b| culprits.contains(b))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn from_relay(e: RelayError) -> Self {
        Self::BadOutput {
            culprits: e.culprits().iter().map(|n| n.get()).collect(),
            message: e.to_string(),
        }
    }

    fn from_status(node: u16, status: &Status) -> Self {
        if status.metadata().get(metadata::REFUSAL).is_some() {
            return Self::Denied {
                node,
                code: status.code(),
                message: status.message().to_owned(),
                metadata: metadata::refusal_details(status.metadata()),
            };
        }
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled => {
                Self::Unavailable {
                    nodes: vec![node],
                    detail: status.message().to_owned(),
                }
            }
            Code::FailedPrecondition => {
                let culprits = metadata::culprits_from_metadata(status.metadata());
                let banned = metadata::banned_from_metadata(status.metadata());
                let relay_suspected = metadata::relay_suspected(status.metadata());
                Self::Protocol {
                    reporter: node,
                    culprits,
                    banned,
                    relay_suspected,
                    message: status.message().to_owned(),
                }
            }
            code => Self::Refused {
                node,
                code,
                message: status.message().to_owned(),
            },
        }
    }
}

/// Everything a finished session produced, round by round.
#[derive(Debug, Default)]
pub struct Transcript {
    /// Deliveries of each round (index 0 = round 1).
    pub rounds: Vec<Deliveries>,
    /// Final output reported by each node, if any.
    pub outputs: BTreeMap<u16, pb::SessionOutput>,
}

impl Transcript {
    /// Aggregates the signature of a finished signing session: every round's
    /// broadcasts (the commitments), then the shares sent to the coordinator
    /// in the last round. The aggregator verifies the signature.
    pub fn aggregate(
        &self,
        aggregator: &mut sigil_protocol::engine::Aggregator,
    ) -> Result<sigil_protocol::engine::Signature, sigil_protocol::ProtocolError> {
        let broadcasts: Vec<Vec<_>> = self
            .rounds
            .iter()
            .map(|d| d.broadcasts.iter().map(|m| m.message.clone()).collect())
            .collect();
        let finals = self
            .rounds
            .last()
            .map(|d| d.to_coordinator.iter().map(|m| m.message.clone()).collect())
            .unwrap_or_default();
        aggregator.aggregate(&broadcasts, finals)
    }
}

/// Combines the failures of one round: unavailable nodes first (they are
/// named together), otherwise the first protocol failure.
fn combine(errors: Vec<DriveError>) -> Option<DriveError> {
    let mut unavailable = Vec::new();
    let mut detail = String::new();
    let mut other = None;
    for e in errors {
        match e {
            DriveError::Unavailable { nodes, detail: d } => {
                unavailable.extend(nodes);
                detail = d;
            }
            e => {
                other.get_or_insert(e);
            }
        }
    }
    if !unavailable.is_empty() {
        unavailable.sort_unstable();
        return Some(DriveError::Unavailable {
            nodes: unavailable,
            detail,
        });
    }
    other
}

/// Runs a session of `steps` steps after the start among `nodes`, for a
/// key of `scheme`.
pub async fn drive(
    pool: &NodePool,
    nodes: &[NodeConn],
    session: SessionId,
    start: pb::StartSessionRequest,
    scheme: Scheme,
    steps: u16,
    timeout: Duration,
) -> Result<Transcript, DriveError> {
    drive_gated(pool, nodes, session, start, scheme, steps, timeout, None).await
}

/// The context every participant builds from `start` (see
/// `sigil_protocol::envelope::SessionContext`); `scheme` is the key's (a
/// signing request does not repeat it).
pub fn context_of(
    start: &pb::StartSessionRequest,
    scheme: Scheme,
    participants: &[NodeId],
) -> Result<SessionContext, DriveError> {
    use pb::start_session_request::Kind;
    let (kind, key_id, epoch) = match &start.kind {
        Some(Kind::Dkg(d)) => (ContextKind::Dkg, &d.key_id, 0),
        Some(Kind::Sign(s)) if s.epoch_test => (ContextKind::EpochTest, &s.key_id, s.epoch),
        Some(Kind::Sign(s)) => (ContextKind::Sign, &s.key_id, s.epoch),
        Some(Kind::Drill(d)) => (ContextKind::Drill, &d.key_id, d.epoch),
        Some(Kind::Reshare(r)) => (ContextKind::Reshare, &r.key_id, r.epoch),
        None => {
            return Err(DriveError::BadOutput {
                culprits: vec![],
                message: "a session start without a kind".into(),
            });
        }
    };
    Ok(SessionContext::new(
        kind,
        scheme,
        key_id,
        epoch,
        participants,
    ))
}

/// [`drive`], asking nodes for their second round only once `gate` says
/// `true` (a closed or `false` gate aborts the session: [`DriveError::GateClosed`]).
#[allow(clippy::too_many_arguments)]
pub async fn drive_gated(
    pool: &NodePool,
    nodes: &[NodeConn],
    session: SessionId,
    mut start: pb::StartSessionRequest,
    scheme: Scheme,
    steps: u16,
    timeout: Duration,
    gate: Option<tokio::sync::oneshot::Receiver<bool>>,
) -> Result<Transcript, DriveError> {
    let ids: Vec<NodeId> = nodes
        .iter()
        .map(|n| NodeId::new(n.endpoint.id))
        .collect::<Result<_, _>>()
        .map_err(|e| DriveError::BadOutput {
            culprits: vec![],
            message: e.to_string(),
        })?;
    start.session_id = session.as_bytes().to_vec();
    // Participants relayed by the caller (a drill node outside the pool,
    // whose identity must not be cached) are taken as given.
    if start.participants.is_empty() {
        start.participants = pool.identities(nodes).await?;
    }
    start.deadline_unix_ms = unix_ms() + timeout.as_millis() as u64 * u64::from(steps + 1);
    let senders = Senders {
        context: context_of(&start, scheme, &ids)?,
        keys: pool.sender_keys(&start.participants)?,
    };

    let result = run(nodes, &ids, session, start, &senders, steps, timeout, gate).await;
    if result.is_err() {
        abort_all(nodes, session, "session failed").await;
    }
    result
}

/// What the relay checks sender signatures with.
struct Senders {
    context: SessionContext,
    keys: std::sync::Arc<dyn sigil_protocol::envelope::PeerVerifier>,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    nodes: &[NodeConn],
    ids: &[NodeId],
    session: SessionId,
    start: pb::StartSessionRequest,
    senders: &Senders,
    steps: u16,
    timeout: Duration,
    mut gate: Option<tokio::sync::oneshot::Receiver<bool>>,
) -> Result<Transcript, DriveError> {
    let calls = nodes.iter().map(|n| {
        let mut client = n.client.clone();
        let mut req = tonic::Request::new(start.clone());
        req.set_timeout(timeout);
        async move { (n.endpoint.id, client.start_session(req).await) }
    });
    let mut responses = collect(join_all(calls).await)?;
    // Signing: each signer's spend receipt, relayed to every signer with round 1.
    let receipts: Vec<pb::SpendReceipt> = responses
        .iter()
        .filter_map(|(_, r)| r.receipt.clone())
        .collect();
    let mut transcript = Transcript::default();
    for round in 1..=steps + 1 {
        let mut relay = RoundRelay::new(session, ids)
            .map_err(DriveError::from_relay)?
            .verifying(senders.context, senders.keys.clone());
        for (node, resp) in std::mem::take(&mut responses) {
            if resp.round != u32::from(round) || resp.session_id != session.as_bytes() {
                return Err(DriveError::BadOutput {
                    culprits: vec![node],
                    message: format!(
                        "answered for round {} of another or wrong session",
                        resp.round
                    ),
                });
            }
            let messages =
                messages_from_wire(resp.messages).map_err(|e| DriveError::BadOutput {
                    culprits: vec![node],
                    message: e.to_string(),
                })?;
            let id = NodeId::new(node).map_err(|e| DriveError::BadOutput {
                culprits: vec![node],
                message: e.to_string(),
            })?;
            relay
                .collect(id, round, messages)
                .map_err(DriveError::from_relay)?;
            if let Some(out) = resp.output {
                transcript.outputs.insert(node, out);
            }
        }
        let deliveries = relay.deliveries().map_err(DriveError::from_relay)?;
        if round == steps + 1 {
            transcript.rounds.push(deliveries);
            break;
        }
        if let Some(gate) = gate.take()
            && gate.await != Ok(true)
        {
            return Err(DriveError::GateClosed);
        }
        let calls = nodes.iter().map(|n| {
            let mut client = n.client.clone();
            let inbound = NodeId::new(n.endpoint.id)
                .ok()
                .and_then(|id| deliveries.inbound.get(&id))
                .map(|m| messages_to_wire(m))
                .unwrap_or_default();
            let mut req = tonic::Request::new(pb::StepRequest {
                session_id: session.as_bytes().to_vec(),
                round: u32::from(round),
                messages: inbound,
                receipts: if round == 1 {
                    receipts.clone()
                } else {
                    Vec::new()
                },
            });
            req.set_timeout(timeout);
            async move { (n.endpoint.id, client.step(req).await) }
        });
        responses = collect(join_all(calls).await)?;
        transcript.rounds.push(deliveries);
    }
    Ok(transcript)
}

fn collect(
    results: Vec<(u16, Result<tonic::Response<pb::StepResponse>, Status>)>,
) -> Result<Vec<(u16, pb::StepResponse)>, DriveError> {
    let mut ok = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for (node, r) in results {
        match r {
            Ok(resp) => ok.push((node, resp.into_inner())),
            Err(status) => errors.push(DriveError::from_status(node, &status)),
        }
    }
    match combine(errors) {
        Some(e) => Err(e),
        None => Ok(ok),
    }
}

async fn abort_all(nodes: &[NodeConn], session: SessionId, reason: &str) {
    let calls = nodes.iter().map(|n| {
        let mut client = n.client.clone();
        let mut req = tonic::Request::new(pb::AbortSessionRequest {
            session_id: session.as_bytes().to_vec(),
            reason: reason.to_owned(),
        });
        req.set_timeout(Duration::from_secs(2));
        async move {
            let _ = client.abort_session(req).await;
        }
    });
    join_all(calls).await;
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
