//! FERD's computations against PyTorch (`tools/golden/ferd_fixtures.py`, written from the method
//! spec independently of ferd): one synthesis step's loss terms, the information-bottleneck
//! split, the gradients with respect to the latent and a generator weight, one UTAE step, and
//! the student loss with its gradient. The fixture's noise is replayed into ferd. Tolerance:
//! 1e-4 relative (to the value, or to a vector's largest entry).

use crate::common;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{assert_close, fixtures, generator, small_cnn};
use ferd_attacks::{Model, Objective, ascent_step};
use ferd_core::device::test_device;
use ferd_core::random::Replay;
use ferd_distill::FerdConfig;
use ferd_distill::config::StudentIkl;
use ferd_distill::fairness_aware::{noise_scale, non_robust, robust_mask};
use ferd_distill::presets::{Budget, FerdMethod};
use ferd_distill::student::student_loss;
use ferd_distill::synthesis::{Latent, step_loss};
use ferd_models::Classifier;
use serde_json::Value;

const RTOL: f64 = 1e-4;

fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("ferd_golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn tensor<const D: usize>(v: &Value, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(floats(v), shape), device)
}

fn labels(v: &Value, device: &Device) -> Tensor<1, Int> {
    let y: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    let n = y.len();
    Tensor::from_data(TensorData::new(y, [n]), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.without_autodiff().try_to_vec_as::<f32>().unwrap()
}

fn assert_scalar(name: &str, got: f32, want: &Value) {
    let want = want.as_f64().unwrap();
    let err = (f64::from(got) - want).abs() / want.abs().max(1e-12);
    assert!(
        err <= RTOL,
        "{name}: ferd {got} vs PyTorch {want} (relative {err:.2e})"
    );
}

/// Largest difference relative to the largest expected magnitude.
fn assert_vector(name: &str, got: &[f32], want: &[f32]) {
    assert_close(name, got, want, RTOL);
}

/// The id of the float parameter at `path` (e.g. `conv3.weight`).
fn param_id<M: Module>(module: &M, path: &str) -> ParamId {
    struct Find<'a> {
        path: Vec<String>,
        target: &'a str,
        found: Option<ParamId>,
    }
    impl ModuleVisitor for Find<'_> {
        fn enter_module(&mut self, name: &str, _container: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.path.join(".") == self.target {
                self.found = Some(param.id);
            }
        }
    }
    let mut find = Find {
        path: Vec::new(),
        target: path,
        found: None,
    };
    module.visit(&mut find);
    find.found.unwrap_or_else(|| panic!("no parameter {path}"))
}

/// The paper's configuration with the fixture's inner loop.
fn config(g: &Value) -> FerdConfig {
    let mut c = FerdConfig::preset(Budget::Tiny, FerdMethod::Ferd);
    c.fairness.inner_steps = g["config"]["inner_steps"].as_u64().unwrap() as usize;
    c.fairness.lr = g["config"]["inner_lr"].as_f64().unwrap();
    c.fairness.beta = g["config"]["beta"].as_f64().unwrap() as f32;
    c
}

#[test]
fn synthesis_step_matches_pytorch() {
    let g = golden();
    let s = &g["synthesis"];
    let device = test_device();
    let ad = device.clone().autodiff();
    let teacher = small_cnn(4, "ferd_teacher.safetensors", &device).valid();
    let student = small_cnn(2, "ferd_student.safetensors", &device).valid();
    let generator = generator(&ad);
    let latent = Latent {
        z: Param::from_tensor(tensor(&s["z"], [6, 16], &ad)),
    };
    let y = labels(&s["labels"], &ad);
    let config = config(&g);

    let x = generator.forward(latent.z.val());
    assert_vector("G(z)", &values(x.clone()), &floats(&s["images"]));
    let loss = step_loss(
        &teacher,
        &student,
        x.clone(),
        &y,
        &config,
        &mut Replay::new(floats(&s["noise"])),
    )
    .unwrap();
    let terms = loss.terms();
    for (name, got) in [
        ("bn", terms.bn),
        ("adv", terms.adv),
        ("oh", terms.oh),
        ("uni", terms.uni),
        ("total", terms.total),
    ] {
        assert_scalar(name, got as f32, &s[name]);
    }

    let mut grads = loss.total.backward();
    let grad_z = latent.z.val().grad(&grads).unwrap();
    assert_vector("dL_G/dz", &values(grad_z), &floats(&s["grad_z"]));
    let conv3 = param_id(&generator, "conv3.weight");
    let generator_grads = GradientsParams::from_module(&mut grads, &generator);
    let grad_conv3 = generator_grads.get::<4>(conv3).unwrap();
    assert_vector(
        "dL_G/d conv3.weight",
        &values(grad_conv3),
        &floats(&s["grad_conv3_weight"]),
    );
}

