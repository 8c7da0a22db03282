//! FERD's behaviour on the bundled Fashion-MNIST teacher, every method preset end to end with a
//! cut-down budget, and resuming. Expected values come from the teacher's model card (its
//! class-wise PGD-20 accuracy: shirt 26.8%, pullover 49.5%, coat 55.1% are its three weakest
//! classes) and from the definitions, never from the code under test.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use ferd::attacks::{Frozen, Model};
use ferd::core::DeviceSpec;
use ferd::core::device::{slow_test_skipped, test_device, test_device_spec};
use ferd::data::{DatasetName, ImageDataset, Split, load};
use ferd::distill::config::{Threat, UtaeConfig};
use ferd::distill::fragility::fragility;
use ferd::distill::synthesis::synthesize;
use ferd::distill::{Budget, FerdConfig, FerdMethod, RunOptions, distill, uniform_target};
use ferd::models::AnyClassifier;
use ferd::models::Classifier;
use ferd::models::init::{Init, initialize};
use ferd::models::weights::load_weights;
use ferd::models::zoo::Architecture;

const SHIRT: usize = 6;
const PULLOVER: usize = 2;
const COAT: usize = 4;

/// The bundled teacher as loaded, still in training mode (not `valid()`).
fn loaded_teacher(device: &Device) -> AnyClassifier {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/fmnist-small-teacher/teacher.bpk");
    let mut model = Architecture::SmallCnn { width: 16 }.build(1, 10, device);
    load_weights(&mut model, &path).unwrap();
    model
}

fn teacher(device: &Device) -> AnyClassifier {
    loaded_teacher(device).valid()
}

fn student(width: usize, seed: u64, device: &Device) -> AnyClassifier {
    initialize(
        Architecture::SmallCnn { width }.build(1, 10, &device.clone().autodiff()),
        Init::PyTorch,
        seed,
    )
}

fn test_set() -> ImageDataset {
    load(DatasetName::FashionMnist, Split::Test, None).unwrap()
}

fn fmnist_threat() -> Threat {
    Threat {
        eps: 0.1,
        alpha: 0.01,
    }
}

fn run_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferd-distill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Fragility of the bundled teacher on real test images (20 per class) ranks its three least
/// robust classes (model card) first, and the paper's softmax rule gives them the most mass.
/// A slow test (63 s on Mesa's software Vulkan): fragility's ops run on every device in
/// `every_method_runs_end_to_end`.
#[test]
fn fragility_ranks_the_teachers_weak_classes_first() {
    if let Some(why) = slow_test_skipped() {
        eprintln!("skipped: {why}");
        return;
    }
    let device = test_device();
    let teacher = teacher(&device);
    let data = test_set().balanced_subset(20);
    let rows: Vec<usize> = (0..data.len()).collect();
    let batch = data.batch(&rows, &device).unwrap();
    let d = fragility(
        &teacher,
        &batch.images,
        data.labels(),
        10,
        fmnist_threat(),
        20,
        &mut ferd_core::random::rng(0),
    )
    .unwrap();
    let mut order: Vec<usize> = (0..10).collect();
    order.sort_by(|&a, &b| d[b].total_cmp(&d[a]));
    let mut top: Vec<usize> = order[..3].to_vec();
    top.sort();
    eprintln!("fragility {d:?}, most fragile first {order:?}");
    assert_eq!(top, vec![PULLOVER, COAT, SHIRT], "fragility {d:?}");
    let p = ferd::core::reweighting::ReweightStrategy::default()
        .class_distribution(&d)
        .unwrap();
    let mut by_mass: Vec<usize> = (0..10).collect();
    by_mass.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut top_mass = by_mass[..3].to_vec();
    top_mass.sort();
    assert_eq!(top_mass, vec![PULLOVER, COAT, SHIRT], "distribution {p:?}");
}

/// Mean entropy (nats) of the predicted distributions `softmax(logits)`.
fn mean_prediction_entropy(logits: Tensor<2>) -> f64 {
    let [n, _] = logits.dims();
    let p = burn::tensor::activation::softmax(logits.clone(), 1);
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    let h = (p * log_p).sum().neg().into_scalar::<f32>();
    f64::from(h) / n as f64
}

