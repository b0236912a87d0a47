use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::crypto::{Algorithm, KeyPair};

pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// A test root and the issuer signing with it (also used by the TLS
/// verifier's tests).
pub(crate) struct Pki {
    pub(crate) root: Certificate,
    pub(crate) issuer: Issuer,
}

fn pki(alg: Algorithm) -> Pki {
    pki_named(alg, "CN=Test Root,O=Stack,C=NL")
}

pub(crate) fn pki_named(alg: Algorithm, subject: &str) -> Pki {
    let key = KeyPair::generate(alg);
    let issuer = Issuer::self_signed(key.clone(), subject).unwrap();
    let root = issue(
        &CertificateParams::new(CertKind::Root, subject, 10 * DAY),
        key.public_key(),
        &issuer,
    )
    .unwrap();
    let issuer = Issuer::from_certificate(&root, key).unwrap();
    Pki { root, issuer }
}

pub(crate) fn leaf(p: &Pki, names: &[&str], params: impl FnOnce(&mut CertificateParams)) -> Certificate {
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let mut cp = CertificateParams::new(CertKind::Leaf, "CN=node", DAY).with_dns_names(names.iter().copied());
    params(&mut cp);
    issue(&cp, key.public_key(), &p.issuer).unwrap()
}

fn verifier(p: &Pki) -> ChainVerifier {
    ChainVerifier::new(TrustAnchors::new([p.root.clone()]).unwrap(), POST_QUANTUM_ALGORITHMS)
}

fn server(name: &str) -> KeyPurpose {
    KeyPurpose::Server(name.into())
}

#[test]
fn issued_leaf_verifies_and_exposes_identity() {
    let p = pki(Algorithm::FnDsa1024);
    let cert = leaf(&p, &["node-1.mesh"], |_| {});
    assert_eq!(cert.signature_algorithm().unwrap(), Algorithm::FnDsa1024);
    assert_eq!(cert.dns_names(), vec!["node-1.mesh".to_string()]);
    assert!(!cert.is_ca() && p.root.is_ca());
    let v = verifier(&p);
    let chain = v
        .verify(cert.der(), &[], &server("node-1.mesh"), SystemTime::now())
        .unwrap();
    assert_eq!(chain.end_entity.node_id(), cert.node_id());
    v.verify(cert.der(), &[], &KeyPurpose::Client, SystemTime::now())
        .unwrap();
    // PEM round trip
    assert_eq!(Certificate::from_pem(&cert.to_pem()).unwrap().der(), cert.der());
    let bundle = format!("{}{}", cert.to_pem(), p.root.to_pem());
    assert_eq!(Certificate::all_from_pem(&bundle).unwrap().len(), 2);
}

#[test]
fn certificate_sizes_fit_the_handshake_budget() {
    // pq-tls-facts: root ~3,375 B, leaf ~3,360 B; a few hundred bytes more
    // would cost a QUIC round trip.
    let p = pki(Algorithm::FnDsa1024);
    let cert = leaf(&p, &["node-1.mesh"], |_| {});
    assert!(cert.der().len() < 3_500, "leaf is {} bytes", cert.der().len());
    assert!(p.root.der().len() < 3_500, "root is {} bytes", p.root.der().len());
}

#[test]
fn wrong_name_untrusted_root_expired_and_not_yet_valid_are_refused() {
    let p = pki(Algorithm::FnDsa1024);
    let other = pki_named(Algorithm::FnDsa1024, "CN=Other Root");
    let impostor = pki(Algorithm::FnDsa1024); // same subject name, other key
    let v = verifier(&p);
    let now = SystemTime::now();
    let good = leaf(&p, &["a.mesh"], |_| {});
    assert!(matches!(
        v.verify(good.der(), &[], &server("b.mesh"), now),
        Err(CertificateError::NameMismatch(_))
    ));
    let foreign = leaf(&other, &["a.mesh"], |_| {});
    assert_eq!(
        v.verify(foreign.der(), &[], &server("a.mesh"), now).unwrap_err(),
        CertificateError::UnknownIssuer
    );
    let forged = leaf(&impostor, &["a.mesh"], |_| {});
    assert_eq!(
        v.verify(forged.der(), &[], &server("a.mesh"), now).unwrap_err(),
        CertificateError::BadSignature
    );
    let expired = leaf(&p, &["a.mesh"], |cp| {
        cp.not_before = now - 3 * DAY;
        cp.not_after = now - DAY;
    });
    assert_eq!(
        v.verify(expired.der(), &[], &server("a.mesh"), now).unwrap_err(),
        CertificateError::Expired
    );
    let future = leaf(&p, &["a.mesh"], |cp| {
        cp.not_before = now + DAY;
        cp.not_after = now + 2 * DAY;
    });
    assert_eq!(
        v.verify(future.der(), &[], &server("a.mesh"), now).unwrap_err(),
        CertificateError::NotYetValid
    );
}

