//! Backups and recovery drills at the node.
//!
//! | call | what the node checks itself | what it does |
//! |---|---|---|
//! | `ExportBackup` | a backup recipient is configured (`[backup] recipient`) | seals each current share — its sealed-at-rest encoding, nothing else — to the recipient ([`sigil_policy::backup`]), records one `backup_exported` per share (fail closed), then returns them |
//! | `StartSession(drill)` | the security officers' authorization of a drill of exactly this key, its current epoch, the session's participants (the key's threshold of its current participants) and threshold — before anything else; then the key's bans | signs the drill message it derives itself (`"sigil.v1.Drill\0"`…), never a payload |
//!
//! A node never imports a backup: a share is restored offline into the
//! empty database of a freshly started drill node (`sigil drill`), which is
//! an ordinary node with its own identity and data directory, holding the
//! restored share as `current`, and is destroyed after the drill. Nonces,
//! presignatures and session state live in memory only and are in no backup.

use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use sigil_audit::Entry;
use sigil_policy::backup::seal_entry;
use sigil_policy::{OperationKind, RequestedOperation};
use sigil_proto::convert::scheme_to_wire;
use sigil_proto::v1 as pb;
use sigil_protocol::engine::{Encoding, SignInput};
use sigil_protocol::{NodeId, Scheme, SessionId};

use crate::NodeError;
use crate::audit::actions;
use crate::service::{NodeService, now_rfc3339, valid_key_id};
use crate::store::{ShareStatus, StoredShare};

impl NodeService {
    /// This node's current shares of `key_id` (empty: of every key), sealed
    /// to the backup recipient and on record.
    pub(crate) async fn backup_shares(
        &self,
        actor: &str,
        key_id: &str,
    ) -> Result<pb::NodeBackup, NodeError> {
        let recipient = self.backup_recipient.ok_or_else(|| {
            NodeError::BackupNotConfigured(format!(
                "node {} has no backup recipient configured ([backup] recipient)",
                self.node_id
            ))
        })?;
        let shares: Vec<StoredShare> = if key_id.is_empty() {
            self.store
                .list()
                .await?
                .into_iter()
                .filter(|s| s.status == ShareStatus::Current)
                .collect()
        } else {
            if !valid_key_id(key_id) {
                return Err(NodeError::InvalidRequest(
                    "key id must be 1-128 of A-Z a-z 0-9 . _ -".into(),
                ));
            }
            vec![
                self.store
                    .current(key_id)
                    .await?
                    .ok_or_else(|| NodeError::UnknownKey(key_id.to_owned()))?,
            ]
        };
        let mut entries = Vec::with_capacity(shares.len());
        for stored in &shares {
            let share = self.open_share(stored)?;
            let label = pb::BackupEntry {
                key_id: stored.key_id.clone(),
                epoch: stored.epoch,
                node_id: u32::from(self.node_id),
                scheme: scheme_to_wire(stored.scheme) as i32,
                public_key: stored.public_key.clone(),
                public_key_package: stored.public_key_package.clone(),
                verifying_share: share.verifying_share()?,
                ..Default::default()
            };
            let entry = seal_entry(&recipient, label, &share.to_bytes(), &mut OsRng)
                .map_err(|e| NodeError::Config(format!("backup: {e}")))?;
            entries.push(entry);
        }
        // Fail closed: nothing leaves before every share's export is on record.
        let fingerprint = recipient.fingerprint();
        let records = entries.iter().map(|e| {
            self.audit.record(
                Entry::new(actor, actions::BACKUP_EXPORTED)
                    .key_id(e.key_id.clone())
                    .request_id(format!("{}@{}", e.key_id, e.epoch))
                    .digest(Sha256::digest(&e.ciphertext).to_vec())
                    .detail(format!(
                        "epoch {} sealed to backup key {fingerprint}; verifying share {}",
                        e.epoch,
                        hex::encode(&e.verifying_share)
                    )),
            )
        });
        for result in futures::future::join_all(records).await {
            result?;
        }
        tracing::info!(
            shares = entries.len(),
            recipient = %fingerprint,
            "shares sealed to the backup recipient and exported"
        );
        Ok(pb::NodeBackup {
            node_id: u32::from(self.node_id),
            recipient: recipient.as_bytes().to_vec(),
            created_at: now_rfc3339(),
            entries,
        })
    }

    /// Checks a drill session (see the module docs) and returns the share
    /// that signs and the message it signs.
    pub(crate) async fn drill_input(
        &self,
        d: &pb::DrillSession,
        session_id: SessionId,
        me: NodeId,
        signers: &[NodeId],
    ) -> Result<(StoredShare, SignInput), NodeError> {
        if !valid_key_id(&d.key_id) {
            return Err(NodeError::InvalidRequest(
                "key id must be 1-128 of A-Z a-z 0-9 . _ -".into(),
            ));
        }
        let stored = self
            .store
            .current(&d.key_id)
            .await?
            .ok_or_else(|| NodeError::UnknownKey(d.key_id.clone()))?;
        let signer_ids: Vec<u16> = signers.iter().map(|n| n.get()).collect();
        // The officers' authorization first: nothing else is looked at without it.
        let op = self.policy.authorize_operation(
            d.authorization.as_ref(),
            &RequestedOperation {
                kind: OperationKind::Drill,
                key_id: &d.key_id,
                current_epoch: Some(stored.epoch),
                from_epoch: d.epoch,
                current_participants: &stored.participants,
                current_threshold: stored.threshold,
                new_participants: &signer_ids,
                new_threshold: stored.threshold,
            },
            Some(crate::ledger::now_ms() / 1000),
        )?;
        // Before the share or any randomness.
        self.bans.check_session(&d.key_id, me, signers).await?;
        let message = sigil_policy::drill_message(&d.key_id, stored.epoch, session_id.as_bytes());
        let encoding = if stored.scheme == Scheme::EcdsaSecp256k1 {
            Encoding::Sha256
        } else {
            Encoding::Raw
        };
        let input = SignInput::new(stored.scheme, &message, encoding, "")?;
        tracing::info!(
            session = %session_id, key_id = %d.key_id, epoch = stored.epoch, signers = ?signer_ids,
            nonce = %op.nonce, "recovery drill authorized by the officers"
        );
        Ok((stored, input))
    }
}
