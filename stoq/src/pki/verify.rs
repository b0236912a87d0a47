//! Chain verification against trust anchors, with hooks for further checks.

use rustls_pki_types::{CertificateDer, ServerName, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};

use super::{Certificate, CertificateError};

/// A further check on a chain that webpki accepted: TrustChain plugs in
/// co-signature, transparency-proof and revocation checks here.
pub trait CertificateCheck: Send + Sync + fmt::Debug {
    /// A short name for errors and logs (`revocation`, `co-signatures`).
    fn name(&self) -> &'static str;
    /// Accepts or refuses the chain, saying why.
    fn check(&self, chain: &VerifiedChain, now: SystemTime) -> Result<(), String>;
}

/// The purpose a chain is verified for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPurpose {
    /// A TLS server we dialled under `name`.
    Server(String),
    /// A TLS client that dialled us.
    Client,
}

/// A chain that passed verification.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    /// The end-entity certificate.
    pub end_entity: Certificate,
    /// The intermediates the peer sent (in the order sent).
    pub intermediates: Vec<Certificate>,
}

/// A set of trusted root certificates.
#[derive(Clone, Default)]
pub struct TrustAnchors {
    roots: Vec<Certificate>,
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustAnchors {
    /// Trusts these roots; refuses a root webpki cannot use as an anchor.
    pub fn new(roots: impl IntoIterator<Item = Certificate>) -> Result<Self, CertificateError> {
        let mut out = TrustAnchors::default();
        for root in roots {
            out.add(root)?;
        }
        Ok(out)
    }

    /// Adds one root.
    pub fn add(&mut self, root: Certificate) -> Result<(), CertificateError> {
        if !root.is_ca() {
            return Err(CertificateError::Usage(format!(
                "trust anchor {} is not a CA certificate",
                root.subject()
            )));
        }
        let anchor = webpki::anchor_from_trusted_cert(root.der())
            .map_err(|e| CertificateError::Malformed(format!("trust anchor: {e}")))?
            .to_owned();
        self.anchors.push(anchor);
        self.roots.push(root);
        Ok(())
    }

    /// The root certificates.
    pub fn roots(&self) -> &[Certificate] {
        &self.roots
    }

    /// The webpki anchors.
    pub fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    /// Whether no root is trusted.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.roots.iter().map(|r| r.subject())).finish()
    }
}

/// Verifies chains: webpki (signatures, validity, basic constraints, EKU,
/// names), then key usage, then the registered [`CertificateCheck`]s.
#[derive(Clone)]
pub struct ChainVerifier {
    anchors: TrustAnchors,
    algorithms: &'static [&'static dyn SignatureVerificationAlgorithm],
    checks: Vec<Arc<dyn CertificateCheck>>,
}

impl fmt::Debug for ChainVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainVerifier")
            .field("anchors", &self.anchors)
            .field("checks", &self.checks)
            .finish()
    }
}

impl ChainVerifier {
    /// A verifier trusting `anchors` and accepting `algorithms` (see
    /// [`super::POST_QUANTUM_ALGORITHMS`]).
    pub fn new(anchors: TrustAnchors, algorithms: &'static [&'static dyn SignatureVerificationAlgorithm]) -> Self {
        ChainVerifier {
            anchors,
            algorithms,
            checks: Vec::new(),
        }
    }

    /// Adds a check run after the chain verified.
    pub fn with_check(mut self, check: Arc<dyn CertificateCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// The trusted roots.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// The accepted signature algorithms.
    pub fn algorithms(&self) -> &'static [&'static dyn SignatureVerificationAlgorithm] {
        self.algorithms
    }

    /// Verifies `end_entity` (with the `intermediates` the peer sent) for
    /// `purpose` at `now`.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        purpose: &KeyPurpose,
        now: SystemTime,
    ) -> Result<VerifiedChain, CertificateError> {
        if self.anchors.is_empty() {
            return Err(CertificateError::UnknownIssuer);
        }
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(map_webpki)?;
        let unix = UnixTime::since_unix_epoch(now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default());
        let usage = match purpose {
            KeyPurpose::Server(_) => webpki::KeyUsage::server_auth(),
            KeyPurpose::Client => webpki::KeyUsage::client_auth(),
        };
        ee.verify_for_usage(
            self.algorithms,
            self.anchors.anchors(),
            intermediates,
            unix,
            usage,
            None,
            None,
        )
        .map_err(map_webpki)?;
        if let KeyPurpose::Server(name) = purpose {
            let server_name =
                ServerName::try_from(name.as_str()).map_err(|_| CertificateError::NameMismatch(name.clone()))?;
            ee.verify_is_valid_for_subject_name(&server_name)
                .map_err(|_| CertificateError::NameMismatch(name.clone()))?;
        }
        let end_entity = Certificate::from_der(end_entity)?;
        // webpki does not look at keyUsage; a leaf must be allowed to sign.
        if let Some(ku) = end_entity.extension::<KeyUsage>()? {
            if !ku.0.contains(KeyUsages::DigitalSignature) {
                return Err(CertificateError::Usage("keyUsage lacks digitalSignature".into()));
            }
        }
        let intermediates = intermediates
            .iter()
            .map(|c| Certificate::from_der(c))
            .collect::<Result<Vec<_>, _>>()?;
        let chain = VerifiedChain {
            end_entity,
            intermediates,
        };
        for check in &self.checks {
            check.check(&chain, now).map_err(|reason| CertificateError::Rejected {
                check: check.name(),
                reason,
            })?;
        }
        Ok(chain)
    }
}

fn map_webpki(e: webpki::Error) -> CertificateError {
    use webpki::Error as W;
    match e {
        W::CertExpired { .. } => CertificateError::Expired,
        W::CertNotValidYet { .. } => CertificateError::NotYetValid,
        W::UnknownIssuer => CertificateError::UnknownIssuer,
        W::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        W::UnsupportedSignatureAlgorithmContext(_) | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            CertificateError::Algorithm("signature algorithm not accepted in this security mode".into())
        }
        W::CertNotValidForName(_) => CertificateError::NameMismatch("requested name".into()),
        W::RequiredEkuNotFoundContext(_) | W::CaUsedAsEndEntity | W::EndEntityUsedAsCa => {
            CertificateError::Usage(e.to_string())
        }
        W::BadDer | W::BadDerTime | W::TrailingData(_) => CertificateError::Malformed(e.to_string()),
        other => CertificateError::Other(format!("{other:?}")),
    }
}
