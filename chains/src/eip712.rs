//! EIP-712 typed structured data (`eth_signTypedData_v4`): what is signed,
//! and which token approvals a message grants.
//!
//! [`parse_typed_data`] reads the JSON a dapp hands to
//! `eth_signTypedData_v4` (`types`, `primaryType`, `domain`, `message`) with
//! alloy-dyn-abi's [`TypedData`], checks it far more strictly than alloy
//! does, and computes (with alloy, not by hand):
//!
//! ```text
//! domainSeparator = hashStruct(EIP712Domain, domain)
//! preimage        = 0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(primaryType, message)   (66 bytes)
//! signing hash    = keccak256(preimage)
//! ```
//!
//! # What is refused
//!
//! | input | why |
//! |---|---|
//! | more than [`MAX_TYPED_DATA_LEN`] bytes | size limit |
//! | invalid JSON, trailing characters | not JSON |
//! | the same key twice in any JSON object (top level, `types`, `domain`, `message`, nested structs; after unescaping, so `"a"` and `"\u0061"` collide) | two readings of one document: alloy (like `serde_json::Value`) silently keeps the last one |
//! | a top-level value that is not an object, a top-level key other than `types`, `primaryType`, `domain`, `message`, or one of them missing | alloy also accepts a JSON *string* holding the document, defaults a missing `domain` or `message`, and ignores other keys |
//! | a field definition other than `{"name": …, "type": …}`, a field name that is not an identifier, a struct with two fields of one name | alloy reads both same-named fields from one message value |
//! | a struct named like a Solidity type (`address`, `uint256`, …), an invalid type name | alloy silently drops some invalid definitions and resolves basic names to the basic type |
//! | a field of an undefined type, cyclic or self-referencing structs (checked for every struct, used or not) | cannot be encoded |
//! | tuple or `function` fields | not EIP-712 types |
//! | `primaryType` missing from `types`, or `EIP712Domain` itself | nothing (or only the domain) would be signed |
//! | no `EIP712Domain` in `types`, or one other than the canonical fields present in `domain`, in canonical order (`string name`, `string version`, `uint256 chainId`, `address verifyingContract`, `bytes32 salt`) | alloy hashes the domain from its own canonical definition and ignores `types.EIP712Domain`; wallets hash it from `types`: both must agree |
//! | a `domain` key outside those five, a `null` domain value | alloy ignores unknown keys |
//! | a message object with a field its struct does not define, or without one it does | alloy ignores extra fields (they are not signed) |
//! | a value that does not fit its type (alloy's coercion: strings for `string`, integers within the bit width, hex of the right length for `bytesN`, …) | |
//! | an address that is not `0x` + 40 hex digits, or whose mixed case fails its EIP-55 checksum | alloy accepts hex without `0x` and ignores the checksum |
//! | an integer written as anything but a JSON integer, decimal digits (`-` allowed for `intN`) or `0x`-hex | alloy also reads `""` as 0, skips `_`, and accepts `0b`/`0o` prefixes |
//! | an EIP-2612 or DAI permit whose domain has no `verifyingContract` | the token it approves is unknown |
//!
//! A domain without `chainId` is accepted and reported as such
//! ([`Domain::chain_id`] is `None`); [`Domain::evm_chain_id`] reads a chain id
//! that names an EVM chain (1 to 2^64 − 1).
//!
//! # Token approvals
//!
//! A message is reported as an [`Approval`] when the `encodeType` of its
//! primary type is *exactly* one of these (same struct names, field names,
//! field types and order); anything else, a misnamed field included, is
//! [`TypedDataKind::Other`]:
//!
//! | [`ApprovalStandard`] | primary type | domain | allowances (token, spender, amount) |
//! |---|---|---|---|
//! | `Eip2612` | `Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)` | any, with `verifyingContract` (the token) | (verifyingContract, spender, value) |
//! | `DaiPermit` | `Permit(address holder,address spender,uint256 nonce,uint256 expiry,bool allowed)` | any, with `verifyingContract` (the token) | (verifyingContract, spender, `U256::MAX` if allowed else 0) |
//! | `Permit2Single` | `PermitSingle(PermitDetails details,address spender,uint256 sigDeadline)` | name `Permit2`, verifyingContract [`PERMIT2_ADDRESS`] | (details.token, spender, details.amount) |
//! | `Permit2Batch` | `PermitBatch(PermitDetails[] details,address spender,uint256 sigDeadline)` | same | one per details entry |
//! | `Permit2TransferFrom` | `PermitTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline)` | same | (permitted.token, spender, permitted.amount) |
//! | `Permit2BatchTransferFrom` | `PermitBatchTransferFrom(TokenPermissions[] permitted,address spender,uint256 nonce,uint256 deadline)` | same | one per permitted entry |
//!
//! with `PermitDetails(address token,uint160 amount,uint48 expiration,uint48 nonce)`
//! and `TokenPermissions(address token,uint256 amount)` (Uniswap's
//! `PermitHash.sol`). Permit2's witness variants (`PermitWitnessTransferFrom`,
//! …) are not recognized: they are other typed data. Every value reported is
//! read from the same coerced message that is hashed.

