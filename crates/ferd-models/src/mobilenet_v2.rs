//! MobileNet-V2 (Sandler et al. 2018) in its CIFAR variant (the common PyTorch CIFAR repository
//! definition): stride 1 in the stem and in the second stage for 32x32 inputs, inverted residual
//! blocks, a 1x1 conv to 1280 channels, global pooling, a linear head.
//!
//! Split point: the last feature map before pooling (after `conv2`, `bn2`, ReLU).
//! PyTorch names: `conv1`, `bn1`, `layers.N.{conv1, bn1, conv2, bn2, conv3, bn3, shortcut.{0,1}}`,
//! `conv2`, `bn2`, `linear`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::classifier::{Classifier, Tap};
use crate::layers::{
    Normalization, Shortcut, batch_norm, conv, conv_forward, global_avg_pool, grouped_conv,
    normalize,
};

/// `(expansion, out_channels, blocks, stride)` per stage, CIFAR strides.
const STAGES: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// Configuration of a [`MobileNetV2`].
#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// Number of classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Width multiplier: every channel count is `round(c * width)`, at least 1.
    #[config(default = 1.0)]
    pub width: f64,
    /// Normalization applied to the `[0, 1]` input.
    #[config(default = "None")]
    pub normalization: Option<Normalization>,
}

/// The inverted residual block: 1x1 expand, 3x3 depthwise, 1x1 project; a residual connection
/// (through a 1x1 projection when the widths differ) for stride 1.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    shortcut: Option<Shortcut>,
    stride: usize,
}

impl InvertedResidual {
    fn new(
        in_channels: usize,
        out_channels: usize,
        expansion: usize,
        stride: usize,
        device: &Device,
    ) -> Self {
        let hidden = expansion * in_channels;
        Self {
            conv1: conv(in_channels, hidden, 1, 1, device),
            bn1: batch_norm(hidden, device),
            conv2: grouped_conv(hidden, hidden, 3, stride, hidden, device),
            bn2: batch_norm(hidden, device),
            conv3: conv(hidden, out_channels, 1, 1, device),
            bn3: batch_norm(out_channels, device),
            shortcut: (stride == 1 && in_channels != out_channels)
                .then(|| Shortcut::new(in_channels, out_channels, 1, true, device)),
            stride,
        }
    }

    fn forward(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let out = tap.batch_norm_relu(&self.bn1, conv_forward(&self.conv1, x.clone()));
        let out = tap.batch_norm_relu(&self.bn2, conv_forward(&self.conv2, out));
        let out = tap.batch_norm(&self.bn3, conv_forward(&self.conv3, out));
        if self.stride != 1 {
            return out;
        }
        match &self.shortcut {
            Some(shortcut) => out + shortcut.forward(x, tap),
            None => out + x,
        }
    }
}

/// MobileNet-V2 for 32x32 inputs.
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    conv1: Conv2d,
    bn1: BatchNorm,
    layers: Vec<InvertedResidual>,
    conv2: Conv2d,
    bn2: BatchNorm,
    linear: Linear,
    #[module(skip)]
    normalization: Option<Normalization>,
}

impl MobileNetV2Config {
    fn scaled(&self, channels: usize) -> usize {
        ((channels as f64 * self.width).round() as usize).max(1)
    }

    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let stem = self.scaled(32);
        let mut in_channels = stem;
        let mut layers = Vec::new();
        for (expansion, out, blocks, stride) in STAGES {
            let out = self.scaled(out);
            for b in 0..blocks {
                layers.push(InvertedResidual::new(
                    in_channels,
                    out,
                    expansion,
                    if b == 0 { stride } else { 1 },
                    device,
                ));
                in_channels = out;
            }
        }
        let last = self.scaled(1280);
        MobileNetV2 {
            conv1: conv(self.in_channels, stem, 3, 1, device),
            bn1: batch_norm(stem, device),
            layers,
            conv2: conv(in_channels, last, 1, 1, device),
            bn2: batch_norm(last, device),
            linear: LinearConfig::new(last, self.num_classes).init(device),
            normalization: self.normalization.clone(),
        }
    }
}

impl Classifier for MobileNetV2 {
    fn features_tapped(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let x = normalize(&self.normalization, x);
        let mut out = tap.batch_norm_relu(&self.bn1, conv_forward(&self.conv1, x));
        for block in &self.layers {
            out = block.forward(out, tap);
        }
        tap.batch_norm_relu(&self.bn2, conv_forward(&self.conv2, out))
    }

    fn head_tapped(&self, z: Tensor<4>, _tap: &mut Tap) -> Tensor<2> {
        self.linear.forward(global_avg_pool(z))
    }

    fn num_classes(&self) -> usize {
        self.linear.weight.dims()[1]
    }
}

impl crate::weights::PyTorchLayout for MobileNetV2 {
    /// `shortcut.0`/`shortcut.1` (a PyTorch `Sequential`) are `shortcut.conv`/`shortcut.bn`.
    fn pytorch_renames(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (r"\.shortcut\.0\.", ".shortcut.conv."),
            (r"\.shortcut\.1\.", ".shortcut.bn."),
        ]
    }

    /// The FERD repository's MobileNet-V2 calls its head `fc`.
    fn pytorch_aliases(&self) -> &'static [(&'static str, &'static str)] {
        &[(r"^fc\.", "linear.")]
    }
}
