//! `evaluate` over a dataset: clean and robust figures per class agree with predictions counted
//! by hand, composite attacks report their stages, and the report round-trips through JSON and
//! prints with class names.

use crate::common;

use std::path::Path;

use ferd_attacks::{
    Apgd, ApgdLoss, ApgdTargeted, Attack, AutoAttack, EvalConfig, EvalEvent, EvaluationReport,
    Frozen, PassStarted, Pgd, Square, evaluate_observed,
};
use ferd_core::device::test_device;
use ferd_data::{DatasetName, Split};
use ferd_models::small_cnn::SmallCnnConfig;
use ferd_models::weights::load_pytorch;

/// The small CNN of width 8 with the weights PyTorch saved for the golden tests.
fn fixture_model(device: &burn::tensor::Device) -> ferd_models::small_cnn::SmallCnn {
    let mut model = SmallCnnConfig::new().with_width(8).init(device);
    let weights =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small_cnn_w8.safetensors");
    load_pytorch(&mut model, &weights).unwrap();
    model
}

/// `per_class` Fashion-MNIST test images of each class.
fn test_images(per_class: usize) -> ferd_data::ImageDataset {
    ferd_data::load(DatasetName::FashionMnist, Split::Test, None)
        .unwrap()
        .balanced_subset(per_class)
}

#[test]
fn report_matches_hand_counts_and_round_trips() {
    let device = test_device();
    let model = fixture_model(&device);
    let model = Frozen::new(&model);
    let data = test_images(6);
    let eps = 0.1;
    // Attacks as values of different types, passed by reference.
    let fgsm = Pgd::fgsm(eps);
    let pgd = Pgd::new(eps, eps / 4.0, 5);
    let composite = AutoAttack::custom(
        eps,
        vec![
            Box::new(Apgd::new(eps, ApgdLoss::CrossEntropy).with_steps(10)),
            Box::new(Square::new(eps).with_queries(20)),
        ],
    )
    .unwrap();
    let config = EvalConfig {
        batch_size: 25,
        seed: 3,
        state: None,
    };
    let mut events = Vec::new();
    let report = evaluate_observed(
        &model,
        &data,
        &[&fgsm, &pgd, &composite],
        &device,
        &config,
        &mut |e: &EvalEvent| events.push(e.clone()),
    )
    .unwrap();

    assert_eq!(report.samples, 60);
    assert_eq!(report.attacks.len(), 3);
    // Clean figures by hand.
    let all: Vec<usize> = (0..data.len()).collect();
    let batch = data.batch(&all, &device).unwrap();
    let predictions = common::predict(&model, batch.images.clone());
    for class in 0..10 {
        let hits = (0..60)
            .filter(|&i| data.labels()[i] == class && predictions[i] == class)
            .count();
        assert_eq!(
            report.clean.per_class[class],
            Some(hits as f64 / 6.0),
            "class {class}"
        );
    }
    // FGSM by hand, with the seed evaluate gives each batch irrelevant (FGSM is deterministic).
    let adv = Pgd::fgsm(eps)
        .perturb(&model, batch.images.clone(), batch.labels.clone(), 0)
        .unwrap();
    let under = common::predict(&model, adv);
    let robust = (0..60)
        .filter(|&i| predictions[i] == data.labels()[i] && under[i] == data.labels()[i])
        .count();
    assert_eq!(report.attacks[0].robust.overall, robust as f64 / 60.0);
    for attack in &report.attacks {
        assert!(
            attack.robust.overall <= report.clean.overall,
            "{}",
            attack.name
        );
        assert!(attack.max_perturbation <= eps + 1e-6, "{}", attack.name);
    }
    let stages = &report.attacks[2].stages;
    assert_eq!(stages.len(), 2);
    assert!(stages[1].robust_accuracy <= stages[0].robust_accuracy);
    assert_eq!(stages[1].robust_accuracy, report.attacks[2].robust.overall);

    // serde_json's default float parser may miss the last bit: compare with a tolerance.
    let back: EvaluationReport = serde_json::from_str(&report.to_json()).unwrap();
    assert_close(
        &serde_json::to_value(&back).unwrap(),
        &serde_json::to_value(&report).unwrap(),
    );
    check_events(&events, &report, &predictions, data.labels());
}

