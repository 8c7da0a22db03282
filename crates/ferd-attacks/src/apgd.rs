//! Auto-PGD (Croce & Hein, ICML 2020), Linf: APGD-CE, APGD-DLR and the targeted APGD-T, as in
//! fra31's `autopgd_base.py`.
//!
//! A run starts at `clip01(x + eps t / ||t||_inf)`, `t ~ U[-1, 1)`, with step size `2 eps` per
//! sample and takes momentum steps (`a = 0.75`, `a = 1` at the first step):
//! `z = P(x_k + eta sign(g))`, `x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))`.
//! At the checkpoints of [`checkpoints`] a sample whose loss went up in at most `rho k` of the
//! last `k` steps, or whose step was not halved at the previous checkpoint and whose best loss
//! has not improved since, gets its step halved and restarts from its best point. The returned
//! point of a sample is its last misclassified iterate.

use burn::tensor::{Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::attack::{Attack, prepare};
use crate::ball::{check_count, project, sphere_start};
use crate::error::{Result, invalid};
use crate::events::{Observer, PassStarted};
use crate::model::{Model, correct, probe};
use crate::objective::{Objective, ranked_class};
use crate::rows::{Robust, select_rows, where_rows};

/// A step-size checkpoint: checked after `after` iterations, over a window of the last
/// `window` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Iterations done when the check happens.
    pub after: usize,
    /// How many of the last steps the oscillation test counts.
    pub window: usize,
}

/// The checkpoints of an `n`-iteration run: the first after `max(int(0.22 n), 1)` iterations,
/// each window `max(int(0.03 n), 1)` shorter than the last, but at least `max(int(0.06 n), 1)`.
/// For `n = 100`: after 22, 41, 57, 70, 80, 87, 93 and 99 iterations.
pub fn checkpoints(n: usize) -> Vec<Checkpoint> {
    let first = ((0.22 * n as f64) as usize).max(1);
    let shortest = ((0.06 * n as f64) as usize).max(1);
    let decrease = ((0.03 * n as f64) as usize).max(1);
    let mut out = Vec::new();
    let (mut after, mut window) = (first, first);
    while after <= n {
        out.push(Checkpoint { after, window });
        window = window.saturating_sub(decrease).max(shortest);
        after += window;
    }
    out
}

/// The settings of one APGD run.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    eps: f32,
    steps: usize,
    rho: f32,
    eot_iter: usize,
}

/// Loss (host), correctness (host) and gradient at `x`, the gradient averaged over `eot_iter`
/// passes (Expectation over Transformation, for randomized models).
fn eot_probe(
    model: &dyn Model,
    x: &Tensor<4>,
    labels: &Tensor<1, Int>,
    objective: &Objective,
    eot_iter: usize,
) -> Result<(Vec<f32>, Vec<bool>, Tensor<4>)> {
    let loss = |logits: Tensor<2>| objective.per_sample(logits, labels.clone());
    let mut grad = x.zeros_like();
    let mut last = None;
    for _ in 0..eot_iter {
        let p = probe(model, x, &loss)?;
        grad = grad + p.grad;
        last = Some((p.loss, p.logits));
    }
    let (loss, logits) = last.expect("eot_iter >= 1");
    let loss = loss
        .try_to_vec_as::<f32>()
        .expect("a float tensor reads back as f32");
    Ok((
        loss,
        correct(logits, labels.clone()),
        grad.div_scalar(eot_iter as f32),
    ))
}

/// Whether the loss went up in at most `rho k` of the last `k` steps, the history indexed as in
/// the reference: the step before the first is read from the (still zero) end of the history.
fn oscillates(history: &[Vec<f32>], i: usize, k: usize, sample: usize, rho: f32) -> bool {
    let n = history.len();
    let increases = (0..k)
        .filter(|&c| history[i - c][sample] > history[(i + n - c - 1) % n][sample])
        .count();
    increases as f32 <= k as f32 * rho
}

