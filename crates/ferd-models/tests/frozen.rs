//! A frozen teacher (`valid()`): gradients reach its input (attacks) and match finite
//! differences; its parameters get none; its BatchNorm running statistics do not move.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use ferd_core::device::test_device;
use ferd_core::losses::cross_entropy;
use ferd_models::Classifier;
use ferd_models::init::{Init, initialize};
use ferd_models::resnet::{ResNet, ResNetConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn running_stats(model: &ResNet, x: Tensor<4>) -> Vec<f32> {
    let (_, stats) = model.forward_with_bn_stats(x);
    stats
        .into_iter()
        .flat_map(|s| {
            let mut v = s.running_mean.try_to_vec_as::<f32>().unwrap();
            v.extend(s.running_var.try_to_vec_as::<f32>().unwrap());
            v
        })
        .collect()
}

/// A small ResNet whose running statistics were moved off (0, 1) by a training-mode batch. Its
/// weights are drawn from a fixed seed on the host (not Burn's global RNG, which tests running
/// in parallel share), so every run checks the same model.
fn trained_model() -> ResNet {
    let device = test_device().autodiff();
    let model = initialize(ResNetConfig::small(4, 10).init(&device), Init::PyTorch, 10);
    let batch = host_random([8, 1, 28, 28], 0.0, 1.0, 11).autodiff();
    let _ = model.forward(batch);
    model
}

#[test]
fn training_mode_moves_running_statistics() {
    // The control: the same probe on a model that is not frozen does see its statistics move.
    let model = trained_model();
    let x = host_random([4, 1, 28, 28], 0.0, 1.0, 12).autodiff();
    let before = running_stats(&model.valid(), x.clone().without_autodiff());
    let _ = model.forward(x.clone());
    let after = running_stats(&model.valid(), x.without_autodiff());
    assert_ne!(before, after);
}

#[test]
fn frozen_teacher_under_attack() {
    let teacher = trained_model().valid();
    let device = test_device();
    let x0 = host_random([4, 1, 28, 28], 0.0, 1.0, 13);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3, 5, 9], [4]), &device);
    let before = running_stats(&teacher, x0.clone());

    // Ten signed-gradient steps on the input, as an attack takes them.
    let mut x = x0.clone();
    for _ in 0..10 {
        let input = x.clone().autodiff().require_grad();
        let loss = cross_entropy(teacher.forward(input.clone()), labels.clone()).unwrap();
        let grads = loss.backward();
        let g = input.grad(&grads).expect("the input receives a gradient");
        assert!(g.clone().abs().sum().into_scalar::<f32>() > 0.0);
        assert!(
            GradientsParams::from_grads(grads, &teacher).is_empty(),
            "parameters got gradients"
        );
        x = (x + g.sign().mul_scalar(0.01)).clamp(0.0, 1.0);
    }
    assert_eq!(
        running_stats(&teacher, x0),
        before,
        "running statistics moved"
    );
}

#[test]
fn input_gradient_matches_finite_differences() {
    let teacher = trained_model().valid();
    let device = test_device();
    let x = host_random([2, 1, 28, 28], 0.2, 0.8, 5);
    let w: Tensor<2> = Tensor::from_data(
        TensorData::new(host_values(20, -1.0, 1.0, 6), [2, 10]),
        &device,
    );
    let f = |x: Tensor<4>| (teacher.forward(x) * w.clone()).sum();

    let input = x.clone().autodiff().require_grad();
    let grads = f(input.clone()).backward();
    let g = input.grad(&grads).unwrap();
    // Directions in the gradient's orthant (sign(g) on a random half of the pixels, with random
    // magnitudes) keep the directional derivative large, so the f32 central difference is well
    // conditioned; different masks check different parts of the gradient.
    for seed in 0..4 {
        let mask = host_random([2, 1, 28, 28], 0.0, 1.0, 100 + seed)
            .greater_elem(0.5)
            .float();
        let scale = host_random([2, 1, 28, 28], 0.5, 1.0, 200 + seed);
        let v = g.clone().sign() * mask * scale;
        let analytic = (g.clone() * v.clone()).sum().into_scalar::<f32>();
        let h = 1e-3;
        let plus = f(x.clone() + v.clone().mul_scalar(h)).into_scalar::<f32>();
        let minus = f(x.clone() - v.mul_scalar(h)).into_scalar::<f32>();
        let numeric = (plus - minus) / (2.0 * h);
        assert!(
            (analytic - numeric).abs() <= 0.01 * analytic.abs(),
            "directional derivative {analytic} vs finite difference {numeric}"
        );
    }
}

fn host_values(n: usize, low: f32, high: f32, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(low..high)).collect()
}

/// Uniform values drawn on the host: identical on every backend and in parallel tests.
fn host_random(shape: [usize; 4], low: f32, high: f32, seed: u64) -> Tensor<4> {
    let values = host_values(shape.iter().product(), low, high, seed);
    Tensor::from_data(TensorData::new(values, shape), &test_device())
}
