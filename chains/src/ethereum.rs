//! Ethereum accounts and signatures.
//!
//! - **Addresses**: the last 20 bytes of Keccak-256 of the uncompressed
//!   public key's `x ‖ y` (64 bytes, without the `04` tag), shown with the
//!   EIP-55 mixed-case checksum: a hex letter is upper case when the
//!   matching nibble of Keccak-256(lower-case hex) is ≥ 8.
//! - **Parsing**: [`parse_address`] accepts all-lower or all-upper hex
//!   (no checksum) and checks the EIP-55 checksum of mixed-case input.
//! - **Personal messages** (EIP-191 version `0x45`, `personal_sign`):
//!   Keccak-256 of `"\x19Ethereum Signed Message:\n" ‖ len ‖ message`.
//! - **`v` / y-parity**: typed transactions (EIP-2718, e.g. EIP-1559) carry
//!   the recovery id itself as `y_parity`; legacy transactions carry
//!   `v = 27 + id`, or `chain_id·2 + 35 + id` with EIP-155 replay
//!   protection.
//! - **[`RecoverableSignature`]**: threshold ECDSA yields a bare `(r, s)`.
//!   Ethereum additionally needs low-S (EIP-2: `s ≤ n/2`) and the recovery
//!   id; this finds both and checks the signature against the group key.

use k256::ecdsa::{RecoveryId, Signature, VerifyingKey};
use k256::elliptic_curve::sec1::ToEncodedPoint;

use crate::hash::keccak256;
use crate::{ChainError, key};

/// The 20-byte Ethereum account of a secp256k1 public key (33-byte
/// compressed or 65-byte uncompressed SEC1).
pub fn ethereum_address_bytes(public_key: &[u8]) -> Result<[u8; 20], ChainError> {
    let point = key::parse(public_key)?.to_encoded_point(false);
    Ok(account_of_uncompressed(point.as_bytes()))
}

