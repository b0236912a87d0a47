//! Signature verification algorithms as webpki and rustls see them.

use rustls_pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};

/// AlgorithmIdentifier content for FN-DSA-1024: the OID 1.3.9999.3.14 with
/// parameters absent, exactly as webpki compares it (no outer SEQUENCE).
const FALCON1024_ALG_ID: AlgorithmIdentifier =
    AlgorithmIdentifier::from_slice(&[0x06, 0x05, 0x2B, 0xCE, 0x0F, 0x03, 0x0E]);

/// FN-DSA-1024 for webpki: certificate signatures and TLS CertificateVerify.
#[derive(Debug)]
pub struct Falcon1024Verify;

impl SignatureVerificationAlgorithm for Falcon1024Verify {
    fn verify_signature(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<(), InvalidSignature> {
        if crate::crypto::falcon_verify_encoded(public_key, message, signature) {
            Ok(())
        } else {
            Err(InvalidSignature)
        }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        FALCON1024_ALG_ID
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        FALCON1024_ALG_ID
    }
}

/// The FN-DSA-1024 verifier instance.
pub static FALCON1024: &dyn SignatureVerificationAlgorithm = &Falcon1024Verify;

/// Algorithms accepted in post-quantum mode: FN-DSA-1024 only.
pub static POST_QUANTUM_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[FALCON1024];

/// Algorithms accepted in classical compatibility mode: FN-DSA-1024 and
/// Ed25519.
pub static COMPAT_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[FALCON1024, webpki::aws_lc_rs::ED25519];
