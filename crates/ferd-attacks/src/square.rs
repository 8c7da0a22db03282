//! Square Attack (Andriushchenko et al., ECCV 2020), Linf, as in fra31's `square.py`: a
//! gradient-free random search that only queries the model's logits, the check against
//! gradient masking in AutoAttack.
//!
//! Start: `x + eps s` with random signs `s` constant along image columns (vertical stripes).
//! Each iteration, for the points whose margin `z_y - max_{i != y} z_i` is still positive:
//! draw one square position (shared by the batch, as in the reference) and one sign per
//! channel, set the square of the current best point to `x +- eps` there (a `+-2 eps` step,
//! projected), and keep the new point if its margin decreased or became non-positive. The
//! square's side shrinks with the schedule of [`square_fraction`].

use burn::tensor::{Int, Tensor, TensorData};
use ferd_core::losses::margin;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::attack::{Attack, prepare};
use crate::ball::{check_count, host_tensor, project};
use crate::error::{Result, invalid};
use crate::events::{Observer, PassStarted};
use crate::model::{Model, logits};
use crate::rows::{Robust, merge_rows, select_labels, select_rows, true_rows};

/// The fraction `p` of pixels a square covers at iteration `i` (0-based): `p_init` up to
/// iteration 10, then halved at 50, 200, 500, 1000, 2000, 4000, 6000 and 8000.
pub fn square_fraction(p_init: f32, i: usize) -> f32 {
    const BOUNDS: [usize; 9] = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
    let halvings = BOUNDS.iter().filter(|&&b| i > b).count();
    p_init / (1u32 << halvings) as f32
}

/// The side of the square covering a fraction `p` of an `h x w` image:
/// `max(round(sqrt(p h w)), 1)`, at most `min(h, w)`; `round` halves to even, as Python's.
pub fn square_side(p: f32, h: usize, w: usize) -> usize {
    let side = (f64::from(p) * (h * w) as f64).sqrt().round_ties_even() as usize;
    side.max(1).min(h.min(w))
}

/// Square Attack.
#[derive(Debug, Clone)]
pub struct Square {
    /// Radius of the Linf ball.
    pub eps: f32,
    /// Iterations (queries after the first) per run (5000).
    pub queries: usize,
    /// Initial fraction of pixels per square (0.8).
    pub p_init: f32,
    /// Runs (1).
    pub restarts: usize,
}

impl Square {
    /// Square with AutoAttack's settings: 5000 queries, `p_init = 0.8`, one run.
    pub fn new(eps: f32) -> Self {
        Self {
            eps,
            queries: 5000,
            p_init: 0.8,
            restarts: 1,
        }
    }

    /// Sets the number of queries.
    pub fn with_queries(mut self, queries: usize) -> Self {
        self.queries = queries;
        self
    }

    fn margins(model: &dyn Model, x: &Tensor<4>, labels: &Tensor<1, Int>) -> Result<Vec<f32>> {
        Ok(margin(logits(model, x.clone()), labels.clone())?
            .try_to_vec_as::<f32>()
            .expect("a float tensor reads back as f32"))
    }

    /// One run: per sample the best point found (misclassified where the search succeeded).
    fn run(
        &self,
        model: &dyn Model,
        x: &Tensor<4>,
        labels: &Tensor<1, Int>,
        rng: &mut StdRng,
    ) -> Result<Tensor<4>> {
        let [batch, c, h, w] = x.dims();
        let stripes = host_tensor([batch, c, 1, w], &x.device(), || {
            if rng.random::<bool>() { 1.0 } else { -1.0 }
        });
        let mut x_best =
            (x.clone() + stripes.expand([batch, c, h, w]).mul_scalar(self.eps)).clamp(0.0, 1.0);
        let mut margin_min = Self::margins(model, &x_best, labels)?;
        let mut loss_min = margin_min.clone();
        if margin_min.iter().all(|&m| m < 0.0) {
            return Ok(x_best);
        }
        for i in 0..self.queries {
            let active = true_rows(&margin_min.iter().map(|&m| m > 0.0).collect::<Vec<_>>());
            if active.is_empty() {
                break;
            }
            let side = square_side(square_fraction(self.p_init, i), h, w);
            let top = rng.random_range(0..(h - side).max(1));
            let left = rng.random_range(0..(w - side).max(1));
            let mut delta = vec![0.0f32; c * h * w];
            for channel in 0..c {
                let value = if rng.random::<bool>() { 2.0 } else { -2.0 } * self.eps;
                for row in top..top + side {
                    let start = (channel * h + row) * w + left;
                    delta[start..start + side].fill(value);
                }
            }
            let delta = Tensor::<4>::from_data(TensorData::new(delta, [1, c, h, w]), &x.device());
            let x_curr = select_rows(x, &active);
            let candidates = project(
                select_rows(&x_best, &active) + delta.expand([active.len(), c, h, w]),
                &x_curr,
                self.eps,
            );
            let new = Self::margins(model, &candidates, &select_labels(labels, &active))?;
            let mut accepted = Vec::new();
            for (j, (&row, &m)) in active.iter().zip(&new).enumerate() {
                let improved = m < loss_min[row];
                if improved {
                    loss_min[row] = m;
                }
                if improved || m <= 0.0 {
                    margin_min[row] = m;
                    accepted.push(j);
                }
            }
            if !accepted.is_empty() {
                let rows: Vec<usize> = accepted.iter().map(|&j| active[j]).collect();
                x_best = merge_rows(x_best, &rows, select_rows(&candidates, &accepted));
            }
        }
        Ok(x_best)
    }
}

impl Attack for Square {
    fn name(&self) -> String {
        "square".to_string()
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
        let prepared = prepare("square", model, x, &labels, self.eps)?;
        check_count("square", "queries", self.queries)?;
        check_count("square", "restarts", self.restarts)?;
        if !(self.p_init > 0.0 && self.p_init <= 1.0) {
            return Err(invalid(
                "square",
                format!("p_init {} is outside (0, 1]", self.p_init),
            ));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut robust = Robust::new(&prepared.x, prepared.correct(&labels));
        for restart in 0..self.restarts {
            observer.event(&robust.pass(restart, self.restarts));
            robust.refine(model, &prepared.x, &labels, |_, xs, ys| {
                self.run(model, &xs, &ys, &mut rng)
            })?;
        }
        Ok(robust.adv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fraction_schedule_matches_the_table() {
        let expected = [
            (0, 1),
            (10, 1),
            (11, 2),
            (50, 2),
            (51, 4),
            (200, 4),
            (201, 8),
            (500, 8),
            (501, 16),
            (1000, 16),
            (1001, 32),
            (2000, 32),
            (2001, 64),
            (4000, 64),
            (4001, 128),
            (6000, 128),
            (6001, 256),
            (8000, 256),
            (8001, 512),
            (20000, 512),
        ];
        for (i, divisor) in expected {
            assert_eq!(
                square_fraction(0.8, i),
                0.8 / divisor as f32,
                "iteration {i}"
            );
        }
    }

    #[test]
    fn square_side_rounds_half_to_even_and_stays_in_the_image() {
        assert_eq!(square_side(0.8, 28, 28), 25); // sqrt(627.2) = 25.04
        assert_eq!(square_side(0.8, 32, 32), 29); // sqrt(819.2) = 28.62
        assert_eq!(square_side(0.8 / 512.0, 28, 28), 1);
        assert_eq!(square_side(1.0, 28, 28), 28);
        assert_eq!(square_side(6.25 / 784.0, 28, 28), 2); // sqrt(6.25) = 2.5 rounds to 2
    }
}
