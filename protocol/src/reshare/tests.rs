//! Unit tests of the redistribution state machine, with every party run
//! in-process through a small local router (no envelope: these tests model
//! misbehaving *parties*, whose messages the envelope would sign faithfully).
//! Each test body is written once, generically, and instantiated for
//! secp256k1, Taproot and Ed25519 by `per_curve!`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use frost_core::keys::{KeyPackage, SigningShare, VerifyingShare};
use frost_core::{Ciphersuite, Element, Field, Group, Identifier, Scalar, VerifyingKey};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::math::{
    ScalarField, Secret, base_mul, element_len, encode_element, evaluate, from_signing_share,
    lagrange_at_zero, random_nonzero, to_signing_share, x_scalar,
};
use super::{Committee, Coordinates, Vsr, VsrOutput, VsrParams};
use crate::engine::ReshareKind;
use crate::{Message, NodeId, Protocol, ProtocolError, Recipient, Scheme, SessionId, Transition};

fn n(id: u16) -> NodeId {
    NodeId::new(id).expect("nonzero")
}

fn nodes(ids: &[u16]) -> Vec<NodeId> {
    ids.iter().map(|i| n(*i)).collect()
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn session() -> SessionId {
    SessionId::from_bytes([0x5e; 16])
}

fn by_id(ids: &[u16], threshold: u16) -> Committee {
    Committee::new(&nodes(ids), Coordinates::NodeId, threshold).expect("committee")
}

/// A Shamir sharing made by a trusted dealer (test only).
struct Sharing<C: Ciphersuite> {
    secret: Scalar<C>,
    committee: Committee,
    shares: BTreeMap<NodeId, SigningShare<C>>,
    verifying_shares: BTreeMap<NodeId, Element<C>>,
    group_key: Element<C>,
}

fn share_secret<C: Ciphersuite>(committee: Committee, seed: u64) -> Sharing<C> {
    let mut rng = rng(seed);
    let coefficients: Vec<Secret<C>> = (0..committee.threshold())
        .map(|_| random_nonzero::<C, _>(&mut rng))
        .collect();
    let mut shares = BTreeMap::new();
    let mut verifying_shares = BTreeMap::new();
    for (node, x) in committee.coordinates() {
        let s = evaluate(&coefficients, &x_scalar::<C>(*x).expect("x"));
        shares.insert(*node, *to_signing_share(&s).expect("share"));
        verifying_shares.insert(*node, base_mul::<C>(&s.0));
    }
    Sharing {
        secret: coefficients[0].0,
        group_key: base_mul::<C>(&coefficients[0].0),
        committee,
        shares,
        verifying_shares,
    }
}

fn params<C: Ciphersuite>(
    kind: ReshareKind,
    session: SessionId,
    me: NodeId,
    sharing: &Sharing<C>,
    dealers: &[NodeId],
    new: &Committee,
) -> VsrParams<C> {
    VsrParams {
        scheme: Scheme::FrostSecp256k1,
        kind,
        session,
        me,
        old: sharing.committee.clone(),
        dealers: dealers.to_vec(),
        new: new.clone(),
        group_key: sharing.group_key,
        verifying_shares: sharing.verifying_shares.clone(),
    }
}

/// Every party of a session (dealers ∪ new participants), constructed.
fn parties<C: Ciphersuite>(
    kind: ReshareKind,
    session: SessionId,
    sharing: &Sharing<C>,
    dealers: &[NodeId],
    new: &Committee,
    seed: u64,
) -> BTreeMap<NodeId, Vsr<C>> {
    let mut rng = rng(seed);
    let all: BTreeSet<NodeId> = dealers.iter().copied().chain(new.nodes()).collect();
    all.into_iter()
        .map(|me| {
            let share = dealers
                .contains(&me)
                .then(|| sharing.shares.get(&me).expect("dealer share"));
            let vsr = Vsr::new(
                params(kind, session, me, sharing, dealers, new),
                share,
                &mut rng,
            )
            .expect("valid parameters");
            (me, vsr)
        })
        .collect()
}

type Inboxes = BTreeMap<NodeId, Vec<Message>>;

/// Routes one round: broadcasts to every other party, direct messages to their recipient.
fn route(ids: &[NodeId], outbox: Vec<Message>) -> Inboxes {
    let mut inboxes: Inboxes = ids.iter().map(|id| (*id, Vec::new())).collect();
    for m in outbox {
        match m.to {
            Recipient::Broadcast => {
                for (id, inbox) in inboxes.iter_mut() {
                    if *id != m.from {
                        inbox.push(m.clone());
                    }
                }
            }
            Recipient::Node(to) => inboxes.get_mut(&to).expect("recipient").push(m),
            Recipient::Coordinator => panic!("no coordinator messages in a redistribution"),
        }
    }
    inboxes
}

/// Runs every party to completion. `tamper` sees each round's inboxes
/// (1-based round of the messages) before delivery. Stops at the first
/// round in which any party fails and returns every failure of that round.
fn run<C: Ciphersuite>(
    mut parties: BTreeMap<NodeId, Vsr<C>>,
    mut tamper: impl FnMut(u16, &mut Inboxes),
) -> Result<BTreeMap<NodeId, VsrOutput<C>>, BTreeMap<NodeId, ProtocolError>> {
    let ids: Vec<NodeId> = parties.keys().copied().collect();
    let mut outbox = Vec::new();
    for p in parties.values_mut() {
        outbox.extend(p.start().expect("start"));
    }
    let mut round = 1;
    loop {
        let mut inboxes = route(&ids, outbox);
        tamper(round, &mut inboxes);
        outbox = Vec::new();
        let mut errors = BTreeMap::new();
        let mut outputs = BTreeMap::new();
        for (id, p) in parties.iter_mut() {
            assert_eq!(p.expected_round(), round);
            match p.step(inboxes.remove(id).unwrap_or_default()) {
                Ok(Transition::Continue(m)) => outbox.extend(m),
                Ok(Transition::Finished { messages, output }) => {
                    assert!(messages.is_empty());
                    outputs.insert(*id, output);
                }
                Err(e) => {
                    errors.insert(*id, e);
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if !outputs.is_empty() {
            assert_eq!(
                outputs.len(),
                ids.len(),
                "every party finishes at the same step"
            );
            assert_eq!(round, 3, "finished after step 3");
            return Ok(outputs);
        }
        round += 1;
    }
}

/// The secret interpolated at 0 from `shares` at `coordinates` (test only).
fn interpolate<C: Ciphersuite>(
    coordinates: &BTreeMap<NodeId, u16>,
    shares: &BTreeMap<NodeId, Scalar<C>>,
) -> Scalar<C> {
    let xs: BTreeMap<NodeId, Scalar<C>> = shares
        .keys()
        .map(|node| (*node, x_scalar::<C>(coordinates[node]).expect("x")))
        .collect();
    shares
        .iter()
        .fold(<ScalarField<C>>::zero(), |acc, (node, s)| {
            acc + lagrange_at_zero::<C>(&xs, *node).expect("λ") * *s
        })
}

fn new_shares<C: Ciphersuite>(
    outputs: &BTreeMap<NodeId, VsrOutput<C>>,
) -> BTreeMap<NodeId, Scalar<C>> {
    outputs
        .iter()
        .filter_map(|(node, o)| {
            o.share
                .as_ref()
                .map(|s| (*node, from_signing_share(s).expect("scalar").0))
        })
        .collect()
}

/// Every subset of `items` of size `k`.
fn subsets<T: Copy>(items: &[T], k: usize) -> Vec<Vec<T>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    if items.len() < k {
        return Vec::new();
    }
    let mut out = subsets(&items[1..], k);
    for mut rest in subsets(&items[1..], k - 1) {
        rest.insert(0, items[0]);
        out.push(rest);
    }
    out
}

/// Checks a finished redistribution: everyone agrees on the public output,
/// the group key is unchanged, `Y'_j = s'_j·G`, exactly the new
/// participants hold shares, every `t'`-subset reconstructs the secret and
/// no `(t' − 1)`-subset does.
fn check_outputs<C: Ciphersuite>(
    sharing: &Sharing<C>,
    new: &Committee,
    outputs: &BTreeMap<NodeId, VsrOutput<C>>,
) {
    let first = outputs.values().next().expect("an output");
    for (node, o) in outputs {
        assert!(o.group_key == sharing.group_key, "group key unchanged");
        assert!(o.group_commitment[0] == sharing.group_key, "Σ C_i0 = Y");
        assert_eq!(o.group_commitment.len(), usize::from(new.threshold()));
        assert!(o.verifying_shares == first.verifying_shares);
        assert!(o.group_commitment == first.group_commitment);
        assert_eq!(o.threshold, new.threshold());
        assert_eq!(&o.participants, new);
        assert_eq!(o.share.is_some(), new.contains(*node), "{node}");
    }
    let shares = new_shares(outputs);
    assert_eq!(shares.len(), new.len());
    for (node, s) in &shares {
        assert!(
            first.verifying_shares[node] == base_mul::<C>(s),
            "Y'_j = s'_j·G"
        );
    }
    let ids: Vec<NodeId> = new.nodes().collect();
    let t = usize::from(new.threshold());
    for subset in subsets(&ids, t) {
        let chosen = subset.iter().map(|id| (*id, shares[id])).collect();
        assert!(interpolate::<C>(new.coordinates(), &chosen) == sharing.secret);
    }
    for subset in subsets(&ids, t - 1) {
        let chosen = subset.iter().map(|id| (*id, shares[id])).collect();
        assert!(interpolate::<C>(new.coordinates(), &chosen) != sharing.secret);
    }
}

fn reshare<C: Ciphersuite>(
    kind: ReshareKind,
    old: Committee,
    dealers: &[u16],
    new: Committee,
    seed: u64,
) -> (Sharing<C>, BTreeMap<NodeId, VsrOutput<C>>) {
    let sharing = share_secret::<C>(old, seed);
    let parties = parties(kind, session(), &sharing, &nodes(dealers), &new, seed + 1);
    let outputs = run(parties, |_, _| {}).expect("honest redistribution");
    check_outputs(&sharing, &new, &outputs);
    (sharing, outputs)
}

// ---------------------------------------------------------------------------
// Honest runs and the equations
// ---------------------------------------------------------------------------

/// The equations, one by one: Σ_{i∈D} w_i reconstructs the secret; Σ C_{i,0}
/// = Y; Y'_j = s'_j·G; and (FROST coordinates) frost-core's own
/// `reconstruct` agrees with the new shares.
fn equations<C: Ciphersuite>() {
    let old = by_id(&[1, 2, 3], 2);
    let new = by_id(&[1, 2, 3, 4, 5], 3);
    let (sharing, outputs) = reshare::<C>(ReshareKind::Reshare, old, &[1, 3], new, 10);

    // w_i = λ_i(D)·s_i sum to the secret.
    let dealer_xs: BTreeMap<NodeId, Scalar<C>> = [1u16, 3]
        .iter()
        .map(|i| (n(*i), x_scalar::<C>(*i).expect("x")))
        .collect();
    let w_sum = dealer_xs
        .keys()
        .fold(<ScalarField<C>>::zero(), |acc, node| {
            let s = from_signing_share(&sharing.shares[node]).expect("share").0;
            acc + lagrange_at_zero::<C>(&dealer_xs, *node).expect("λ") * s
        });
    assert!(w_sum == sharing.secret);

    // frost-core reconstructs the same key from any 3 new key packages.
    let out = outputs.values().next().expect("output");
    let verifying_key =
        VerifyingKey::<C>::deserialize(&encode_element::<C>(&out.group_key).expect("Y"))
            .expect("key");
    let packages: Vec<KeyPackage<C>> = [2u16, 4, 5]
        .iter()
        .map(|i| {
            let o = &outputs[&n(*i)];
            let y = encode_element::<C>(&out.verifying_shares[&n(*i)]).expect("Y'");
            KeyPackage::new(
                Identifier::try_from(*i).expect("id"),
                **o.share.as_ref().expect("share"),
                VerifyingShare::deserialize(&y).expect("share"),
                verifying_key,
                3,
            )
        })
        .collect();
    let key = frost_core::keys::reconstruct(&packages).expect("reconstruct");
    assert!(key.to_scalar() == sharing.secret);
}

fn refresh_keeps_the_key_and_changes_every_share<C: Ciphersuite>() {
    let committee = by_id(&[1, 2, 3], 2);
    let (sharing, outputs) = reshare::<C>(
        ReshareKind::Refresh,
        committee.clone(),
        &[1, 2, 3],
        committee,
        20,
    );
    for (node, s) in new_shares(&outputs) {
        let old = from_signing_share(&sharing.shares[&node]).expect("share").0;
        assert!(s != old, "{node} got a fresh share");
    }
    // Old and new shares do not mix.
    let old1 = from_signing_share(&sharing.shares[&n(1)]).expect("share").0;
    let mixed = BTreeMap::from([(n(1), old1), (n(2), new_shares(&outputs)[&n(2)])]);
    assert!(interpolate::<C>(sharing.committee.coordinates(), &mixed) != sharing.secret);
}

fn refresh_with_a_threshold_of_dealers<C: Ciphersuite>() {
    let committee = by_id(&[1, 2, 3, 4, 5], 3);
    reshare::<C>(
        ReshareKind::Refresh,
        committee.clone(),
        &[2, 4, 5],
        committee,
        30,
    );
}

fn two_of_three_to_three_of_five<C: Ciphersuite>() {
    reshare::<C>(
        ReshareKind::Reshare,
        by_id(&[1, 2, 3], 2),
        &[1, 2],
        by_id(&[1, 2, 3, 4, 5], 3),
        40,
    );
}

fn three_of_five_to_two_of_three<C: Ciphersuite>() {
    reshare::<C>(
        ReshareKind::Reshare,
        by_id(&[1, 2, 3, 4, 5], 3),
        &[1, 4, 5],
        by_id(&[1, 2, 3], 2),
        50,
    );
}

/// {1,2,3} → {1,3,4}: node 2 deals but leaves with no share.
fn replace_a_node<C: Ciphersuite>() {
    let (_, outputs) = reshare::<C>(
        ReshareKind::Reshare,
        by_id(&[1, 2, 3], 2),
        &[1, 2],
        by_id(&[1, 3, 4], 2),
        60,
    );
    assert!(outputs[&n(2)].share.is_none());
}

/// {1,2,3} → {4,5,6}: every dealer leaves; every new participant is new.
fn disjoint_new_set<C: Ciphersuite>() {
    let (_, outputs) = reshare::<C>(
        ReshareKind::Reshare,
        by_id(&[1, 2, 3], 2),
        &[1, 2, 3],
        by_id(&[4, 5, 6], 2),
        70,
    );
    for dealer in [1, 2, 3] {
        assert!(outputs[&n(dealer)].share.is_none());
    }
}

/// Position coordinates (Sigil's DKLs23 ECDSA keys) with sparse node ids:
/// {3,7,9} at x = 1,2,3 → {3,9,12,20} at x = 1,2,3,4.
fn position_coordinates<C: Ciphersuite>() {
    let old = Committee::new(&nodes(&[9, 3, 7]), Coordinates::Position, 2).expect("old");
    assert_eq!(
        old.coordinates(),
        &BTreeMap::from([(n(3), 1), (n(7), 2), (n(9), 3)])
    );
    let new = Committee::new(&nodes(&[3, 9, 12, 20]), Coordinates::Position, 3).expect("new");
    assert_eq!(new.coordinate(n(20)), Some(4));
    reshare::<C>(ReshareKind::Reshare, old, &[7, 9], new, 80);
}

/// Explicit coordinates: any non-zero, distinct x per node.
fn explicit_coordinates<C: Ciphersuite>() {
    let old = Committee::from_coordinates(BTreeMap::from([(n(1), 100), (n(2), 7), (n(3), 9)]), 2)
        .expect("old");
    let new = Committee::from_coordinates(BTreeMap::from([(n(2), 65535), (n(4), 1), (n(5), 2)]), 2)
        .expect("new");
    reshare::<C>(ReshareKind::Reshare, old, &[1, 3], new, 90);
}

// ---------------------------------------------------------------------------
// Misbehaving dealers
// ---------------------------------------------------------------------------

fn misbehaviour(culprit: u16, errors: &BTreeMap<NodeId, ProtocolError>, what: &str) {
    assert!(!errors.is_empty());
    for (node, e) in errors {
        match e {
            ProtocolError::Misbehaviour { culprits, reason } => {
                assert_eq!(culprits, &vec![n(culprit)], "at {node}: {reason}");
                assert!(reason.contains(what), "at {node}: {reason}");
            }
            other => panic!("{node}: expected misbehaviour by {culprit}, got {other:?}"),
        }
    }
}

fn malformed(culprit: u16, errors: &BTreeMap<NodeId, ProtocolError>, what: &str) {
    assert!(!errors.is_empty());
    for (node, e) in errors {
        match e {
            ProtocolError::Malformed { from, reason } => {
                assert_eq!(*from, n(culprit), "at {node}: {reason}");
                assert!(reason.contains(what), "at {node}: {reason}");
            }
            other => panic!("{node}: expected {culprit} to be blamed, got {other:?}"),
        }
    }
}

/// A 2-of-3 → 3-of-4 reshare by dealers {1, 2}: the setting of the attacks.
struct Attack<C: Ciphersuite> {
    sharing: Sharing<C>,
    new: Committee,
    parties: BTreeMap<NodeId, Vsr<C>>,
}

fn attack<C: Ciphersuite>(seed: u64) -> Attack<C> {
    let sharing = share_secret::<C>(by_id(&[1, 2, 3], 2), seed);
    let new = by_id(&[1, 2, 3, 4], 3);
    let parties = parties(
        ReshareKind::Reshare,
        session(),
        &sharing,
        &nodes(&[1, 2]),
        &new,
        seed + 1,
    );
    Attack {
        sharing,
        new,
        parties,
    }
}

impl<C: Ciphersuite> Attack<C> {
    /// `w_i = λ_i(D)·s_i` of dealer `i`.
    fn w(&self, dealer: u16) -> Secret<C> {
        let xs: BTreeMap<NodeId, Scalar<C>> = [1u16, 2]
            .iter()
            .map(|i| (n(*i), x_scalar::<C>(*i).expect("x")))
            .collect();
        let s = from_signing_share(&self.sharing.shares[&n(dealer)]).expect("share");
        Secret(lagrange_at_zero::<C>(&xs, n(dealer)).expect("λ") * s.0)
    }

    fn dealer(&mut self, dealer: u16) -> &mut Vsr<C> {
        self.parties.get_mut(&n(dealer)).expect("dealer")
    }

    /// Another valid deal of dealer 2 (same parameters, other randomness):
    /// its vector's encoding and round-1 hash.
    fn other_deal_of_2(&self, seed: u64) -> (Vec<u8>, [u8; 32]) {
        let me = n(2);
        let share = self.sharing.shares.get(&me);
        let params = params(
            ReshareKind::Reshare,
            session(),
            me,
            &self.sharing,
            &nodes(&[1, 2]),
            &self.new,
        );
        let other = Vsr::new(params, share, &mut rng(seed)).expect("valid");
        let encoded = other.deal_encoding().expect("a dealer");
        let hash = other.commitment_hash(me, &encoded);
        (encoded, hash)
    }
}

fn inconsistent_subshare_is_pinned_on_its_dealer<C: Ciphersuite>() {
    let mut a = attack::<C>(100);
    a.dealer(2)
        .tamper_subshare(n(4), |s| s.0 = s.0 + <ScalarField<C>>::one());
    let errors = run(a.parties, |_, _| {}).expect_err("refused");
    // Only the victim can tell; it refuses the share and names the dealer.
    assert_eq!(errors.keys().copied().collect::<Vec<_>>(), vec![n(4)]);
    misbehaviour(2, &errors, "subshare does not match");
}

fn constant_term_other_than_lambda_y_is_refused<C: Ciphersuite>() {
    let mut a = attack::<C>(110);
    // A consistent deal of a secret that is not the dealer's share.
    let mut r = rng(111);
    let coefficients: Vec<Secret<C>> = (0..3).map(|_| random_nonzero::<C, _>(&mut r)).collect();
    a.dealer(2).replace_polynomial(&coefficients);
    let errors = run(a.parties, |_, _| {}).expect_err("refused");
    // A public check: every party (the dealer too) refuses at the same step.
    assert_eq!(errors.len(), 4);
    misbehaviour(2, &errors, "constant-term");
}

fn wrong_number_of_coefficients_is_refused<C: Ciphersuite>() {
    for count in [2usize, 4] {
        let mut a = attack::<C>(120 + count as u64);
        // The right constant term, but a polynomial of degree t' − 2 or t'.
        let mut r = rng(121);
        let mut coefficients = vec![a.w(2)];
        coefficients.extend((1..count).map(|_| random_nonzero::<C, _>(&mut r)));
        a.dealer(2).replace_polynomial(&coefficients);
        let errors = run(a.parties, |_, _| {}).expect_err("refused");
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            nodes(&[1, 3, 4]),
            "everyone else refuses at step 2"
        );
        misbehaviour(
            2,
            &errors,
            &format!("{count} coefficients, expected 3: it would change the threshold"),
        );
    }
}

fn a_dealer_that_reveals_another_vector_than_it_committed_to<C: Ciphersuite>() {
    let a = attack::<C>(130);
    let (other, _) = a.other_deal_of_2(131);
    let errors = run(a.parties, |round, inboxes| {
        if round == 2 {
            for inbox in inboxes.values_mut() {
                for m in inbox.iter_mut() {
                    if m.from == n(2) && m.to == Recipient::Broadcast {
                        m.payload.truncate(32);
                        m.payload.extend_from_slice(&other);
                    }
                }
            }
        }
    })
    .expect_err("refused");
    assert_eq!(
        errors.keys().copied().collect::<Vec<_>>(),
        nodes(&[1, 3, 4])
    );
    misbehaviour(2, &errors, "does not match its round-1 hash");
}

/// Dealer 2 shows vector A (and its hash) to nodes 1 and 3, and vector B
/// (and its hash) to node 4: the round-1 echoes differ.
fn a_dealer_showing_different_vectors_is_caught_by_the_echo<C: Ciphersuite>() {
    let a = attack::<C>(140);
    let (other, other_hash) = a.other_deal_of_2(141);
    let errors = run(a.parties, |round, inboxes| {
        let inbox = inboxes.get_mut(&n(4)).expect("node 4");
        for m in inbox.iter_mut() {
            if m.from == n(2) && m.to == Recipient::Broadcast {
                if round == 1 {
                    m.payload = other_hash.to_vec();
                } else if round == 2 {
                    m.payload.truncate(32);
                    m.payload.extend_from_slice(&other);
                }
            }
        }
    })
    .expect_err("refused");
    assert_eq!(errors.len(), 4, "every party refuses at step 2: {errors:?}");
    assert_eq!(
        errors[&n(4)],
        ProtocolError::InconsistentBroadcast {
            parties: nodes(&[1, 2, 3])
        }
    );
    for node in [1, 2, 3] {
        assert_eq!(
            errors[&n(node)],
            ProtocolError::InconsistentBroadcast {
                parties: nodes(&[4])
            }
        );
    }
}

/// Node 3 lies in its round-3 echo (its view of the revealed vectors).
fn a_lying_echo_is_an_inconsistent_broadcast<C: Ciphersuite>() {
    let a = attack::<C>(150);
    let errors = run(a.parties, |round, inboxes| {
        if round == 3 {
            for inbox in inboxes.values_mut() {
                for m in inbox.iter_mut().filter(|m| m.from == n(3)) {
                    m.payload[0] ^= 1;
                }
            }
        }
    })
    .expect_err("refused");
    assert_eq!(
        errors.keys().copied().collect::<Vec<_>>(),
        nodes(&[1, 2, 4])
    );
    for e in errors.values() {
        assert_eq!(
            e,
            &ProtocolError::InconsistentBroadcast {
                parties: nodes(&[3])
            }
        );
    }
}

/// A point encoding that no ciphersuite accepts: all 0xff (a bad SEC1 tag
/// for secp256k1, a non-canonical y for Ed25519).
fn bad_point<C: Ciphersuite>() -> Vec<u8> {
    vec![0xff; element_len::<C>().expect("len")]
}

/// Dealer 2 commits to (round 1) and reveals (round 2) `vector`.
fn reveal<C: Ciphersuite>(vector: Vec<u8>) -> BTreeMap<NodeId, ProtocolError> {
    let mut a = attack::<C>(160);
    a.dealer(2).replace_encoding(vector);
    let errors = run(a.parties, |_, _| {}).expect_err("refused");
    assert_eq!(
        errors.keys().copied().collect::<Vec<_>>(),
        nodes(&[1, 3, 4])
    );
    errors
}

fn non_canonical_points_are_malformed<C: Ciphersuite>() {
    let a = attack::<C>(160);
    let honest = a.parties[&n(2)].deal_encoding().expect("dealer");
    let len = element_len::<C>().expect("len");

    // A non-canonical point in place of C_{2,1}.
    let mut vector = honest.clone();
    vector[len..2 * len].copy_from_slice(&bad_point::<C>());
    malformed(2, &reveal::<C>(vector), "commitment coefficient 1");

    // Not a whole number of points.
    let mut vector = honest.clone();
    vector.push(0);
    malformed(2, &reveal::<C>(vector), "not a sequence");

    // Nothing at all.
    malformed(2, &reveal::<C>(Vec::new()), "not a sequence");
}

fn non_canonical_subshares_are_malformed<C: Ciphersuite>() {
    let scalar_len = <ScalarField<C>>::serialize(&<ScalarField<C>>::one())
        .as_ref()
        .len();
    for payload in [vec![0xff; scalar_len], vec![1; scalar_len - 1], Vec::new()] {
        let a = attack::<C>(170);
        let errors = run(a.parties, |round, inboxes| {
            if round == 2 {
                for m in inboxes.get_mut(&n(4)).expect("node 4").iter_mut() {
                    if m.from == n(2) && m.to == Recipient::Node(n(4)) {
                        m.payload = payload.clone();
                    }
                }
            }
        })
        .expect_err("refused");
        assert_eq!(errors.keys().copied().collect::<Vec<_>>(), nodes(&[4]));
        malformed(2, &errors, "subshare is not a canonical scalar");
    }
}

/// Messages of another session (e.g. replayed from an earlier run) are refused.
fn messages_of_another_session_are_refused<C: Ciphersuite>() {
    // An earlier session among the same parties.
    let earlier = attack::<C>(180);
    let mut earlier_parties = earlier.parties;
    let replayed: Vec<Message> = earlier_parties
        .get_mut(&n(1))
        .expect("dealer")
        .start()
        .expect("start");
    assert_eq!(replayed.len(), 1);

    let sharing = share_secret::<C>(by_id(&[1, 2, 3], 2), 180);
    let new = by_id(&[1, 2, 3, 4], 3);
    let session = SessionId::from_bytes([0x77; 16]);
    let parties = parties(
        ReshareKind::Reshare,
        session,
        &sharing,
        &nodes(&[1, 2]),
        &new,
        181,
    );
    let errors = run(parties, |round, inboxes| {
        if round == 1 {
            let inbox = inboxes.get_mut(&n(3)).expect("node 3");
            inbox.retain(|m| m.from != n(1));
            inbox.push(replayed[0].clone());
        }
    })
    .expect_err("refused");
    assert_eq!(
        errors,
        BTreeMap::from([(n(3), ProtocolError::WrongSession { from: n(1) })])
    );
}

/// A party that is not a dealer has nothing to send in round 1.
fn an_uninvited_round1_message_is_blamed_on_its_sender<C: Ciphersuite>() {
    let a = attack::<C>(190);
    let errors = run(a.parties, |round, inboxes| {
        if round == 1 {
            inboxes.get_mut(&n(1)).expect("node 1").push(Message {
                session: session(),
                round: 1,
                from: n(4),
                to: Recipient::Broadcast,
                payload: vec![0; 32],
            });
        }
    })
    .expect_err("refused");
    assert!(matches!(
        &errors[&n(1)],
        ProtocolError::Malformed { from, .. } if *from == n(4)
    ));
}

fn missing_and_duplicate_messages_are_refused<C: Ciphersuite>() {
    let a = attack::<C>(200);
    let errors = run(a.parties, |round, inboxes| {
        if round == 2 {
            inboxes
                .get_mut(&n(4))
                .expect("node 4")
                .retain(|m| !(m.from == n(1) && m.to == Recipient::Node(n(4))));
            let inbox = inboxes.get_mut(&n(3)).expect("node 3");
            let copy = inbox[0].clone();
            inbox.push(copy);
        }
    })
    .expect_err("refused");
    assert_eq!(
        errors[&n(4)],
        ProtocolError::Missing {
            missing: nodes(&[1])
        }
    );
    assert!(matches!(errors[&n(3)], ProtocolError::Duplicate { .. }));
}

// ---------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------

fn invalid(result: Result<impl std::fmt::Debug, ProtocolError>, what: &str) {
    match result {
        Err(ProtocolError::InvalidParameters(reason)) => {
            assert!(
                reason.contains(what),
                "{reason:?} does not mention {what:?}"
            );
        }
        other => panic!("expected invalid parameters ({what}), got {other:?}"),
    }
}

fn parameters_are_validated<C: Ciphersuite>() {
    // Identifiers and sets.
    invalid(NodeId::new(0), "node id 0");
    invalid(
        Committee::new(&nodes(&[1, 2, 2]), Coordinates::NodeId, 2),
        "appears twice",
    );
    invalid(Committee::new(&[], Coordinates::NodeId, 2), "empty");
    invalid(
        Committee::from_coordinates(BTreeMap::from([(n(1), 0), (n(2), 2)]), 2),
        "x-coordinate 0",
    );
    invalid(
        Committee::from_coordinates(BTreeMap::from([(n(1), 5), (n(2), 5)]), 2),
        "used twice",
    );
    for t in [0, 1, 4] {
        invalid(
            Committee::new(&nodes(&[1, 2, 3]), Coordinates::NodeId, t),
            "threshold",
        );
    }

    let sharing = share_secret::<C>(by_id(&[1, 2, 3], 2), 210);
    let new = by_id(&[1, 2, 3, 4], 3);
    let build =
        |kind, me: u16, dealers: &[u16], new: &Committee, share: Option<&SigningShare<C>>| {
            Vsr::new(
                params(kind, session(), n(me), &sharing, &nodes(dealers), new),
                share,
                &mut rng(211),
            )
        };
    let share1 = sharing.shares.get(&n(1));
    invalid(
        build(ReshareKind::Reshare, 1, &[1, 1], &new, share1),
        "twice among the dealers",
    );
    invalid(
        build(ReshareKind::Reshare, 1, &[1, 4], &new, share1),
        "dealer node-4 is not a participant",
    );
    invalid(
        build(ReshareKind::Reshare, 1, &[1], &new, share1),
        "1 dealers cannot redistribute a key with threshold 2",
    );
    invalid(
        build(ReshareKind::Reshare, 5, &[1, 2], &new, None),
        "neither a dealer nor a new participant",
    );
    invalid(
        build(ReshareKind::Reshare, 1, &[1, 2], &new, None),
        "needs its current share",
    );
    invalid(
        build(
            ReshareKind::Reshare,
            1,
            &[1, 2],
            &new,
            sharing.shares.get(&n(2)),
        ),
        "does not match its verifying share",
    );
    // A refresh keeps the set and the threshold.
    let refresh = "a refresh cannot change the threshold or the participant set";
    invalid(
        build(ReshareKind::Refresh, 1, &[1, 2], &new, share1),
        refresh,
    );
    invalid(
        build(
            ReshareKind::Refresh,
            1,
            &[1, 2],
            &by_id(&[1, 2, 3], 3),
            share1,
        ),
        refresh,
    );
    invalid(
        build(
            ReshareKind::Refresh,
            1,
            &[1, 2],
            &by_id(&[1, 2, 4], 2),
            share1,
        ),
        refresh,
    );
    assert!(
        build(
            ReshareKind::Refresh,
            1,
            &[1, 2],
            &by_id(&[1, 2, 3], 2),
            share1
        )
        .is_ok()
    );

    // Verifying shares that do not belong to the group key, or are missing.
    let mut wrong = params(
        ReshareKind::Reshare,
        session(),
        n(3),
        &sharing,
        &nodes(&[1, 2]),
        &new,
    );
    wrong.group_key = base_mul::<C>(&<ScalarField<C>>::one());
    invalid(Vsr::new(wrong, None, &mut rng(1)), "do not interpolate");
    let mut missing = params(
        ReshareKind::Reshare,
        session(),
        n(3),
        &sharing,
        &nodes(&[1, 2]),
        &new,
    );
    missing.verifying_shares.remove(&n(2));
    invalid(
        Vsr::new(missing, None, &mut rng(1)),
        "no verifying share of dealer node-2",
    );
}

fn out_of_order_use_is_refused<C: Ciphersuite>() {
    let mut a = attack::<C>(220);
    assert!(matches!(
        a.dealer(1).step(Vec::new()),
        Err(ProtocolError::OutOfOrder(_))
    ));
    let mut a = attack::<C>(220);
    let vsr = a.dealer(2);
    vsr.start().expect("start");
    assert!(matches!(vsr.start(), Err(ProtocolError::OutOfOrder(_))));
    let mut a = attack::<C>(220);
    let vsr = a.dealer(1);
    vsr.start().expect("start");
    // Round 1 without dealer 2's hash fails, and leaves nothing to step again.
    assert_eq!(
        vsr.step(Vec::new()).err(),
        Some(ProtocolError::Missing {
            missing: nodes(&[2])
        })
    );
    assert!(matches!(
        vsr.step(Vec::new()),
        Err(ProtocolError::OutOfOrder(_))
    ));
    assert_eq!(vsr.expected_round(), 4);
}

fn debug_output_never_prints_secrets<C: Ciphersuite>() {
    let (_, outputs) = reshare::<C>(
        ReshareKind::Reshare,
        by_id(&[1, 2, 3], 2),
        &[1, 2],
        by_id(&[1, 2, 3], 2),
        230,
    );
    let out = &outputs[&n(1)];
    let share = out.share.as_ref().expect("share").serialize();
    let debug = format!("{out:?}");
    assert!(debug.contains("redacted"), "{debug}");
    assert!(!debug.contains(&hex::encode(share)), "{debug}");
    let a = attack::<C>(231);
    assert!(!format!("{:?}", a.parties[&n(1)]).is_empty());
}

macro_rules! per_curve {
    ($($test:ident),* $(,)?) => {
        mod secp256k1 {
            $(#[test] fn $test() { super::$test::<frost_secp256k1::Secp256K1Sha256>(); })*
        }
        mod taproot {
            $(#[test] fn $test() { super::$test::<frost_secp256k1_tr::Secp256K1Sha256TR>(); })*
        }
        mod ed25519 {
            $(#[test] fn $test() { super::$test::<frost_ed25519::Ed25519Sha512>(); })*
        }
    };
}

per_curve!(
    equations,
    refresh_keeps_the_key_and_changes_every_share,
    refresh_with_a_threshold_of_dealers,
    two_of_three_to_three_of_five,
    three_of_five_to_two_of_three,
    replace_a_node,
    disjoint_new_set,
    position_coordinates,
    explicit_coordinates,
    inconsistent_subshare_is_pinned_on_its_dealer,
    constant_term_other_than_lambda_y_is_refused,
    wrong_number_of_coefficients_is_refused,
    a_dealer_that_reveals_another_vector_than_it_committed_to,
    a_dealer_showing_different_vectors_is_caught_by_the_echo,
    a_lying_echo_is_an_inconsistent_broadcast,
    non_canonical_points_are_malformed,
    non_canonical_subshares_are_malformed,
    messages_of_another_session_are_refused,
    an_uninvited_round1_message_is_blamed_on_its_sender,
    missing_and_duplicate_messages_are_refused,
    parameters_are_validated,
    out_of_order_use_is_refused,
    debug_output_never_prints_secrets,
);

/// The identity is refused as a commitment coefficient (Ed25519 has an
/// encoding for it; secp256k1's 33-byte encodings have none).
#[test]
fn the_identity_point_is_malformed() {
    type C = frost_ed25519::Ed25519Sha512;
    let mut identity = vec![0u8; 32];
    identity[0] = 1;
    let a = attack::<C>(240);
    let mut vector = a.parties[&n(2)].deal_encoding().expect("dealer");
    vector[..32].copy_from_slice(&identity);
    malformed(2, &reveal::<C>(vector), "identity");
    // The encoding helper refuses to encode it.
    assert!(encode_element::<C>(&<<C as Ciphersuite>::Group as Group>::identity()).is_err());
}
