//! Key epochs at the node: joining a redistribution (refresh or reshare),
//! staging the new share as `next`, acknowledging it, test-signing with it,
//! and switching to it when a commit certificate arrives.
//!
//! | step | what the node checks itself | what it does |
//! |---|---|---|
//! | `StartSession(reshare)` | the officers' authorization against its own officer configuration (the exact key, epoch, nodes and threshold); a dealer: the key is current here at that epoch with that package; a joining node: it holds nothing of the key | runs the redistribution (`sigil_protocol::engine::new_reshare`) |
//! | last step | the protocol's own checks (commitments, subshares, group key) | seals and stores its share as epoch e+1 `next`, returns a signed [`pb::EpochAck`] |
//! | `StartSession(sign, epoch_test)` | a `next` share of that epoch exists; nothing but the derived test message is signed | one signature share over `"sigil.v1.EpochTest\0"`‖key‖epoch‖session |
//! | `CommitEpoch` | every new participant's acknowledgement of the same package ([`sigil_policy::epoch::verify_certificate`]), the officers' authorization, its own `next` matches | `next` → `current`, `current` → `retired`, the key's bans lifted, in one transaction; a node the redistribution removed deletes its share |
//!
//! A `next` share never signs a payload; a `retired` share never signs at
//! all and is deleted after `[epochs] retired_grace`; a `next` whose
//! certificate never came is deleted after `[epochs] next_ttl`. The switch is
//! recorded in the audit log before it happens (fail closed).

use std::sync::Arc;

use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use sigil_audit::Entry;
use sigil_policy::{OperationKind, RequestedOperation};
use sigil_proto::convert::{scheme_from_wire, scheme_to_wire};
use sigil_proto::v1 as pb;
use sigil_protocol::engine::{self, Encoding, KeyShare, ReshareKind, ReshareSpec, SignInput};
use sigil_protocol::envelope::{ContextKind, SecureSession, SessionContext};
use sigil_protocol::{NodeId, SessionId};

use crate::NodeError;
use crate::audit::{SessionAudit, actions};
use crate::identity::{Participants, SessionSigner};
use crate::seal::Binding;
use crate::service::{NodeService, now_rfc3339};
use crate::sessions::SessionKind;
use crate::store::{EpochSwitch, ShareStatus, StoredShare};

fn node_ids(ids: &[u32], what: &str) -> Result<Vec<u16>, NodeError> {
    let mut out: Vec<u16> =
        ids.iter()
            .map(|&n| {
                u16::try_from(n).ok().filter(|n| *n != 0).ok_or_else(|| {
                    NodeError::InvalidRequest(format!("{what}: node id {n} is invalid"))
                })
            })
            .collect::<Result<_, _>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err(NodeError::InvalidRequest(format!(
            "{what}: a node is listed twice"
        )));
    }
    Ok(out)
}

fn to_node_ids(ids: &[u16]) -> Result<Vec<NodeId>, NodeError> {
    Ok(ids
        .iter()
        .map(|&n| NodeId::new(n))
        .collect::<Result<_, _>>()?)
}

/// What the session start of a redistribution leaves for its last step.
pub(crate) struct StartedReshare {
    pub kind: SessionKind,
    pub messages: Vec<sigil_protocol::envelope::SignedMessage>,
}

