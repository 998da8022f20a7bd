//! The coordinator's view of the signer nodes: one lazily connected mTLS
//! channel per configured node (verifying the node's `node/<id>` identity),
//! concurrent health probes with a deadline, and the nodes' certificate
//! keys for the relay's check of sender signatures.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sigil_proto::v1 as pb;
use sigil_proto::v1::node_client::NodeClient;
use sigil_protocol::NodeId;
use sigil_protocol::envelope::PeerVerifier;
use sigil_tls::client::{DialOptions, channel};
use sigil_tls::signing::PeerKey;
use sigil_tls::{Identity, ReloadableTls};
use tonic::transport::Channel;

use crate::CoordinatorError;
use crate::config::NodeEndpoint;
use crate::driver::DriveError;

/// A configured node and its client.
#[derive(Clone, Debug)]
pub struct NodeConn {
    pub endpoint: NodeEndpoint,
    pub client: NodeClient<Channel>,
}

/// A lazily connected mTLS channel to `endpoint` that accepts only its `node/<id>` identity.
fn connect(
    endpoint: NodeEndpoint,
    tls: &Arc<ReloadableTls>,
    timeout: Duration,
) -> Result<NodeConn, CoordinatorError> {
    // No channel-wide request timeout: every call sets its own deadline
    // (a DKLs23 DKG round may take far longer than a signing round).
    let opts = DialOptions {
        connect_timeout: timeout,
        request_timeout: None,
    };
    let ch = channel(
        &endpoint.endpoint,
        Identity::Node(endpoint.id),
        tls.clone(),
        &opts,
    )?;
    Ok(NodeConn {
        endpoint,
        client: NodeClient::new(ch),
    })
}

/// How long a fetched node identity is reused before it is fetched again.
const IDENTITY_TTL: Duration = Duration::from_secs(60);
/// How long a node that failed to answer is tried last.
const DOWN_PENALTY: Duration = Duration::from_secs(10);

/// Every configured node.
#[derive(Debug)]
pub struct NodePool {
    nodes: Vec<NodeConn>,
    tls: Arc<ReloadableTls>,
    timeout: Duration,
    identities: Mutex<HashMap<u16, (Instant, pb::NodeIdentity)>>,
    down: Mutex<HashMap<u16, Instant>>,
    rotation: AtomicUsize,
}

