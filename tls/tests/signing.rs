//! Identity signatures verify only under the right certificate chain and identity.

use sigil_tls::pki::{CertificateAuthority, PkiLayout, Validity};
use sigil_tls::signing::{IdentityCheckError, binding_bytes};
use sigil_tls::{Identity, ReloadableTls, TrustDomain};

#[test]
fn signatures_verify_against_the_signers_chain_only() {
    sigil_tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let td = TrustDomain::default();
    let pki = PkiLayout::new(dir.path());
    pki.ensure(&td, &[Identity::Node(1), Identity::Node(2)], 1)
        .expect("pki");
    let n1 = ReloadableTls::load(pki.identity_files(&Identity::Node(1)), td.clone()).expect("n1");
    let n2 = ReloadableTls::load(pki.identity_files(&Identity::Node(2)), td.clone()).expect("n2");

    let key = n1.identity_key().expect("key");
    let msg = binding_bytes(1, &[7; 32]);
    let sig = key.sign(&msg).expect("sign");
    let chain: Vec<Vec<u8>> = key.chain().iter().map(|c| c.as_ref().to_vec()).collect();

    // Node 2 verifies node 1's chain and signature.
    let peer = n2
        .verify_peer_chain(&chain, &Identity::Node(1))
        .expect("valid chain");
    assert!(peer.verify(&msg, &sig));
    assert!(
        !peer.verify(&binding_bytes(1, &[8; 32]), &sig),
        "signature over other bytes accepted"
    );
    let mut bad = sig.clone();
    if let Some(b) = bad.last_mut() {
        *b ^= 1;
    }
    assert!(!peer.verify(&msg, &bad));

    // The chain does not pass for another identity, or when empty.
    assert!(matches!(
        n2.verify_peer_chain(&chain, &Identity::Node(3)),
        Err(IdentityCheckError::WrongIdentity { .. })
    ));
    assert_eq!(
        n2.verify_peer_chain(&[], &Identity::Node(1)),
        Err(IdentityCheckError::EmptyChain)
    );

    // A chain from a foreign CA with the same identity is refused.
    let rogue = CertificateAuthority::generate(&td, "rogue").expect("ca");
    let cert = rogue
        .issue(&Identity::Node(1), Validity::days(1))
        .expect("issue");
    let rogue_files = sigil_tls::TlsFiles {
        ca: pki.ca_cert(),
        cert: dir.path().join("rogue.pem"),
        key: dir.path().join("rogue.key"),
    };
    cert.write(&rogue_files.cert, &rogue_files.key)
        .expect("write");
    let rogue_tls = ReloadableTls::load(rogue_files, td).expect("load");
    let rogue_chain: Vec<Vec<u8>> = rogue_tls
        .certificate_chain()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    assert!(matches!(
        n2.verify_peer_chain(&rogue_chain, &Identity::Node(1)),
        Err(IdentityCheckError::Chain(_))
    ));
}

#[test]
fn a_verified_chain_is_remembered_only_under_the_trust_anchors_that_verified_it() {
    sigil_tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let td = TrustDomain::default();
    let pki = PkiLayout::new(dir.path().join("old"));
    pki.ensure(&td, &[Identity::Node(1), Identity::Node(2)], 1)
        .expect("pki");
    let n1 = ReloadableTls::load(pki.identity_files(&Identity::Node(1)), td.clone()).expect("n1");
    // Node 2 reads its material from files it can swap later.
    let files = sigil_tls::TlsFiles {
        ca: dir.path().join("n2-ca.pem"),
        cert: dir.path().join("n2.pem"),
        key: dir.path().join("n2.key"),
    };
    let copy = |from: &sigil_tls::TlsFiles| {
        std::fs::copy(&from.ca, &files.ca).expect("ca");
        std::fs::copy(&from.cert, &files.cert).expect("cert");
        std::fs::copy(&from.key, &files.key).expect("key");
    };
    copy(&pki.identity_files(&Identity::Node(2)));
    let n2 = ReloadableTls::load(files.clone(), td.clone()).expect("n2");
    let chain: Vec<Vec<u8>> = n1
        .identity_key()
        .expect("key")
        .chain()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect();
    // Verified, then served again (from the cache) for the same identity only.
    n2.verify_peer_chain(&chain, &Identity::Node(1))
        .expect("valid chain");
    n2.verify_peer_chain(&chain, &Identity::Node(1))
        .expect("still valid");
    assert!(matches!(
        n2.verify_peer_chain(&chain, &Identity::Node(2)),
        Err(IdentityCheckError::WrongIdentity { .. })
    ));
    // New trust anchors (another CA): the remembered verification goes with the old ones.
    let other = PkiLayout::new(dir.path().join("new"));
    other.ensure(&td, &[Identity::Node(2)], 1).expect("pki");
    copy(&other.identity_files(&Identity::Node(2)));
    assert!(n2.reload().expect("reload"));
    assert!(matches!(
        n2.verify_peer_chain(&chain, &Identity::Node(1)),
        Err(IdentityCheckError::Chain(_))
    ));
}