#[test]
fn information_bottleneck_split_matches_pytorch() {
    let g = golden();
    let s = &g["synthesis"];
    let device = test_device();
    let teacher = small_cnn(4, "ferd_teacher.safetensors", &device).valid();
    let x = tensor(&s["images"], [6, 1, 28, 28], &device);
    let y = labels(&s["labels"], &device);
    let config = config(&g);
    let features = teacher.features(x);

    let lambda = noise_scale(
        &teacher,
        &features,
        &y,
        &config.fairness,
        &mut Replay::new(floats(&s["noise"])),
    )
    .unwrap();
    assert_vector("lambda", &values(lambda.clone()), &floats(&s["lambda"]));
    let mask = values(robust_mask(&lambda, &features));
    assert_eq!(mask, floats(&s["mask"]), "robust mask");
    let robust = mask.iter().filter(|&&m| m == 1.0).count();
    assert!(
        robust > 0 && robust < mask.len(),
        "the fixture's mask is mixed"
    );

    let split = non_robust(
        &teacher,
        &features,
        &y,
        &config.fairness,
        &mut Replay::new(floats(&s["noise"])),
    )
    .unwrap();
    assert_vector(
        "non-robust logits",
        &values(split.logits),
        &floats(&s["non_robust_logits"]),
    );
}

#[test]
fn utae_step_matches_pytorch() {
    let g = golden();
    let u = &g["utae"];
    let device = test_device();
    let teacher = small_cnn(4, "ferd_teacher.safetensors", &device).valid();
    let student = small_cnn(2, "ferd_student.safetensors", &device).valid();
    let shape = [6, 1, 28, 28];
    let x = tensor(&u["x"], shape, &device);
    let y = labels(&g["labels"], &device);
    let teacher_logits = teacher.forward(x.clone());
    assert_vector(
        "teacher logits",
        &values(teacher_logits.clone()),
        &floats(&u["teacher_logits"]),
    );
    let start = x.clone() + tensor(&u["start_noise"], shape, &device).mul_scalar(0.001);
    let objective = Objective::UniformTarget {
        reference: teacher_logits,
        gamma: g["config"]["gamma"].as_f64().unwrap() as f32,
    };
    let model = |input: Tensor<4>| student.forward(input);
    let j = objective
        .per_sample(model.logits(start.clone()), y.clone())
        .unwrap();
    assert_vector("UTAE objective", &values(j), &floats(&u["objective"]));

    let (eps, alpha) = (0.1, 0.01);
    let stepped = values(ascent_step(&model, &start, &x, &y, &objective, alpha, eps).unwrap());
    let want = floats(&u["stepped"]);
    let grad = floats(&u["grad"]);
    // Where the gradient's sign is determined at float32 precision, the step is the same; where
    // it is exactly 0 (pixels a max-pool or ReLU cuts off), sign(0) = 0 leaves the pixel.
    let scale = grad.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut compared = 0;
    for ((a, b), g) in stepped.iter().zip(&want).zip(&grad) {
        if *g == 0.0 || g.abs() >= 1e-5 * scale {
            compared += 1;
            assert!(
                (a - b).abs() <= 1e-6,
                "stepped pixel {a} vs {b} (gradient {g})"
            );
        }
    }
    assert!(
        compared * 10 > want.len() * 9,
        "only {compared} pixels compared"
    );
}

#[test]
fn student_loss_and_gradient_match_pytorch() {
    let g = golden();
    let u = &g["utae"];
    let device = test_device();
    let ad = device.clone().autodiff();
    let shape = [6, 1, 28, 28];
    let x = tensor(&u["x"], shape, &ad);
    let x_adv = tensor(&u["stepped"], shape, &ad);
    let teacher_logits = tensor(&u["teacher_logits"], [6, 10], &ad);
    let y = labels(&g["labels"], &ad);
    for (name, ikl) in [
        (
            "teacher_softmax",
            StudentIkl::TeacherSoftmax { temperature: 100.0 },
        ),
        ("class_prior", StudentIkl::ClassPrior),
    ] {
        // A fresh student each time: train-mode passes move the BatchNorm running statistics.
        let student = small_cnn(2, "ferd_student.safetensors", &ad);
        let mut config = FerdConfig::paper().student;
        config.ikl = ikl;
        let loss = student_loss(
            student.forward(x.clone()),
            student.forward(x_adv.clone()),
            teacher_logits.clone(),
            y.clone(),
            &config,
        )
        .unwrap();
        let want = &g["student"][name];
        assert_scalar(
            name,
            loss.total.clone().without_autodiff().into_scalar::<f32>(),
            &want["loss"],
        );
        let fc2 = param_id(&student, "fc2.weight");
        let grads = GradientsParams::from_grads(loss.total.backward(), &student);
        // Burn stores linear weights [in, out]; PyTorch [out, in].
        let grad = grads.get::<2>(fc2).unwrap().transpose();
        assert_vector(
            &format!("{name}: dL_S/d fc2.weight"),
            &values(grad),
            &floats(&want["grad_fc2_weight"]),
        );
    }
}
