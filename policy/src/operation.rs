//! Key operations the security officers authorize: refreshing and
//! resharing a key's shares, and recovery drills.
//!
//! A redistribution changes who can sign with a key, so, like a policy
//! change, it needs the officers' quorum: operators ask the coordinator, but
//! every node checks the officers' signatures against its **own** officer
//! configuration before it deals or accepts a share. A recovery drill has
//! a share restored from a backup co-sign with live nodes, so it needs the
//! same quorum before any node takes part. The document is compact
//! JSON, signed over `"sigil.v1.KeyOperation\0"` ‖ document bytes (see
//! [`crate::domain`]):
//!
//! ```json
//! {"operation":"reshare","key_id":"key-abc","from_epoch":0,
//!  "new_participants":[1,3,4],"new_threshold":2,
//!  "not_after":1767225600,"nonce":"5f0c…"}
//! ```
//!
//! | field | meaning |
//! |---|---|
//! | `operation` | `refresh` (same nodes, same threshold), `reshare`, or `drill` |
//! | `key_id` | the key |
//! | `from_epoch` | the key's current epoch: once the switch commits, the document is spent (it names an epoch that is no longer current) |
//! | `new_participants`, `new_threshold` | the nodes and threshold of the new epoch; for a drill, the drill session's signers (the restored node and live current participants, exactly the threshold of them) and the key's threshold |
//! | `not_after` | Unix seconds after which no node acts on it |
//! | `nonce` | makes each authorization distinct in the audit trail |
//!
//! [`check_operation`] is the pure decision: the session a node is asked to
//! join must be exactly what the officers signed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::governance::{GovernanceError, Officers};

/// Domain of a security officer's signature over a key operation document.
pub const OPERATION_DOMAIN: &[u8] = b"sigil.v1.KeyOperation\0";

/// What a security officer signs: [`OPERATION_DOMAIN`] ‖ the document bytes.
pub fn operation_signing_bytes(document: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OPERATION_DOMAIN.len() + document.len());
    out.extend_from_slice(OPERATION_DOMAIN);
    out.extend_from_slice(document);
    out
}

/// The kind of key operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationKind {
    /// Same participants, same threshold: fresh shares of the same key.
    Refresh,
    /// Another participant set and/or threshold.
    Reshare,
    /// A recovery drill: one signature over a drill message
    /// ([`crate::domain::drill_message`]) by a node restored from a backup
    /// and live current participants. Changes nothing about the key.
    Drill,
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Refresh => "refresh",
            Self::Reshare => "reshare",
            Self::Drill => "drill",
        })
    }
}

/// A key operation document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyOperation {
    pub operation: OperationKind,
    pub key_id: String,
    pub from_epoch: u64,
    pub new_participants: Vec<u16>,
    pub new_threshold: u16,
    /// Unix seconds.
    pub not_after: u64,
    pub nonce: String,
}

impl KeyOperation {
    /// The compact JSON the officers sign.
    pub fn to_document_bytes(&self) -> Vec<u8> {
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a document as received (no re-serialization before verifying).
    pub fn from_document_bytes(bytes: &[u8]) -> Result<Self, OperationError> {
        serde_json::from_slice(bytes).map_err(|e| OperationError::Malformed(e.to_string()))
    }
}

/// What a node is asked to do, as the session describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedOperation<'a> {
    pub kind: OperationKind,
    pub key_id: &'a str,
    /// The epoch this node holds as current (None: a node joining the key).
    pub current_epoch: Option<u64>,
    /// The epoch the session redistributes.
    pub from_epoch: u64,
    pub current_participants: &'a [u16],
    pub current_threshold: u16,
    pub new_participants: &'a [u16],
    pub new_threshold: u16,
}

