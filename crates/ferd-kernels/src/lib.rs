//! ferd's CPU kernels, where Burn's CPU backend is slow for the small networks ferd trains.
//!
//! The seam is this module's functions: [`conv2d`] is a drop-in for
//! `burn::tensor::module::conv2d`, [`max_pool2d`] for `burn::tensor::module::max_pool2d`,
//! [`upsample_nearest`] for PyTorch's `nn.Upsample` with an integer factor, [`channel_affine`] for
//! an inference-mode BatchNorm and its activation, [`batch_norm_train`] for a training-mode
//! BatchNorm and its activation. On Flex with f32 tensors they run ferd's kernels (the forward,
//! and on an autodiff device the gradients too, see `docs/performance.md`); on every other
//! backend and dtype they call Burn's op unchanged. The environment variable [`KERNELS_VAR`] set
//! to `burn` forces Burn's ops everywhere, for comparisons.
//!
//! Behind the seam, one module per op family over plain `f32` slices, knowing nothing of Burn
//! ([`conv`], [`pool`], [`upsample`], [`affine`], [`batch_norm`]), each with its reference (the
//! definition its unit tests check against) beside the fast path; and `flex`, the Burn backend
//! extensions that move Flex tensors in and out of them and write their backward passes.
//! [`conv::ConvPath`] names the convolution's kernel paths, which tests and benchmarks can force.

pub mod affine;
pub mod batch_norm;
pub mod conv;
pub mod error;
#[cfg(feature = "flex")]
mod flex;
pub mod pool;
mod simd;
mod uninit;
pub mod upsample;

use std::sync::OnceLock;

use burn::tensor::Tensor;
use burn::tensor::module::{conv2d as burn_conv2d, max_pool2d as burn_max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};

pub use affine::Activation;
use affine::AffineGeometry;
use conv::ConvGeometry;
pub use error::KernelError;
use error::{Result, shape_error};
use pool::PoolGeometry;
use upsample::UpsampleGeometry;

/// The environment variable that selects the convolution kernels: `ferd` (default) or `burn`.
pub const KERNELS_VAR: &str = "FERD_KERNELS";

/// Which implementation [`conv2d`] uses where ferd has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// ferd's CPU kernels on Flex (the default).
    Ferd,
    /// Burn's ops everywhere.
    Burn,
}

/// The kernels chosen by [`KERNELS_VAR`], read once per process.
pub fn kernels() -> Kernels {
    static CHOICE: OnceLock<Kernels> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var(KERNELS_VAR).as_deref() {
        Ok("burn") => Kernels::Burn,
        _ => Kernels::Ferd,
    })
}

/// Checks that `x` and `weight` fit `options`, with an error that names the shapes.
pub fn check_conv2d(x: [usize; 4], weight: [usize; 4], options: &ConvOptions<2>) -> Result<()> {
    conv_geometry(x, weight, options).map(|_| ())
}

/// The geometry [`conv2d`] computes `x` and `weight` with under `options` (the kernels' view of
/// Burn's options), or the error [`check_conv2d`] gives.
pub fn conv_geometry(
    x: [usize; 4],
    weight: [usize; 4],
    options: &ConvOptions<2>,
) -> Result<ConvGeometry> {
    ConvGeometry::new(
        x,
        weight,
        options.stride,
        options.padding,
        options.dilation,
        options.groups,
    )
    .map_err(|detail| shape_error("conv2d", detail))
}

