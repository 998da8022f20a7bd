//! A small private CA for Sigil identities (rcgen).
//!
//! `sigil dev pki` uses this to create a development CA and one certificate
//! per process; tests use it to mint certificates that are expired, not yet
//! valid, from a foreign CA or with the wrong identity. Production clusters
//! bring their own CA (any that can put a SPIFFE URI SAN in a certificate).
//! Keys are ECDSA P-256; leaf certificates allow both server and client
//! authentication because nodes and the coordinator are both.
//!
//! Certificates of servers (the coordinator, nodes) also carry DNS and IP
//! SANs ([`HostNames`]) so that stock gRPC clients (grpcio, grpcurl), which
//! verify a server by the host name they dialled, accept them without a
//! name override. Sigil itself never looks at those names: an identity is
//! the certificate's one SPIFFE URI SAN ([`Identity::from_certificate`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::{Identity, TlsError, TrustDomain};

/// The validity window of a certificate.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From one hour ago (clock skew) to `days` days from now.
    pub fn days(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
}

/// The host names and IP addresses a server certificate carries besides its
/// SPIFFE URI, for clients that verify a server by the name they connect to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostNames {
    /// DNS SANs, e.g. `coordinator.sigil.local`, `localhost`.
    pub dns: Vec<String>,
    /// IP address SANs, e.g. `127.0.0.1`.
    pub ips: Vec<IpAddr>,
}

impl HostNames {
    /// No host names: client certificates carry only their URI.
    pub fn none() -> Self {
        Self::default()
    }

    /// The names of `identity` in a development PKI: the coordinator is
    /// `coordinator.<trust domain>`, node N `node-N.<trust domain>`, both
    /// also `localhost`, `127.0.0.1` and `::1`; clients have none.
    pub fn dev(identity: &Identity, domain: &TrustDomain) -> Self {
        let own = match identity {
            Identity::Coordinator => format!("coordinator.{domain}"),
            Identity::Node(id) => format!("node-{id}.{domain}"),
            Identity::Client(_) => return Self::none(),
        };
        Self {
            dns: vec![own, "localhost".to_owned()],
            ips: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        }
    }

