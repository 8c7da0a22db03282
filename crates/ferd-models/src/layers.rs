//! Building blocks shared by the architectures: convolution and BatchNorm constructors with
//! PyTorch's conventions, the projection shortcut, global pooling and in-model normalization.

use burn::module::{Module, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use ferd_kernels::{Activation, batch_norm_train, channel_affine};
use serde::{Deserialize, Serialize};

use crate::classifier::Tap;

pub use ferd_kernels::upsample_nearest;

/// A bias-free `k x k` convolution with PyTorch's padding `k / 2`.
pub fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Conv2d {
    grouped_conv(in_channels, out_channels, kernel, stride, 1, device)
}

/// A bias-free grouped convolution (depthwise when `groups == in_channels`).
pub fn grouped_conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            kernel / 2,
            kernel / 2,
            kernel / 2,
            kernel / 2,
        ))
        .with_groups(groups)
        .with_bias(false)
        .init(device)
}

/// Applies a Burn `Conv2d` layer through [`ferd_kernels::conv2d`]: the same parameters, padding
/// and result as `conv.forward(x)`, on ferd's CPU kernels where it has them.
pub fn conv_forward(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, height, width] = x.dims();
    let options = ConvOptions::new_with_padding(
        conv.stride,
        padding_pairs(
            &conv.padding,
            [height, width],
            conv.kernel_size,
            conv.stride,
        ),
        conv.dilation,
        conv.groups,
    );
    ferd_kernels::conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// `(begin, end)` padding per spatial dimension, as Burn's `Conv2d` computes it (`Same` puts the
/// odd pixel at the end, like TensorFlow).
fn padding_pairs(
    padding: &PaddingConfig2d,
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> [(usize, usize); 2] {
    let same = |d: usize| {
        // The padding that gives `ceil(size / stride)` outputs.
        let total = match size[d].div_ceil(stride[d]) {
            0 => 0,
            out => ((out - 1) * stride[d] + kernel[d]).saturating_sub(size[d]),
        };
        (total / 2, total - total / 2)
    };
    match padding {
        PaddingConfig2d::Valid => [(0, 0); 2],
        PaddingConfig2d::Same => [same(0), same(1)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(*top, *bottom), (*left, *right)],
    }
}

/// `activation(bn(x))` in the mode Burn's layer would choose, on ferd's fused ops.
///
/// - Training mode (an autodiff device and the layer's training flag on): the batch's mean and
///   biased variance, normalized and activated in one op (`ferd_kernels::batch_norm_train`),
///   and the running statistics updated exactly as Burn's `BatchNorm::forward` updates them,
///   `running = (1 - momentum) * running + momentum * batch` with the biased variance.
/// - Inference mode: the per-channel map `x * scale + shift` with
///   `scale = gamma / sqrt(running_var + eps)` and `shift = beta - running_mean * scale`, the
///   form PyTorch evaluates, fused with the activation (`ferd_kernels::channel_affine`): one
///   pass over the activation instead of Burn's five.
pub fn batch_norm_forward(bn: &BatchNorm, x: Tensor<4>, activation: Activation) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() && bn.training.is_enabled() {
        let result = batch_norm_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon, activation);
        let update = |running: &RunningState<Tensor<1>>, batch: Tensor<1>| {
            let value = running
                .value_sync()
                .to_device(&device)
                .mul_scalar(1.0 - bn.momentum)
                .add(batch.detach().mul_scalar(bn.momentum));
            running.update(value.detach());
        };
        update(&bn.running_mean, result.mean);
        update(&bn.running_var, result.variance);
        return result.output;
    }
    let mean = bn.running_mean.value().to_device(&device);
    let var = bn.running_var.value().to_device(&device);
    let scale = bn.gamma.val() / var.add_scalar(bn.epsilon).sqrt();
    let shift = bn.beta.val() - mean * scale.clone();
    channel_affine(x, scale, shift, activation)
}

/// BatchNorm with PyTorch's defaults (epsilon 1e-5, momentum 0.1).
pub fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels)
        .with_epsilon(1e-5)
        .with_momentum(0.1)
        .init(device)
}

/// Global average pooling `[B, C, H, W] -> [B, C]` (the 4x4 `avg_pool2d` of the CIFAR models on
/// 32x32 inputs, and valid for any input size).
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [batch, channels, _, _] = x.dims();
    adaptive_avg_pool2d(x, [1, 1]).reshape([batch, channels])
}

/// A 1x1 projection shortcut: a strided convolution, followed by BatchNorm in the post-activation
/// ResNet and MobileNet-V2 (`shortcut.0`, `shortcut.1` in PyTorch), alone in PreAct ResNet.
#[derive(Module, Debug)]
pub struct Shortcut {
    /// The 1x1 convolution.
    pub conv: Conv2d,
    /// The BatchNorm after it, if any.
    pub bn: Option<BatchNorm>,
}

