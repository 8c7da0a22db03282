//! What a run tells the outside world while it works. The library never prints: it emits
//! [`Event`]s to an [`Observer`], and a binary decides how to draw them (a progress line, a log,
//! nothing at all in tests).

use serde::Serialize;

use crate::student::StepReport;
use crate::synthesis::LossTerms;

/// The receiver of a run's [`Event`]s (`Observer<Event>`; `()` ignores them, a closure over
/// `&Event` draws them).
pub use ferd_core::Observer;

/// Something that happened in a run. New kinds of events may be added: match with a wildcard.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run starts at `first_epoch` (non-zero when resumed from a checkpoint).
    RunStarted {
        /// The first epoch this process runs (0-based).
        first_epoch: usize,
        /// Epochs in the whole run.
        epochs: usize,
    },
    /// Progress inside an epoch: `done` of `total` units of the named phase.
    Progress {
        /// The epoch (0-based).
        epoch: usize,
        /// The phase: `train`, `synthesis`, `student`, `evaluation`, ...
        phase: &'static str,
        /// Units done.
        done: usize,
        /// Units in the phase.
        total: usize,
        /// A short status, e.g. the running loss.
        status: String,
    },
    /// A synthesis step ended, with its loss terms.
    SynthesisStep {
        /// The epoch (0-based).
        epoch: usize,
        /// The step (0-based).
        step: usize,
        /// The step's generator loss terms.
        terms: LossTerms,
    },
    /// A student step ended, with what it measured.
    StudentStep {
        /// The epoch (0-based).
        epoch: usize,
        /// The step (0-based).
        step: usize,
        /// The step's losses and UTAE predictions.
        report: StepReport,
    },
    /// An epoch ended; `summary` is a one-line digest of its metrics (the metrics themselves go
    /// to `metrics.jsonl`).
    EpochEnded {
        /// The epoch (0-based).
        epoch: usize,
        /// Epochs in the whole run.
        epochs: usize,
        /// Seconds the epoch took.
        seconds: f64,
        /// A digest of the epoch's metrics.
        summary: String,
    },
    /// A checkpoint was written after `epochs_done` epochs.
    Checkpoint {
        /// Epochs done.
        epochs_done: usize,
    },
}
