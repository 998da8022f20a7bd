//! The `sigil.v1.Node` gRPC service: the node's public information and the
//! protocol sessions the coordinator drives. Handlers are thin: they verify
//! the relayed identities, run the node's own policy check, and hand
//! messages to the sans-I/O protocol wrapped in [`SecureSession`]
//! (sender signatures, end-to-end encryption). A DKG's share is sealed and
//! stored before the node reports success. Every session start, issued
//! signature share, stored key and refusal is recorded through
//! [`NodeAudit`] first (fail closed), and the node's log is readable by the
//! coordinator (`ExportAudit`, `GetAuditHeads`) for auditors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::OsRng;
use sigil_proto::convert::{
    messages_from_wire, messages_to_wire, scheme_from_wire, scheme_to_wire,
};
use sigil_proto::v1 as pb;
use sigil_proto::v1::node_server::Node;
use sigil_protocol::engine;
use sigil_protocol::envelope::{
    ContextKind, EncryptionKeypair, SecureSession, SessionContext, SignedMessage,
};
use sigil_protocol::{NodeId, Scheme, SessionId};
use sigil_tls::ReloadableTls;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::NodeError;
use crate::audit::{NodeAudit, SessionAudit, actor_of, signed_digest};
use crate::identity::{SessionSigner, node_identity, verify_participants};
use crate::ledger::{SessionUse, now_ms};
use crate::seal::{Binding, Kek};
use crate::sessions::{Session, SessionKind, Sessions, Stepped};
use crate::store::{ShareStatus, ShareStore, StoredShare};

/// Test-only misbehaviour, compiled in with the `fault-injection` feature.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Alter every signature share this node sends (then sign it, so the
    /// share is attributable to this node).
    pub corrupt_signature_share: bool,
    /// Fail at the end of every refresh or reshare, before the new share is
    /// stored (as if the node crashed there).
    pub fail_redistribution: bool,
}

/// State shared by the node's handlers.
pub struct NodeService {
    pub(crate) node_id: u16,
    pub(crate) zone: String,
    pub(crate) store: Arc<dyn ShareStore>,
    pub(crate) tls: Arc<ReloadableTls>,
    pub(crate) kek: Arc<Kek>,
    pub(crate) encryption: EncryptionKeypair,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) audit: NodeAudit,
    pub(crate) policy: Arc<crate::policy::NodePolicy>,
    /// DKLs23 bans this node holds ([`crate::bans`]).
    pub(crate) bans: crate::bans::Bans,
    /// Where `ExportBackup` seals shares (`[backup] recipient`); `None`: no backups.
    pub(crate) backup_recipient: Option<sigil_policy::backup::BackupPublicKey>,
    #[allow(dead_code)] // read only with the fault-injection feature
    pub(crate) faults: Faults,
}

impl std::fmt::Debug for NodeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeService")
            .field("node_id", &self.node_id)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

