//! Policy documents: what a key may sign, written by people as TOML and
//! signed by security officers as compact JSON.
//!
//! ```toml
//! key_id = "key-abc"
//! version = 2                 # greater than the version in force; 0 is the configured default
//! requesters = ["payments"]   # client names (spiffe://<td>/client/<name>)
//! allow_raw = false           # raw messages, raw digests and EIP-191 messages (default false)
//! accounting_quorum = 3       # optional; default: the key's threshold
//!
//! [[assets]]
//! asset = "evm:1/native"      # or "*": every asset, each limited separately
//! max_per_tx = "1000000000000000000"     # decimal strings in base units; each limit optional
//! max_per_day = "5000000000000000000"    # rolling 24 hours
//! max_count_per_day = 20                 # rolling 24 hours
//!
//! [[destinations]]
//! chain = "evm:1"
//! allow = ["0x1111111111111111111111111111111111111111"]  # empty: any address not denied
//! deny = ["0x000000000000000000000000000000000000dead"]
//!
//! [[contracts]]               # EVM calls other than exact ERC-20 transfers and approvals
//! chain = "evm:1"
//! address = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
//! selectors = ["0xd0e30db0"]  # empty: any method of the contract
//!
//! [approver_groups]
//! treasury = ["approver-1", "approver-2", "approver-3"]
//!
//! [[approval_tiers]]
//! asset = "evm:1/native"      # or "*"
//! above = "10000000000000000000"
//! group = "treasury"
//! required = 2
//! ```
//!
//! The signed form is `serde_json::to_vec` of a [`PolicyDocument`]
//! ([`PolicyDocument::to_document_bytes`]): fields in declaration order, maps
//! sorted, so printing a document twice gives the same bytes. Nodes verify
//! the officers' signatures over the bytes as received and then parse them
//! ([`PolicyDocument::from_document_bytes`]); nothing is re-serialized.
//!
//! Both parsers refuse unknown fields (a misspelt limit must not vanish),
//! lowercase EVM addresses, selectors and token names, and then validate the
//! whole document ([`PolicyDocument::validate`]). [`PolicyRules`] (the
//! document without `key_id` and `version`) deserializes on its own with
//! the same normalization and checks, as the nodes' configured default.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::amount::Amount;
use crate::chain::{ANY_ASSET, Family, check_chain, normalize_address, normalize_asset};

/// Limits on one asset (or on each asset, for `*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRule {
    /// `<chain>/native`, `<chain>/<token address>` or `*`.
    pub asset: String,
    /// Largest amount one payload may move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_tx: Option<Amount>,
    /// Largest amount moved in any rolling 24 hours, this payload included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_day: Option<Amount>,
    /// Most payloads moving the asset in any rolling 24 hours, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count_per_day: Option<u64>,
}

/// Where value may go on one chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationRule {
    pub chain: String,
    /// When not empty, the only destinations allowed on the chain.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Destinations refused on the chain (before the allowlist is looked at).
    #[serde(default)]
    pub deny: Vec<String>,
}

/// A contract whose calls (other than exact ERC-20 movements) may be signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractRule {
    pub chain: String,
    pub address: String,
    /// 4-byte selectors as `0x` and 8 hex digits; empty: any method.
    #[serde(default)]
    pub selectors: Vec<String>,
}

/// Approvals asked for amounts above a threshold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalTier {
    /// An asset name or `*`.
    pub asset: String,
    /// The tier applies to a payload moving strictly more than this.
    pub above: Amount,
    /// A key of `approver_groups`.
    pub group: String,
    /// Distinct members of the group who must approve.
    pub required: u16,
}

