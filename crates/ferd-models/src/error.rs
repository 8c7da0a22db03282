//! Errors of `ferd-models`.

use std::path::PathBuf;

use thiserror::Error;

/// How many problems a [`ModelError::Mismatch`] lists before it counts the rest.
pub const SHOWN_PROBLEMS: usize = 12;

/// A tensor whose shape in a checkpoint differs from the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeDifference {
    /// The tensor's name in the model (`conv1.weight`).
    pub name: String,
    /// Its shape in the model.
    pub expected: Vec<usize>,
    /// Its shape in the file.
    pub found: Vec<usize>,
}

/// The text of a [`ModelError::Mismatch`]: the first difference and the fitting name first.
fn mismatch_text(
    path: &std::path::Path,
    problems: &[String],
    differences: &[ShapeDifference],
    fits: Option<&str>,
) -> String {
    let mut text = format!("{} does not fit the model", path.display());
    if let Some(first) = differences.first() {
        text.push_str(&format!(
            ": {} is {:?} in the file, {:?} in the model",
            first.name, first.found, first.expected
        ));
    }
    if let Some(fits) = fits {
        text.push_str(&format!("; the file fits {fits}"));
    }
    for problem in problems.iter().take(SHOWN_PROBLEMS) {
        text.push_str(&format!("\n  - {problem}"));
    }
    if problems.len() > SHOWN_PROBLEMS {
        text.push_str(&format!(
            "\n  ... and {} more",
            problems.len() - SHOWN_PROBLEMS
        ));
    }
    text
}

/// What can go wrong when loading or saving weights.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A model name that ferd does not know.
    #[error("unknown model `{name}`: expected one of {known}")]
    UnknownArchitecture {
        /// The name given.
        name: String,
        /// The accepted names.
        known: &'static str,
    },
    /// The file's extension names no supported format.
    #[error("{}: unknown weight format (expected .pt, .pth, .safetensors or .bpk)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read or parsed.
    #[error("{}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        reason: String,
    },
    /// The file could not be written.
    #[error("cannot write {}: {reason}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The writer's error.
        reason: String,
    },
    /// The checkpoint does not fit the model: parameters the file lacks, tensors the model does
    /// not have, or tensors of the wrong shape. The first shape that differs comes first, with
    /// the architecture the file fits where that tells one ([`crate::zoo::Architecture::refit`]),
    /// then the problems (the first [`SHOWN_PROBLEMS`], and how many more).
    #[error("{}", mismatch_text(path, problems, differences, fits.as_deref()))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// One line per missing, unexpected or mis-shaped tensor.
        problems: Vec<String>,
        /// The tensors whose shapes differ, in the model's order.
        differences: Vec<ShapeDifference>,
        /// An architecture name that the file's shapes fit, and why (`resnet18-w8: its conv1
        /// has 8 output channels`), where one is known.
        fits: Option<String>,
    },
    /// An argument that makes no sense (a key rename that is no regular expression).
    #[error("invalid {what}: {detail}")]
    InvalidArgument {
        /// What the argument is.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
}