use std::collections::BTreeSet;
use std::fmt;

use alloy_dyn_abi::{
    DynSolType, DynSolValue, Eip712Domain, PropertyDef, Resolver, TypeDef, TypedData,
};
use alloy_primitives::{Address, B256, U256, address, keccak256};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::ethereum::parse_address;

/// The largest typed-data JSON accepted, in bytes (64 KiB).
pub const MAX_TYPED_DATA_LEN: usize = 64 * 1024;

/// Uniswap's Permit2, deployed at the same address on every chain
/// (`Permit2Lib.PERMIT2`, `DeployPermit2.PERMIT2_ADDRESS`).
pub const PERMIT2_ADDRESS: Address = address!("000000000022D473030F116dDEE9F6B43aC78BA3");

/// The EIP-712 domain name of Permit2 (`EIP712.sol`: `keccak256("Permit2")`).
pub const PERMIT2_DOMAIN_NAME: &str = "Permit2";

/// EIP-2612 `Permit` (OpenZeppelin `ERC20Permit`, USDC `FiatTokenV2`).
pub const EIP2612_PERMIT_TYPE: &str =
    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)";
/// The DAI (MakerDAO `dai.sol`) `Permit`.
pub const DAI_PERMIT_TYPE: &str =
    "Permit(address holder,address spender,uint256 nonce,uint256 expiry,bool allowed)";
/// Permit2 `PermitSingle` (`PermitHash._PERMIT_SINGLE_TYPEHASH`).
pub const PERMIT2_SINGLE_TYPE: &str = "PermitSingle(PermitDetails details,address spender,uint256 sigDeadline)PermitDetails(address token,uint160 amount,uint48 expiration,uint48 nonce)";
/// Permit2 `PermitBatch` (`PermitHash._PERMIT_BATCH_TYPEHASH`).
pub const PERMIT2_BATCH_TYPE: &str = "PermitBatch(PermitDetails[] details,address spender,uint256 sigDeadline)PermitDetails(address token,uint160 amount,uint48 expiration,uint48 nonce)";
/// Permit2 `PermitTransferFrom` (`PermitHash._PERMIT_TRANSFER_FROM_TYPEHASH`).
pub const PERMIT2_TRANSFER_FROM_TYPE: &str = "PermitTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline)TokenPermissions(address token,uint256 amount)";
/// Permit2 `PermitBatchTransferFrom`
/// (`PermitHash._PERMIT_BATCH_TRANSFER_FROM_TYPEHASH`).
pub const PERMIT2_BATCH_TRANSFER_FROM_TYPE: &str = "PermitBatchTransferFrom(TokenPermissions[] permitted,address spender,uint256 nonce,uint256 deadline)TokenPermissions(address token,uint256 amount)";

/// The domain fields EIP-712 defines, in canonical order, with their types.
const DOMAIN_FIELDS: [(&str, &str); 5] = [
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
];

const DOMAIN_TYPE: &str = "EIP712Domain";

/// Why typed data is refused (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Eip712Error {
    #[error("the typed data is {len} bytes; at most {max} bytes are accepted")]
    TooLong { len: usize, max: usize },
    #[error("not JSON: {0}")]
    Json(String),
    #[error("duplicate JSON key: {0}")]
    DuplicateKey(String),
    #[error("not eth_signTypedData_v4 typed data: {0}")]
    Shape(String),
    #[error("invalid types: {0}")]
    Types(String),
    #[error("invalid primaryType: {0}")]
    PrimaryType(String),
    #[error("invalid domain: {0}")]
    Domain(String),
    #[error("the message does not match its types: {0}")]
    Message(String),
    #[error("{0} without a domain verifyingContract: the token it approves is unknown")]
    PermitWithoutToken(ApprovalStandard),
    #[error("domain chainId {0} names no EVM chain (1 to 2^64 - 1)")]
    ChainId(U256),
    #[error("EIP-712 encoding failed: {0}")]
    Encoding(String),
}