/// What a key may sign: a policy document without its key id and version.
///
/// Deserializing normalizes and validates (see the module docs), so rules
/// read from a node's configuration are as checked as signed ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct PolicyRules {
    /// Client names allowed to request signatures.
    pub requesters: Vec<String>,
    /// Whether raw messages, raw digests and EIP-191 messages may be signed.
    #[serde(default)]
    pub allow_raw: bool,
    /// Distinct nodes that must count a spend before any signs (default:
    /// the key's threshold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounting_quorum: Option<u16>,
    #[serde(default)]
    pub assets: Vec<AssetRule>,
    #[serde(default)]
    pub destinations: Vec<DestinationRule>,
    #[serde(default)]
    pub contracts: Vec<ContractRule>,
    /// Group name to member client names.
    #[serde(default)]
    pub approver_groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub approval_tiers: Vec<ApprovalTier>,
}

impl Serialize for PolicyRules {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PolicyRules::serialize(self, serializer)
    }
}

impl<'de> Deserialize<'de> for PolicyRules {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut rules = PolicyRules::deserialize(deserializer)?;
        rules.normalize();
        rules.validate().map_err(serde::de::Error::custom)?;
        Ok(rules)
    }
}

/// A policy document: the rules of one key at one version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DocumentRepr", into = "DocumentRepr")]
pub struct PolicyDocument {
    pub key_id: String,
    /// At least 1, and greater than the version in force (0 is the default).
    pub version: u64,
    pub rules: PolicyRules,
}

/// The flat serialized form of a [`PolicyDocument`] (`#[serde(flatten)]`
/// would silently accept unknown fields).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocumentRepr {
    key_id: String,
    version: u64,
    requesters: Vec<String>,
    #[serde(default)]
    allow_raw: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accounting_quorum: Option<u16>,
    #[serde(default)]
    assets: Vec<AssetRule>,
    #[serde(default)]
    destinations: Vec<DestinationRule>,
    #[serde(default)]
    contracts: Vec<ContractRule>,
    #[serde(default)]
    approver_groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    approval_tiers: Vec<ApprovalTier>,
}

impl From<PolicyDocument> for DocumentRepr {
    fn from(d: PolicyDocument) -> Self {
        let PolicyRules {
            requesters,
            allow_raw,
            accounting_quorum,
            assets,
            destinations,
            contracts,
            approver_groups,
            approval_tiers,
        } = d.rules;
        Self {
            key_id: d.key_id,
            version: d.version,
            requesters,
            allow_raw,
            accounting_quorum,
            assets,
            destinations,
            contracts,
            approver_groups,
            approval_tiers,
        }
    }
}

impl TryFrom<DocumentRepr> for PolicyDocument {
    type Error = DocumentError;

    fn try_from(r: DocumentRepr) -> Result<Self, Self::Error> {
        let mut doc = PolicyDocument {
            key_id: r.key_id,
            version: r.version,
            rules: PolicyRules {
                requesters: r.requesters,
                allow_raw: r.allow_raw,
                accounting_quorum: r.accounting_quorum,
                assets: r.assets,
                destinations: r.destinations,
                contracts: r.contracts,
                approver_groups: r.approver_groups,
                approval_tiers: r.approval_tiers,
            },
        };
        doc.rules.normalize();
        doc.validate()?;
        Ok(doc)
    }
}

/// Why a policy document (or a set of rules) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// Not TOML / JSON of the document's shape (unknown fields included).
    #[error("the policy document is not valid {format}: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error(
        "policy document version 0 is reserved for the configured default; signed documents start at 1"
    )]
    ReservedVersion,
    /// A field's value is refused; `at` names it (e.g. `assets[1].asset`).
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}

fn invalid(at: impl Into<String>, reason: impl Into<String>) -> DocumentError {
    DocumentError::Invalid {
        at: at.into(),
        reason: reason.into(),
    }
}

/// 1-128 printable ASCII characters without spaces (key ids, client and group names).
fn check_name(at: &str, name: &str) -> Result<(), DocumentError> {
    if (1..=128).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid(
            at,
            format!("{name:?} is not 1-128 printable ASCII characters without spaces"),
        ))
    }
}

/// Checks that `value` is already in the form `normalize` gives it.
fn check_normal(
    at: &str,
    value: &str,
    normalize: impl FnOnce(&str) -> Result<String, String>,
) -> Result<(), DocumentError> {
    match normalize(value) {
        Ok(n) if n == value => Ok(()),
        Ok(n) => Err(invalid(at, format!("write {value:?} as {n:?}"))),
        Err(reason) => Err(invalid(at, reason)),
    }
}

