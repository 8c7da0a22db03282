//! `ops::channel_affine` as an inference-mode BatchNorm and its (leaky) ReLU, against Burn's
//! `module::batch_norm` (running statistics) followed by `relu` or `leaky_relu`, on random
//! shapes and statistics: the output and the input gradient. The two evaluate the same map in
//! different forms (`x * scale + shift` against `(x - mean) / sqrt(var + eps) * gamma + beta`),
//! so they agree to the rounding of those forms: a few ulps of the largest term, bounded per
//! value below.
//! On Flex this compares ferd's kernel with Burn's ops; elsewhere Burn's ops on both sides.

use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::module::batch_norm;
use burn::tensor::{Device, Tensor, TensorData};
use ferd_core::device::test_device;
use ferd_core::random::{normal, rng, uniform};
use ferd_kernels::{Activation, channel_affine, check_channel_affine};
use rand::Rng;

use crate::common;

const EPSILON: f64 = 1e-5;

/// A BatchNorm's parameters and running statistics, one value per channel.
struct Bn {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
}

impl Bn {
    fn random(channels: usize, seed: u64) -> Self {
        let mut r = rng(seed);
        let mut draw = |lo: f32, hi: f32| -> Vec<f32> {
            (0..channels).map(|_| r.random_range(lo..hi)).collect()
        };
        Self {
            gamma: draw(-2.0, 2.0),
            beta: draw(-1.0, 1.0),
            mean: draw(-1.0, 1.0),
            var: draw(0.05, 3.0),
        }
    }

    /// PyTorch's folding, computed here on the host in f64 and rounded once.
    fn folded(&self) -> (Vec<f32>, Vec<f32>) {
        let scale: Vec<f64> = (0..self.gamma.len())
            .map(|c| self.gamma[c] as f64 / (self.var[c] as f64 + EPSILON).sqrt())
            .collect();
        let shift = (0..self.gamma.len())
            .map(|c| (self.beta[c] as f64 - self.mean[c] as f64 * scale[c]) as f32)
            .collect();
        (scale.iter().map(|&s| s as f32).collect(), shift)
    }
}