/// Why a key operation is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OperationError {
    #[error("malformed key operation document: {0}")]
    Malformed(String),
    #[error("the authorization is for {what} {signed}, the request is for {requested}")]
    Mismatch {
        what: &'static str,
        signed: String,
        requested: String,
    },
    #[error("the authorization expired at {not_after} (now {now})")]
    Expired { not_after: u64, now: u64 },
    #[error(
        "key {key_id} is at epoch {current} here; the operation redistributes epoch {requested}"
    )]
    StaleEpoch {
        key_id: String,
        current: u64,
        requested: u64,
    },
    #[error("a refresh cannot change the threshold or the participant set")]
    RefreshChangesAccess,
    #[error("a drill signs with exactly the key's threshold of its current participants: {0}")]
    DrillAccess(String),
    #[error("invalid new access structure: {0}")]
    InvalidAccess(String),
    #[error(transparent)]
    Governance(#[from] GovernanceError),
}

/// Decides whether the officers' document `op`, validly signed by
/// `signed_by`, authorizes `requested` at time `now` (Unix seconds; `None`
/// when checking a finished operation, e.g. inside a commit certificate,
/// where only what was authorized matters, not when).
pub fn check_operation(
    officers: &Officers,
    signed_by: &[String],
    op: &KeyOperation,
    requested: &RequestedOperation<'_>,
    now: Option<u64>,
) -> Result<(), OperationError> {
    check_quorum(officers, signed_by)?;
    let mismatch = |what, signed: String, requested: String| {
        Err(OperationError::Mismatch {
            what,
            signed,
            requested,
        })
    };
    if op.key_id != requested.key_id {
        return mismatch("key", op.key_id.clone(), requested.key_id.to_owned());
    }
    if op.operation != requested.kind {
        return mismatch(
            "operation",
            op.operation.to_string(),
            requested.kind.to_string(),
        );
    }
    if op.from_epoch != requested.from_epoch {
        return mismatch(
            "epoch",
            op.from_epoch.to_string(),
            requested.from_epoch.to_string(),
        );
    }
    let signed_set = sorted_set(&op.new_participants)?;
    let requested_set = sorted_set(requested.new_participants)?;
    if signed_set != requested_set {
        return mismatch(
            "participants",
            format!("{signed_set:?}"),
            format!("{requested_set:?}"),
        );
    }
    if op.new_threshold != requested.new_threshold {
        return mismatch(
            "threshold",
            op.new_threshold.to_string(),
            requested.new_threshold.to_string(),
        );
    }
    if let Some(now) = now
        && now > op.not_after
    {
        return Err(OperationError::Expired {
            not_after: op.not_after,
            now,
        });
    }
    if let Some(current) = requested.current_epoch
        && current != requested.from_epoch
    {
        return Err(OperationError::StaleEpoch {
            key_id: requested.key_id.to_owned(),
            current,
            requested: requested.from_epoch,
        });
    }
    if requested.new_threshold < 2 || usize::from(requested.new_threshold) > requested_set.len() {
        return Err(OperationError::InvalidAccess(format!(
            "threshold {} of {} participants",
            requested.new_threshold,
            requested_set.len()
        )));
    }
    let current_set = sorted_set(requested.current_participants)?;
    if requested.kind == OperationKind::Refresh
        && (current_set != requested_set || requested.current_threshold != requested.new_threshold)
    {
        return Err(OperationError::RefreshChangesAccess);
    }
    if requested.kind == OperationKind::Drill {
        // The restored node signs as the participant it backs up, so every
        // signer is a current participant.
        if let Some(outsider) = requested_set.difference(&current_set).next() {
            return Err(OperationError::DrillAccess(format!(
                "node {outsider} is not a current participant {current_set:?}"
            )));
        }
        if requested.new_threshold != requested.current_threshold
            || requested_set.len() != usize::from(requested.current_threshold)
        {
            return Err(OperationError::DrillAccess(format!(
                "{} signers with threshold {} for a {}-of-{} key",
                requested_set.len(),
                requested.new_threshold,
                requested.current_threshold,
                current_set.len()
            )));
        }
    }
    Ok(())
}