/// Lowercases what is case-insensitive: EVM addresses, selectors, tokens.
fn lower_if_evm(chain: &str, value: &mut str) {
    if Family::of(chain) == Some(Family::Evm) {
        value.make_ascii_lowercase();
    }
}

fn lower_asset(asset: &mut str) {
    if let Some((chain, _)) = asset.split_once('/')
        && Family::of(chain) == Some(Family::Evm)
    {
        asset.make_ascii_lowercase();
    }
}

fn check_selector(at: &str, selector: &str) -> Result<(), DocumentError> {
    let ok = selector.len() == 10
        && selector.starts_with("0x")
        && selector
            .bytes()
            .skip(2)
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            at,
            format!("{selector:?} is not a method selector (0x and 8 lowercase hex digits)"),
        ))
    }
}

/// Refuses a value seen before in the same list.
fn check_unique<K: Ord + std::fmt::Debug>(
    seen: &mut BTreeMap<K, usize>,
    value: K,
    at: &str,
    list: &str,
    index: usize,
) -> Result<(), DocumentError> {
    let shown = format!("{value:?}");
    if let Some(first) = seen.insert(value, index) {
        return Err(invalid(
            at,
            format!("{shown} appears twice (also {list}[{first}])"),
        ));
    }
    Ok(())
}

impl PolicyRules {
    /// Whether any asset has a rolling 24-hour limit (amount or count):
    /// the only rules whose counters other nodes' receipts protect (the
    /// accounting quorum). Every other rule each signer checks itself.
    pub fn has_rolling_limits(&self) -> bool {
        self.assets
            .iter()
            .any(|a| a.max_per_day.is_some() || a.max_count_per_day.is_some())
    }

    /// Rules for local development clusters: `requesters` may sign anything
    /// Sigil can read, with no limits, and raw messages; contract calls still
    /// need `contracts` entries.
    pub fn permissive_dev(requesters: Vec<String>) -> Self {
        Self {
            requesters,
            allow_raw: true,
            accounting_quorum: None,
            assets: vec![AssetRule {
                asset: ANY_ASSET.to_owned(),
                max_per_tx: None,
                max_per_day: None,
                max_count_per_day: None,
            }],
            destinations: Vec::new(),
            contracts: Vec::new(),
            approver_groups: BTreeMap::new(),
            approval_tiers: Vec::new(),
        }
    }

    /// Lowercases EVM addresses, selectors and token names.
    fn normalize(&mut self) {
        for a in &mut self.assets {
            lower_asset(&mut a.asset);
        }
        for d in &mut self.destinations {
            for address in d.allow.iter_mut().chain(d.deny.iter_mut()) {
                lower_if_evm(&d.chain, address);
            }
        }
        for c in &mut self.contracts {
            lower_if_evm(&c.chain, &mut c.address);
            for s in &mut c.selectors {
                s.make_ascii_lowercase();
            }
        }
        for t in &mut self.approval_tiers {
            lower_asset(&mut t.asset);
        }
    }