#[test]
fn tampered_certificate_is_refused() {
    let p = pki(Algorithm::FnDsa1024);
    let cert = leaf(&p, &["a.mesh"], |_| {});
    let mut der = cert.der().to_vec();
    // Flip a byte inside the subject public key (well inside the TBS).
    der[400] ^= 0x01;
    let err = verifier(&p)
        .verify(&der.into(), &[], &server("a.mesh"), SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(err, CertificateError::BadSignature | CertificateError::Malformed(_)),
        "{err:?}"
    );
}

#[test]
fn intermediate_chain_verifies_and_leaf_cannot_issue() {
    let p = pki(Algorithm::FnDsa1024);
    let ikey = KeyPair::generate(Algorithm::FnDsa1024);
    let icert = issue(
        &CertificateParams::new(CertKind::Intermediate, "CN=Issuing CA", 5 * DAY),
        ikey.public_key(),
        &p.issuer,
    )
    .unwrap();
    let iss = Issuer::from_certificate(&icert, ikey).unwrap();
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let cert = issue(
        &CertificateParams::new(CertKind::Leaf, "CN=n", DAY).with_dns_names(["n.mesh"]),
        key.public_key(),
        &iss,
    )
    .unwrap();
    let v = verifier(&p);
    v.verify(cert.der(), &[icert.der().clone()], &server("n.mesh"), SystemTime::now())
        .unwrap();
    assert_eq!(
        v.verify(cert.der(), &[], &server("n.mesh"), SystemTime::now())
            .unwrap_err(),
        CertificateError::UnknownIssuer
    );
    // A leaf is not a CA: it cannot become an issuer.
    assert!(matches!(
        Issuer::from_certificate(&cert, key),
        Err(CertificateError::Usage(_))
    ));
}

#[test]
fn classical_chain_needs_compat_algorithms() {
    let p = pki(Algorithm::Ed25519);
    let key = KeyPair::generate(Algorithm::Ed25519);
    let cert = issue(
        &CertificateParams::new(CertKind::Leaf, "CN=c", DAY).with_dns_names(["c.mesh"]),
        key.public_key(),
        &p.issuer,
    )
    .unwrap();
    let anchors = TrustAnchors::new([p.root.clone()]).unwrap();
    let pq = ChainVerifier::new(anchors.clone(), POST_QUANTUM_ALGORITHMS);
    assert!(matches!(
        pq.verify(cert.der(), &[], &server("c.mesh"), SystemTime::now()),
        Err(CertificateError::Algorithm(_))
    ));
    ChainVerifier::new(anchors, COMPAT_ALGORITHMS)
        .verify(cert.der(), &[], &server("c.mesh"), SystemTime::now())
        .unwrap();
}

#[derive(Debug)]
struct DenySerial(Vec<u8>);

impl CertificateCheck for DenySerial {
    fn name(&self) -> &'static str {
        "revocation"
    }
    fn check(&self, chain: &VerifiedChain, _now: SystemTime) -> Result<(), String> {
        if chain.end_entity.serial() == self.0.as_slice() {
            Err("serial is revoked".into())
        } else {
            Ok(())
        }
    }
}

#[test]
fn hooks_run_after_webpki_and_can_refuse() {
    let p = pki(Algorithm::FnDsa1024);
    let revoked = leaf(&p, &["a.mesh"], |_| {});
    let fine = leaf(&p, &["a.mesh"], |_| {});
    let v = verifier(&p).with_check(Arc::new(DenySerial(revoked.serial().to_vec())));
    let err = v
        .verify(revoked.der(), &[], &server("a.mesh"), SystemTime::now())
        .unwrap_err();
    assert_eq!(
        err,
        CertificateError::Rejected {
            check: "revocation",
            reason: "serial is revoked".into()
        }
    );
    v.verify(fine.der(), &[], &server("a.mesh"), SystemTime::now()).unwrap();
}

