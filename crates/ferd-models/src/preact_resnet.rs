//! Pre-activation ResNet (He et al. 2016b) as in the FERD code: BN-ReLU before each convolution,
//! a final BatchNorm before the head (`bn`), a shortcut convolution without BatchNorm applied to
//! the pre-activated input. Built from [`ResNetConfig`] with [`ResNetConfig::init_preact`].
//!
//! Split point: the output of the last stage; the head is BN, ReLU, pooling, linear.
//! PyTorch names: `conv1`, `layer1..4` (blocks: `bn1`, `conv1`, `bn2`, `conv2`, `shortcut.0`),
//! `bn`, `linear`.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

use crate::classifier::{Classifier, Tap};
use crate::layers::{
    Normalization, Shortcut, batch_norm, conv, conv_forward, global_avg_pool, normalize,
};
use crate::resnet::ResNetConfig;

/// The pre-activation residual block.
#[derive(Module, Debug)]
pub struct PreActBlock {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
    shortcut: Option<Shortcut>,
}

impl PreActBlock {
    fn new(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Self {
        let projects = stride != 1 || in_channels != out_channels;
        Self {
            bn1: batch_norm(in_channels, device),
            conv1: conv(in_channels, out_channels, 3, stride, device),
            bn2: batch_norm(out_channels, device),
            conv2: conv(out_channels, out_channels, 3, 1, device),
            shortcut: projects
                .then(|| Shortcut::new(in_channels, out_channels, stride, false, device)),
        }
    }

    fn forward(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let pre = tap.batch_norm_relu(&self.bn1, x.clone());
        let skip = match &self.shortcut {
            Some(shortcut) => shortcut.forward(pre.clone(), tap),
            None => x,
        };
        let out = conv_forward(&self.conv1, pre);
        let out = conv_forward(&self.conv2, tap.batch_norm_relu(&self.bn2, out));
        out + skip
    }
}

/// A pre-activation ResNet.
#[derive(Module, Debug)]
pub struct PreActResNet {
    conv1: Conv2d,
    layer1: Vec<PreActBlock>,
    layer2: Vec<PreActBlock>,
    layer3: Vec<PreActBlock>,
    layer4: Vec<PreActBlock>,
    bn: BatchNorm,
    linear: Linear,
    #[module(skip)]
    normalization: Option<Normalization>,
}

impl ResNetConfig {
    /// Builds the pre-activation variant of this configuration: PreActResNet-18 is
    /// `ResNetConfig::resnet18(c).init_preact(&device)`.
    ///
    /// # Panics
    /// When `blocks` has no stage or more than four.
    pub fn init_preact(&self, device: &Device) -> PreActResNet {
        let mut stages = self.stages(device, PreActBlock::new);
        PreActResNet {
            conv1: conv(self.in_channels, self.base_width, 3, 1, device),
            layer1: stages.remove(0),
            layer2: stages.remove(0),
            layer3: stages.remove(0),
            layer4: stages.remove(0),
            bn: batch_norm(self.last_width(), device),
            linear: LinearConfig::new(self.last_width(), self.num_classes).init(device),
            normalization: self.normalization.clone(),
        }
    }
}

impl Classifier for PreActResNet {
    fn features_tapped(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let mut out = conv_forward(&self.conv1, normalize(&self.normalization, x));
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            out = block.forward(out, tap);
        }
        out
    }

    fn head_tapped(&self, z: Tensor<4>, tap: &mut Tap) -> Tensor<2> {
        self.linear
            .forward(global_avg_pool(tap.batch_norm_relu(&self.bn, z)))
    }

    fn num_classes(&self) -> usize {
        self.linear.weight.dims()[1]
    }
}

impl crate::weights::PyTorchLayout for PreActResNet {
    /// `shortcut.0` (a PyTorch `Sequential`) is `shortcut.conv`.
    fn pytorch_renames(&self) -> &'static [(&'static str, &'static str)] {
        &[(r"\.shortcut\.0\.", ".shortcut.conv.")]
    }
}
