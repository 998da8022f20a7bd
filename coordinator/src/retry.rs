//! The retry, quorum and blame policy of one signing session chain, without
//! I/O: which nodes the next quorum must avoid, what an attempt's outcome
//! changes, and which error ends the request.
//!
//! [`RetryPlan`] holds what one part of a signing request has learned so
//! far — the key's standing exclusions and DKLs23 bans, nodes left out
//! during this request, the culprits named, the quorums whose output did
//! not combine — and decides from it alone. Quorum selection (zones, health,
//! rotation) stays with the caller, passed in as a function of the nodes to
//! avoid; running the sessions, recording exclusions and auditing stay with
//! [`crate::signing`]. Keeping the decisions here makes every path of the
//! policy testable without a cluster.
//!
//! The rules:
//!
//! - Nodes that do not answer or refuse are avoided for the rest of the
//!   request; fewer than the threshold left fails `UNAVAILABLE`, naming the
//!   nodes waited on and those barred by exclusions or bans.
//! - A node named as a cheater is avoided and the request retried once; a
//!   second misbehaviour, or no honest quorum left, fails with
//!   `Misbehaviour` naming every culprit.
//! - A quorum whose output does not combine, with nobody to blame (DKLs23
//!   final values), is followed by a quorum not tried yet that leaves out
//!   one member of the first failed quorum; none left fails `ABORTED`. Such
//!   a failure excludes nobody: which member was at fault cannot be told,
//!   and guessing it (say, the node common to the failed quorums) lets a
//!   malicious node steer the blame onto an honest one. The caller records
//!   it as an unattributed fault instead ([`RetryPlan::unattributed_fault`]).
//! - At most [`MAX_ATTEMPTS`] sessions per part.

use std::collections::BTreeSet;

use sigil_protocol::SessionId;

use crate::CoordinatorError;

/// Signing attempts per request part (the first, plus retries after
/// unavailable, misbehaving or unattributed failures).
pub const MAX_ATTEMPTS: usize = 3;

/// How one signing attempt ended. `S` is what a successful attempt yields.
#[derive(Debug)]
pub enum Outcome<S> {
    /// The quorum signed.
    Signed(S),
    /// These nodes did not answer or refused: avoid them for this request.
    Unavailable { nodes: Vec<u16>, reason: String },
    /// A protocol named these nodes as cheaters: avoid them, retry once.
    Misbehaved { nodes: Vec<u16>, reason: String },
    /// The quorum's output did not combine and nobody can be named: try
    /// another quorum.
    Unattributed {
        quorum: Vec<u16>,
        session: SessionId,
        reason: String,
    },
    /// Not retried (a node's refusal of the intent, an audit failure, …).
    Fatal(CoordinatorError),
}

/// What to do after an attempt.
#[derive(Debug)]
pub enum Verdict<S> {
    /// Signed: return it.
    Done(S),
    /// Ask [`RetryPlan::next_quorum`] for another quorum.
    Retry,
    /// Give up with this error.
    Fail(CoordinatorError),
}

/// Quorums whose output did not combine, with nobody to blame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnattributedFault {
    /// The failed quorums, in the order they were tried.
    pub quorums: Vec<Vec<u16>>,
    /// The session of the first of them.
    pub session: SessionId,
    /// Why the last of them failed.
    pub reason: String,
}

#[derive(Clone, Debug)]
struct Failed {
    quorum: Vec<u16>,
    session: SessionId,
    reason: String,
}

/// The retry state of one signing request part (see the module docs).
#[derive(Clone, Debug)]
pub struct RetryPlan {
    threshold: u16,
    /// The key's standing exclusions (bans included).
    standing: BTreeSet<u16>,
    /// The standing exclusions that are DKLs23 bans.
    bans: BTreeSet<u16>,
    /// Nodes no quorum of this request may include: the standing
    /// exclusions and the nodes left out since.
    avoid: BTreeSet<u16>,
    culprits: BTreeSet<u16>,
    retried_after_misbehaviour: bool,
    unattributed: Vec<Failed>,
    last_reason: String,
    attempts: usize,
}