impl NodePool {
    pub fn new(
        nodes: &[NodeEndpoint],
        tls: Arc<ReloadableTls>,
        timeout: Duration,
    ) -> Result<Self, CoordinatorError> {
        let nodes = nodes
            .iter()
            .map(|n| connect(n.clone(), &tls, timeout))
            .collect::<Result<_, CoordinatorError>>()?;
        Ok(Self {
            nodes,
            tls,
            timeout,
            identities: Mutex::new(HashMap::new()),
            down: Mutex::new(HashMap::new()),
            rotation: AtomicUsize::new(0),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A connection to a node outside the configured pool — a drill node
    /// restored from a backup — that only talks to a server whose
    /// certificate chains to the cluster CA and names `node/<id>`. It is
    /// never cached, never in a quorum, and its identity is never cached
    /// (use [`Self::fetch_identity`]).
    pub fn dial(&self, id: u16, endpoint: &str, zone: &str) -> Result<NodeConn, CoordinatorError> {
        connect(
            NodeEndpoint {
                id,
                endpoint: endpoint.to_owned(),
                zone: zone.to_owned(),
            },
            &self.tls,
            self.timeout,
        )
    }

    /// The identity `conn` reports now (not cached; must name its node).
    pub async fn fetch_identity(&self, conn: &NodeConn) -> Result<pb::NodeIdentity, DriveError> {
        let mut client = conn.client.clone();
        let mut req = tonic::Request::new(pb::GetInfoRequest {});
        req.set_timeout(self.timeout);
        let unavailable = |detail: String| DriveError::Unavailable {
            nodes: vec![conn.endpoint.id],
            detail,
        };
        client
            .get_info(req)
            .await
            .map_err(|s| unavailable(s.message().to_owned()))?
            .into_inner()
            .identity
            .filter(|i| i.node_id == u32::from(conn.endpoint.id))
            .ok_or_else(|| unavailable("node reported no or another identity".into()))
    }

    /// Remembers that `nodes` failed to answer, so quorums try them last for a while.
    pub fn mark_down(&self, nodes: &[u16]) {
        let until = Instant::now() + DOWN_PENALTY;
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        for n in nodes {
            down.insert(*n, until);
        }
        let mut ids = self.identities.lock().unwrap_or_else(|p| p.into_inner());
        for n in nodes {
            ids.remove(n);
        }
    }

    fn recently_down(&self, node: u16) -> bool {
        let down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.get(&node).is_some_and(|until| *until > Instant::now())
    }

    /// Chooses `threshold` nodes among `participants`, skipping `exclude`:
    /// nodes that answered recently first, then distinct zones first, rotating
    /// the starting point so load spreads. Returns the nodes that could not
    /// be used when fewer than `threshold` remain.
    pub fn select_quorum(
        &self,
        participants: &[u16],
        threshold: usize,
        exclude: &BTreeSet<u16>,
    ) -> Result<Vec<NodeConn>, Vec<u16>> {
        let mut candidates: Vec<&NodeConn> = participants
            .iter()
            .filter(|id| !exclude.contains(id))
            .filter_map(|id| self.get(*id))
            .collect();
        if candidates.len() < threshold {
            let usable: BTreeSet<u16> = candidates.iter().map(|n| n.endpoint.id).collect();
            return Err(participants
                .iter()
                .copied()
                .filter(|p| !usable.contains(p))
                .collect());
        }
        let shift = self.rotation.fetch_add(1, Ordering::Relaxed) % candidates.len();
        candidates.rotate_left(shift);
        candidates.sort_by_key(|n| self.recently_down(n.endpoint.id));
        let mut chosen: Vec<NodeConn> = Vec::with_capacity(threshold);
        let mut zones = BTreeSet::new();
        for n in &candidates {
            if chosen.len() < threshold && zones.insert(n.endpoint.zone.clone()) {
                chosen.push((*n).clone());
            }
        }
        for n in &candidates {
            if chosen.len() < threshold && !chosen.iter().any(|c| c.endpoint.id == n.endpoint.id) {
                chosen.push((*n).clone());
            }
        }
        chosen.sort_by_key(|n| n.endpoint.id);
        Ok(chosen)
    }

    /// The relayed identities of `nodes` (cached for a minute).
    /// The signing keys of the nodes `identities` name, verified against
    /// this coordinator's CA (chains are cached by `ReloadableTls`), for the
    /// relay's check of every message's sender signature. An identity that
    /// does not verify names its node.
    pub fn sender_keys(
        &self,
        identities: &[pb::NodeIdentity],
    ) -> Result<Arc<dyn PeerVerifier>, DriveError> {
        let mut keys = BTreeMap::new();
        for identity in identities {
            let node = u16::try_from(identity.node_id).map_err(|_| DriveError::BadOutput {
                culprits: vec![],
                message: format!("participant id {} out of range", identity.node_id),
            })?;
            let id = NodeId::new(node).map_err(|e| DriveError::BadOutput {
                culprits: vec![],
                message: e.to_string(),
            })?;
            let key = self
                .tls
                .verify_peer_chain(&identity.certificate_chain, &Identity::Node(node))
                .map_err(|e| DriveError::BadOutput {
                    culprits: vec![node],
                    message: format!("certificate of node {node} refused: {e}"),
                })?;
            keys.insert(id, key);
        }
        Ok(Arc::new(SenderKeys(keys)))
    }

    pub async fn identities(
        &self,
        nodes: &[NodeConn],
    ) -> Result<Vec<pb::NodeIdentity>, DriveError> {
        let now = Instant::now();
        let cached: HashMap<u16, pb::NodeIdentity> = {
            let ids = self.identities.lock().unwrap_or_else(|p| p.into_inner());
            ids.iter()
                .filter(|(_, (at, _))| now.duration_since(*at) < IDENTITY_TTL)
                .map(|(k, (_, v))| (*k, v.clone()))
                .collect()
        };
        let fetches = nodes.iter().map(|n| {
            let cached = cached.get(&n.endpoint.id).cloned();
            let mut client = n.client.clone();
            let timeout = self.timeout;
            async move {
                if let Some(c) = cached {
                    return (n.endpoint.id, Ok(c));
                }
                let mut req = tonic::Request::new(pb::GetInfoRequest {});
                req.set_timeout(timeout);
                let r = client
                    .get_info(req)
                    .await
                    .map_err(|s| s.message().to_owned())
                    .and_then(|info| {
                        info.into_inner()
                            .identity
                            .filter(|i| i.node_id == u32::from(n.endpoint.id))
                            .ok_or_else(|| "node reported no or another identity".to_owned())
                    });
                (n.endpoint.id, r)
            }
        });
        let mut out = Vec::with_capacity(nodes.len());
        let mut failed = Vec::new();
        let mut detail = String::new();
        for (id, r) in futures::future::join_all(fetches).await {
            match r {
                Ok(identity) => {
                    self.identities
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(id)
                        .or_insert_with(|| (now, identity.clone()));
                    out.push(identity);
                }
                Err(e) => {
                    failed.push(id);
                    detail = e;
                }
            }
        }
        if failed.is_empty() {
            Ok(out)
        } else {
            self.mark_down(&failed);
            Err(DriveError::Unavailable {
                nodes: failed,
                detail,
            })
        }
    }

    pub fn nodes(&self) -> &[NodeConn] {
        &self.nodes
    }

    pub fn get(&self, id: u16) -> Option<&NodeConn> {
        self.nodes.iter().find(|n| n.endpoint.id == id)
    }

    /// The nodes that answer a probe now (see [`Self::status`]).
    pub async fn healthy(&self) -> std::collections::BTreeSet<u16> {
        self.status()
            .await
            .into_iter()
            .filter(|s| s.healthy)
            .filter_map(|s| u16::try_from(s.node_id).ok())
            .collect()
    }

    /// Probes every node concurrently (GetInfo under the node deadline).
    pub async fn status(&self) -> Vec<pb::NodeStatus> {
        let probes = self.nodes.iter().map(|n| {
            let mut client = n.client.clone();
            let timeout = self.timeout;
            async move {
                let mut req = tonic::Request::new(pb::GetInfoRequest {});
                req.set_timeout(timeout);
                let (healthy, version, detail) = match client.get_info(req).await {
                    Ok(info) if info.get_ref().node_id == u32::from(n.endpoint.id) => {
                        (true, info.into_inner().version, String::new())
                    }
                    Ok(info) => (
                        false,
                        String::new(),
                        format!("node reports id {}", info.get_ref().node_id),
                    ),
                    Err(status) => (
                        false,
                        String::new(),
                        format!("{:?}: {}", status.code(), status.message()),
                    ),
                };
                pb::NodeStatus {
                    node_id: u32::from(n.endpoint.id),
                    endpoint: n.endpoint.endpoint.clone(),
                    zone: n.endpoint.zone.clone(),
                    healthy,
                    version,
                    detail,
                }
            }
        });
        futures::future::join_all(probes).await
    }
}

/// The participants' certificate keys, as the relay's [`PeerVerifier`].
struct SenderKeys(BTreeMap<NodeId, PeerKey>);

impl PeerVerifier for SenderKeys {
    fn verify(&self, node: NodeId, bytes: &[u8], signature: &[u8]) -> bool {
        self.0
            .get(&node)
            .is_some_and(|k| k.verify(bytes, signature))
    }
}
