//! What a threshold ECDSA key leaves behind: each node's secret
//! [`EcdsaKeyShare`] and the public [`EcdsaPublicKeyPackage`] the
//! coordinator stores, with their versioned, validated binary encodings.
//!
//! The share wraps a serialized dkls23 `Party` (postcard): the node's
//! Shamir share `p(i)`, the pairwise OT-based multiplication state DKLs23
//! (eprint 2023/765, §3) reuses across signatures, its zero-sharing seeds
//! and the BIP-32 chain code. Decoding any of it checks every field against
//! every other, so a share from another key, another node or another scheme
//! is refused instead of silently producing wrong signatures.
//!
//! The package also carries every participant's *verifying share*
//! `p(i)·G` (encoding version 2): what a share refresh or a redistribution
//! checks shares against, and what lets a party prove its share is current.
//! Packages written before verifying shares were kept (version 1) still
//! decode, without them.

use std::collections::BTreeMap;
use std::fmt;

use k256::elliptic_curve::sec1::ToEncodedPoint as _;
use zeroize::Zeroizing;

use super::common::{Curve, Party, Roster, decode, encode_secret, internal};
use crate::codec::{Reader, decode_share_header, encode_share};
use crate::{NodeId, ProtocolError, Scheme};

/// Length of a SEC1 compressed secp256k1 key.
pub(crate) const PUBLIC_KEY_LEN: usize = 33;

/// The public description of one threshold ECDSA key, as the coordinator
/// stores it: group key, BIP-32 chain code, threshold, participants (in
/// party-index order) and, since encoding version 2, each participant's
/// verifying share. Everything needed to derive child keys, to check and
/// aggregate signatures, and to check shares.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EcdsaPublicKeyPackage {
    public_key: [u8; PUBLIC_KEY_LEN],
    chain_code: [u8; 32],
    threshold: u16,
    participants: Vec<NodeId>,
    /// `p(i)·G` of every participant, SEC1 compressed; `None` for a
    /// version-1 package (written before verifying shares were kept).
    verifying_shares: Option<BTreeMap<NodeId, [u8; PUBLIC_KEY_LEN]>>,
}

impl fmt::Debug for EcdsaPublicKeyPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaPublicKeyPackage")
            .field("public_key", &hex::encode(self.public_key))
            .field("chain_code", &hex::encode(self.chain_code))
            .field("threshold", &self.threshold)
            .field("participants", &self.participants)
            .field(
                "verifying_shares",
                &self.verifying_shares.as_ref().map(BTreeMap::len),
            )
            .finish()
    }
}

impl EcdsaPublicKeyPackage {
    /// Magic and versions of [`EcdsaPublicKeyPackage::to_bytes`]: version 1
    /// has no verifying shares, version 2 has one per participant.
    const MAGIC: &'static [u8; 4] = b"SGPK";
    const VERSION_1: u8 = 1;
    const VERSION_2: u8 = 2;

    /// Validates and builds a package without verifying shares (as written
    /// by encoding version 1): a valid compressed key, `2 ≤ threshold ≤ n`,
    /// and 2..=255 distinct participants (any order; stored sorted).
    pub fn new(
        public_key: &[u8],
        chain_code: [u8; 32],
        threshold: u16,
        participants: &[NodeId],
    ) -> Result<Self, ProtocolError> {
        let public_key = parse_public_key(public_key)?;
        let roster = Roster::new(None, participants)?;
        check_threshold(threshold, roster.len())?;
        Ok(Self {
            public_key,
            chain_code,
            threshold,
            participants: roster.nodes().to_vec(),
            verifying_shares: None,
        })
    }

