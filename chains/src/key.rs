//! SEC1 secp256k1 public keys (SEC 1 v2, §2.3.3–2.3.4).
//!
//! Every address function takes the key as bytes in one of the two
//! encodings the threshold ECDSA protocol or a client may hand over:
//! 33-byte compressed (`02`/`03` ‖ x) or 65-byte uncompressed
//! (`04` ‖ x ‖ y). The point is always decoded and checked to be on the
//! curve (and not the identity) before anything is derived from it: an
//! address of a non-point can never be spent from.

use k256::PublicKey;
use k256::elliptic_curve::sec1::ToEncodedPoint;

use crate::ChainError;

/// Decodes a 33- or 65-byte SEC1 secp256k1 public key.
pub(crate) fn parse(public_key: &[u8]) -> Result<PublicKey, ChainError> {
    // Only the two standard forms: the sec1 crate would also take its
    // "compact" (`05` ‖ x) and identity (`00`) encodings.
    match (public_key.len(), public_key.first()) {
        (33, Some(0x02 | 0x03)) | (65, Some(0x04)) => PublicKey::from_sec1_bytes(public_key)
            .map_err(|_| ChainError::InvalidPublicKey("not a point on secp256k1".into())),
        (33 | 65, _) => Err(ChainError::InvalidPublicKey(
            "SEC1 tag does not match the length (expected 02/03 for 33 bytes, 04 for 65)".into(),
        )),
        (n, _) => Err(ChainError::InvalidPublicKey(format!(
            "expected 33 (compressed) or 65 (uncompressed) bytes, got {n}"
        ))),
    }
}

/// The 65-byte uncompressed SEC1 encoding (`04` ‖ x ‖ y) of a public key
/// given compressed or uncompressed.
pub fn uncompressed_public_key(public_key: &[u8]) -> Result<[u8; 65], ChainError> {
    let point = parse(public_key)?.to_encoded_point(false);
    point
        .as_bytes()
        .try_into()
        .map_err(|_| ChainError::Encoding("uncompressed point is not 65 bytes".into()))
}

/// The 33-byte compressed SEC1 encoding (`02`/`03` ‖ x) of a public key
/// given compressed or uncompressed.
pub fn compressed_public_key(public_key: &[u8]) -> Result<[u8; 33], ChainError> {
    let point = parse(public_key)?.to_encoded_point(true);
    point
        .as_bytes()
        .try_into()
        .map_err(|_| ChainError::Encoding("compressed point is not 33 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator G (the public key of private key 1), SEC 2 §2.4.1.
    const G_COMPRESSED: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    const G_UNCOMPRESSED: &str = "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
                                  483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8";

    #[test]
    fn converts_between_encodings() {
        let c = hex::decode(G_COMPRESSED).expect("hex");
        let u = hex::decode(G_UNCOMPRESSED).expect("hex");
        assert_eq!(uncompressed_public_key(&c).expect("valid").to_vec(), u);
        assert_eq!(compressed_public_key(&u).expect("valid").to_vec(), c);
        assert_eq!(compressed_public_key(&c).expect("valid").to_vec(), c);
        assert_eq!(uncompressed_public_key(&u).expect("valid").to_vec(), u);
    }

    #[test]
    fn rejects_non_keys() {
        let mut c = hex::decode(G_COMPRESSED).expect("hex");
        let u = hex::decode(G_UNCOMPRESSED).expect("hex");
        // Wrong lengths: raw 64-byte x‖y, x-only, empty, identity.
        for bad in [&u[1..], &c[1..], &[][..], &[0u8][..]] {
            assert!(matches!(
                compressed_public_key(bad),
                Err(ChainError::InvalidPublicKey(_))
            ));
        }
        // Tags that do not match the length, and sec1's "compact" 05 ‖ x.
        for tag in [0x00, 0x04, 0x05, 0x06, 0x07] {
            c[0] = tag;
            assert!(parse(&c).is_err(), "tag {tag:#04x}");
        }
        let mut u_bad = u.clone();
        for tag in [0x00, 0x02, 0x03, 0x06, 0x07] {
            u_bad[0] = tag;
            assert!(parse(&u_bad).is_err(), "tag {tag:#04x}");
        }
        // Off-curve: G with y + 1.
        let mut off = u.clone();
        off[64] ^= 1;
        assert!(parse(&off).is_err());
        // x ≥ p is not a field element.
        let mut big_x = [0xffu8; 33];
        big_x[0] = 2;
        assert!(parse(&big_x).is_err());
    }
}
