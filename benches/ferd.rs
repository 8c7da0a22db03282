//! One FERD synthesis iteration and one student step at the `fmnist-quick` sizes (batch 64,
//! 28x28 Fashion-MNIST shapes, teacher small-cnn-16, student small-cnn-8, generator `ngf` 16,
//! 20 bottleneck steps, UTAE K = 10) on the device named by `FERD_TEST_DEVICE` (default flex).
//! `tools/bench/torch_ferd.py` times the same computation in PyTorch and prints the ratio.
//!
//! ```text
//! cargo bench --bench ferd
//! python3 tools/bench/torch_ferd.py      # reads target/criterion/ferd/*/new/estimates.json
//! ```
//!
//! A synthesis iteration is timed as a round of `ROUND` iterations divided by `ROUND` (the
//! generator's initialization and the label draw are negligible next to it).

use std::time::Duration;

use burn::module::Module;
use criterion::{Criterion, criterion_group, criterion_main};
use ferd::core::device::test_device;
use ferd::core::random::{rng, uniform};
use ferd::distill::optim::Sgd;
use ferd::distill::student::train_step;
use ferd::distill::synthesis::synthesize;
use ferd::distill::{Budget, FerdConfig, FerdMethod};
use ferd::models::init::{Init, initialize};
use ferd::models::zoo::Architecture;

#[global_allocator]
static ALLOCATOR: ferd::allocator::Allocator = ferd::allocator::Allocator;

const ROUND: usize = 5;

fn ferd_steps(c: &mut Criterion) {
    let device = test_device();
    let mut config = FerdConfig::preset(Budget::FmnistQuick, FerdMethod::Ferd);
    config.synthesis.steps = ROUND;
    let build = |width, seed| {
        initialize(
            Architecture::SmallCnn { width }.build(1, 10, &device.clone().autodiff()),
            Init::PyTorch,
            seed,
        )
    };
    let teacher = build(16, 1).valid();
    let mut group = c.benchmark_group("ferd");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    let frozen_student = build(8, 2).valid();
    let uniform_p = vec![0.1; 10];
    group.bench_function("synthesis_round_5", |b| {
        b.iter(|| {
            synthesize(
                &teacher,
                &frozen_student,
                &uniform_p,
                &config,
                &mut ferd_distill::draws::Seeded::new(0),
                0,
                &device,
                &mut |_, _| {},
            )
            .expect("a round")
            .steps
            .len()
        })
    });
    let mut student = Some(build(8, 2));
    let mut optim = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
    }
    .build();
    let x = uniform(&mut rng(3), [64, 1, 28, 28], 0.0, 1.0, &device);
    let labels: Vec<i64> = (0..64).map(|i| i % 10).collect();
    let y = burn::tensor::Tensor::<1, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(labels, [64]),
        &device,
    );
    group.bench_function("student_step", |b| {
        b.iter(|| {
            let (next, report) = train_step(
                student.take().expect("a student"),
                &mut optim,
                &teacher,
                x.clone(),
                y.clone(),
                &config.student,
                config.threat,
                0.05,
                &mut rng(7),
            )
            .expect("a step");
            student = Some(next);
            report.loss
        })
    });
    group.finish();
}

criterion_group!(benches, ferd_steps);
criterion_main!(benches);
