//! Who may change a key's policy: a quorum of security officers, with
//! versions that only move forward.
//!
//! A node accepts a signed document only if all of these hold, checked in
//! this order:
//!
//! | check | refusal |
//! |---|---|
//! | the node's officer configuration is sound (1 ≤ quorum ≤ officers) | [`GovernanceError::InvalidOfficers`] |
//! | the document validates | [`GovernanceError::InvalidDocument`] |
//! | the node holds the key | [`GovernanceError::UnknownKey`] |
//! | its version is greater than the one in force (any version ≥ 1 over the configured default) | [`GovernanceError::Rollback`] |
//! | every valid signature is an officer's | [`GovernanceError::UnknownOfficer`] |
//! | distinct officers signed, at least the quorum | [`GovernanceError::TooFewSignatures`] |
//!
//! The caller verifies each signature (certificate chain and P-256
//! signature over [`crate::domain::policy_signing_bytes`]) and passes the
//! client names of those that verify.

use std::collections::BTreeSet;

use crate::document::{DocumentError, PolicyDocument};

/// The security officers a node trusts, and how many must sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Officers {
    /// Client names (`<name>` of `spiffe://<td>/client/<name>`).
    pub names: BTreeSet<String>,
    /// Distinct officer signatures a document needs.
    pub quorum: u16,
}

/// Why a policy update is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceError {
    #[error("invalid officer configuration: {0}")]
    InvalidOfficers(String),
    #[error("invalid policy document: {0}")]
    InvalidDocument(DocumentError),
    #[error("key {0} is not held here")]
    UnknownKey(String),
    #[error("policy version {proposed} does not supersede version {current} in force")]
    Rollback { current: u64, proposed: u64 },
    #[error("{0} is not a security officer")]
    UnknownOfficer(String),
    #[error("{have} distinct officer signatures, {need} needed")]
    TooFewSignatures { have: u16, need: u16 },
}

impl Officers {
    /// Officers `names` of whom `quorum` must sign (1 ≤ quorum ≤ officers).
    pub fn new(names: BTreeSet<String>, quorum: u16) -> Result<Self, GovernanceError> {
        let officers = Self { names, quorum };
        officers.validate()?;
        Ok(officers)
    }

    fn validate(&self) -> Result<(), GovernanceError> {
        if self.quorum == 0 || usize::from(self.quorum) > self.names.len() {
            return Err(GovernanceError::InvalidOfficers(format!(
                "the quorum must be between 1 and the {} officers, got {}",
                self.names.len(),
                self.quorum
            )));
        }
        if let Some(bad) = self.names.iter().find(|n| n.is_empty()) {
            return Err(GovernanceError::InvalidOfficers(format!(
                "officer name {bad:?} is empty"
            )));
        }
        Ok(())
    }
}

/// Decides whether `doc`, validly signed by `signed_by` (client names, may
/// repeat), replaces the version in force (`None`: the configured default).
pub fn check_update(
    officers: &Officers,
    signed_by: &[String],
    doc: &PolicyDocument,
    current_version: Option<u64>,
    key_held: bool,
) -> Result<(), GovernanceError> {
    officers.validate()?;
    doc.validate().map_err(GovernanceError::InvalidDocument)?;
    if !key_held {
        return Err(GovernanceError::UnknownKey(doc.key_id.clone()));
    }
    let current = current_version.unwrap_or(0);
    if doc.version <= current {
        return Err(GovernanceError::Rollback {
            current,
            proposed: doc.version,
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::PolicyRules;

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

    fn doc(version: u64) -> PolicyDocument {
        PolicyDocument {
            key_id: "key-abc".into(),
            version,
            rules: PolicyRules::permissive_dev(vec!["payments".into()]),
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_quorum_of_officers_may_move_the_version_forward() {
        assert_eq!(
            check_update(
                &officers(),
                &names(&["alice", "carol"]),
                &doc(3),
                Some(2),
                true
            ),
            Ok(())
        );
        assert_eq!(
            check_update(&officers(), &names(&["bob", "alice"]), &doc(1), None, true),
            Ok(())
        );
    }

    #[test]
    fn too_few_distinct_officers_are_refused_even_when_one_signs_twice() {
        assert_eq!(
            check_update(
                &officers(),
                &names(&["alice", "alice"]),
                &doc(3),
                Some(2),
                true
            ),
            Err(GovernanceError::TooFewSignatures { have: 1, need: 2 })
        );
        assert_eq!(
            check_update(&officers(), &[], &doc(3), Some(2), true),
            Err(GovernanceError::TooFewSignatures { have: 0, need: 2 })
        );
    }

    #[test]
    fn a_signature_by_someone_who_is_not_an_officer_is_refused() {
        assert_eq!(
            check_update(
                &officers(),
                &names(&["alice", "mallory", "bob"]),
                &doc(3),
                Some(2),
                true
            ),
            Err(GovernanceError::UnknownOfficer("mallory".into()))
        );
    }

    #[test]
    fn an_old_or_equal_version_is_refused_as_a_rollback() {
        let both = names(&["alice", "bob"]);
        assert_eq!(
            check_update(&officers(), &both, &doc(2), Some(2), true),
            Err(GovernanceError::Rollback {
                current: 2,
                proposed: 2
            })
        );
        assert_eq!(
            check_update(&officers(), &both, &doc(1), Some(5), true),
            Err(GovernanceError::Rollback {
                current: 5,
                proposed: 1
            })
        );
    }

    #[test]
    fn a_document_for_a_key_not_held_here_is_refused() {
        assert_eq!(
            check_update(&officers(), &names(&["alice", "bob"]), &doc(1), None, false),
            Err(GovernanceError::UnknownKey("key-abc".into()))
        );
    }

    #[test]
    fn version_zero_is_reserved_for_the_default() {
        assert_eq!(
            check_update(&officers(), &names(&["alice", "bob"]), &doc(0), None, true),
            Err(GovernanceError::InvalidDocument(
                DocumentError::ReservedVersion
            ))
        );
    }

    #[test]
    fn an_officer_quorum_of_zero_or_above_the_officers_is_refused() {
        let three: BTreeSet<String> = ["a", "b", "c"].map(String::from).into_iter().collect();
        assert!(matches!(
            Officers::new(three.clone(), 0),
            Err(GovernanceError::InvalidOfficers(_))
        ));
        assert!(matches!(
            Officers::new(three.clone(), 4),
            Err(GovernanceError::InvalidOfficers(_))
        ));
        // Built around `new`, it still refuses to approve anything.
        let unsound = Officers {
            names: three,
            quorum: 0,
        };
        assert!(matches!(
            check_update(&unsound, &[], &doc(1), None, true),
            Err(GovernanceError::InvalidOfficers(_))
        ));
    }
}
