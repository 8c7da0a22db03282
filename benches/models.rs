//! Forward + backward of small-cnn-16 on 28x28x1 images (the Fashion-MNIST teacher's size) and of
//! the CIFAR classifiers on 32x32 images, at batch `FERD_BENCH_BATCH` (default 64; the paper's 256
//! on a GPU), on the device named by `FERD_TEST_DEVICE` (default flex, the CPU).
//! `tools/bench/torch_models.py` times the same in PyTorch on the same machine and prints the
//! ratio.
//!
//! ```text
//! cargo bench --bench models
//! python3 tools/bench/torch_models.py      # reads target/criterion/*/new/estimates.json
//! ```

mod common;

use std::time::Duration;

use burn::tensor::{Distribution, Int, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use ferd::core::device::test_device;
use ferd::core::losses::cross_entropy;
use ferd::models::Classifier;
use ferd::models::mobilenet_v2::MobileNetV2Config;
use ferd::models::resnet::ResNetConfig;
use ferd::models::small_cnn::SmallCnnConfig;

#[global_allocator]
static ALLOCATOR: ferd::allocator::Allocator = ferd::allocator::Allocator;

/// One training step's compute: forward, cross-entropy, backward (parameter and input grads).
fn step(model: &impl Classifier, x: &Tensor<4>, y: &Tensor<1, Int>) -> f32 {
    let loss = cross_entropy(model.forward(x.clone()), y.clone()).expect("shapes fit");
    let grads = loss.backward();
    // Reading one gradient back forces the whole backward pass to run.
    x.grad(&grads)
        .expect("input gradient")
        .abs()
        .sum()
        .into_scalar::<f32>()
}

fn forward_backward(c: &mut Criterion) {
    let device = test_device().autodiff();
    let batch = common::batch();
    let x = Tensor::<4>::random([batch, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device)
        .require_grad();
    let y = Tensor::<1, Int>::random([batch], Distribution::Uniform(0.0, 10.0), &device);
    let mut group = c.benchmark_group(format!("forward_backward_b{batch}_28x28"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(15));
    let small_cnn = SmallCnnConfig::new().with_width(16).init(&device);
    group.bench_function("small_cnn16", |b| b.iter(|| step(&small_cnn, &x, &y)));
    group.finish();

    let x = Tensor::<4>::random([batch, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device)
        .require_grad();
    let y = Tensor::<1, Int>::random([batch], Distribution::Uniform(0.0, 10.0), &device);
    let mut group = c.benchmark_group(format!("forward_backward_b{batch}_32x32"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(5))
        .measurement_time(Duration::from_secs(30));
    let resnet = ResNetConfig::resnet18(10).init(&device);
    group.bench_function("resnet18", |b| b.iter(|| step(&resnet, &x, &y)));
    let mobilenet = MobileNetV2Config::new().init(&device);
    group.bench_function("mobilenet_v2", |b| b.iter(|| step(&mobilenet, &x, &y)));
    group.finish();
}

criterion_group!(benches, forward_backward);
criterion_main!(benches);
