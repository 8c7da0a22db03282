//! FAB, the Fast Adaptive Boundary attack (Croce & Hein, ICML 2020), Linf, untargeted and
//! targeted (FAB-T), as in fra31's `fab_base.py`.
//!
//! FAB looks for the smallest perturbation that changes the decision. At the current point
//! `x1` it linearizes the decision boundary (for FAB-T: of `z_t - z_y`; untargeted: the closest
//! of the `z_c - z_y` in the linear approximation), projects both `x1` and the clean `x0` onto
//! that hyperplane within the box ([`project_onto_hyperplane`]), and moves to a convex
//! combination of the two projections, extrapolated by `eta`. Whenever it crosses the
//! boundary it records the point if it is the closest so far and steps back towards `x0` by
//! `beta`. A point counts as adversarial only if its distance is at most `eps`; otherwise the
//! clean image is returned.
//!
//! The per-sample geometry runs on the host (the projection sorts per sample); the model's
//! forward and backward passes run on the device.

use burn::tensor::{Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;

use ferd_core::metrics::to_indices;

use crate::apgd::check_targets;
use crate::attack::{Attack, prepare};
use crate::ball::{check_count, sphere_start};
use crate::error::{Result, invalid};
use crate::events::{Observer, PassStarted};
use crate::model::{Model, classified, probe};
use crate::objective::ranked_class;
use crate::rows::{Robust, index_tensor, select_rows};

/// The smallest Linf step `d` with `w . (t + d) = b` and `t + d` in `[0, 1]^n`; where the box
/// does not reach the hyperplane, the step to the box corner that gets closest.
///
/// Moving coordinate `i` by at most `lambda` towards the corner that decreases
/// `s (w . x - b)` (`s` the sign of `w . t - b`) changes it by `|w_i| min(lambda, room_i)`; the
/// total is piecewise linear and increasing in `lambda`, so the optimum is found by walking the
/// coordinates in order of their room. This is the problem fra31's `projection_linf` solves.
pub fn project_onto_hyperplane(t: &[f32], w: &[f32], b: f32) -> Vec<f32> {
    let gap: f64 = t
        .iter()
        .zip(w)
        .map(|(&t, &w)| f64::from(t) * f64::from(w))
        .sum::<f64>()
        - f64::from(b);
    let sign = if gap >= 0.0 { 1.0 } else { -1.0 };
    let need = gap.abs();
    // Per coordinate: the direction that reduces the gap, the room left in the box that way,
    // and the rate |w_i|.
    let moves: Vec<(f64, f64, f64)> = t
        .iter()
        .zip(w)
        .map(|(&t, &w)| {
            let (t, w) = (f64::from(t), sign * f64::from(w));
            if w < 0.0 {
                (1.0, 1.0 - t, -w)
            } else {
                (-1.0, t, w)
            }
        })
        .collect();
    let reachable: f64 = moves.iter().map(|&(_, room, rate)| room * rate).sum();
    let lambda = if reachable <= need {
        f64::INFINITY
    } else {
        let mut order: Vec<usize> = (0..moves.len()).collect();
        order.sort_by(|&i, &j| moves[i].1.total_cmp(&moves[j].1));
        let mut done = 0.0; // change from the coordinates already at their bound
        let mut rate: f64 = moves.iter().map(|m| m.2).sum(); // rate of the others
        let mut lambda = 0.0;
        for &i in &order {
            let (_, room, r) = moves[i];
            lambda = if rate > 0.0 {
                (need - done) / rate
            } else {
                room
            };
            if lambda <= room {
                break;
            }
            done += room * r;
            rate -= r;
        }
        lambda.max(0.0)
    };
    moves
        .iter()
        .zip(w)
        .map(|(&(dir, room, _), &w)| {
            if w == 0.0 {
                0.0
            } else {
                (dir * lambda.min(room)) as f32
            }
        })
        .collect()
}

/// Which boundary FAB linearizes: towards one target class per sample, or the closest of all.
#[derive(Clone, Copy)]
enum Boundary<'a> {
    Targeted(&'a Tensor<1, Int>),
    Untargeted { classes: usize },
}

fn linf(v: impl Iterator<Item = f32>) -> f32 {
    v.fold(0.0, |m, x| m.max(x.abs()))
}

/// FAB (untargeted) or FAB-T.
#[derive(Debug, Clone)]
pub struct Fab {
    /// Radius of the Linf ball.
    pub eps: f32,
    /// Iterations per run (100).
    pub steps: usize,
    /// Runs (per target for FAB-T); runs after the first start at a random point at distance
    /// `eps / 2`.
    pub restarts: usize,
    /// Largest weight of the step from the clean point (0.1).
    pub alpha_max: f32,
    /// Overshoot (1.05).
    pub eta: f32,
    /// Step back towards the clean point after crossing the boundary (0.9).
    pub beta: f32,
    /// FAB-T: target the classes with the highest clean logits after the prediction.
    pub targeted: bool,
    /// Target classes tried by FAB-T (9).
    pub target_classes: usize,
}

impl Fab {
    /// Untargeted FAB with AutoAttack's settings.
    pub fn new(eps: f32) -> Self {
        Self {
            eps,
            steps: 100,
            restarts: 1,
            alpha_max: 0.1,
            eta: 1.05,
            beta: 0.9,
            targeted: false,
            target_classes: 9,
        }
    }

    /// FAB-T with AutoAttack's settings (9 targets, one run each).
    pub fn targeted(eps: f32) -> Self {
        Self {
            targeted: true,
            ..Self::new(eps)
        }
    }

    /// Sets the number of runs.
    pub fn with_restarts(mut self, restarts: usize) -> Self {
        self.restarts = restarts;
        self
    }

    /// Sets the number of target classes.
    pub fn with_target_classes(mut self, target_classes: usize) -> Self {
        self.target_classes = target_classes;
        self
    }

    fn check(&self, classes: usize) -> Result<()> {
        check_count("fab", "steps", self.steps)?;
        check_count("fab", "restarts", self.restarts)?;
        if self.targeted {
            check_targets("fab-t", self.target_classes, classes)?;
        }
        let ok = |v: f32| v.is_finite() && v > 0.0;
        if !(ok(self.alpha_max) && self.alpha_max <= 1.0 && ok(self.eta) && ok(self.beta)) {
            return Err(invalid(
                "fab",
                format!(
                    "alpha_max {} must be in (0, 1], eta {} and beta {} positive",
                    self.alpha_max, self.eta, self.beta
                ),
            ));
        }
        Ok(())
    }

    /// The linearized boundaries at `x1`: per sample, `K` pairs of a value `f_k` and a gradient
    /// row of length `n`. FAB-T: `f = z_t - z_y` (`K = 1`). FAB: `f_c = z_c - z_y` for every `c`
    /// (`K = C`, the true class given `f = 1e10` so that it is never chosen), all classes'
    /// gradients from one backward pass over `C` copies of the batch.
    fn boundaries(
        &self,
        model: &dyn Model,
        x1: &Tensor<4>,
        labels: &Tensor<1, Int>,
        boundary: Boundary<'_>,
    ) -> Result<(Vec<f32>, Vec<f32>, usize)> {
        let [batch, ..] = x1.dims();
        let read = |t: Tensor<2>| t.try_to_vec_as::<f32>().expect("float tensor");
        let classes = match boundary {
            Boundary::Targeted(targets) => {
                let pick = |logits: Tensor<2>, idx: &Tensor<1, Int>| {
                    logits
                        .gather(1, idx.clone().reshape([batch, 1]))
                        .reshape([batch])
                };
                let loss =
                    |logits: Tensor<2>| Ok(pick(logits.clone(), targets) - pick(logits, labels));
                let p = probe(model, x1, &loss)?;
                let df = p.loss.try_to_vec_as::<f32>().expect("float tensor");
                return Ok((df, read(p.grad.reshape([batch as i64, -1])), 1));
            }
            Boundary::Untargeted { classes } => classes,
        };
        let copies = Tensor::cat(vec![x1.clone(); classes], 0);
        let class_of_row: Vec<usize> = (0..classes * batch).map(|r| r / batch).collect();
        let index = index_tensor(&class_of_row, &copies);
        let loss = |logits: Tensor<2>| {
            Ok(logits
                .gather(1, index.clone().reshape([classes * batch, 1]))
                .reshape([classes * batch]))
        };
        let p = probe(model, &copies, &loss)?;
        let z = read(p.logits.narrow(0, 0, batch));
        let g = read(p.grad.reshape([(classes * batch) as i64, -1]));
        let n = g.len() / (classes * batch);
        let y = to_indices(labels.clone());
        let df = (0..batch * classes)
            .map(|r| {
                let (b, c) = (r / classes, r % classes);
                if c == y[b] {
                    1e10
                } else {
                    z[r] - z[b * classes + y[b]]
                }
            })
            .collect();
        let mut dg = vec![0.0; batch * classes * n];
        dg.par_chunks_mut((classes * n).max(1))
            .enumerate()
            .for_each(|(b, rows)| {
                let gy = &g[(y[b] * batch + b) * n..][..n];
                for (c, row) in rows.chunks_mut(n).enumerate() {
                    let gc = &g[(c * batch + b) * n..][..n];
                    for (out, (gc, gy)) in row.iter_mut().zip(gc.iter().zip(gy)) {
                        *out = gc - gy;
                    }
                }
            });
        Ok((df, dg, classes))
    }

    /// One FAB run on points the model classifies correctly: per sample the closest adversarial
    /// point found if it lies within `eps`, else the clean image.
    fn run(
        &self,
        model: &dyn Model,
        x: &Tensor<4>,
        labels: &Tensor<1, Int>,
        boundary: Boundary<'_>,
        random_start: bool,
        rng: &mut StdRng,
    ) -> Result<Tensor<4>> {
        let dims = x.dims();
        let batch = dims[0];
        let read = |t: Tensor<4>| t.try_to_vec_as::<f32>().expect("float tensor");
        let upload =
            |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), dims), &x.device());
        let x0 = read(x.clone());
        let n = x0.len() / batch;
        let mut x1 = if random_start {
            read(sphere_start(x, 0.5 * self.eps, rng))
        } else {
            x0.clone()
        };
        let mut best = x0.clone();
        let mut best_norm = vec![f32::INFINITY; batch];

        for _ in 0..self.steps {
            let (df, dg, k) = self.boundaries(model, &upload(&x1), labels, boundary)?;
            // Samples are independent: both cores share them, with the same result per sample.
            x1.par_chunks_mut(n.max(1)).enumerate().for_each(|(b, p1)| {
                let grad_row = |c: usize| &dg[(b * k + c) * n..][..n];
                let distance = |c: usize| {
                    df[b * k + c].abs() / (1e-12 + grad_row(c).iter().map(|v| v.abs()).sum::<f32>())
                };
                let c = (0..k)
                    .min_by(|&i, &j| distance(i).total_cmp(&distance(j)))
                    .expect("k >= 1");
                let w = grad_row(c);
                let p0 = &x0[b * n..][..n];
                let offset: f32 = w.iter().zip(&*p1).map(|(w, x)| w * x).sum();
                let level = offset - df[b * k + c];
                let d1 = project_onto_hyperplane(p1, w, level);
                let d2 = project_onto_hyperplane(p0, w, level);
                let a1 = linf(d1.iter().copied()).max(1e-8);
                let a2 = linf(d2.iter().copied()).max(1e-8);
                let alpha = (a1 / (a1 + a2)).clamp(0.0, self.alpha_max);
                for (i, v) in p1.iter_mut().enumerate() {
                    *v = ((*v + self.eta * d1[i]) * (1.0 - alpha)
                        + (p0[i] + self.eta * d2[i]) * alpha)
                        .clamp(0.0, 1.0);
                }
            });
            let still = classified(model, upload(&x1), labels.clone());
            for b in (0..batch).filter(|&b| !still[b]) {
                let (p1, p0) = (&mut x1[b * n..][..n], &x0[b * n..][..n]);
                let norm = linf(p1.iter().zip(p0).map(|(a, c)| a - c));
                if norm < best_norm[b] {
                    best_norm[b] = norm;
                    best[b * n..][..n].copy_from_slice(p1);
                }
                for (v, &o) in p1.iter_mut().zip(p0) {
                    *v = o + (*v - o) * self.beta;
                }
            }
        }
        for b in (0..batch).filter(|&b| best_norm[b] > self.eps) {
            best[b * n..][..n].copy_from_slice(&x0[b * n..][..n]);
        }
        Ok(upload(&best))
    }
}

