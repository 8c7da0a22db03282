//! Errors of `ferd-data`.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong while finding, reading or batching a dataset.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file was read but its content is not a valid file of the expected format.
    #[error("{}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two files that belong together (images and labels) disagree.
    #[error("{} and {} do not match: {reason}", images.display(), labels.display())]
    Mismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// How they disagree.
        reason: String,
    },
    /// The dataset is not where ferd looked.
    #[error(
        "{dataset} ({split}) not found; looked in: {}. {hint}",
        searched_list(searched)
    )]
    NotFound {
        /// The dataset's name.
        dataset: &'static str,
        /// `train` or `test`.
        split: &'static str,
        /// The folders that were searched, in order.
        searched: Vec<PathBuf>,
        /// How to get the dataset.
        hint: &'static str,
    },
    /// An argument that cannot work (a batch size of 0, an index past the end).
    #[error("invalid argument to {what}: {detail}")]
    InvalidArgument {
        /// The operation.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

fn searched_list(searched: &[PathBuf]) -> String {
    if searched.is_empty() {
        return "nowhere".to_string();
    }
    searched
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, DataError>;

pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> DataError {
    DataError::Corrupt {
        path: path.into(),
        reason: reason.into(),
    }
}

pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> DataError {
    DataError::InvalidArgument {
        what,
        detail: detail.into(),
    }
}
