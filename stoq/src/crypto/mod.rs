//! Post-quantum (and, for classical peers only, Ed25519) signatures behind
//! algorithm-agile types, plus the SHA3-256 helpers used for ids and Merkle
//! trees.
//!
//! Every [`PublicKey`] and [`Signature`] carries its [`Algorithm`], so a
//! verifier never guesses which scheme a byte string belongs to, and new
//! schemes can be added without changing the encodings: the compact wire
//! form is `version (1) | algorithm (1) | length (2, BE) | bytes`, the
//! file form is SubjectPublicKeyInfo / PKCS#8 DER or PEM.

mod algorithm;
mod ed25519;
mod encoding;
mod falcon;
mod hash;
mod keys;

pub use algorithm::Algorithm;
pub use encoding::{read_key_file, write_key_file, ENCODING_VERSION};
pub use hash::{hex, merkle_leaf_hash, merkle_node_hash, merkle_root, sha3_256, sha3_256_parts, NodeId};
pub use keys::{KeyPair, PublicKey, Signature};

/// Verifies an FN-DSA-1024 signature against an encoded public key (the
/// one-shot path webpki takes for certificates and TLS handshakes).
pub fn falcon_verify_encoded(public_key: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    falcon::verify_encoded(public_key, msg, sig)
}

/// Errors from key handling, signing and verification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The algorithm id or object identifier names no algorithm we implement.
    #[error("unknown signature algorithm {0}")]
    UnknownAlgorithm(String),
    /// A public key's bytes do not decode for its algorithm.
    #[error("invalid {alg} public key ({len} bytes)")]
    InvalidPublicKey {
        /// The algorithm the key claimed.
        alg: Algorithm,
        /// How many bytes it had.
        len: usize,
    },
    /// A secret key's bytes do not decode for its algorithm.
    #[error("invalid {0} secret key")]
    InvalidSecretKey(Algorithm),
    /// The signature does not verify for this key and message.
    #[error("{0} signature verification failed")]
    BadSignature(Algorithm),
    /// The signature was made with another algorithm than the key's.
    #[error("signature algorithm {sig} does not match key algorithm {key}")]
    AlgorithmMismatch {
        /// The key's algorithm.
        key: Algorithm,
        /// The signature's algorithm.
        sig: Algorithm,
    },
    /// The signer failed (an invalid key or a failing random source).
    #[error("{0} signing failed")]
    SigningFailed(Algorithm),
    /// A compact or DER/PEM encoding is malformed, truncated or of an
    /// unsupported version.
    #[error("malformed encoding: {0}")]
    Encoding(String),
}

impl From<der::Error> for CryptoError {
    fn from(e: der::Error) -> Self {
        CryptoError::Encoding(e.to_string())
    }
}
