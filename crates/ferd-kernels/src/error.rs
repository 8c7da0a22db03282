//! Errors of `ferd-kernels`.

use thiserror::Error;

/// What can go wrong in `ferd-kernels`: shapes that do not fit an op, reported before any
/// kernel (or Burn) sees them.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// Two tensors (or a tensor and its options) whose shapes do not fit together.
    #[error("shape mismatch in {what}: {detail}")]
    Shape {
        /// The operation that received the input.
        what: &'static str,
        /// What was expected and what was found.
        detail: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, KernelError>;

pub(crate) fn shape_error(what: &'static str, detail: impl Into<String>) -> KernelError {
    KernelError::Shape {
        what,
        detail: detail.into(),
    }
}
