//! `ops::max_pool2d` against Burn's `module::max_pool2d` on random shapes, windows and strides:
//! the output and the input gradient. Half the problems draw small integers, so windows hold
//! ties and the gradient must land on the same input as Burn's (the first maximum); one holds
//! NaNs. On Flex this compares ferd's kernels with Burn's; on other backends both sides are
//! Burn's op and the test checks the routing.

use burn::tensor::module::max_pool2d as burn_max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};
use ferd_core::device::{DeviceSpec, test_device, test_device_spec};
use ferd_core::random::{normal, rng};
use ferd_kernels::{check_max_pool2d, max_pool2d};
use rand::Rng;

/// One random pooling problem and its input values.
#[derive(Debug, Clone)]
struct Case {
    x: [usize; 4],
    options: MaxPoolOptions<2>,
    values: Vec<f32>,
}

fn random_case(seed: u64) -> Case {
    let mut r = rng(seed);
    // One problem in three is the small CNNs' 2x2 window at stride 2, which has its own loop.
    let (kernel, stride) = if r.random_bool(1.0 / 3.0) {
        ([2, 2], [2, 2])
    } else {
        (
            [r.random_range(1..4), r.random_range(1..4)],
            [r.random_range(1..4), r.random_range(1..4)],
        )
    };
    let mut options = MaxPoolOptions::new(kernel).with_stride(stride);
    // One problem in five takes a path ferd leaves to Burn.
    if r.random_bool(0.2) {
        options = options.with_padding([
            r.random_range(0..=kernel[0] / 2),
            r.random_range(0..=kernel[1] / 2),
        ]);
    }
    let x = [
        r.random_range(1..4),
        r.random_range(1..4),
        r.random_range(kernel[0]..12),
        r.random_range(kernel[1]..12),
    ];
    let len = x.iter().product();
    let ties = r.random_bool(0.5);
    let values = (0..len)
        .map(|_| {
            if ties {
                r.random_range(-2..3) as f32
            } else {
                r.random_range(-1.0..1.0)
            }
        })
        .collect();
    Case { x, options, values }
}

/// Output and the input gradient of `sum(y * probe)`.
fn run(
    case: &Case,
    device: &Device,
    seed: u64,
    pool: impl Fn(Tensor<4>, MaxPoolOptions<2>) -> Tensor<4>,
) -> [Vec<f32>; 2] {
    let autodiff = device.clone().autodiff();
    let x = Tensor::<4>::from_data(TensorData::new(case.values.clone(), case.x), &autodiff)
        .require_grad();
    let y = pool(x.clone(), case.options.clone());
    let probe = normal(&mut rng(seed), y.dims(), 0.0, 1.0, &autodiff);
    let grads = (y.clone() * probe).sum().backward();
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    [values(y.inner()), values(x.grad(&grads).unwrap())]
}

fn assert_same(what: &str, case: &Case, ours: &[f32], burn: &[f32]) {
    assert_eq!(ours.len(), burn.len(), "{what} of {case:?}");
    for (i, (p, q)) in ours.iter().zip(burn).enumerate() {
        let same = (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-5 * q.abs().max(1.0);
        assert!(same, "{what}[{i}] of {case:?}: ferd {p} vs burn {q}");
    }
}

#[test]
fn max_pool2d_matches_burn_forward_and_gradient() {
    let device = test_device();
    for seed in 0..60 {
        let case = random_case(seed);
        let [y, dx] = run(&case, &device, 1000 + seed, max_pool2d);
        let [burn_y, burn_dx] = run(&case, &device, 1000 + seed, burn_max_pool2d);
        assert_same("output", &case, &y, &burn_y);
        assert_same("input grad", &case, &dx, &burn_dx);
    }
}

#[test]
fn nan_propagates_and_takes_the_gradient_as_in_burn() {
    let device = test_device();
    let mut case = random_case(3);
    case.options = MaxPoolOptions::new([2, 2]);
    case.x = [1, 2, 6, 6];
    case.values = (0..72).map(|i| (i % 7) as f32).collect();
    // Two NaNs in one window, one in another, none in the rest.
    case.values[0] = f32::NAN;
    case.values[7] = f32::NAN;
    case.values[40] = f32::NAN;
    let [y, dx] = run(&case, &device, 5, max_pool2d);
    let [burn_y, burn_dx] = run(&case, &device, 5, burn_max_pool2d);
    // PyTorch's rule, which ferd's kernel and Flex follow; Burn's wgpu pooling drops NaN
    // instead, and there both sides are Burn's op.
    if test_device_spec() == DeviceSpec::Flex {
        assert!(y[0].is_nan() && y.iter().filter(|v| v.is_nan()).count() == 2);
        assert!(
            dx[0] == 0.0 && dx[7] != 0.0,
            "the last NaN takes the gradient"
        );
    }
    assert_same("output", &case, &y, &burn_y);
    assert_same("input grad", &case, &dx, &burn_dx);
}

#[test]
fn windows_that_do_not_fit_are_refused_with_their_sizes() {
    let error = check_max_pool2d([1, 3, 2, 5], &MaxPoolOptions::new([3, 3])).unwrap_err();
    assert!(error.to_string().contains("[3, 3]"), "{error}");
    let padded = MaxPoolOptions::new([3, 3]).with_padding([1, 1]);
    assert!(check_max_pool2d([1, 3, 2, 5], &padded).is_ok());
}
