//! The settings of an evaluation.

use std::path::PathBuf;

/// Settings of an evaluation.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Images per attack call.
    pub batch_size: usize,
    /// Seed of every attack; batch `i` gets a seed derived from it and `i`.
    pub seed: u64,
    /// A file in which the evaluation records its progress after every batch of every attack
    /// (written atomically). When it exists and belongs to the same evaluation (dataset, number
    /// of images, attacks, batch size, seed), the evaluation continues from it, and the report
    /// is the one an uninterrupted run gives (timings aside). `None`: nothing is recorded.
    pub state: Option<PathBuf>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            seed: 0,
            state: None,
        }
    }
}