/// A 2-D convolution, `[B, C_in, H, W] x [C_out, C_in/groups, kH, kW] -> [B, C_out, H', W']`,
/// as `burn::tensor::module::conv2d` computes it (same options, same gradients), on ferd's
/// kernels where it has them.
///
/// # Panics
/// If the shapes do not fit the options (as Burn's op does); [`check_conv2d`] tells first.
///
/// # Examples
/// ```
/// use burn::tensor::{Device, Tensor, ops::ConvOptions};
/// let device = Device::default();
/// let x = Tensor::<4>::ones([1, 1, 4, 4], &device);
/// let w = Tensor::<4>::ones([2, 1, 3, 3], &device);
/// let y = ferd_kernels::conv2d(x, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
/// assert_eq!(y.dims(), [1, 2, 4, 4]);
/// // The centre sees all nine ones, a corner four.
/// let values = y.into_data().try_to_vec::<f32>().unwrap();
/// assert_eq!((values[5], values[0]), (9.0, 4.0));
/// ```
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if let Err(error) = check_conv2d(x.dims(), weight.dims(), &options) {
        panic!("{error}");
    }
    if !uses_ferd_kernels(&[&x, &weight]) {
        return burn_conv2d(x, weight, bias, options);
    }
    #[cfg(feature = "flex")]
    {
        use burn::backend::Dispatch;
        let y = Tensor::<4>::from_dispatch(<Dispatch as flex::conv::ConvBackend>::ferd_conv2d(
            x.into_dispatch(),
            weight.into_dispatch(),
            options,
        ));
        match bias {
            Some(bias) => {
                let channels = bias.dims()[0];
                y + bias.reshape([1, channels, 1, 1])
            }
            None => y,
        }
    }
    #[cfg(not(feature = "flex"))]
    unreachable!("ferd's kernels exist only with the flex feature")
}

/// Checks that a `kernel` window at `stride` fits `x`, with an error that names the shapes.
pub fn check_max_pool2d(x: [usize; 4], options: &MaxPoolOptions<2>) -> Result<()> {
    let [_, _, height, width] = x;
    let padded = |size: usize, (begin, end): (usize, usize)| size + begin + end;
    let span = |k: usize, d: usize| d * (k.max(1) - 1) + 1;
    PoolGeometry::new(
        [
            x[0],
            x[1],
            padded(height, options.padding[0]),
            padded(width, options.padding[1]),
        ],
        [
            span(options.kernel_size[0], options.dilation[0]),
            span(options.kernel_size[1], options.dilation[1]),
        ],
        options.stride,
    )
    .map(|_| ())
    .map_err(|detail| shape_error("max_pool2d", detail))
}

/// 2-D max pooling, `[B, C, H, W] -> [B, C, H', W']`, as `burn::tensor::module::max_pool2d`
/// computes it (same options, same gradients, ties and NaN resolved as PyTorch does), on ferd's
/// kernels where it has them: windows without padding or dilation, floor mode.
///
/// # Panics
/// If the window does not fit the input (as Burn's op does); [`check_max_pool2d`] tells first.
///
/// # Examples
/// ```
/// use burn::tensor::{Device, Tensor, ops::MaxPoolOptions};
/// let device = Device::default();
/// let x = Tensor::<1>::from_floats([1.0, 5.0, 3.0, 4.0], &device).reshape([1, 1, 2, 2]);
/// let y = ferd_kernels::max_pool2d(x, MaxPoolOptions::new([2, 2]));
/// assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), [5.0]);
/// ```
pub fn max_pool2d(x: Tensor<4>, options: MaxPoolOptions<2>) -> Tensor<4> {
    if let Err(error) = check_max_pool2d(x.dims(), &options) {
        panic!("{error}");
    }
    let plain = options.padding == [(0, 0); 2] && options.dilation == [1, 1] && !options.ceil_mode;
    if !plain || !uses_ferd_kernels(&[&x]) {
        return burn_max_pool2d(x, options);
    }
    #[cfg(feature = "flex")]
    {
        use burn::backend::Dispatch;
        Tensor::<4>::from_dispatch(<Dispatch as flex::pool::PoolBackend>::ferd_max_pool2d(
            x.into_dispatch(),
            options.kernel_size,
            options.stride,
        ))
    }
    #[cfg(not(feature = "flex"))]
    unreachable!("ferd's kernels exist only with the flex feature")
}

