//! Names of chains, assets and addresses, as payload decoders produce them
//! and policy documents spell them.
//!
//! | name | form | example |
//! |---|---|---|
//! | chain | `<family>:<network>` | `evm:1`, `evm:8453`, `bitcoin:mainnet`, `solana:mainnet`, `tron:mainnet` |
//! | native asset | `<chain>/native` | `evm:1/native` |
//! | token | `<chain>/<token address>` | `evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48` |
//! | any asset (documents only) | `*` | |
//!
//! EVM networks are named by their decimal EIP-155 chain id and EVM
//! addresses are written in lowercase `0x`-hex (no EIP-55 checksum case), so
//! a plain string comparison decides whether two names are the same. The
//! other families are known here so that documents can name them before
//! their payload decoders exist; their addresses are kept exactly as
//! written, and a decoder for such a family must produce the same form.
//! Documents naming an unknown family are refused (a typo must not turn into
//! a rule that never matches).

use alloy_primitives::Address;

/// The asset name that makes an `assets` or `approval_tiers` entry apply to
/// every asset (each one counted separately).
pub const ANY_ASSET: &str = "*";

/// The asset part of a chain's native currency.
pub const NATIVE: &str = "native";

/// The chain families Sigil can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Ethereum and EVM chains, by EIP-155 chain id.
    Evm,
    Bitcoin,
    Solana,
    Tron,
}

impl Family {
    /// The family of a chain name, if the name is well formed.
    pub fn of(chain: &str) -> Option<Family> {
        let (family, network) = chain.split_once(':')?;
        let family = match family {
            "evm" => Family::Evm,
            "bitcoin" => Family::Bitcoin,
            "solana" => Family::Solana,
            "tron" => Family::Tron,
            _ => return None,
        };
        let ok = match family {
            Family::Evm => {
                network.parse::<u64>().is_ok_and(|id| id > 0)
                    && network.bytes().all(|b| b.is_ascii_digit())
                    && !network.starts_with('0')
            }
            _ => {
                !network.is_empty()
                    && network.len() <= 32
                    && network
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            }
        };
        ok.then_some(family)
    }
}

/// `evm:<chain_id>`.
pub fn evm_chain(chain_id: u64) -> String {
    format!("evm:{chain_id}")
}

/// Lowercase `0x`-hex of an EVM address.
pub fn evm_address(address: &Address) -> String {
    format!("0x{}", hex::encode(address.as_slice()))
}

/// `<chain>/native`.
pub fn native_asset(chain: &str) -> String {
    format!("{chain}/{NATIVE}")
}

/// `<chain>/<token address>`.
pub fn token_asset(chain: &str, token: &str) -> String {
    format!("{chain}/{token}")
}

/// The chain part of an asset name (`None` for `*` and malformed names).
pub fn chain_of_asset(asset: &str) -> Option<&str> {
    asset.split_once('/').map(|(chain, _)| chain)
}

/// The unit an asset's amounts are counted in, for messages.
pub fn unit_of(asset: &str) -> &'static str {
    match asset.split_once('/') {
        Some((chain, NATIVE)) => match Family::of(chain) {
            Some(Family::Evm) => "wei",
            Some(Family::Bitcoin) => "sat",
            Some(Family::Solana) => "lamports",
            Some(Family::Tron) => "sun",
            None => "base units",
        },
        _ => "base units",
    }
}

/// Checks a chain name.
pub(crate) fn check_chain(chain: &str) -> Result<(), String> {
    match Family::of(chain) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{chain:?} is not a chain name (evm:<chain id>, bitcoin:<network>, solana:<network> or tron:<network>)"
        )),
    }
}

/// The canonical form of an address on `chain` (EVM: lowercase `0x`-hex).
pub(crate) fn normalize_address(chain: &str, address: &str) -> Result<String, String> {
    match Family::of(chain) {
        Some(Family::Evm) => {
            let lower = address.to_ascii_lowercase();
            let well_formed = lower.len() == 42
                && lower.starts_with("0x")
                && lower.bytes().skip(2).all(|b| b.is_ascii_hexdigit());
            if well_formed {
                Ok(lower)
            } else {
                Err(format!(
                    "{address:?} is not an EVM address (0x followed by 40 hex digits)"
                ))
            }
        }
        Some(family) => {
            // Forms decoders produce besides plain addresses: a Bitcoin
            // output script without an address (`script:<hex>`), and a
            // Solana token account naming the asset of a plain SPL
            // `Transfer` (`token-account:<Base58>`).
            let bare = match family {
                Family::Bitcoin => address.strip_prefix("script:").unwrap_or(address),
                Family::Solana => address.strip_prefix("token-account:").unwrap_or(address),
                _ => address,
            };
            if !bare.is_empty()
                && address.len() <= 128
                && bare.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                Ok(address.to_owned())
            } else {
                Err(format!("{address:?} is not an address on {chain}"))
            }
        }
        None => check_chain(chain).map(|()| address.to_owned()),
    }
}

/// The canonical form of an asset name as documents write it (`*` included).
pub(crate) fn normalize_asset(asset: &str) -> Result<String, String> {
    if asset == ANY_ASSET {
        return Ok(asset.to_owned());
    }
    let Some((chain, what)) = asset.split_once('/') else {
        return Err(format!(
            "{asset:?} is not an asset name (<chain>/native, <chain>/<token address> or *)"
        ));
    };
    check_chain(chain)?;
    if what == NATIVE {
        return Ok(asset.to_owned());
    }
    let token = normalize_address(chain, what)?;
    Ok(token_asset(chain, &token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_are_family_and_network() {
        assert_eq!(Family::of("evm:1"), Some(Family::Evm));
        assert_eq!(Family::of("evm:8453"), Some(Family::Evm));
        assert_eq!(Family::of("bitcoin:mainnet"), Some(Family::Bitcoin));
        assert_eq!(Family::of("solana:devnet"), Some(Family::Solana));
        assert_eq!(Family::of("tron:mainnet"), Some(Family::Tron));
        for bad in [
            "evm:0",
            "evm:01",
            "evm:+1",
            "evm:",
            "evm",
            "eth:1",
            "evm:1x",
            "bitcoin:",
            "solana:Main Net",
        ] {
            assert_eq!(Family::of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn evm_addresses_are_normalized_to_lowercase_hex() {
        assert_eq!(
            normalize_address("evm:1", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48").as_deref(),
            Ok("0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
        );
        assert!(normalize_address("evm:1", "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb4").is_err());
        assert!(normalize_address("evm:1", "a0b86991c6218b36c1d19d4a2e9eb0ce3606eb4800").is_err());
        assert!(normalize_address("evm:1", "0xg0b86991c6218b36c1d19d4a2e9eb0ce3606eb48").is_err());
        assert_eq!(
            normalize_asset("evm:1/0xA0B86991C6218B36C1D19D4A2E9EB0CE3606EB48").as_deref(),
            Ok("evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
        );
        assert_eq!(
            normalize_asset("evm:1/native").as_deref(),
            Ok("evm:1/native")
        );
        assert_eq!(normalize_asset("*").as_deref(), Ok("*"));
        assert!(normalize_asset("evm:1").is_err());
        assert!(normalize_asset("ethereum/native").is_err());
    }

    #[test]
    fn units_name_the_native_currency() {
        assert_eq!(unit_of("evm:1/native"), "wei");
        assert_eq!(unit_of("bitcoin:mainnet/native"), "sat");
        assert_eq!(
            unit_of("evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"),
            "base units"
        );
    }
}
