//! Our key pairs as rustls signing keys.

use rustls::sign::{Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

use super::FALCON1024_SCHEME;
use crate::crypto::{Algorithm, KeyPair};

/// A [`KeyPair`] usable by rustls for CertificateVerify.
#[derive(Debug, Clone)]
pub struct StackSigningKey {
    key: KeyPair,
}

impl StackSigningKey {
    /// Wraps a key pair.
    pub fn new(key: KeyPair) -> Self {
        StackSigningKey { key }
    }

    /// The TLS signature scheme this key signs with.
    pub fn scheme(&self) -> SignatureScheme {
        scheme_for(self.key.algorithm())
    }
}

/// The TLS signature scheme of an algorithm.
pub(crate) fn scheme_for(alg: Algorithm) -> SignatureScheme {
    match alg {
        Algorithm::FnDsa1024 => FALCON1024_SCHEME,
        Algorithm::Ed25519 => SignatureScheme::ED25519,
    }
}

impl SigningKey for StackSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = self.scheme();
        offered.contains(&scheme).then(|| {
            Box::new(StackSigner {
                key: self.key.clone(),
                scheme,
            }) as Box<dyn Signer>
        })
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.key.algorithm() {
            Algorithm::FnDsa1024 => SignatureAlgorithm::Unknown(0xDA),
            Algorithm::Ed25519 => SignatureAlgorithm::ED25519,
        }
    }
}

#[derive(Debug)]
struct StackSigner {
    key: KeyPair,
    scheme: SignatureScheme,
}

impl Signer for StackSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key
            .sign(message)
            .map(|s| s.as_bytes().to_vec())
            .map_err(|e| rustls::Error::General(e.to_string()))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
