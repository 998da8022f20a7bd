//! Identifiers shared by every protocol: nodes (participants) and sessions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ProtocolError;

/// A signer node, and its participant identifier in every protocol it runs.
///
/// Node ids are small positive integers assigned by the operator; `0` is never
/// valid because threshold schemes evaluate polynomials at the identifier and
/// `0` would be the secret itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct NodeId(u16);

impl NodeId {
    /// Creates a node id, refusing 0.
    pub fn new(id: u16) -> Result<Self, ProtocolError> {
        if id == 0 {
            Err(ProtocolError::InvalidParameters(
                "node id 0 is not allowed".into(),
            ))
        } else {
            Ok(Self(id))
        }
    }

    /// Converts a wire value (gRPC uses `uint32`), refusing 0 and values above `u16::MAX`.
    pub fn from_wire(id: u32) -> Result<Self, ProtocolError> {
        let id = u16::try_from(id).map_err(|_| {
            ProtocolError::InvalidParameters(format!("node id {id} is out of range"))
        })?;
        Self::new(id)
    }

    /// The numeric value.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for NodeId {
    type Error = ProtocolError;
    fn try_from(v: u16) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<NodeId> for u16 {
    fn from(v: NodeId) -> u16 {
        v.0
    }
}

impl From<NodeId> for u32 {
    fn from(v: NodeId) -> u32 {
        u32::from(v.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// One run of one protocol. Chosen at random by the coordinator, never reused:
/// a restarted coordinator retries a request under a new session id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// Length in bytes.
    pub const LEN: usize = 16;

    /// Wraps 16 bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Parses wire bytes, which must be exactly 16 long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, ProtocolError> {
        <[u8; 16]>::try_from(bytes).map(Self).map_err(|_| {
            ProtocolError::InvalidParameters(format!(
                "session id must be 16 bytes, got {}",
                bytes.len()
            ))
        })
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_zero_and_out_of_range_are_refused() {
        assert!(matches!(
            NodeId::new(0),
            Err(ProtocolError::InvalidParameters(_))
        ));
        assert!(matches!(
            NodeId::from_wire(0),
            Err(ProtocolError::InvalidParameters(_))
        ));
        assert!(matches!(
            NodeId::from_wire(70_000),
            Err(ProtocolError::InvalidParameters(_))
        ));
        assert_eq!(NodeId::from_wire(3).map(NodeId::get).ok(), Some(3));
    }

    #[test]
    fn session_id_length_is_checked() {
        assert!(SessionId::from_slice(&[0u8; 15]).is_err());
        assert!(SessionId::from_slice(&[0u8; 17]).is_err());
        let s = SessionId::from_slice(&[7u8; 16]).expect("16 bytes");
        assert_eq!(s.to_string(), "07".repeat(16));
    }
}
