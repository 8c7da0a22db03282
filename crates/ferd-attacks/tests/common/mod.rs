//! Helpers shared by the attack tests: models with known geometry and seeded host data.

#![allow(dead_code)]

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A linear classifier `z = W vec(x) + b` over images of `n` pixels, as a closure.
pub fn linear(
    weights: Vec<f32>,
    bias: Vec<f32>,
    device: &Device,
) -> impl Fn(Tensor<4>) -> Tensor<2> + use<> {
    let classes = bias.len();
    let n = weights.len() / classes;
    let w = Tensor::<2>::from_data(TensorData::new(weights, [classes, n]), device).transpose();
    let b = Tensor::<2>::from_data(TensorData::new(bias, [1, classes]), device);
    move |x: Tensor<4>| {
        let [batch, ..] = x.dims();
        x.reshape([batch, n]).matmul(w.clone()) + b.clone()
    }
}

/// Uniform values in `[low, high)` drawn on the host.
pub fn uniform(n: usize, low: f32, high: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(low..high)).collect()
}

/// Images `[B, C, H, W]` uniform in `[low, high)`.
pub fn images(shape: [usize; 4], low: f32, high: f32, seed: u64, device: &Device) -> Tensor<4> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(uniform(n, low, high, seed), shape), device)
}

/// Labels from a list.
pub fn labels(values: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = values.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(v, [values.len()]), device)
}

/// Reads a tensor back to the host.
pub fn host(t: Tensor<4>) -> Vec<f32> {
    t.try_to_vec_as::<f32>().unwrap()
}

/// Arg-max predictions of a model.
pub fn predict(model: &dyn ferd_attacks::Model, x: Tensor<4>) -> Vec<usize> {
    let out = model.logits(x);
    let [batch, _] = out.dims();
    out.argmax(1)
        .reshape([batch])
        .try_to_vec_as::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as usize)
        .collect()
}
