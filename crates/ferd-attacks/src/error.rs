//! Errors of `ferd-attacks`.

use ferd_core::CoreError;
use ferd_data::DataError;
use thiserror::Error;

/// What can go wrong when attacking or evaluating: bad input is caught here, before Burn sees it.
#[derive(Debug, Error)]
pub enum AttackError {
    /// An attack setting out of range (an epsilon outside `(0, 1]`, zero steps, ...).
    #[error("invalid parameter in {what}: {detail}")]
    InvalidParameter {
        /// The attack or function that received it.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// Images, labels or logits whose shapes or values do not fit together.
    #[error("invalid input to {what}: {detail}")]
    Input {
        /// The attack or function that received it.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The model returned NaN or infinite logits: no prediction can be scored, and an attack on
    /// such a point would report it as robust or broken at random.
    #[error("{what}: {detail}")]
    NonFinite {
        /// The attack or function that received them.
        what: &'static str,
        /// How many images, and the first one's logits.
        detail: String,
    },
    /// A file that could not be read or is not what it should be (a report that does not parse).
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A loss or metric rejected its input.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A dataset could not be batched.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, AttackError>;

pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> AttackError {
    AttackError::InvalidParameter {
        what,
        detail: detail.into(),
    }
}

pub(crate) fn bad_input(what: &'static str, detail: impl Into<String>) -> AttackError {
    AttackError::Input {
        what,
        detail: detail.into(),
    }
}