    /// Adds the names and addresses of `other` not already present.
    pub fn merge(&mut self, other: &HostNames) {
        for name in &other.dns {
            if !self.dns.contains(name) {
                self.dns.push(name.clone());
            }
        }
        for ip in &other.ips {
            if !self.ips.contains(ip) {
                self.ips.push(*ip);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty()
    }

    fn sans(&self) -> Result<Vec<SanType>, rcgen::Error> {
        let dns = self
            .dns
            .iter()
            .map(|n| Ok(SanType::DnsName(n.as_str().try_into()?)));
        let ips = self.ips.iter().map(|ip| Ok(SanType::IpAddress(*ip)));
        dns.chain(ips).collect()
    }
}

/// A certificate and its private key, PEM-encoded.
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: zeroize::Zeroizing<String>,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl IssuedCertificate {
    /// Writes `cert` and `key` (the key with mode 0600) atomically.
    pub fn write(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        write_file(key, self.key_pem.as_bytes(), true)?;
        write_file(cert, self.cert_pem.as_bytes(), false)
    }
}

/// A certificate authority able to issue Sigil identities in one trust domain.
pub struct CertificateAuthority {
    domain: TrustDomain,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Generates a new self-signed CA valid for ten years.
    pub fn generate(domain: &TrustDomain, common_name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Sigil");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let v = Validity::days(3650);
        params.not_before = v.not_before;
        params.not_after = v.not_after;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            domain: domain.clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA certificate and key from PEM files.
    pub fn load(cert: &Path, key: &Path, domain: &TrustDomain) -> Result<Self, TlsError> {
        let cert_pem = read_string(cert)?;
        let key_pem = zeroize::Zeroizing::new(read_string(key)?);
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Self {
            domain: domain.clone(),
            cert_pem,
            issuer,
        })
    }

    /// Writes the CA certificate and key (mode 0600).
    pub fn write(&self, cert: &Path, key: &Path) -> Result<(), TlsError> {
        write_file(key, self.issuer.key().serialize_pem().as_bytes(), true)?;
        write_file(cert, self.cert_pem.as_bytes(), false)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn domain(&self) -> &TrustDomain {
        &self.domain
    }

    /// Issues a certificate for `identity` with its development host names
    /// ([`HostNames::dev`]: none for a client).
    pub fn issue(
        &self,
        identity: &Identity,
        validity: Validity,
    ) -> Result<IssuedCertificate, TlsError> {
        self.issue_with_host_names(identity, &HostNames::dev(identity, &self.domain), validity)
    }

    /// Issues a certificate for `identity` whose SANs are its SPIFFE URI and `hosts`.
    pub fn issue_with_host_names(
        &self,
        identity: &Identity,
        hosts: &HostNames,
        validity: Validity,
    ) -> Result<IssuedCertificate, TlsError> {
        self.issue_with_sans(
            &[identity.to_uri(&self.domain)],
            hosts,
            &identity.to_string(),
            validity,
        )
    }

    /// Issues a certificate with arbitrary URI SANs and no host names (tests
    /// use this for malformed identities).
    pub fn issue_with_uris(
        &self,
        uris: &[String],
        common_name: &str,
        validity: Validity,
    ) -> Result<IssuedCertificate, TlsError> {
        self.issue_with_sans(uris, &HostNames::none(), common_name, validity)
    }

    fn issue_with_sans(
        &self,
        uris: &[String],
        hosts: &HostNames,
        common_name: &str,
        validity: Validity,
    ) -> Result<IssuedCertificate, TlsError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Sigil");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.subject_alt_names = uris
            .iter()
            .map(|u| Ok(SanType::URI(u.as_str().try_into()?)))
            .collect::<Result<_, rcgen::Error>>()?;
        params.subject_alt_names.extend(hosts.sans()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: zeroize::Zeroizing::new(key.serialize_pem()),
        })
    }
}

/// File names of a development PKI directory.
#[derive(Clone, Debug)]
pub struct PkiLayout {
    pub dir: PathBuf,
    /// Added to every server certificate [`Self::ensure`] issues, besides
    /// the identity's own [`HostNames::dev`].
    extra_host_names: HostNames,
}

impl PkiLayout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            extra_host_names: HostNames::none(),
        }
    }

    /// Also puts `hosts` in every coordinator and node certificate issued
    /// from now on (e.g. the machine's own host name, for clients that reach
    /// the cluster from elsewhere). Client certificates never get host names.
    pub fn with_extra_host_names(mut self, hosts: HostNames) -> Self {
        self.extra_host_names = hosts;
        self
    }

    /// The host names [`Self::ensure`] gives `identity`'s certificate.
    pub fn host_names(&self, identity: &Identity, domain: &TrustDomain) -> HostNames {
        let mut hosts = HostNames::dev(identity, domain);
        if !matches!(identity, Identity::Client(_)) {
            hosts.merge(&self.extra_host_names);
        }
        hosts
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// Certificate and key paths of `identity`, e.g. `node-1.pem`/`node-1.key`.
    pub fn identity_files(&self, identity: &Identity) -> crate::TlsFiles {
        let stem = match identity {
            Identity::Node(id) => format!("node-{id}"),
            Identity::Coordinator => "coordinator".to_owned(),
            Identity::Client(name) => format!("client-{name}"),
        };
        crate::TlsFiles {
            ca: self.ca_cert(),
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        }
    }

    /// Creates the CA (unless present) and a certificate for every identity
    /// whose files are missing. Returns the identities that were issued.
    /// Existing certificates are kept as they are: deleting an identity's
    /// `.pem`/`.key` files has the next call issue it again from the same CA.
    pub fn ensure(
        &self,
        domain: &TrustDomain,
        identities: &[Identity],
        validity_days: i64,
    ) -> Result<Vec<Identity>, TlsError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| TlsError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let ca = if self.ca_cert().exists() && self.ca_key().exists() {
            CertificateAuthority::load(&self.ca_cert(), &self.ca_key(), domain)?
        } else {
            let ca = CertificateAuthority::generate(domain, &format!("Sigil dev CA ({domain})"))?;
            ca.write(&self.ca_cert(), &self.ca_key())?;
            ca
        };
        let mut issued = Vec::new();
        for identity in identities {
            let files = self.identity_files(identity);
            if files.cert.exists() && files.key.exists() {
                continue;
            }
            ca.issue_with_host_names(
                identity,
                &self.host_names(identity, domain),
                Validity::days(validity_days),
            )?
            .write(&files.cert, &files.key)?;
            issued.push(identity.clone());
        }
        Ok(issued)
    }
}

