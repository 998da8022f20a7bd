//! What key generation, signing, refresh, reshare and drills share: the
//! record of culprits a protocol named (exclusions, DKLs23 bans, audit),
//! how a session that needs every participant reports its failure, an
//! operator clearing an exclusion, key lookup and chain addresses, and
//! small helpers (session ids, timestamps).
//!
//! Key generation is in [`crate::keygen`], signing in [`crate::signing`]
//! (its retry policy in [`crate::retry`]), refresh and reshare in
//! [`crate::epochs`], drills in [`crate::drill`].

use rand::RngCore;
use sigil_proto::convert::scheme_to_wire;
use sigil_proto::v1 as pb;
use sigil_protocol::engine;
use sigil_protocol::{ProtocolError, Scheme, SessionId};

use crate::CoordinatorError;
use crate::driver::DriveError;
use crate::service::Coordinator;
use crate::store::{KeyRecord, Misbehaviour};

pub(crate) fn random_session() -> SessionId {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    SessionId::from_bytes(b)
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn invalid(e: ProtocolError) -> CoordinatorError {
    CoordinatorError::InvalidRequest(e.to_string())
}

/// Key ids and idempotency keys: 1-128 printable ASCII without spaces.
fn valid_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

impl Coordinator {
    /// Records `culprits` a protocol named in `session` (an exclusion from
    /// the key's quorums each, a ban for those in `banned`) and audits it;
    /// the returned future does it, to be awaited or spawned.
    pub(crate) fn record_culprits_later(
        &self,
        key_id: &str,
        session: SessionId,
        culprits: &[u16],
        reason: &str,
        banned: &[u16],
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let store = self.store.clone();
        let audit = self.audit.clone();
        let (audit_key, audit_session, audit_culprits, audit_reason) = (
            key_id.to_owned(),
            session.to_string(),
            culprits.to_vec(),
            reason.to_owned(),
        );
        let records: Vec<Misbehaviour> = culprits
            .iter()
            .map(|c| Misbehaviour {
                node_id: *c,
                key_id: key_id.to_owned(),
                session_id: session.to_string(),
                reason: reason.to_owned(),
                created_at: now_rfc3339(),
                ban: banned.contains(c),
            })
            .collect();
        async move {
            for m in records {
                if m.ban {
                    tracing::error!(node = m.node_id, key_id = %m.key_id, session = %m.session_id, reason = %m.reason, "DKLs23 ban: node excluded from the key until a refresh or reshare");
                } else {
                    tracing::warn!(node = m.node_id, key_id = %m.key_id, session = %m.session_id, reason = %m.reason, "node misbehaved");
                }
                if let Err(e) = store.record_misbehaviour(&m).await {
                    tracing::error!(error = %e, "could not record misbehaviour");
                }
            }
            if !audit_culprits.is_empty() {
                audit
                    .misbehaviour(&audit_key, &audit_session, &audit_culprits, &audit_reason)
                    .await;
            }
        }
    }

    /// [`Self::record_culprits_later`], now.
    pub(crate) async fn record_culprits(
        &self,
        key_id: &str,
        session: SessionId,
        culprits: &[u16],
        reason: &str,
        banned: &[u16],
    ) {
        self.record_culprits_later(key_id, session, culprits, reason, banned)
            .await;
    }

    /// The error of a session that needs every participant (a DKG, a
    /// refresh or reshare, an epoch test signature): nothing is retried;
    /// nodes that did not answer are marked down, culprits are recorded.
    pub(crate) fn drive_failure(
        &self,
        what: &str,
        key_id: &str,
        session: SessionId,
        e: DriveError,
    ) -> CoordinatorError {
        tracing::warn!(%key_id, %session, error = %e, "{what} failed");
        match e {
            DriveError::Unavailable { nodes, detail } => {
                self.nodes.mark_down(&nodes);
                CoordinatorError::Unavailable(format!(
                    "{what} needs every participant; nodes {nodes:?} did not answer: {detail}"
                ))
            }
            DriveError::Denied {
                node,
                code,
                message,
                metadata,
            } => crate::intents::refused_by_node(node, code, &message, metadata).unwrap_or(
                CoordinatorError::Aborted(format!("node {node} refused {what}: {message}")),
            ),
            DriveError::Refused { node, message, .. } => {
                CoordinatorError::Aborted(format!("node {node} refused {what}: {message}"))
            }
            e => {
                let culprits = e.culprits();
                tokio::spawn(self.record_culprits_later(
                    key_id,
                    session,
                    &culprits,
                    &e.to_string(),
                    &e.banned(),
                ));
                CoordinatorError::Misbehaviour {
                    culprits,
                    message: format!("{what} aborted: {e}"),
                }
            }
        }
    }

    /// Lets `node_id` sign with `key_id` again after an operator investigated it.
    pub async fn clear_exclusion(
        &self,
        operator: &str,
        actor: &str,
        key_id: &str,
        node_id: u32,
        reason: &str,
    ) -> Result<u32, CoordinatorError> {
        let key = self.key(key_id).await?;
        let node = u16::try_from(node_id)
            .ok()
            .filter(|n| key.participants.contains(n))
            .ok_or_else(|| {
                CoordinatorError::InvalidRequest(format!(
                    "node {node_id} holds no share of key {key_id}"
                ))
            })?;
        if reason.trim().is_empty() {
            return Err(CoordinatorError::InvalidRequest(
                "a reason is required to clear an exclusion".into(),
            ));
        }
        let banned = self
            .store
            .list_exclusions(Some(key_id))
            .await?
            .into_iter()
            .any(|m| m.node_id == node && m.ban);
        if banned {
            return Err(CoordinatorError::FailedPrecondition {
                message: format!(
                    "node {node} is banned from key {key_id}: a DKLs23 ban is lifted only by a refresh or reshare that gives every party fresh pairwise state or removes the banned node"
                ),
                metadata: Vec::new(),
            });
        }
        // Fail closed: the node is let back in only once this is on record.
        self.audit
            .exclusion_cleared(actor.to_owned(), key_id, node, reason)
            .await?;
        let cleared = self
            .store
            .clear_exclusion(key_id, node, reason, &now_rfc3339())
            .await?;
        tracing::warn!(%operator, %key_id, node, %reason, cleared, "exclusion cleared");
        Ok(u32::try_from(cleared).unwrap_or(u32::MAX))
    }

    /// A key's public key (the child key for an ECDSA derivation path) and its addresses.
    pub async fn public_key(
        &self,
        key_id: &str,
        path: &str,
    ) -> Result<pb::GetPublicKeyResponse, CoordinatorError> {
        let key = self.key(key_id).await?;
        let scheme = key.scheme;
        let public_key =
            engine::public_key_for(scheme, &key.public_key, &key.public_key_package, path)
                .map_err(invalid)?;
        Ok(pb::GetPublicKeyResponse {
            addresses: addresses(scheme, &public_key),
            public_key,
            scheme: scheme_to_wire(scheme) as i32,
        })
    }

    pub(crate) async fn key(&self, key_id: &str) -> Result<KeyRecord, CoordinatorError> {
        if !valid_token(key_id) {
            return Err(CoordinatorError::InvalidRequest(
                "key_id is required".into(),
            ));
        }
        self.store
            .get_key(key_id)
            .await?
            .ok_or_else(|| CoordinatorError::NotFound(format!("key {key_id}")))
    }
}

/// Chain addresses of a key, by chain name (`sigil_chains::addresses`
/// names them). A key that yields no address (it should not happen for a
/// stored key) is logged and shown with none.
pub fn addresses(scheme: Scheme, public_key: &[u8]) -> std::collections::HashMap<String, String> {
    match sigil_chains::addresses(scheme, public_key) {
        Ok(addresses) => addresses.into_iter().collect(),
        Err(e) => {
            tracing::warn!(%scheme, error = %e, "no chain addresses for a key");
            std::collections::HashMap::new()
        }
    }
}