/// The signing domain, as the message gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Domain {
    pub name: Option<String>,
    pub version: Option<String>,
    /// `None`: the domain has no `chainId` (the signature is valid on every
    /// chain where the verifying contract accepts it).
    pub chain_id: Option<U256>,
    pub verifying_contract: Option<Address>,
    pub salt: Option<B256>,
}

impl Domain {
    /// The chain id as an EVM chain id: `None` without one, an error for 0
    /// or a value above `u64::MAX`.
    pub fn evm_chain_id(&self) -> Result<Option<u64>, Eip712Error> {
        match self.chain_id {
            None => Ok(None),
            Some(id) => match u64::try_from(id) {
                Ok(id) if id > 0 => Ok(Some(id)),
                _ => Err(Eip712Error::ChainId(id)),
            },
        }
    }

    fn from_alloy(domain: &Eip712Domain) -> Self {
        Self {
            name: domain.name.as_deref().map(str::to_owned),
            version: domain.version.as_deref().map(str::to_owned),
            chain_id: domain.chain_id,
            verifying_contract: domain.verifying_contract,
            salt: domain.salt,
        }
    }
}

/// The token-approval standards recognized (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApprovalStandard {
    /// EIP-2612 `Permit` (`value` to `spender` until `deadline`).
    Eip2612,
    /// DAI `Permit` (`allowed`: unlimited or nothing).
    DaiPermit,
    /// Permit2 `PermitSingle` (allowance transfer).
    Permit2Single,
    /// Permit2 `PermitBatch` (allowance transfer).
    Permit2Batch,
    /// Permit2 `PermitTransferFrom` (one-time signature transfer).
    Permit2TransferFrom,
    /// Permit2 `PermitBatchTransferFrom` (one-time signature transfer).
    Permit2BatchTransferFrom,
}

impl ApprovalStandard {
    /// A short name (messages, logs).
    pub fn name(self) -> &'static str {
        match self {
            ApprovalStandard::Eip2612 => "EIP-2612 permit",
            ApprovalStandard::DaiPermit => "DAI permit",
            ApprovalStandard::Permit2Single => "Permit2 PermitSingle",
            ApprovalStandard::Permit2Batch => "Permit2 PermitBatch",
            ApprovalStandard::Permit2TransferFrom => "Permit2 PermitTransferFrom",
            ApprovalStandard::Permit2BatchTransferFrom => "Permit2 PermitBatchTransferFrom",
        }
    }
}

impl fmt::Display for ApprovalStandard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Value one spender may move of one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowance {
    pub token: Address,
    pub spender: Address,
    /// In the token's base units (DAI `allowed = true`: `U256::MAX`).
    pub amount: U256,
    /// Permit2 allowance transfers: when the allowance itself expires
    /// (`details.expiration`, a Unix time; 0 means the block time of the
    /// `permit` call). `None` for the others.
    pub expiration: Option<u64>,
}

/// A recognized token approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub standard: ApprovalStandard,
    /// The token owner the message names (EIP-2612 `owner`, DAI `holder`);
    /// `None` for Permit2, whose owner is the signer. Nothing here checks
    /// it against a key.
    pub owner: Option<Address>,
    /// Until when the signature can be used (EIP-2612 `deadline`, DAI
    /// `expiry` where 0 means never, Permit2 `sigDeadline` / `deadline`).
    pub deadline: U256,
    /// What the signature allows, in message order (a batch may be empty).
    pub allowances: Vec<Allowance>,
}

/// What a typed message means, as far as Sigil can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypedDataKind {
    /// A token approval (see the module docs).
    Approval(Approval),
    /// Anything else: its meaning is the verifying contract's.
    Other,
}

/// Checked typed data with its hashes.
#[derive(Clone, Debug)]
pub struct TypedMessage {
    typed_data: TypedData,
    domain: Domain,
    encode_type: String,
    domain_separator: B256,
    struct_hash: B256,
    signing_hash: B256,
    kind: TypedDataKind,
}