    /// Validates and builds a package with the verifying share `p(i)·G` of
    /// every participant (the participants are the map's keys): each share
    /// a valid compressed point, and all of them on one polynomial of degree
    /// below `threshold` whose value at 0 is the group key (see
    /// [`EcdsaPublicKeyPackage::check_verifying_shares`]).
    pub fn with_verifying_shares(
        public_key: &[u8],
        chain_code: [u8; 32],
        threshold: u16,
        verifying_shares: &BTreeMap<NodeId, [u8; PUBLIC_KEY_LEN]>,
    ) -> Result<Self, ProtocolError> {
        let participants: Vec<NodeId> = verifying_shares.keys().copied().collect();
        let mut package = Self::new(public_key, chain_code, threshold, &participants)?;
        let mut shares = BTreeMap::new();
        for (node, share) in verifying_shares {
            let share = parse_public_key(share).map_err(|_| {
                ProtocolError::InvalidParameters(format!(
                    "the verifying share of {node} is not a valid secp256k1 point"
                ))
            })?;
            shares.insert(*node, share);
        }
        package.verifying_shares = Some(shares);
        package.check_verifying_shares()?;
        Ok(package)
    }

    /// The group key, SEC1 compressed.
    pub fn public_key(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.public_key
    }

    /// The BIP-32 chain code agreed in the DKG.
    pub fn chain_code(&self) -> &[u8; 32] {
        &self.chain_code
    }

    /// The number of signers a signature needs (DKLs23: exactly this many).
    pub fn threshold(&self) -> u16 {
        self.threshold
    }

    /// The key's participants, ascending (party index = position + 1).
    pub fn participants(&self) -> &[NodeId] {
        &self.participants
    }

    pub(crate) fn roster(&self) -> Result<Roster, ProtocolError> {
        Roster::new(None, &self.participants)
    }

    /// The verifying share `p(i)·G` of `node` (SEC1 compressed); `None` if
    /// `node` is not a participant or the package has no verifying shares
    /// (version 1).
    pub fn verifying_share(&self, node: NodeId) -> Option<[u8; PUBLIC_KEY_LEN]> {
        self.verifying_shares.as_ref()?.get(&node).copied()
    }

    /// Every participant's verifying share, by node; `None` for a package
    /// decoded from encoding version 1, which did not keep them.
    pub fn verifying_shares(&self) -> Option<&BTreeMap<NodeId, [u8; PUBLIC_KEY_LEN]>> {
        self.verifying_shares.as_ref()
    }

    /// Checks that the verifying shares lie on one polynomial of degree
    /// below the threshold whose value at 0 is the group key (Lagrange
    /// interpolation in the exponent over every window of `t` consecutive
    /// party indices), i.e. that they are the shares of this key. Decoding
    /// does not run this check (it costs `(n − t + 1)·t` scalar
    /// multiplications); [`EcdsaPublicKeyPackage::with_verifying_shares`]
    /// and the refresh do. Fails for a package without verifying shares.
    pub fn check_verifying_shares(&self) -> Result<(), ProtocolError> {
        let shares = self.verifying_shares.as_ref().ok_or_else(|| {
            ProtocolError::InvalidParameters(
                "the ECDSA public key package has no verifying shares (version 1)".into(),
            )
        })?;
        let in_order: Vec<[u8; PUBLIC_KEY_LEN]> = self
            .participants
            .iter()
            .map(|node| {
                shares.get(node).copied().ok_or_else(|| {
                    ProtocolError::InvalidParameters(format!("no verifying share for {node}"))
                })
            })
            .collect::<Result<_, _>>()?;
        if shares.len() != in_order.len() {
            return Err(ProtocolError::InvalidParameters(
                "verifying shares of nodes that are not participants".into(),
            ));
        }
        check_share_polynomial(&self.public_key, self.threshold, &in_order)
    }