impl NodeService {
    /// Checks and opens this node's part of a redistribution.
    pub(crate) async fn start_reshare(
        &self,
        r: pb::ReshareSession,
        session_id: SessionId,
        me: NodeId,
        participants: Participants,
        signer: Arc<SessionSigner>,
    ) -> Result<StartedReshare, NodeError> {
        let scheme = scheme_from_wire(r.scheme)?;
        let dealers = node_ids(&r.dealers, "dealers")?;
        let new_participants = node_ids(&r.new_participants, "new participants")?;
        let old_participants = node_ids(&r.participants, "current participants")?;
        let new_threshold = u16::try_from(r.new_threshold)
            .map_err(|_| NodeError::InvalidRequest("new threshold out of range".into()))?;
        let old_threshold = u16::try_from(r.threshold)
            .map_err(|_| NodeError::InvalidRequest("threshold out of range".into()))?;
        let new_epoch = r
            .epoch
            .checked_add(1)
            .ok_or_else(|| NodeError::InvalidRequest("epoch out of range".into()))?;

        // The session's participants are exactly the dealers and the new holders.
        let mut everyone: Vec<u16> = dealers.iter().chain(&new_participants).copied().collect();
        everyone.sort_unstable();
        everyone.dedup();
        let session_nodes: Vec<u16> = participants.ids.iter().map(|p| p.get()).collect();
        if session_nodes != everyone {
            return Err(NodeError::InvalidRequest(format!(
                "session participants {session_nodes:?} are not the dealers and new participants {everyone:?}"
            )));
        }
        if dealers.iter().any(|d| !old_participants.contains(d)) {
            return Err(NodeError::InvalidRequest(
                "every dealer must hold a share of the current epoch".into(),
            ));
        }

        let current = self.store.current(&r.key_id).await?;
        // The officers' authorization first: nothing else is looked at without it.
        let kind = if r.refresh {
            OperationKind::Refresh
        } else {
            OperationKind::Reshare
        };
        let op = self.policy.authorize_operation(
            r.authorization.as_ref(),
            &RequestedOperation {
                kind,
                key_id: &r.key_id,
                current_epoch: current.as_ref().map(|s| s.epoch),
                from_epoch: r.epoch,
                current_participants: current
                    .as_ref()
                    .map_or(&old_participants, |s| &s.participants),
                current_threshold: current.as_ref().map_or(old_threshold, |s| s.threshold),
                new_participants: &new_participants,
                new_threshold,
            },
            Some(crate::ledger::now_ms() / 1000),
        )?;

        let dealing = dealers.contains(&me.get());
        let share = match (&current, dealing) {
            (Some(stored), true) => {
                if stored.epoch != r.epoch
                    || stored.scheme != scheme
                    || stored.public_key_package != r.public_key_package
                    || stored.participants != old_participants
                    || stored.threshold != old_threshold
                {
                    return Err(NodeError::Refused(format!(
                        "key {} epoch {} at this node is not what the redistribution describes (this node holds epoch {})",
                        r.key_id, r.epoch, stored.epoch
                    )));
                }
                Some(self.open_share(stored)?)
            }
            (None, true) => return Err(NodeError::UnknownKey(r.key_id)),
            (Some(stored), false) if !new_participants.contains(&me.get()) => {
                return Err(NodeError::InvalidRequest(format!(
                    "node {me} is neither a dealer nor a new participant of key {}",
                    stored.key_id
                )));
            }
            (Some(stored), false) => {
                // A holder that does not deal still joins the new epoch
                // from its own copy of the key, which must be the same.
                if stored.epoch != r.epoch || stored.public_key_package != r.public_key_package {
                    return Err(NodeError::Refused(format!(
                        "key {} at this node is at epoch {}, the redistribution is from epoch {}",
                        r.key_id, stored.epoch, r.epoch
                    )));
                }
                None
            }
            (None, false) => {
                if self.store.exists(&r.key_id).await?
                    && self
                        .store
                        .epochs(&r.key_id)
                        .await?
                        .iter()
                        .any(|s| s.status != ShareStatus::Next)
                {
                    return Err(NodeError::Refused(format!(
                        "key {} has shares here but none is current",
                        r.key_id
                    )));
                }
                None
            }
        };

        let spec = ReshareSpec {
            kind: if kind == OperationKind::Refresh {
                ReshareKind::Refresh
            } else {
                ReshareKind::Reshare
            },
            old_participants: to_node_ids(&old_participants)?,
            old_threshold,
            dealers: to_node_ids(&dealers)?,
            new_participants: to_node_ids(&new_participants)?,
            new_threshold,
        };
        let protocol = engine::new_reshare(
            scheme,
            session_id,
            me,
            &spec,
            &r.public_key_package,
            share.as_ref(),
            &mut OsRng,
        )?;
        let context = SessionContext::new(
            ContextKind::Reshare,
            scheme,
            &r.key_id,
            r.epoch,
            &participants.ids,
        );
        let mut secure = SecureSession::new(
            protocol,
            context,
            signer,
            participants.verifier,
            self.encryption_keypair()?,
            participants.encryption_keys,
            &mut OsRng,
        );
        let messages = secure.start()?;
        tracing::info!(
            session = %session_id, key_id = %r.key_id, %scheme, from_epoch = r.epoch,
            operation = %op.operation, nonce = %op.nonce, "redistribution session started"
        );
        Ok(StartedReshare {
            kind: SessionKind::Reshare {
                key_id: r.key_id,
                scheme,
                epoch: new_epoch,
                threshold: new_threshold,
                participants: new_participants,
                secure,
            },
            messages,
        })
    }

