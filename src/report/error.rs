//! Why a report could not be made.

use std::path::PathBuf;

use ferd_attacks::AttackError;
use ferd_distill::DistillError;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file that cannot be read or written, or is not what it should be.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An evaluation report that cannot be read.
    #[error(transparent)]
    Attack(#[from] AttackError),
    /// A run folder that cannot be read.
    #[error(transparent)]
    Distill(#[from] DistillError),
    /// An image grid that cannot be written.
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
}