/// One APGD run on `x`: per sample the last misclassified iterate (the start where none was).
fn run(
    model: &dyn Model,
    x: &Tensor<4>,
    labels: &Tensor<1, Int>,
    objective: &Objective,
    s: Schedule,
    rng: &mut StdRng,
) -> Result<Tensor<4>> {
    let batch = x.dims()[0];
    let mut x_adv = sphere_start(x, s.eps, rng);
    let (mut loss_best, _, mut grad) = eot_probe(model, &x_adv, labels, objective, s.eot_iter)?;
    let mut x_best_adv = x_adv.clone();
    let mut x_best = x_adv.clone();
    let mut grad_best = grad.clone();
    let mut step = vec![2.0 * s.eps; batch];
    let mut x_prev = x_adv.clone();
    let mut history = vec![vec![0.0f32; batch]; s.steps];
    let mut reduced_last = vec![true; batch];
    let mut best_last = loss_best.clone();
    let checks = checkpoints(s.steps);
    let mut next_check = 0;

    for i in 0..s.steps {
        let momentum = x_adv.clone() - x_prev;
        x_prev = x_adv.clone();
        let a = if i > 0 { 0.75 } else { 1.0 };
        let eta =
            Tensor::<4>::from_data(TensorData::new(step.clone(), [batch, 1, 1, 1]), &x.device());
        let z = project(x_adv.clone() + grad.sign() * eta, x, s.eps);
        x_adv = project(
            x_adv.clone() + (z - x_adv).mul_scalar(a) + momentum.mul_scalar(1.0 - a),
            x,
            s.eps,
        );

        let (loss, ok, g) = eot_probe(model, &x_adv, labels, objective, s.eot_iter)?;
        grad = g;
        let fooled: Vec<bool> = ok.iter().map(|&c| !c).collect();
        x_best_adv = where_rows(&fooled, x_adv.clone(), x_best_adv);
        let improved: Vec<bool> = loss.iter().zip(&loss_best).map(|(l, b)| l > b).collect();
        x_best = where_rows(&improved, x_adv.clone(), x_best);
        grad_best = where_rows(&improved, grad.clone(), grad_best);
        for (b, (&l, &up)) in loss_best.iter_mut().zip(loss.iter().zip(&improved)) {
            if up {
                *b = l;
            }
        }
        history[i] = loss;

        if checks.get(next_check).is_some_and(|c| c.after == i + 1) {
            let k = checks[next_check].window;
            next_check += 1;
            let reduce: Vec<bool> = (0..batch)
                .map(|b| {
                    oscillates(&history, i, k, b, s.rho)
                        || (!reduced_last[b] && best_last[b] >= loss_best[b])
                })
                .collect();
            for (eta, &r) in step.iter_mut().zip(&reduce) {
                if r {
                    *eta /= 2.0;
                }
            }
            x_adv = where_rows(&reduce, x_best.clone(), x_adv);
            grad = where_rows(&reduce, grad_best.clone(), grad);
            reduced_last = reduce;
            best_last = loss_best.clone();
        }
    }
    Ok(x_best_adv)
}

/// The loss of an untargeted APGD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApgdLoss {
    /// Cross-entropy (APGD-CE).
    CrossEntropy,
    /// Difference of Logits Ratio (APGD-DLR).
    Dlr,
}

/// Untargeted APGD.
#[derive(Debug, Clone)]
pub struct Apgd {
    /// Radius of the Linf ball.
    pub eps: f32,
    /// Iterations per run (100 in AutoAttack).
    pub steps: usize,
    /// Runs; each after the first attacks only the points still robust.
    pub restarts: usize,
    /// The loss.
    pub loss: ApgdLoss,
    /// The oscillation threshold (0.75).
    pub rho: f32,
    /// Gradient samples averaged per step (1; 20 in AutoAttack's `rand` version).
    pub eot_iter: usize,
}

impl Apgd {
    /// APGD with AutoAttack's settings: 100 iterations, one run, `rho = 0.75`, no EOT.
    pub fn new(eps: f32, loss: ApgdLoss) -> Self {
        Self {
            eps,
            steps: 100,
            restarts: 1,
            loss,
            rho: 0.75,
            eot_iter: 1,
        }
    }

    /// Sets the number of runs.
    pub fn with_restarts(mut self, restarts: usize) -> Self {
        self.restarts = restarts;
        self
    }

    /// Sets the iterations per run.
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// Sets the gradient samples per step.
    pub fn with_eot(mut self, eot_iter: usize) -> Self {
        self.eot_iter = eot_iter;
        self
    }

    fn schedule(&self) -> Result<Schedule> {
        schedule(
            "apgd",
            self.eps,
            self.steps,
            self.restarts,
            self.rho,
            self.eot_iter,
        )
    }
}

/// Checks the settings of a run and collects them.
fn schedule(
    what: &'static str,
    eps: f32,
    steps: usize,
    restarts: usize,
    rho: f32,
    eot_iter: usize,
) -> Result<Schedule> {
    check_count(what, "steps", steps)?;
    check_count(what, "restarts", restarts)?;
    check_count(what, "eot_iter", eot_iter)?;
    if !(rho > 0.0 && rho <= 1.0) {
        return Err(invalid(what, format!("rho {rho} is outside (0, 1]")));
    }
    Ok(Schedule {
        eps,
        steps,
        rho,
        eot_iter,
    })
}

impl Attack for Apgd {
    fn name(&self) -> String {
        match self.loss {
            ApgdLoss::CrossEntropy => "apgd-ce".to_string(),
            ApgdLoss::Dlr => "apgd-dlr".to_string(),
        }
    }

    fn eps(&self) -> f32 {
        self.eps
    }

