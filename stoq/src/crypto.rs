//! crypto
/// Crypto errors.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// x
    #[error("x")]
    X,
}