/// Keccak-256 of `x ‖ y` (dropping the SEC1 tag), last 20 bytes.
fn account_of_uncompressed(sec1_uncompressed: &[u8]) -> [u8; 20] {
    let hash = keccak256(sec1_uncompressed.get(1..).unwrap_or_default());
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

/// The EIP-55 checksummed address (`0x…`) of a secp256k1 public key
/// (33-byte compressed or 65-byte uncompressed SEC1).
pub fn ethereum_address(public_key: &[u8]) -> Result<String, ChainError> {
    Ok(to_checksum_address(&ethereum_address_bytes(public_key)?))
}

/// The EIP-55 mixed-case checksum form (`0x…`) of a 20-byte address
/// (alloy-primitives' `Address::to_checksum`, without EIP-1191's chain id).
pub fn to_checksum_address(address: &[u8; 20]) -> String {
    alloy_primitives::Address::from(*address).to_checksum(None)
}

/// Parses a `0x`-prefixed 40-hex-digit Ethereum address. All-lower-case and
/// all-upper-case digits carry no checksum and are accepted as they are;
/// mixed case must match the EIP-55 checksum exactly.
pub fn parse_address(address: &str) -> Result<[u8; 20], ChainError> {
    let bad = |why: &str| ChainError::InvalidAddress(format!("{address:?}: {why}"));
    let digits = address
        .strip_prefix("0x")
        .ok_or_else(|| bad("missing 0x prefix"))?;
    if digits.len() != 40 {
        return Err(bad("expected 40 hex digits"));
    }
    let mut out = [0u8; 20];
    hex::decode_to_slice(digits, &mut out).map_err(|_| bad("not hexadecimal"))?;
    let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper && to_checksum_address(&out) != address {
        return Err(ChainError::BadChecksum(address.to_owned()));
    }
    Ok(out)
}

/// The EIP-191 "personal message" (`personal_sign`, version `0x45`) that
/// wallets actually sign for `message`:
/// `"\x19Ethereum Signed Message:\n" ‖ decimal byte length ‖ message`.
pub fn personal_message(message: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b"\x19Ethereum Signed Message:\n";
    let len = message.len().to_string();
    let mut out = Vec::with_capacity(PREFIX.len() + len.len() + message.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(len.as_bytes());
    out.extend_from_slice(message);
    out
}

/// Keccak-256 of [`personal_message`]: the digest to sign (with
/// [`crate::MessageHash::Raw32`]) for an EIP-191 personal signature.
pub fn personal_message_hash(message: &[u8]) -> [u8; 32] {
    keccak256(personal_message(message))
}

fn check_recovery_id(recovery_id: u8) -> Result<u8, ChainError> {
    match recovery_id {
        0 | 1 => Ok(recovery_id),
        other => Err(ChainError::InvalidRecoveryId(u64::from(other))),
    }
}

/// The `y_parity` field of a typed (EIP-2718: EIP-2930, EIP-1559, …)
/// transaction for a recovery id: the id itself, which must be 0 or 1.
pub fn y_parity(recovery_id: u8) -> Result<u8, ChainError> {
    check_recovery_id(recovery_id)
}

/// The pre-EIP-155 legacy `v`: `27 + recovery_id` (also the `v` byte of a
/// 65-byte `personal_sign` signature).
pub fn legacy_v(recovery_id: u8) -> Result<u64, ChainError> {
    Ok(27 + u64::from(check_recovery_id(recovery_id)?))
}

/// The EIP-155 legacy `v`: `chain_id · 2 + 35 + recovery_id`.
pub fn eip155_v(chain_id: u64, recovery_id: u8) -> Result<u64, ChainError> {
    let id = u64::from(check_recovery_id(recovery_id)?);
    chain_id
        .checked_mul(2)
        .and_then(|v| v.checked_add(35 + id))
        .ok_or(ChainError::Overflow("EIP-155 v does not fit in 64 bits"))
}

/// Splits a legacy `v` into the recovery id and, for an EIP-155 `v`, the
/// chain id: `27`/`28` → `(0|1, None)`, `≥ 35` → `(id, Some(chain_id))`.
pub fn recovery_id_from_v(v: u64) -> Result<(u8, Option<u64>), ChainError> {
    match v {
        27 | 28 => Ok(((v - 27) as u8, None)),
        35.. => Ok((((v - 35) % 2) as u8, Some((v - 35) / 2))),
        _ => Err(ChainError::InvalidV(v)),
    }
}

/// An ECDSA signature as Ethereum wants it: low-S (EIP-2) with its
/// recovery id (0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecoverableSignature {
    /// `r`, 32 bytes big-endian.
    pub r: [u8; 32],
    /// `s ≤ n/2`, 32 bytes big-endian.
    pub s: [u8; 32],
    /// The recovery id: the parity of the y coordinate of the nonce point
    /// `R` (after low-S normalization). This is the EIP-2718 `y_parity`.
    pub recovery_id: u8,
}

impl RecoverableSignature {
    /// From a bare ECDSA signature `(r, s)` over `prehash` by
    /// `public_key` (33- or 65-byte SEC1), as threshold ECDSA produces it:
    /// normalizes `s` to low-S and finds the recovery id by public-key
    /// recovery. Fails unless the signature verifies under `public_key`.
    pub fn from_prehash(
        public_key: &[u8],
        prehash: &[u8; 32],
        r: &[u8; 32],
        s: &[u8; 32],
    ) -> Result<Self, ChainError> {
        let expected = VerifyingKey::from(key::parse(public_key)?);
        let signature = Signature::from_scalars(*r, *s).map_err(|_| {
            ChainError::InvalidSignature("r or s is zero or not below the group order".into())
        })?;
        let signature = signature.normalize_s().unwrap_or(signature);
        for id in 0..=1u8 {
            let recovery = RecoveryId::new(id == 1, false);
            if let Ok(recovered) = VerifyingKey::recover_from_prehash(prehash, &signature, recovery)
                && recovered == expected
            {
                let (r, s) = signature.split_bytes();
                return Ok(Self {
                    r: r.into(),
                    s: s.into(),
                    recovery_id: id,
                });
            }
        }
        Err(ChainError::InvalidSignature(
            "does not verify under the public key".into(),
        ))
    }

    /// Recovers the signer's 20-byte account from the signature over
    /// `prehash` (as `ecrecover` does). Refuses high-S signatures.
    pub fn recover_address(&self, prehash: &[u8; 32]) -> Result<[u8; 20], ChainError> {
        let signature = Signature::from_scalars(self.r, self.s).map_err(|_| {
            ChainError::InvalidSignature("r or s is zero or not below the group order".into())
        })?;
        if signature.normalize_s().is_some() {
            return Err(ChainError::InvalidSignature("s is not low (EIP-2)".into()));
        }
        let recovery = RecoveryId::new(check_recovery_id(self.recovery_id)? == 1, false);
        let key = VerifyingKey::recover_from_prehash(prehash, &signature, recovery)
            .map_err(|_| ChainError::InvalidSignature("public key recovery failed".into()))?;
        Ok(account_of_uncompressed(
            key.to_encoded_point(false).as_bytes(),
        ))
    }

    /// The 65-byte `r ‖ s ‖ v` form with `v = 27 + recovery_id`, as
    /// returned by `personal_sign` / `eth_sign` and checked by `ecrecover`.
    pub fn to_rsv_bytes(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..32].copy_from_slice(&self.r);
        out[32..64].copy_from_slice(&self.s);
        out[64] = 27 + (self.recovery_id & 1);
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use k256::ecdsa::SigningKey;

    use super::*;

    /// The public key of private key 1 (the generator), compressed.
    pub(crate) const KEY1: &str =
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    /// Account #0 of the Hardhat / Anvil development mnemonic ("test test …
    /// junk"): a publicly known test key. Never holds real funds.
    pub(crate) const ANVIL0_SECRET: &str =
        "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    pub(crate) const ANVIL0_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    pub(crate) fn signing_key(secret_hex: &str) -> SigningKey {
        let bytes = hex::decode(secret_hex).expect("hex");
        SigningKey::from_slice(&bytes).expect("valid secret")
    }

    pub(crate) fn public_key_of(key: &SigningKey) -> Vec<u8> {
        key.verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .to_vec()
    }

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0; 32];
        hex::decode_to_slice(s, &mut out).expect("test hex");
        out
    }

    #[test]
    fn addresses_of_known_keys() {
        let key1 = hex::decode(KEY1).expect("hex");
        assert_eq!(
            ethereum_address(&key1).expect("valid"),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
        let uncompressed = crate::uncompressed_public_key(&key1).expect("valid");
        assert_eq!(
            ethereum_address(&uncompressed).expect("valid"),
            "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
        );
        // Hardhat / Anvil account #0.
        let anvil = public_key_of(&signing_key(ANVIL0_SECRET));
        assert_eq!(ethereum_address(&anvil).expect("valid"), ANVIL0_ADDRESS);
        // web3.js accounts test vector (test/eth.accounts.signTransaction.js).
        let web3 = public_key_of(&signing_key(
            "be6383dad004f233317e46ddb46ad31b16064d14447a95cc1d8c8d4bc61c3728",
        ));
        assert_eq!(
            ethereum_address(&web3).expect("valid"),
            "0xEB014f8c8B418Db6b45774c326A0E64C78914dC0"
        );
        assert!(matches!(
            ethereum_address(&key1[1..]),
            Err(ChainError::InvalidPublicKey(_))
        ));
    }

    /// EIP-55's own test cases ("All caps", "All Lower", "Normal").
    const EIP55_VECTORS: [&str; 8] = [
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_checksums() {
        for expected in EIP55_VECTORS {
            let bytes = parse_address(expected).expect("valid");
            assert_eq!(to_checksum_address(&bytes), expected);
            // Lower- and upper-case forms carry no checksum and parse too.
            let lower = format!("0x{}", &expected[2..].to_ascii_lowercase());
            let upper = format!("0x{}", &expected[2..].to_ascii_uppercase());
            assert_eq!(parse_address(&lower), Ok(bytes));
            assert_eq!(parse_address(&upper), Ok(bytes));
        }
    }

    #[test]
    fn parse_address_rejects() {
        // One letter in the wrong case.
        assert_eq!(
            parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
            Err(ChainError::BadChecksum(
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD".into()
            ))
        );
        for bad in [
            "",
            "0x",
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", // no prefix
            "0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", // upper-case prefix
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", // 39 digits
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed0", // 41 digits
            "0xgaaeb6053f3e94c9b9a09f33669435e7ef1beaed", // not hex
            " 0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
        ] {
            assert!(
                matches!(parse_address(bad), Err(ChainError::InvalidAddress(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn personal_message_hash_vector() {
        // viem's hashMessage("hello world") test (src/utils/signature/hashMessage.test.ts).
        assert_eq!(
            personal_message(b"hello world"),
            b"\x19Ethereum Signed Message:\n11hello world"
        );
        assert_eq!(
            personal_message_hash(b"hello world"),
            hex32("d9eba16ed0ecae432b71fe008c98cc872bb4cc214d3220a36f365326cf807d68")
        );
    }

    #[test]
    fn v_helpers() {
        assert_eq!(y_parity(0), Ok(0));
        assert_eq!(y_parity(1), Ok(1));
        assert_eq!(y_parity(2), Err(ChainError::InvalidRecoveryId(2)));
        assert_eq!(legacy_v(0), Ok(27));
        assert_eq!(legacy_v(1), Ok(28));
        assert!(legacy_v(27).is_err());
        // EIP-155's example: chain id 1 gives v = 37 or 38.
        assert_eq!(eip155_v(1, 0), Ok(37));
        assert_eq!(eip155_v(1, 1), Ok(38));
        assert_eq!(eip155_v(11155111, 1), Ok(22310258));
        assert!(matches!(
            eip155_v(u64::MAX / 2, 0),
            Err(ChainError::Overflow(_))
        ));
        assert!(eip155_v(1, 2).is_err());
        assert_eq!(recovery_id_from_v(27), Ok((0, None)));
        assert_eq!(recovery_id_from_v(28), Ok((1, None)));
        assert_eq!(recovery_id_from_v(37), Ok((0, Some(1))));
        assert_eq!(recovery_id_from_v(38), Ok((1, Some(1))));
        for chain_id in [0, 1, 56, 137, 11155111, u64::MAX / 2 - 18] {
            for id in 0..=1 {
                let v = eip155_v(chain_id, id).expect("fits");
                assert_eq!(recovery_id_from_v(v), Ok((id, Some(chain_id))));
            }
        }
        for bad in [0, 1, 26, 29, 34] {
            assert_eq!(recovery_id_from_v(bad), Err(ChainError::InvalidV(bad)));
        }
    }

    #[test]
    fn eip155_example_recovers() {
        // EIP-155's example: the legacy transaction signed by key 0x4646…46
        // on chain 1 has signing hash daf5a779…8e53 and v = 37, r, s as
        // below (from its raw f86c…6d83); recovery gives the key's address
        // (as in reth's and alloy's `recover_signer` tests).
        let (id, chain) = recovery_id_from_v(37).expect("EIP-155 v");
        assert_eq!((id, chain), (0, Some(1)));
        let sig = RecoverableSignature {
            r: hex32("28ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276"),
            s: hex32("67cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"),
            recovery_id: id,
        };
        let prehash = hex32("daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53");
        let expected = "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F";
        assert_eq!(
            to_checksum_address(&sig.recover_address(&prehash).expect("recovers")),
            expected
        );
        let key = signing_key("4646464646464646464646464646464646464646464646464646464646464646");
        assert_eq!(
            ethereum_address(&public_key_of(&key)).expect("valid"),
            expected
        );
        // k256 reproduces the example's deterministic signature exactly.
        let (k256_sig, k256_id) = key.sign_prehash_recoverable(&prehash).expect("sign");
        let (r, s) = k256_sig.split_bytes();
        assert_eq!((<[u8; 32]>::from(r), <[u8; 32]>::from(s)), (sig.r, sig.s));
        assert_eq!(eip155_v(1, k256_id.to_byte()), Ok(37));
    }

    #[test]
    fn recoverable_signature_matches_viem() {
        // viem signs the personal-message hash of "hello world" with Anvil
        // account #0 (deterministic RFC 6979 nonces, low-S) and gets this
        // r ‖ s ‖ v (e.g. ox's Account.sign "signs raw payloads" test).
        let expected = hex::decode(
            "a461f509887bd19e312c0c58467ce8ff8e300d3c1a90b608a760c5b80318eaf1\
             5fe57c96f9175d6cd4daad4663763baa7e78836e067d0163e9a2ccf2ff753f5b1b",
        )
        .expect("hex");
        let key = signing_key(ANVIL0_SECRET);
        let prehash = personal_message_hash(b"hello world");
        let (sig, _) = key.sign_prehash_recoverable(&prehash).expect("sign");
        let (r, s) = sig.split_bytes();
        let (r, s): ([u8; 32], [u8; 32]) = (r.into(), s.into());

        let rec = RecoverableSignature::from_prehash(&public_key_of(&key), &prehash, &r, &s)
            .expect("verifies");
        assert_eq!(rec.to_rsv_bytes().to_vec(), expected);
        assert_eq!(
            to_checksum_address(&rec.recover_address(&prehash).expect("recovers")),
            ANVIL0_ADDRESS
        );
    }

    #[test]
    fn recoverable_signature_normalizes_high_s() {
        let key = signing_key(ANVIL0_SECRET);
        let pk = public_key_of(&key);
        for msg in [&b"a"[..], b"b", b"c", b"d"] {
            let prehash = keccak256(msg);
            let (sig, id) = key.sign_prehash_recoverable(&prehash).expect("sign");
            let (r, s) = sig.split_bytes();
            let low = RecoverableSignature::from_prehash(&pk, &prehash, &r.into(), &s.into())
                .expect("verifies");
            assert_eq!(low.recovery_id, id.to_byte());
            // The same signature with s replaced by n − s (high-S, what a
            // threshold protocol may well output) normalizes to the same.
            let high = Signature::from_scalars(r, -*sig.s()).expect("in range");
            let (hr, hs) = high.split_bytes();
            assert_ne!(<[u8; 32]>::from(hs), low.s);
            let normalized =
                RecoverableSignature::from_prehash(&pk, &prehash, &hr.into(), &hs.into())
                    .expect("verifies");
            assert_eq!(normalized, low);
            // recover_address refuses the high-S form.
            let raw_high = RecoverableSignature {
                s: hs.into(),
                ..low
            };
            assert!(raw_high.recover_address(&prehash).is_err());
        }
    }

    #[test]
    fn recoverable_signature_rejects_wrong_key_or_message() {
        let key = signing_key(ANVIL0_SECRET);
        let prehash = keccak256(b"pay 1 ETH");
        let (sig, _) = key.sign_prehash_recoverable(&prehash).expect("sign");
        let (r, s) = sig.split_bytes();
        let (r, s): ([u8; 32], [u8; 32]) = (r.into(), s.into());
        let other = hex::decode(KEY1).expect("hex");
        assert!(matches!(
            RecoverableSignature::from_prehash(&other, &prehash, &r, &s),
            Err(ChainError::InvalidSignature(_))
        ));
        let pk = public_key_of(&key);
        assert!(matches!(
            RecoverableSignature::from_prehash(&pk, &keccak256(b"pay 2 ETH"), &r, &s),
            Err(ChainError::InvalidSignature(_))
        ));
        assert!(matches!(
            RecoverableSignature::from_prehash(&pk, &prehash, &[0; 32], &s),
            Err(ChainError::InvalidSignature(_))
        ));
        assert!(matches!(
            RecoverableSignature::from_prehash(&pk, &prehash, &r, &[0xff; 32]),
            Err(ChainError::InvalidSignature(_))
        ));
    }
}
