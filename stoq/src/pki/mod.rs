//! X.509 certificates signed with FN-DSA-1024 (or Ed25519 for the classical
//! compatibility chain), and chain verification against trust anchors.
//!
//! [`issue`] builds certificates with the RustCrypto `x509-cert` builder and
//! our own signer; [`Certificate`] parses one and exposes what the transport
//! needs (node id, names, validity, extensions); [`ChainVerifier`] checks a
//! chain with webpki (signatures, validity window, basic constraints, names)
//! plus key usage, then runs the [`CertificateCheck`] hooks TrustChain adds
//! (co-signatures, transparency proof, revocation).

mod algorithms;
mod build;
mod cert;
mod tbs;
#[cfg(test)]
pub(crate) mod tests;
mod verify;

pub use algorithms::{Falcon1024Verify, COMPAT_ALGORITHMS, FALCON1024, POST_QUANTUM_ALGORITHMS};

pub use build::{issue, CertKind, CertificateParams, Issuer};
pub use cert::Certificate;
pub use tbs::{sign_tbs, sign_tbs_for, tbs_add_extension, tbs_certificate, tbs_of, tbs_remove_extension};
pub use verify::{CertificateCheck, ChainVerifier, KeyPurpose, TrustAnchors, VerifiedChain};

/// The OID arc for the stack's private X.509 extensions
/// (1.3.6.1.4.1.59999.1, under a private enterprise number placeholder).
pub const STACK_EXTENSION_ARC: &str = "1.3.6.1.4.1.59999.1";

/// Why a certificate or chain was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CertificateError {
    /// The DER does not parse as an X.509 certificate, or a field we need is
    /// malformed.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The chain does not lead to one of the configured trust anchors.
    #[error("certificate is not issued by a trusted root (check the trust bundle)")]
    UnknownIssuer,
    /// A signature in the chain does not verify.
    #[error("certificate signature does not verify")]
    BadSignature,
    /// The current time is after the certificate's notAfter.
    #[error("certificate has expired")]
    Expired,
    /// The current time is before the certificate's notBefore.
    #[error("certificate is not yet valid")]
    NotYetValid,
    /// The certificate is not valid for the name we dialled.
    #[error("certificate is not valid for name {0}")]
    NameMismatch(String),
    /// Key usage, extended key usage or basic constraints forbid this use.
    #[error("certificate may not be used for this purpose: {0}")]
    Usage(String),
    /// The signature or key algorithm is not allowed in this security mode.
    #[error("algorithm not allowed: {0}")]
    Algorithm(String),
    /// A [`CertificateCheck`] hook refused the chain (revoked, missing
    /// co-signatures, no transparency proof, ...).
    #[error("{check}: {reason}")]
    Rejected {
        /// The name of the check.
        check: &'static str,
        /// Why it refused.
        reason: String,
    },
    /// Building a certificate failed (encoding or signing).
    #[error("issuing certificate: {0}")]
    Issue(String),
    /// Any other verification failure reported by webpki.
    #[error("certificate verification failed: {0}")]
    Other(String),
}

impl From<der::Error> for CertificateError {
    fn from(e: der::Error) -> Self {
        CertificateError::Malformed(e.to_string())
    }
}
