//! A training-mode BatchNorm and its optional ReLU on the CPU over plain `f32` slices: the batch
//! statistics, the forward map and the three gradients, each in one or two passes.
//!
//! With `M = B * H * W` values per channel, `mean` and the biased `variance` over them (what
//! PyTorch and Burn normalize with in training), `scale = gamma / sqrt(variance + eps)` and
//! `shift = beta - mean * scale`:
//!
//! - forward: `y = act(x * scale + shift)`;
//! - backward, with `g = dy` zeroed where the ReLU's output is `<= 0` and
//!   `xhat = (x - mean) / sqrt(variance + eps)`: `dbeta = Σ g`, `dgamma = Σ g * xhat`, and
//!   `dx = scale * (g - dbeta / M - xhat * dgamma / M)` (the mean and variance depend on `x`).
//!
//! Burn's generic `batch_norm_train` transposes the activation twice to reduce it, then makes
//! the four passes of its inference map; its backward transposes again. Here the sums run over a
//! channel's planes in place, in `f64` across planes and in 16 `f32` lanes within one, summed in
//! a fixed order: the result depends neither on scheduling nor on the number of threads.
//!
//! Nothing here knows about Burn; `crate::flex::batch_norm` moves tensors in and out.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::affine::{
    Activation, AffineGeometry, IDENTITY, LEAKY, Mode, RELU, activate_grad, affine_plane_into,
    for_planes,
};
use crate::uninit::written_by;

/// Independent partial sums within a plane: enough for the compiler to vectorize the loop.
const LANES: usize = 16;

/// `(Σ f(a, b), Σ h(a, b))` over two slices of one length, each in [`LANES`] partial sums of
/// `f32` added in `f64`: whole arrays of lanes, so that the loop vectorizes.
#[inline(always)]
fn lane_sums(
    a: &[f32],
    b: &[f32],
    f: impl Fn(f32, f32) -> f32,
    h: impl Fn(f32, f32) -> f32,
) -> (f64, f64) {
    assert_eq!(a.len(), b.len(), "lane_sums: lengths");
    let (mut first, mut second) = ([0.0f32; LANES], [0.0f32; LANES]);
    let (a_lanes, b_lanes) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (a_tail, b_tail) = (a_lanes.remainder(), b_lanes.remainder());
    for (a, b) in a_lanes.zip(b_lanes) {
        let a: &[f32; LANES] = a.try_into().expect("chunks_exact");
        let b: &[f32; LANES] = b.try_into().expect("chunks_exact");
        for lane in 0..LANES {
            first[lane] += f(a[lane], b[lane]);
            second[lane] += h(a[lane], b[lane]);
        }
    }
    let total = |lanes: [f32; LANES], g: &dyn Fn(f32, f32) -> f32| {
        let tail: f64 = (a_tail.iter().zip(b_tail))
            .map(|(&a, &b)| g(a, b) as f64)
            .sum();
        lanes.iter().map(|&s| s as f64).sum::<f64>() + tail
    };
    (total(first, &f), total(second, &h))
}

/// `Σ f(a)` over one slice, as [`lane_sums`] does it.
#[inline(always)]
fn lane_sum(a: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    lane_sums(a, a, |a, _| f(a), |_, _| 0.0).0
}

/// Per-channel statistics of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStats {
    /// The mean per channel.
    pub mean: Vec<f32>,
    /// The biased variance per channel (divided by `M`, not `M - 1`).
    pub variance: Vec<f32>,
}

impl BatchStats {
    /// `scale = gamma / sqrt(variance + eps)` and `shift = beta - mean * scale` per channel.
    fn affine(&self, params: Params<'_>) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f32> = (self.variance.iter().zip(params.gamma))
            .map(|(&v, &g)| (g as f64 / (v as f64 + params.epsilon).sqrt()) as f32)
            .collect();
        let shift = (self.mean.iter().zip(&scale).zip(params.beta))
            .map(|((&m, &s), &b)| b - m * s)
            .collect();
        (scale, shift)
    }

    /// `1 / sqrt(variance + eps)` per channel.
    fn inv_std(&self, epsilon: f64) -> Vec<f32> {
        (self.variance.iter())
            .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
            .collect()
    }
}

/// A BatchNorm's learned parameters, one value per channel, and its epsilon.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    /// The scale, gamma.
    pub gamma: &'a [f32],
    /// The shift, beta.
    pub beta: &'a [f32],
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

/// Channel `c`'s plane of image `b`.
fn plane<'a>(g: &AffineGeometry, data: &'a [f32], b: usize, c: usize) -> &'a [f32] {
    &data[(b * g.channels + c) * g.plane..][..g.plane]
}