impl RetryPlan {
    /// A plan for a key of `threshold` whose standing exclusions are
    /// `exclusions`: `(node, is a DKLs23 ban)`, as the store lists them.
    pub fn new(threshold: u16, exclusions: impl IntoIterator<Item = (u16, bool)>) -> Self {
        let mut standing = BTreeSet::new();
        let mut bans = BTreeSet::new();
        for (node, ban) in exclusions {
            standing.insert(node);
            if ban {
                bans.insert(node);
            }
        }
        Self {
            threshold,
            avoid: standing.clone(),
            standing,
            bans,
            culprits: BTreeSet::new(),
            retried_after_misbehaviour: false,
            unattributed: Vec::new(),
            last_reason: String::new(),
            attempts: 0,
        }
    }

    /// Nodes the next quorum must not include (nor, for spend receipts, be asked).
    pub fn avoid(&self) -> &BTreeSet<u16> {
        &self.avoid
    }

    /// Nodes named as cheaters during this request.
    pub fn culprits(&self) -> &BTreeSet<u16> {
        &self.culprits
    }

    /// Attempts recorded so far.
    pub fn attempts(&self) -> usize {
        self.attempts
    }

    /// The quorum of the next attempt, or the error that ends the request.
    ///
    /// `select` chooses a quorum of the key that avoids the nodes given
    /// (`Ok`: its ids), or says which participants are unusable (`Err`).
    /// After an unattributed failure, the quorum is one not tried yet that
    /// leaves out one member of the first failed quorum (each in turn).
    pub fn next_quorum(
        &self,
        mut select: impl FnMut(&BTreeSet<u16>) -> Result<Vec<u16>, Vec<u16>>,
    ) -> Result<Vec<u16>, CoordinatorError> {
        if self.attempts >= MAX_ATTEMPTS {
            return Err(self.exhausted());
        }
        let selected = match self.unattributed.first() {
            Some(failed) => self.untried_quorum(&failed.quorum, &mut select),
            None => select(&self.avoid),
        };
        selected.map_err(|unusable| self.no_quorum(&unusable))
    }

    /// A quorum not tried yet that leaves out one member of `failed` (each
    /// in turn), so an unattributable fault of one signer is avoided.
    fn untried_quorum(
        &self,
        failed: &[u16],
        select: &mut impl FnMut(&BTreeSet<u16>) -> Result<Vec<u16>, Vec<u16>>,
    ) -> Result<Vec<u16>, Vec<u16>> {
        for node in failed {
            let mut without = self.avoid.clone();
            without.insert(*node);
            if let Ok(quorum) = select(&without)
                && !self.unattributed.iter().any(|f| f.quorum == quorum)
            {
                return Ok(quorum);
            }
        }
        Err(failed.to_vec())
    }

    /// Takes in how an attempt ended and says what comes next.
    pub fn record<S>(&mut self, outcome: Outcome<S>) -> Verdict<S> {
        self.attempts += 1;
        match outcome {
            Outcome::Signed(signed) => return Verdict::Done(signed),
            Outcome::Fatal(e) => return Verdict::Fail(e),
            Outcome::Unavailable { nodes, reason } => {
                self.avoid.extend(nodes);
                self.last_reason = reason;
            }
            Outcome::Misbehaved { nodes, reason } => {
                self.culprits.extend(nodes.iter().copied());
                if self.retried_after_misbehaviour {
                    return Verdict::Fail(CoordinatorError::Misbehaviour {
                        culprits: self.culprits.iter().copied().collect(),
                        message: reason,
                    });
                }
                self.retried_after_misbehaviour = true;
                self.avoid.extend(nodes);
                self.last_reason = reason;
            }
            Outcome::Unattributed {
                quorum,
                session,
                reason,
            } => {
                // Nobody is avoided: the fault is not attributable.
                self.last_reason.clone_from(&reason);
                self.unattributed.push(Failed {
                    quorum,
                    session,
                    reason,
                });
            }
        }
        if self.attempts >= MAX_ATTEMPTS {
            Verdict::Fail(self.exhausted())
        } else {
            Verdict::Retry
        }
    }