fn vector(values: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

/// Output and input gradient of `sum(y * probe)` for `layer` applied to `x`.
fn run(x: &Tensor<4>, probe: &Tensor<4>, layer: impl Fn(Tensor<4>) -> Tensor<4>) -> [Vec<f32>; 2] {
    let autodiff = x.device().autodiff();
    let x = Tensor::<4>::from_data(x.to_data(), &autodiff).require_grad();
    let probe = Tensor::<4>::from_data(probe.to_data(), &autodiff);
    let y = layer(x.clone());
    let grads = (y.clone() * probe).sum().backward();
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    [values(y.inner()), values(x.grad(&grads).unwrap())]
}

#[test]
fn channel_affine_is_an_inference_batch_norm_with_its_relu() {
    let device = test_device();
    for seed in 0..24 {
        let mut r = rng(seed);
        let dims = [
            r.random_range(1..5),
            r.random_range(1..9),
            r.random_range(1..10),
            r.random_range(1..10),
        ];
        let activation = common::ACTIVATIONS[seed as usize % 3];
        let bn = Bn::random(dims[1], 100 + seed);
        let (scale, shift) = bn.folded();
        let x = normal(&mut rng(200 + seed), dims, 0.0, 2.0, &device);
        let probe = uniform(&mut rng(300 + seed), dims, -1.0, 1.0, &device);
        // Half the problems hand the op a fresh tensor, which it may overwrite (as a
        // convolution's output); the others a tensor that is still held, which it must copy.
        let fresh = seed % 4 < 2;
        let [y, dx] = run(&x, &probe, |x| {
            let (scale, shift) = (vector(&scale, &x.device()), vector(&shift, &x.device()));
            let x = if fresh { x * 1.0 } else { x };
            channel_affine(x, scale, shift, activation)
        });
        let [want_y, want_dx] = run(&x, &probe, |x| {
            let p = |v: &[f32]| vector(v, &x.device());
            let (gamma, beta, mean, var) = (p(&bn.gamma), p(&bn.beta), p(&bn.mean), p(&bn.var));
            let z = batch_norm(x, gamma, beta, mean, var, EPSILON);
            match activation {
                Activation::Relu => relu(z),
                Activation::LeakyRelu { negative_slope } => {
                    leaky_relu(z, f64::from(negative_slope))
                }
                Activation::Identity => z,
            }
        });
        let xs = x.into_data().try_to_vec::<f32>().unwrap();
        let plane = dims[2] * dims[3];
        for i in 0..xs.len() {
            let c = (i / plane) % dims[1];
            // Both forms round a few terms of this size.
            let size = (xs[i] * scale[c]).abs() + shift[c].abs() + 1.0;
            let tolerance = 8.0 * f32::EPSILON * size;
            let what = format!("seed {seed}, {dims:?}, {activation:?}, value {i}");
            assert!(
                (y[i] - want_y[i]).abs() <= tolerance,
                "{what}: {} vs {}",
                y[i],
                want_y[i]
            );
            // Where the pre-activation is within rounding of 0, the two may disagree on the mask.
            let pre_activation = xs[i] * scale[c] + shift[c];
            if activation != Activation::Identity && pre_activation.abs() <= tolerance {
                continue;
            }
            let grad_tolerance = 8.0 * f32::EPSILON * (want_dx[i].abs() + 1.0);
            assert!(
                (dx[i] - want_dx[i]).abs() <= grad_tolerance,
                "{what}: gradient {} vs {}",
                dx[i],
                want_dx[i]
            );
        }
    }
}

/// A ReLU gradient is zero where the output is 0 and `scale` where it is positive; NaN passes
/// through the forward (worked by hand, through the public op).
#[test]
fn relu_mask_and_nan_by_hand() {
    let device = test_device();
    let x = Tensor::<1>::from_floats([1.0, -1.0, f32::NAN, 0.25], &device).reshape([1, 1, 2, 2]);
    let probe = Tensor::<4>::ones([1, 1, 2, 2], &device);
    let [y, dx] = run(&x, &probe, |x| {
        let device = x.device();
        channel_affine(
            x,
            vector(&[4.0], &device),
            vector(&[-1.0], &device),
            Activation::Relu,
        )
    });
    assert_eq!((y[0], y[1], y[3]), (3.0, 0.0, 0.0));
    assert!(y[2].is_nan());
    assert_eq!((dx[0], dx[1], dx[3]), (4.0, 0.0, 0.0));

    // A tensor still held elsewhere is left as it was.
    let device = x.device();
    let y = channel_affine(
        x.clone(),
        vector(&[4.0], &device),
        vector(&[-1.0], &device),
        Activation::Relu,
    );
    let held = x.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!((held[0], held[1], held[3]), (1.0, -1.0, 0.25));
    assert_eq!(y.into_data().try_to_vec::<f32>().unwrap()[0], 3.0);
}

/// Parameters that need gradients take Burn's ops, and get them: `d/d scale = sum x * dy`.
#[test]
fn trainable_parameters_get_their_gradients() {
    let device = test_device().autodiff();
    let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0], &device).reshape([1, 2, 1, 2]);
    let scale = vector(&[1.0, -1.0], &device).require_grad();
    let shift = vector(&[0.5, 0.5], &device).require_grad();
    let y = channel_affine(x, scale.clone(), shift.clone(), Activation::Identity);
    let grads = y.sum().backward();
    let got = |t: &Tensor<1>| {
        t.grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    assert_eq!(got(&scale), [3.0, 7.0]);
    assert_eq!(got(&shift), [2.0, 2.0]);
}

#[test]
fn parameters_that_do_not_fit_are_refused_with_their_sizes() {
    let error = check_channel_affine([2, 3, 4, 4], 5)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains('5') && error.contains("3 channels"),
        "{error}"
    );
    assert!(check_channel_affine([2, 3, 4, 4], 3).is_ok());
}