    /// Checks the rules (see the module docs); errors name the field.
    pub fn validate(&self) -> Result<(), DocumentError> {
        let mut seen = BTreeMap::new();
        for (i, r) in self.requesters.iter().enumerate() {
            let at = format!("requesters[{i}]");
            check_name(&at, r)?;
            check_unique(&mut seen, r.as_str(), &at, "requesters", i)?;
        }
        if self.accounting_quorum == Some(0) {
            return Err(invalid("accounting_quorum", "must be at least 1"));
        }
        let mut seen = BTreeMap::new();
        for (i, a) in self.assets.iter().enumerate() {
            let at = format!("assets[{i}].asset");
            check_normal(&at, &a.asset, normalize_asset)?;
            check_unique(&mut seen, a.asset.as_str(), &at, "assets", i)?;
        }
        let mut seen = BTreeMap::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let at = format!("destinations[{i}]");
            check_chain(&d.chain).map_err(|r| invalid(format!("{at}.chain"), r))?;
            check_unique(
                &mut seen,
                d.chain.as_str(),
                &format!("{at}.chain"),
                "destinations",
                i,
            )?;
            for (list, addresses) in [("allow", &d.allow), ("deny", &d.deny)] {
                for (j, address) in addresses.iter().enumerate() {
                    check_normal(&format!("{at}.{list}[{j}]"), address, |a| {
                        normalize_address(&d.chain, a)
                    })?;
                }
            }
        }
        let mut seen = BTreeMap::new();
        for (i, c) in self.contracts.iter().enumerate() {
            let at = format!("contracts[{i}]");
            check_chain(&c.chain).map_err(|r| invalid(format!("{at}.chain"), r))?;
            check_normal(&format!("{at}.address"), &c.address, |a| {
                normalize_address(&c.chain, a)
            })?;
            check_unique(
                &mut seen,
                (c.chain.as_str(), c.address.as_str()),
                &format!("{at}.address"),
                "contracts",
                i,
            )?;
            for (j, s) in c.selectors.iter().enumerate() {
                check_selector(&format!("{at}.selectors[{j}]"), s)?;
            }
        }
        for (name, members) in &self.approver_groups {
            let at = format!("approver_groups.{name}");
            check_name(&at, name)?;
            if members.is_empty() {
                return Err(invalid(at, "a group needs at least one member"));
            }
            let mut seen = BTreeMap::new();
            for (j, m) in members.iter().enumerate() {
                let at = format!("{at}[{j}]");
                check_name(&at, m)?;
                check_unique(
                    &mut seen,
                    m.as_str(),
                    &at,
                    &format!("approver_groups.{name}"),
                    j,
                )?;
            }
        }
        let mut seen = BTreeMap::new();
        for (i, t) in self.approval_tiers.iter().enumerate() {
            let at = format!("approval_tiers[{i}]");
            check_normal(&format!("{at}.asset"), &t.asset, normalize_asset)?;
            let Some(members) = self.approver_groups.get(&t.group) else {
                return Err(invalid(
                    format!("{at}.group"),
                    format!("no approver group {:?}", t.group),
                ));
            };
            if t.required == 0 || usize::from(t.required) > members.len() {
                return Err(invalid(
                    format!("{at}.required"),
                    format!(
                        "must be between 1 and the {} members of group {:?}, got {}",
                        members.len(),
                        t.group,
                        t.required
                    ),
                ));
            }
            check_unique(
                &mut seen,
                (t.asset.as_str(), t.above),
                &format!("{at}.above"),
                "approval_tiers",
                i,
            )?;
        }
        Ok(())
    }
}

impl PolicyDocument {
    /// Parses, normalizes and validates a document written in TOML.
    pub fn from_toml(text: &str) -> Result<Self, DocumentError> {
        let repr: DocumentRepr = toml::from_str(text).map_err(|e| DocumentError::Syntax {
            format: "TOML",
            message: e.message().to_owned(),
        })?;
        Self::try_from(repr)
    }

    /// Parses, normalizes and validates the signed JSON form.
    pub fn from_document_bytes(bytes: &[u8]) -> Result<Self, DocumentError> {
        let repr: DocumentRepr =
            serde_json::from_slice(bytes).map_err(|e| DocumentError::Syntax {
                format: "JSON",
                message: e.to_string(),
            })?;
        Self::try_from(repr)
    }