/// Distinct officers among `signed_by`, at least the quorum, none unknown.
pub fn check_quorum(officers: &Officers, signed_by: &[String]) -> Result<(), GovernanceError> {
    if let Some(stranger) = signed_by.iter().find(|s| !officers.names.contains(*s)) {
        return Err(GovernanceError::UnknownOfficer(stranger.clone()));
    }
    let distinct: BTreeSet<&String> = signed_by.iter().collect();
    let have = u16::try_from(distinct.len()).unwrap_or(u16::MAX);
    if have < officers.quorum {
        return Err(GovernanceError::TooFewSignatures {
            have,
            need: officers.quorum,
        });
    }
    Ok(())
}

fn sorted_set(ids: &[u16]) -> Result<BTreeSet<u16>, OperationError> {
    let set: BTreeSet<u16> = ids.iter().copied().collect();
    if set.len() != ids.len() {
        return Err(OperationError::InvalidAccess(format!(
            "a node is listed twice in {ids:?}"
        )));
    }
    if set.contains(&0) {
        return Err(OperationError::InvalidAccess("node id 0 is invalid".into()));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn officers() -> Officers {
        Officers::new(
            ["alice", "bob", "carol"]
                .map(String::from)
                .into_iter()
                .collect(),
            2,
        )
        .expect("valid officers")
    }

    fn op(kind: OperationKind, nodes: &[u16], t: u16) -> KeyOperation {
        KeyOperation {
            operation: kind,
            key_id: "key-a".into(),
            from_epoch: 3,
            new_participants: nodes.to_vec(),
            new_threshold: t,
            not_after: 1_000,
            nonce: "n".into(),
        }
    }

    fn req<'a>(kind: OperationKind, nodes: &'a [u16], t: u16) -> RequestedOperation<'a> {
        RequestedOperation {
            kind,
            key_id: "key-a",
            current_epoch: Some(3),
            from_epoch: 3,
            current_participants: &[1, 2, 3],
            current_threshold: 2,
            new_participants: nodes,
            new_threshold: t,
        }
    }

    fn two() -> Vec<String> {
        vec!["alice".into(), "bob".into()]
    }

    #[test]
    fn a_quorum_authorizes_exactly_the_operation_it_signed() {
        let o = op(OperationKind::Reshare, &[1, 3, 4], 2);
        assert_eq!(
            check_operation(
                &officers(),
                &two(),
                &o,
                &req(OperationKind::Reshare, &[4, 3, 1], 2),
                Some(999)
            ),
            Ok(())
        );
        assert!(matches!(
            check_operation(
                &officers(),
                &two(),
                &o,
                &req(OperationKind::Reshare, &[1, 3, 5], 2),
                Some(999)
            ),
            Err(OperationError::Mismatch {
                what: "participants",
                ..
            })
        ));
        assert!(matches!(
            check_operation(
                &officers(),
                &two(),
                &o,
                &req(OperationKind::Reshare, &[1, 3, 4], 3),
                Some(999)
            ),
            Err(OperationError::Mismatch {
                what: "threshold",
                ..
            })
        ));
        assert!(matches!(
            check_operation(
                &officers(),
                &two(),
                &o,
                &req(OperationKind::Refresh, &[1, 3, 4], 2),
                Some(999)
            ),
            Err(OperationError::Mismatch {
                what: "operation",
                ..
            })
        ));
    }

    #[test]
    fn too_few_unknown_or_repeated_officers_are_refused() {
        let o = op(OperationKind::Refresh, &[1, 2, 3], 2);
        let r = req(OperationKind::Refresh, &[1, 2, 3], 2);
        assert_eq!(
            check_operation(&officers(), &["alice".into()], &o, &r, Some(1)),
            Err(OperationError::Governance(
                GovernanceError::TooFewSignatures { have: 1, need: 2 }
            ))
        );
        assert_eq!(
            check_operation(
                &officers(),
                &["alice".into(), "alice".into()],
                &o,
                &r,
                Some(1)
            ),
            Err(OperationError::Governance(
                GovernanceError::TooFewSignatures { have: 1, need: 2 }
            ))
        );
        assert_eq!(
            check_operation(
                &officers(),
                &["alice".into(), "mallory".into()],
                &o,
                &r,
                Some(1)
            ),
            Err(OperationError::Governance(GovernanceError::UnknownOfficer(
                "mallory".into()
            )))
        );
    }

    #[test]
    fn an_expired_or_spent_authorization_is_refused() {
        let o = op(OperationKind::Refresh, &[1, 2, 3], 2);
        let r = req(OperationKind::Refresh, &[1, 2, 3], 2);
        assert_eq!(
            check_operation(&officers(), &two(), &o, &r, Some(1_001)),
            Err(OperationError::Expired {
                not_after: 1_000,
                now: 1_001
            })
        );
        let moved_on = RequestedOperation {
            current_epoch: Some(4),
            ..r
        };
        assert!(matches!(
            check_operation(&officers(), &two(), &o, &moved_on, Some(1)),
            Err(OperationError::StaleEpoch {
                current: 4,
                requested: 3,
                ..
            })
        ));
    }

    #[test]
    fn a_refresh_that_changes_access_is_refused_as_a_refresh() {
        for (nodes, t) in [(&[1u16, 2, 3][..], 3u16), (&[1, 2, 4][..], 2)] {
            let o = op(OperationKind::Refresh, nodes, t);
            assert_eq!(
                check_operation(
                    &officers(),
                    &two(),
                    &o,
                    &req(OperationKind::Refresh, nodes, t),
                    Some(1)
                ),
                Err(OperationError::RefreshChangesAccess)
            );
        }
    }

    #[test]
    fn invalid_access_structures_are_refused() {
        for (nodes, t) in [
            (&[1u16, 1, 3][..], 2u16),
            (&[0, 1, 3][..], 2),
            (&[1, 3][..], 3),
            (&[1, 3][..], 1),
        ] {
            let o = op(OperationKind::Reshare, nodes, t);
            assert!(
                matches!(
                    check_operation(
                        &officers(),
                        &two(),
                        &o,
                        &req(OperationKind::Reshare, nodes, t),
                        Some(1)
                    ),
                    Err(OperationError::InvalidAccess(_))
                ),
                "{nodes:?} t={t}"
            );
        }
    }

    #[test]
    fn a_drill_signs_with_exactly_a_threshold_of_current_participants() {
        let drill = |nodes: &'static [u16], t| {
            let o = op(OperationKind::Drill, nodes, t);
            check_operation(
                &officers(),
                &two(),
                &o,
                &req(OperationKind::Drill, nodes, t),
                Some(1),
            )
        };
        assert_eq!(drill(&[1, 3], 2), Ok(()));
        assert!(matches!(
            drill(&[1, 4], 2),
            Err(OperationError::DrillAccess(_))
        ));
        assert!(matches!(
            drill(&[1, 2, 3], 2),
            Err(OperationError::DrillAccess(_))
        ));
        assert!(matches!(
            drill(&[1, 2, 3], 3),
            Err(OperationError::DrillAccess(_))
        ));
        // A drill authorization is no refresh, and the reverse.
        let o = op(OperationKind::Drill, &[1, 2], 2);
        assert!(matches!(
            check_operation(
                &officers(),
                &two(),
                &o,
                &req(OperationKind::Refresh, &[1, 2], 2),
                Some(1)
            ),
            Err(OperationError::Mismatch {
                what: "operation",
                ..
            })
        ));
        let bytes = o.to_document_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""operation":"drill""#));
    }

    #[test]
    fn documents_round_trip_and_unknown_fields_are_refused() {
        let o = op(OperationKind::Reshare, &[1, 3, 4], 2);
        let bytes = o.to_document_bytes();
        assert_eq!(KeyOperation::from_document_bytes(&bytes), Ok(o));
        assert!(matches!(
            KeyOperation::from_document_bytes(br#"{"operation":"refresh","key_id":"k","from_epoch":0,"new_participants":[1],"new_threshold":1,"not_after":1,"nonce":"","extra":1}"#),
            Err(OperationError::Malformed(_))
        ));
        assert!(operation_signing_bytes(b"{}").starts_with(b"sigil.v1.KeyOperation\0"));
    }
}
