//! The rustls verifier backed by [`ChainVerifier`]: webpki for the chain,
//! then key usage and the TrustChain hooks, then the TLS 1.3
//! CertificateVerify signature with the mode's algorithms. One type serves
//! both directions: as a client we verify servers, as a server clients.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::pki::{CertificateError, ChainVerifier, KeyPurpose};

fn system_time(now: UnixTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs())
}

/// Maps our verdict to the rustls error (and so to the TLS alert the peer
/// receives), keeping our message where rustls has no matching variant.
pub(crate) fn to_rustls(e: CertificateError) -> rustls::Error {
    use rustls::CertificateError as R;
    let mapped = match e {
        CertificateError::Expired => R::Expired,
        CertificateError::NotYetValid => R::NotValidYet,
        CertificateError::UnknownIssuer => R::UnknownIssuer,
        CertificateError::BadSignature => R::BadSignature,
        CertificateError::NameMismatch(_) => R::NotValidForName,
        CertificateError::Usage(_) => R::InvalidPurpose,
        CertificateError::Malformed(_) => R::BadEncoding,
        other => R::Other(rustls::OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(mapped)
}

/// Verifies the peer's chain and handshake signature, in either role.
/// Client authentication is mandatory: every STOQ connection is mutual.
#[derive(Debug)]
pub struct StackVerifier {
    chain: ChainVerifier,
    algorithms: WebPkiSupportedAlgorithms,
    self_signed_clients: bool,
}

impl StackVerifier {
    /// A verifier using `chain` and accepting `algorithms` for the
    /// handshake signature.
    pub fn new(chain: ChainVerifier, algorithms: WebPkiSupportedAlgorithms) -> Self {
        StackVerifier {
            chain,
            algorithms,
            self_signed_clients: false,
        }
    }

    /// Also accepts clients presenting a single self-signed certificate
    /// (nodes that are not enrolled yet and come to enroll). The TLS
    /// handshake signature still proves they hold the key; the endpoint
    /// marks them as not enrolled and lets them call public methods only.
    pub fn allow_self_signed_clients(mut self, allow: bool) -> Self {
        self.self_signed_clients = allow;
        self
    }

    fn tls12_refused() -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

impl ServerCertVerifier for StackVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let name = server_name.to_str().into_owned();
        self.chain
            .verify(end_entity, intermediates, &KeyPurpose::Server(name), system_time(now))
            .map_err(to_rustls)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for StackVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: every byte in the server's flight counts against QUIC's
        // anti-amplification budget, and our clients hold one identity.
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verdict = self
            .chain
            .verify(end_entity, intermediates, &KeyPurpose::Client, system_time(now));
        match verdict {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(e) if self.self_signed_clients && intermediates.is_empty() => {
                match verify_self_signed(end_entity, self.chain.algorithms(), system_time(now)) {
                    Ok(()) => Ok(ClientCertVerified::assertion()),
                    // Not self-signed: the chain's verdict (expired,
                    // revoked, issued by a CA we do not know yet, ...) is
                    // the one that tells the peer what is wrong.
                    Err(CertificateError::UnknownIssuer) => Err(to_rustls(e)),
                    Err(self_signed) => Err(to_rustls(self_signed)),
                }
            }
            Err(e) => Err(to_rustls(e)),
        }
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Self::tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks that `der` is a self-signed certificate valid at `now` whose
/// signature verifies with its own key under one of `algorithms`.
pub(crate) fn verify_self_signed(
    der: &CertificateDer<'_>,
    algorithms: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm],
    now: SystemTime,
) -> Result<(), CertificateError> {
    use der::Encode;
    let cert = crate::pki::Certificate::from_der(der)?;
    if now < cert.not_before() {
        return Err(CertificateError::NotYetValid);
    }
    if now > cert.not_after() {
        return Err(CertificateError::Expired);
    }
    let x509 = cert.x509();
    if x509.tbs_certificate().issuer() != x509.tbs_certificate().subject() {
        return Err(CertificateError::UnknownIssuer);
    }
    let tbs = x509.tbs_certificate().to_der()?;
    let sig = x509
        .signature()
        .as_bytes()
        .ok_or_else(|| CertificateError::Malformed("signature has unused bits".into()))?;
    let spki = cert.public_key().to_spki_der();
    let spki = spki::SubjectPublicKeyInfoRef::try_from(spki.as_slice())
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    let key = spki.subject_public_key.raw_bytes();
    let alg_id = x509.signature_algorithm().oid;
    let ok = algorithms.iter().any(|a| {
        a.public_key_alg_id().as_ref().ends_with(alg_id.as_bytes())
            && a.signature_alg_id().as_ref().ends_with(alg_id.as_bytes())
            && a.verify_signature(key, &tbs, sig).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(CertificateError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use rustls::pki_types::UnixTime;
    use rustls::server::danger::ClientCertVerifier;
    use rustls::CertificateError as R;

    use super::StackVerifier;
    use crate::crypto::{Algorithm, KeyPair};
    use crate::pki::tests::{leaf, pki_named, DAY};
    use crate::pki::POST_QUANTUM_ALGORITHMS as CHAIN_ALGORITHMS;
    use crate::pki::{issue, CertKind, Certificate, CertificateParams, ChainVerifier, Issuer, TrustAnchors};
    use crate::tls::{signature_algorithms, SecurityMode};

    fn refusal(v: &StackVerifier, cert: &Certificate) -> Option<R> {
        let now = UnixTime::since_unix_epoch(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock"));
        match v.verify_client_cert(cert.der(), &[], now) {
            Ok(_) => None,
            Err(rustls::Error::InvalidCertificate(e)) => Some(e),
            Err(e) => panic!("not a certificate error: {e}"),
        }
    }

    /// With unenrolled (self-signed) clients allowed, a CA-issued
    /// certificate that fails is still refused for its own reason, not as
    /// "unknown issuer" (the self-signed fallback's verdict).
    #[test]
    fn a_failing_issued_certificate_is_refused_for_its_own_reason() {
        let ca = pki_named(Algorithm::FnDsa1024, "CN=Test Root");
        let stranger = pki_named(Algorithm::FnDsa1024, "CN=Other Root");
        let chain = ChainVerifier::new(TrustAnchors::new([ca.root.clone()]).expect("anchors"), CHAIN_ALGORITHMS);
        let v =
            StackVerifier::new(chain, signature_algorithms(SecurityMode::PostQuantum)).allow_self_signed_clients(true);
        let now = SystemTime::now();

        assert_eq!(refusal(&v, &leaf(&ca, &[], |_| {})), None);
        let expired = leaf(&ca, &[], |cp| {
            cp.not_before = now - 3 * DAY;
            cp.not_after = now - DAY;
        });
        assert_eq!(refusal(&v, &expired), Some(R::Expired));
        assert_eq!(refusal(&v, &leaf(&stranger, &[], |_| {})), Some(R::UnknownIssuer));
        // Same issuer name, another key: the chain says bad signature
        // (the fallback alone said unknown issuer).
        let impostor = pki_named(Algorithm::FnDsa1024, "CN=Test Root");
        assert_eq!(refusal(&v, &leaf(&impostor, &[], |_| {})), Some(R::BadSignature));

        let key = KeyPair::generate(Algorithm::FnDsa1024);
        let own = Issuer::self_signed(key.clone(), "CN=unenrolled").expect("issuer");
        let unenrolled = issue(
            &CertificateParams::new(CertKind::Leaf, "CN=unenrolled", DAY),
            key.public_key(),
            &own,
        )
        .expect("self-signed");
        assert_eq!(refusal(&v, &unenrolled), None);
        let old = issue(
            &{
                let mut cp = CertificateParams::new(CertKind::Leaf, "CN=unenrolled", DAY);
                cp.not_before = now - 3 * DAY;
                cp.not_after = now - DAY;
                cp
            },
            key.public_key(),
            &own,
        )
        .expect("self-signed");
        assert_eq!(refusal(&v, &old), Some(R::Expired));
    }
}
