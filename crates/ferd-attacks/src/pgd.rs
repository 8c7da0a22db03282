//! Projected gradient ascent in the Linf ball: PGD (Madry et al. 2018), its one-step special
//! case FGSM (Goodfellow et al. 2015), and CW-inf (PGD on the CW margin, Carlini & Wagner 2017).
//!
//! One run: start at `x` or at a uniform random point of the ball, then `steps` times
//! `x_adv <- P(x_adv + alpha sign(grad))`, `P` the projection onto the ball and `[0, 1]`; the
//! run returns its last iterate (what adversarial training needs). Restarts after the first run
//! only on the points still classified correctly, keeping what fooled the model (torchattacks'
//! and AutoAttack's rule).

use burn::tensor::{Int, Tensor};
use ferd_core::random::Noise;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::attack::{Attack, prepare};
use crate::ball::{check_count, gaussian_noise, project, uniform_start};
use crate::error::{Result, bad_input, invalid};
use crate::model::{Model, classified, probe};
use crate::objective::Objective;
use crate::rows::Robust;

/// Where a run starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start {
    /// At the clean image.
    Clean,
    /// At `clip01(x + U[-eps, eps])` (Madry et al.).
    Uniform,
    /// At `x + std N(0, I)`, not clipped (TRADES' and FERD's code: `std = 0.001`); the first
    /// step's projection brings the iterate back into the ball and the box.
    Gaussian {
        /// Standard deviation of the noise.
        std: f32,
    },
}

/// PGD with a pluggable objective; FGSM and CW-inf are presets.
#[derive(Debug, Clone)]
pub struct Pgd {
    /// Radius of the Linf ball.
    pub eps: f32,
    /// Step size.
    pub alpha: f32,
    /// Gradient steps per run.
    pub steps: usize,
    /// Where each run starts.
    pub start: Start,
    /// Runs; runs after the first attack only the points still robust.
    pub restarts: usize,
    /// What each step increases.
    pub objective: Objective,
}

impl Pgd {
    /// PGD-`steps` on the cross-entropy with a random start and one run.
    pub fn new(eps: f32, alpha: f32, steps: usize) -> Self {
        Self {
            eps,
            alpha,
            steps,
            start: Start::Uniform,
            restarts: 1,
            objective: Objective::CrossEntropy,
        }
    }

    /// FGSM: one step of size `eps` from the clean image, `clip01(x + eps sign(grad CE))`.
    pub fn fgsm(eps: f32) -> Self {
        Self::new(eps, eps, 1).with_random_start(false)
    }

    /// CW-inf: PGD on the CW margin with `kappa = 50`, random start.
    pub fn cw_inf(eps: f32, alpha: f32, steps: usize) -> Self {
        Self::new(eps, alpha, steps).with_objective(Objective::CwMargin { kappa: 50.0 })
    }

    /// Sets the objective.
    pub fn with_objective(mut self, objective: Objective) -> Self {
        self.objective = objective;
        self
    }

    /// Sets whether runs start at a uniform random point of the ball or at the clean image.
    pub fn with_random_start(mut self, random_start: bool) -> Self {
        self.start = if random_start {
            Start::Uniform
        } else {
            Start::Clean
        };
        self
    }

    /// Sets where runs start.
    pub fn with_start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Sets the number of runs.
    pub fn with_restarts(mut self, restarts: usize) -> Self {
        self.restarts = restarts;
        self
    }