/// UTAEs move the attacked model's predictions towards uniform: on the same batch, the mean
/// entropy of its predicted distributions on UTAEs (gamma 0.3) is higher than on KL-PGD
/// examples (gamma 0), and higher still for gamma 1. (The issue also asked whether the arg-max
/// predictions spread over more classes; measured on this batch they do not: see
/// `docs/distillation.md`.) The attacked model is the bundled teacher standing in for a
/// trained student; its reference logits are its own clean ones. A slow test (4 minutes on
/// Mesa's software Vulkan): the UTAE step's ops are checked on every device by the golden and
/// backend-agreement tests of `ferd-distill`.
#[test]
fn uniform_targets_flatten_adversarial_predictions() {
    if let Some(why) = slow_test_skipped() {
        eprintln!("skipped: {why}");
        return;
    }
    let device = test_device();
    let model = teacher(&device);
    let data = test_set().balanced_subset(PER_CLASS);
    let rows: Vec<usize> = (0..data.len()).collect();
    let batch = data.batch(&rows, &device).unwrap();
    let frozen = Frozen::new(&model);
    let reference = frozen.logits(batch.images.clone());
    let entropy = |gamma: f32| {
        let config = UtaeConfig {
            steps: 10,
            gamma,
            start_std: 0.001,
        };
        let adv = uniform_target::perturb(
            &frozen,
            batch.images.clone(),
            batch.labels.clone(),
            reference.clone(),
            fmnist_threat(),
            &config,
            3,
        )
        .unwrap();
        mean_prediction_entropy(frozen.logits(adv))
    };
    let (kl_pgd, utae, strong) = (entropy(0.0), entropy(0.3), entropy(1.0));
    eprintln!(
        "mean prediction entropy: KL-PGD {kl_pgd:.4}, UTAE gamma 0.3 {utae:.4}, gamma 1 {strong:.4}"
    );
    assert!(kl_pgd < utae && utae < strong, "{kl_pgd} {utae} {strong}");
}

/// Test images per class of the UTAE test.
const PER_CLASS: usize = 50;

/// One synthesis round (500 generator steps on 32 images, the quickstart's other settings):
/// the teacher classifies at least 60% of the synthesized images as their sampled labels. About
/// a minute on flex; on other devices it runs with `FERD_SLOW_TESTS=1`.
#[test]
fn synthesized_images_carry_their_labels() {
    if let Some(why) = slow_test_skipped() {
        eprintln!("skipped: {why}");
        return;
    }
    let device = test_device();
    let teacher = teacher(&device);
    let mut small = FerdConfig::preset(Budget::FmnistQuick, FerdMethod::Ferd);
    small.batch_size = 32;
    small.synthesis.steps = 500;
    let student = student(8, 1, &device).valid();
    let uniform = vec![0.1; 10];
    let round = synthesize(
        &teacher,
        &student,
        &uniform,
        &small,
        &mut ferd_distill::draws::Seeded::new(5),
        0,
        &device,
        &mut |_, _| {},
    )
    .unwrap();
    let [n, ..] = round.images.dims();
    let predicted = teacher
        .forward(round.images.clone())
        .argmax(1)
        .reshape([n])
        .try_to_vec_as::<i64>()
        .unwrap();
    let agree = predicted
        .iter()
        .zip(&round.labels)
        .filter(|(p, y)| **p as usize == **y)
        .count() as f64
        / n as f64;
    eprintln!(
        "teacher agrees with {:.1}% of the sampled labels",
        100.0 * agree
    );
    assert!(agree >= MIN_AGREEMENT, "agreement {agree}");
    let pixels = round.images.try_to_vec_as::<f32>().unwrap();
    assert!(pixels.iter().all(|p| (0.0..=1.0).contains(p)));
}