impl TypedMessage {
    /// The typed data as alloy reads it.
    pub fn typed_data(&self) -> &TypedData {
        &self.typed_data
    }

    /// The signing domain.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The primary type's name.
    pub fn primary_type(&self) -> &str {
        &self.typed_data.primary_type
    }

    /// The primary type's EIP-712 `encodeType` (its type hash preimage).
    pub fn encode_type(&self) -> &str {
        &self.encode_type
    }

    /// `hashStruct(EIP712Domain, domain)`.
    pub fn domain_separator(&self) -> B256 {
        self.domain_separator
    }

    /// `hashStruct(primaryType, message)`.
    pub fn struct_hash(&self) -> B256 {
        self.struct_hash
    }

    /// `0x19 ‖ 0x01 ‖ domainSeparator ‖ hashStruct(message)`: the 66 bytes
    /// whose Keccak-256 is signed.
    pub fn signing_preimage(&self) -> [u8; 66] {
        signing_preimage(&self.domain_separator, &self.struct_hash)
    }

    /// Keccak-256 of [`Self::signing_preimage`] (alloy's
    /// `eip712_signing_hash`): the digest ECDSA signs.
    pub fn signing_hash(&self) -> B256 {
        self.signing_hash
    }

    /// Approval or other typed data.
    pub fn kind(&self) -> &TypedDataKind {
        &self.kind
    }

    /// The approval, if the message is one.
    pub fn approval(&self) -> Option<&Approval> {
        match &self.kind {
            TypedDataKind::Approval(approval) => Some(approval),
            TypedDataKind::Other => None,
        }
    }
}

fn signing_preimage(domain_separator: &B256, struct_hash: &B256) -> [u8; 66] {
    let mut out = [0u8; 66];
    out[0] = 0x19;
    out[1] = 0x01;
    out[2..34].copy_from_slice(domain_separator.as_slice());
    out[34..].copy_from_slice(struct_hash.as_slice());
    out
}

/// Reads and checks `eth_signTypedData_v4` JSON (see the module docs).
pub fn parse_typed_data(json: &str) -> Result<TypedMessage, Eip712Error> {
    if json.len() > MAX_TYPED_DATA_LEN {
        return Err(Eip712Error::TooLong {
            len: json.len(),
            max: MAX_TYPED_DATA_LEN,
        });
    }
    // Syntax first (serde_json's own reading), then duplicate keys: the
    // only data error the second pass raises.
    let root: Value = serde_json::from_str(json).map_err(|e| Eip712Error::Json(e.to_string()))?;
    serde_json::from_str::<NoDuplicateKeys>(json)
        .map_err(|e| Eip712Error::DuplicateKey(e.to_string()))?;
    let root = root
        .as_object()
        .ok_or_else(|| Eip712Error::Shape("the typed data is not a JSON object".into()))?;
    const TOP: [&str; 4] = ["types", "primaryType", "domain", "message"];
    if let Some(key) = root.keys().find(|k| !TOP.contains(&k.as_str())) {
        return Err(Eip712Error::Shape(format!(
            "unknown key {key:?} (expected types, primaryType, domain, message)"
        )));
    }
    let get = |key: &str| {
        root.get(key)
            .ok_or_else(|| Eip712Error::Shape(format!("{key} is missing")))
    };
    let (types, primary, domain, message) = (
        get("types")?,
        get("primaryType")?,
        get("domain")?,
        get("message")?,
    );

    let resolver = read_types(types)?;
    let primary = primary
        .as_str()
        .ok_or_else(|| Eip712Error::PrimaryType("primaryType is not a string".into()))?;
    if primary == DOMAIN_TYPE {
        return Err(Eip712Error::PrimaryType(
            "EIP712Domain is not a message type (only the domain would be signed)".into(),
        ));
    }
    if !resolver.contains_type_name(primary) {
        return Err(Eip712Error::PrimaryType(format!(
            "{primary:?} is not defined in types"
        )));
    }
    let alloy_domain = read_domain(domain, &resolver)?;

    let primary_ty = resolver
        .resolve(primary)
        .map_err(|e| Eip712Error::Types(e.to_string()))?;
    check_value(&primary_ty, message, "message")?;

    let typed_data = TypedData {
        domain: alloy_domain,
        resolver,
        primary_type: primary.to_owned(),
        message: message.clone(),
    };
    let coerced = typed_data
        .coerce()
        .map_err(|e| Eip712Error::Message(e.to_string()))?;
    let encode_type = typed_data
        .encode_type()
        .map_err(|e| Eip712Error::Types(e.to_string()))?;
    let domain_separator = typed_data.domain.separator();
    let struct_hash = typed_data
        .hash_struct()
        .map_err(|e| Eip712Error::Encoding(e.to_string()))?;
    let signing_hash = typed_data
        .eip712_signing_hash()
        .map_err(|e| Eip712Error::Encoding(e.to_string()))?;
    if keccak256(signing_preimage(&domain_separator, &struct_hash)) != signing_hash {
        return Err(Eip712Error::Encoding(
            "the signing hash is not Keccak-256 of 0x1901 ‖ domainSeparator ‖ hashStruct".into(),
        ));
    }

    let domain = Domain::from_alloy(&typed_data.domain);
    let kind = classify(&encode_type, &domain, &coerced)?;
    Ok(TypedMessage {
        typed_data,
        domain,
        encode_type,
        domain_separator,
        struct_hash,
        signing_hash,
        kind,
    })
}