    /// Canonical encoding (public). Version 1 (no verifying shares):
    /// `"SGPK" ‖ 1 ‖ scheme tag ‖ key (33) ‖ chain code (32) ‖
    /// threshold (u16 BE) ‖ n (u16 BE) ‖ n × node id (u16 BE, ascending)`.
    /// Version 2 is version 1 with the version byte 2, followed by
    /// `n × verifying share (33, SEC1 compressed, in participant order)`.
    /// A package without verifying shares is written as version 1, so its
    /// bytes are those it was stored with.
    pub fn to_bytes(&self) -> Vec<u8> {
        let shares = self.verifying_shares.as_ref().map_or(0, BTreeMap::len);
        let mut out = Vec::with_capacity(
            6 + PUBLIC_KEY_LEN + 32 + 4 + 2 * self.participants.len() + PUBLIC_KEY_LEN * shares,
        );
        out.extend_from_slice(Self::MAGIC);
        out.push(if self.verifying_shares.is_some() {
            Self::VERSION_2
        } else {
            Self::VERSION_1
        });
        out.push(Scheme::EcdsaSecp256k1.tag());
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.chain_code);
        out.extend_from_slice(&self.threshold.to_be_bytes());
        out.extend_from_slice(&(self.participants.len() as u16).to_be_bytes());
        for node in &self.participants {
            out.extend_from_slice(&node.get().to_be_bytes());
        }
        if let Some(shares) = &self.verifying_shares {
            // One per participant (checked when built), in participant order.
            for share in shares.values() {
                out.extend_from_slice(share);
            }
        }
        out
    }

    /// Parses and validates [`EcdsaPublicKeyPackage::to_bytes`], version 1
    /// or 2; only the canonical encoding is accepted (participants strictly
    /// ascending, every verifying share a valid compressed point). The
    /// verifying shares are not interpolated here (see
    /// [`EcdsaPublicKeyPackage::check_verifying_shares`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let mut reader = Reader::new(bytes, "ECDSA public key package");
        if reader.take(4)? != Self::MAGIC {
            return Err(reader.bad("bad magic"));
        }
        let [version] = reader.array()?;
        if version != Self::VERSION_1 && version != Self::VERSION_2 {
            return Err(reader.bad(&format!("unsupported version {version}")));
        }
        let [tag] = reader.array()?;
        let scheme = Scheme::from_tag(tag)?;
        if scheme != Scheme::EcdsaSecp256k1 {
            return Err(reader.bad(&format!(
                "scheme {scheme} is not {}",
                Scheme::EcdsaSecp256k1
            )));
        }
        let public_key: [u8; PUBLIC_KEY_LEN] = reader.array()?;
        let chain_code: [u8; 32] = reader.array()?;
        let threshold = reader.u16()?;
        let count = reader.u16()?;
        let mut participants = Vec::with_capacity(usize::from(count).min(256));
        for _ in 0..count {
            participants.push(NodeId::new(reader.u16()?)?);
        }
        let mut shares = Vec::new();
        if version == Self::VERSION_2 {
            for _ in 0..count {
                shares.push(reader.array::<PUBLIC_KEY_LEN>()?);
            }
        }
        reader.finish()?;
        if participants.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ProtocolError::InvalidParameters(
                "invalid ECDSA public key package encoding: participants not strictly ascending"
                    .into(),
            ));
        }
        let mut package = Self::new(&public_key, chain_code, threshold, &participants)?;
        if version == Self::VERSION_2 {
            let mut map = BTreeMap::new();
            for (node, share) in participants.iter().zip(&shares) {
                let share = parse_public_key(share).map_err(|_| {
                    ProtocolError::InvalidParameters(format!(
                        "invalid ECDSA public key package encoding: the verifying share of {node} is not a valid secp256k1 point"
                    ))
                })?;
                map.insert(*node, share);
            }
            package.verifying_shares = Some(map);
        }
        Ok(package)
    }
}