    /// The quorums that failed with nobody to blame, if any did.
    pub fn unattributed_fault(&self) -> Option<UnattributedFault> {
        let first = self.unattributed.first()?;
        let last = self.unattributed.last()?;
        Some(UnattributedFault {
            quorums: self.unattributed.iter().map(|f| f.quorum.clone()).collect(),
            session: first.session,
            reason: last.reason.clone(),
        })
    }

    fn exhausted(&self) -> CoordinatorError {
        CoordinatorError::Unavailable(format!(
            "signing did not complete after {MAX_ATTEMPTS} attempts: {}",
            self.last_reason
        ))
    }

    /// The error when no quorum remains; `unusable` are the participants
    /// the selection could not use.
    fn no_quorum(&self, unusable: &[u16]) -> CoordinatorError {
        let last_reason = &self.last_reason;
        if !self.unattributed.is_empty() {
            return CoordinatorError::Aborted(format!(
                "signing failed and no other quorum is available: {last_reason}"
            ));
        }
        if !self.culprits.is_empty() {
            return CoordinatorError::Misbehaviour {
                culprits: self.culprits.iter().copied().collect(),
                message: format!("no honest quorum remains: {last_reason}"),
            };
        }
        let (banned, barred): (Vec<u16>, Vec<u16>) = unusable
            .iter()
            .copied()
            .filter(|n| self.standing.contains(n))
            .partition(|n| self.bans.contains(n));
        let mut barred = if barred.is_empty() {
            String::new()
        } else {
            format!(
                "; nodes {barred:?} are excluded after misbehaviour until an operator clears them"
            )
        };
        if !banned.is_empty() {
            barred.push_str(&format!(
                "; nodes {banned:?} are banned (DKLs23) until a key refresh or reshare"
            ));
        }
        CoordinatorError::Unavailable(format!(
            "fewer than {} of the key's nodes can sign; waited on nodes {unusable:?} ({last_reason}){barred}",
            self.threshold
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key of `threshold` over `participants`: the selection the
    /// coordinator makes, without zones or rotation (the lowest ids not avoided).
    fn lowest(
        participants: &'static [u16],
        threshold: usize,
    ) -> impl FnMut(&BTreeSet<u16>) -> Result<Vec<u16>, Vec<u16>> {
        move |avoid| {
            let usable: Vec<u16> = participants
                .iter()
                .copied()
                .filter(|n| !avoid.contains(n))
                .collect();
            if usable.len() < threshold {
                Err(participants
                    .iter()
                    .copied()
                    .filter(|n| avoid.contains(n))
                    .collect())
            } else {
                Ok(usable[..threshold].to_vec())
            }
        }
    }

    fn session(n: u8) -> SessionId {
        SessionId::from_bytes([n; 16])
    }

    fn unavailable(nodes: &[u16]) -> Outcome<()> {
        Outcome::Unavailable {
            nodes: nodes.to_vec(),
            reason: format!("nodes {nodes:?} unavailable: connection refused"),
        }
    }

    fn misbehaved(nodes: &[u16]) -> Outcome<()> {
        Outcome::Misbehaved {
            nodes: nodes.to_vec(),
            reason: format!("invalid signature share from {nodes:?}"),
        }
    }

    fn unattributed(quorum: &[u16], n: u8) -> Outcome<()> {
        Outcome::Unattributed {
            quorum: quorum.to_vec(),
            session: session(n),
            reason: "signing failed: aggregated signature does not verify".into(),
        }
    }

    #[track_caller]
    fn retry(plan: &mut RetryPlan, outcome: Outcome<()>) {
        match plan.record(outcome) {
            Verdict::Retry => {}
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[track_caller]
    fn fail(plan: &mut RetryPlan, outcome: Outcome<()>) -> CoordinatorError {
        match plan.record(outcome) {
            Verdict::Fail(e) => e,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn the_first_quorum_avoids_standing_exclusions_and_bans() {
        let plan = RetryPlan::new(2, [(1, false), (2, true)]);
        assert_eq!(plan.avoid(), &BTreeSet::from([1, 2]));
        let quorum = plan.next_quorum(lowest(&[1, 2, 3, 4], 2));
        assert_eq!(quorum.ok(), Some(vec![3, 4]));
    }

    #[test]
    fn a_signed_attempt_is_returned_as_it_is() {
        let mut plan = RetryPlan::new(2, []);
        assert_eq!(
            plan.next_quorum(lowest(&[1, 2, 3], 2)).ok(),
            Some(vec![1, 2])
        );
        match plan.record(Outcome::Signed("signature")) {
            Verdict::Done(s) => assert_eq!(s, "signature"),
            other => panic!("{other:?}"),
        }
        assert_eq!(plan.attempts(), 1);
        assert!(plan.unattributed_fault().is_none());
    }

    #[test]
    fn an_unavailable_node_is_avoided_by_the_next_quorum() {
        let mut plan = RetryPlan::new(2, []);
        let mut select = lowest(&[1, 2, 3], 2);
        assert_eq!(plan.next_quorum(&mut select).ok(), Some(vec![1, 2]));
        retry(&mut plan, unavailable(&[2]));
        assert_eq!(plan.next_quorum(&mut select).ok(), Some(vec![1, 3]));
        assert!(plan.culprits().is_empty());
    }

    #[test]
    fn too_few_answering_nodes_fail_unavailable_naming_those_waited_on() {
        let mut plan = RetryPlan::new(2, []);
        retry(&mut plan, unavailable(&[2, 3]));
        let err = plan
            .next_quorum(lowest(&[1, 2, 3], 2))
            .expect_err("a quorum of one");
        let CoordinatorError::Unavailable(message) = err else {
            panic!("{err:?}");
        };
        assert_eq!(
            message,
            "fewer than 2 of the key's nodes can sign; waited on nodes [2, 3] \
             (nodes [2, 3] unavailable: connection refused)"
        );
    }

    #[test]
    fn a_misbehaving_node_is_excluded_and_the_request_retried_once() {
        let mut plan = RetryPlan::new(2, []);
        let mut select = lowest(&[1, 2, 3, 4], 2);
        assert_eq!(plan.next_quorum(&mut select).ok(), Some(vec![1, 2]));
        retry(&mut plan, misbehaved(&[1]));
        assert_eq!(plan.avoid(), &BTreeSet::from([1]));
        assert_eq!(plan.culprits(), &BTreeSet::from([1]));
        assert_eq!(plan.next_quorum(&mut select).ok(), Some(vec![2, 3]));
    }

    #[test]
    fn a_second_misbehaviour_ends_the_request_naming_every_culprit() {
        let mut plan = RetryPlan::new(2, []);
        retry(&mut plan, misbehaved(&[3]));
        match fail(&mut plan, misbehaved(&[1])) {
            CoordinatorError::Misbehaviour { culprits, message } => {
                assert_eq!(culprits, vec![1, 3]);
                assert_eq!(message, "invalid signature share from [1]");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_quorum_left_after_misbehaviour_fails_naming_the_culprits() {
        let mut plan = RetryPlan::new(2, []);
        retry(&mut plan, misbehaved(&[1, 2]));
        match plan.next_quorum(lowest(&[1, 2, 3], 2)) {
            Err(CoordinatorError::Misbehaviour { culprits, message }) => {
                assert_eq!(culprits, vec![1, 2]);
                assert_eq!(
                    message,
                    "no honest quorum remains: invalid signature share from [1, 2]"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_quorum_left_with_exclusions_and_bans_fails_unavailable_naming_them() {
        let mut plan = RetryPlan::new(3, [(1, false), (2, true)]);
        retry(&mut plan, unavailable(&[4]));
        let err = plan
            .next_quorum(lowest(&[1, 2, 3, 4, 5], 3))
            .expect_err("a quorum of two");
        let CoordinatorError::Unavailable(message) = err else {
            panic!("{err:?}");
        };
        assert!(
            message.starts_with(
                "fewer than 3 of the key's nodes can sign; waited on nodes [1, 2, 4] \
                 (nodes [4] unavailable: connection refused)"
            ),
            "{message}"
        );
        assert!(
            message.contains(
                "; nodes [1] are excluded after misbehaviour until an operator clears them"
            ),
            "{message}"
        );
        assert!(
            message.contains("; nodes [2] are banned (DKLs23) until a key refresh or reshare"),
            "{message}"
        );
        assert!(!message.contains("[4] are"), "{message}");
    }

    #[test]
    fn an_unattributed_failure_is_followed_by_an_untried_quorum_without_one_of_its_members() {
        let mut plan = RetryPlan::new(2, []);
        let mut select = lowest(&[1, 2, 3], 2);
        assert_eq!(plan.next_quorum(&mut select).ok(), Some(vec![1, 2]));
        retry(&mut plan, unattributed(&[1, 2], 1));
        // Without node 1.
        assert_eq!(plan.next_quorum(&mut select).ok(), Some(vec![2, 3]));
        retry(&mut plan, unattributed(&[2, 3], 2));
        // Without node 1 again was tried: without node 2.
        assert_eq!(plan.next_quorum(&mut select).ok(), Some(vec![1, 3]));
    }

    #[test]
    fn an_unattributed_failure_with_no_other_quorum_aborts() {
        let mut plan = RetryPlan::new(2, []);
        retry(&mut plan, unattributed(&[1, 2], 1));
        match plan.next_quorum(lowest(&[1, 2], 2)) {
            Err(CoordinatorError::Aborted(message)) => assert_eq!(
                message,
                "signing failed and no other quorum is available: \
                 signing failed: aggregated signature does not verify"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unattributed_failure_excludes_nobody() {
        let mut plan = RetryPlan::new(2, [(4, false)]);
        retry(&mut plan, unattributed(&[1, 2], 1));
        retry(&mut plan, unattributed(&[2, 3], 2));
        assert_eq!(plan.avoid(), &BTreeSet::from([4]));
        assert!(plan.culprits().is_empty());
        assert!(matches!(
            plan.record(Outcome::Signed(())),
            Verdict::Done(())
        ));
        // What the caller records: the failed quorums, and no one named.
        assert_eq!(
            plan.unattributed_fault(),
            Some(UnattributedFault {
                quorums: vec![vec![1, 2], vec![2, 3]],
                session: session(1),
                reason: "signing failed: aggregated signature does not verify".into(),
            })
        );
        assert_eq!(plan.avoid(), &BTreeSet::from([4]));
    }

    #[test]
    fn exhausted_attempts_fail_unavailable() {
        let mut plan = RetryPlan::new(2, []);
        retry(&mut plan, unavailable(&[1]));
        retry(&mut plan, unavailable(&[2]));
        let err = fail(&mut plan, unavailable(&[3]));
        let CoordinatorError::Unavailable(message) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(
            message,
            "signing did not complete after 3 attempts: nodes [3] unavailable: connection refused"
        );
        assert_eq!(plan.attempts(), MAX_ATTEMPTS);
        assert!(matches!(
            plan.next_quorum(lowest(&[4, 5], 2)),
            Err(CoordinatorError::Unavailable(_))
        ));
    }

    #[test]
    fn a_fatal_error_passes_through() {
        let mut plan = RetryPlan::new(2, []);
        let err = fail(
            &mut plan,
            Outcome::Fatal(CoordinatorError::PermissionDenied(
                "node 1: not authorized".into(),
            )),
        );
        assert!(
            matches!(&err, CoordinatorError::PermissionDenied(m) if m == "node 1: not authorized"),
            "{err:?}"
        );
    }
}
