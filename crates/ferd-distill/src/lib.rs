//! Training loops of ferd: robust teachers ([`teacher`]: standard training, PGD-AT, TRADES,
//! fast AT) with per-epoch class-wise evaluation, best-checkpoint selection and resumable
//! atomic checkpoints ([`checkpoint`]), and learning-rate schedules ([`schedule`]).
//!
//! FERD's data-free distillation (Fairness-Aware Examples, robustness-guided reweighting,
//! Uniform-Target Adversarial Examples, the student loss) is the next issue and not here yet.

pub mod checkpoint;
pub mod error;
pub mod schedule;
pub mod teacher;

pub use error::DistillError;
pub use schedule::LrSchedule;
pub use teacher::{
    EpochMetrics, Method, RunOptions, TeacherConfig, Trained, batch_loss, hold_out, train_teacher,
};
