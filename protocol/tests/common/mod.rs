//! In-process cluster harness for the integration tests: identity keys
//! (Ed25519, standing in for the nodes' certificate keys), encryption keys,
//! and a driver that runs every party's [`SecureSession`] through
//! [`RoundRelay`] exactly as the node and coordinator will, with a hook to
//! tamper with each round's deliveries (an adversarial relay). The driver is
//! protocol-generic; FROST and ECDSA each have thin helpers on top of it.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sigil_protocol::ecdsa::{
    self, DerivationPath, EcdsaAggregator, EcdsaDkgOutput, EcdsaKeyShare, EcdsaSignature,
};
use sigil_protocol::envelope::{
    ContextKind, EncryptionKeypair, EncryptionPublicKey, IdentitySigner, PeerVerifier,
    SecureSession, SessionContext, SignedMessage,
};
use sigil_protocol::frost::{self, DkgOutput, KeyShare, SigningAggregator};
use sigil_protocol::relay::{Deliveries, RoundRelay};
use sigil_protocol::{Message, NodeId, Protocol, ProtocolError, Scheme, SessionId, Transition};

pub fn n(id: u16) -> NodeId {
    NodeId::new(id).expect("nonzero")
}

pub fn ids(count: u16) -> Vec<NodeId> {
    (1..=count).map(n).collect()
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn session(byte: u8) -> SessionId {
    SessionId::from_bytes([byte; 16])
}

/// A node's identity key.
pub struct TestIdentity {
    pub node: NodeId,
    pub key: SigningKey,
}

impl IdentitySigner for TestIdentity {
    fn node_id(&self) -> NodeId {
        self.node
    }
    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.key.sign(bytes).to_bytes().to_vec()
    }
}

/// Every node's identity public key.
pub struct TestVerifier(pub BTreeMap<NodeId, VerifyingKey>);

impl PeerVerifier for TestVerifier {
    fn verify(&self, node: NodeId, bytes: &[u8], signature: &[u8]) -> bool {
        let (Some(key), Ok(signature)) = (
            self.0.get(&node),
            ed25519_dalek::Signature::from_slice(signature),
        ) else {
            return false;
        };
        key.verify_strict(bytes, &signature).is_ok()
    }
}

/// The long-lived keys of an in-process cluster.
pub struct Cluster {
    pub nodes: Vec<NodeId>,
    pub identities: BTreeMap<NodeId, Arc<TestIdentity>>,
    pub verifier: Arc<TestVerifier>,
    pub encryption: BTreeMap<NodeId, EncryptionKeypair>,
    /// The context every party's session is told (one per cluster: the
    /// protocol tests run one kind of session over fixed parties).
    pub context: SessionContext,
}

impl Cluster {
    /// Nodes 1..=count.
    pub fn new(count: u16, rng: &mut StdRng) -> Self {
        Self::with_nodes(&ids(count), rng)
    }

    /// Exactly these nodes (e.g. sparse ids), ascending.
    pub fn with_nodes(nodes: &[NodeId], rng: &mut StdRng) -> Self {
        use rand::RngCore;
        let mut nodes = nodes.to_vec();
        nodes.sort();
        let mut identities = BTreeMap::new();
        let mut encryption = BTreeMap::new();
        for &node in &nodes {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            identities.insert(
                node,
                Arc::new(TestIdentity {
                    node,
                    key: SigningKey::from_bytes(&seed),
                }),
            );
            encryption.insert(node, EncryptionKeypair::generate(rng));
        }
        let verifier = Arc::new(TestVerifier(
            identities
                .iter()
                .map(|(n, id)| (*n, id.key.verifying_key()))
                .collect(),
        ));
        let context = SessionContext::new(
            ContextKind::Sign,
            Scheme::FrostSecp256k1,
            "test-key",
            0,
            &nodes,
        );
        Self {
            nodes,
            identities,
            verifier,
            encryption,
            context,
        }
    }

    pub fn encryption_keys(&self) -> BTreeMap<NodeId, EncryptionPublicKey> {
        self.encryption
            .iter()
            .map(|(n, k)| (*n, k.public_key()))
            .collect()
    }

    /// Signs a message as `node` (e.g. to model a node that equivocates, or
    /// to re-sign a tampered message as its claimed sender).
    pub fn sign_as(&self, node: NodeId, message: sigil_protocol::Message) -> SignedMessage {
        let signature = self.identities[&node].sign(&self.context.signing_bytes(&message));
        SignedMessage { message, signature }
    }