// ---------------------------------------------------------------------------
// Strict JSON: duplicate keys refused
// ---------------------------------------------------------------------------

/// A pass over the JSON that only checks that no object repeats a key
/// (`serde_json::Value`, like alloy, silently keeps the last one). The
/// document is then read by `serde_json` itself, so this pass cannot change
/// how a value is read.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self, D::Error> {
        NoDuplicateKeys::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut keys = BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<NoDuplicateKeys>()?;
            if !keys.insert(key.clone()) {
                return Err(de::Error::custom(format!("key {key:?} appears twice")));
            }
        }
        Ok(self)
    }
}

// ---------------------------------------------------------------------------
// types, domain
// ---------------------------------------------------------------------------

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

/// Reads `types` into alloy's resolver, refusing everything alloy would
/// drop or read loosely.
fn read_types(types: &Value) -> Result<Resolver, Eip712Error> {
    let bad = |why: String| Eip712Error::Types(why);
    let types = types
        .as_object()
        .ok_or_else(|| bad("types is not an object".into()))?;
    let mut resolver = Resolver::default();
    for (name, fields) in types {
        if DynSolType::parse(name).is_ok() {
            return Err(bad(format!(
                "{name:?} is a Solidity type and cannot name a struct"
            )));
        }
        let fields = fields
            .as_array()
            .ok_or_else(|| bad(format!("{name}: the field list is not an array")))?;
        let mut seen = BTreeSet::new();
        let mut props = Vec::with_capacity(fields.len());
        for field in fields {
            let field = field
                .as_object()
                .ok_or_else(|| bad(format!("{name}: a field is not an object")))?;
            if let Some(key) = field.keys().find(|k| *k != "name" && *k != "type") {
                return Err(bad(format!(
                    "{name}: unknown key {key:?} in a field (expected name and type)"
                )));
            }
            let text = |key: &str| {
                field.get(key).and_then(Value::as_str).ok_or_else(|| {
                    bad(format!(
                        "{name}: a field's {key} is missing or not a string"
                    ))
                })
            };
            let (field_name, field_type) = (text("name")?, text("type")?);
            if !is_identifier(field_name) {
                return Err(bad(format!(
                    "{name}: field name {field_name:?} is not an identifier"
                )));
            }
            if !seen.insert(field_name) {
                return Err(bad(format!(
                    "{name}: field {field_name:?} is defined twice"
                )));
            }
            props.push(
                PropertyDef::new(field_type, field_name)
                    .map_err(|e| bad(format!("{name}.{field_name}: {e}")))?,
            );
        }
        let def = TypeDef::new(name.clone(), props).map_err(|e| bad(format!("{name:?}: {e}")))?;
        resolver.ingest(def);
    }
    // Every struct must resolve: no undefined field types, no cycles.
    for name in types.keys() {
        resolver
            .resolve(name)
            .map_err(|e| bad(format!("{name}: {e}")))
            .and_then(|ty| check_eip712_type(&ty).map_err(|e| bad(format!("{name}: {e}"))))?;
    }
    Ok(resolver)
}