/// Agreement required after one round (see the test above); chance is 10%. A round's trajectory
/// depends on its draws and on floating-point summation order, which differs between CPUs (flex
/// picks its SIMD kernels at run time) and between convolution kernels: over six seeds of the
/// run's draws on an AVX-512 machine (2026-12-06), 69%, 69%, 78%, 84%, 84% and 88% (mean 79%).
/// A broken class term leaves the images near chance.
const MIN_AGREEMENT: f64 = 0.6;

/// Every method preset runs two epochs end to end at the tiny budget, with the evaluation.
#[test]
fn every_method_runs_end_to_end() {
    let device = test_device();
    let teacher = teacher(&device);
    let test = test_set();
    for method in FerdMethod::ALL {
        let config = FerdConfig::preset(Budget::Tiny, method);
        let dir = run_dir(method.name());
        let options = RunOptions::new(&dir, device.clone());
        let out = distill(
            &teacher,
            student(2, 0, &device),
            &config,
            Some(&test),
            &options,
            &mut (),
        )
        .unwrap();
        assert_eq!(out.history.len(), 2, "{method}");
        let last = &out.history[1];
        assert_eq!(last.bank_size, 2 * config.batch_size, "{method}");
        assert!(
            last.student.is_some() && last.evaluation.is_some(),
            "{method}"
        );
        // Every UTAE example of the epoch is counted once, under one of the classes.
        let utae = &last.student.as_ref().unwrap().utae_predictions;
        assert_eq!(utae.len(), 10, "{method}");
        let bank = last.bank_size.min(config.batch_size) as u64;
        assert_eq!(
            utae.iter().sum::<u64>(),
            config.student.steps as u64 * bank,
            "{method}"
        );
        let p = &out.history[1].class_distribution;
        assert!(
            (p.iter().sum::<f64>() - 1.0).abs() < 1e-9,
            "{method}: {p:?}"
        );
        let uniform = p.iter().all(|&x| (x - 0.1).abs() < 1e-12);
        let reweights =
            config.reweighting.strategy != ferd::core::reweighting::ReweightStrategy::Uniform;
        assert_eq!(!uniform, reweights, "{method}: {p:?}");
        assert!(dir.join("student.bpk").is_file() && dir.join("metrics.jsonl").is_file());
        let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.lines().count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn weights<M: Module>(m: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(
                param
                    .val()
                    .without_autodiff()
                    .try_to_vec_as::<f32>()
                    .unwrap(),
            );
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

/// The metrics without wall-clock times.
fn without_times(history: &[ferd::distill::DistillEpoch]) -> Vec<serde_json::Value> {
    history
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

/// A run stopped after epoch 1 and resumed into a fresh student equals an uninterrupted run:
/// the same weights (`==`) and the same metrics. On the CPU only: GPU reductions need not be
/// deterministic.
#[test]
fn resumed_run_equals_uninterrupted_run() {
    let device = test_device();
    let cpu = matches!(test_device_spec(), DeviceSpec::Flex | DeviceSpec::NdArray);
    if !cpu {
        eprintln!("skipped: bit-for-bit resume is checked on the CPU");
        return;
    }
    let teacher = teacher(&device);
    let test = test_set();
    let mut config = FerdConfig::preset(Budget::Tiny, FerdMethod::Ferd);
    config.epochs = 3;
    let whole_dir = run_dir("whole");
    let whole = distill(
        &teacher,
        student(2, 4, &device),
        &config,
        Some(&test),
        &RunOptions::new(&whole_dir, device.clone()),
        &mut (),
    )
    .unwrap();

    let mut sliced = RunOptions::new(run_dir("sliced"), device.clone());
    sliced.stop_after = Some(1);
    let first = distill(
        &teacher,
        student(2, 4, &device),
        &config,
        Some(&test),
        &sliced,
        &mut (),
    )
    .unwrap();
    assert_eq!(first.history.len(), 1);
    sliced.stop_after = None;
    sliced.resume = true;
    // A student with other initial weights: everything must come from the checkpoint.
    let resumed = distill(
        &teacher,
        student(2, 99, &device),
        &config,
        Some(&test),
        &sliced,
        &mut (),
    )
    .unwrap();
    assert_eq!(weights(&resumed.student), weights(&whole.student));
    assert_eq!(
        without_times(&resumed.history),
        without_times(&whole.history)
    );
    let lines = std::fs::read_to_string(sliced.dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 3);

    // Another configuration is refused.
    let mut other = config.clone();
    other.student.lr = 0.01;
    assert!(
        distill(
            &teacher,
            student(2, 4, &device),
            &other,
            Some(&test),
            &sliced,
            &mut ()
        )
        .is_err()
    );
    for dir in [&whole_dir, &sliced.dir] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `distill` freezes the teacher itself: a teacher passed in training mode keeps its weights and
/// BatchNorm statistics (in training mode, the generator's differentiable images would select
/// BatchNorm's training path and move the running statistics towards synthetic data).
#[test]
fn distillation_leaves_the_teacher_untouched() {
    let device = test_device();
    let teacher = loaded_teacher(&device);
    let before = weights(&teacher);
    let config = FerdConfig::preset(Budget::Tiny, FerdMethod::Ferd);
    let dir = run_dir("untouched");
    distill(
        &teacher,
        student(2, 0, &device),
        &config,
        None,
        &RunOptions::new(&dir, device.clone()),
        &mut (),
    )
    .unwrap();
    assert_eq!(weights(&teacher), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Models and configuration that do not fit are refused before any work.
#[test]
fn mismatched_models_are_refused() {
    let device = test_device();
    let teacher = teacher(&device);
    let config = FerdConfig::preset(Budget::Tiny, FerdMethod::Ferd);
    let options = RunOptions::new(run_dir("mismatch"), device.clone());
    // A student for 3-channel 32x32 images.
    let wide = initialize(
        Architecture::RESNET18.build(3, 10, &device.clone().autodiff()),
        Init::PyTorch,
        0,
    );
    let err = distill(&teacher, wide, &config, None, &options, &mut ()).unwrap_err();
    assert!(err.to_string().contains("does not accept"), "{err}");
    // A student with 5 classes.
    let five = initialize(
        Architecture::SmallCnn { width: 2 }.build(1, 5, &device.clone().autodiff()),
        Init::PyTorch,
        0,
    );
    let err = distill(&teacher, five, &config, None, &options, &mut ()).unwrap_err();
    assert!(err.to_string().contains("classes"), "{err}");
    let mut bad = config.clone();
    bad.threat.eps = 0.0;
    assert!(
        distill(
            &teacher,
            student(2, 0, &device),
            &bad,
            None,
            &options,
            &mut ()
        )
        .is_err()
    );
    assert!(
        !options.dir.join("metrics.jsonl").exists(),
        "no work started"
    );
}

/// A distillation whose student diverges (learning rate 1e30) stops with `NonFinite`, naming
/// the epoch and the step or term that failed, and keeps the checkpoint of its last complete
/// epoch (the synthesis-only warm-up epoch here).
#[test]
fn a_diverging_distillation_stops_and_keeps_its_last_checkpoint() {
    let device = test_device();
    let teacher = teacher(&device);
    let mut config = FerdConfig::preset(Budget::Tiny, FerdMethod::Ferd);
    config.epochs = 4;
    config.student.lr = 1e30;
    let options = RunOptions::new(run_dir("diverging"), device.clone());
    let Err(err) = distill(
        &teacher,
        student(2, 4, &device),
        &config,
        None,
        &options,
        &mut (),
    ) else {
        panic!("the run does not diverge");
    };
    let message = err.to_string();
    eprintln!("{message}");
    assert!(
        matches!(err, ferd::distill::DistillError::NonFinite { .. }),
        "{message}"
    );
    assert!(
        message.contains("epoch ") && message.contains("is kept"),
        "{message}"
    );
    assert!(message.contains("step"), "{message}");
    let state = std::fs::read_to_string(options.dir.join("checkpoint/state.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let done = state["epochs_done"].as_u64().unwrap();
    assert!(
        done >= 1 && message.contains(&format!("epoch {done} ")),
        "checkpoint after {done} epochs; {message}"
    );
}
