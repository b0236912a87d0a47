//! The crate's error type.

use crate::frame::FrameError;

/// Everything that can go wrong in STOQ.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key, signature or encoding was malformed or did not verify.
    #[error("crypto: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A frame on the wire was malformed, oversized or of an unknown version.
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    /// A certificate or chain was refused or could not be built.
    #[error("certificate: {0}")]
    Certificate(#[from] crate::pki::CertificateError),
    /// A gossip message was malformed or refused.
    #[error("gossip: {0}")]
    Gossip(#[from] crate::gossip::GossipError),
    /// The configuration is inconsistent; the message says what to change.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading or writing a local file failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, e.g. the path being read.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