/// Nearest-neighbour upsampling of `x [B, C, H, W]` to `[B, C, f H, f W]` by an integer
/// `factor` (PyTorch's `nn.Upsample(scale_factor=factor)`): every pixel becomes a
/// `factor x factor` block, and its gradient is the sum of the output gradient over the block.
/// On Flex with f32 tensors it is ferd's kernel; elsewhere a broadcast of each pixel over its
/// block, integer indexing only.
///
/// Burn 0.22.1's `interpolate` (nearest) maps output to input pixels with a float division. On
/// an NVIDIA GPU under wgpu its backward gave wrong gradients for the generator's 7 -> 14
/// upsampling (input gradient off by up to 110% of its scale; measured on an H200, 2026-11-30;
/// upstream tracel-ai/burn#4686 reports the forward for other sizes). The broadcast gives the
/// reference's values on every backend (`ferd-distill/tests/backend_agreement.rs`).
///
/// # Panics
/// If `factor` is 0.
///
/// # Examples
/// ```
/// use burn::tensor::{Device, Tensor};
/// let device = Device::default();
/// let x = Tensor::<1>::from_floats([1.0, 2.0], &device).reshape([1, 1, 1, 2]);
/// let y = ferd_kernels::upsample_nearest(x, 2);
/// assert_eq!(y.dims(), [1, 1, 2, 4]);
/// assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), [1., 1., 2., 2., 1., 1., 2., 2.]);
/// ```
pub fn upsample_nearest(x: Tensor<4>, factor: usize) -> Tensor<4> {
    if let Err(detail) = UpsampleGeometry::new(x.dims(), factor) {
        panic!("{}", shape_error("upsample_nearest", detail));
    }
    if !uses_ferd_kernels(&[&x]) {
        let [b, c, h, w] = x.dims();
        return x
            .reshape([b, c, h, 1, w, 1])
            .expand([b, c, h, factor, w, factor])
            .reshape([b, c, h * factor, w * factor]);
    }
    #[cfg(feature = "flex")]
    {
        use burn::backend::Dispatch;
        Tensor::<4>::from_dispatch(
            <Dispatch as flex::upsample::UpsampleBackend>::ferd_upsample_nearest(
                x.into_dispatch(),
                factor,
            ),
        )
    }
    #[cfg(not(feature = "flex"))]
    unreachable!("ferd's kernels exist only with the flex feature")
}

/// Checks that per-channel parameters of length `params` fit `x`, with an error that names the
/// shapes.
pub fn check_channel_affine(x: [usize; 4], params: usize) -> Result<()> {
    AffineGeometry::new(x, params)
        .map(|_| ())
        .map_err(|detail| shape_error("channel_affine", detail))
}

/// `activation(x * scale[c] + shift[c])` over `x [B, C, H, W]`: an inference-mode BatchNorm
/// (`scale = gamma / sqrt(running_var + eps)`, `shift = beta - running_mean * scale`, PyTorch's
/// own form) and its ReLU in one op. On Flex with f32 tensors it is one pass forward and one
/// backward (ferd's kernel); elsewhere, or when `scale` or `shift` needs a gradient, Burn's ops.
///
/// # Panics
/// If `scale` or `shift` does not have one value per channel; [`check_channel_affine`] tells
/// first.
///
/// # Examples
/// ```
/// use burn::tensor::{Device, Tensor};
/// use ferd_kernels::{Activation, channel_affine};
/// let device = Device::default();
/// let x = Tensor::<1>::from_floats([1.0, -1.0, 2.0, -2.0], &device).reshape([1, 2, 1, 2]);
/// let scale = Tensor::<1>::from_floats([2.0, 1.0], &device);
/// let shift = Tensor::<1>::from_floats([0.0, 1.0], &device);
/// let y = channel_affine(x, scale, shift, Activation::Relu);
/// assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), [2.0, 0.0, 3.0, 0.0]);
/// ```
pub fn channel_affine(
    x: Tensor<4>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    activation: Activation,
) -> Tensor<4> {
    let [channels] = scale.dims();
    for params in [channels, shift.dims()[0]] {
        if let Err(error) = check_channel_affine(x.dims(), params) {
            panic!("{error}");
        }
    }
    let constants = !scale.is_require_grad() && !shift.is_require_grad();
    if !constants || !activation.fusable() || !uses_ferd_kernels(&[&x]) {
        let y = x * scale.reshape([1, channels, 1, 1]) + shift.reshape([1, channels, 1, 1]);
        return activation.apply(y);
    }
    #[cfg(feature = "flex")]
    {
        use burn::backend::Dispatch;
        Tensor::<4>::from_dispatch(
            <Dispatch as flex::affine::AffineBackend>::ferd_channel_affine(
                x.into_dispatch(),
                scale.into_dispatch(),
                shift.into_dispatch(),
                activation,
            ),
        )
    }
    #[cfg(not(feature = "flex"))]
    unreachable!("ferd's kernels exist only with the flex feature")
}

