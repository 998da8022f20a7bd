//! Checks of a decoded intent that need no key material: its fields are well
//! formed, it is not expired, it does not reach too far into the future, and
//! it is for the key and path the caller is about to sign with.
//!
//! Signatures are not verified here: the caller verifies the requester's
//! certificate chain and its P-256 signature over
//! [`crate::domain::intent_signing_bytes`] with its own TLS trust store, and
//! decodes the intent bytes exactly as they were signed ([`decode_intent`]).
//!
//! | check | refusal |
//! |---|---|
//! | `intent_id`: 8–128 printable ASCII, no spaces | [`IntentError::InvalidIntentId`] |
//! | `idempotency_key`: 1–128 printable ASCII, no spaces | [`IntentError::InvalidIdempotencyKey`] |
//! | `key_id`: 1–128 printable ASCII, no spaces | [`IntentError::InvalidKeyId`] |
//! | a payload with a kind | [`IntentError::MissingPayload`] |
//! | `not_after + clock_skew >= now` | [`IntentError::Expired`] |
//! | `not_after <= now + max_window + clock_skew` | [`IntentError::WindowTooLong`] |
//! | key id and derivation path are the ones signed with ([`check_matches`]) | [`IntentError::KeyMismatch`], [`IntentError::PathMismatch`] |

use std::time::Duration;

use prost::Message as _;
use sigil_proto::v1 as pb;

/// How far an intent's validity may reach, and the clock difference
/// tolerated between requesters and this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntentLimits {
    /// Longest accepted `not_after` from now (default 10 minutes).
    pub max_window: Duration,
    /// Clock difference tolerated either way (default 30 seconds).
    pub clock_skew: Duration,
}

impl Default for IntentLimits {
    fn default() -> Self {
        Self {
            max_window: Duration::from_secs(600),
            clock_skew: Duration::from_secs(30),
        }
    }
}

/// Why an intent is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    #[error("the intent does not decode as sigil.v1.Intent: {0}")]
    Decode(String),
    #[error("intent_id must be 8-128 printable ASCII characters without spaces, got {0:?}")]
    InvalidIntentId(String),
    #[error(
        "the intent's idempotency_key must be 1-128 printable ASCII characters without spaces, got {0:?}"
    )]
    InvalidIdempotencyKey(String),
    #[error(
        "the intent's key_id must be 1-128 printable ASCII characters without spaces, got {0:?}"
    )]
    InvalidKeyId(String),
    #[error("the intent has no payload")]
    MissingPayload,
    #[error("intent expired {} ago", Ms(*ago_ms))]
    Expired { ago_ms: u64 },
    #[error(
        "intent is valid for another {}, longer than the {} accepted",
        Ms(*ahead_ms),
        Ms(*max_ms)
    )]
    WindowTooLong { ahead_ms: u64, max_ms: u64 },
    #[error("intent is for key {intent}, not {expected}")]
    KeyMismatch { intent: String, expected: String },
    #[error("intent is for derivation path {intent:?}, not {expected:?}")]
    PathMismatch { intent: String, expected: String },
}

/// Milliseconds, written for a person.
struct Ms(u64);

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            ms if ms < 1_000 => write!(f, "{ms} ms"),
            ms if ms < 120_000 => write!(f, "{} s", ms / 1_000),
            ms => write!(f, "{} min {} s", ms / 60_000, (ms % 60_000) / 1_000),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// 1-128 printable ASCII characters without spaces.
