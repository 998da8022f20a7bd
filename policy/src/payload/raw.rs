//! Opaque messages and digests: Sigil cannot read what they mean, so a
//! policy must allow raw signing for them, and they belong to no chain.
//!
//! | payload | scheme | encoding signed |
//! |---|---|---|
//! | `raw_message` | FROST | RAW only: FROST signs the message itself |
//! | `raw_message` | ECDSA | KECCAK256 or SHA256: the node hashes the message |
//! | `raw_digest` | ECDSA | RAW: exactly 32 bytes, signed as the digest |
//!
//! An ECDSA `raw_message` with encoding RAW would be a digest under another
//! name; it is refused so that every digest signed as is arrives as a
//! `raw_digest`.

use sigil_proto::v1 as pb;
use sigil_protocol::Scheme;
use sigil_protocol::engine::Encoding;

use super::{Parsed, PayloadError, PayloadKind, SignPart, check_len, encoding_name};

/// Reads a `raw_message` for a key of `scheme`.
pub fn parse_message(scheme: Scheme, raw: &pb::RawMessage) -> Result<Parsed, PayloadError> {
    let encoding = sigil_proto::convert::encoding_from_wire(raw.encoding)
        .map_err(|_| PayloadError::UnknownEncoding(raw.encoding))?;
    match (scheme, encoding) {
        (Scheme::EcdsaSecp256k1, Encoding::Raw) => {
            return Err(PayloadError::EcdsaNeedsHashEncoding { scheme });
        }
        (Scheme::EcdsaSecp256k1, _) | (_, Encoding::Raw) => {}
        (_, other) => {
            return Err(PayloadError::FrostNeedsRawEncoding {
                scheme,
                encoding: encoding_name(other),
            });
        }
    }
    if raw.message.is_empty() {
        return Err(PayloadError::EmptyMessage);
    }
    check_len(&raw.message)?;
    Ok(Parsed {
        chain: None,
        kind: PayloadKind::RawMessage,
        movements: Vec::new(),
        calls: Vec::new(),
        fee: None,
        parts: vec![SignPart::new(raw.message.clone(), encoding)],
    })
}

/// Reads a `raw_digest` (the caller has checked the key is ECDSA).
pub fn parse_digest(digest: &[u8]) -> Result<Parsed, PayloadError> {
    if digest.len() != 32 {
        return Err(PayloadError::DigestLength(digest.len()));
    }
    Ok(Parsed {
        chain: None,
        kind: PayloadKind::RawDigest,
        movements: Vec::new(),
        calls: Vec::new(),
        fee: None,
        parts: vec![SignPart::new(digest.to_vec(), Encoding::Raw)],
    })
}

#[cfg(test)]
mod tests {
    use sigil_protocol::engine::SignInput;

    use super::*;
    use crate::payload::parse_for as parse;

    fn raw(message: &[u8], encoding: pb::MessageEncoding) -> pb::Payload {
        pb::Payload {
            kind: Some(pb::payload::Kind::RawMessage(pb::RawMessage {
                message: message.to_vec(),
                encoding: encoding as i32,
            })),
        }
    }

    fn digest(bytes: &[u8]) -> pb::Payload {
        pb::Payload {
            kind: Some(pb::payload::Kind::RawDigest(bytes.to_vec())),
        }
    }

    #[test]
    fn frost_signs_raw_messages_as_given_and_the_engine_agrees() {
        for scheme in Scheme::FROST {
            let parsed =
                parse(scheme, &raw(b"solana tx bytes", pb::MessageEncoding::Raw)).expect("parses");
            assert_eq!(parsed.kind, PayloadKind::RawMessage);
            assert_eq!(parsed.parts[0].encoding, Encoding::Raw);
            assert_eq!(parsed.parts[0].message, b"solana tx bytes");
            assert_eq!(parsed.chain, None);
            assert!(parsed.movements.is_empty());
            assert_eq!(
                SignInput::new(
                    scheme,
                    &parsed.parts[0].message,
                    parsed.parts[0].encoding,
                    ""
                ),
                Ok(SignInput::Message(b"solana tx bytes".to_vec()))
            );
        }
    }

    #[test]
    fn frost_refuses_a_hash_encoding() {
        assert_eq!(
            parse(
                Scheme::FrostTaproot,
                &raw(b"m", pb::MessageEncoding::Sha256)
            ),
            Err(PayloadError::FrostNeedsRawEncoding {
                scheme: Scheme::FrostTaproot,
                encoding: "SHA256",
            })
        );
    }

    #[test]
    fn ecdsa_hashes_raw_messages_and_refuses_them_unhashed() {
        for (wire, encoding) in [
            (pb::MessageEncoding::Keccak256, Encoding::Keccak256),
            (pb::MessageEncoding::Sha256, Encoding::Sha256),
        ] {
            let parsed = parse(Scheme::EcdsaSecp256k1, &raw(b"hello", wire)).expect("parses");
            assert_eq!(parsed.parts[0].encoding, encoding);
            assert!(
                SignInput::new(
                    Scheme::EcdsaSecp256k1,
                    &parsed.parts[0].message,
                    parsed.parts[0].encoding,
                    "m/1"
                )
                .is_ok()
            );
        }
        assert_eq!(
            parse(
                Scheme::EcdsaSecp256k1,
                &raw(&[7; 32], pb::MessageEncoding::Raw)
            ),
            Err(PayloadError::EcdsaNeedsHashEncoding {
                scheme: Scheme::EcdsaSecp256k1
            })
        );
    }

    #[test]
    fn unknown_encodings_and_empty_messages_are_refused() {
        let mut payload = raw(b"m", pb::MessageEncoding::Raw);
        if let Some(pb::payload::Kind::RawMessage(r)) = payload.kind.as_mut() {
            r.encoding = 9;
        }
        assert_eq!(
            parse(Scheme::FrostEd25519, &payload),
            Err(PayloadError::UnknownEncoding(9))
        );
        assert_eq!(
            parse(Scheme::FrostEd25519, &raw(b"", pb::MessageEncoding::Raw)),
            Err(PayloadError::EmptyMessage)
        );
        let huge = vec![0u8; sigil_protocol::engine::MAX_MESSAGE_LEN + 1];
        assert!(matches!(
            parse(Scheme::FrostEd25519, &raw(&huge, pb::MessageEncoding::Raw)),
            Err(PayloadError::TooLong { .. })
        ));
    }

    #[test]
    fn a_raw_digest_is_exactly_32_bytes_for_ecdsa_only() {
        let parsed = parse(Scheme::EcdsaSecp256k1, &digest(&[0xab; 32])).expect("parses");
        assert_eq!(parsed.kind, PayloadKind::RawDigest);
        assert_eq!(parsed.parts[0].encoding, Encoding::Raw);
        assert!(
            SignInput::new(
                Scheme::EcdsaSecp256k1,
                &parsed.parts[0].message,
                parsed.parts[0].encoding,
                ""
            )
            .is_ok()
        );
        assert_eq!(
            parsed.summary(),
            format!("raw digest 0x{}", "ab".repeat(32))
        );
        assert_eq!(
            parse(Scheme::EcdsaSecp256k1, &digest(&[0xab; 31])),
            Err(PayloadError::DigestLength(31))
        );
        assert_eq!(
            parse(Scheme::EcdsaSecp256k1, &digest(&[0xab; 33])),
            Err(PayloadError::DigestLength(33))
        );
        assert!(matches!(
            parse(Scheme::FrostSecp256k1, &digest(&[0xab; 32])),
            Err(PayloadError::WrongScheme {
                what: "raw digests",
                ..
            })
        ));
    }
}