    fn check(&self, batch: usize) -> Result<()> {
        check_count("pgd", "steps", self.steps)?;
        check_count("pgd", "restarts", self.restarts)?;
        if let Start::Gaussian { std } = self.start
            && !(std.is_finite() && std >= 0.0)
        {
            return Err(invalid(
                "pgd",
                format!("start noise std {std} must be >= 0"),
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(invalid(
                "pgd",
                format!("step size {} must be > 0", self.alpha),
            ));
        }
        let extra = match &self.objective {
            Objective::TargetedCrossEntropy { targets } | Objective::DlrTargeted { targets } => {
                Some(targets.dims()[0])
            }
            Objective::Kl { reference } | Objective::UniformTarget { reference, .. } => {
                Some(reference.dims()[0])
            }
            _ => None,
        };
        match extra {
            Some(n) if n != batch => Err(bad_input(
                "pgd",
                format!("the objective carries {n} rows for a batch of {batch}"),
            )),
            _ => Ok(()),
        }
    }

    /// One run from `x`: the last iterate.
    fn run(
        &self,
        model: &dyn Model,
        x: &Tensor<4>,
        labels: &Tensor<1, Int>,
        objective: &Objective,
        rng: &mut dyn Noise,
    ) -> Result<Tensor<4>> {
        let mut x_adv = match self.start {
            Start::Clean => x.clone(),
            Start::Uniform => uniform_start(x, self.eps, rng),
            Start::Gaussian { std } => x.clone() + gaussian_noise(x, rng).mul_scalar(std),
        };
        for _ in 0..self.steps {
            x_adv = ascent_step(model, &x_adv, x, labels, objective, self.alpha, self.eps)?;
        }
        Ok(x_adv)
    }
}

/// One step of PGD: `P(x_adv + alpha sign(grad_x sum_b objective_b))`, `P` the projection onto
/// the ball of radius `eps` around `x` and then onto `[0, 1]` (`sign(0) = 0`). Every run of
/// [`Pgd`] is a chain of these steps; FERD's Uniform-Target Adversarial Examples are too.
pub fn ascent_step(
    model: &dyn Model,
    x_adv: &Tensor<4>,
    x: &Tensor<4>,
    labels: &Tensor<1, Int>,
    objective: &Objective,
    alpha: f32,
    eps: f32,
) -> Result<Tensor<4>> {
    let loss = |logits: Tensor<2>| objective.per_sample(logits, labels.clone());
    let grad = probe(model, x_adv, &loss)?.grad;
    Ok(project(
        x_adv.clone() + grad.sign().mul_scalar(alpha),
        x,
        eps,
    ))
}

impl Attack for Pgd {
    fn name(&self) -> String {
        let fgsm = self.steps == 1 && self.start == Start::Clean && self.alpha == self.eps;
        match &self.objective {
            Objective::CrossEntropy if fgsm => "fgsm".to_string(),
            Objective::CrossEntropy => format!("pgd-{}", self.steps),
            Objective::CwMargin { .. } => format!("cw-{}", self.steps),
            other => format!("pgd-{}-{}", self.steps, other.name()),
        }
    }

    fn eps(&self) -> f32 {
        self.eps
    }

    fn perturb(
        &self,
        model: &dyn Model,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        seed: u64,
    ) -> Result<Tensor<4>> {
        self.perturb_from(model, x, labels, &mut StdRng::seed_from_u64(seed))
    }
}

impl Pgd {
    /// [`Attack::perturb`] with the random starts drawn from `noise` instead of a seed: a
    /// uniform start takes one `U[0, 1)` draw per pixel (mapped to `[-eps, eps)`), a Gaussian
    /// one a standard normal per pixel, run after run. A tape recorded from another
    /// implementation replays its starts exactly.
    pub fn perturb_from(
        &self,
        model: &dyn Model,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        noise: &mut dyn Noise,
    ) -> Result<Tensor<4>> {
        let x = prepare("pgd", model, x, &labels, self.eps)?.x;
        self.check(x.dims()[0])?;
        let first = self.run(model, &x, &labels, &self.objective, &mut *noise)?;
        if self.restarts == 1 {
            return Ok(first);
        }
        let mut robust = Robust {
            flags: classified(model, first.clone(), labels.clone()),
            adv: first,
        };
        for _ in 1..self.restarts {
            robust.refine(model, &x, &labels, |rows, xs, ys| {
                self.run(model, &xs, &ys, &self.objective.rows(rows), &mut *noise)
            })?;
        }
        Ok(robust.adv)
    }
}
