//! Uniform-Target Adversarial Examples (UTAE, method spec section 3): `K` signed-gradient steps
//! on `KL(t || s) - gamma KL(U || s)` from `x + 0.001 N(0, I)`, with the student frozen. It is
//! PGD with FERD's objective ([`Objective::UniformTarget`]) and a Gaussian start: the attack
//! loop, projection and stepping are `ferd_attacks::Pgd`'s.

use burn::tensor::{Int, Tensor};
use ferd_attacks::{Model, Objective, Pgd, Start};
use ferd_core::random::Noise;

use crate::config::{Threat, UtaeConfig};
use crate::error::Result;

/// The attack for a batch whose teacher logits are `teacher_logits`.
pub fn attack(threat: Threat, config: &UtaeConfig, teacher_logits: Tensor<2>) -> Pgd {
    Pgd::new(threat.eps, threat.alpha, config.steps)
        .with_start(Start::Gaussian {
            std: config.start_std,
        })
        .with_objective(Objective::UniformTarget {
            reference: teacher_logits,
            gamma: config.gamma,
        })
}

/// UTAEs of the frozen `student` around `x` (plain, in `[0, 1]`), the start drawn from `seed`.
/// The labels only serve the batch checks: the objective does not use them.
pub fn perturb(
    student: &dyn Model,
    x: Tensor<4>,
    labels: Tensor<1, Int>,
    teacher_logits: Tensor<2>,
    threat: Threat,
    config: &UtaeConfig,
    seed: u64,
) -> Result<Tensor<4>> {
    let start = &mut ferd_core::random::rng(seed);
    perturb_from(student, x, labels, teacher_logits, threat, config, start)
}

/// [`perturb`] with the start's standard normals drawn from `noise` (one per pixel).
pub fn perturb_from(
    student: &dyn Model,
    x: Tensor<4>,
    labels: Tensor<1, Int>,
    teacher_logits: Tensor<2>,
    threat: Threat,
    config: &UtaeConfig,
    noise: &mut dyn Noise,
) -> Result<Tensor<4>> {
    Ok(attack(threat, config, teacher_logits).perturb_from(student, x, labels, noise)?)
}