impl Shortcut {
    /// A shortcut with or without BatchNorm.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        with_bn: bool,
        device: &Device,
    ) -> Self {
        Self {
            conv: conv(in_channels, out_channels, 1, stride, device),
            bn: with_bn.then(|| batch_norm(out_channels, device)),
        }
    }

    /// Applies the shortcut.
    pub fn forward(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let x = conv_forward(&self.conv, x);
        match &self.bn {
            Some(bn) => tap.batch_norm(bn, x),
            None => x,
        }
    }
}

/// Per-channel normalization `(x - mean) / std` applied inside the model, as RobustBench models
/// do, so that every model takes images in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

impl Normalization {
    /// The CIFAR-10 statistics used by most robust CIFAR-10 models.
    pub fn cifar10() -> Self {
        Self {
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2471, 0.2435, 0.2616],
        }
    }

    /// Applies the normalization to `[B, C, H, W]`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let channels = self.mean.len();
        let device = x.device();
        let column = |v: &[f32]| -> Tensor<4> {
            Tensor::from_data(TensorData::new(v.to_vec(), [1, channels, 1, 1]), &device)
        };
        (x - column(&self.mean)) / column(&self.std)
    }
}

/// Applies an optional normalization.
pub fn normalize(normalization: &Option<Normalization>, x: Tensor<4>) -> Tensor<4> {
    match normalization {
        Some(n) => n.apply(x),
        None => x,
    }
}

/// Number of trainable parameters, as PyTorch's `sum(p.numel() for p in model.parameters())`.
/// Burn's `num_params` also counts BatchNorm running statistics, which PyTorch keeps as buffers.
pub fn trainable_params<M: Module>(module: &M) -> usize {
    let mut counter = TrainableCounter::default();
    module.visit(&mut counter);
    counter.count
}

#[derive(Default)]
struct TrainableCounter {
    path: Vec<String>,
    count: usize,
}

impl burn::module::ModuleVisitor for TrainableCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let buffer = self
            .path
            .last()
            .is_some_and(|name| name.starts_with("running_"));
        if !buffer {
            self.count += param.lazy_shape().num_elements();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferd_core::device::test_device;
    use ferd_core::random::{normal, rng};

    /// Upsampling by 2 copies each pixel into a 2x2 block, and its backward sums the upstream
    /// gradient over the block (worked by hand on a 2x3 image).
    #[test]
    fn nearest_upsampling_copies_blocks_and_sums_gradients_back() {
        let device = test_device().autodiff();
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2., 3., 4., 5., 6.], [1, 1, 2, 3]),
            &device,
        )
        .require_grad();
        let y = upsample_nearest(x.clone(), 2);
        assert_eq!(y.dims(), [1, 1, 4, 6]);
        let expected = [
            1., 1., 2., 2., 3., 3., //
            1., 1., 2., 2., 3., 3., //
            4., 4., 5., 5., 6., 6., //
            4., 4., 5., 5., 6., 6.,
        ];
        assert_eq!(y.clone().into_data().try_to_vec::<f32>().unwrap(), expected);
        // Upstream gradient r[i][j] = 6 i + j: each input pixel gets the sum over its block.
        let r: Vec<f32> = (0..24).map(|k| k as f32).collect();
        let r = Tensor::<4>::from_data(TensorData::new(r, [1, 1, 4, 6]), &device);
        let grads = (y * r).sum().backward();
        let dx = x
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        // Block (0, 0): 0 + 1 + 6 + 7 = 14; each step right adds 2 * 4 = 8; down adds 12 * 4.
        assert_eq!(dx, [14., 22., 30., 62., 70., 78.]);
    }

    /// `conv_forward` computes what Burn's own `Conv2d::forward` computes, for every padding kind
    /// (`Same` with an odd total, where the extra pixel goes at the end).
    #[test]
    fn conv_forward_matches_the_layer() {
        let device = test_device();
        let paddings = [
            PaddingConfig2d::Valid,
            PaddingConfig2d::Same,
            PaddingConfig2d::Explicit(2, 0, 1, 3),
        ];
        for (i, padding) in paddings.into_iter().enumerate() {
            let conv = Conv2dConfig::new([3, 4], [4, 3])
                .with_stride([2, 1])
                .with_padding(padding)
                .init(&device);
            let conv = crate::init::initialize(conv, crate::init::Init::PyTorch, 5);
            let x = normal(&mut rng(i as u64), [2, 3, 9, 7], 0.0, 1.0, &device);
            let ours = conv_forward(&conv, x.clone());
            let theirs = conv.forward(x);
            assert_eq!(ours.dims(), theirs.dims(), "padding {i}");
            let diff: f32 = (ours - theirs).abs().max().into_scalar();
            assert!(diff < 1e-5, "padding {i}: {diff}");
        }
    }
}
