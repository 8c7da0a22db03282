//! `ops::upsample_nearest` against a broadcast of each pixel over its block written with Burn's
//! ops (`reshape`, `expand`, `reshape`; its backward is Burn's reduction), on random shapes and
//! factors: the output and the input gradient. Some inputs are transposed views, so the kernel
//! also reads strided tensors. On Flex this compares ferd's kernel with Burn's ops; on other
//! backends both sides are Burn's ops and the test checks the routing.

use burn::tensor::{Device, Tensor, TensorData};
use ferd_core::device::test_device;
use ferd_core::random::{normal, rng};
use ferd_kernels::upsample_nearest;
use rand::Rng;

use crate::common::assert_close;

/// One random upsampling problem.
#[derive(Debug, Clone)]
struct Case {
    x: [usize; 4],
    factor: usize,
    /// Whether the input is built `[B, C, W, H]` and transposed, a strided view.
    transposed: bool,
    values: Vec<f32>,
}

fn random_case(seed: u64) -> Case {
    let mut r = rng(seed);
    let x = [
        r.random_range(1..4),
        r.random_range(1..40),
        r.random_range(1..9),
        r.random_range(1..9),
    ];
    let len = x.iter().product();
    Case {
        x,
        factor: r.random_range(1..5),
        transposed: r.random_bool(0.3),
        values: (0..len).map(|_| r.random_range(-1.0..1.0)).collect(),
    }
}

fn broadcast(x: Tensor<4>, factor: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .expand([b, c, h, factor, w, factor])
        .reshape([b, c, h * factor, w * factor])
}

/// Output and the input gradient of `sum(y * probe)`.
fn run(
    case: &Case,
    device: &Device,
    seed: u64,
    upsample: impl Fn(Tensor<4>, usize) -> Tensor<4>,
) -> [Vec<f32>; 2] {
    let autodiff = device.clone().autodiff();
    let [b, c, h, w] = case.x;
    let x = if case.transposed {
        let stored = Tensor::<4>::from_data(
            TensorData::new(case.values.clone(), [b, c, w, h]),
            &autodiff,
        );
        stored.require_grad()
    } else {
        Tensor::<4>::from_data(TensorData::new(case.values.clone(), case.x), &autodiff)
            .require_grad()
    };
    let input = if case.transposed {
        x.clone().swap_dims(2, 3)
    } else {
        x.clone()
    };
    let y = upsample(input, case.factor);
    let probe = normal(&mut rng(seed), y.dims(), 0.0, 1.0, &autodiff);
    let grads = (y.clone() * probe).sum().backward();
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    [values(y.inner()), values(x.grad(&grads).unwrap())]
}

#[test]
fn upsample_nearest_matches_a_broadcast_forward_and_gradient() {
    let device = test_device();
    for seed in 0..40 {
        let case = random_case(seed);
        let [y, dx] = run(&case, &device, 500 + seed, upsample_nearest);
        let [want_y, want_dx] = run(&case, &device, 500 + seed, broadcast);
        let what = format!(
            "{:?} x{} (transposed {})",
            case.x, case.factor, case.transposed
        );
        assert_eq!(y, want_y, "output of {what}: copies, so equal to the bit");
        // The gradient sums factor^2 terms: the order may differ from Burn's reduction.
        assert_close(&format!("input grad of {what}"), &dx, &want_dx, 1e-5);
    }
}

#[test]
#[should_panic(expected = "scale factor must be positive")]
fn a_zero_factor_is_refused() {
    let x = Tensor::<4>::zeros([1, 1, 2, 2], &test_device());
    let _ = upsample_nearest(x, 0);
}
