//! Errors of `ferd-models`.

use std::path::PathBuf;

use thiserror::Error;

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
    /// not have, or tensors of the wrong shape. Every problem is named.
    #[error("{} does not fit the model:{}", path.display(), problems.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// One line per missing, unexpected or mis-shaped tensor.
        problems: Vec<String>,
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