/// Checks that `shares` (the verifying shares at party indices 1..=n, in
/// order) lie on one polynomial of degree below `threshold` whose value at 0
/// is `public_key`: for every window of `threshold` consecutive indices,
/// Lagrange interpolation at 0 in the exponent must give the group key (as
/// dkls23 checks its DKG's committed points). Two windows that overlap in
/// `t − 1` indices and agree at 0 determine the same polynomial, so all `n`
/// shares are on it. Public values only (k256 0.13).
pub(crate) fn check_share_polynomial(
    public_key: &[u8; PUBLIC_KEY_LEN],
    threshold: u16,
    shares: &[[u8; PUBLIC_KEY_LEN]],
) -> Result<(), ProtocolError> {
    let point = |bytes: &[u8]| {
        k256::PublicKey::from_sec1_bytes(bytes)
            .map(|p| p.to_projective())
            .map_err(|_| ProtocolError::InvalidParameters("invalid secp256k1 point".into()))
    };
    let key = point(public_key)?;
    let points: Vec<k256::ProjectivePoint> =
        shares.iter().map(|s| point(s)).collect::<Result<_, _>>()?;
    let t = usize::from(threshold);
    check_threshold(threshold, points.len())?;
    let x = |position: usize| k256::Scalar::from(position as u64 + 1);
    for start in 0..=(points.len() - t) {
        let window = start..start + t;
        let mut at_zero = k256::ProjectivePoint::IDENTITY;
        for j in window.clone() {
            let mut numerator = k256::Scalar::ONE;
            let mut denominator = k256::Scalar::ONE;
            for k in window.clone().filter(|k| *k != j) {
                numerator *= x(k);
                denominator *= x(k) - x(j);
            }
            // Distinct indices below the group order: never zero.
            let inverse = Option::<k256::Scalar>::from(denominator.invert())
                .ok_or_else(|| internal("zero Lagrange denominator"))?;
            at_zero += points[j] * (numerator * inverse);
        }
        if at_zero != key {
            return Err(ProtocolError::InvalidParameters(
                "the verifying shares do not interpolate to the group key".into(),
            ));
        }
    }
    Ok(())
}

/// Parses a 33-byte SEC1 compressed key that is a valid curve point.
pub(crate) fn parse_public_key(bytes: &[u8]) -> Result<[u8; PUBLIC_KEY_LEN], ProtocolError> {
    let key: [u8; PUBLIC_KEY_LEN] = bytes.try_into().map_err(|_| {
        ProtocolError::InvalidParameters(format!(
            "ECDSA public key must be 33 bytes (SEC1 compressed), got {}",
            bytes.len()
        ))
    })?;
    let point = k256::PublicKey::from_sec1_bytes(&key)
        .map_err(|_| ProtocolError::InvalidParameters("invalid secp256k1 public key".into()))?;
    // from_sec1_bytes accepts only valid points; the re-encoding pins the prefix.
    if point.to_encoded_point(true).as_bytes() != key {
        return Err(ProtocolError::InvalidParameters(
            "invalid secp256k1 public key".into(),
        ));
    }
    Ok(key)
}

/// DKLs23 needs `2 ≤ t ≤ n` (and n ≤ 255, checked by the roster).
pub(crate) fn check_threshold(threshold: u16, participants: usize) -> Result<(), ProtocolError> {
    if threshold < 2 || usize::from(threshold) > participants {
        return Err(ProtocolError::InvalidParameters(format!(
            "threshold {threshold} must be between 2 and the number of participants ({participants})"
        )));
    }
    Ok(())
}

/// One node's share of one threshold ECDSA key (secret: encrypt it at
/// rest). Its `Debug` output never shows the secret part, and the
/// serialized dkls23 party is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct EcdsaKeyShare {
    node: NodeId,
    package: EcdsaPublicKeyPackage,
    /// postcard-serialized dkls23 `Party` (secret).
    party: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for EcdsaKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaKeyShare")
            .field("scheme", &Scheme::EcdsaSecp256k1)
            .field("node", &self.node)
            .field("threshold", &self.package.threshold)
            .field("participants", &self.package.participants)
            .field("public_key", &hex::encode(self.package.public_key))
            .field("party", &"<redacted>")
            .finish()
    }
}