    /// The signed form: compact JSON, fields in declaration order, maps sorted.
    pub fn to_document_bytes(&self) -> Vec<u8> {
        // Serializing these types cannot fail (string map keys, no custom
        // serializer that errors); an empty result would not parse anywhere.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks the document: a key id, a version of at least 1, valid rules.
    pub fn validate(&self) -> Result<(), DocumentError> {
        check_name("key_id", &self.key_id)?;
        if self.version == 0 {
            return Err(DocumentError::ReservedVersion);
        }
        self.rules.validate()
    }
}

/// SHA-256 of a document's bytes (as signed), for audit records.
pub fn hash(document: &[u8]) -> [u8; 32] {
    Sha256::digest(document).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_daily_amount_or_count_limits_are_rolling() {
        let mut rules = PolicyRules::permissive_dev(vec!["payments".into()]);
        assert!(!rules.has_rolling_limits());
        rules.assets.push(AssetRule {
            asset: "*".into(),
            max_per_tx: Some(Amount::from(5u64)),
            max_per_day: None,
            max_count_per_day: None,
        });
        assert!(!rules.has_rolling_limits());
        rules.assets[0].max_count_per_day = Some(3);
        assert!(rules.has_rolling_limits());
    }

    use super::*;

    const EXAMPLE: &str = r#"
key_id = "key-abc"
version = 2
requesters = ["payments"]
allow_raw = false
accounting_quorum = 3

[[assets]]
asset = "evm:1/native"
max_per_tx = "1000000000000000000"
max_per_day = "5000000000000000000"
max_count_per_day = 20

[[assets]]
asset = "evm:1/0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
max_per_tx = "10000000000"

[[destinations]]
chain = "evm:1"
allow = ["0x1111111111111111111111111111111111111111"]
deny = ["0x000000000000000000000000000000000000DEAD"]

[[contracts]]
chain = "evm:1"
address = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
selectors = ["0xD0E30DB0"]

[approver_groups]
treasury = ["approver-1", "approver-2", "approver-3"]

[[approval_tiers]]
asset = "evm:1/native"
above = "10000000000000000000"
group = "treasury"
required = 2
"#;

    fn example() -> PolicyDocument {
        PolicyDocument::from_toml(EXAMPLE).expect("the example parses")
    }

    fn edited(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "{from:?} is in the example");
        EXAMPLE.replacen(from, to, 1)
    }