/// Refuses types alloy resolves that EIP-712 does not have.
fn check_eip712_type(ty: &DynSolType) -> Result<(), String> {
    match ty {
        DynSolType::Tuple(_) => Err("tuple types are not EIP-712 types".into()),
        DynSolType::Function => Err("function is not an EIP-712 type".into()),
        DynSolType::Array(inner) | DynSolType::FixedArray(inner, _) => check_eip712_type(inner),
        DynSolType::CustomStruct { tuple, .. } => tuple.iter().try_for_each(check_eip712_type),
        _ => Ok(()),
    }
}

/// Reads `domain`, checking it against `types.EIP712Domain`.
fn read_domain(domain: &Value, resolver: &Resolver) -> Result<Eip712Domain, Eip712Error> {
    let bad = |why: String| Eip712Error::Domain(why);
    let object = domain
        .as_object()
        .ok_or_else(|| bad("domain is not an object".into()))?;
    if let Some(key) = object
        .keys()
        .find(|k| !DOMAIN_FIELDS.iter().any(|(name, _)| name == k))
    {
        return Err(bad(format!(
            "unknown key {key:?} (EIP-712 domains have name, version, chainId, verifyingContract, salt)"
        )));
    }
    if let Some((key, _)) = object.iter().find(|(_, v)| v.is_null()) {
        return Err(bad(format!("{key} is null")));
    }
    if let Some(contract) = object.get("verifyingContract") {
        check_address(contract).map_err(|e| bad(format!("verifyingContract: {e}")))?;
    }
    if let Some(chain_id) = object.get("chainId") {
        check_integer(chain_id, false).map_err(|e| bad(format!("chainId: {e}")))?;
    }
    let expected: Vec<String> = DOMAIN_FIELDS
        .iter()
        .filter(|(name, _)| object.contains_key(*name))
        .map(|(name, ty)| format!("{ty} {name}"))
        .collect();
    let declared: Vec<String> = resolver
        .linearize(DOMAIN_TYPE)
        .ok()
        .and_then(|defs| defs.into_iter().find(|d| d.type_name() == DOMAIN_TYPE))
        .ok_or_else(|| {
            Eip712Error::Types(
                "EIP712Domain is not defined (it must list the domain's fields)".into(),
            )
        })?
        .props()
        .iter()
        .map(|p| format!("{} {}", p.type_name(), p.name()))
        .collect();
    if declared != expected {
        return Err(Eip712Error::Types(format!(
            "EIP712Domain({}) does not match the domain given: expected EIP712Domain({})",
            declared.join(","),
            expected.join(",")
        )));
    }
    serde_json::from_value::<Eip712Domain>(domain.clone()).map_err(|e| bad(e.to_string()))
}

// ---------------------------------------------------------------------------
// message
// ---------------------------------------------------------------------------

fn check_address(value: &Value) -> Result<(), String> {
    let s = value.as_str().ok_or("an address is a string")?;
    parse_address(s).map(|_| ()).map_err(|e| e.to_string())
}

/// Integers: a JSON integer, or a string of decimal digits (with a leading
/// `-` for signed types) or `0x`-hex digits. The range is alloy's check.
fn check_integer(value: &Value, signed: bool) -> Result<(), String> {
    match value {
        Value::Number(n) if n.is_u64() || (signed && n.is_i64()) => Ok(()),
        Value::Number(n) => Err(format!("{n} is not an integer of this type")),
        Value::String(s) => {
            let digits = if signed {
                s.strip_prefix('-').unwrap_or(s)
            } else {
                s
            };
            let ok = match digits.strip_prefix("0x") {
                Some(hex) => {
                    !hex.is_empty() && digits == s && hex.bytes().all(|b| b.is_ascii_hexdigit())
                }
                None => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            };
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "{s:?} is not an integer (decimal digits or 0x-hex)"
                ))
            }
        }
        _ => Err("an integer is a JSON integer or a string".into()),
    }
}