pub(crate) fn read_string(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), TlsError> {
    use std::io::Write;
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::{CertificateError, Error, RootCertStore};
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

    use super::*;
    use crate::identity::IdentityError;

    fn der(issued: &IssuedCertificate) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).expect("certificate PEM")
    }

    /// Every SAN of a certificate, as `URI:...`, `DNS:...`, `IP:...`.
    fn sans(cert: &CertificateDer<'_>) -> Vec<String> {
        let (_, cert) = X509Certificate::from_der(cert.as_ref()).expect("parse");
        let Some(san) = cert.subject_alternative_name().expect("SAN extension") else {
            return Vec::new();
        };
        san.value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::URI(u) => format!("URI:{u}"),
                GeneralName::DNSName(d) => format!("DNS:{d}"),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => format!(
                        "IP:{}",
                        Ipv4Addr::from(<[u8; 4]>::try_from(*ip).unwrap_or_default())
                    ),
                    _ => format!(
                        "IP:{}",
                        Ipv6Addr::from(<[u8; 16]>::try_from(*ip).unwrap_or_default())
                    ),
                },
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn servers_get_host_names_clients_only_their_uri() {
        let td = TrustDomain::default();
        let ca = CertificateAuthority::generate(&td, "test CA").expect("ca");
        let cases = [
            (
                Identity::Coordinator,
                vec![
                    "URI:spiffe://sigil.local/coordinator",
                    "DNS:coordinator.sigil.local",
                    "DNS:localhost",
                    "IP:127.0.0.1",
                    "IP:::1",
                ],
            ),
            (
                Identity::Node(2),
                vec![
                    "URI:spiffe://sigil.local/node/2",
                    "DNS:node-2.sigil.local",
                    "DNS:localhost",
                    "IP:127.0.0.1",
                    "IP:::1",
                ],
            ),
            (
                Identity::Client("operator".into()),
                vec!["URI:spiffe://sigil.local/client/operator"],
            ),
        ];
        for (identity, want) in cases {
            let cert = der(&ca.issue(&identity, Validity::days(1)).expect("issue"));
            assert_eq!(sans(&cert), want, "{identity}");
            // The identity comes from the URI SAN alone.
            assert_eq!(
                Identity::from_certificate(cert.as_ref(), &td),
                Ok(identity.clone())
            );
        }
    }

    #[test]
    fn host_names_never_stand_in_for_the_uri() {
        let td = TrustDomain::default();
        let ca = CertificateAuthority::generate(&td, "test CA").expect("ca");
        let hosts = HostNames {
            dns: vec!["coordinator.sigil.local".into(), "coordinator".into()],
            ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        };
        // Host names but no URI: no identity.
        let cert = ca
            .issue_with_sans(&[], &hosts, "coordinator", Validity::days(1))
            .expect("issue");
        assert_eq!(
            Identity::from_certificate(der(&cert).as_ref(), &td),
            Err(IdentityError::NoUri)
        );
        // Host names do not make two URIs acceptable.
        let uris = [
            Identity::Coordinator.to_uri(&td),
            Identity::Node(1).to_uri(&td),
        ];
        let cert = ca
            .issue_with_sans(&uris, &hosts, "coordinator", Validity::days(1))
            .expect("issue");
        assert_eq!(
            Identity::from_certificate(der(&cert).as_ref(), &td),
            Err(IdentityError::SeveralUris(2))
        );
        // A node certificate carrying the coordinator's host names is still node 1.
        let cert = ca
            .issue_with_host_names(&Identity::Node(1), &hosts, Validity::days(1))
            .expect("issue");
        assert_eq!(
            Identity::from_certificate(der(&cert).as_ref(), &td),
            Ok(Identity::Node(1))
        );
    }

    #[test]
    fn webpki_verifies_dev_server_certificates_by_host_name() {
        let td = TrustDomain::default();
        let ca = CertificateAuthority::generate(&td, "test CA").expect("ca");
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).expect("CA PEM"))
            .expect("root");
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::provider())
                .build()
                .expect("verifier");
        let verify = |cert: &CertificateDer<'_>, name: &str| {
            let name = ServerName::try_from(name.to_owned()).expect("server name");
            verifier.verify_server_cert(cert, &[], &name, &[], UnixTime::now())
        };
        let name_error = |r: Result<_, Error>| {
            matches!(
                r,
                Err(Error::InvalidCertificate(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                ))
            )
        };

        let coordinator = der(&ca
            .issue(&Identity::Coordinator, Validity::days(1))
            .expect("issue"));
        for name in ["coordinator.sigil.local", "localhost", "127.0.0.1", "::1"] {
            verify(&coordinator, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for name in [
            "node-1.sigil.local",
            "evil.example",
            "coordinator",
            "10.0.0.1",
        ] {
            assert!(name_error(verify(&coordinator, name)), "{name} accepted");
        }

        let node = der(&ca
            .issue(&Identity::Node(1), Validity::days(1))
            .expect("issue"));
        for name in ["node-1.sigil.local", "localhost", "127.0.0.1"] {
            verify(&node, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        assert!(name_error(verify(&node, "coordinator.sigil.local")));

        // A client certificate names no host at all.
        let client = der(&ca
            .issue(&Identity::Client("operator".into()), Validity::days(1))
            .expect("issue"));
        assert!(name_error(verify(&client, "localhost")));
    }

    #[test]
    fn layouts_add_extra_host_names_to_servers_only() {
        let td = TrustDomain::default();
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = HostNames {
            dns: vec!["sigil.example.com".into(), "localhost".into()],
            ips: vec!["192.0.2.7".parse().expect("ip")],
        };
        let pki = PkiLayout::new(dir.path()).with_extra_host_names(extra);
        let client = Identity::Client("signer".into());
        pki.ensure(&td, &[Identity::Node(1), client.clone()], 1)
            .expect("pki");
        let read = |identity: &Identity| {
            let files = pki.identity_files(identity);
            sans(&CertificateDer::from_pem_file(&files.cert).expect("cert"))
        };
        assert_eq!(
            read(&Identity::Node(1)),
            [
                "URI:spiffe://sigil.local/node/1",
                "DNS:node-1.sigil.local",
                "DNS:localhost",
                "DNS:sigil.example.com",
                "IP:127.0.0.1",
                "IP:::1",
                "IP:192.0.2.7",
            ]
        );
        assert_eq!(read(&client), ["URI:spiffe://sigil.local/client/signer"]);
    }
}