    fn invalid_at(text: &str) -> String {
        match PolicyDocument::from_toml(text) {
            Err(DocumentError::Invalid { at, .. }) => at,
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn the_documented_example_parses_with_addresses_in_lowercase() {
        let doc = example();
        assert_eq!(doc.key_id, "key-abc");
        assert_eq!(doc.version, 2);
        let r = &doc.rules;
        assert_eq!(r.requesters, ["payments"]);
        assert!(!r.allow_raw);
        assert_eq!(r.accounting_quorum, Some(3));
        assert_eq!(
            r.assets.get(1).map(|a| a.asset.as_str()),
            Some("evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
        );
        assert_eq!(
            r.assets.first().and_then(|a| a.max_per_day),
            Some(Amount::from(5_000_000_000_000_000_000u64))
        );
        assert_eq!(
            r.destinations.first().map(|d| d.deny.clone()),
            Some(vec![
                "0x000000000000000000000000000000000000dead".to_owned()
            ])
        );
        assert_eq!(
            r.contracts
                .first()
                .map(|c| (c.address.as_str(), c.selectors.clone())),
            Some((
                "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
                vec!["0xd0e30db0".to_owned()]
            ))
        );
        assert_eq!(
            r.approval_tiers
                .first()
                .map(|t| (t.group.as_str(), t.required)),
            Some(("treasury", 2))
        );
    }

    #[test]
    fn toml_to_json_bytes_and_back_gives_the_same_document_and_the_same_bytes() {
        let doc = example();
        let bytes = doc.to_document_bytes();
        let back = PolicyDocument::from_document_bytes(&bytes).expect("signed form parses");
        assert_eq!(back, doc);
        assert_eq!(back.to_document_bytes(), bytes);
        let text = String::from_utf8(bytes).expect("UTF-8");
        assert!(
            text.starts_with(r#"{"key_id":"key-abc","version":2,"requesters":["payments"],"allow_raw":false,"accounting_quorum":3,"assets":[{"asset":"evm:1/native","max_per_tx":"1000000000000000000""#),
            "{text}"
        );
        assert!(
            !text.contains('\n') && !text.contains(": "),
            "compact: {text}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_in_toml_at_every_level() {
        for text in [
            edited(
                "allow_raw = false",
                "allow_raw = false\nallow_everything = true",
            ),
            edited(
                "max_count_per_day = 20",
                "max_count_per_day = 20\nmax_per_week = \"1\"",
            ),
            edited("required = 2", "required = 2\nquorum = 1"),
            edited("selectors = [", "methods = [\"0x12345678\"]\nselectors = ["),
            edited("deny = [", "block = []\ndeny = ["),
        ] {
            assert!(
                matches!(
                    PolicyDocument::from_toml(&text),
                    Err(DocumentError::Syntax { format: "TOML", .. })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_refused_in_json_at_every_level() {
        let json = String::from_utf8(example().to_document_bytes()).expect("UTF-8");
        for text in [
            json.replacen(
                "\"allow_raw\"",
                "\"allow_everything\":true,\"allow_raw\"",
                1,
            ),
            json.replacen("\"max_per_tx\"", "\"max_per_week\":\"1\",\"max_per_tx\"", 1),
            json.replacen("\"required\"", "\"quorum\":1,\"required\"", 1),
        ] {
            assert_ne!(text, json);
            assert!(
                matches!(
                    PolicyDocument::from_document_bytes(text.as_bytes()),
                    Err(DocumentError::Syntax { format: "JSON", .. })
                ),
                "{text}"
            );
        }
        assert!(matches!(
            PolicyDocument::from_document_bytes(b"not json"),
            Err(DocumentError::Syntax { .. })
        ));
    }

    #[test]
    fn rules_deserialize_on_their_own_as_a_configured_default() {
        let rules: PolicyRules = toml::from_str(
            r#"
requesters = ["payments"]
[[assets]]
asset = "evm:1/0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
max_per_tx = "5"
"#,
        )
        .expect("a rules table parses");
        assert_eq!(rules.requesters, ["payments"]);
        assert!(!rules.allow_raw);
        assert_eq!(
            rules.assets.first().map(|a| a.asset.as_str()),
            Some("evm:1/0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48")
        );
        assert!(toml::from_str::<PolicyRules>("requesters = []\nkey_id = \"k\"").is_err());
        let bad = toml::from_str::<PolicyRules>(
            "requesters = []\n[[destinations]]\nchain = \"evm:1\"\nallow = [\"0x12\"]",
        );
        let message = bad.map(|_| ()).map_err(|e| e.to_string());
        assert!(
            message
                .as_ref()
                .is_err_and(|m| m.contains("destinations[0].allow[0]")),
            "{message:?}"
        );
        let json = serde_json::to_string(&rules).expect("serializes");
        assert_eq!(serde_json::from_str::<PolicyRules>(&json).ok(), Some(rules));
    }

    #[test]
    fn the_permissive_development_rules_are_valid_and_allow_raw_signing() {
        let rules = PolicyRules::permissive_dev(vec!["signer".into()]);
        assert_eq!(rules.validate(), Ok(()));
        assert!(rules.allow_raw);
        assert_eq!(rules.assets.first().map(|a| a.asset.as_str()), Some("*"));
    }

    #[test]
    fn version_zero_is_refused_for_a_signed_document() {
        assert_eq!(
            PolicyDocument::from_toml(&edited("version = 2", "version = 0")),
            Err(DocumentError::ReservedVersion)
        );
    }

    #[test]
    fn malformed_values_are_refused_naming_the_field() {
        let cases = [
            (edited("key_id = \"key-abc\"", "key_id = \"\""), "key_id"),
            (
                edited(
                    "requesters = [\"payments\"]",
                    "requesters = [\"payments\", \"payments\"]",
                ),
                "requesters[1]",
            ),
            (
                edited("accounting_quorum = 3", "accounting_quorum = 0"),
                "accounting_quorum",
            ),
            (
                edited("asset = \"evm:1/native\"", "asset = \"ethereum/native\""),
                "assets[0].asset",
            ),
            (
                edited("asset = \"evm:1/0xA0b8", "asset = \"evm:1/0xZZb8"),
                "assets[1].asset",
            ),
            (
                edited(
                    "asset = \"evm:1/0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48\"",
                    "asset = \"EVM:1/NATIVE\"",
                ),
                "assets[1].asset",
            ),
            (
                edited("chain = \"evm:1\"", "chain = \"evm:01\""),
                "destinations[0].chain",
            ),
            (
                edited(
                    "allow = [\"0x1111111111111111111111111111111111111111\"]",
                    "allow = [\"0x1111\"]",
                ),
                "destinations[0].allow[0]",
            ),
            (
                edited("selectors = [\"0xD0E30DB0\"]", "selectors = [\"d0e30db0\"]"),
                "contracts[0].selectors[0]",
            ),
            (
                edited(
                    "selectors = [\"0xD0E30DB0\"]",
                    "selectors = [\"0xd0e30db000\"]",
                ),
                "contracts[0].selectors[0]",
            ),
            (
                edited(
                    "address = \"0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\"",
                    "address = \"weth\"",
                ),
                "contracts[0].address",
            ),
            (
                edited("group = \"treasury\"", "group = \"board\""),
                "approval_tiers[0].group",
            ),
            (
                edited("required = 2", "required = 4"),
                "approval_tiers[0].required",
            ),
            (
                edited("required = 2", "required = 0"),
                "approval_tiers[0].required",
            ),
            (
                edited(
                    "treasury = [\"approver-1\", \"approver-2\", \"approver-3\"]",
                    "treasury = []",
                ),
                "approver_groups.treasury",
            ),
            (
                edited(
                    "treasury = [\"approver-1\", \"approver-2\", \"approver-3\"]",
                    "treasury = [\"a\", \"a\"]",
                ),
                "approver_groups.treasury[1]",
            ),
        ];
        for (text, at) in cases {
            assert_eq!(invalid_at(&text), at, "{text}");
        }
    }

    #[test]
    fn duplicate_assets_destinations_contracts_and_tiers_are_refused() {
        let twice = |from: &str, to: &str| invalid_at(&edited(from, to));
        assert_eq!(
            twice(
                "[[destinations]]",
                "[[assets]]\nasset = \"evm:1/native\"\n\n[[destinations]]"
            ),
            "assets[2].asset"
        );
        assert_eq!(
            twice(
                "[[contracts]]",
                "[[destinations]]\nchain = \"evm:1\"\n\n[[contracts]]"
            ),
            "destinations[1].chain"
        );
        assert_eq!(
            twice(
                "[approver_groups]",
                "[[contracts]]\nchain = \"evm:1\"\naddress = \"0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2\"\n\n[approver_groups]"
            ),
            "contracts[1].address"
        );
        let tier = "\n[[approval_tiers]]\nasset = \"evm:1/native\"\nabove = \"10000000000000000000\"\ngroup = \"treasury\"\nrequired = 3\n";
        assert_eq!(
            invalid_at(&format!("{EXAMPLE}{tier}")),
            "approval_tiers[1].above"
        );
    }

    #[test]
    fn amounts_must_be_decimal_strings() {
        for (from, to) in [
            (
                "max_per_tx = \"1000000000000000000\"",
                "max_per_tx = \"1.5\"",
            ),
            ("max_per_tx = \"1000000000000000000\"", "max_per_tx = 1000"),
            ("above = \"10000000000000000000\"", "above = \"1e19\""),
        ] {
            assert!(
                matches!(
                    PolicyDocument::from_toml(&edited(from, to)),
                    Err(DocumentError::Syntax { .. })
                ),
                "{to}"
            );
        }
    }

    #[test]
    fn the_example_in_the_module_documentation_parses() {
        let source = include_str!("document.rs");
        let toml: String = source
            .lines()
            .skip_while(|l| *l != "//! ```toml")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect();
        assert!(toml.contains("[[approval_tiers]]"), "{toml}");
        let doc = PolicyDocument::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        assert_eq!(doc.version, 2);
        assert_eq!(doc.rules.contracts.len(), 1);
    }

    #[test]
    fn the_document_hash_is_sha256_of_the_bytes_as_signed() {
        assert_eq!(
            hex::encode(hash(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
