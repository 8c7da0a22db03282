//! Errors of `ferd-core`.

use thiserror::Error;

/// What can go wrong in `ferd-core`: bad input is reported here, before it reaches Burn.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// A device string that does not parse, e.g. `"gpu"` or `"cuda:x"`.
    #[error(
        "unknown device `{spec}`: expected one of flex, ndarray, wgpu, wgpu:N, wgpu:cpu, cuda:N"
    )]
    UnknownDevice {
        /// The string given.
        spec: String,
    },
    /// A device whose backend was not compiled into this build.
    #[error(
        "device `{spec}` needs ferd to be built with the `{feature}` feature (cargo ... --features {feature})"
    )]
    BackendNotCompiled {
        /// The string given.
        spec: String,
        /// The cargo feature that enables the backend.
        feature: &'static str,
    },
    /// Two tensors (or a tensor and a parameter) whose shapes do not fit together.
    #[error("shape mismatch in {what}: {detail}")]
    Shape {
        /// The operation that received the input.
        what: &'static str,
        /// What was expected and what was found.
        detail: String,
    },
    /// A parameter outside its valid range (a temperature of 0, probabilities that do not order).
    #[error("invalid parameter in {what}: {detail}")]
    InvalidParameter {
        /// The operation that received the parameter.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, CoreError>;

pub(crate) fn shape_error(what: &'static str, detail: impl Into<String>) -> CoreError {
    CoreError::Shape {
        what,
        detail: detail.into(),
    }
}

pub(crate) fn param_error(what: &'static str, detail: impl Into<String>) -> CoreError {
    CoreError::InvalidParameter {
        what,
        detail: detail.into(),
    }
}
