//! The error of every decoder (its own file: the format decoders and the dispatching
//! `Decoder` both use it).

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    pub reason: String,
}

impl DecodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        DecodeError {
            reason: reason.into(),
        }
    }
}