/// The mean and biased variance of each channel of a batch.
#[derive(Debug, Clone)]
pub struct BatchMoments {
    /// The mean per channel, `[C]`.
    pub mean: Tensor<1>,
    /// The biased variance per channel (divided by `B * H * W`), `[C]`.
    pub variance: Tensor<1>,
}

/// The mean and biased variance of every channel of `x [B, C, H, W]`, differentiable in `x`: the
/// statistics a BatchNorm layer normalizes with in training, which DFRD-style synthesis matches
/// to the teacher's running statistics (the BN loss). The same values as
/// `x.swap_dims(0, 1).reshape([C, -1]).var_mean_bias(1)`; on Flex with f32 tensors ferd's kernel,
/// which reduces each channel's planes where they lie instead of transposing the activation.
///
/// # Examples
/// ```
/// use burn::tensor::{Device, Tensor};
/// let device = Device::default();
/// let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0], &device).reshape([2, 1, 1, 2]);
/// let moments = ferd_kernels::batch_moments(x);
/// assert_eq!(moments.mean.into_data().try_to_vec::<f32>().unwrap(), [2.5]);
/// assert_eq!(moments.variance.into_data().try_to_vec::<f32>().unwrap(), [1.25]);
/// ```
pub fn batch_moments(x: Tensor<4>) -> BatchMoments {
    let [_, channels, _, _] = x.dims();
    if !uses_ferd_kernels(&[&x]) {
        let per_channel = x.swap_dims(0, 1).reshape([channels as i64, -1]);
        let (variance, mean) = per_channel.var_mean_bias(1);
        return BatchMoments {
            mean: mean.reshape([channels]),
            variance: variance.reshape([channels]),
        };
    }
    #[cfg(feature = "flex")]
    {
        use burn::backend::Dispatch;
        let stacked = Tensor::<2>::from_dispatch(
            <Dispatch as flex::batch_norm::BatchNormBackend>::ferd_batch_stats(x.into_dispatch()),
        );
        BatchMoments {
            mean: stacked.clone().narrow(0, 0, 1).reshape([channels]),
            variance: stacked.narrow(0, 1, 1).reshape([channels]),
        }
    }
    #[cfg(not(feature = "flex"))]
    unreachable!("ferd's kernels exist only with the flex feature")
}

/// The result of [`batch_norm_train`].
#[derive(Debug, Clone)]
pub struct BatchNormTrainOutput {
    /// `activation(bn(x))`, `[B, C, H, W]`.
    pub output: Tensor<4>,
    /// The batch mean per channel, `[C]`, outside the autodiff graph.
    pub mean: Tensor<1>,
    /// The batch's biased variance per channel, `[C]`, outside the autodiff graph.
    pub variance: Tensor<1>,
}

