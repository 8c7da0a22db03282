//! `ops::batch_norm_train` against Burn's `module::batch_norm_train` followed by the activation,
//! on random shapes, parameters and inputs: the output, the batch statistics and the gradients
//! of the input, gamma and beta, within 1e-4 of the largest value of each. On Flex this compares
//! ferd's kernel with Burn's ops; elsewhere Burn's ops on both sides (the routing).

use burn::tensor::module::batch_norm_train as burn_batch_norm_train;
use burn::tensor::{Device, Tensor, TensorData};
use ferd_core::device::test_device;
use ferd_core::random::{normal, rng};
use ferd_kernels::{Activation, batch_moments, batch_norm_train, check_channel_affine};
use rand::Rng;

use crate::common;

const EPSILON: f64 = 1e-5;

/// Output, mean, variance, and the gradients of x, gamma and beta of `sum(y * probe)`.
type Results = [Vec<f32>; 6];

/// One problem run through `layer` (ours or Burn's) on an autodiff device.
fn run(
    dims: [usize; 4],
    seed: u64,
    device: &Device,
    layer: impl Fn(Tensor<4>, Tensor<1>, Tensor<1>) -> [Tensor<4>; 1],
    stats: impl Fn(Tensor<4>, Tensor<1>, Tensor<1>) -> [Tensor<1>; 2],
) -> Results {
    let autodiff = device.clone().autodiff();
    let channels = dims[1];
    let mut r = rng(seed);
    // Per-channel offsets and spreads, so that the statistics differ between channels.
    let offsets: Vec<f32> = (0..channels).map(|_| r.random_range(-2.0..2.0)).collect();
    let spreads: Vec<f32> = (0..channels).map(|_| r.random_range(0.1..3.0)).collect();
    let noise = normal(&mut rng(seed + 1), dims, 0.0, 1.0, device)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let plane = dims[2] * dims[3];
    let values: Vec<f32> = (noise.iter().enumerate())
        .map(|(i, &z)| {
            let c = (i / plane) % channels;
            offsets[c] + spreads[c] * z
        })
        .collect();
    let param = |lo: f32, hi: f32, r: &mut rand::rngs::StdRng| -> Tensor<1> {
        let v: Vec<f32> = (0..channels).map(|_| r.random_range(lo..hi)).collect();
        Tensor::from_data(TensorData::new(v, [channels]), &autodiff).require_grad()
    };
    let (gamma, beta) = (param(-2.0, 2.0, &mut r), param(-1.0, 1.0, &mut r));
    let x = Tensor::<4>::from_data(TensorData::new(values, dims), &autodiff).require_grad();
    let probe = Tensor::<4>::from_data(
        normal(&mut rng(seed + 2), dims, 0.0, 1.0, device).into_data(),
        &autodiff,
    );
    let [y] = layer(x.clone(), gamma.clone(), beta.clone());
    let [mean, variance] = stats(x.clone(), gamma.clone(), beta.clone());
    let grads = (y.clone() * probe).sum().backward();
    let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    let host1 = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    [
        host(y.inner()),
        host1(mean.inner()),
        host1(variance.inner()),
        host(x.grad(&grads).unwrap()),
        host1(gamma.grad(&grads).unwrap()),
        host1(beta.grad(&grads).unwrap()),
    ]
}

#[test]
fn batch_norm_train_matches_burn_with_and_without_relu() {
    let device = test_device();
    for seed in 0..24 {
        let mut r = rng(seed);
        let dims = [
            r.random_range(1..7),
            r.random_range(1..9),
            r.random_range(1..12),
            r.random_range(1..12),
        ];
        let activation = common::ACTIVATIONS[seed as usize % 3];
        let ours = run(
            dims,
            seed,
            &device,
            |x, g, b| [batch_norm_train(x, g, b, EPSILON, activation).output],
            |x, g, b| {
                let bn = batch_norm_train(x, g, b, EPSILON, activation);
                [bn.mean, bn.variance]
            },
        );
        let burn = run(
            dims,
            seed,
            &device,
            |x, g, b| [activation.apply(burn_batch_norm_train(x, g, b, EPSILON).output)],
            |x, g, b| {
                let bn = burn_batch_norm_train(x, g, b, EPSILON);
                [bn.mean, bn.variance]
            },
        );
        let names = [
            "output",
            "mean",
            "variance",
            "x grad",
            "gamma grad",
            "beta grad",
        ];
        for (what, (a, b)) in names.iter().zip(ours.iter().zip(&burn)) {
            let what = format!("{what} of {dims:?} ({activation:?})");
            common::assert_close(&what, a, b, 1e-4);
        }
    }
}

#[test]
fn parameters_of_the_wrong_length_are_refused() {
    let error = check_channel_affine([2, 3, 4, 4], 2)
        .unwrap_err()
        .to_string();
    assert!(error.contains("channel_affine"), "{error}");
    let device = test_device();
    let caught = std::panic::catch_unwind(|| {
        let x = Tensor::<4>::zeros([2, 3, 4, 4], &device);
        batch_norm_train(
            x,
            Tensor::ones([2], &device),
            Tensor::zeros([3], &device),
            EPSILON,
            Activation::Relu,
        )
    });
    let message = caught.unwrap_err();
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("2 per-channel parameters"), "{message}");
}

/// `batch_moments` against Burn's `var_mean_bias` over the transposed activation: the mean, the
/// biased variance and the gradient of `x` of `Σ p * mean + Σ q * variance`, within 1e-4.
#[test]
fn batch_moments_match_burns_reduction() {
    let device = test_device();
    let autodiff = device.clone().autodiff();
    for seed in 0..12 {
        let mut r = rng(300 + seed);
        let dims = [
            r.random_range(1..7),
            r.random_range(1..9),
            r.random_range(1..12),
            r.random_range(1..12),
        ];
        let channels = dims[1];
        let x = normal(&mut rng(400 + seed), dims, 0.3, 1.7, &device);
        let weights = normal(&mut rng(500 + seed), [2, channels], 0.0, 1.0, &device);
        let run = |moments: &dyn Fn(Tensor<4>) -> [Tensor<1>; 2]| -> [Vec<f32>; 3] {
            let x = Tensor::<4>::from_data(x.to_data(), &autodiff).require_grad();
            let w = Tensor::<2>::from_data(weights.to_data(), &autodiff);
            let [mean, variance] = moments(x.clone());
            let p = w.clone().narrow(0, 0, 1).reshape([channels]);
            let q = w.narrow(0, 1, 1).reshape([channels]);
            let loss = (mean.clone() * p).sum() + (variance.clone() * q).sum();
            let grads = loss.backward();
            let host = |t: Tensor<1>| t.inner().into_data().try_to_vec::<f32>().unwrap();
            [
                host(mean),
                host(variance),
                x.grad(&grads)
                    .unwrap()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap(),
            ]
        };
        let ours = run(&|x| {
            let m = batch_moments(x);
            [m.mean, m.variance]
        });
        let burn = run(&|x| {
            let per_channel = x.swap_dims(0, 1).reshape([channels as i64, -1]);
            let (variance, mean) = per_channel.var_mean_bias(1);
            [mean.reshape([channels]), variance.reshape([channels])]
        });
        for (what, (a, b)) in ["mean", "variance", "x grad"]
            .iter()
            .zip(ours.iter().zip(&burn))
        {
            common::assert_close(&format!("{what} of {dims:?}"), a, b, 1e-4);
        }
    }
}
