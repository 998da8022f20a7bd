//! Conversions between the wire types of `sigil.v1` and the protocol crate's
//! types. Every conversion from the wire validates (lengths, ranges, required
//! fields) and fails with a typed error instead of guessing.
//!
//! This is the one place the node, the coordinator and the CLI convert wire
//! enums (schemes, message encodings) and read or write the gRPC metadata
//! that carries protocol blame ([`metadata`]), so the three cannot drift apart.

use sigil_protocol::engine::Encoding;
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

/// The scheme name (`frost-secp256k1`, …) of a wire enum value; `None` when
/// it is unspecified or unknown.
pub fn scheme_name_from_wire(v: i32) -> Option<&'static str> {
    scheme_from_wire(v).ok().map(Scheme::name)
}

/// How a sign request's message becomes what is signed, from its wire
/// enum value. Unknown values are refused (`MESSAGE_ENCODING_RAW` is 0, so
/// an unset field is `Raw`).
pub fn encoding_from_wire(v: i32) -> Result<Encoding, ProtocolError> {
    match pb::MessageEncoding::try_from(v) {
        Ok(pb::MessageEncoding::Raw) => Ok(Encoding::Raw),
        Ok(pb::MessageEncoding::Keccak256) => Ok(Encoding::Keccak256),
        Ok(pb::MessageEncoding::Sha256) => Ok(Encoding::Sha256),
        Err(_) => Err(ProtocolError::InvalidParameters(format!(
            "unknown message encoding {v}"
        ))),
    }
}

/// The wire enum of a message encoding.
pub fn encoding_to_wire(e: Encoding) -> pb::MessageEncoding {
    match e {
        Encoding::Raw => pb::MessageEncoding::Raw,
        Encoding::Keccak256 => pb::MessageEncoding::Keccak256,
        Encoding::Sha256 => pb::MessageEncoding::Sha256,
    }
}

/// Node ids from the wire.
pub fn node_ids_from_wire(ids: &[u32]) -> Result<Vec<NodeId>, ProtocolError> {
    ids.iter().map(|&id| NodeId::from_wire(id)).collect()
}

/// gRPC metadata a node sets on a protocol failure (`FAILED_PRECONDITION`)
/// and the coordinator on a misbehaviour abort, so the blamed nodes travel
/// as data and nobody parses error messages to exclude them; and the
/// machine-readable details of policy refusals (`docs/policy.md`).
pub mod metadata {
    use tonic::metadata::{MetadataMap, MetadataValue};

    /// The nodes a protocol error blames: comma-separated ids (`2,5`).
    pub const CULPRITS: &str = "sigil-culprits";
    /// The nodes a DKLs23 ban names (comma-separated ids, a subset of
    /// [`CULPRITS`]): the reporting node will never run a session of the
    /// key with them again, and the coordinator's exclusion of them cannot
    /// be cleared by an operator (only a key refresh or reshare lifts it).
    pub const BANNED: &str = "sigil-banned";
    /// Present when a protocol error implicates the relay (the coordinator).
    pub const RELAY_SUSPECTED: &str = "sigil-relay-suspected";
    /// The policy rule that refused a request (`assets[0].max_per_tx`, `requesters`, ...).
    pub const POLICY_RULE: &str = "sigil-policy-rule";
    /// Approvals an intent still needs: `<group>:<have>/<required>`.
    pub const APPROVAL_REQUIRED: &str = "sigil-approval-required";
    /// The pending approval a held sign request waits for.
    pub const APPROVAL_ID: &str = "sigil-approval-id";
    /// Set by a node that refuses a request on its own authority (intent,
    /// policy, approvals, governance) rather than a protocol fault: its
    /// kind (`permission_denied`, `intent_refused`, `policy_denied`,
    /// `approval_required`, `governance`). The coordinator passes such a
    /// refusal on to the client instead of retrying elsewhere.
    pub const REFUSAL: &str = "sigil-refusal";

    /// Sets [`CULPRITS`] to `culprits`; an empty list sets nothing.
    pub fn insert_culprits(map: &mut MetadataMap, culprits: &[u16]) {
        insert_ids(map, CULPRITS, culprits);
    }

    /// The nodes [`CULPRITS`] names; ids that do not parse are skipped, no
    /// entry is an empty list.
    pub fn culprits_from_metadata(map: &MetadataMap) -> Vec<u16> {
        ids_from_metadata(map, CULPRITS)
    }

    /// Sets [`BANNED`] to `banned`; an empty list sets nothing.
    pub fn insert_banned(map: &mut MetadataMap, banned: &[u16]) {
        insert_ids(map, BANNED, banned);
    }

