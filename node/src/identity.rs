//! The node's protocol identity: its end-to-end encryption key (X25519,
//! sealed at rest under the KEK) bound to its TLS identity by a signature,
//! and the verification of the other participants' identities that the
//! coordinator relays at session start. A participant whose certificate
//! does not chain to the cluster CA, names another node, or whose binding
//! signature fails is refused before any protocol state exists.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sigil_proto::v1 as pb;
use sigil_protocol::NodeId;
use sigil_protocol::envelope::{
    EncryptionKeypair, EncryptionPublicKey, IdentitySigner, PeerVerifier,
};
use sigil_tls::signing::{IdentityKey, PeerKey, binding_bytes};
use sigil_tls::{Identity, ReloadableTls};

use crate::NodeError;
use crate::seal::{Binding, Kek};

const ENCRYPTION_KEY_ID: &str = "sigil/node-encryption-key";

/// Loads the node's encryption keypair from `<key_dir>/encryption.sealed`, creating it on first start.
pub fn load_or_create_encryption_key(
    kek: &Kek,
    key_dir: &Path,
    node_id: u16,
) -> Result<EncryptionKeypair, NodeError> {
    let path = key_dir.join("encryption.sealed");
    let binding = Binding {
        key_id: ENCRYPTION_KEY_ID,
        node_id,
        epoch: 0,
    };
    if path.exists() {
        let sealed = std::fs::read(&path)?;
        let secret = kek.open(binding, &sealed)?;
        return Ok(EncryptionKeypair::from_secret_bytes(&secret)?);
    }
    std::fs::create_dir_all(key_dir)?;
    let keypair = EncryptionKeypair::generate(&mut rand::rngs::OsRng);
    let sealed = kek.seal(binding, keypair.secret_bytes().as_ref())?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, sealed)?;
    std::fs::rename(&tmp, &path)?;
    Ok(keypair)
}

/// This node's public identity, as `GetInfo` reports it and the coordinator relays it.
pub fn node_identity(
    node_id: u16,
    key: &IdentityKey,
    encryption: &EncryptionKeypair,
) -> Result<pb::NodeIdentity, NodeError> {
    let encryption_key = encryption.public_key().as_bytes().to_vec();
    let binding_signature = key.sign(&binding_bytes(node_id, &encryption_key))?;
    Ok(pb::NodeIdentity {
        node_id: u32::from(node_id),
        certificate_chain: key.chain().iter().map(|c| c.as_ref().to_vec()).collect(),
        encryption_key,
        binding_signature,
    })
}

/// Signs protocol messages with the key the session started with.
#[derive(Debug)]
pub struct SessionSigner {
    pub node: NodeId,
    pub key: Arc<IdentityKey>,
}

impl IdentitySigner for SessionSigner {
    fn node_id(&self) -> NodeId {
        self.node
    }

    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.key.sign(bytes).unwrap_or_else(|e| {
            // An empty signature never verifies: the session fails at the peers.
            tracing::error!(error = %e, "identity signing failed");
            Vec::new()
        })
    }
}

/// The verified identities of a session's participants.
#[derive(Debug)]
pub struct Participants {
    pub ids: Vec<NodeId>,
    pub verifier: Arc<PeerKeys>,
    /// Encryption keys of every participant except this node.
    pub encryption_keys: BTreeMap<NodeId, EncryptionPublicKey>,
}

/// Verified signing keys of the participants.
#[derive(Debug)]
pub struct PeerKeys(BTreeMap<NodeId, PeerKey>);

impl PeerVerifier for PeerKeys {
    fn verify(&self, node: NodeId, bytes: &[u8], signature: &[u8]) -> bool {
        self.0
            .get(&node)
            .is_some_and(|k| k.verify(bytes, signature))
    }
}

/// Verifies every relayed participant identity; `me` must be among them.
pub fn verify_participants(
    tls: &ReloadableTls,
    me: NodeId,
    relayed: &[pb::NodeIdentity],
) -> Result<Participants, NodeError> {
    let mut ids = Vec::with_capacity(relayed.len());
    let mut keys = BTreeMap::new();
    let mut encryption_keys = BTreeMap::new();
    for p in relayed {
        let id = NodeId::from_wire(p.node_id)?;
        if keys.contains_key(&id) {
            return Err(NodeError::InvalidRequest(format!(
                "participant {id} is listed twice"
            )));
        }
        let peer = tls
            .verify_peer_chain(&p.certificate_chain, &Identity::Node(id.get()))
            .map_err(|e| {
                NodeError::InvalidRequest(format!("identity of participant {id} refused: {e}"))
            })?;
        if !peer.verify(
            &binding_bytes(id.get(), &p.encryption_key),
            &p.binding_signature,
        ) {
            return Err(NodeError::InvalidRequest(format!(
                "encryption key of participant {id} is not bound to its identity"
            )));
        }
        if id != me {
            encryption_keys.insert(id, EncryptionPublicKey::from_slice(&p.encryption_key)?);
        }
        keys.insert(id, peer);
        ids.push(id);
    }
    if !keys.contains_key(&me) {
        return Err(NodeError::InvalidRequest(format!(
            "this node ({me}) is not a participant"
        )));
    }
    ids.sort();
    Ok(Participants {
        ids,
        verifier: Arc::new(PeerKeys(keys)),
        encryption_keys,
    })
}