fn token(s: &str, min: usize) -> bool {
    (min..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Decodes the intent bytes exactly as they were signed.
pub fn decode_intent(bytes: &[u8]) -> Result<pb::Intent, IntentError> {
    pb::Intent::decode(bytes).map_err(|e| IntentError::Decode(e.to_string()))
}

/// Checks an intent's fields and validity window at `now_unix_ms`.
pub fn check_intent(
    intent: &pb::Intent,
    now_unix_ms: u64,
    limits: &IntentLimits,
) -> Result<(), IntentError> {
    if !token(&intent.intent_id, 8) {
        return Err(IntentError::InvalidIntentId(intent.intent_id.clone()));
    }
    if !token(&intent.idempotency_key, 1) {
        return Err(IntentError::InvalidIdempotencyKey(
            intent.idempotency_key.clone(),
        ));
    }
    if !token(&intent.key_id, 1) {
        return Err(IntentError::InvalidKeyId(intent.key_id.clone()));
    }
    if intent
        .payload
        .as_ref()
        .and_then(|p| p.kind.as_ref())
        .is_none()
    {
        return Err(IntentError::MissingPayload);
    }
    let skew = millis(limits.clock_skew);
    let not_after = intent.not_after_unix_ms;
    if not_after.saturating_add(skew) < now_unix_ms {
        return Err(IntentError::Expired {
            ago_ms: now_unix_ms - not_after,
        });
    }
    let max = millis(limits.max_window);
    if not_after > now_unix_ms.saturating_add(max).saturating_add(skew) {
        return Err(IntentError::WindowTooLong {
            ahead_ms: not_after - now_unix_ms,
            max_ms: max,
        });
    }
    Ok(())
}

/// Checks that the intent is for `key_id` and `derivation_path` (empty: the key itself).
pub fn check_matches(
    intent: &pb::Intent,
    key_id: &str,
    derivation_path: &str,
) -> Result<(), IntentError> {
    if intent.key_id != key_id {
        return Err(IntentError::KeyMismatch {
            intent: intent.key_id.clone(),
            expected: key_id.to_owned(),
        });
    }
    if intent.derivation_path != derivation_path {
        return Err(IntentError::PathMismatch {
            intent: intent.derivation_path.clone(),
            expected: derivation_path.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000_000;

    fn intent() -> pb::Intent {
        pb::Intent {
            intent_id: "0b6d9c3e-5f7a-4c1e-9d2b-8a4f6e1c3d5b".into(),
            requester: "spiffe://sigil.test/client/payments".into(),
            key_id: "key-abc".into(),
            derivation_path: "m/0/7".into(),
            payload: Some(pb::Payload {
                kind: Some(pb::payload::Kind::RawDigest(vec![1; 32])),
            }),
            idempotency_key: "pay-42".into(),
            not_after_unix_ms: NOW + 300_000,
        }
    }

    #[test]
    fn a_well_formed_intent_inside_its_window_passes_and_round_trips() {
        let i = intent();
        assert_eq!(check_intent(&i, NOW, &IntentLimits::default()), Ok(()));
        assert_eq!(decode_intent(&i.encode_to_vec()), Ok(i.clone()));
        assert_eq!(check_matches(&i, "key-abc", "m/0/7"), Ok(()));
    }

    #[test]
    fn garbage_bytes_do_not_decode_as_an_intent() {
        assert!(matches!(
            decode_intent(&[0xff, 0xff, 0xff]),
            Err(IntentError::Decode(_))
        ));
    }

    #[test]
    fn malformed_ids_are_refused_each_with_its_own_reason() {
        let limits = IntentLimits::default();
        for bad in ["short", "has a space in it", "ünïcödé-id", &"x".repeat(129)] {
            let i = pb::Intent {
                intent_id: bad.to_owned(),
                ..intent()
            };
            assert_eq!(
                check_intent(&i, NOW, &limits),
                Err(IntentError::InvalidIntentId(bad.to_owned()))
            );
        }
        let i = pb::Intent {
            idempotency_key: String::new(),
            ..intent()
        };
        assert_eq!(
            check_intent(&i, NOW, &limits),
            Err(IntentError::InvalidIdempotencyKey(String::new()))
        );
        let i = pb::Intent {
            key_id: String::new(),
            ..intent()
        };
        assert_eq!(
            check_intent(&i, NOW, &limits),
            Err(IntentError::InvalidKeyId(String::new()))
        );
    }

    #[test]
    fn an_intent_without_payload_kind_is_refused() {
        for payload in [None, Some(pb::Payload { kind: None })] {
            let i = pb::Intent {
                payload,
                ..intent()
            };
            assert_eq!(
                check_intent(&i, NOW, &IntentLimits::default()),
                Err(IntentError::MissingPayload)
            );
        }
    }

    #[test]
    fn an_intent_expired_beyond_the_skew_is_refused_saying_how_long_ago() {
        let limits = IntentLimits::default();
        let i = pb::Intent {
            not_after_unix_ms: NOW - 42_000,
            ..intent()
        };
        let err = check_intent(&i, NOW, &limits);
        assert_eq!(err, Err(IntentError::Expired { ago_ms: 42_000 }));
        assert_eq!(
            err.expect_err("expired").to_string(),
            "intent expired 42 s ago"
        );
        // Within the skew it is still accepted.
        let i = pb::Intent {
            not_after_unix_ms: NOW - 30_000,
            ..intent()
        };
        assert_eq!(check_intent(&i, NOW, &limits), Ok(()));
    }

    #[test]
    fn an_intent_reaching_past_the_window_is_refused() {
        let limits = IntentLimits::default();
        let at_limit = pb::Intent {
            not_after_unix_ms: NOW + 630_000,
            ..intent()
        };
        assert_eq!(check_intent(&at_limit, NOW, &limits), Ok(()));
        let i = pb::Intent {
            not_after_unix_ms: NOW + 630_001,
            ..intent()
        };
        assert_eq!(
            check_intent(&i, NOW, &limits),
            Err(IntentError::WindowTooLong {
                ahead_ms: 630_001,
                max_ms: 600_000
            })
        );
        let far = pb::Intent {
            not_after_unix_ms: u64::MAX,
            ..intent()
        };
        assert!(matches!(
            check_intent(&far, NOW, &limits),
            Err(IntentError::WindowTooLong { .. })
        ));
    }

    #[test]
    fn an_intent_for_another_key_or_path_is_refused_naming_both() {
        let i = intent();
        let err = check_matches(&i, "key-xyz", "m/0/7");
        assert_eq!(
            err,
            Err(IntentError::KeyMismatch {
                intent: "key-abc".into(),
                expected: "key-xyz".into()
            })
        );
        assert_eq!(
            err.expect_err("mismatch").to_string(),
            "intent is for key key-abc, not key-xyz"
        );
        assert_eq!(
            check_matches(&i, "key-abc", ""),
            Err(IntentError::PathMismatch {
                intent: "m/0/7".into(),
                expected: String::new()
            })
        );
    }
}