    /// The nodes [`BANNED`] names, read as [`culprits_from_metadata`] reads
    /// [`CULPRITS`].
    pub fn banned_from_metadata(map: &MetadataMap) -> Vec<u16> {
        ids_from_metadata(map, BANNED)
    }

    fn insert_ids(map: &mut MetadataMap, key: &'static str, ids: &[u16]) {
        if ids.is_empty() {
            return;
        }
        let list: Vec<String> = ids.iter().map(u16::to_string).collect();
        if let Ok(v) = list.join(",").parse() {
            map.insert(key, v);
        }
    }

    fn ids_from_metadata(map: &MetadataMap, key: &'static str) -> Vec<u16> {
        map.get(key)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').filter_map(canonical_id).collect())
            .unwrap_or_default()
    }

    /// A node id as [`insert_ids`] writes it: decimal digits, no sign,
    /// space or leading zero, 1..=65535. Anything else names nobody (`01`
    /// is not node 1).
    fn canonical_id(text: &str) -> Option<u16> {
        let canonical =
            !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0');
        canonical.then(|| text.parse().ok()).flatten()
    }

    /// The machine-readable details of a refusal ([`POLICY_RULE`],
    /// [`APPROVAL_REQUIRED`]) present in `map`, to pass on as they are.
    pub fn refusal_details(map: &MetadataMap) -> Vec<(&'static str, String)> {
        [POLICY_RULE, APPROVAL_REQUIRED]
            .iter()
            .filter_map(|k| {
                map.get(*k)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| (*k, v.to_owned()))
            })
            .collect()
    }

    /// Sets [`RELAY_SUSPECTED`].
    pub fn insert_relay_suspected(map: &mut MetadataMap) {
        map.insert(RELAY_SUSPECTED, MetadataValue::from_static("true"));
    }

    /// True if [`RELAY_SUSPECTED`] is present (whatever its value).
    pub fn relay_suspected(map: &MetadataMap) -> bool {
        map.get(RELAY_SUSPECTED).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_convert_by_enum_and_by_name() {
        for scheme in Scheme::ALL {
            let wire = scheme_to_wire(scheme) as i32;
            assert_eq!(scheme_from_wire(wire), Ok(scheme));
            assert_eq!(scheme_name_from_wire(wire), Some(scheme.name()));
        }
        assert_eq!(scheme_name_from_wire(pb::Scheme::Unspecified as i32), None);
        assert_eq!(scheme_name_from_wire(99), None);
        assert!(scheme_from_wire(99).is_err());
    }

    #[test]
    fn encodings_round_trip_and_unknown_values_are_refused() {
        for e in [Encoding::Raw, Encoding::Keccak256, Encoding::Sha256] {
            assert_eq!(encoding_from_wire(encoding_to_wire(e) as i32), Ok(e));
        }
        assert_eq!(encoding_from_wire(0), Ok(Encoding::Raw));
        assert!(matches!(
            encoding_from_wire(3),
            Err(ProtocolError::InvalidParameters(m)) if m.contains("unknown message encoding 3")
        ));
        assert!(encoding_from_wire(-1).is_err());
    }

    #[test]
    fn culprit_metadata_round_trips() {
        let mut map = tonic::metadata::MetadataMap::new();
        assert!(metadata::culprits_from_metadata(&map).is_empty());
        assert!(!metadata::relay_suspected(&map));
        metadata::insert_culprits(&mut map, &[]);
        assert!(map.get(metadata::CULPRITS).is_none());
        metadata::insert_culprits(&mut map, &[2, 5]);
        assert_eq!(
            map.get(metadata::CULPRITS).and_then(|v| v.to_str().ok()),
            Some("2,5")
        );
        assert_eq!(metadata::culprits_from_metadata(&map), vec![2, 5]);
        metadata::insert_relay_suspected(&mut map);
        assert!(metadata::relay_suspected(&map));

        let mut odd = tonic::metadata::MetadataMap::new();
        odd.insert(
            metadata::CULPRITS,
            "3,x,70000,4, 5,06,+7,0,8".parse().expect("ascii"),
        );
        assert_eq!(metadata::culprits_from_metadata(&odd), vec![3, 4, 8]);

        // Bans travel beside the culprits, in their own entry.
        assert!(metadata::banned_from_metadata(&map).is_empty());
        metadata::insert_banned(&mut map, &[5]);
        assert_eq!(metadata::banned_from_metadata(&map), vec![5]);
        assert_eq!(metadata::culprits_from_metadata(&map), vec![2, 5]);
        metadata::insert_banned(&mut odd, &[]);
        assert!(odd.get(metadata::BANNED).is_none());
    }

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
