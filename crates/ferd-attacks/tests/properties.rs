//! Every attack returns images within `eps` of the clean ones (max-norm, +1e-6) and in
//! `[0, 1]`, deterministically for a seed; bad input is an error, not a panic. Runs on the
//! device of `FERD_TEST_DEVICE`.

use crate::common;

use burn::tensor::Tensor;
use common::{host, images, labels, linear, predict, uniform};
use ferd_attacks::{
    Apgd, ApgdLoss, ApgdTargeted, Attack, AttackError, AutoAttack, Fab, Frozen, Model, Pgd, Square,
    attack_by_name,
};
use ferd_core::device::test_device;
use ferd_models::init::{Init, initialize};
use ferd_models::small_cnn::SmallCnnConfig;

const EPS: f32 = 0.05;

/// Every attack, with few iterations so the suite stays fast.
fn attacks(eps: f32) -> Vec<Box<dyn Attack>> {
    let short = || -> Vec<Box<dyn Attack>> {
        vec![
            Box::new(Apgd::new(eps, ApgdLoss::CrossEntropy).with_steps(8)),
            Box::new(ApgdTargeted::new(eps).with_steps(8).with_target_classes(2)),
            Box::new(Fab::targeted(eps).with_target_classes(2)),
            Box::new(Square::new(eps).with_queries(30)),
        ]
    };
    let mut fab = Fab::new(eps).with_restarts(2);
    fab.steps = 6;
    let mut fab_t = Fab::targeted(eps).with_target_classes(2);
    fab_t.steps = 6;
    vec![
        Box::new(Pgd::fgsm(eps)),
        Box::new(Pgd::new(eps, eps / 4.0, 5).with_restarts(2)),
        Box::new(Pgd::cw_inf(eps, eps / 4.0, 5)),
        Box::new(Pgd::new(eps, eps / 3.0, 3).with_random_start(false)),
        Box::new(
            Apgd::new(eps, ApgdLoss::CrossEntropy)
                .with_steps(12)
                .with_restarts(2),
        ),
        Box::new(Apgd::new(eps, ApgdLoss::Dlr).with_steps(12).with_eot(2)),
        Box::new(ApgdTargeted::new(eps).with_steps(12).with_target_classes(3)),
        Box::new(fab),
        Box::new(fab_t),
        Box::new(Square::new(eps).with_queries(60)),
        Box::new(AutoAttack::custom(eps, short()).unwrap()),
    ]
}

fn check_ball(name: &str, x: &Tensor<4>, adv: &Tensor<4>, eps: f32) {
    assert_eq!(x.dims(), adv.dims(), "{name}: shape");
    for (a, b) in host(x.clone()).iter().zip(host(adv.clone())) {
        assert!((a - b).abs() <= eps + 1e-6, "{name}: |{b} - {a}| > {eps}");
        assert!((0.0..=1.0).contains(&b), "{name}: pixel {b} outside [0, 1]");
    }
}

/// Runs every attack with the model's own predictions as labels, so that every point is
/// attacked (attacks skip points that are misclassified to begin with).
fn check_all(model: &dyn Model, x: Tensor<4>) {
    let device = x.device();
    let y = labels(&predict(model, x.clone()), &device);
    for attack in attacks(EPS) {
        let name = attack.name();
        let adv = attack.perturb(model, x.clone(), y.clone(), 7).unwrap();
        check_ball(&name, &x, &adv, EPS);
        // PGD-type attacks return their last iterate; the others return the clean image where
        // they did not fool the model, as the references do.
        if ["fgsm", "pgd", "cw"].iter().any(|p| name.starts_with(p)) {
            let moved = host(x.clone())
                .iter()
                .zip(host(adv.clone()))
                .any(|(a, b)| a != &b);
            assert!(moved, "{name} did not move any pixel");
        }
        let again = attack.perturb(model, x.clone(), y.clone(), 7).unwrap();
        assert_eq!(
            host(adv),
            host(again),
            "{name}: same seed, different output"
        );
    }
}