    /// Seals and stages this node's share of the new epoch (if it holds
    /// one), records it, and acknowledges it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finish_reshare(
        &self,
        audit: &SessionAudit,
        key_id: String,
        scheme: sigil_protocol::Scheme,
        epoch: u64,
        threshold: u16,
        participants: Vec<u16>,
        out: engine::ReshareOutput,
    ) -> Result<pb::ReshareOutput, NodeError> {
        #[cfg(feature = "fault-injection")]
        if self.faults.fail_redistribution {
            tracing::warn!("fault injection: redistribution fails before its share is stored");
            return Err(NodeError::Unsupported(
                "fault injection: node stopped before storing its new share".into(),
            ));
        }
        let package_sha256: [u8; 32] = Sha256::digest(&out.public_key_package).into();
        let Some(key_share) = out.key_share else {
            self.audit
                .record(
                    Entry::new(audit.actor.clone(), actions::EPOCH_DEALT)
                        .key_id(key_id.clone())
                        .session_id(audit.session_id.clone())
                        .quorum(audit.quorum.clone())
                        .digest(package_sha256.to_vec())
                        .detail(format!(
                            "dealt epoch {epoch} to nodes {participants:?}; this node holds no share of it"
                        )),
                )
                .await?;
            return Ok(pb::ReshareOutput {
                public_key: out.public_key,
                public_key_package: out.public_key_package,
                epoch,
                ack: None,
            });
        };
        let binding = Binding {
            key_id: &key_id,
            node_id: self.node_id,
            epoch,
        };
        let sealed_share = self.kek.seal(binding, &key_share.to_bytes())?;
        drop(key_share);
        // Fail closed: nothing is acknowledged that is not on record.
        self.audit
            .record(
                Entry::new(audit.actor.clone(), actions::EPOCH_STAGED)
                    .key_id(key_id.clone())
                    .session_id(audit.session_id.clone())
                    .quorum(participants.clone())
                    .digest(package_sha256.to_vec())
                    .detail(format!(
                        "{scheme} epoch {epoch}, {threshold}-of-{}, public key {}; awaiting its commit certificate",
                        participants.len(),
                        hex::encode(&out.public_key)
                    )),
            )
            .await?;
        self.store
            .stage_next(&StoredShare {
                key_id: key_id.clone(),
                epoch,
                scheme,
                status: ShareStatus::Next,
                threshold,
                participants,
                public_key: out.public_key.clone(),
                public_key_package: out.public_key_package.clone(),
                sealed_share,
                created_at: now_rfc3339(),
            })
            .await?;
        let body = sigil_policy::epoch::ack_body(&key_id, epoch, &package_sha256, self.node_id);
        let key = self.tls.identity_key()?;
        let signature = key.sign(&sigil_policy::epoch_ack_signing_bytes(&body))?;
        let ack = pb::EpochAck {
            body,
            signature,
            certificate_chain: key.chain().iter().map(|c| c.to_vec()).collect(),
        };
        Ok(pb::ReshareOutput {
            public_key: out.public_key,
            public_key_package: out.public_key_package,
            epoch,
            ack: Some(ack),
        })
    }

    /// The stored share and what a test signature of its `next` epoch signs.
    pub(crate) async fn epoch_test_input(
        &self,
        s: &pb::SignSession,
        session_id: SessionId,
    ) -> Result<(StoredShare, SignInput), NodeError> {
        if !s.message.is_empty() || !s.derivation_path.is_empty() || s.intent.is_some() {
            return Err(NodeError::InvalidRequest(
                "an epoch test signs only the message the node derives itself".into(),
            ));
        }
        let stored = self
            .store
            .get(&s.key_id, s.epoch)
            .await?
            .filter(|share| share.status == ShareStatus::Next)
            .ok_or_else(|| {
                NodeError::Refused(format!(
                    "no uncommitted epoch {} of key {} at this node",
                    s.epoch, s.key_id
                ))
            })?;
        let message = sigil_policy::epoch_test_message(&s.key_id, s.epoch, session_id.as_bytes());
        let encoding = if stored.scheme == sigil_protocol::Scheme::EcdsaSecp256k1 {
            Encoding::Sha256
        } else {
            Encoding::Raw
        };
        let input = SignInput::new(stored.scheme, &message, encoding, "")?;
        Ok((stored, input))
    }

    pub(crate) fn open_share(&self, stored: &StoredShare) -> Result<KeyShare, NodeError> {
        let binding = Binding {
            key_id: &stored.key_id,
            node_id: self.node_id,
            epoch: stored.epoch,
        };
        Ok(KeyShare::from_bytes(
            stored.scheme,
            &self.kek.open(binding, &stored.sealed_share)?,
        )?)
    }

    /// Applies a commit certificate (see the module docs).
    pub(crate) async fn apply_certificate(
        &self,
        actor: String,
        cert: &pb::CommitCertificate,
    ) -> Result<pb::NodeKey, NodeError> {
        sigil_policy::epoch::verify_certificate(&self.tls, cert)?;
        let from_epoch = cert
            .epoch
            .checked_sub(1)
            .ok_or_else(|| NodeError::InvalidRequest("epoch 0 is created by a DKG".into()))?;
        let new_participants = node_ids(&cert.participants, "certificate participants")?;
        let new_threshold = u16::try_from(cert.threshold)
            .map_err(|_| NodeError::InvalidRequest("threshold out of range".into()))?;
        let op = sigil_policy::KeyOperation::from_document_bytes(
            &cert
                .authorization
                .as_ref()
                .map(|a| a.document.clone())
                .unwrap_or_default(),
        )
        .map_err(|e| NodeError::Unauthorized(format!("certificate authorization: {e}")))?;
        // What was authorized, not when: the certificate proves the session ran.
        let (current_participants, current_threshold) = match op.operation {
            OperationKind::Refresh => (new_participants.clone(), new_threshold),
            OperationKind::Reshare => (Vec::new(), 0),
            OperationKind::Drill => {
                return Err(NodeError::GovernanceRefused(
                    "a drill authorization does not switch a key's epoch".into(),
                ));
            }
        };
        self.policy.authorize_operation(
            cert.authorization.as_ref(),
            &RequestedOperation {
                kind: op.operation,
                key_id: &cert.key_id,
                current_epoch: None,
                from_epoch,
                current_participants: &current_participants,
                current_threshold,
                new_participants: &new_participants,
                new_threshold,
            },
            None,
        )?;

        let me = self.node_id;
        let digest = cert.public_key_package_sha256.clone();
        if new_participants.contains(&me) {
            let staged = self
                .store
                .get(&cert.key_id, cert.epoch)
                .await?
                .ok_or_else(|| {
                    NodeError::Refused(format!(
                        "node {me} holds no share of epoch {} of key {}; a reshare must give it one",
                        cert.epoch, cert.key_id
                    ))
                })?;
            if Sha256::digest(&staged.public_key_package)[..] != digest[..] {
                return Err(NodeError::Refused(format!(
                    "the certificate's package of key {} epoch {} differs from this node's",
                    cert.key_id, cert.epoch
                )));
            }
            if staged.status == ShareStatus::Next {
                // Fail closed: the switch happens only once it is on record.
                self.audit
                    .record(
                        Entry::new(actor, actions::EPOCH_COMMITTED)
                            .key_id(cert.key_id.clone())
                            .digest(digest)
                            .quorum(new_participants.clone())
                            .detail(format!(
                                "epoch {} is current ({} of {:?}); epoch {from_epoch} retired; operation {} nonce {}",
                                cert.epoch, new_threshold, new_participants, op.operation, op.nonce
                            )),
                    )
                    .await?;
            }
            match self
                .store
                .commit_epoch(&cert.key_id, cert.epoch, &now_rfc3339())
                .await?
            {
                EpochSwitch::Switched => {
                    tracing::info!(key_id = %cert.key_id, epoch = cert.epoch, "epoch committed; previous epoch retired");
                }
                EpochSwitch::AlreadyCurrent => {}
                EpochSwitch::NothingStaged => {
                    return Err(NodeError::Refused(format!(
                        "epoch {} of key {} is {:?} here, not next",
                        cert.epoch, cert.key_id, staged.status
                    )));
                }
            }
            let share = self
                .store
                .current(&cert.key_id)
                .await?
                .ok_or_else(|| NodeError::UnknownKey(cert.key_id.clone()))?;
            return Ok(node_key(share));
        }
        // A node the redistribution removed: its share of the key goes.
        let held = self.store.epochs(&cert.key_id).await?;
        if let Some(newest) = held.iter().map(|s| s.epoch).max() {
            if newest > from_epoch {
                return Err(NodeError::Refused(format!(
                    "key {} is at epoch {newest} here, beyond the certificate's epoch {}",
                    cert.key_id, cert.epoch
                )));
            }
            self.audit
                .record(
                    Entry::new(actor, actions::SHARE_REMOVED)
                        .key_id(cert.key_id.clone())
                        .digest(digest)
                        .quorum(new_participants.clone())
                        .detail(format!(
                            "epoch {} is held by {:?}; this node's shares of epochs ≤ {from_epoch} are deleted",
                            cert.epoch, new_participants
                        )),
                )
                .await?;
            let removed = self.store.drop_key(&cert.key_id, from_epoch).await?;
            tracing::info!(key_id = %cert.key_id, removed, "node removed from key; shares deleted");
        }
        Ok(pb::NodeKey {
            key_id: cert.key_id.clone(),
            epoch: cert.epoch,
            scheme: 0,
            public_key: Vec::new(),
            threshold: cert.threshold,
            participants: cert.participants.clone(),
        })
    }

    /// Every stored epoch of a key, public data only.
    pub(crate) async fn epochs_of(
        &self,
        key_id: &str,
    ) -> Result<pb::ListEpochsResponse, NodeError> {
        let epochs = self.store.epochs(key_id).await?;
        Ok(pb::ListEpochsResponse {
            epochs: epochs
                .into_iter()
                .map(|s| pb::NodeEpoch {
                    epoch: s.epoch,
                    status: s.status.as_str().to_owned(),
                    threshold: u32::from(s.threshold),
                    participants: s.participants.iter().map(|p| u32::from(*p)).collect(),
                    public_key_package_sha256: Sha256::digest(&s.public_key_package).to_vec(),
                    created_at: s.created_at,
                })
                .collect(),
        })
    }

    /// Deletes retired shares past their grace and `next` shares whose
    /// certificate never came (see `[epochs]`). Each deletion is audited.
    pub(crate) async fn sweep_epochs(
        &self,
        retired_grace: std::time::Duration,
        next_ttl: std::time::Duration,
    ) -> Result<(), NodeError> {
        let before = |d: std::time::Duration| {
            let t = time::OffsetDateTime::now_utc()
                - time::Duration::try_from(d).unwrap_or(time::Duration::ZERO);
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let (retired, next) = self
            .store
            .sweep(&before(retired_grace), &before(next_ttl))
            .await?;
        if retired + next > 0 {
            tracing::info!(retired, next, "old and abandoned shares deleted");
            self.audit
                .note(
                    Entry::new(
                        self.audit.me().to_owned(),
                        actions::SHARES_DELETED,
                    )
                    .detail(format!(
                        "{retired} retired share(s) past the grace period, {next} uncommitted share(s) past their lifetime"
                    )),
                )
                .await;
        }
        Ok(())
    }
}

/// The public description of a stored share.
pub(crate) fn node_key(share: StoredShare) -> pb::NodeKey {
    pb::NodeKey {
        key_id: share.key_id,
        epoch: share.epoch,
        scheme: scheme_to_wire(share.scheme) as i32,
        public_key: share.public_key,
        threshold: u32::from(share.threshold),
        participants: share.participants.into_iter().map(u32::from).collect(),
    }
}
