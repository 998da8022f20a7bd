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

use std::fmt;

use k256::elliptic_curve::sec1::ToEncodedPoint as _;
use zeroize::Zeroizing;

use super::common::{Curve, Party, Roster, decode, encode_secret, internal};
use crate::codec::{Reader, decode_share_header, encode_share};
use crate::{NodeId, ProtocolError, Scheme};

/// Length of a SEC1 compressed secp256k1 key.
pub(crate) const PUBLIC_KEY_LEN: usize = 33;

/// The public description of one threshold ECDSA key, as the coordinator
/// stores it: group key, BIP-32 chain code, threshold and participants (in
/// party-index order). Everything needed to derive child keys and to check
/// and aggregate signatures.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EcdsaPublicKeyPackage {
    public_key: [u8; PUBLIC_KEY_LEN],
    chain_code: [u8; 32],
    threshold: u16,
    participants: Vec<NodeId>,
}

impl fmt::Debug for EcdsaPublicKeyPackage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdsaPublicKeyPackage")
            .field("public_key", &hex::encode(self.public_key))
            .field("chain_code", &hex::encode(self.chain_code))
            .field("threshold", &self.threshold)
            .field("participants", &self.participants)
            .finish()
    }
}

impl EcdsaPublicKeyPackage {
    /// Magic and version of [`EcdsaPublicKeyPackage::to_bytes`].
    const MAGIC: &'static [u8; 4] = b"SGPK";
    const VERSION: u8 = 1;

    /// Validates and builds a package: a valid compressed key, `2 ≤ threshold
    /// ≤ n`, and 2..=255 distinct participants (any order; stored sorted).
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
        })
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

    /// Canonical encoding (public):
    /// `"SGPK" ‖ version ‖ scheme tag ‖ key (33) ‖ chain code (32) ‖
    /// threshold (u16 BE) ‖ n (u16 BE) ‖ n × node id (u16 BE, ascending)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + PUBLIC_KEY_LEN + 32 + 4 + 2 * self.participants.len());
        out.extend_from_slice(Self::MAGIC);
        out.push(Self::VERSION);
        out.push(Scheme::EcdsaSecp256k1.tag());
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.chain_code);
        out.extend_from_slice(&self.threshold.to_be_bytes());
        out.extend_from_slice(&(self.participants.len() as u16).to_be_bytes());
        for node in &self.participants {
            out.extend_from_slice(&node.get().to_be_bytes());
        }
        out
    }

    /// Parses and validates [`EcdsaPublicKeyPackage::to_bytes`]; only the
    /// canonical encoding is accepted (participants strictly ascending).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        let mut reader = Reader::new(bytes, "ECDSA public key package");
        if reader.take(4)? != Self::MAGIC {
            return Err(reader.bad("bad magic"));
        }
        let [version] = reader.array()?;
        if version != Self::VERSION {
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
        reader.finish()?;
        if participants.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ProtocolError::InvalidParameters(
                "invalid ECDSA public key package encoding: participants not strictly ascending"
                    .into(),
            ));
        }
        Self::new(&public_key, chain_code, threshold, &participants)
    }
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
}