    fn perturb_observed(
        &self,
        model: &dyn Model,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        seed: u64,
        observer: &mut dyn Observer<PassStarted>,
    ) -> Result<Tensor<4>> {
        let prepared = prepare("apgd", model, x, &labels, self.eps)?;
        let schedule = self.schedule()?;
        let objective = match self.loss {
            ApgdLoss::CrossEntropy => Objective::CrossEntropy,
            ApgdLoss::Dlr => Objective::Dlr,
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let mut robust = Robust::new(&prepared.x, prepared.correct(&labels));
        for restart in 0..self.restarts {
            observer.event(&robust.pass(restart, self.restarts));
            robust.refine(model, &prepared.x, &labels, |_, xs, ys| {
                run(model, &xs, &ys, &objective, schedule, &mut rng)
            })?;
        }
        Ok(robust.adv)
    }
}

/// APGD-T: APGD on the targeted DLR loss, for each of the `target_classes` classes with the
/// highest clean logits after the prediction, on the points still robust.
#[derive(Debug, Clone)]
pub struct ApgdTargeted {
    /// Radius of the Linf ball.
    pub eps: f32,
    /// Iterations per run (100).
    pub steps: usize,
    /// Runs per target class (1).
    pub restarts: usize,
    /// Target classes tried (9; at most the number of classes minus one).
    pub target_classes: usize,
    /// The oscillation threshold (0.75).
    pub rho: f32,
    /// Gradient samples averaged per step (1).
    pub eot_iter: usize,
}

impl ApgdTargeted {
    /// APGD-T with AutoAttack's settings: 9 targets, 100 iterations, one run each.
    pub fn new(eps: f32) -> Self {
        Self {
            eps,
            steps: 100,
            restarts: 1,
            target_classes: 9,
            rho: 0.75,
            eot_iter: 1,
        }
    }

    /// Sets the number of target classes.
    pub fn with_target_classes(mut self, target_classes: usize) -> Self {
        self.target_classes = target_classes;
        self
    }

    /// Sets the iterations per run.
    pub fn with_steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
}

/// Checks a number of target classes against the model's classes.
pub(crate) fn check_targets(what: &'static str, targets: usize, classes: usize) -> Result<()> {
    if targets == 0 || targets >= classes {
        return Err(invalid(
            what,
            format!(
                "{targets} target classes for a model with {classes} classes (need 1..={})",
                classes - 1
            ),
        ));
    }
    Ok(())
}

impl Attack for ApgdTargeted {
    fn name(&self) -> String {
        "apgd-t".to_string()
    }

    fn eps(&self) -> f32 {
        self.eps
    }

    fn perturb_observed(
        &self,
        model: &dyn Model,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        seed: u64,
        observer: &mut dyn Observer<PassStarted>,
    ) -> Result<Tensor<4>> {
        let prepared = prepare("apgd-t", model, x, &labels, self.eps)?;
        let schedule = schedule(
            "apgd-t",
            self.eps,
            self.steps,
            self.restarts,
            self.rho,
            self.eot_iter,
        )?;
        check_targets("apgd-t", self.target_classes, prepared.classes())?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut robust = Robust::new(&prepared.x, prepared.correct(&labels));
        let passes = self.target_classes * self.restarts;
        for rank in 2..=self.target_classes + 1 {
            for restart in 0..self.restarts {
                observer.event(&robust.pass((rank - 2) * self.restarts + restart, passes));
                robust.refine(model, &prepared.x, &labels, |rows, xs, ys| {
                    let targets = ranked_class(select_rows(&prepared.logits, rows), rank);
                    let objective = Objective::DlrTargeted { targets };
                    run(model, &xs, &ys, &objective, schedule, &mut rng)
                })?;
            }
        }
        Ok(robust.adv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_for_100_iterations_follow_the_paper() {
        let after: Vec<usize> = checkpoints(100).iter().map(|c| c.after).collect();
        assert_eq!(after, [22, 41, 57, 70, 80, 87, 93, 99]);
        let windows: Vec<usize> = checkpoints(100).iter().map(|c| c.window).collect();
        assert_eq!(windows, [22, 19, 16, 13, 10, 7, 6, 6]);
    }

    #[test]
    fn short_runs_still_get_checkpoints() {
        // n = 10: first after max(int(2.2), 1) = 2, windows shrink by 1 down to 1.
        let after: Vec<usize> = checkpoints(10).iter().map(|c| c.after).collect();
        assert_eq!(after, [2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(
            checkpoints(1),
            [Checkpoint {
                after: 1,
                window: 1
            }]
        );
    }

    #[test]
    fn oscillation_counts_increases_over_the_window() {
        // Two samples, 4 steps: sample 0 rises every step, sample 1 falls every step.
        let history = vec![
            vec![1.0, 4.0],
            vec![2.0, 3.0],
            vec![3.0, 2.0],
            vec![4.0, 1.0],
        ];
        assert!(!oscillates(&history, 3, 3, 0, 0.75));
        assert!(oscillates(&history, 3, 3, 1, 0.75));
    }
}
