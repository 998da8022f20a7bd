//! Conversions between the wire types of `sigil.v1` and the protocol crate's
//! types. Every conversion from the wire validates (lengths, ranges, required
//! fields) and fails with a typed error instead of guessing.

use sigil_protocol::envelope::SignedMessage;
use sigil_protocol::{Message, NodeId, ProtocolError, Recipient, Scheme, SessionId};

use crate::v1 as pb;

/// Wire form of a signed protocol message.
pub fn message_to_wire(m: &SignedMessage) -> pb::ProtocolMessage {
    use pb::recipient::To;
    let to = match m.message.to {
        Recipient::Broadcast => To::Broadcast(pb::recipient::Broadcast {}),
        Recipient::Node(n) => To::Node(u32::from(n)),
        Recipient::Coordinator => To::Coordinator(pb::recipient::Coordinator {}),
    };
    pb::ProtocolMessage {
        session_id: m.message.session.as_bytes().to_vec(),
        round: u32::from(m.message.round),
        from: u32::from(m.message.from),
        recipient: Some(pb::Recipient { to: Some(to) }),
        payload: m.message.payload.clone(),
        signature: m.signature.clone(),
    }
}

/// A signed protocol message from the wire.
pub fn message_from_wire(m: pb::ProtocolMessage) -> Result<SignedMessage, ProtocolError> {
    use pb::recipient::To;
    let invalid =
        |what: &str| ProtocolError::InvalidParameters(format!("protocol message: {what}"));
    let to = match m.recipient.and_then(|r| r.to) {
        Some(To::Broadcast(_)) => Recipient::Broadcast,
        Some(To::Node(n)) => Recipient::Node(NodeId::from_wire(n)?),
        Some(To::Coordinator(_)) => Recipient::Coordinator,
        None => return Err(invalid("recipient missing")),
    };
    Ok(SignedMessage {
        message: Message {
            session: SessionId::from_slice(&m.session_id)?,
            round: u16::try_from(m.round).map_err(|_| invalid("round out of range"))?,
            from: NodeId::from_wire(m.from)?,
            to,
            payload: m.payload,
        },
        signature: m.signature,
    })
}

/// Converts a list of wire messages, failing on the first invalid one.
pub fn messages_from_wire(
    ms: Vec<pb::ProtocolMessage>,
) -> Result<Vec<SignedMessage>, ProtocolError> {
    ms.into_iter().map(message_from_wire).collect()
}

pub fn messages_to_wire(ms: &[SignedMessage]) -> Vec<pb::ProtocolMessage> {
    ms.iter().map(message_to_wire).collect()
}

/// The protocol scheme of a wire enum value.
pub fn scheme_from_wire(v: i32) -> Result<Scheme, ProtocolError> {
    match pb::Scheme::try_from(v) {
        Ok(pb::Scheme::FrostSecp256k1) => Ok(Scheme::FrostSecp256k1),
        Ok(pb::Scheme::FrostTaproot) => Ok(Scheme::FrostTaproot),
        Ok(pb::Scheme::FrostEd25519) => Ok(Scheme::FrostEd25519),
        Ok(pb::Scheme::EcdsaSecp256k1) => Ok(Scheme::EcdsaSecp256k1),
        Ok(pb::Scheme::Unspecified) | Err(_) => Err(ProtocolError::InvalidParameters(
            "scheme is required".into(),
        )),
    }
}

pub fn scheme_to_wire(s: Scheme) -> pb::Scheme {
    match s {
        Scheme::FrostSecp256k1 => pb::Scheme::FrostSecp256k1,
        Scheme::FrostTaproot => pb::Scheme::FrostTaproot,
        Scheme::FrostEd25519 => pb::Scheme::FrostEd25519,
        Scheme::EcdsaSecp256k1 => pb::Scheme::EcdsaSecp256k1,
    }
}

/// Node ids from the wire.
pub fn node_ids_from_wire(ids: &[u32]) -> Result<Vec<NodeId>, ProtocolError> {
    ids.iter().map(|&id| NodeId::from_wire(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_invalid_ones_are_refused() {
        let m = SignedMessage {
            message: Message {
                session: SessionId::from_bytes([3; 16]),
                round: 2,
                from: NodeId::new(1).expect("id"),
                to: Recipient::Node(NodeId::new(2).expect("id")),
                payload: vec![1, 2, 3],
            },
            signature: vec![9; 70],
        };
        assert_eq!(message_from_wire(message_to_wire(&m)), Ok(m.clone()));
        let mut w = message_to_wire(&m);
        w.session_id.pop();
        assert!(message_from_wire(w).is_err());
        let mut w = message_to_wire(&m);
        w.from = 0;
        assert!(message_from_wire(w).is_err());
        let mut w = message_to_wire(&m);
        w.round = 70_000;
        assert!(message_from_wire(w).is_err());
        let mut w = message_to_wire(&m);
        w.recipient = None;
        assert!(message_from_wire(w).is_err());
    }
}
