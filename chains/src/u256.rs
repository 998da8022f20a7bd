//! A 256-bit unsigned integer, stored big-endian: just enough for wei
//! amounts (parse, print, RLP-encode), with no arithmetic.
//!
//! Ethereum values are 256-bit. Real balances fit in a `u128`, but a
//! transaction field must accept every value the chain does, so amounts are
//! carried as 32 big-endian bytes and parsed from decimal strings.

use std::fmt;
use std::str::FromStr;

use crate::ChainError;

/// An unsigned 256-bit integer (big-endian bytes). Ordering is numeric.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct U256([u8; 32]);

impl U256 {
    /// Zero.
    pub const ZERO: U256 = U256([0; 32]);
    /// 2^256 − 1.
    pub const MAX: U256 = U256([0xff; 32]);

    /// From 32 big-endian bytes.
    pub const fn from_be_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 big-endian bytes.
    pub const fn to_be_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }

    /// The big-endian bytes without leading zeros (empty for zero): the
    /// form RLP encodes integers in.
    pub fn minimal_be_bytes(&self) -> &[u8] {
        strip_leading_zeros(&self.0)
    }

    /// Parses a non-negative decimal integer (ASCII digits only: no sign,
    /// separators, exponent or whitespace; leading zeros are allowed).
    pub fn from_dec_str(s: &str) -> Result<Self, ChainError> {
        if s.is_empty() {
            return Err(ChainError::InvalidAmount("empty".into()));
        }
        let mut out = [0u8; 32];
        for c in s.bytes() {
            if !c.is_ascii_digit() {
                return Err(ChainError::InvalidAmount(format!(
                    "{s:?} is not a decimal integer"
                )));
            }
            // out = out * 10 + digit, least significant byte first.
            let mut carry = u16::from(c - b'0');
            for byte in out.iter_mut().rev() {
                let v = u16::from(*byte) * 10 + carry;
                *byte = (v & 0xff) as u8;
                carry = v >> 8;
            }
            if carry != 0 {
                return Err(ChainError::InvalidAmount(format!(
                    "{s} does not fit in 256 bits"
                )));
            }
        }
        Ok(Self(out))
    }
}

/// `bytes` without its leading zero bytes.
pub(crate) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

impl From<u128> for U256 {
    fn from(v: u128) -> Self {
        let mut out = [0u8; 32];
        out[16..].copy_from_slice(&v.to_be_bytes());
        Self(out)
    }
}

impl From<u64> for U256 {
    fn from(v: u64) -> Self {
        Self::from(u128::from(v))
    }
}

impl From<[u8; 32]> for U256 {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl FromStr for U256 {
    type Err = ChainError;

    /// Decimal, as [`U256::from_dec_str`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_dec_str(s)
    }
}

impl fmt::Display for U256 {
    /// Decimal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Repeated division by 10 (at most 78 digits).
        let mut n = self.0;
        let mut digits = Vec::with_capacity(78);
        loop {
            let mut rem = 0u16;
            for byte in n.iter_mut() {
                let v = (rem << 8) | u16::from(*byte);
                *byte = (v / 10) as u8;
                rem = v % 10;
            }
            digits.push(b'0' + rem as u8);
            if n == [0; 32] {
                break;
            }
        }
        digits.reverse();
        f.pad_integral(true, "", &String::from_utf8_lossy(&digits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_decimal() {
        for s in [
            "0",
            "1",
            "255",
            "256",
            "1000000000000000000",
            "340282366920938463463374607431768211455", // u128::MAX
            "340282366920938463463374607431768211456", // u128::MAX + 1
        ] {
            let v: U256 = s.parse().expect("valid");
            assert_eq!(v.to_string(), s);
        }
        assert_eq!(
            U256::from_dec_str("1000000000000000000"),
            Ok(U256::from(1_000_000_000_000_000_000u128))
        );
        assert_eq!(U256::from_dec_str("007"), Ok(U256::from(7u64)));
        assert_eq!(
            U256::from_dec_str("340282366920938463463374607431768211455"),
            Ok(U256::from(u128::MAX))
        );
        let mut above = [0u8; 32];
        above[15] = 1;
        assert_eq!(
            U256::from_dec_str("340282366920938463463374607431768211456"),
            Ok(U256::from_be_bytes(above))
        );
    }

    #[test]
    fn bounds() {
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(U256::from_dec_str(max), Ok(U256::MAX));
        assert_eq!(U256::MAX.to_string(), max);
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(matches!(
            U256::from_dec_str(over),
            Err(ChainError::InvalidAmount(_))
        ));
        assert!(U256::from_dec_str(&"9".repeat(100)).is_err());
    }

    #[test]
    fn rejects_non_decimal() {
        for bad in [
            "", " 1", "1 ", "-1", "+1", "1_000", "1e18", "0x10", "1.5", "١",
        ] {
            assert!(
                matches!(U256::from_dec_str(bad), Err(ChainError::InvalidAmount(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn minimal_bytes() {
        assert_eq!(U256::ZERO.minimal_be_bytes(), &[] as &[u8]);
        assert!(U256::ZERO.is_zero());
        assert_eq!(U256::from(0x0102u64).minimal_be_bytes(), &[1, 2]);
        assert_eq!(U256::MAX.minimal_be_bytes(), &[0xff; 32]);
        assert!(U256::from(1u64) < U256::from(256u64));
    }
}
