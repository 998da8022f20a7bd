//! Solana addresses: an account is its Ed25519 public key (RFC 8032, 32
//! bytes), shown in Base58 (Bitcoin alphabet, no checksum).
//!
//! `frost-ed25519` keys are checked before they are encoded: the bytes must
//! decode to a curve point that is neither of small order nor outside the
//! prime-order subgroup (as every Ed25519 key pair's public key is), so a
//! corrupted key never turns into an address nobody can sign for.

use ed25519_dalek::VerifyingKey;

use crate::ChainError;

/// The Solana address (Base58) of an Ed25519 public key.
pub fn solana_address(public_key: &[u8]) -> Result<String, ChainError> {
    let bytes: &[u8; 32] = public_key.try_into().map_err(|_| {
        ChainError::InvalidPublicKey(format!(
            "an Ed25519 public key is 32 bytes, got {}",
            public_key.len()
        ))
    })?;
    let key = VerifyingKey::from_bytes(bytes)
        .map_err(|_| ChainError::InvalidPublicKey("not an Ed25519 point".into()))?;
    if key.is_weak() || !key.to_edwards().is_torsion_free() {
        return Err(ChainError::InvalidPublicKey(
            "not in the prime-order subgroup of Ed25519".into(),
        ));
    }
    Ok(bs58::encode(bytes).into_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys() {
        // The Ed25519 base point B.
        let b = hex::decode("5866666666666666666666666666666666666666666666666666666666666666")
            .expect("hex");
        assert_eq!(
            solana_address(&b).expect("valid"),
            "6x5SYnLroiN7WYq8NQYU9KHcH4YjpBbwpUfVu3EB7ieH"
        );
        // RFC 8032 §7.1 TEST 1's public key (secret 9d61b19d…7f60).
        let test1 = hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
            .expect("hex");
        let address = solana_address(&test1).expect("valid");
        assert_eq!(address, "FVen3X669xLzsi6N2V91DoiyzHzg1uAgqiT8jZ9nS96Z");
        assert_eq!(bs58::decode(&address).into_vec().expect("base58"), test1);
    }

    #[test]
    fn rejects_non_keys() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        // A point of order 8 (a torsion point): small order.
        let order8 =
            hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
                .expect("hex");
        // (−B_x, −B_y) = B + the order-2 point (0, −1): on the curve, outside the
        // prime-order subgroup.
        let mixed = hex::decode("9599999999999999999999999999999999999999999999999999999999999999")
            .expect("hex");
        // y = 2: no x solves the curve equation.
        let mut not_on_curve = [0u8; 32];
        not_on_curve[0] = 2;
        for bad in [
            &identity[..],
            &order8,
            &mixed,
            &not_on_curve,
            &[0u8; 31],
            &[],
        ] {
            assert!(
                matches!(solana_address(bad), Err(ChainError::InvalidPublicKey(_))),
                "{}",
                hex::encode(bad)
            );
        }
    }
}
