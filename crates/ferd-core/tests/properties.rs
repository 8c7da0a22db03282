//! Property tests of the losses on random inputs (seeded), on the `FERD_TEST_DEVICE` device.

use burn::tensor::{Int, Tensor, TensorData};
use ferd_core::CoreError;
use ferd_core::device::test_device;
use ferd_core::losses::{self, IklWeights, Reduction};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TRIALS: u64 = 25;

fn random_logits(rng: &mut StdRng, batch: usize, classes: usize, scale: f32) -> Tensor<2> {
    let values: Vec<f32> = (0..batch * classes)
        .map(|_| scale * rng.random_range(-1.0..1.0))
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, classes]), &test_device())
}

fn random_labels(rng: &mut StdRng, batch: usize, classes: usize) -> Tensor<1, Int> {
    let values: Vec<i64> = (0..batch)
        .map(|_| rng.random_range(0..classes as i64))
        .collect();
    Tensor::from_data(TensorData::new(values, [batch]), &test_device())
}

fn values(t: Tensor<1>) -> Vec<f32> {
    t.try_to_vec_as::<f32>().unwrap()
}

#[test]
fn kl_is_nonnegative_and_zero_on_itself() {
    for seed in 0..TRIALS {
        let mut rng = StdRng::seed_from_u64(seed);
        let (p, q) = (
            random_logits(&mut rng, 6, 7, 8.0),
            random_logits(&mut rng, 6, 7, 8.0),
        );
        assert!(
            values(losses::kl_divergence_per_sample(p.clone(), q).unwrap())
                .iter()
                .all(|&v| v >= -1e-6)
        );
        let own = losses::kl_divergence(p.clone(), p.clone(), Reduction::Sum).unwrap();
        assert!(values(own)[0].abs() < 1e-5);
        // Shifting logits does not change the distribution.
        let shifted =
            losses::kl_divergence(p.clone(), p.add_scalar(3.0), Reduction::BatchMean).unwrap();
        assert!(values(shifted)[0].abs() < 1e-5);
    }
}

#[test]
fn kl_to_uniform_is_zero_only_for_uniform_predictions() {
    let flat = Tensor::<2>::full([4, 10], 2.5, &test_device());
    assert!(values(losses::kl_to_uniform(flat).unwrap())[0].abs() < 1e-6);
    for seed in 0..TRIALS {
        let mut rng = StdRng::seed_from_u64(seed);
        let z = random_logits(&mut rng, 5, 10, 4.0);
        let kl = values(losses::kl_to_uniform_per_sample(z).unwrap());
        assert!(kl.iter().all(|&v| v > 0.0), "{kl:?}");
    }
}

#[test]
fn rank_one_ikl_equals_its_full_form() {
    for seed in 0..TRIALS {
        let mut rng = StdRng::seed_from_u64(seed);
        let (o, t) = (
            random_logits(&mut rng, 5, 6, 5.0),
            random_logits(&mut rng, 5, 6, 5.0),
        );
        let w = burn::tensor::activation::softmax(random_logits(&mut rng, 5, 6, 2.0), 1);
        let full = w.clone().reshape([5, 6, 1]) * w.clone().reshape([5, 1, 6]);
        let a = values(losses::ikl(o.clone(), t.clone(), &IklWeights::Outer(w)).unwrap())[0];
        let b = values(losses::ikl(o, t, &IklWeights::Full(full)).unwrap())[0];
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn ikl_with_class_prior_is_soft_cross_entropy() {
    let mut rng = StdRng::seed_from_u64(3);
    let (o, t) = (
        random_logits(&mut rng, 8, 10, 5.0),
        random_logits(&mut rng, 8, 10, 5.0),
    );
    let y = random_labels(&mut rng, 8, 10);
    let ikl =
        values(losses::ikl(o.clone(), t.clone(), &IklWeights::class_prior(y, 10)).unwrap())[0];
    let soft = burn::tensor::activation::softmax(t, 1);
    let ce = values(losses::soft_cross_entropy(o, soft).unwrap())[0];
    assert!((ikl - ce).abs() < 1e-5, "{ikl} vs {ce}");
}

#[test]
fn margins_agree_with_misclassification() {
    for seed in 0..TRIALS {
        let mut rng = StdRng::seed_from_u64(seed);
        let z = random_logits(&mut rng, 16, 10, 3.0);
        let y = random_labels(&mut rng, 16, 10);
        let wrong: Vec<bool> = {
            let pred = z
                .clone()
                .argmax(1)
                .reshape([16])
                .try_to_vec_as::<i64>()
                .unwrap();
            let truth = y.clone().try_to_vec_as::<i64>().unwrap();
            pred.iter().zip(&truth).map(|(p, t)| p != t).collect()
        };
        let cw = values(losses::cw_margin(z.clone(), y.clone(), 50.0).unwrap());
        let m = values(losses::margin(z.clone(), y.clone()).unwrap());
        let dlr = values(losses::dlr(z, y).unwrap());
        for i in 0..16 {
            assert_eq!(cw[i] > 0.0, wrong[i], "cw {i}");
            assert!((cw[i] + m[i]).abs() < 1e-5, "cw = -margin below kappa");
            assert_eq!(dlr[i] > 0.0, wrong[i], "dlr {i}");
        }
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let device = test_device();
    let z = Tensor::<2>::zeros([4, 10], &device);
    let y3 = Tensor::<1, Int>::zeros([3], &device);
    let shape_err = |r: Result<Tensor<1>, CoreError>| matches!(r, Err(CoreError::Shape { .. }));
    assert!(shape_err(losses::cross_entropy(z.clone(), y3.clone())));
    assert!(shape_err(losses::kl_divergence(
        z.clone(),
        Tensor::zeros([4, 9], &device),
        Reduction::Sum
    )));
    assert!(shape_err(losses::dlr(
        Tensor::zeros([4, 2], &device),
        Tensor::zeros([4], &device)
    )));
    assert!(shape_err(losses::dlr_targeted(
        z.clone(),
        Tensor::zeros([4], &device),
        y3
    )));
    assert!(shape_err(losses::kl_to_uniform(Tensor::zeros(
        [4, 1],
        &device
    ))));
    let bad_w = IklWeights::Outer(Tensor::zeros([4, 9], &device));
    assert!(shape_err(losses::ikl(z.clone(), z.clone(), &bad_w)));
    let cold = IklWeights::TeacherSoftmax { temperature: 0.0 };
    assert!(matches!(
        losses::ikl(z.clone(), z.clone(), &cold),
        Err(CoreError::InvalidParameter { .. })
    ));
    assert!(matches!(
        losses::cw_margin(z, Tensor::zeros([4], &device), -1.0),
        Err(CoreError::InvalidParameter { .. })
    ));
}
