//! Who is on the other end of an authenticated connection.

use rustls::pki_types::CertificateDer;

use crate::crypto::{Algorithm, NodeId, PublicKey};
use crate::pki::{Certificate, CertificateError};

/// The authenticated identity of a peer, taken from the certificate chain
/// its handshake presented (and our verifier accepted).
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    /// The peer's end-entity certificate.
    pub certificate: Certificate,
    /// Whether the chain verified against the trust anchors and checks.
    /// False only for a client that connected with a self-signed
    /// certificate to an endpoint accepting unenrolled clients.
    pub enrolled: bool,
}

impl PeerIdentity {
    /// Builds the identity from the chain rustls/quinn hand back.
    pub fn from_chain(chain: &[CertificateDer<'static>]) -> Result<Self, CertificateError> {
        let leaf = chain
            .first()
            .ok_or_else(|| CertificateError::Malformed("peer presented no certificate".into()))?;
        Ok(PeerIdentity {
            certificate: Certificate::from_der(leaf)?,
            enrolled: true,
        })
    }

    /// SHA3-256 of the peer's public key (SubjectPublicKeyInfo).
    pub fn node_id(&self) -> NodeId {
        self.certificate.node_id()
    }

    /// The DNS names the peer's certificate is valid for.
    pub fn names(&self) -> Vec<String> {
        self.certificate.dns_names()
    }

    /// The peer's public key.
    pub fn public_key(&self) -> &PublicKey {
        self.certificate.public_key()
    }

    /// Whether the peer authenticated with a post-quantum key.
    pub fn is_post_quantum(&self) -> bool {
        self.public_key().algorithm() == Algorithm::FnDsa1024
    }
}