    pub fn secure<P: Protocol>(&self, me: NodeId, inner: P, rng: &mut StdRng) -> SecureSession<P> {
        SecureSession::new(
            inner,
            self.context,
            self.identities[&me].clone(),
            self.verifier.clone(),
            self.encryption[&me].clone(),
            self.encryption_keys(),
            rng,
        )
    }
}

/// What a run of one protocol produced.
pub struct Run<O> {
    pub outputs: BTreeMap<NodeId, O>,
    /// Each round's routed messages (index 0: round 1).
    pub rounds: Vec<Deliveries>,
}

/// Drives every party's session to completion through the relay. `tamper`
/// may alter the deliveries of each round (1-based) before they are handed
/// out. Returns the first party's error, with that party.
pub fn drive<P: Protocol>(
    session: SessionId,
    mut sessions: BTreeMap<NodeId, SecureSession<P>>,
    mut tamper: impl FnMut(u16, &mut Deliveries),
) -> Result<Run<P::Output>, (NodeId, ProtocolError)> {
    let parties: Vec<NodeId> = sessions.keys().copied().collect();
    let mut relay = RoundRelay::new(session, &parties).expect("relay");
    for (&id, s) in sessions.iter_mut() {
        let out = s.start().map_err(|e| (id, e))?;
        relay
            .collect(id, 1, out)
            .expect("honest output is routable");
    }
    let mut rounds = Vec::new();
    let mut outputs = BTreeMap::new();
    let mut round = 1;
    loop {
        let mut deliveries = relay.deliveries().expect("all outputs collected");
        tamper(round, &mut deliveries);
        let mut inbound = deliveries.inbound.clone();
        rounds.push(deliveries);
        if outputs.len() == parties.len() {
            return Ok(Run { outputs, rounds });
        }
        round += 1;
        relay = RoundRelay::new(session, &parties).expect("relay");
        for (&id, s) in sessions.iter_mut() {
            let messages = match s
                .step(inbound.remove(&id).unwrap_or_default())
                .map_err(|e| (id, e))?
            {
                Transition::Continue(messages) => messages,
                Transition::Finished { messages, output } => {
                    outputs.insert(id, output);
                    messages
                }
            };
            relay
                .collect(id, round, messages)
                .expect("honest output is routable");
        }
    }
}

/// Runs a DKG among all nodes of the cluster.
pub fn dkg_sessions(
    cluster: &Cluster,
    scheme: Scheme,
    session: SessionId,
    threshold: u16,
    rng: &mut StdRng,
) -> BTreeMap<NodeId, SecureSession<frost::DkgProtocol>> {
    cluster
        .nodes
        .iter()
        .map(|&me| {
            let dkg =
                frost::new_dkg(scheme, session, me, &cluster.nodes, threshold, rng).expect("dkg");
            (me, cluster.secure(me, dkg, rng))
        })
        .collect()
}

pub fn run_dkg(
    cluster: &Cluster,
    scheme: Scheme,
    threshold: u16,
    rng: &mut StdRng,
) -> BTreeMap<NodeId, DkgOutput> {
    let session = session(0xd1);
    let sessions = dkg_sessions(cluster, scheme, session, threshold, rng);
    drive(session, sessions, |_, _| {})
        .expect("honest DKG")
        .outputs
}

pub fn sign_sessions(
    cluster: &Cluster,
    scheme: Scheme,
    session: SessionId,
    signers: &[NodeId],
    shares: &BTreeMap<NodeId, KeyShare>,
    message: &[u8],
    rng: &mut StdRng,
) -> BTreeMap<NodeId, SecureSession<frost::SignerProtocol>> {
    signers
        .iter()
        .map(|&me| {
            let signer =
                frost::new_signer(scheme, session, me, signers, &shares[&me], message, rng)
                    .expect("signer");
            (me, cluster.secure(me, signer, rng))
        })
        .collect()
}

/// Signs `message` with `signers` and aggregates as the coordinator would.
pub fn run_sign(
    cluster: &Cluster,
    scheme: Scheme,
    signers: &[NodeId],
    dkg: &BTreeMap<NodeId, DkgOutput>,
    message: &[u8],
    rng: &mut StdRng,
) -> Result<Vec<u8>, ProtocolError> {
    let session = session(0x51);
    let shares: BTreeMap<NodeId, KeyShare> =
        dkg.iter().map(|(n, o)| (*n, o.key_share.clone())).collect();
    let sessions = sign_sessions(cluster, scheme, session, signers, &shares, message, rng);
    let run = drive(session, sessions, |_, _| {}).map_err(|(_, e)| e)?;
    let public_key_package = &dkg.values().next().expect("a node").public_key_package;
    aggregate(
        scheme,
        session,
        public_key_package,
        signers,
        message,
        &run.rounds,
    )
}