/// A training-mode BatchNorm and its activation, `activation((x - mean) / sqrt(var + eps) *
/// gamma + beta)` with the batch's mean and biased variance per channel, as
/// `burn::tensor::module::batch_norm_train` followed by the activation computes it (same
/// gradients for `x`, gamma and beta). It returns the statistics for the running averages,
/// which the caller updates. On Flex with f32 tensors it is ferd's kernel: two passes to reduce,
/// one to write, two for the backward (`batch_norm`); elsewhere Burn's op.
///
/// # Panics
/// If gamma or beta does not have one value per channel; [`check_channel_affine`] tells first.
///
/// # Examples
/// ```
/// use burn::tensor::{Device, Tensor};
/// use ferd_kernels::{Activation, batch_norm_train};
/// let device = Device::default();
/// // One channel holding 1, 2, 3, 4: mean 2.5, variance 1.25.
/// let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0, 4.0], &device).reshape([2, 1, 1, 2]);
/// let (gamma, beta) = (Tensor::ones([1], &device), Tensor::zeros([1], &device));
/// let bn = batch_norm_train(x, gamma, beta, 0.0, Activation::Relu);
/// assert_eq!(bn.mean.into_data().try_to_vec::<f32>().unwrap(), [2.5]);
/// assert_eq!(bn.variance.into_data().try_to_vec::<f32>().unwrap(), [1.25]);
/// let y = bn.output.into_data().try_to_vec::<f32>().unwrap();
/// assert_eq!((y[0], y[1]), (0.0, 0.0)); // below the mean: cut by the ReLU
/// assert!((y[3] - 1.5 / 1.25f32.sqrt()).abs() < 1e-6);
/// ```
pub fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    activation: Activation,
) -> BatchNormTrainOutput {
    for params in [gamma.dims()[0], beta.dims()[0]] {
        if let Err(error) = check_channel_affine(x.dims(), params) {
            panic!("{error}");
        }
    }
    let f32_params = [&gamma, &beta]
        .iter()
        .all(|p| p.dtype() == burn::tensor::DType::F32);
    if !f32_params || !activation.fusable() || !uses_ferd_kernels(&[&x]) {
        let result = burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
        return BatchNormTrainOutput {
            output: activation.apply(result.output),
            mean: result.mean,
            variance: result.variance,
        };
    }
    #[cfg(feature = "flex")]
    {
        use burn::backend::Dispatch;
        let (output, mean, variance) =
            <Dispatch as flex::batch_norm::BatchNormBackend>::ferd_batch_norm_train(
                x.into_dispatch(),
                gamma.into_dispatch(),
                beta.into_dispatch(),
                epsilon,
                activation,
            );
        BatchNormTrainOutput {
            output: Tensor::<4>::from_dispatch(output),
            mean: Tensor::<1>::from_dispatch(mean),
            variance: Tensor::<1>::from_dispatch(variance),
        }
    }
    #[cfg(not(feature = "flex"))]
    unreachable!("ferd's kernels exist only with the flex feature")
}

impl Activation {
    /// The activation alone, with Burn's ops: for the paths that do not fuse it.
    pub fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Activation::Identity => x,
            Activation::Relu => burn::tensor::activation::relu(x),
            Activation::LeakyRelu { negative_slope } => {
                burn::tensor::activation::leaky_relu(x, f64::from(negative_slope))
            }
        }
    }
}

/// Whether an op takes ferd's kernels for these tensors: all on Flex (plain or autodiff), all
/// f32, and not switched off by [`KERNELS_VAR`].
fn uses_ferd_kernels(tensors: &[&Tensor<4>]) -> bool {
    #[cfg(feature = "flex")]
    {
        kernels() == Kernels::Ferd
            && tensors.iter().all(|t| {
                t.dtype() == burn::tensor::DType::F32
                    && matches!(
                        t.device().as_dispatch().clone().inner(),
                        burn::backend::DispatchDevice::Flex(_)
                    )
            })
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = tensors;
        false
    }
}