impl EcdsaKeyShare {
    /// Wraps a dkls23 party after checking it against the package.
    pub(crate) fn from_party(
        node: NodeId,
        package: EcdsaPublicKeyPackage,
        party: &Party,
    ) -> Result<Self, ProtocolError> {
        check_party(node, &package, party)?;
        Ok(Self {
            node,
            package,
            party: encode_secret(party)?,
        })
    }

    /// Always [`Scheme::EcdsaSecp256k1`].
    pub fn scheme(&self) -> Scheme {
        Scheme::EcdsaSecp256k1
    }

    /// The node holding this share.
    pub fn node_id(&self) -> NodeId {
        self.node
    }

    /// The number of signers a signature needs.
    pub fn threshold(&self) -> u16 {
        self.package.threshold
    }

    /// The key's participants, ascending.
    pub fn participants(&self) -> &[NodeId] {
        &self.package.participants
    }

    /// The group key, 33-byte SEC1 compressed.
    pub fn public_key(&self) -> &[u8] {
        &self.package.public_key
    }

    /// The BIP-32 chain code of the group key.
    pub fn chain_code(&self) -> &[u8; 32] {
        &self.package.chain_code
    }

    /// The canonical public key package (as in [`super::EcdsaDkgOutput::public_key_package`]).
    pub fn public_key_package(&self) -> Vec<u8> {
        self.package.to_bytes()
    }

    /// The public key package, decoded.
    pub fn package(&self) -> &EcdsaPublicKeyPackage {
        &self.package
    }

    /// The dkls23 party (secret; zeroized on drop), checked again.
    pub(crate) fn party(&self) -> Result<Box<Party>, ProtocolError> {
        let party: Box<Party> = Box::new(decode(&self.party).map_err(|e| {
            ProtocolError::InvalidParameters(format!("invalid key share: dkls23 party: {e}"))
        })?);
        check_party(self.node, &self.package, &party)?;
        Ok(party)
    }

    /// Versioned, scheme-tagged encoding (secret: encrypt it at rest): the
    /// key-share envelope shared with FROST (`codec::encode_share`, the
    /// scheme tag tells them apart) with two parts, the public key package
    /// and the postcard-encoded dkls23 party.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let package = self.package.to_bytes();
        encode_share(
            Scheme::EcdsaSecp256k1,
            self.node,
            &[&package, self.party.as_slice()],
        )
    }

    /// Parses and validates [`EcdsaKeyShare::to_bytes`]: the package, the
    /// dkls23 party, and that they belong together and to `node`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let (scheme, node, mut reader) = decode_share_header(bytes)?;
        if scheme != Scheme::EcdsaSecp256k1 {
            return Err(reader.bad(&format!(
                "scheme {scheme} is not {}",
                Scheme::EcdsaSecp256k1
            )));
        }
        let package = EcdsaPublicKeyPackage::from_bytes(reader.chunk()?)?;
        let party = Zeroizing::new(reader.chunk()?.to_vec());
        reader.finish()?;
        let share = Self {
            node,
            package,
            party,
        };
        share.party()?;
        Ok(share)
    }
}