#[test]
fn extra_extensions_are_carried() {
    use der::asn1::OctetString;
    let p = pki(Algorithm::FnDsa1024);
    let oid = const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.59999.1.1");
    let ext = x509_cert::ext::Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(vec![4, 2, 0xAB, 0xCD]).unwrap(),
    };
    let cert = leaf(&p, &["a.mesh"], |cp| cp.extra_extensions.push(ext));
    assert_eq!(cert.extension_value(&oid), Some(&[4u8, 2, 0xAB, 0xCD][..]));
}

#[test]
fn invalid_params_are_refused() {
    let p = pki(Algorithm::FnDsa1024);
    let key = KeyPair::generate(Algorithm::Ed25519);
    let bad_name = CertificateParams::new(CertKind::Leaf, "CN=x", DAY).with_dns_names(["not a name!"]);
    assert!(matches!(
        issue(&bad_name, key.public_key(), &p.issuer),
        Err(CertificateError::Issue(_))
    ));
    let mut backwards = CertificateParams::new(CertKind::Leaf, "CN=x", DAY);
    backwards.not_after = backwards.not_before;
    assert!(issue(&backwards, key.public_key(), &p.issuer).is_err());
    assert!(Certificate::from_der(b"\x30\x00").is_err());
}

#[test]
fn precertificate_body_survives_adding_and_removing_an_extension() {
    use der::asn1::OctetString;
    let p = pki(Algorithm::FnDsa1024);
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let params = CertificateParams {
        serial: Some(vec![0x11; 16]),
        ..CertificateParams::new(CertKind::Leaf, "CN=node", DAY).with_dns_names(["node-1.mesh"])
    };
    let body = tbs_certificate(&params, key.public_key(), &p.issuer).unwrap();
    let oid = const_oid::ObjectIdentifier::new_unwrap("1.3.6.1.4.1.59999.1.9");
    let ext = x509_cert::ext::Extension {
        extn_id: oid,
        critical: false,
        extn_value: OctetString::new(vec![1, 2, 3]).unwrap(),
    };
    let tbs = tbs_add_extension(&body, ext.clone()).unwrap();
    assert!(tbs_add_extension(&tbs, ext.clone()).is_err(), "duplicate refused");
    let cert = sign_tbs(&tbs, &p.issuer).unwrap();
    assert_eq!(cert.extension_value(&oid), Some(&[1u8, 2, 3][..]));
    verifier(&p)
        .verify(cert.der(), &[], &server("node-1.mesh"), SystemTime::now())
        .unwrap();
    let (stripped, removed) = tbs_remove_extension(&tbs_of(&cert).unwrap(), &oid).unwrap();
    assert_eq!(
        stripped, body,
        "removing the extension gives back the body byte for byte"
    );
    assert_eq!(removed, Some(ext));
    // Another issuer cannot sign this body.
    let other = pki_named(Algorithm::FnDsa1024, "CN=Other Root,O=Stack,C=NL");
    assert!(sign_tbs(&tbs, &other.issuer).is_err());
}

#[test]
fn signing_for_a_known_subject_key_refuses_a_body_for_another_key() {
    let p = pki(Algorithm::FnDsa1024);
    let key = KeyPair::generate(Algorithm::FnDsa1024);
    let other = KeyPair::generate(Algorithm::FnDsa1024);
    let params = CertificateParams::new(CertKind::Leaf, "CN=node", DAY).with_dns_names(["node-1.mesh"]);
    let body = tbs_certificate(&params, key.public_key(), &p.issuer).unwrap();
    let cert = sign_tbs_for(&body, &p.issuer, key.public_key()).unwrap();
    assert_eq!(cert.public_key(), key.public_key());
    let parsed = Certificate::from_der(cert.der()).unwrap();
    assert_eq!(
        parsed.public_key(),
        key.public_key(),
        "the key given is the key in the certificate"
    );
    verifier(&p)
        .verify(cert.der(), &[], &server("node-1.mesh"), SystemTime::now())
        .unwrap();
    assert!(sign_tbs_for(&body, &p.issuer, other.public_key()).is_err());
    assert!(Certificate::from_der_with_key(cert.der(), other.public_key()).is_err());
}