/// The events of the evaluation above (60 images in batches of 25, 25 and 10) tell the same
/// story as its report: every batch of the clean pass and of each attack in order, the robust
/// accuracy so far after each batch, and the composite attack's components as they start on
/// each batch, each on the points still robust (the first on the clean-correct ones).
fn check_events(
    events: &[EvalEvent],
    report: &EvaluationReport,
    clean: &[usize],
    labels: &[usize],
) {
    let mut events = events.iter();
    let names: Vec<String> = report.attacks.iter().map(|a| a.name.clone()).collect();
    assert_eq!(
        events.next(),
        Some(&EvalEvent::Started {
            images: 60,
            batches: 3,
            attacks: names.clone()
        })
    );
    for done in [25, 50, 60] {
        assert_eq!(
            events.next(),
            Some(&EvalEvent::CleanBatch { done, images: 60 })
        );
    }
    let correct_in = |rows: std::ops::Range<usize>| rows.filter(|&i| clean[i] == labels[i]).count();
    for (a, attack) in report.attacks.iter().enumerate() {
        assert_eq!(
            events.next(),
            Some(&EvalEvent::AttackStarted {
                attack: a,
                name: names[a].clone(),
                done: 0,
                images: 60
            })
        );
        let mut second_stage_points = 0;
        for (batch, rows) in [0..25, 25..50, 50..60].into_iter().enumerate() {
            for (stage, component) in attack.stages.iter().enumerate() {
                let Some(EvalEvent::Stage {
                    attack: ea,
                    batch: eb,
                    batches: 3,
                    started,
                }) = events.next()
                else {
                    panic!("a stage event expected");
                };
                assert_eq!(
                    (*ea, *eb, started.stage, started.stages),
                    (a, batch, stage, 2)
                );
                assert_eq!(started.name, component.name);
                // Each component makes one pass (one restart), on the points the stage gets.
                assert_eq!(
                    events.next(),
                    Some(&EvalEvent::Pass {
                        attack: a,
                        batch,
                        batches: 3,
                        started: PassStarted {
                            pass: 0,
                            passes: 1,
                            points: started.points
                        }
                    })
                );
                if stage == 0 {
                    assert_eq!(started.points, correct_in(rows.clone()));
                } else {
                    second_stage_points += started.points;
                }
            }
            let Some(EvalEvent::Batch {
                attack: ea,
                done,
                images: 60,
                robust_accuracy,
            }) = events.next()
            else {
                panic!("a batch event expected");
            };
            assert_eq!((*ea, *done), (a, rows.end));
            if rows.end == 60 {
                assert_eq!(*robust_accuracy, attack.robust.overall);
            }
        }
        if let Some(first) = attack.stages.first() {
            let after_first = (first.robust_accuracy * 60.0).round() as usize;
            assert_eq!(second_stage_points, after_first);
        }
        assert_eq!(
            events.next(),
            Some(&EvalEvent::AttackEnded {
                attack: a,
                name: names[a].clone(),
                robust_accuracy: attack.robust.overall,
                seconds: attack.seconds
            })
        );
    }
    assert_eq!(events.next(), None);
}

/// Two JSON trees equal up to a relative 1e-12 on numbers.
fn assert_close(a: &serde_json::Value, b: &serde_json::Value) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} vs {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).for_each(|(x, y)| assert_close(x, y));
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.len(), y.len());
            for (k, v) in x {
                assert_close(v, &y[k]);
            }
        }
        _ => assert_eq!(a, b),
    }
}

/// Targeted attacks make one pass per target class and restart, in order, each on the points
/// no earlier pass broke: the first on the clean-correct points.
#[test]
fn targeted_attacks_report_every_pass() {
    let device = test_device();
    let model = fixture_model(&device);
    let model = Frozen::new(&model);
    let data = test_images(2);
    let all: Vec<usize> = (0..data.len()).collect();
    let batch = data.batch(&all, &device).unwrap();
    let correct = common::predict(&model, batch.images.clone())
        .iter()
        .zip(data.labels())
        .filter(|(p, y)| p == y)
        .count();
    let apgd_t = ApgdTargeted {
        steps: 5,
        target_classes: 3,
        restarts: 2,
        ..ApgdTargeted::new(0.1)
    };
    let mut passes = Vec::new();
    apgd_t
        .perturb_observed(
            &model,
            batch.images.clone(),
            batch.labels.clone(),
            0,
            &mut |p: &PassStarted| passes.push(p.clone()),
        )
        .unwrap();
    assert_eq!(passes.len(), 6);
    for (k, p) in passes.iter().enumerate() {
        assert_eq!((p.pass, p.passes), (k, 6));
    }
    assert_eq!(passes[0].points, correct);
    assert!(passes.windows(2).all(|w| w[1].points <= w[0].points));
}
