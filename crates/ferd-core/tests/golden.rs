//! Golden tests: every loss (value and input gradients), reweighting rule and class-wise metric
//! against PyTorch-computed fixtures (`tools/golden/core_fixtures.py`), on the device chosen by
//! `FERD_TEST_DEVICE`. Tolerance: relative error 1e-5 (with an absolute floor of 1e-7 for
//! values near zero).

use burn::tensor::{Device, Int, Tensor, TensorData};
use ferd_core::device::test_device;
use ferd_core::losses::{self, IklWeights, Reduction};
use ferd_core::metrics::ClassWiseAccuracy;
use ferd_core::reweighting::ReweightStrategy;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ints(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn assert_close(what: &str, got: &[f64], expected: &[f64]) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let tol = 1e-5 * e.abs().max(1e-2);
        assert!(
            (g - e).abs() <= tol,
            "{what}[{i}]: got {g}, expected {e} (|diff| {})",
            (g - e).abs()
        );
    }
}

fn read(t: Tensor<1>) -> Vec<f64> {
    t.try_to_vec_as::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

fn read2(t: Tensor<2>) -> Vec<f64> {
    t.try_to_vec_as::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

struct Inputs {
    device: Device,
    batch: usize,
    classes: usize,
    data: Value,
}

impl Inputs {
    fn logits(&self, key: &str) -> Tensor<2> {
        let values = floats(&self.data[key]);
        Tensor::from_data(
            TensorData::new(values, [self.batch, self.classes]),
            &self.device,
        )
        .require_grad()
    }

    fn labels(&self, key: &str) -> Tensor<1, Int> {
        let values: Vec<i64> = ints(&self.data[key])
            .into_iter()
            .map(|v| v as i64)
            .collect();
        Tensor::from_data(TensorData::new(values, [self.batch]), &self.device)
    }

    fn plain(&self, key: &str) -> Tensor<2> {
        let values = floats(&self.data[key]);
        Tensor::from_data(
            TensorData::new(values, [self.batch, self.classes]),
            &self.device,
        )
    }

    /// Compares a loss of one input (the student logits) with its fixture.
    fn check1(&self, case: &str, loss: impl Fn(Tensor<2>) -> Tensor<1>) {
        let expected = &self.data["cases"][case];
        let z = self.logits("student");
        let value = loss(z.clone());
        assert_close(case, &read(value.clone()), &f64s(&expected["value"]));
        let grads = value.sum().backward();
        assert_close(
            &format!("{case} grad"),
            &read2(z.grad(&grads).unwrap()),
            &f64s(&expected["grads"][0]),
        );
    }

    /// Compares a loss of two inputs (given in the fixture's order) with its fixture.
    fn check2(
        &self,
        case: &str,
        order: [&str; 2],
        loss: impl Fn(Tensor<2>, Tensor<2>) -> Tensor<1>,
    ) {
        let expected = &self.data["cases"][case];
        let (a, b) = (self.logits(order[0]), self.logits(order[1]));
        let value = loss(a.clone(), b.clone());
        assert_close(case, &read(value.clone()), &f64s(&expected["value"]));
        let grads = value.sum().backward();
        for (i, input) in [a, b].iter().enumerate() {
            let got = input
                .grad(&grads)
                .map(read2)
                .unwrap_or_else(|| vec![0.0; self.batch * self.classes]);
            assert_close(
                &format!("{case} grad {i}"),
                &got,
                &f64s(&expected["grads"][i]),
            );
        }
    }
}

fn inputs() -> Inputs {
    let data = fixture("losses.json");
    Inputs {
        device: test_device().autodiff(),
        batch: data["batch"].as_u64().unwrap() as usize,
        classes: data["classes"].as_u64().unwrap() as usize,
        data,
    }
}

#[test]
fn cross_entropies_match_pytorch() {
    let x = inputs();
    x.check1("cross_entropy_per_sample", |z| {
        losses::cross_entropy_per_sample(z, x.labels("labels")).unwrap()
    });
    x.check1("cross_entropy", |z| {
        losses::cross_entropy(z, x.labels("labels")).unwrap()
    });
    x.check1("soft_cross_entropy", |z| {
        losses::soft_cross_entropy(z, x.plain("soft_targets")).unwrap()
    });
}

#[test]
fn kl_divergences_match_pytorch() {
    let x = inputs();
    for (case, reduction) in [
        ("kl_sum", Reduction::Sum),
        ("kl_batch_mean", Reduction::BatchMean),
        ("kl_element_mean", Reduction::ElementMean),
    ] {
        x.check2(case, ["teacher", "student"], |p, q| {
            losses::kl_divergence(p, q, reduction).unwrap()
        });
    }
    x.check2("kl_per_sample", ["teacher", "student"], |p, q| {
        losses::kl_divergence_per_sample(p, q).unwrap()
    });
    x.check1("kl_to_uniform_per_sample", |z| {
        losses::kl_to_uniform_per_sample(z).unwrap()
    });
    x.check1("kl_to_uniform", |z| losses::kl_to_uniform(z).unwrap());
}

#[test]
fn ikl_matches_pytorch_for_every_weighting() {
    let x = inputs();
    let order = ["student", "teacher"];
    x.check2("ikl_teacher_softmax", order, |o, t| {
        losses::ikl(o, t, &IklWeights::TeacherSoftmax { temperature: 100.0 }).unwrap()
    });
    x.check2("ikl_class_prior", order, |o, t| {
        losses::ikl(
            o,
            t,
            &IklWeights::class_prior(x.labels("labels"), x.classes),
        )
        .unwrap()
    });
    x.check2("ikl_outer_soft", order, |o, t| {
        losses::ikl(o, t, &IklWeights::Outer(x.plain("soft_targets"))).unwrap()
    });
    let full = floats(&x.data["full_weights"]);
    let full: Tensor<3> = Tensor::from_data(
        TensorData::new(full, [x.batch, x.classes, x.classes]),
        &x.device,
    );
    x.check2("ikl_full", order, |o, t| {
        losses::ikl(o, t, &IklWeights::Full(full.clone())).unwrap()
    });
}

#[test]
fn margins_and_dlr_match_pytorch() {
    let x = inputs();
    for kappa in [50.0, 0.5] {
        x.check1(&format!("cw_margin_kappa_{kappa:?}"), |z| {
            losses::cw_margin(z, x.labels("labels"), kappa).unwrap()
        });
    }
    x.check1("margin", |z| losses::margin(z, x.labels("labels")).unwrap());
    x.check1("dlr", |z| losses::dlr(z, x.labels("labels")).unwrap());
    x.check1("dlr_targeted", |z| {
        losses::dlr_targeted(z, x.labels("labels"), x.labels("targets")).unwrap()
    });
}

#[test]
fn reweighting_matches_pytorch() {
    let data = fixture("reweighting.json");
    let fragility = f64s(&data["fragility"]);
    for tau in [1.0, 0.5, 3.0] {
        let p = ReweightStrategy::Softmax { temperature: tau }
            .class_distribution(&fragility)
            .unwrap();
        assert_close(
            &format!("softmax {tau}"),
            &p,
            &f64s(&data[format!("softmax_{tau:?}")]),
        );
    }
    let p = ReweightStrategy::official_minmax()
        .class_distribution(&fragility)
        .unwrap();
    assert_close("minmax", &p, &f64s(&data["minmax"]));
}

#[test]
fn class_wise_metrics_match_pytorch() {
    let data = fixture("metrics.json");
    for (name, case) in data
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_object())
    {
        let classes = case["classes"].as_u64().unwrap() as usize;
        let r = ClassWiseAccuracy::from_predictions(
            &ints(&case["predictions"]),
            &ints(&case["labels"]),
            classes,
        )
        .unwrap();
        let expected_per_class: Vec<Option<f64>> = case["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .map(Value::as_f64)
            .collect();
        assert_eq!(
            r.per_class.iter().map(Option::is_some).collect::<Vec<_>>(),
            expected_per_class
                .iter()
                .map(Option::is_some)
                .collect::<Vec<_>>(),
            "{name}: empty classes"
        );
        let got: Vec<f64> = r.per_class.iter().flatten().copied().collect();
        let want: Vec<f64> = expected_per_class.iter().flatten().copied().collect();
        assert_close(&format!("{name} per-class"), &got, &want);
        assert_close(
            &format!("{name} scalars"),
            &[
                r.overall,
                r.mean_class.unwrap(),
                r.worst_10_percent.unwrap(),
                r.nsd.unwrap(),
            ],
            &[
                case["overall"].as_f64().unwrap(),
                case["mean_class"].as_f64().unwrap(),
                case["worst_10_percent"].as_f64().unwrap(),
                case["nsd"].as_f64().unwrap(),
            ],
        );
        let (worst, worst_acc) = r.worst_class.unwrap();
        assert_eq!(
            worst,
            case["worst_class"][0].as_u64().unwrap() as usize,
            "{name}: worst class"
        );
        assert_close(
            &format!("{name} worst"),
            &[worst_acc],
            &[case["worst_class"][1].as_f64().unwrap()],
        );
        let confusion: Vec<Vec<u64>> = serde_json::from_value(case["confusion"].clone()).unwrap();
        assert_eq!(
            r.confusion.counts(),
            confusion.as_slice(),
            "{name}: confusion"
        );
    }
}
