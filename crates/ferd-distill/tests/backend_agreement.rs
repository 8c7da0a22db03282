//! The synthesis step on the test device against flex, term by term: the gradient of each loss
//! term with respect to the images, the generator's backward, and each of its layers alone.
//! flex matches PyTorch (`golden.rs`), so a backend that disagrees here has a faulty kernel,
//! and the failing term says where to look. Tolerance: 1e-4 relative to the largest entry. On flex itself there is
//! nothing to compare and the tests return at once.

use crate::common;

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::{generator, small_cnn};
use ferd_core::DeviceSpec;
use ferd_core::device::{test_device, test_device_spec};
use ferd_core::random::Replay;
use ferd_distill::FerdConfig;
use ferd_distill::config::LossWeights;
use ferd_distill::presets::{Budget, FerdMethod};
use ferd_distill::synthesis::step_loss;
use ferd_models::layers::upsample_nearest;

const RTOL: f64 = 1e-4;
const BATCH: usize = 6;

/// Seeded values from the host, the same on every device.
fn host_values(n: usize, seed: u64) -> Vec<f32> {
    use rand::Rng;
    let mut rng = ferd_core::random::rng(seed);
    (0..n).map(|_| rng.random::<f32>()).collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.without_autodiff().try_to_vec_as::<f32>().unwrap()
}

fn assert_close(name: &str, got: &[f32], want: &[f32]) {
    common::assert_close(name, got, want, RTOL);
}

/// The gradient of the synthesis loss with only `weights` on, with respect to the images.
fn image_gradient(device: &Device, weights: LossWeights) -> Vec<f32> {
    let ad = device.clone().autodiff();
    let teacher = small_cnn(4, "ferd_teacher.safetensors", device).valid();
    let student = small_cnn(2, "ferd_student.safetensors", device).valid();
    let x = Tensor::<4>::from_data(
        TensorData::new(host_values(BATCH * 28 * 28, 1), [BATCH, 1, 28, 28]),
        &ad,
    )
    .require_grad();
    let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2, 2, 5, 7, 9], [BATCH]), &ad);
    let mut config = FerdConfig::preset(Budget::Tiny, FerdMethod::Ferd);
    config.fairness.inner_steps = 3;
    config.synthesis.weights = weights;
    let noise = host_values(config.fairness.inner_steps * BATCH * 1024, 2);
    let loss = step_loss(
        &teacher,
        &student,
        x.clone(),
        &y,
        &config,
        &mut Replay::new(noise),
    )
    .unwrap();
    let grads = loss.total.backward();
    values(x.grad(&grads).unwrap())
}

fn reference_and_test_device() -> Option<(Device, Device)> {
    if test_device_spec() == DeviceSpec::Flex {
        return None;
    }
    Some((DeviceSpec::Flex.device().unwrap(), test_device()))
}