/// Checks that a dkls23 party is `node`'s share of the key in `package`.
fn check_party(
    node: NodeId,
    package: &EcdsaPublicKeyPackage,
    party: &Party,
) -> Result<(), ProtocolError> {
    let bad = |what: &str| ProtocolError::InvalidParameters(format!("invalid key share: {what}"));
    let roster = package.roster()?;
    let index = roster
        .index(node)
        .map_err(|_| bad(&format!("{node} is not a participant of this key")))?;
    if party.party_index != index {
        return Err(bad("dkls23 party belongs to another node"));
    }
    if usize::from(party.parameters.share_count) != roster.len()
        || u16::from(party.parameters.threshold) != package.threshold
    {
        return Err(bad(
            "dkls23 parameters disagree with the public key package",
        ));
    }
    let pk = dkls23::utilities::hashes::point_to_bytes::<Curve>(&party.pk);
    let data = &party.derivation_data;
    if pk != package.public_key
        || data.pk != party.pk
        || data.poly_point != party.poly_point
        || data.chain_code != package.chain_code
        || data.depth != 0
    {
        return Err(bad("dkls23 party is not the master share of this key"));
    }
    if let Some(expected) = package.verifying_share(node) {
        let point = (k256_dkls23::ProjectivePoint::GENERATOR * party.poly_point).to_affine();
        if dkls23::utilities::hashes::point_to_bytes::<Curve>(&point) != expected {
            return Err(bad(
                "dkls23 party does not match its verifying share in the public key package",
            ));
        }
    }
    let others: Vec<_> = roster
        .nodes()
        .iter()
        .filter(|n| **n != node)
        .map(|n| roster.index(*n))
        .collect::<Result<_, _>>()
        .map_err(internal)?;
    if !party.mul_senders.keys().eq(others.iter()) || !party.mul_receivers.keys().eq(others.iter())
    {
        return Err(bad(
            "dkls23 multiplication state does not match the participants",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: u16) -> NodeId {
        NodeId::new(id).expect("nonzero")
    }

    /// The generator, compressed.
    const G: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    #[test]
    fn package_round_trips_canonically() {
        let key = hex::decode(G).expect("hex");
        let package =
            EcdsaPublicKeyPackage::new(&key, [7; 32], 2, &[n(9), n(2), n(5)]).expect("package");
        assert_eq!(package.participants(), &[n(2), n(5), n(9)]);
        let bytes = package.to_bytes();
        assert_eq!(bytes.len(), 4 + 1 + 1 + 33 + 32 + 2 + 2 + 6);
        assert_eq!(EcdsaPublicKeyPackage::from_bytes(&bytes), Ok(package));
    }

    #[test]
    fn package_refuses_invalid_values_and_garbage() {
        let key = hex::decode(G).expect("hex");
        assert!(EcdsaPublicKeyPackage::new(&key, [0; 32], 1, &[n(1), n(2)]).is_err());
        assert!(EcdsaPublicKeyPackage::new(&key, [0; 32], 3, &[n(1), n(2)]).is_err());
        assert!(EcdsaPublicKeyPackage::new(&key, [0; 32], 2, &[n(1), n(1)]).is_err());
        assert!(EcdsaPublicKeyPackage::new(&key[1..], [0; 32], 2, &[n(1), n(2)]).is_err());
        let mut not_on_curve = key.clone();
        not_on_curve[1..].copy_from_slice(&[0xff; 32]);
        assert!(EcdsaPublicKeyPackage::new(&not_on_curve, [0; 32], 2, &[n(1), n(2)]).is_err());
        let uncompressed = k256::PublicKey::from_sec1_bytes(&key)
            .expect("key")
            .to_encoded_point(false);
        assert!(
            EcdsaPublicKeyPackage::new(uncompressed.as_bytes(), [0; 32], 2, &[n(1), n(2)]).is_err()
        );

        let good = EcdsaPublicKeyPackage::new(&key, [7; 32], 2, &[n(1), n(2), n(3)])
            .expect("package")
            .to_bytes();
        // Every truncation, a trailing byte, every single-bit flip of the header.
        for len in 0..good.len() {
            assert!(EcdsaPublicKeyPackage::from_bytes(&good[..len]).is_err());
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(EcdsaPublicKeyPackage::from_bytes(&longer).is_err());
        for byte in 0..6 {
            let mut flipped = good.clone();
            flipped[byte] ^= 1;
            assert!(
                EcdsaPublicKeyPackage::from_bytes(&flipped).is_err(),
                "byte {byte}"
            );
        }
        // Participants out of order or zero.
        let mut unsorted = good.clone();
        let len = unsorted.len();
        unsorted[len - 6..].copy_from_slice(&[0, 2, 0, 1, 0, 3]);
        assert!(EcdsaPublicKeyPackage::from_bytes(&unsorted).is_err());
        let mut zero = good;
        zero[len - 6..len - 4].copy_from_slice(&[0, 0]);
        assert!(EcdsaPublicKeyPackage::from_bytes(&zero).is_err());
    }

    #[test]
    fn key_share_encoding_rejects_garbage() {
        for bytes in [
            &b""[..],
            b"SGKS",
            b"SGKS\x01\x04\x00\x01",
            b"SGKS\x02\x04\x00\x01\0\0\0\0\0\0\0\0",
            b"SGKS\x01\x01\x00\x01\0\0\0\0\0\0\0\0",
            b"XXXX\x01\x04\x00\x01\0\0\0\0\0\0\0\0",
        ] {
            assert!(matches!(
                EcdsaKeyShare::from_bytes(bytes),
                Err(ProtocolError::InvalidParameters(_))
            ));
        }
    }

    /// Verifying shares `(a0 + a1·x + a2·x²)·G` at x = 1..=n and the key `a0·G`.
    fn shares_of(coefficients: &[u64], nodes: &[NodeId]) -> ([u8; 33], BTreeMap<NodeId, [u8; 33]>) {
        let point = |s: k256::Scalar| -> [u8; 33] {
            let p = (k256::ProjectivePoint::GENERATOR * s).to_affine();
            p.to_encoded_point(true)
                .as_bytes()
                .try_into()
                .expect("33 bytes")
        };
        let eval = |x: u64| {
            coefficients
                .iter()
                .rev()
                .fold(k256::Scalar::ZERO, |acc, c| {
                    acc * k256::Scalar::from(x) + k256::Scalar::from(*c)
                })
        };
        let shares = nodes
            .iter()
            .zip(1u64..)
            .map(|(node, x)| (*node, point(eval(x))))
            .collect();
        (point(eval(0)), shares)
    }

    #[test]
    fn package_with_verifying_shares_round_trips_as_version_2() {
        let nodes = [n(2), n(5), n(9), n(11)];
        let (key, shares) = shares_of(&[7, 11, 13], &nodes);
        let package = EcdsaPublicKeyPackage::with_verifying_shares(&key, [7; 32], 3, &shares)
            .expect("package");
        assert_eq!(package.participants(), &nodes);
        assert_eq!(package.verifying_shares(), Some(&shares));
        assert_eq!(package.verifying_share(n(9)), shares.get(&n(9)).copied());
        assert_eq!(package.verifying_share(n(3)), None);
        let bytes = package.to_bytes();
        assert_eq!(bytes[4], 2, "version 2");
        assert_eq!(bytes.len(), 4 + 1 + 1 + 33 + 32 + 2 + 2 + 8 + 4 * 33);
        let decoded = EcdsaPublicKeyPackage::from_bytes(&bytes).expect("decode");
        assert_eq!(decoded, package);
        decoded.check_verifying_shares().expect("consistent");
        assert!(format!("{package:?}").contains("verifying_shares: Some(4)"));

        // Every truncation and a trailing byte fail; so does a share that is
        // not a point, and a share flipped to another valid point is caught
        // by the interpolation check (not by decoding).
        for len in 0..bytes.len() {
            assert!(
                EcdsaPublicKeyPackage::from_bytes(&bytes[..len]).is_err(),
                "{len}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(EcdsaPublicKeyPackage::from_bytes(&longer).is_err());
        let last = bytes.len() - 33;
        let mut not_a_point = bytes.clone();
        not_a_point[last + 1..].copy_from_slice(&[0xff; 32]);
        assert!(matches!(
            EcdsaPublicKeyPackage::from_bytes(&not_a_point),
            Err(ProtocolError::InvalidParameters(m)) if m.contains("verifying share of node-11")
        ));
        let mut swapped = bytes.clone();
        let (first, second) = (bytes.len() - 66, bytes.len() - 33);
        swapped[first..second].copy_from_slice(&bytes[second..]);
        swapped[second..].copy_from_slice(&bytes[first..second]);
        let swapped = EcdsaPublicKeyPackage::from_bytes(&swapped).expect("valid points");
        assert!(matches!(
            swapped.check_verifying_shares(),
            Err(ProtocolError::InvalidParameters(m)) if m.contains("do not interpolate")
        ));
    }

    #[test]
    fn verifying_shares_must_interpolate_to_the_key() {
        let nodes = [n(1), n(2), n(3), n(4), n(5)];
        let (key, shares) = shares_of(&[3, 1, 4], &nodes);
        EcdsaPublicKeyPackage::with_verifying_shares(&key, [0; 32], 3, &shares).expect("3-of-5");
        // A degree-2 polynomial is not a 2-of-5 sharing.
        assert!(EcdsaPublicKeyPackage::with_verifying_shares(&key, [0; 32], 2, &shares).is_err());
        // The shares of another key.
        let (other_key, _) = shares_of(&[4, 1, 4], &nodes);
        assert!(
            EcdsaPublicKeyPackage::with_verifying_shares(&other_key, [0; 32], 3, &shares).is_err()
        );
        // One share moved off the polynomial (first, middle, last window).
        for node in [n(1), n(3), n(5)] {
            let mut bad = shares.clone();
            let (_, moved) = shares_of(&[9], &[node]);
            bad.insert(node, moved[&node]);
            assert!(
                matches!(
                    EcdsaPublicKeyPackage::with_verifying_shares(&key, [0; 32], 3, &bad),
                    Err(ProtocolError::InvalidParameters(ref m)) if m.contains("do not interpolate")
                ),
                "{node}"
            );
        }
        // n = t: the value at 0 still pins every share.
        let (key, shares) = shares_of(&[5, 6], &nodes[..2]);
        EcdsaPublicKeyPackage::with_verifying_shares(&key, [0; 32], 2, &shares).expect("2-of-2");
        let mut bad = shares.clone();
        bad.insert(n(2), shares[&n(1)]);
        assert!(EcdsaPublicKeyPackage::with_verifying_shares(&key, [0; 32], 2, &bad).is_err());
        // A package without verifying shares has nothing to check.
        let v1 = EcdsaPublicKeyPackage::new(&key, [0; 32], 2, &nodes[..2]).expect("v1");
        assert!(v1.check_verifying_shares().is_err());
    }

    #[test]
    fn version_1_packages_still_decode_and_keep_their_bytes() {
        let key = hex::decode(G).expect("hex");
        let package =
            EcdsaPublicKeyPackage::new(&key, [7; 32], 2, &[n(2), n(5), n(9)]).expect("package");
        let bytes = package.to_bytes();
        assert_eq!(bytes[4], 1, "version 1");
        let decoded = EcdsaPublicKeyPackage::from_bytes(&bytes).expect("decode");
        assert_eq!(decoded.verifying_shares(), None);
        assert_eq!(decoded.verifying_share(n(2)), None);
        assert_eq!(decoded.to_bytes(), bytes);
        // Version 2 bytes without the shares, or version 1 bytes with them, are refused.
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert!(EcdsaPublicKeyPackage::from_bytes(&v2).is_err());
        let (_, shares) = shares_of(&[1, 2], &[n(2), n(5), n(9)]);
        let mut v1 = bytes;
        for share in shares.values() {
            v1.extend_from_slice(share);
        }
        assert!(EcdsaPublicKeyPackage::from_bytes(&v1).is_err());
        let mut v3 = v1;
        v3[4] = 3;
        assert!(EcdsaPublicKeyPackage::from_bytes(&v3).is_err());
    }
}
