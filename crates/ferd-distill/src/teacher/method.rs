//! What a teacher is trained on: the objective of each method (standard training, PGD-AT, TRADES,
//! fast AT) on one batch.

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use ferd_attacks::{Attack, Frozen, Model, Objective, Pgd, Start};
use ferd_core::losses::{Reduction, cross_entropy, kl_divergence};
use ferd_models::Classifier;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The training objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum TeacherMethod {
    /// Cross-entropy on clean images.
    Standard,
    /// Cross-entropy on PGD examples: `steps` steps of `alpha` from a uniform random start.
    PgdAt {
        /// Radius.
        eps: f32,
        /// Step size.
        alpha: f32,
        /// Steps.
        steps: usize,
    },
    /// TRADES: `CE(f(x), y) + beta KL(f(x) || f(x'))`, `x'` maximizing the KL from
    /// `x + 0.001 N(0, I)` with `steps` steps of `alpha`.
    Trades {
        /// Radius.
        eps: f32,
        /// Step size.
        alpha: f32,
        /// Steps.
        steps: usize,
        /// Weight of the robustness term (6 in the paper).
        beta: f32,
    },
    /// Fast AT: cross-entropy on one FGSM step of `alpha` (1.25 eps) from a uniform random start.
    FastAt {
        /// Radius.
        eps: f32,
        /// Step size.
        alpha: f32,
    },
}

impl TeacherMethod {
    /// The radius the method trains against (0 for standard training).
    pub fn eps(&self) -> f32 {
        match *self {
            Self::Standard => 0.0,
            Self::PgdAt { eps, .. } | Self::Trades { eps, .. } | Self::FastAt { eps, .. } => eps,
        }
    }
}

/// The training objective of `method` on one batch (images and labels on a plain device; the
/// loss on the model's device) and the logits it was computed from. With a frozen model
/// (`model.valid()`) it measures the objective without training.
pub fn batch_loss<M: Classifier + Module>(
    model: &M,
    method: &TeacherMethod,
    x: Tensor<4>,
    y: Tensor<1, Int>,
    seed: u64,
) -> Result<(Tensor<1>, Tensor<2>)> {
    let attack = |pgd: Pgd, x: &Tensor<4>| -> Result<Tensor<4>> {
        Ok(pgd.perturb(&Frozen::new(model), x.clone(), y.clone(), seed)?)
    };
    let ad = |t: Tensor<4>| t.autodiff();
    let labels = y.clone().autodiff();
    Ok(match *method {
        TeacherMethod::Standard => {
            let logits = model.forward(ad(x));
            (cross_entropy(logits.clone(), labels)?, logits)
        }
        TeacherMethod::PgdAt { eps, alpha, steps } => {
            let adv = attack(Pgd::new(eps, alpha, steps), &x)?;
            let logits = model.forward(ad(adv));
            (cross_entropy(logits.clone(), labels)?, logits)
        }
        TeacherMethod::FastAt { eps, alpha } => {
            let adv = attack(Pgd::new(eps, alpha, 1), &x)?;
            let logits = model.forward(ad(adv));
            (cross_entropy(logits.clone(), labels)?, logits)
        }
        TeacherMethod::Trades {
            eps,
            alpha,
            steps,
            beta,
        } => {
            let reference = Frozen::new(model).logits(x.clone());
            let pgd = Pgd::new(eps, alpha, steps)
                .with_start(Start::Gaussian { std: 0.001 })
                .with_objective(Objective::Kl { reference });
            let adv = attack(pgd, &x)?;
            let natural = model.forward(ad(x));
            let robust = kl_divergence(
                natural.clone(),
                model.forward(ad(adv)),
                Reduction::BatchMean,
            )?;
            let loss = cross_entropy(natural.clone(), labels)? + robust.mul_scalar(beta);
            (loss, natural)
        }
    })
}
