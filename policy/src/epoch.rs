//! Acknowledgements and commit certificates of redistributed epochs.
//!
//! After a refresh or reshare, each new participant holds its share of the
//! new epoch as `next`. It acknowledges it with a signature by its node
//! identity key over `"sigil.v1.EpochAck\0"` ‖ `EpochAck.body` (a
//! serialized `EpochAckBody`: key id, epoch, SHA-256 of the new public key
//! package, node id). The coordinator collects one acknowledgement from
//! every new participant into a **commit certificate** and writes it
//! durably before any node switches; each node checks the certificate
//! itself ([`verify_certificate`]) before its `next` share becomes
//! `current`. A certificate is therefore proof that every new participant
//! holds a verified share of the same package: no subset of nodes can
//! switch alone, and a coordinator cannot invent one.

use std::collections::BTreeSet;

use prost::Message as _;
use sigil_proto::v1 as pb;
use sigil_tls::{Identity, ReloadableTls};

use crate::domain::epoch_ack_signing_bytes;
use crate::verify::Refusal;

/// The body a node signs to acknowledge `epoch` of `key_id`.
pub fn ack_body(key_id: &str, epoch: u64, package_sha256: &[u8; 32], node_id: u16) -> Vec<u8> {
    pb::EpochAckBody {
        key_id: key_id.to_owned(),
        epoch,
        public_key_package_sha256: package_sha256.to_vec(),
        node_id: u32::from(node_id),
    }
    .encode_to_vec()
}

/// Verifies one acknowledgement: the chain is node `expected_node`'s under
/// this process's CA bundle, the signature verifies over the body as
/// received, and the body names that node. Returns the decoded body.
pub fn verify_ack(
    tls: &ReloadableTls,
    ack: &pb::EpochAck,
    expected_node: u16,
) -> Result<pb::EpochAckBody, Refusal> {
    let body = pb::EpochAckBody::decode(ack.body.as_slice())
        .map_err(|e| Refusal::Invalid(format!("acknowledgement of node {expected_node}: {e}")))?;
    if body.node_id != u32::from(expected_node) {
        return Err(Refusal::Invalid(format!(
            "acknowledgement of node {expected_node} names node {}",
            body.node_id
        )));
    }
    let identity = Identity::Node(expected_node);
    let key = tls
        .verify_peer_chain(&ack.certificate_chain, &identity)
        .map_err(|e| {
            Refusal::Unauthorized(format!(
                "acknowledgement of node {expected_node}: certificate refused: {e}"
            ))
        })?;
    if !key.verify(&epoch_ack_signing_bytes(&ack.body), &ack.signature) {
        return Err(Refusal::Unauthorized(format!(
            "acknowledgement of node {expected_node} does not verify"
        )));
    }
    Ok(body)
}

/// Verifies a commit certificate: one valid acknowledgement per listed
/// participant (no more, no fewer), each of exactly this key, epoch and
/// package hash; a sound threshold.
pub fn verify_certificate(
    tls: &ReloadableTls,
    cert: &pb::CommitCertificate,
) -> Result<(), Refusal> {
    let participants: BTreeSet<u32> = cert.participants.iter().copied().collect();
    if participants.len() != cert.participants.len() || participants.contains(&0) {
        return Err(Refusal::Invalid(
            "certificate lists a node twice or node 0".into(),
        ));
    }
    if cert.threshold < 2 || cert.threshold as usize > participants.len() {
        return Err(Refusal::Invalid(format!(
            "certificate threshold {} of {} participants",
            cert.threshold,
            participants.len()
        )));
    }
    if cert.public_key_package_sha256.len() != 32 {
        return Err(Refusal::Invalid(
            "certificate package hash is not 32 bytes".into(),
        ));
    }
    if cert.acks.len() != participants.len() {
        return Err(Refusal::Invalid(format!(
            "certificate carries {} acknowledgements for {} participants",
            cert.acks.len(),
            participants.len()
        )));
    }
    let mut acked = BTreeSet::new();
    for ack in &cert.acks {
        let claimed = pb::EpochAckBody::decode(ack.body.as_slice())
            .map_err(|e| Refusal::Invalid(format!("acknowledgement: {e}")))?
            .node_id;
        let node = u16::try_from(claimed)
            .ok()
            .filter(|n| participants.contains(&u32::from(*n)))
            .ok_or_else(|| {
                Refusal::Invalid(format!(
                    "acknowledgement of node {claimed}, which is not a participant"
                ))
            })?;
        let body = verify_ack(tls, ack, node)?;
        if body.key_id != cert.key_id
            || body.epoch != cert.epoch
            || body.public_key_package_sha256 != cert.public_key_package_sha256
        {
            return Err(Refusal::Invalid(format!(
                "acknowledgement of node {node} is for another key, epoch or package"
            )));
        }
        if !acked.insert(node) {
            return Err(Refusal::Invalid(format!("node {node} acknowledged twice")));
        }
    }
    Ok(())
}
