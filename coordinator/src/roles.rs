//! Who may call what on the coordinator.
//!
//! Client identities get roles from configuration; each client-facing
//! service requires one role. Health and reflection are open to every
//! authenticated identity. Anything else is refused: an identity without
//! the role gets `PERMISSION_DENIED`, and so does an unknown method.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sigil_tls::authz::is_public_method;
use sigil_tls::{Identity, PeerInfo};
use tonic::Status;

use crate::config::ClientGrant;

/// A client role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Payment services: request signatures and public keys.
    Signer,
    /// Security operations: create and manage keys and nodes.
    Operator,
    /// Auditors: read the audit trail.
    Auditor,
    /// Approvers: list and approve intents a policy holds for approval.
    Approver,
    /// Security officers: sign policy documents (offline); may read and relay them.
    Officer,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Signer => "signer",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::Approver => "approver",
            Self::Officer => "officer",
        })
    }
}

/// The roles that may call a client-facing method (any one suffices);
/// `None` for unknown methods.
pub fn required_roles(method: &str) -> Option<&'static [Role]> {
    let service = method.strip_prefix('/')?.split('/').next()?;
    match service {
        "sigil.v1.Signing" => Some(&[Role::Signer]),
        "sigil.v1.KeyAdmin" => Some(&[Role::Operator]),
        "sigil.v1.Policy" => Some(&[Role::Operator, Role::Officer]),
        "sigil.v1.Approvals" => Some(&[Role::Approver]),
        "sigil.v1.Audit" => Some(&[Role::Auditor]),
        _ => None,
    }
}

/// Client name → roles, from configuration.
#[derive(Clone, Debug, Default)]
pub struct RoleMap {
    grants: BTreeMap<String, BTreeSet<Role>>,
}

impl RoleMap {
    pub fn new(grants: &[ClientGrant]) -> Self {
        Self {
            grants: grants
                .iter()
                .map(|g| (g.name.clone(), g.roles.iter().copied().collect()))
                .collect(),
        }
    }

    /// Roles held by `identity` (nodes and the coordinator hold none).
    pub fn roles(&self, identity: &Identity) -> BTreeSet<Role> {
        match identity {
            Identity::Client(name) => self.grants.get(name).cloned().unwrap_or_default(),
            _ => BTreeSet::new(),
        }
    }

    /// The authorization decision for one call.
    pub fn authorize(&self, method: &str, peer: &PeerInfo) -> Result<(), Status> {
        if is_public_method(method) {
            return Ok(());
        }
        let Some(roles) = required_roles(method) else {
            return Err(Status::permission_denied("unknown method"));
        };
        let held = self.roles(&peer.identity);
        if roles.iter().any(|r| held.contains(r)) {
            Ok(())
        } else {
            let names: Vec<String> = roles.iter().map(Role::to_string).collect();
            Err(Status::permission_denied(format!(
                "{} lacks role {}",
                peer.identity,
                names.join(" or ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(identity: Identity) -> PeerInfo {
        PeerInfo {
            remote_addr: "127.0.0.1:1".parse().expect("addr"),
            identity,
        }
    }

    #[test]
    fn each_service_requires_its_role() {
        let map = RoleMap::new(&[
            ClientGrant {
                name: "pay".into(),
                roles: vec![Role::Signer],
            },
            ClientGrant {
                name: "ops".into(),
                roles: vec![Role::Operator, Role::Auditor],
            },
        ]);
        let pay = peer(Identity::Client("pay".into()));
        let ops = peer(Identity::Client("ops".into()));
        assert!(map.authorize("/sigil.v1.Signing/Sign", &pay).is_ok());
        assert_eq!(
            map.authorize("/sigil.v1.KeyAdmin/CreateKey", &pay)
                .map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        assert!(map.authorize("/sigil.v1.KeyAdmin/CreateKey", &ops).is_ok());
        assert!(map.authorize("/sigil.v1.Audit/QueryRecords", &ops).is_ok());
        assert_eq!(
            map.authorize("/sigil.v1.Signing/Sign", &ops)
                .map_err(|s| s.code()),
            Err(tonic::Code::PermissionDenied)
        );
        // Unknown clients, nodes and unknown methods are refused; health is open.
        let stranger = peer(Identity::Client("stranger".into()));
        assert!(map.authorize("/sigil.v1.Signing/Sign", &stranger).is_err());
        assert!(
            map.authorize("/sigil.v1.Signing/Sign", &peer(Identity::Node(1)))
                .is_err()
        );
        assert!(map.authorize("/sigil.v1.Secret/Dump", &ops).is_err());
        assert!(
            map.authorize("/grpc.health.v1.Health/Check", &stranger)
                .is_ok()
        );
    }
}