#[test]
fn attacks_stay_in_the_ball_on_a_random_cnn() {
    let device = test_device();
    let model = initialize(
        SmallCnnConfig::new().with_width(2).init(&device),
        Init::PyTorch,
        1,
    );
    let frozen = Frozen::new(&model);
    // Pixels near 0 and 1 make the box constraint bind.
    let x = images([6, 1, 28, 28], 0.0, 1.0, 1, &device).powf_scalar(3.0);
    check_all(&frozen, x);
}

#[test]
fn attacks_stay_in_the_ball_on_a_random_linear_model() {
    let device = test_device();
    let model = linear(
        uniform(10 * 36, -1.0, 1.0, 2),
        uniform(10, -0.1, 0.1, 3),
        &device,
    );
    let x = images([5, 1, 6, 6], 0.0, 1.0, 4, &device);
    check_all(&model, x);
}

#[test]
fn bad_input_is_an_error() {
    let device = test_device();
    let model = linear(
        uniform(10 * 36, -1.0, 1.0, 2),
        uniform(10, -0.1, 0.1, 3),
        &device,
    );
    let x = images([2, 1, 6, 6], 0.0, 1.0, 4, &device);
    let y = labels(&[1, 2], &device);
    let is_param =
        |r: Result<Tensor<4>, AttackError>| matches!(r, Err(AttackError::InvalidParameter { .. }));
    let is_input = |r: Result<Tensor<4>, AttackError>| matches!(r, Err(AttackError::Input { .. }));
    for eps in [0.0, -0.1, 1.5, f32::NAN] {
        assert!(
            is_param(Pgd::fgsm(eps).perturb(&model, x.clone(), y.clone(), 0)),
            "eps {eps}"
        );
    }
    assert!(is_param(Pgd::new(0.1, 0.0, 5).perturb(
        &model,
        x.clone(),
        y.clone(),
        0
    )));
    assert!(is_param(
        Apgd::new(0.1, ApgdLoss::Dlr)
            .with_steps(0)
            .perturb(&model, x.clone(), y.clone(), 0)
    ));
    assert!(is_param(
        ApgdTargeted::new(0.1)
            .with_target_classes(10)
            .perturb(&model, x.clone(), y.clone(), 0)
    ));
    assert!(is_input(Pgd::fgsm(0.1).perturb(
        &model,
        x.clone(),
        labels(&[1], &device),
        0
    )));
    assert!(is_input(Pgd::fgsm(0.1).perturb(
        &model,
        x.clone(),
        labels(&[1, 10], &device),
        0
    )));
    assert!(is_input(Pgd::fgsm(0.1).perturb(
        &model,
        x.clone().mul_scalar(255.0),
        y.clone(),
        0
    )));
    assert!(attack_by_name("pgd-0", 0.1).is_err());
    assert!(attack_by_name("deepfool", 0.1).is_err());
    assert_eq!(attack_by_name("PGD-20", 0.1).unwrap().name(), "pgd-20");
    assert!(AutoAttack::custom(0.1, vec![Box::new(Pgd::fgsm(0.2))]).is_err());
}

#[test]
fn checks_flag_probabilities_and_randomness() {
    use burn::tensor::activation::softmax;
    use ferd_attacks::checks::{probability_warning, randomness_warning};
    use std::cell::Cell;

    let device = test_device();
    let x = images([4, 1, 6, 6], 0.0, 1.0, 5, &device);
    let logits = linear(
        uniform(10 * 36, -1.0, 1.0, 2),
        uniform(10, -0.1, 0.1, 3),
        &device,
    );
    assert!(probability_warning(&logits, &x).is_none());
    assert!(randomness_warning(&logits, &x).is_none());
    let probabilities = |x: Tensor<4>| softmax(logits(x), 1);
    assert!(probability_warning(&probabilities, &x).is_some());
    // A model whose output drifts from call to call.
    let calls = Cell::new(0.0f32);
    let randomized = |x: Tensor<4>| {
        calls.set(calls.get() + 1.0);
        let shift = Tensor::<2>::ones([4, 10], &test_device()).mul_scalar(0.1 * calls.get());
        logits(x) + shift
    };
    assert!(randomness_warning(&randomized, &x).is_some());
}
