//! The node's own check of a signing request, made before any nonce is
//! drawn or share produced. The node does not take the coordinator's word
//! for anything: the key must exist here, the signers must be participants
//! of the key and at least its threshold, and the request must be well
//! formed (see [`SignInput`]). Signed payment intents and per-key limits
//! plug in here, with the exact bytes or digest the node is about to sign.

use sigil_proto::v1 as pb;
use sigil_protocol::NodeId;
use sigil_protocol::engine::SignInput;

use crate::NodeError;
use crate::store::StoredShare;

/// Refuses a signing request this node must not serve.
pub fn check_sign_request(
    share: &StoredShare,
    req: &pb::SignSession,
    input: &SignInput,
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
    // The message, its encoding and the derivation path were validated when
    // `input` was built (`SignInput::new`): FROST signs raw messages with no
    // path, ECDSA a 32-byte digest the node computed itself. Signed intents
    // and limits check `req.authorization` against `input` here.
    let _ = input;
    Ok(())
}
