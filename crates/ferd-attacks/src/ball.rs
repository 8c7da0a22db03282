//! The threat model shared by every attack: the Linf ball of radius `eps` around the clean
//! images intersected with the `[0, 1]` box, random starting points inside it, and the checks
//! on what a caller passes in.

use burn::tensor::{Device, Int, Tensor, TensorData};
use ferd_core::random::Noise;
use rand::rngs::StdRng;

use crate::error::{Result, bad_input, invalid};

/// Projects `x_adv` onto the Linf ball of radius `eps` around `x`, then onto `[0, 1]`.
pub fn project(x_adv: Tensor<4>, x: &Tensor<4>, eps: f32) -> Tensor<4> {
    let low = x.clone().sub_scalar(eps);
    let high = x.clone().add_scalar(eps);
    x_adv.max_pair(low).min_pair(high).clamp(0.0, 1.0)
}

/// The Linf distance between corresponding images of `a` and `b`, per sample.
pub fn linf_distance(a: &Tensor<4>, b: &Tensor<4>) -> Vec<f32> {
    let [batch, ..] = a.dims();
    (a.clone() - b.clone())
        .abs()
        .reshape([batch as i64, -1])
        .max_dim(1)
        .reshape([batch])
        .try_to_vec_as::<f32>()
        .expect("a float tensor reads back as f32")
}

/// Values drawn on the host (so that a seed gives the same numbers on every backend) and
/// uploaded as a tensor of `shape`.
pub(crate) fn host_tensor<const D: usize>(
    shape: [usize; D],
    device: &Device,
    mut draw: impl FnMut() -> f32,
) -> Tensor<D> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| draw()).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// `U[-1, 1)` noise of the shape of `x`.
pub(crate) fn symmetric_noise(x: &Tensor<4>, noise: &mut dyn Noise) -> Tensor<4> {
    ferd_core::random::uniform(noise, x.dims(), -1.0, 1.0, &x.device())
}

/// Standard normal noise of the shape of `x`, drawn on the host.
pub(crate) fn gaussian_noise(x: &Tensor<4>, noise: &mut dyn Noise) -> Tensor<4> {
    ferd_core::random::normal(noise, x.dims(), 0.0, 1.0, &x.device())
}

/// PGD's start (Madry et al.): `clip01(x + U[-eps, eps])`.
pub(crate) fn uniform_start(x: &Tensor<4>, eps: f32, noise: &mut dyn Noise) -> Tensor<4> {
    (x.clone() + symmetric_noise(x, noise).mul_scalar(eps)).clamp(0.0, 1.0)
}

/// APGD's and FAB's start: `clip01(x + radius t / ||t||_inf)` with `t ~ U[-1, 1)` per pixel,
/// a point on the sphere of radius `radius` before clipping.
pub(crate) fn sphere_start(x: &Tensor<4>, radius: f32, rng: &mut StdRng) -> Tensor<4> {
    let t = symmetric_noise(x, rng);
    let [batch, ..] = t.dims();
    let norm = t
        .clone()
        .abs()
        .reshape([batch as i64, -1])
        .max_dim(1)
        .reshape([batch, 1, 1, 1])
        .add_scalar(1e-12);
    (x.clone() + (t / norm).mul_scalar(radius)).clamp(0.0, 1.0)
}

/// Checks an epsilon: finite and in `(0, 1]` for images in `[0, 1]`.
pub(crate) fn check_eps(what: &'static str, eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0 && eps <= 1.0) {
        return Err(invalid(
            what,
            format!("epsilon {eps} is outside (0, 1] (images are in [0, 1])"),
        ));
    }
    Ok(())
}

/// Checks a batch: images `[B >= 1, C, H, W]` in `[0, 1]` and `B` labels in `0..classes`. Returns
/// the images as a plain (non-autodiff) tensor.
pub(crate) fn check_batch(
    what: &'static str,
    x: Tensor<4>,
    labels: &Tensor<1, Int>,
    classes: usize,
) -> Result<Tensor<4>> {
    let [batch, ..] = x.dims();
    let [n] = labels.dims();
    if batch == 0 {
        return Err(bad_input(what, "an empty batch"));
    }
    if n != batch {
        return Err(bad_input(what, format!("{n} labels for {batch} images")));
    }
    let x = x.without_autodiff();
    // Each range is read back in one transfer (an attack runs this check on every batch).
    let range = Tensor::cat(vec![x.clone().min(), x.clone().max()], 0)
        .try_to_vec_as::<f32>()
        .expect("a float pair");
    let (low, high) = (range[0], range[1]);
    if !(low >= 0.0 && high <= 1.0) {
        return Err(bad_input(
            what,
            format!(
                "pixels span [{low}, {high}]: attacks expect images in [0, 1] \
                 (normalize inside the model, not before the attack)"
            ),
        ));
    }
    let range = Tensor::cat(vec![labels.clone().min(), labels.clone().max()], 0)
        .try_to_vec_as::<i64>()
        .expect("an integer pair");
    let (bottom, top) = (range[0], range[1]);
    if bottom < 0 || top >= classes as i64 {
        return Err(bad_input(
            what,
            format!("labels span {bottom}..={top} for a model with {classes} classes"),
        ));
    }
    Ok(x)
}

/// Checks that a count (steps, restarts, queries) is at least one.
pub(crate) fn check_count(what: &'static str, name: &str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(invalid(what, format!("{name} must be at least 1")));
    }
    Ok(())
}
