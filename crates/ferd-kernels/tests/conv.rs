//! `ops::conv2d` against Burn's `module::conv2d` on random shapes, strides, paddings, dilations
//! and groups: the output and the gradients of input, weight and bias, within 1e-4 (relative to
//! the largest value). On Flex this compares ferd's kernels with Burn's; on other backends both
//! sides are Burn's op and the test checks the routing.

use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use ferd_core::device::test_device;
use ferd_core::random::{normal, rng};
use ferd_kernels::conv::{ConvPath, with_path};
use ferd_kernels::{check_conv2d, conv_geometry, conv2d};
use rand::Rng;

use crate::common;

/// One random convolution problem.
#[derive(Debug, Clone)]
struct Case {
    x: [usize; 4],
    w: [usize; 4],
    options: ConvOptions<2>,
    bias: bool,
}

/// The batch and map sizes a random problem draws from.
#[derive(Debug, Clone, Copy)]
enum Sizes {
    /// 1 to 3 images of 1 to 9 pixels a side.
    Small,
    /// 5 to 12 images of 12 to 24 pixels a side: the kernels split the batch into several GEMMs
    /// of several images each (they batch images up to 256 output positions per GEMM).
    SeveralGemms,
    /// One group of 6 to 19 output channels, 48 to 64 or 112 to 128 images of 1 to 9 pixels
    /// a side: the CPU kernels vectorize over blocks of 64 images (one or two, the last full or
    /// not; at least three quarters full, as they require).
    ImageBlocks,
}

/// A random problem of the given sizes.
fn random_case(seed: u64, sizes: Sizes) -> Case {
    let mut r = rng(seed);
    let (batch, size) = match sizes {
        Sizes::Small => (1..4, 1..10),
        Sizes::SeveralGemms => (5..13, 12..25),
        Sizes::ImageBlocks => return image_block_case(&mut r),
    };
    loop {
        let groups = [1, 1, 1, 2, 3][r.random_range(0..5)];
        let depthwise = r.random_bool(0.2);
        let (groups, group_in, group_out) = if depthwise {
            let c = r.random_range(1..6);
            (c, 1, 1)
        } else {
            (groups, r.random_range(1..5), r.random_range(1..5))
        };
        let kernel = [r.random_range(1..4), r.random_range(1..4)];
        let stride = [r.random_range(1..3), r.random_range(1..3)];
        let dilation = [r.random_range(1..3), r.random_range(1..3)];
        let padding = [
            (r.random_range(0..3), r.random_range(0..3)),
            (r.random_range(0..3), r.random_range(0..3)),
        ];
        let x = [
            r.random_range(batch.clone()),
            groups * group_in,
            r.random_range(size.clone()),
            r.random_range(size.clone()),
        ];
        let w = [groups * group_out, group_in, kernel[0], kernel[1]];
        let options = ConvOptions::new_with_padding(stride, padding, dilation, groups);
        if check_conv2d(x, w, &options).is_ok() {
            return Case {
                x,
                w,
                options,
                bias: r.random_bool(0.5),
            };
        }
    }
}

/// A random one-group problem of [`Sizes::ImageBlocks`].
fn image_block_case(r: &mut impl Rng) -> Case {
    loop {
        let batch = r.random_range(48..65) + 64 * r.random_range(0..2);
        let size = [r.random_range(1..10), r.random_range(1..10)];
        let x = [batch, r.random_range(1..9), size[0], size[1]];
        let kernel = [r.random_range(1..4), r.random_range(1..4)];
        let w = [r.random_range(6..20), x[1], kernel[0], kernel[1]];
        let pair = |r: &mut dyn rand::RngCore| [r.random_range(1..3), r.random_range(1..3)];
        let (stride, dilation) = (pair(r), pair(r));
        let mut side = || (r.random_range(0..3), r.random_range(0..3));
        let padding = [side(), side()];
        let case = Case::new(x, w, stride, padding, dilation, 1);
        if check_conv2d(x, w, &case.options).is_ok() {
            return case;
        }
    }
}

