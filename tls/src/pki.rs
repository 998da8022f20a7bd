//! A small private CA for Sigil identities (rcgen).
//!
//! `sigil dev pki` uses this to create a development CA and one certificate
//! per process; tests use it to mint certificates that are expired, not yet
//! valid, from a foreign CA or with the wrong identity. Production clusters
//! bring their own CA (any that can put a SPIFFE URI SAN in a certificate).
//! Keys are ECDSA P-256; leaf certificates allow both server and client
//! authentication because nodes and the coordinator are both.

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

    /// Issues a certificate for `identity`.
    pub fn issue(
        &self,
        identity: &Identity,
        validity: Validity,
    ) -> Result<IssuedCertificate, TlsError> {
        self.issue_with_uris(
            &[identity.to_uri(&self.domain)],
            &identity.to_string(),
            validity,
        )
    }

    /// Issues a certificate with arbitrary URI SANs (tests use this for malformed identities).
    pub fn issue_with_uris(
        &self,
        uris: &[String],
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
}

impl PkiLayout {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
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
            ca.issue(identity, Validity::days(validity_days))?
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
