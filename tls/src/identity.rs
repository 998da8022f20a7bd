//! SPIFFE identities carried in certificates' URI SAN.
//!
//! A certificate identifies exactly one principal. Anything else (no URI SAN,
//! several, another trust domain, an unknown path) is refused: ambiguity in
//! who is calling is never resolved in the caller's favour.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The trust domain of a Sigil cluster, e.g. `sigil.local`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Validates a trust domain name: lowercase letters, digits, `.`, `-`, `_`.
    pub fn new(name: impl Into<String>) -> Result<Self, IdentityError> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 255
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            });
        if ok {
            Ok(Self(name))
        } else {
            Err(IdentityError::TrustDomain(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TrustDomain {
    fn default() -> Self {
        Self("sigil.local".to_owned())
    }
}

impl TryFrom<String> for TrustDomain {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<TrustDomain> for String {
    fn from(t: TrustDomain) -> String {
        t.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a certificate belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// A signer node, by node id (≥ 1).
    Node(u16),
    /// The coordinator.
    Coordinator,
    /// A client (payment service, operator, auditor), by name.
    Client(String),
}

impl Identity {
    /// The SPIFFE URI of this identity in `domain`.
    pub fn to_uri(&self, domain: &TrustDomain) -> String {
        match self {
            Self::Node(id) => format!("spiffe://{domain}/node/{id}"),
            Self::Coordinator => format!("spiffe://{domain}/coordinator"),
            Self::Client(name) => format!("spiffe://{domain}/client/{name}"),
        }
    }

    /// Parses a SPIFFE URI, which must be in `domain`.
    pub fn from_uri(uri: &str, domain: &TrustDomain) -> Result<Self, IdentityError> {
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| IdentityError::NotSpiffe(uri.to_owned()))?;
        let (td, path) = rest
            .split_once('/')
            .ok_or_else(|| IdentityError::NotSpiffe(uri.to_owned()))?;
        if td != domain.as_str() {
            return Err(IdentityError::ForeignTrustDomain {
                uri: uri.to_owned(),
                expected: domain.to_string(),
            });
        }
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["coordinator"] => Ok(Self::Coordinator),
            ["node", id] => parse_node_id(id)
                .map(Self::Node)
                .ok_or_else(|| IdentityError::UnknownPath(uri.to_owned())),
            ["client", name] if valid_name(name) => Ok(Self::Client((*name).to_owned())),
            _ => Err(IdentityError::UnknownPath(uri.to_owned())),
        }
    }

    /// Reads the identity of a DER certificate: it must carry exactly one URI SAN.
    pub fn from_certificate(der: &[u8], domain: &TrustDomain) -> Result<Self, IdentityError> {
        use x509_parser::prelude::*;
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| IdentityError::Unparsable(e.to_string()))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| IdentityError::Unparsable(e.to_string()))?;
        let uris: Vec<&str> = san
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::URI(u) => Some(*u),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        match uris.as_slice() {
            [uri] => Self::from_uri(uri, domain),
            [] => Err(IdentityError::NoUri),
            _ => Err(IdentityError::SeveralUris(uris.len())),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(id) => write!(f, "node/{id}"),
            Self::Coordinator => f.write_str("coordinator"),
            Self::Client(name) => write!(f, "client/{name}"),
        }
    }
}

impl FromStr for Identity {
    type Err = IdentityError;
    /// Parses the short form printed by `Display` (`node/1`, `coordinator`, `client/ops`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_uri(&format!("spiffe://x/{s}"), &TrustDomain("x".into()))
    }
}

/// A node id in its one canonical form: decimal ASCII digits without sign,
/// leading zeros or surrounding space, 1 to 65535. `01`, `+1`, `1 `, `0`
/// and `65536` are refused, so one node has exactly one spelling in a
/// certificate (`node/1`) and no other string names it.
pub fn parse_node_id(s: &str) -> Option<u16> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok()
}

/// Client names: 1–64 of `[a-z0-9._-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// Why a certificate or URI does not name a valid Sigil identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid trust domain {0:?}")]
    TrustDomain(String),
    #[error("{0:?} is not a spiffe:// URI")]
    NotSpiffe(String),
    #[error("{uri:?} is not in trust domain {expected:?}")]
    ForeignTrustDomain { uri: String, expected: String },
    #[error("{0:?} names no Sigil identity")]
    UnknownPath(String),
    #[error("certificate has no URI SAN")]
    NoUri,
    #[error("certificate has {0} URI SANs; exactly one is required")]
    SeveralUris(usize),
    #[error("certificate cannot be parsed: {0}")]
    Unparsable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        let td = TrustDomain::default();
        for id in [
            Identity::Node(3),
            Identity::Coordinator,
            Identity::Client("payments".into()),
        ] {
            assert_eq!(Identity::from_uri(&id.to_uri(&td), &td), Ok(id.clone()));
            assert_eq!(id.to_string().parse::<Identity>(), Ok(id));
        }
    }

    #[test]
    fn bad_uris_are_refused() {
        let td = TrustDomain::default();
        let cases = [
            ("https://sigil.local/coordinator", "NotSpiffe"),
            ("spiffe://other.domain/coordinator", "ForeignTrustDomain"),
            ("spiffe://sigil.local/node/0", "UnknownPath"),
            ("spiffe://sigil.local/node/x", "UnknownPath"),
            ("spiffe://sigil.local/node/01", "UnknownPath"),
            ("spiffe://sigil.local/node/+1", "UnknownPath"),
            ("spiffe://sigil.local/client/UPPER", "UnknownPath"),
            ("spiffe://sigil.local/coordinator/extra", "UnknownPath"),
        ];
        for (uri, want) in cases {
            let err = Identity::from_uri(uri, &td).expect_err(uri);
            assert!(format!("{err:?}").starts_with(want), "{uri}: {err:?}");
        }
    }

    #[test]
    fn node_ids_are_parsed_in_canonical_form_only() {
        for (s, want) in [
            ("1", Some(1)),
            ("7", Some(7)),
            ("10", Some(10)),
            ("65535", Some(65535)),
        ] {
            assert_eq!(parse_node_id(s), want, "{s:?}");
        }
        for bad in [
            "",
            "0",
            "00",
            "01",
            "001",
            "+1",
            "-1",
            "1 ",
            " 1",
            "1\n",
            "\t1",
            "65536",
            "99999999999",
            "1_000",
            "0x1",
            "1e1",
            "1.0",
            "\u{ff11}",
        ] {
            assert_eq!(parse_node_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn non_canonical_node_identities_are_refused() {
        let td = TrustDomain::default();
        for bad in [
            "node/01",
            "node/+1",
            "node/1 ",
            "node/ 1",
            "node/0",
            "node/65536",
            "node/-1",
            "node/",
            "node/1/",
            "node/1/x",
        ] {
            assert!(
                matches!(bad.parse::<Identity>(), Err(IdentityError::UnknownPath(_))),
                "{bad:?} parsed"
            );
            let uri = format!("spiffe://{td}/{bad}");
            assert!(
                matches!(
                    Identity::from_uri(&uri, &td),
                    Err(IdentityError::UnknownPath(_))
                ),
                "{uri:?} parsed"
            );
        }
        assert_eq!("node/1".parse::<Identity>(), Ok(Identity::Node(1)));
        assert_eq!("node/65535".parse::<Identity>(), Ok(Identity::Node(65535)));
    }
}
