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
}

impl StackVerifier {
    /// A verifier using `chain` and accepting `algorithms` for the
    /// handshake signature.
    pub fn new(chain: ChainVerifier, algorithms: WebPkiSupportedAlgorithms) -> Self {
        StackVerifier { chain, algorithms }
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
        self.chain
            .verify(end_entity, intermediates, &KeyPurpose::Client, system_time(now))
            .map_err(to_rustls)?;
        Ok(ClientCertVerified::assertion())
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
