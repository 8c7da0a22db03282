//! Errors of `ferd-distill`.

use std::path::PathBuf;

use ferd_attacks::AttackError;
use ferd_core::CoreError;
use ferd_data::DataError;
use ferd_models::error::ModelError;
use thiserror::Error;

/// What can go wrong while training.
#[derive(Debug, Error)]
pub enum DistillError {
    /// A training setting out of range.
    #[error("invalid training configuration: {0}")]
    Config(String),
    /// A file that is not what it should be (a config that does not parse or does not check).
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint that cannot be used (missing files, another configuration).
    #[error("checkpoint {path}: {detail}")]
    Checkpoint {
        /// The checkpoint folder.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Reading or writing a run's files.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A loss or a model output became NaN or infinite: the run stops (its last checkpoint is
    /// the last good state).
    #[error("{what} is not finite: {detail}")]
    NonFinite {
        /// What became non-finite, and where.
        what: String,
        /// The values seen.
        detail: String,
    },
    /// The teacher, the student and the configuration do not fit together.
    #[error("models and configuration do not fit: {0}")]
    Mismatch(String),
    /// A loss rejected its input.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The data could not be batched.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Weights could not be saved or loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An attack failed (bad epsilon, ...).
    #[error(transparent)]
    Attack(#[from] AttackError),
}

impl DistillError {
    /// For a [`NonFinite`](Self::NonFinite) error (or an attack's), `place` put in front of what
    /// failed (the epoch, the step); other errors unchanged.
    pub(crate) fn at(self, place: impl std::fmt::Display) -> Self {
        match self {
            Self::NonFinite { what, detail } => Self::NonFinite {
                what: format!("{place}: {what}"),
                detail,
            },
            Self::Attack(AttackError::NonFinite { what, detail }) => Self::NonFinite {
                what: format!("{place}: the input of {what}"),
                detail,
            },
            other => other,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, DistillError>;

pub(crate) fn io_error(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DistillError {
    let path = path.into();
    move |source| DistillError::Io { path, source }
}