pub fn aggregate(
    scheme: Scheme,
    session: SessionId,
    public_key_package: &[u8],
    signers: &[NodeId],
    message: &[u8],
    rounds: &[Deliveries],
) -> Result<Vec<u8>, ProtocolError> {
    let mut aggregator =
        SigningAggregator::new(scheme, session, public_key_package, signers, message)?;
    aggregator.add_commitments(
        rounds[0]
            .broadcasts
            .iter()
            .map(|m| m.message.clone())
            .collect(),
    )?;
    aggregator.aggregate(
        rounds[1]
            .to_coordinator
            .iter()
            .map(|m| m.message.clone())
            .collect(),
    )
}

/// The plaintext messages of a routed round (e.g. the broadcasts or the
/// coordinator's messages of a [`Deliveries`]).
pub fn plain(signed: &[SignedMessage]) -> Vec<Message> {
    signed.iter().map(|s| s.message.clone()).collect()
}

// ---------------------------------------------------------------------------
// Threshold ECDSA (DKLs23)
// ---------------------------------------------------------------------------

/// ECDSA DKG sessions for every node of the cluster.
pub fn ecdsa_dkg_sessions(
    cluster: &Cluster,
    session: SessionId,
    threshold: u16,
    rng: &mut StdRng,
) -> BTreeMap<NodeId, SecureSession<ecdsa::EcdsaDkgProtocol>> {
    cluster
        .nodes
        .iter()
        .map(|&me| {
            let dkg = ecdsa::new_dkg(session, me, &cluster.nodes, threshold).expect("dkg");
            (me, cluster.secure(me, dkg, rng))
        })
        .collect()
}

/// Runs an honest ECDSA DKG among all nodes of the cluster.
pub fn run_ecdsa_dkg(
    cluster: &Cluster,
    threshold: u16,
    rng: &mut StdRng,
) -> BTreeMap<NodeId, EcdsaDkgOutput> {
    let session = session(0xe1);
    let sessions = ecdsa_dkg_sessions(cluster, session, threshold, rng);
    drive(session, sessions, |_, _| {})
        .expect("honest ECDSA DKG")
        .outputs
}

pub fn ecdsa_shares(dkg: &BTreeMap<NodeId, EcdsaDkgOutput>) -> BTreeMap<NodeId, EcdsaKeyShare> {
    dkg.iter().map(|(n, o)| (*n, o.key_share.clone())).collect()
}

pub fn ecdsa_sign_sessions(
    cluster: &Cluster,
    session: SessionId,
    signers: &[NodeId],
    shares: &BTreeMap<NodeId, EcdsaKeyShare>,
    digest: [u8; 32],
    path: &DerivationPath,
    rng: &mut StdRng,
) -> BTreeMap<NodeId, SecureSession<ecdsa::EcdsaSignerProtocol>> {
    signers
        .iter()
        .map(|&me| {
            let signer = ecdsa::new_signer(session, me, signers, &shares[&me], digest, path)
                .expect("signer");
            (me, cluster.secure(me, signer, rng))
        })
        .collect()
}

/// Signs `digest` (under the key derived along `path`) with `signers` and
/// aggregates as the coordinator would.
pub fn run_ecdsa_sign(
    cluster: &Cluster,
    signers: &[NodeId],
    dkg: &BTreeMap<NodeId, EcdsaDkgOutput>,
    digest: [u8; 32],
    path: &DerivationPath,
    rng: &mut StdRng,
) -> Result<EcdsaSignature, ProtocolError> {
    let session = session(0x52);
    let sessions = ecdsa_sign_sessions(
        cluster,
        session,
        signers,
        &ecdsa_shares(dkg),
        digest,
        path,
        rng,
    );
    let run = drive(session, sessions, |_, _| {}).map_err(|(_, e)| e)?;
    let public_key_package = &dkg.values().next().expect("a node").public_key_package;
    ecdsa_aggregate(
        session,
        public_key_package,
        signers,
        digest,
        path,
        &run.rounds,
    )
}

/// The coordinator's aggregation of a finished ECDSA signing run: the
/// messages addressed to it in the last round.
pub fn ecdsa_aggregate(
    session: SessionId,
    public_key_package: &[u8],
    signers: &[NodeId],
    digest: [u8; 32],
    path: &DerivationPath,
    rounds: &[Deliveries],
) -> Result<EcdsaSignature, ProtocolError> {
    let mut aggregator = EcdsaAggregator::new(session, public_key_package, signers, digest, path)?;
    let last = rounds.last().expect("a round");
    aggregator.aggregate(plain(&last.to_coordinator))
}
