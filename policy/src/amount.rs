//! Exact amounts in an asset's base units (wei, satoshi, lamports, a token's
//! smallest unit), as unsigned 256-bit integers.
//!
//! Policies compare and add amounts; floating point never enters. An
//! [`Amount`] is written as a decimal string everywhere it is stored or
//! exchanged (policy documents, JSON, the nodes' ledgers), because JSON
//! numbers lose precision above 2^53 and ERC-20 amounts routinely exceed
//! 2^64.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::U256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An exact, non-negative amount in base units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(U256);

/// Why text is not an [`Amount`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("an amount is a decimal string of base units, got an empty string")]
    Empty,
    #[error("an amount is a decimal string of base units (digits only), got {0:?}")]
    NotDecimal(String),
    #[error("amount {0} does not fit in 256 bits")]
    TooLarge(String),
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(U256::ZERO);

    /// The amount `value` base units.
    pub const fn new(value: U256) -> Self {
        Self(value)
    }

    /// The amount as an integer.
    pub const fn as_u256(&self) -> U256 {
        self.0
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }
}

impl From<U256> for Amount {
    fn from(value: U256) -> Self {
        Self(value)
    }
}

impl From<u64> for Amount {
    fn from(value: u64) -> Self {
        Self(U256::from(value))
    }
}

impl From<u128> for Amount {
    fn from(value: u128) -> Self {
        Self(U256::from(value))
    }
}

impl fmt::Display for Amount {
    /// Decimal, without separators.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    /// Only ASCII digits: no sign, prefix, separator, exponent or whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotDecimal(s.to_owned()));
        }
        U256::from_str_radix(s, 10)
            .map(Amount)
            .map_err(|_| AmountError::TooLarge(s.to_owned()))
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string of base units, e.g. \"1000000000000000000\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_decimal_integers_up_to_256_bits() {
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        let a: Amount = max.parse().expect("U256::MAX parses");
        assert_eq!(a.as_u256(), U256::MAX);
        assert_eq!(a.to_string(), max);
        assert_eq!("0".parse::<Amount>(), Ok(Amount::ZERO));
        assert_eq!(
            "1000000000000000000".parse::<Amount>(),
            Ok(Amount::from(1_000_000_000_000_000_000u64))
        );
    }

    #[test]
    fn anything_but_plain_digits_is_refused() {
        for bad in [
            "-1", "+1", "0x10", "1e18", "1_000", "1,000", " 1", "1.5", "١",
        ] {
            assert_eq!(
                bad.parse::<Amount>(),
                Err(AmountError::NotDecimal(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!("".parse::<Amount>(), Err(AmountError::Empty));
        let too_big =
            "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert_eq!(
            too_big.parse::<Amount>(),
            Err(AmountError::TooLarge(too_big.to_owned()))
        );
    }

    #[test]
    fn checked_add_refuses_overflow() {
        let max = Amount::new(U256::MAX);
        assert_eq!(max.checked_add(Amount::from(1u64)), None);
        assert_eq!(
            Amount::from(2u64).checked_add(Amount::from(3u64)),
            Some(Amount::from(5u64))
        );
    }

    #[test]
    fn amounts_serialize_as_decimal_strings_and_refuse_json_numbers() {
        let a = Amount::from(u128::MAX);
        let json = serde_json::to_string(&a).expect("serializes");
        assert_eq!(json, "\"340282366920938463463374607431768211455\"");
        assert_eq!(serde_json::from_str::<Amount>(&json).ok(), Some(a));
        assert!(serde_json::from_str::<Amount>("5").is_err());
        assert!(serde_json::from_str::<Amount>("\"5.0\"").is_err());
    }
}