/// Key ids: 1-128 of `[A-Za-z0-9._-]`.
pub(crate) fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl NodeService {
    fn me(&self) -> Result<NodeId, NodeError> {
        Ok(NodeId::new(self.node_id)?)
    }

    /// This node's long-lived X25519 keypair for a new session (a copy: no
    /// key derivation per session).
    pub(crate) fn encryption_keypair(&self) -> Result<EncryptionKeypair, NodeError> {
        Ok(self.encryption.clone())
    }

    fn deadline(&self, requested_unix_ms: u64) -> Instant {
        let ttl = self.sessions.ttl();
        let now_ms = now_ms();
        let requested = Duration::from_millis(requested_unix_ms.saturating_sub(now_ms));
        let ttl = if requested_unix_ms == 0 {
            ttl
        } else {
            ttl.min(requested)
        };
        Instant::now() + ttl
    }

    /// What the log records about a session start, from the request as received.
    fn session_audit(&self, actor: String, req: &pb::StartSessionRequest) -> SessionAudit {
        let (kind, key_id) = match &req.kind {
            Some(pb::start_session_request::Kind::Dkg(d)) => ("dkg", d.key_id.clone()),
            Some(pb::start_session_request::Kind::Sign(s)) if s.epoch_test => {
                ("epoch_test", s.key_id.clone())
            }
            Some(pb::start_session_request::Kind::Sign(s)) => ("sign", s.key_id.clone()),
            Some(pb::start_session_request::Kind::Reshare(r)) => ("reshare", r.key_id.clone()),
            Some(pb::start_session_request::Kind::Drill(d)) => ("drill", d.key_id.clone()),
            None => ("unknown", String::new()),
        };
        SessionAudit {
            kind,
            actor,
            key_id,
            request_id: req.request_id.clone(),
            digest: Vec::new(),
            quorum: req
                .participants
                .iter()
                .filter_map(|p| u16::try_from(p.node_id).ok())
                .collect(),
            session_id: hex::encode(&req.session_id),
        }
    }

    async fn start(
        &self,
        req: pb::StartSessionRequest,
        mut audit: SessionAudit,
    ) -> Result<pb::StepResponse, NodeError> {
        let session_id = SessionId::from_slice(&req.session_id)?;
        // A full session table refuses before any work or intent use.
        self.sessions.ensure_room()?;
        let me = self.me()?;
        let participants = verify_participants(&self.tls, me, &req.participants)?;
        audit.quorum = participants.ids.iter().map(|p| p.get()).collect();
        let signer = Arc::new(SessionSigner {
            node: me,
            key: self.tls.identity_key()?,
        });
        let expires = self.deadline(req.deadline_unix_ms);
        // The id is remembered durably (until the in-memory table would
        // forget it) before anything of the session exists, so a restarted
        // node refuses it as well.
        let used = SessionUse {
            id: *session_id.as_bytes(),
            forget_ms: now_ms().saturating_add(
                u64::try_from(
                    (expires.saturating_duration_since(Instant::now()) + self.sessions.ttl())
                        .as_millis(),
                )
                .unwrap_or(u64::MAX),
            ),
        };
        let signs_intent = matches!(
            &req.kind,
            Some(pb::start_session_request::Kind::Sign(s)) if !s.epoch_test
        );
        if !signs_intent {
            self.policy.remember_session(&used).await?;
        }
        let mut receipt = None;
        let mut inline_steps = false;
        let (kind, messages) = match req.kind {
            Some(pb::start_session_request::Kind::Dkg(d)) => {
                let scheme = scheme_from_wire(d.scheme)?;
                if !valid_key_id(&d.key_id) {
                    return Err(NodeError::InvalidRequest(
                        "key id must be 1-128 of A-Z a-z 0-9 . _ -".into(),
                    ));
                }
                // Before any randomness (a ban outlives a key's deletion).
                self.bans
                    .check_session(&d.key_id, me, &participants.ids)
                    .await?;
                if self.store.exists(&d.key_id).await? {
                    return Err(NodeError::KeyExists(d.key_id));
                }
                let threshold = u16::try_from(d.threshold)
                    .map_err(|_| NodeError::InvalidRequest("threshold out of range".into()))?;
                let protocol = engine::new_dkg(
                    scheme,
                    session_id,
                    me,
                    &participants.ids,
                    threshold,
                    &mut OsRng,
                )?;
                let ids: Vec<u16> = participants.ids.iter().map(|p| p.get()).collect();
                let context =
                    SessionContext::new(ContextKind::Dkg, scheme, &d.key_id, 0, &participants.ids);
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
                tracing::info!(session = %session_id, key_id = %d.key_id, %scheme, threshold, "DKG session started");
                (
                    SessionKind::Dkg {
                        key_id: d.key_id,
                        scheme,
                        threshold,
                        participants: ids,
                        secure,
                    },
                    messages,
                )
            }
            Some(pb::start_session_request::Kind::Reshare(r)) => {
                if !valid_key_id(&r.key_id) {
                    return Err(NodeError::InvalidRequest(
                        "key id must be 1-128 of A-Z a-z 0-9 . _ -".into(),
                    ));
                }
                let started = self
                    .start_reshare(r, session_id, me, participants, signer)
                    .await?;
                (started.kind, started.messages)
            }
            Some(pb::start_session_request::Kind::Sign(s)) => {
                let (stored, input, gate) = if s.epoch_test {
                    // A `next` epoch signs a message the node derives itself, nothing else.
                    let (stored, input) = self.epoch_test_input(&s, session_id).await?;
                    (stored, input, None)
                } else {
                    let stored = self
                        .store
                        .current(&s.key_id)
                        .await?
                        .ok_or_else(|| NodeError::UnknownKey(s.key_id.clone()))?;
                    // Before the policy check, unsealing the share or any
                    // randomness. Only DKLs23 bans (FROST never bans a
                    // counterparty): a FROST session skips the lookup.
                    if stored.scheme == Scheme::EcdsaSecp256k1 {
                        self.bans
                            .check_session(&s.key_id, me, &participants.ids)
                            .await?;
                    }
                    // What is signed comes from the requester's signed intent,
                    // checked against this node's own copy of the key's policy.
                    let check = self
                        .policy
                        .check_sign(&stored, &s, &used, &participants.ids, &audit.actor)
                        .await?;
                    receipt = Some(check.receipt);
                    (stored, check.input, check.gate)
                };
                audit.digest = signed_digest(input.signed_bytes());
                inline_steps = stored.scheme != Scheme::EcdsaSecp256k1;
                let kind = if s.epoch_test {
                    ContextKind::EpochTest
                } else {
                    ContextKind::Sign
                };
                let (secure, messages) =
                    self.start_signer(&stored, &input, kind, session_id, me, participants, signer)?;
                tracing::info!(
                    session = %session_id, key_id = %s.key_id, epoch = stored.epoch,
                    epoch_test = s.epoch_test, request = %req.request_id, "signing session started"
                );
                (
                    SessionKind::Sign {
                        key_id: s.key_id,
                        secure,
                        receipts: gate,
                    },
                    messages,
                )
            }
            Some(pb::start_session_request::Kind::Drill(d)) => {
                // The officers' authorization first, then only the drill message.
                let (stored, input) = self
                    .drill_input(&d, session_id, me, &participants.ids)
                    .await?;
                audit.digest = signed_digest(input.signed_bytes());
                let (secure, messages) = self.start_signer(
                    &stored,
                    &input,
                    ContextKind::Drill,
                    session_id,
                    me,
                    participants,
                    signer,
                )?;
                tracing::info!(
                    session = %session_id, key_id = %d.key_id, epoch = stored.epoch,
                    request = %req.request_id, "recovery drill signing session started"
                );
                (
                    SessionKind::Sign {
                        key_id: d.key_id,
                        secure,
                        receipts: None,
                    },
                    messages,
                )
            }
            None => return Err(NodeError::InvalidRequest("session kind is required".into())),
        };
        self.sessions.insert_new(
            session_id,
            Session {
                kind,
                expires,
                audit: audit.clone(),
                inline_steps,
            },
        )?;
        // Nothing of the session leaves the node before it is on record.
        if let Err(e) = self.audit.session_started(&audit).await {
            self.sessions.abort(&session_id);
            return Err(e);
        }
        Ok(pb::StepResponse {
            session_id: session_id.as_bytes().to_vec(),
            round: 1,
            messages: messages_to_wire(&messages),
            output: None,
            receipt,
        })
    }

    /// Opens this node's signing state machine with `stored` over `input`,
    /// in a `kind` session of the stored key and epoch.
    #[allow(clippy::too_many_arguments)]
    fn start_signer(
        &self,
        stored: &StoredShare,
        input: &engine::SignInput,
        kind: ContextKind,
        session_id: SessionId,
        me: NodeId,
        participants: crate::identity::Participants,
        signer: Arc<SessionSigner>,
    ) -> Result<(SecureSession<engine::SignerProtocol>, Vec<SignedMessage>), NodeError> {
        let share = self.open_share(stored)?;
        let protocol =
            engine::new_signer(&share, session_id, me, &participants.ids, input, &mut OsRng)?;
        let context = SessionContext::new(
            kind,
            stored.scheme,
            &stored.key_id,
            stored.epoch,
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
        Ok((secure, messages))
    }

    async fn step_session(&self, req: pb::StepRequest) -> Result<pb::StepResponse, NodeError> {
        let session_id = SessionId::from_slice(&req.session_id)?;
        // Taken out of the table: a concurrent or replayed step finds nothing.
        let session = self.sessions.take(&session_id)?;
        let audit = session.audit.clone();
        let result = self.step_taken(session_id, session, req).await;
        if let Err(e) = &result {
            // A DKLs23 ban is stored before anything else is recorded.
            self.bans.record_failure(&audit, e).await;
            self.audit.session_failed(&audit, e).await;
        }
        result
    }

    /// One step of a session taken out of the table; on error the session
    /// (and its secrets) is dropped.
    async fn step_taken(
        &self,
        session_id: SessionId,
        mut session: Session,
        req: pb::StepRequest,
    ) -> Result<pb::StepResponse, NodeError> {
        let expected = session.expected_round();
        if req.round != u32::from(expected) {
            return Err(NodeError::InvalidRequest(format!(
                "round {} delivered, round {expected} expected",
                req.round
            )));
        }
        // A signer short of its accounting quorum at the start releases
        // nothing more until the other signers' receipts arrive.
        if let SessionKind::Sign { receipts, .. } = &mut session.kind
            && let Some(gate) = receipts.take()
        {
            self.policy.check_receipts(gate, &req.receipts)?;
        }
        let inbound = messages_from_wire(req.messages)?;
        let (session, stepped) = if session.inline_steps {
            let stepped = session.step(inbound);
            (session, stepped)
        } else {
            // CPU-bound for seconds (DKLs23 OT setup): off the async workers.
            tokio::task::spawn_blocking(move || {
                let stepped = session.step(inbound);
                (session, stepped)
            })
            .await
            .map_err(|e| {
                NodeError::Config(format!("protocol step panicked or was cancelled: {e}"))
            })?
        };
        let response = |messages: &[SignedMessage], output| pb::StepResponse {
            session_id: req.session_id.clone(),
            round: u32::from(expected) + 1,
            messages: messages_to_wire(messages),
            output,
            receipt: None,
        };
        let (messages, out) = match stepped? {
            Stepped::Continue(messages) => {
                self.sessions.put_back(session_id, session);
                return Ok(response(&messages, None));
            }
            Stepped::SignDone(messages) => {
                // Fail closed: the share leaves only once its record is
                // committed; otherwise the session (and its nonce) is dropped.
                self.audit.share_issued(&session.audit).await?;
                if let SessionKind::Sign { key_id, .. } = &session.kind {
                    tracing::info!(session = %session_id, key_id = %key_id, "signature share issued");
                }
                let messages = match &session.kind {
                    SessionKind::Sign { secure, .. } => {
                        self.maybe_corrupt(secure.context(), messages)
                    }
                    _ => messages,
                };
                return Ok(response(&messages, None));
            }
            Stepped::DkgDone(messages, out) => (messages, out),
            Stepped::ReshareDone(messages, out) => {
                let SessionKind::Reshare {
                    key_id,
                    scheme,
                    epoch,
                    threshold,
                    participants,
                    ..
                } = session.kind
                else {
                    return Err(NodeError::InvalidRequest(
                        "unexpected protocol output".into(),
                    ));
                };
                let output = self
                    .finish_reshare(
                        &session.audit,
                        key_id.clone(),
                        scheme,
                        epoch,
                        threshold,
                        participants,
                        out,
                    )
                    .await?;
                tracing::info!(session = %session_id, key_id = %key_id, epoch, holds_share = output.ack.is_some(), "redistribution finished");
                let output = Some(pb::SessionOutput {
                    output: Some(pb::session_output::Output::Reshare(output)),
                });
                return Ok(response(&messages, output));
            }
        };
        // Only a DKG finishes with an output; the session (and its secrets) ends here.
        let SessionKind::Dkg {
            key_id,
            scheme,
            threshold,
            participants,
            ..
        } = session.kind
        else {
            return Err(NodeError::InvalidRequest(
                "unexpected protocol output".into(),
            ));
        };
        self.persist_share(&key_id, scheme, threshold, participants, &out)
            .await?;
        self.audit
            .dkg_share_stored(
                &session.audit,
                <sha2::Sha256 as sha2::Digest>::digest(&out.public_key_package).to_vec(),
                format!(
                    "dkg: {scheme} {threshold}-of-{}, public key {}",
                    session.audit.quorum.len(),
                    hex::encode(&out.public_key)
                ),
            )
            .await?;
        tracing::info!(session = %session_id, key_id = %key_id, "DKG finished; share sealed and stored, pending commit");
        let output = Some(pb::SessionOutput {
            output: Some(pb::session_output::Output::Dkg(pb::DkgOutput {
                public_key: out.public_key.clone(),
                public_key_package: out.public_key_package.clone(),
            })),
        });
        Ok(response(&messages, output))
    }

    async fn persist_share(
        &self,
        key_id: &str,
        scheme: Scheme,
        threshold: u16,
        participants: Vec<u16>,
        out: &engine::DkgOutput,
    ) -> Result<(), NodeError> {
        let epoch = 0;
        let binding = Binding {
            key_id,
            node_id: self.node_id,
            epoch,
        };
        let sealed_share = self.kek.seal(binding, &out.key_share.to_bytes())?;
        let share = StoredShare {
            key_id: key_id.to_owned(),
            epoch,
            scheme,
            // Signs only after the coordinator commits it (every participant agreed).
            status: ShareStatus::Pending,
            threshold,
            participants,
            public_key: out.public_key.clone(),
            public_key_package: out.public_key_package.clone(),
            sealed_share,
            created_at: now_rfc3339(),
        };
        self.store.insert(&share).await?;
        Ok(())
    }

    #[cfg(feature = "fault-injection")]
    fn maybe_corrupt(
        &self,
        context: SessionContext,
        mut messages: Vec<SignedMessage>,
    ) -> Vec<SignedMessage> {
        use sigil_protocol::envelope::IdentitySigner;
        if !self.faults.corrupt_signature_share {
            return messages;
        }
        let Ok(key) = self.tls.identity_key() else {
            return messages;
        };
        let Ok(me) = self.me() else { return messages };
        let signer = SessionSigner { node: me, key };
        // Each node flips a different bit (by node id), so the changes of
        // several faulty signers never cancel out in an aggregate sum.
        let bit = 1u8 << (me.get() % 8);
        for m in &mut messages {
            let mid = m.message.payload.len() / 2;
            if let Some(b) = m.message.payload.get_mut(mid) {
                *b ^= bit;
            }
            m.signature = signer.sign(&context.signing_bytes(&m.message));
        }
        tracing::warn!("fault injection: signature share corrupted");
        messages
    }

    #[cfg(not(feature = "fault-injection"))]
    fn maybe_corrupt(
        &self,
        _context: SessionContext,
        messages: Vec<SignedMessage>,
    ) -> Vec<SignedMessage> {
        messages
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[tonic::async_trait]
impl Node for NodeService {
    type ExportAuditStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::AuditRecord, Status>> + Send>>;

    async fn export_audit(
        &self,
        req: Request<pb::ExportAuditRequest>,
    ) -> Result<Response<Self::ExportAuditStream>, Status> {
        let filter = sigil_proto::audit::filter_from_wire(req.get_ref());
        let records = self.audit.log().export(&filter).map_err(NodeError::from)?;
        Ok(Response::new(Box::pin(ReceiverStream::new(records).map(
            |item| {
                item.map(|r| sigil_proto::audit::record_to_wire(&r))
                    .map_err(|e| Status::from(NodeError::from(e)))
            },
        ))))
    }

    async fn list_bans(
        &self,
        req: Request<pb::ListBansRequest>,
    ) -> Result<Response<pb::ListBansResponse>, Status> {
        let key_id = req.into_inner().key_id;
        let bans = self
            .bans
            .list((!key_id.is_empty()).then_some(key_id.as_str()))
            .await?;
        Ok(Response::new(pb::ListBansResponse {
            bans: bans.into_iter().map(crate::bans::ban_to_wire).collect(),
        }))
    }

    async fn get_audit_heads(
        &self,
        req: Request<pb::GetAuditHeadsRequest>,
    ) -> Result<Response<pb::GetAuditHeadsResponse>, Status> {
        let log = self.audit.log();
        let heads = if req.get_ref().all {
            log.all_signed_heads().await
        } else {
            log.latest_head().await.map(|h| h.into_iter().collect())
        }
        .map_err(NodeError::from)?;
        Ok(Response::new(pb::GetAuditHeadsResponse {
            heads: heads.iter().map(sigil_proto::audit::head_to_wire).collect(),
        }))
    }

    async fn get_info(
        &self,
        _req: Request<pb::GetInfoRequest>,
    ) -> Result<Response<pb::NodeInfo>, Status> {
        let key_count = self.store.count_current().await.map_err(NodeError::from)?;
        let key = self.tls.identity_key().map_err(NodeError::from)?;
        let identity = node_identity(self.node_id, &key, &self.encryption)?;
        Ok(Response::new(pb::NodeInfo {
            node_id: u32::from(self.node_id),
            zone: self.zone.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            identity: Some(identity),
            key_count,
        }))
    }

    async fn list_keys(
        &self,
        _req: Request<pb::ListNodeKeysRequest>,
    ) -> Result<Response<pb::ListNodeKeysResponse>, Status> {
        let shares = self.store.list().await.map_err(NodeError::from)?;
        let keys = shares
            .into_iter()
            .map(|s| pb::NodeKey {
                scheme: scheme_to_wire(s.scheme) as i32,
                key_id: s.key_id,
                epoch: s.epoch,
                public_key: s.public_key,
                threshold: u32::from(s.threshold),
                participants: s.participants.into_iter().map(u32::from).collect(),
            })
            .collect();
        Ok(Response::new(pb::ListNodeKeysResponse { keys }))
    }

    async fn start_session(
        &self,
        req: Request<pb::StartSessionRequest>,
    ) -> Result<Response<pb::StepResponse>, Status> {
        let actor = actor_of(req.extensions().get(), self.audit.domain());
        let req = req.into_inner();
        let audit = self.session_audit(actor, &req);
        match self.start(req, audit.clone()).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e) => {
                tracing::warn!(session = %audit.session_id, error = %e, "session refused");
                self.audit.session_refused(&audit, &e).await;
                Err(e.into())
            }
        }
    }

    async fn step(
        &self,
        req: Request<pb::StepRequest>,
    ) -> Result<Response<pb::StepResponse>, Status> {
        let req = req.into_inner();
        let session = hex::encode(&req.session_id);
        self.step_session(req).await.map(Response::new).map_err(|e| {
            tracing::warn!(session = %session, error = %e, "session step failed; session dropped");
            e.into()
        })
    }

    async fn commit_key(
        &self,
        req: Request<pb::CommitKeyRequest>,
    ) -> Result<Response<pb::NodeKey>, Status> {
        let actor = actor_of(req.extensions().get(), self.audit.domain());
        let req = req.into_inner();
        let share = self
            .store
            .get(&req.key_id, req.epoch)
            .await
            .map_err(NodeError::from)?
            .ok_or_else(|| NodeError::UnknownKey(req.key_id.clone()))?;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&share.public_key_package);
        if digest[..] != req.public_key_package_sha256[..] {
            return Err(NodeError::InvalidRequest(format!(
                "public key package of {} epoch {} differs from what this node computed",
                req.key_id, req.epoch
            ))
            .into());
        }
        match share.status {
            ShareStatus::Current => {}
            ShareStatus::Pending => {
                // Fail closed: the share becomes usable only once this is on record.
                self.audit
                    .key_committed(
                        actor,
                        &req.key_id,
                        req.epoch,
                        digest.to_vec(),
                        share.participants.clone(),
                    )
                    .await?;
                self.store
                    .activate(&req.key_id, req.epoch)
                    .await
                    .map_err(NodeError::from)?;
                tracing::info!(key_id = %req.key_id, epoch = req.epoch, "key committed; share is current");
            }
            other => {
                return Err(
                    NodeError::InvalidRequest(format!("share is {other:?}, not pending")).into(),
                );
            }
        }
        Ok(Response::new(pb::NodeKey {
            key_id: share.key_id,
            epoch: share.epoch,
            scheme: scheme_to_wire(share.scheme) as i32,
            public_key: share.public_key,
            threshold: u32::from(share.threshold),
            participants: share.participants.into_iter().map(u32::from).collect(),
        }))
    }

    async fn commit_epoch(
        &self,
        req: Request<pb::CommitEpochRequest>,
    ) -> Result<Response<pb::NodeKey>, Status> {
        let actor = actor_of(req.extensions().get(), self.audit.domain());
        let cert = req.into_inner().certificate.unwrap_or_default();
        match self.apply_certificate(actor.clone(), &cert).await {
            Ok(key) => Ok(Response::new(key)),
            Err(e) => {
                tracing::warn!(key_id = %cert.key_id, epoch = cert.epoch, error = %e, "commit certificate refused");
                self.audit
                    .record_refusal(
                        sigil_audit::Entry::new(actor, crate::audit::actions::EPOCH_COMMITTED)
                            .key_id(cert.key_id.clone())
                            .digest(cert.public_key_package_sha256.clone())
                            .detail(format!("epoch {}", cert.epoch)),
                        &e,
                    )
                    .await;
                Err(e.into())
            }
        }
    }

    async fn list_epochs(
        &self,
        req: Request<pb::ListEpochsRequest>,
    ) -> Result<Response<pb::ListEpochsResponse>, Status> {
        let key_id = req.into_inner().key_id;
        Ok(Response::new(self.epochs_of(&key_id).await?))
    }

    async fn reserve_spend(
        &self,
        req: Request<pb::ReserveSpendRequest>,
    ) -> Result<Response<pb::SpendReceipt>, Status> {
        let actor = actor_of(req.extensions().get(), self.audit.domain());
        let req = req.into_inner();
        // The key named by the intent (verified against its signature below).
        let key_id = req
            .intent
            .as_ref()
            .and_then(|i| sigil_policy::decode_intent(&i.intent).ok())
            .map(|i| i.key_id)
            .unwrap_or_default();
        let result = async {
            let share = self
                .store
                .current(&key_id)
                .await?
                .ok_or_else(|| NodeError::UnknownKey(key_id.clone()))?;
            self.policy
                .reserve(&share, req.intent.as_ref(), &actor)
                .await
        }
        .await;
        match result {
            Ok(receipt) => Ok(Response::new(receipt)),
            Err(e) => {
                tracing::warn!(key_id = %key_id, error = %e, "spend refused");
                let digest = req
                    .intent
                    .as_ref()
                    .map(|i| sigil_policy::intent_sha256(&i.intent).to_vec())
                    .unwrap_or_default();
                self.audit
                    .record_refusal(
                        sigil_audit::Entry::new(actor, crate::audit::actions::SPEND_REFUSED)
                            .key_id(key_id)
                            .digest(digest),
                        &e,
                    )
                    .await;
                Err(e.into())
            }
        }
    }

    async fn apply_policy(
        &self,
        req: Request<pb::NodeApplyPolicyRequest>,
    ) -> Result<Response<pb::NodePolicy>, Status> {
        let actor = actor_of(req.extensions().get(), self.audit.domain());
        let signed = req.into_inner().policy.unwrap_or_default();
        let key_id = sigil_policy::PolicyDocument::from_document_bytes(&signed.document)
            .map(|d| d.key_id)
            .unwrap_or_default();
        let result = async {
            let share = self.store.current(&key_id).await?;
            self.policy.apply(&signed, share.as_ref(), &actor).await
        }
        .await;
        match result {
            Ok(stored) => Ok(Response::new(pb::NodePolicy {
                key_id: stored.key_id,
                version: stored.version,
                document_sha256: stored.document_sha256,
                policy: Some(signed),
                is_default: false,
            })),
            Err(e) => {
                tracing::warn!(key_id = %key_id, error = %e, "policy document refused");
                self.audit
                    .record_refusal(
                        sigil_audit::Entry::new(actor, crate::audit::actions::POLICY_REFUSED)
                            .key_id(key_id)
                            .digest(sigil_policy::document_sha256(&signed.document).to_vec()),
                        &e,
                    )
                    .await;
                Err(e.into())
            }
        }
    }

    async fn get_policy(
        &self,
        req: Request<pb::NodeGetPolicyRequest>,
    ) -> Result<Response<pb::NodePolicy>, Status> {
        let key_id = req.into_inner().key_id;
        if self
            .store
            .current(&key_id)
            .await
            .map_err(NodeError::from)?
            .is_none()
        {
            return Err(NodeError::UnknownKey(key_id).into());
        }
        let in_force = self.policy.in_force(&key_id).await?;
        Ok(Response::new(pb::NodePolicy {
            key_id,
            version: in_force.version,
            document_sha256: in_force.document_sha256.clone(),
            is_default: in_force.signed.is_none(),
            policy: in_force.signed.clone(),
        }))
    }

    async fn export_backup(
        &self,
        req: Request<pb::ExportBackupRequest>,
    ) -> Result<Response<pb::NodeBackup>, Status> {
        let actor = actor_of(req.extensions().get(), self.audit.domain());
        let key_id = req.into_inner().key_id;
        match self.backup_shares(&actor, &key_id).await {
            Ok(backup) => Ok(Response::new(backup)),
            Err(e) => {
                tracing::warn!(key_id = %key_id, error = %e, "backup export refused");
                self.audit
                    .record_refusal(
                        sigil_audit::Entry::new(actor, crate::audit::actions::BACKUP_EXPORTED)
                            .key_id(key_id),
                        &e,
                    )
                    .await;
                Err(e.into())
            }
        }
    }

    async fn abort_session(
        &self,
        req: Request<pb::AbortSessionRequest>,
    ) -> Result<Response<pb::AbortSessionResponse>, Status> {
        let req = req.into_inner();
        let id = SessionId::from_slice(&req.session_id).map_err(NodeError::from)?;
        if let Some(session) = self.sessions.remove(&id) {
            tracing::info!(session = %id, reason = %req.reason, "session aborted by the coordinator");
            let audit = session.audit.clone();
            drop(session); // its secrets go now, not after the audit write
            self.audit.session_aborted(&audit, &req.reason).await;
        }
        Ok(Response::new(pb::AbortSessionResponse {}))
    }
}