/// Output, and the gradients of x, weight and bias of `sum(y * probe)`.
fn run(
    case: &Case,
    device: &Device,
    seed: u64,
    conv: impl Fn(Tensor<4>, Tensor<4>, Option<Tensor<1>>, ConvOptions<2>) -> Tensor<4>,
) -> Vec<Vec<f32>> {
    let mut r = rng(seed);
    let autodiff = device.clone().autodiff();
    let x = normal(&mut r, case.x, 0.0, 1.0, &autodiff).require_grad();
    let w = normal(&mut r, case.w, 0.0, 1.0, &autodiff).require_grad();
    let b = normal(&mut r, [case.w[0]], 0.0, 1.0, &autodiff).require_grad();
    let y = conv(
        x.clone(),
        w.clone(),
        case.bias.then(|| b.clone()),
        case.options.clone(),
    );
    let probe = normal(&mut r, y.dims(), 0.0, 1.0, &autodiff);
    let grads = (y.clone() * probe).sum().backward();
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    let mut out = vec![
        values(y.inner()),
        values(x.grad(&grads).unwrap()),
        values(w.grad(&grads).unwrap()),
    ];
    if case.bias {
        out.push(
            b.grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
    }
    out
}

/// ferd's `conv2d` and Burn's agree on `seeds` random problems.
fn matches_burn(seeds: std::ops::Range<u64>, sizes: Sizes) {
    for seed in seeds {
        agree_with_burn(&random_case(seed, sizes), seed);
    }
}

/// ferd's `conv2d` and Burn's agree on `case`.
fn agree_with_burn(case: &Case, seed: u64) {
    let device = test_device();
    let ours = run(case, &device, 1000 + seed, conv2d);
    let burn = run(case, &device, 1000 + seed, burn_conv2d);
    for (what, (a, b)) in ["output", "input grad", "weight grad", "bias grad"]
        .iter()
        .zip(ours.iter().zip(&burn))
    {
        common::assert_close(&format!("{what} of {case:?}"), a, b, 1e-4);
    }
}

#[test]
fn conv2d_matches_burn_forward_and_gradients() {
    matches_burn(0..60, Sizes::Small);
}

#[test]
fn conv2d_matches_burn_with_several_images_per_gemm() {
    matches_burn(100..120, Sizes::SeveralGemms);
}

#[test]
fn conv2d_matches_burn_on_batches_of_image_blocks() {
    matches_burn(200..220, Sizes::ImageBlocks);
}

impl Case {
    /// A problem with bias and the given stride, paddings (before, after), dilation and groups.
    fn new(
        x: [usize; 4],
        w: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Self {
        Self {
            x,
            w,
            options: ConvOptions::new_with_padding(stride, padding, dilation, groups),
            bias: true,
        }
    }

    /// A stride-1 problem with the given paddings (before, after), dilation and groups.
    fn stride_one(
        x: [usize; 4],
        w: [usize; 4],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Self {
        Self::new(x, w, [1, 1], padding, dilation, groups)
    }
}

/// ferd's `conv2d` and Burn's agree on each of `cases`, seeds counted from `first_seed`.
fn agree_on(cases: &[Case], first_seed: u64) {
    for (i, case) in cases.iter().enumerate() {
        agree_with_burn(case, first_seed + i as u64);
    }
}

/// `cases`, written for the direct path `path`, agree with Burn through `path` and through
/// im2col, each forced (`with_path`): every path the CPU can run, the others named as skipped.
/// On a device other than Flex both sides are Burn's op and the paths change nothing.
fn agree_on_paths(cases: &[Case], first_seed: u64, path: ConvPath) {
    for case in cases {
        let g = conv_geometry(case.x, case.w, &case.options).unwrap();
        // The cases are chosen for `path`: one it would not take tests nothing new.
        assert!(
            !path.available() || path.takes(&g),
            "{} does not take {case:?}",
            path.name()
        );
    }
    for path in [ConvPath::Im2col, path] {
        if !path.available() {
            eprintln!("skipped {}: this CPU lacks AVX-512F and VL", path.name());
            continue;
        }
        with_path(path, || agree_on(cases, first_seed));
    }
}

/// Layers wider than the random ones: more output channels per group than one block of rows
/// when the CPU kernel stores the weight gradient transposed (and has to turn it back), with
/// groups, and a layer too wide to be stored transposed.
#[test]
fn conv2d_matches_burn_on_wide_layers() {
    let same = [(1, 1), (1, 1)];
    agree_on(
        &[
            Case::stride_one([2, 4, 5, 5], [20, 4, 3, 3], same, [1, 1], 1),
            Case::stride_one([3, 8, 5, 4], [42, 4, 3, 3], same, [1, 1], 2),
            Case::stride_one([2, 3, 6, 6], [40, 3, 1, 1], same, [1, 1], 1),
            Case::stride_one([1, 40, 3, 3], [300, 40, 3, 3], same, [1, 1], 1),
        ],
        500,
    );
}

/// Layers that the CPU kernels compute directly, without im2col (output rows of whole 16-float
/// vectors, at least 6 output channels): a last block of channels and a last tile of vectors
/// only partly used, dilation, padding on one side only, a one-row kernel, a padding wider than
/// the kernel reaches (direct forward, im2col input gradient), and strides (the copy split by
/// column phase): 2 as in ResNet-18, 2 across and 1 down with an odd padded width (phases of
/// unequal length), 3 with dilation 2, 2 with an input column no tap reaches, and 3 down with a
/// top padding wider than every tap's reach (the output is the bias alone).
#[test]
fn conv2d_matches_burn_where_computed_directly() {
    let strided = |x, w, stride, padding, dilation| Case::new(x, w, stride, padding, dilation, 1);
    let (same, none) = ([(1, 1); 2], [(0, 0); 2]);
    let (bottom, top) = ([(0, 1), (0, 0)], [(3, 0), (0, 0)]);
    agree_on_paths(
        &[
            strided([2, 3, 32, 32], [10, 3, 3, 3], [2, 2], same, [1, 1]),
            strided([1, 4, 9, 31], [8, 4, 3, 3], [1, 2], same, [1, 1]),
            strided([1, 3, 7, 50], [7, 3, 3, 3], [3, 3], none, [2, 2]),
            strided([1, 2, 5, 34], [6, 2, 3, 3], [2, 2], bottom, [1, 1]),
            strided([1, 2, 1, 17], [6, 2, 2, 2], [3, 1], top, [1, 1]),
            Case::stride_one([2, 3, 16, 16], [10, 3, 3, 3], [(1, 1), (1, 1)], [1, 1], 1),
            Case::stride_one([1, 9, 5, 32], [8, 9, 3, 3], [(2, 2), (2, 2)], [2, 2], 1),
            Case::stride_one([2, 2, 4, 16], [12, 2, 3, 3], [(0, 2), (1, 1)], [1, 1], 1),
            Case::stride_one([1, 5, 3, 16], [8, 5, 1, 3], [(0, 0), (1, 1)], [1, 1], 1),
            Case::stride_one([2, 4, 6, 12], [8, 4, 3, 3], [(3, 3), (3, 3)], [1, 1], 1),
            Case::stride_one([1, 16, 8, 48], [16, 16, 5, 3], [(2, 2), (1, 1)], [1, 1], 1),
        ],
        700,
        ConvPath::DirectRows,
    );
}

/// Layers whose weight gradient the CPU kernels compute directly (the layers above with at least
/// 1,024 output positions per image): several chunks of images with a short last one, several
/// tasks of output channels with a short last tile, taps `(c, i, j)` in tiles with a short last
/// one, a horizontal stride (the copy split by column phase) and dilation.
#[test]
fn conv2d_matches_burn_where_the_weight_gradient_is_direct() {
    let same = [(1, 1); 2];
    agree_on_paths(
        &[
            Case::stride_one([6, 5, 32, 32], [19, 5, 3, 3], same, [1, 1], 1),
            Case::new([1, 2, 34, 64], [7, 2, 3, 3], [1, 2], same, [1, 1], 1),
            Case::stride_one([2, 3, 32, 32], [6, 3, 3, 3], [(2, 2), (2, 2)], [2, 2], 1),
        ],
        900,
        ConvPath::DirectRows,
    );
}

/// Layers that the CPU kernels compute vectorized over images (batches of 48 images and more,
/// input maps of at most 8x8, at least 6 output channels): a full block of 64 images, a last
/// block partly filled, two blocks, stride 2, dilation, paddings on one side only, a 5x5 kernel,
/// more input channels than one chunk (the accumulators stored and reloaded), several tasks of
/// channel blocks with a short last one, and a padding wider than the kernel reaches (forward
/// here, input gradient through im2col).
#[test]
fn conv2d_matches_burn_where_vectorized_over_images() {
    let case = |x, w, stride, padding, dilation| Case::new(x, w, stride, padding, dilation, 1);
    let (same, two, wide) = ([(1, 1); 2], [(2, 2); 2], [(3, 3); 2]);
    let one_sided = [(2, 1), (0, 1)];
    agree_on_paths(
        &[
            case([64, 3, 8, 8], [10, 3, 3, 3], [1, 1], same, [1, 1]),
            case([50, 5, 7, 7], [8, 5, 3, 3], [2, 2], same, [1, 1]),
            case([100, 4, 6, 5], [7, 4, 3, 2], [1, 2], one_sided, [2, 1]),
            case([48, 6, 8, 8], [12, 6, 5, 5], [1, 1], two, [1, 1]),
            case([64, 130, 4, 4], [50, 130, 3, 3], [1, 1], same, [1, 1]),
            case([64, 3, 4, 4], [6, 3, 3, 3], [1, 1], wide, [1, 1]),
        ],
        800,
        ConvPath::DirectImages,
    );
}

#[test]
fn plain_tensors_take_the_same_path() {
    let device = test_device();
    let case = random_case(7, Sizes::Small);
    let mut r = rng(8);
    let x = normal(&mut r, case.x, 0.0, 1.0, &device);
    let w = normal(&mut r, case.w, 0.0, 1.0, &device);
    let a = conv2d(x.clone(), w.clone(), None, case.options.clone());
    let b = burn_conv2d(x, w, None, case.options);
    let diff: f32 = (a - b).abs().max().into_scalar();
    assert!(diff < 1e-4, "max difference {diff}");
}

#[test]
fn shapes_that_do_not_fit_are_refused_with_their_sizes() {
    let options = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let error = check_conv2d([1, 3, 2, 2], [4, 3, 3, 3], &options).unwrap_err();
    assert!(error.to_string().contains("[3, 3]"), "{error}");
    let error = check_conv2d([1, 3, 8, 8], [4, 2, 3, 3], &options).unwrap_err();
    assert!(error.to_string().contains("group"), "{error}");
}