impl Attack for Fab {
    fn name(&self) -> String {
        if self.targeted { "fab-t" } else { "fab" }.to_string()
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
        let prepared = prepare("fab", model, x, &labels, self.eps)?;
        let classes = prepared.classes();
        self.check(classes)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut robust = Robust::new(&prepared.x, prepared.correct(&labels));
        let ranks: Vec<Option<usize>> = if self.targeted {
            (2..=self.target_classes + 1).map(Some).collect()
        } else {
            vec![None]
        };
        let passes = ranks.len() * self.restarts;
        for (r, rank) in ranks.into_iter().enumerate() {
            for restart in 0..self.restarts {
                observer.event(&robust.pass(r * self.restarts + restart, passes));
                robust.refine(model, &prepared.x, &labels, |rows, xs, ys| {
                    let targets =
                        rank.map(|r| ranked_class(select_rows(&prepared.logits, rows), r));
                    let boundary = match &targets {
                        Some(t) => Boundary::Targeted(t),
                        None => Boundary::Untargeted { classes },
                    };
                    self.run(model, &xs, &ys, boundary, restart > 0, &mut rng)
                })?;
            }
        }
        Ok(robust.adv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(&a, &b)| f64::from(a) * f64::from(b))
            .sum()
    }

    /// The smallest radius `r` for which the box-and-ball constrained step reaches the plane,
    /// by bisection: an independent check of the sorting walk.
    fn bisect_radius(t: &[f32], w: &[f32], b: f32) -> f64 {
        let gap = dot(t, w) - f64::from(b);
        let reach = |r: f64| -> f64 {
            t.iter()
                .zip(w)
                .map(|(&t, &w)| {
                    let (t, w) = (f64::from(t), f64::from(w) * gap.signum());
                    let room = if w < 0.0 { 1.0 - t } else { t };
                    w.abs() * r.min(room)
                })
                .sum()
        };
        let (mut lo, mut hi) = (0.0, 1.0);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if reach(mid) >= gap.abs() {
                hi = mid
            } else {
                lo = mid
            }
        }
        hi
    }

    #[test]
    fn projection_reaches_the_plane_with_the_smallest_step() {
        let mut rng = StdRng::seed_from_u64(3);
        for case in 0..200 {
            let n = 1 + case % 40;
            let t: Vec<f32> = (0..n).map(|_| rng.random()).collect();
            let w: Vec<f32> = (0..n)
                .map(|i| {
                    if i % 7 == 3 {
                        0.0
                    } else {
                        rng.random::<f32>() - 0.5
                    }
                })
                .collect();
            // A level the box can reach: w . x at another point of the box.
            let other: Vec<f32> = (0..n).map(|_| rng.random()).collect();
            let b = dot(&other, &w) as f32;
            let d = project_onto_hyperplane(&t, &w, b);
            let moved: Vec<f32> = t.iter().zip(&d).map(|(t, d)| t + d).collect();
            assert!(
                (dot(&moved, &w) - f64::from(b)).abs() < 1e-4,
                "case {case}: misses the plane"
            );
            assert!(
                moved.iter().all(|&v| (-1e-6..=1.0 + 1e-6).contains(&v)),
                "case {case}: leaves the box"
            );
            let radius = linf(d.iter().copied());
            assert!(
                (f64::from(radius) - bisect_radius(&t, &w, b)).abs() < 1e-5,
                "case {case}: not minimal"
            );
            for (di, wi) in d.iter().zip(&w) {
                if *wi == 0.0 {
                    assert_eq!(*di, 0.0);
                }
            }
        }
    }

    #[test]
    fn unreachable_plane_goes_to_the_closest_corner() {
        // w . x = 10 cannot be reached in [0, 1]^2 with w = (1, -1): go to (1, 0).
        let d = project_onto_hyperplane(&[0.5, 0.5], &[1.0, -1.0], 10.0);
        assert_eq!(d, vec![0.5, -0.5]);
    }
}
