//! A model whose logits are NaN or infinite gets an error from every attack and from
//! `evaluate`, never a silently scored point: NaN has no arg-max, and counting such a point as
//! classified (or as robust) would hide a broken model behind a plausible number.

use crate::common;

use burn::tensor::Tensor;
use common::{images, labels, linear, uniform};
use ferd_attacks::{AttackError, EvalConfig, attack_by_name, evaluate};
use ferd_core::device::test_device;
use ferd_data::ImageDataset;

const EPS: f32 = 0.1;
const SIDE: usize = 6;
const CLASSES: usize = 3;
const BATCH: usize = 4;
const ATTACKS: [&str; 9] = [
    "fgsm",
    "pgd-5",
    "cw-5",
    "apgd-ce",
    "apgd-t",
    "fab",
    "fab-t",
    "square",
    "autoattack",
];

fn is_non_finite_error(err: &AttackError) -> bool {
    matches!(err, AttackError::NonFinite { detail, .. } if detail.contains("NaN or infinite"))
}

/// A linear model whose logits for the images of the given rows are replaced by `value`.
fn broken_on_rows(rows: &'static [usize], value: f32) -> impl Fn(Tensor<4>) -> Tensor<2> {
    let device = test_device();
    let n = SIDE * SIDE;
    let model = linear(
        uniform(CLASSES * n, -1.0, 1.0, 1),
        vec![0.0; CLASSES],
        &device,
    );
    move |x: Tensor<4>| {
        let [batch, ..] = x.dims();
        let out = model(x);
        let mask: Vec<f32> = (0..batch * CLASSES)
            .map(|k| {
                if rows.contains(&(k / CLASSES)) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::<2>::from_data(
            burn::tensor::TensorData::new(mask, [batch, CLASSES]),
            &out.device(),
        )
        .equal_elem(1.0);
        out.mask_fill(mask, value)
    }
}

#[test]
fn every_attack_refuses_nan_and_infinite_clean_logits() {
    let device = test_device();
    for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let model = broken_on_rows(&[2], value);
        for name in ATTACKS {
            let attack = attack_by_name(name, EPS).unwrap();
            let x = images([BATCH, 1, SIDE, SIDE], 0.0, 1.0, 2, &device);
            let y = labels(&[0, 1, 2, 0], &device);
            let err = attack
                .perturb(&model, x, y, 0)
                .expect_err(&format!("{name} accepted {value} logits"));
            assert!(is_non_finite_error(&err), "{name}: {err}");
            assert!(
                err.to_string().contains("1 of 4 images") && err.to_string().contains("image 2"),
                "{name}: {err}"
            );
        }
    }
}

/// Logits that are finite on the clean images and NaN as soon as an image moves: an attack
/// then produces points the model cannot score, and `evaluate` must say so rather than count
/// them as robust.
#[test]
fn evaluate_refuses_nan_logits_on_adversarial_points() {
    let device = test_device();
    let n = SIDE * SIDE;
    let bytes: Vec<u8> = uniform(BATCH * n, 50.0, 200.0, 3)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let classes = (0..CLASSES).map(|c| c.to_string()).collect();
    let dataset =
        ImageDataset::new("faults", bytes, vec![0, 1, 2, 0], [1, SIDE, SIDE], classes).unwrap();
    let rows: Vec<usize> = (0..BATCH).collect();
    let reference = dataset.batch(&rows, &device).unwrap().images;
    let base = linear(
        uniform(CLASSES * n, -1.0, 1.0, 4),
        vec![0.0; CLASSES],
        &device,
    );
    let model = move |x: Tensor<4>| {
        let [batch, ..] = x.dims();
        // NaN once the image is more than 1e-3 (in L1) from the clean one (`mask_fill`, not
        // an undefined operation such as the log of a negative number, whose result shaders
        // need not define).
        let d = (x.clone() - reference.clone())
            .abs()
            .reshape([batch, n])
            .sum_dim(1);
        let moved = d.greater_elem(1e-3).expand([batch, CLASSES]);
        base(x).mask_fill(moved, f32::NAN)
    };
    let config = EvalConfig {
        batch_size: BATCH,
        seed: 0,
        state: None,
    };
    let pgd = attack_by_name("pgd-5", EPS).unwrap();
    let err = evaluate(&model, &dataset, &[pgd.as_ref()], &device, &config).unwrap_err();
    assert!(is_non_finite_error(&err), "{err}");
}
