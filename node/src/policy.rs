//! The node's own check of a signing request, made before any nonce is
//! drawn or share produced. The node does not take the coordinator's word
//! for anything: the key must exist here, the signers must be participants
//! of the key and at least its threshold, and the request must be well
//! formed. Signed payment intents and per-key limits plug in here.

use sigil_proto::v1 as pb;
use sigil_protocol::NodeId;

use crate::NodeError;
use crate::store::StoredShare;

/// Refuses a signing request this node must not serve.
pub fn check_sign_request(
    share: &StoredShare,
    req: &pb::SignSession,
    signers: &[NodeId],
) -> Result<(), NodeError> {
    if req.epoch != share.epoch {
        return Err(NodeError::InvalidRequest(format!(
            "request is for epoch {} of key {}, this node holds epoch {}",
            req.epoch, share.key_id, share.epoch
        )));
    }
    if signers.len() < usize::from(share.threshold) {
        return Err(NodeError::InvalidRequest(format!(
            "{} signers for a {}-of-{} key",
            signers.len(),
            share.threshold,
            share.participants.len()
        )));
    }
    if let Some(outsider) = signers
        .iter()
        .find(|s| !share.participants.contains(&s.get()))
    {
        return Err(NodeError::InvalidRequest(format!(
            "{outsider} holds no share of key {}",
            share.key_id
        )));
    }
    if !req.derivation_path.is_empty() {
        return Err(NodeError::InvalidRequest(format!(
            "{} keys have no derivation paths",
            share.scheme
        )));
    }
    if req.message.is_empty() {
        return Err(NodeError::InvalidRequest("message is empty".into()));
    }
    Ok(())
}
