//! Frame codec (placeholder, being written).

/// Errors of the frame codec.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Placeholder.
    #[error("placeholder")]
    Placeholder,
}