/// The mean and biased variance of every channel of `x [B, C, H, W]` (two passes: the mean,
/// then the squared deviations from it). NaN for a channel without values.
pub fn batch_stats(g: &AffineGeometry, x: &[f32]) -> BatchStats {
    assert_eq!(x.len(), g.len(), "batch norm: input length");
    let count = (g.batch * g.plane) as f64;
    let (mean, variance) = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            let planes = || (0..g.batch).map(|b| plane(g, x, b, c));
            let mean = planes().map(|p| lane_sum(p, |v| v)).sum::<f64>() / count;
            let centre = mean as f32;
            let variance = planes()
                .map(|p| lane_sum(p, |v| (v - centre) * (v - centre)))
                .sum::<f64>()
                / count;
            (mean as f32, variance as f32)
        })
        .unzip();
    BatchStats { mean, variance }
}

/// `act(x * scale + shift)` with the affine terms of `stats`: the training-mode forward.
pub fn forward(
    g: &AffineGeometry,
    x: &[f32],
    params: Params<'_>,
    stats: &BatchStats,
    activation: Activation,
) -> Vec<f32> {
    assert_eq!(x.len(), g.len(), "batch norm: input length");
    let (scale, shift) = stats.affine(params);
    let fill = |y: &mut [MaybeUninit<f32>]| {
        for_planes(g, y, x, |c, y, x| {
            affine_plane_into(y, x, scale[c], shift[c], activation)
        })
    };
    // SAFETY: `for_planes` visits every plane and `affine_plane_into` writes all of it.
    unsafe { written_by(g.len(), fill) }
}

/// The gradients of gamma and beta.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGrads {
    /// `dgamma = Σ g * xhat` per channel.
    pub gamma: Vec<f32>,
    /// `dbeta = Σ g` per channel.
    pub beta: Vec<f32>,
}

/// The backward pass: writes `dx` over the output gradient `dy` and returns the gradients of
/// gamma and beta. The ReLU's mask is recomputed from `x`, exactly as [`forward`] computed it.
pub fn backward_in_place(
    g: &AffineGeometry,
    x: &[f32],
    dy: &mut [f32],
    params: Params<'_>,
    stats: &BatchStats,
    activation: Activation,
) -> ParamGrads {
    assert_eq!(
        (x.len(), dy.len()),
        (g.len(), g.len()),
        "batch norm: gradient length"
    );
    let terms = Terms {
        affine: stats.affine(params),
        inv_std: stats.inv_std(params.epsilon),
        stats,
    };
    let (mode, slope) = activation.mode();
    match mode {
        RELU => backward_with::<RELU>(g, x, dy, &terms, slope),
        LEAKY => backward_with::<LEAKY>(g, x, dy, &terms, slope),
        _ => backward_with::<IDENTITY>(g, x, dy, &terms, slope),
    }
}

/// The per-channel terms of the backward pass.
struct Terms<'a> {
    affine: (Vec<f32>, Vec<f32>),
    inv_std: Vec<f32>,
    stats: &'a BatchStats,
}

/// [`backward_in_place`] for one activation.
fn backward_with<const MODE: Mode>(
    g: &AffineGeometry,
    x: &[f32],
    dy: &mut [f32],
    terms: &Terms<'_>,
    slope: f32,
) -> ParamGrads {
    let ((scale, shift), inv_std, stats) = (&terms.affine, &terms.inv_std, terms.stats);
    let dy_read: &[f32] = dy;
    let (dgamma, dbeta): (Vec<f32>, Vec<f32>) = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            let (s, t, mean, k) = (scale[c], shift[c], stats.mean[c], inv_std[c]);
            let (mut dgamma, mut dbeta) = (0.0f64, 0.0f64);
            for b in 0..g.batch {
                let (x, d) = (plane(g, x, b, c), plane(g, dy_read, b, c));
                let (beta, gamma) = lane_sums(
                    x,
                    d,
                    |x, d| activate_grad::<MODE>(x * s + t, d, slope),
                    |x, d| activate_grad::<MODE>(x * s + t, d, slope) * ((x - mean) * k),
                );
                dbeta += beta;
                dgamma += gamma;
            }
            (dgamma as f32, dbeta as f32)
        })
        .unzip();
    let count = (g.batch * g.plane) as f32;
    for_planes(g, dy, x, |c, dy, x| {
        let (s, t, mean, k) = (scale[c], shift[c], stats.mean[c], inv_std[c]);
        let (a, b) = (dbeta[c] / count, dgamma[c] / count);
        let x = &x[..dy.len()];
        for (d, &x) in dy.iter_mut().zip(x) {
            let g = activate_grad::<MODE>(x * s + t, *d, slope);
            *d = s * (g - a - (x - mean) * k * b);
        }
    });
    ParamGrads {
        gamma: dgamma,
        beta: dbeta,
    }
}

