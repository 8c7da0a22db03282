//! What an evaluation tells the outside world while it works: [`EvalEvent`]s to an
//! [`Observer`], drawn by the program (nested progress bars in `ferd evaluate`, log lines, or
//! nothing). A composite attack such as AutoAttack reports each component as it starts
//! ([`StageStarted`]), so that a long batch is not silent for an hour.

use serde::Serialize;

/// The receiver of an evaluation's events (`()` ignores them; a closure draws them).
pub use ferd_core::Observer;

/// A component of a composite attack starts on one batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageStarted {
    /// The component's position in the ensemble (0-based).
    pub stage: usize,
    /// Components in the ensemble.
    pub stages: usize,
    /// The component's name, e.g. `apgd-t`.
    pub name: String,
    /// Points of the batch it attacks: those no earlier component has broken.
    pub points: usize,
}

/// A pass of an attack starts: one restart, or one target class of a targeted attack (APGD-T
/// and FAB-T run `targets x restarts` passes), on the points no earlier pass has broken.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassStarted {
    /// The pass (0-based).
    pub pass: usize,
    /// Passes in the attack.
    pub passes: usize,
    /// Points it attacks.
    pub points: usize,
}

/// What an attack tells its caller while it works on a batch ([`crate::Attack::perturb_staged`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AttackEvent {
    /// A component of a composite attack starts.
    Stage(StageStarted),
    /// A pass of the attack (or of the current component) starts.
    Pass(PassStarted),
}

/// Something that happened in an evaluation. New kinds may be added: match with a wildcard.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EvalEvent {
    /// The evaluation starts (or resumes from its state file).
    Started {
        /// Images evaluated.
        images: usize,
        /// Batches per attack.
        batches: usize,
        /// The attacks' names, in order.
        attacks: Vec<String>,
    },
    /// The clean predictions of one batch are done.
    CleanBatch {
        /// Images classified so far.
        done: usize,
        /// Images in all.
        images: usize,
    },
    /// An attack starts; `done` images were already attacked by an earlier, resumed run.
    AttackStarted {
        /// The attack's position in the list (0-based).
        attack: usize,
        /// Its name.
        name: String,
        /// Images already attacked.
        done: usize,
        /// Images in all.
        images: usize,
    },
    /// A component of a composite attack starts on the current batch.
    Stage {
        /// The attack's position in the list.
        attack: usize,
        /// The batch (0-based).
        batch: usize,
        /// Batches per attack.
        batches: usize,
        /// The component.
        started: StageStarted,
    },
    /// A pass (restart or target class) of the attack, or of its current component, starts on
    /// the current batch.
    Pass {
        /// The attack's position in the list.
        attack: usize,
        /// The batch (0-based).
        batch: usize,
        /// Batches per attack.
        batches: usize,
        /// The pass.
        started: PassStarted,
    },
    /// One batch of an attack is done.
    Batch {
        /// The attack's position in the list.
        attack: usize,
        /// Images attacked so far.
        done: usize,
        /// Images in all.
        images: usize,
        /// Robust accuracy over the images attacked so far.
        robust_accuracy: f64,
    },
    /// An attack is done on every image.
    AttackEnded {
        /// The attack's position in the list.
        attack: usize,
        /// Its name.
        name: String,
        /// Its robust accuracy.
        robust_accuracy: f64,
        /// Wall-clock seconds it took (over resumed runs too).
        seconds: f64,
    },
}
