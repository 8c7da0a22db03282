//! Training of ferd: FERD's data-free robust distillation and robust teachers.
//!
//! FERD (arXiv 2509.20793, ICLR 2026; `shared/spec/ferd-method.md`), one concept per module:
//! - [`synthesis`]: one synthesis round: a fresh generator and latent optimized on
//!   `L_G = w_bn L_bn + w_adv L_adv + w_oh L_oh + w_uni L_uni`;
//! - [`fairness_aware`]: Fairness-Aware Examples, the information-bottleneck split of the
//!   teacher's features and the uniformity loss `L_uni`;
//! - [`fragility`] (with `ferd_core::reweighting`): robustness-guided class reweighting;
//! - [`bank`]: the growing sample bank;
//! - [`uniform_target`]: Uniform-Target Adversarial Examples;
//! - [`student`]: the student loss and step;
//! - [`distill`](distill()): the loop, with [`FerdConfig`] and its [`presets`];
//! - [`draws`]: every random draw of a run, seeded or replayed from a recording.
//!
//! Teachers: [`teacher`] (standard training, PGD-AT, TRADES, fast AT) and its recipes
//! ([`teacher::presets`]). Both run on the shared
//! epoch loop of [`run`] (run folder, resumable atomic [`checkpoint`]s, metrics as JSON lines,
//! [`events`] for progress: the library never prints).

pub mod bank;
pub mod checkpoint;
pub mod config;
pub mod distill;
pub mod draws;
pub mod error;
pub mod events;
pub mod fairness_aware;
pub mod fragility;
pub mod optim;
pub mod presets;
pub mod run;
pub mod schedule;
pub mod student;
pub mod synthesis;
pub mod teacher;
pub mod uniform_target;

pub use config::FerdConfig;
pub use distill::{DistillEpoch, Distilled, Evaluation, distill, distill_with};
pub use error::DistillError;
pub use events::{Event, Observer};
pub use presets::{Budget, FerdMethod};
pub use run::{Job, RunOptions, read_metrics};
pub use schedule::LrSchedule;
pub use teacher::presets::{TeacherPreset, TeacherRecipe};
pub use teacher::{
    TeacherConfig, TeacherEpoch, TeacherMethod, Trained, batch_loss, hold_out, train_teacher,
};
