//! Writing a report folder: its files, each an error naming the path when it cannot be written.

use std::path::{Path, PathBuf};

use super::ReportError;

/// Writes `text` to `path`; returns the path.
pub(super) fn write_file(path: PathBuf, text: &str) -> Result<PathBuf, ReportError> {
    std::fs::write(&path, text).map_err(|e| ReportError::File {
        path: path.clone(),
        reason: format!("cannot write: {e}"),
    })?;
    Ok(path)
}

/// Creates `dir` and its parents.
pub(super) fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::File {
        path: dir.to_path_buf(),
        reason: format!("cannot create the folder: {e}"),
    })
}