/// The gradient of `x` through [`batch_stats`], given the gradients of the mean and of the
/// biased variance per channel: `dx = dmean / M + dvariance * 2 (x - mean) / M` (the variance's
/// dependence on the mean adds nothing: the deviations sum to zero).
pub fn batch_stats_backward(
    g: &AffineGeometry,
    x: &[f32],
    mean: &[f32],
    dmean: &[f32],
    dvariance: &[f32],
) -> Vec<f32> {
    assert_eq!(x.len(), g.len(), "batch stats: input length");
    let count = (g.batch * g.plane) as f32;
    let fill = |dx: &mut [MaybeUninit<f32>]| {
        for_planes(g, dx, x, |c, dx, x| {
            let (a, b, m) = (dmean[c] / count, 2.0 * dvariance[c] / count, mean[c]);
            let x = &x[..dx.len()];
            (dx.iter_mut().zip(x)).for_each(|(d, &x)| {
                d.write(a + b * (x - m));
            });
        })
    };
    // SAFETY: `for_planes` visits every plane and the loop writes all of it.
    unsafe { written_by(g.len(), fill) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One channel of four values, worked by hand: mean 2.5, variance 1.25.
    #[test]
    fn statistics_and_forward_by_hand() {
        let g = AffineGeometry::new([2, 1, 1, 2], 1).unwrap();
        let x = [1.0, 2.0, 3.0, 4.0];
        let stats = batch_stats(&g, &x);
        assert_eq!(stats.mean, [2.5]);
        assert_eq!(stats.variance, [1.25]);
        // eps 0: xhat = (x - 2.5) / sqrt(1.25); gamma 2, beta 1.
        let params = Params {
            gamma: &[2.0],
            beta: &[1.0],
            epsilon: 0.0,
        };
        let y = forward(&g, &x, params, &stats, Activation::Identity);
        let root = 1.25f32.sqrt();
        for (y, x) in y.iter().zip(x) {
            assert!((y - (2.0 * (x - 2.5) / root + 1.0)).abs() < 1e-6);
        }
    }

    /// The gradients against central differences of `Σ w * y` in f64, with and without the
    /// ReLU, on two channels and three images.
    #[test]
    fn gradients_match_finite_differences() {
        let g = AffineGeometry::new([3, 2, 2, 2], 2).unwrap();
        let x: Vec<f32> = (0..g.len())
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..g.len())
            .map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0)
            .collect();
        let (gamma, beta) = ([1.5f32, -0.7], [0.2f32, 0.4]);
        let eps = 1e-5;
        for activation in [
            Activation::Identity,
            Activation::Relu,
            Activation::LeakyRelu {
                negative_slope: 0.2,
            },
        ] {
            let loss = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
                let stats = batch_stats(&g, x);
                let params = Params {
                    gamma,
                    beta,
                    epsilon: eps,
                };
                let y = forward(&g, x, params, &stats, activation);
                y.iter().zip(&w).map(|(y, w)| *y as f64 * *w as f64).sum()
            };
            let mut dx = w.clone();
            let stats = batch_stats(&g, &x);
            let params = Params {
                gamma: &gamma,
                beta: &beta,
                epsilon: eps,
            };
            let params = backward_in_place(&g, &x, &mut dx, params, &stats, activation);
            let h = 1e-2f32;
            let diff = |f: &dyn Fn(f32) -> f64| (f(h) - f(-h)) / (2.0 * h as f64);
            for i in 0..g.len() {
                let numeric = diff(&|e| {
                    let mut x = x.clone();
                    x[i] += e;
                    loss(&x, &gamma, &beta)
                });
                assert!(
                    (dx[i] as f64 - numeric).abs() < 2e-2,
                    "{activation:?} dx[{i}]: {} vs {numeric}",
                    dx[i]
                );
            }
            for c in 0..2 {
                let numeric = diff(&|e| {
                    let mut gm = gamma;
                    gm[c] += e;
                    loss(&x, &gm, &beta)
                });
                assert!(
                    (params.gamma[c] as f64 - numeric).abs() < 2e-2,
                    "{activation:?} dgamma"
                );
                let numeric = diff(&|e| {
                    let mut bt = beta;
                    bt[c] += e;
                    loss(&x, &gamma, &bt)
                });
                assert!(
                    (params.beta[c] as f64 - numeric).abs() < 2e-2,
                    "{activation:?} dbeta"
                );
            }
        }
    }
}
