//! One FERD synthesis iteration and one student step (UTAE K = 10) on the device named by
//! `FERD_TEST_DEVICE` (default flex), at batch `FERD_BENCH_BATCH` (default 64) and in the shapes
//! of `FERD_BENCH_SHAPE`:
//! - `fmnist` (default): the `fmnist-quick` budget (28x28 Fashion-MNIST shapes, teacher
//!   small-cnn-16, student small-cnn-8, generator `ngf` 16, 20 bottleneck steps);
//! - `cifar`: the paper's `cifar10-paper` budget (32x32x3, teacher WRN-34-10, student ResNet-18,
//!   generator `ngf` 64, 50 bottleneck steps), GPU work.
//!
//! `tools/bench/torch_ferd.py` times the same computation in PyTorch and prints the ratio.
//!
//! ```text
//! cargo bench --bench ferd
//! python3 tools/bench/torch_ferd.py      # reads target/criterion/ferd_<shape>_b<batch>/*/new/estimates.json
//! ```
//!
//! A synthesis iteration is timed as a round of `ROUND` iterations divided by `ROUND` (the
//! generator's initialization and the label draw are negligible next to it).

mod common;

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

/// The workload's shapes, from `FERD_BENCH_SHAPE`.
struct Shape {
    name: &'static str,
    budget: Budget,
    teacher: Architecture,
    student: Architecture,
}

fn shape() -> Shape {
    match std::env::var("FERD_BENCH_SHAPE").as_deref() {
        Ok("cifar") => Shape {
            name: "cifar",
            budget: Budget::Cifar10Paper,
            teacher: Architecture::WideResNet {
                depth: 34,
                widen: 10,
            },
            student: Architecture::RESNET18,
        },
        Ok("fmnist") | Err(_) => Shape {
            name: "fmnist",
            budget: Budget::FmnistQuick,
            teacher: Architecture::SmallCnn { width: 16 },
            student: Architecture::SmallCnn { width: 8 },
        },
        Ok(other) => panic!("FERD_BENCH_SHAPE: `{other}` is neither fmnist nor cifar"),
    }
}

fn ferd_steps(c: &mut Criterion) {
    let device = test_device();
    let shape = shape();
    let mut config = FerdConfig::preset(shape.budget, FerdMethod::Ferd);
    config.synthesis.steps = ROUND;
    config.batch_size = common::batch();
    let [channels, side] = [config.image.channels, config.image.side];
    let build = |arch: Architecture, seed| {
        initialize(
            arch.build(channels, config.num_classes, &device.clone().autodiff()),
            Init::PyTorch,
            seed,
        )
    };
    let teacher = build(shape.teacher, 1).valid();
    let mut group = c.benchmark_group(format!("ferd_{}_b{}", shape.name, config.batch_size));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(20));
    let frozen_student = build(shape.student, 2).valid();
    let uniform_p = vec![1.0 / config.num_classes as f64; config.num_classes];
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
    let mut student = Some(build(shape.student, 2));
    let mut optim = Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
    }
    .build();
    let batch = config.batch_size;
    let x = uniform(
        &mut rng(3),
        [batch, channels, side, side],
        0.0,
        1.0,
        &device,
    );
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let y = burn::tensor::Tensor::<1, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(labels, [batch]),
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