/// Walks `value` along `ty`: every struct object has exactly its fields,
/// arrays have the right shape, addresses and integers are written strictly,
/// and every leaf is coerced (range-checked) by alloy, the error naming its
/// path. The whole message is coerced once more for hashing.
fn check_value(ty: &DynSolType, value: &Value, path: &str) -> Result<(), Eip712Error> {
    let bad = |why: String| Eip712Error::Message(format!("{path}: {why}"));
    match ty {
        DynSolType::CustomStruct {
            name,
            prop_names,
            tuple,
        } => {
            let object = value
                .as_object()
                .ok_or_else(|| bad(format!("a {name} is an object")))?;
            if let Some(key) = object.keys().find(|k| !prop_names.contains(k)) {
                return Err(bad(format!("{key:?} is not a field of {name}")));
            }
            for (field, field_ty) in prop_names.iter().zip(tuple) {
                let v = object
                    .get(field)
                    .ok_or_else(|| bad(format!("field {field:?} of {name} is missing")))?;
                check_value(field_ty, v, &format!("{path}.{field}"))?;
            }
            Ok(())
        }
        DynSolType::Array(inner) => {
            let items = value
                .as_array()
                .ok_or_else(|| bad("an array type takes a JSON array".into()))?;
            for (i, item) in items.iter().enumerate() {
                check_value(inner, item, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        DynSolType::FixedArray(inner, n) => {
            let items = value
                .as_array()
                .ok_or_else(|| bad("an array type takes a JSON array".into()))?;
            if items.len() != *n {
                return Err(bad(format!("{} items where {n} are expected", items.len())));
            }
            for (i, item) in items.iter().enumerate() {
                check_value(inner, item, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        DynSolType::Tuple(_) | DynSolType::Function => Err(bad("not an EIP-712 type".into())),
        DynSolType::Address
        | DynSolType::Uint(_)
        | DynSolType::Int(_)
        | DynSolType::Bool
        | DynSolType::FixedBytes(_)
        | DynSolType::Bytes
        | DynSolType::String => {
            match ty {
                DynSolType::Address => check_address(value).map_err(&bad)?,
                DynSolType::Uint(_) => check_integer(value, false).map_err(&bad)?,
                DynSolType::Int(_) => check_integer(value, true).map_err(&bad)?,
                _ => {}
            }
            // alloy's own reading, here only to name the field in errors.
            ty.coerce_json(value)
                .map(|_| ())
                .map_err(|e| bad(e.to_string()))
        }
    }
}

// ---------------------------------------------------------------------------
// approvals
// ---------------------------------------------------------------------------

fn classify(
    encode_type: &str,
    domain: &Domain,
    message: &DynSolValue,
) -> Result<TypedDataKind, Eip712Error> {
    let is_permit2 = domain.name.as_deref() == Some(PERMIT2_DOMAIN_NAME)
        && domain.verifying_contract == Some(PERMIT2_ADDRESS);
    let standard = match encode_type {
        EIP2612_PERMIT_TYPE => ApprovalStandard::Eip2612,
        DAI_PERMIT_TYPE => ApprovalStandard::DaiPermit,
        PERMIT2_SINGLE_TYPE if is_permit2 => ApprovalStandard::Permit2Single,
        PERMIT2_BATCH_TYPE if is_permit2 => ApprovalStandard::Permit2Batch,
        PERMIT2_TRANSFER_FROM_TYPE if is_permit2 => ApprovalStandard::Permit2TransferFrom,
        PERMIT2_BATCH_TRANSFER_FROM_TYPE if is_permit2 => {
            ApprovalStandard::Permit2BatchTransferFrom
        }
        _ => return Ok(TypedDataKind::Other),
    };
    let token = || {
        domain
            .verifying_contract
            .ok_or(Eip712Error::PermitWithoutToken(standard))
    };
    let approval = match standard {
        ApprovalStandard::Eip2612 => Approval {
            standard,
            owner: Some(address_of(field(message, "owner")?)?),
            deadline: uint_of(field(message, "deadline")?)?,
            allowances: vec![Allowance {
                token: token()?,
                spender: address_of(field(message, "spender")?)?,
                amount: uint_of(field(message, "value")?)?,
                expiration: None,
            }],
        },
        ApprovalStandard::DaiPermit => {
            let allowed = field(message, "allowed")?
                .as_bool()
                .ok_or_else(|| internal("allowed"))?;
            Approval {
                standard,
                owner: Some(address_of(field(message, "holder")?)?),
                deadline: uint_of(field(message, "expiry")?)?,
                allowances: vec![Allowance {
                    token: token()?,
                    spender: address_of(field(message, "spender")?)?,
                    amount: if allowed { U256::MAX } else { U256::ZERO },
                    expiration: None,
                }],
            }
        }
        ApprovalStandard::Permit2Single | ApprovalStandard::Permit2Batch => {
            let spender = address_of(field(message, "spender")?)?;
            let details = field(message, "details")?;
            let details: Vec<&DynSolValue> = match standard {
                ApprovalStandard::Permit2Single => vec![details],
                _ => details
                    .as_array()
                    .ok_or_else(|| internal("details"))?
                    .iter()
                    .collect(),
            };
            let allowances = details
                .into_iter()
                .map(|d| {
                    let expiration = uint_of(field(d, "expiration")?)?;
                    Ok(Allowance {
                        token: address_of(field(d, "token")?)?,
                        spender,
                        amount: uint_of(field(d, "amount")?)?,
                        expiration: Some(
                            u64::try_from(expiration).map_err(|_| internal("expiration"))?,
                        ),
                    })
                })
                .collect::<Result<_, Eip712Error>>()?;
            Approval {
                standard,
                owner: None,
                deadline: uint_of(field(message, "sigDeadline")?)?,
                allowances,
            }
        }
        ApprovalStandard::Permit2TransferFrom | ApprovalStandard::Permit2BatchTransferFrom => {
            let spender = address_of(field(message, "spender")?)?;
            let permitted = field(message, "permitted")?;
            let permitted: Vec<&DynSolValue> = match standard {
                ApprovalStandard::Permit2TransferFrom => vec![permitted],
                _ => permitted
                    .as_array()
                    .ok_or_else(|| internal("permitted"))?
                    .iter()
                    .collect(),
            };
            let allowances = permitted
                .into_iter()
                .map(|p| {
                    Ok(Allowance {
                        token: address_of(field(p, "token")?)?,
                        spender,
                        amount: uint_of(field(p, "amount")?)?,
                        expiration: None,
                    })
                })
                .collect::<Result<_, Eip712Error>>()?;
            Approval {
                standard,
                owner: None,
                deadline: uint_of(field(message, "deadline")?)?,
                allowances,
            }
        }
    };
    Ok(TypedDataKind::Approval(approval))
}

/// A value that cannot be missing once the type matched: reported, not
/// unwrapped.
fn internal(what: &str) -> Eip712Error {
    Eip712Error::Encoding(format!("the coerced message has no usable {what}"))
}

fn field<'a>(value: &'a DynSolValue, name: &str) -> Result<&'a DynSolValue, Eip712Error> {
    let (_, names, values) = value.as_custom_struct().ok_or_else(|| internal(name))?;
    names
        .iter()
        .position(|n| n == name)
        .and_then(|i| values.get(i))
        .ok_or_else(|| internal(name))
}

fn address_of(value: &DynSolValue) -> Result<Address, Eip712Error> {
    value.as_address().ok_or_else(|| internal("address"))
}

fn uint_of(value: &DynSolValue) -> Result<U256, Eip712Error> {
    value
        .as_uint()
        .map(|(v, _)| v)
        .ok_or_else(|| internal("integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_letters_digits_underscores_and_dollars_not_starting_with_a_digit() {
        assert!(is_identifier("sigDeadline"));
        assert!(is_identifier("_x$1"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("1x"));
        assert!(!is_identifier("a b"));
        assert!(!is_identifier("a,b"));
    }

    #[test]
    fn integers_are_json_integers_decimal_or_hex_strings() {
        for ok in [
            Value::from(7u64),
            Value::from("0"),
            Value::from("123"),
            Value::from("0x1f"),
        ] {
            assert_eq!(check_integer(&ok, false), Ok(()), "{ok}");
        }
        for bad in [
            Value::from(""),
            Value::from("1_000"),
            Value::from("0b101"),
            Value::from("0x"),
            Value::from("-1"),
            Value::from(1.5),
            Value::from(-1i64),
            Value::Bool(true),
        ] {
            assert!(check_integer(&bad, false).is_err(), "{bad}");
        }
        assert_eq!(check_integer(&Value::from("-5"), true), Ok(()));
        assert_eq!(check_integer(&Value::from(-5i64), true), Ok(()));
        assert!(check_integer(&Value::from("-0x5"), true).is_err());
    }

    #[test]
    fn the_permit2_address_is_the_canonical_deployment() {
        assert_eq!(
            PERMIT2_ADDRESS.to_checksum(None),
            "0x000000000022D473030F116dDEE9F6B43aC78BA3"
        );
    }
}