#[test]
fn each_synthesis_term_has_the_gradient_flex_has() {
    let Some((flex, device)) = reference_and_test_device() else {
        return;
    };
    let off = LossWeights {
        bn: 0.0,
        adv: 0.0,
        oh: 0.0,
        uni: 0.0,
    };
    let terms = [
        ("L_bn", LossWeights { bn: 1.0, ..off }),
        ("L_adv", LossWeights { adv: 1.0, ..off }),
        ("L_oh", LossWeights { oh: 1.0, ..off }),
        ("L_uni", LossWeights { uni: 1.0, ..off }),
    ];
    let mut failures = Vec::new();
    for (name, weights) in terms {
        let want = image_gradient(&flex, weights);
        let got = image_gradient(&device, weights);
        if let Err(e) = std::panic::catch_unwind(|| assert_close(name, &got, &want)) {
            failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| name.to_string()),
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `d sum(G(z) * r) / dz` and the generator's output, training-mode BatchNorm included.
fn generator_backward(device: &Device) -> (Vec<f32>, Vec<f32>) {
    let ad = device.clone().autodiff();
    let g = generator(&ad);
    let z = Param::from_tensor(Tensor::<2>::from_data(
        TensorData::new(host_values(BATCH * 16, 3), [BATCH, 16]),
        &ad,
    ));
    let x = g.forward(z.val());
    let r = Tensor::<4>::from_data(
        TensorData::new(host_values(BATCH * 28 * 28, 4), [BATCH, 1, 28, 28]),
        &ad,
    );
    let grads = (x.clone() * r).sum().backward();
    (values(x), values(z.val().grad(&grads).unwrap()))
}

#[test]
fn the_generator_backward_matches_flex() {
    let Some((flex, device)) = reference_and_test_device() else {
        return;
    };
    let (x_want, dz_want) = generator_backward(&flex);
    let (x_got, dz_got) = generator_backward(&device);
    assert_close("G(z)", &x_got, &x_want);
    assert_close("dz", &dz_got, &dz_want);
}

/// A layer under test: a function of the input on a device.
type LayerFn<'a> = dyn Fn(Tensor<4>, &Device) -> Tensor<4> + 'a;

/// Forward values and input gradient (`d sum(f(x) * r) / dx`) of one layer on `device`, for a
/// seeded input of `shape`.
fn layer(device: &Device, shape: [usize; 4], f: &LayerFn) -> (Vec<f32>, Vec<f32>) {
    let ad = device.clone().autodiff();
    let n = shape.iter().product();
    let x = Tensor::<4>::from_data(TensorData::new(host_values(n, 5), shape), &ad).require_grad();
    let y = f(x.clone(), &ad);
    let m = y.dims().iter().product();
    let r = Tensor::<4>::from_data(TensorData::new(host_values(m, 6), y.dims()), &ad);
    let grads = (y.clone() * r).sum().backward();
    (values(y), values(x.grad(&grads).unwrap()))
}

#[test]
fn each_generator_layer_matches_flex() {
    use burn::nn::BatchNormConfig;
    use burn::tensor::activation::{leaky_relu, sigmoid};
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;

    let Some((flex, device)) = reference_and_test_device() else {
        return;
    };
    let up = |x: Tensor<4>, _: &Device| upsample_nearest(x, 2);
    let bn = |x: Tensor<4>, d: &Device| BatchNormConfig::new(x.dims()[1]).init(d).forward(x);
    let conv = |x: Tensor<4>, d: &Device| {
        let [_, c, _, _] = x.dims();
        let w = Tensor::<4>::from_data(TensorData::new(host_values(8 * c * 9, 7), [8, c, 3, 3]), d);
        conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1))
    };
    let linear = |x: Tensor<4>, d: &Device| {
        let [b, _, _, _] = x.dims();
        let w = Tensor::<2>::from_data(TensorData::new(host_values(16 * 784, 8), [16, 784]), d);
        x.reshape([b, 16]).matmul(w).reshape([b as i64, 16, 7, 7])
    };
    let cases: [(&str, [usize; 4], &LayerFn<'_>); 8] = [
        ("linear + reshape", [BATCH, 16, 1, 1], &linear),
        ("batch norm (training)", [BATCH, 16, 7, 7], &bn),
        ("nearest upsample x2 (ferd's)", [BATCH, 16, 7, 7], &up),
        ("conv 3x3", [BATCH, 16, 14, 14], &conv),
        ("leaky relu", [BATCH, 8, 14, 14], &|x, _| leaky_relu(x, 0.2)),
        ("sigmoid", [BATCH, 1, 28, 28], &|x, _| sigmoid(x)),
        ("batch norm then upsample", [BATCH, 16, 7, 7], &|x, d| {
            up(bn(x, d), d)
        }),
        ("upsample then conv", [BATCH, 16, 7, 7], &|x, d| {
            conv(up(x, d), d)
        }),
    ];
    let mut failures = Vec::new();
    for (name, shape, f) in cases {
        let (y_want, dx_want) = layer(&flex, shape, f);
        let (y_got, dx_got) = layer(&device, shape, f);
        for (what, got, want) in [
            ("forward", &y_got, &y_want),
            ("input gradient", &dx_got, &dx_want),
        ] {
            let label = format!("{name}, {what}");
            if let Err(e) = std::panic::catch_unwind(|| assert_close(&label, got, want)) {
                failures.push(e.downcast_ref::<String>().cloned().unwrap_or(label));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
