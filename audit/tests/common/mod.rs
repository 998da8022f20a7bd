//! Shared test fixtures: a dev PKI with real certificate keys for the
//! coordinator and three nodes, logs on files, and raw SQLite access for
//! tampering the way an attacker with the file would.

#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sigil_audit::{
    AuditLog, AuditOptions, Entry, HeadSigner, TlsHeadSigner, TlsHeadVerifier, action,
};
use sigil_tls::pki::PkiLayout;
use sigil_tls::{Identity, ReloadableTls, TrustDomain};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

/// A temporary directory with a dev CA and certificates for the
/// coordinator and nodes 1–3.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub pki: PkiLayout,
    pub domain: TrustDomain,
}

impl Fixture {
    pub fn new() -> Self {
        sigil_tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let domain = TrustDomain::default();
        let pki = PkiLayout::new(dir.path().join("pki"));
        pki.ensure(
            &domain,
            &[
                Identity::Coordinator,
                Identity::Node(1),
                Identity::Node(2),
                Identity::Node(3),
            ],
            1,
        )
        .expect("dev pki");
        Self { dir, pki, domain }
    }

    pub fn tls(&self, identity: &Identity) -> Arc<ReloadableTls> {
        ReloadableTls::load(self.pki.identity_files(identity), self.domain.clone()).expect("tls")
    }

    /// A head signer with `identity`'s certificate key.
    pub fn signer(&self, identity: &Identity) -> Arc<dyn HeadSigner> {
        Arc::new(TlsHeadSigner::new(self.tls(identity)))
    }

    /// A verifier trusting the dev CA, as an offline auditor holds it.
    pub fn verifier(&self) -> TlsHeadVerifier {
        TlsHeadVerifier::from_ca_file(&self.pki.ca_cert(), self.domain.clone()).expect("verifier")
    }

    pub fn db_path(&self, process: &str) -> PathBuf {
        self.dir.path().join(process).join("audit.db")
    }

    /// Opens `process`'s log on a file, signing heads as `identity`.
    pub async fn open(&self, process: &str, identity: &Identity) -> AuditLog {
        self.open_with(AuditOptions::new(process), identity).await
    }

    pub async fn open_with(&self, options: AuditOptions, identity: &Identity) -> AuditLog {
        let path = self.db_path(&options.process);
        AuditLog::open(&path, options, self.signer(identity))
            .await
            .expect("open audit log")
    }
}

/// A plain entry from a payments client.
pub fn entry(n: usize) -> Entry {
    Entry::new("spiffe://sigil.local/client/payments", action::REQUEST)
        .key_id(format!("key-{}", n % 3))
        .request_id(format!("req-{n}"))
        .digest(vec![n as u8; 32])
        .detail(format!("request {n}"))
}

/// A second, independent connection to the database file.
pub async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("raw connection")
}

/// A raw connection with the append-only triggers removed, as an attacker
/// with write access to the file would first do.
pub async fn attacker(path: &Path) -> SqliteConnection {
    let mut conn = raw(path).await;
    for sql in [
        "DROP TRIGGER audit_records_no_update",
        "DROP TRIGGER audit_records_no_delete",
        "DROP TRIGGER audit_heads_no_update",
        "DROP TRIGGER audit_heads_no_delete",
    ] {
        sqlx::query(sql).execute(&mut conn).await.expect(sql);
    }
    conn
}

pub async fn close(conn: SqliteConnection) {
    conn.close().await.expect("close");
}
