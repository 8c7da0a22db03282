//! The attack suite of ferd and class-wise robustness evaluation, in the Linf threat model.
//!
//! - Attacks: FGSM, PGD with a pluggable [`Objective`] and CW-inf ([`Pgd`]); APGD-CE, APGD-DLR
//!   ([`Apgd`]) and APGD-T ([`ApgdTargeted`]); FAB and FAB-T ([`Fab`]); [`Square`]; and
//!   [`AutoAttack`] (`standard`, `plus`, `rand`, `custom`). They follow fra31's AutoAttack;
//!   `docs/attacks.md` lists every setting and where ferd departs from it.
//! - Every attack implements [`Attack`]: it takes a [`Model`] (a closure from `[0, 1]` images to
//!   logits, or a [`Frozen`] ferd classifier), images, labels and a seed, and returns images
//!   within `eps` in max-norm and in `[0, 1]`.
//! - [`evaluate()`] runs attacks over a dataset and reports clean and robust accuracy overall and
//!   per class, worst class, worst 10% and NSD ([`EvaluationReport`]);
//!   [`evaluate_observed`] also emits its progress as [`EvalEvent`]s (the library never prints).
//!
//! The pieces every attack shares exist once: the projection and random starts ([`ball`]), the
//! losses (from `ferd_core::losses`, chosen by [`Objective`]), the target selection
//! ([`objective::ranked_class`]) and the robust-point bookkeeping that chains restarts, targets
//! and AutoAttack's components.

pub mod apgd;
pub mod attack;
pub mod autoattack;
pub mod ball;
pub mod catalog;
pub mod checks;
pub mod error;
pub mod evaluate;
pub mod events;
pub mod fab;
pub mod model;
pub mod objective;
pub mod pgd;
mod rows;
pub mod square;

pub use apgd::{Apgd, ApgdLoss, ApgdTargeted};
pub use attack::{Attack, Stage, Staged};
pub use autoattack::{AutoAttack, Version};
pub use catalog::attack_by_name;
pub use error::AttackError;
pub use evaluate::{
    AttackReport, EvalConfig, EvaluationReport, StageReport, evaluate, evaluate_observed,
};
pub use events::{AttackEvent, EvalEvent, Observer, PassStarted, StageStarted};
pub use fab::Fab;
pub use model::{Frozen, Model};
pub use objective::Objective;
pub use pgd::{Pgd, Start, ascent_step};
pub use square::Square;
