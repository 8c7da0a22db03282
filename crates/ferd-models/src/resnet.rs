//! The CIFAR ResNet (He et al. 2016) as in the DFHL/FERD code: a 3x3 stem without max-pool,
//! stages of BasicBlocks, global average pooling and a linear head. ResNet-18 is
//! `blocks = [2, 2, 2, 2]`, ResNet-34 `[3, 4, 6, 3]`; a small ResNet for 28x28 data is
//! `[1, 1, 1]` with `in_channels = 1` and a narrow `base_width`.
//!
//! Split point: the output of the last stage. PyTorch names: `conv1`, `bn1`, `layer1..4`,
//! `linear`; in blocks `conv1`, `bn1`, `conv2`, `bn2`, `shortcut.{0,1}`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::classifier::{Classifier, Tap};
use crate::layers::{
    Normalization, Shortcut, batch_norm, conv, conv_forward, global_avg_pool, normalize,
};

/// Configuration of a [`ResNet`], or of a [`PreActResNet`](crate::preact_resnet::PreActResNet)
/// with [`ResNetConfig::init_preact`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// BasicBlocks per stage (1 to 4 stages); stage `i` has `base_width * 2^i` channels and
    /// stride 2 except the first.
    pub blocks: Vec<usize>,
    /// Channels of the stem and the first stage (64 in ResNet-18).
    #[config(default = 64)]
    pub base_width: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Normalization applied to the `[0, 1]` input.
    #[config(default = "None")]
    pub normalization: Option<Normalization>,
}

/// The post-activation residual block.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<Shortcut>,
}

impl BasicBlock {
    fn new(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Self {
        let projects = stride != 1 || in_channels != out_channels;
        Self {
            conv1: conv(in_channels, out_channels, 3, stride, device),
            bn1: batch_norm(out_channels, device),
            conv2: conv(out_channels, out_channels, 3, 1, device),
            bn2: batch_norm(out_channels, device),
            shortcut: projects
                .then(|| Shortcut::new(in_channels, out_channels, stride, true, device)),
        }
    }

    fn forward(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let out = tap.batch_norm_relu(&self.bn1, conv_forward(&self.conv1, x.clone()));
        let out = tap.batch_norm(&self.bn2, conv_forward(&self.conv2, out));
        let skip = match &self.shortcut {
            Some(shortcut) => shortcut.forward(x, tap),
            None => x,
        };
        relu(out + skip)
    }
}

/// A CIFAR-style ResNet.
#[derive(Module, Debug)]
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    layer1: Vec<BasicBlock>,
    layer2: Vec<BasicBlock>,
    layer3: Vec<BasicBlock>,
    layer4: Vec<BasicBlock>,
    linear: Linear,
    #[module(skip)]
    normalization: Option<Normalization>,
}

impl ResNetConfig {
    /// ResNet-18: `[2, 2, 2, 2]` (also PreActResNet-18 with [`ResNetConfig::init_preact`]).
    pub fn resnet18(num_classes: usize) -> Self {
        Self::new(vec![2, 2, 2, 2]).with_num_classes(num_classes)
    }

    /// ResNet-34: `[3, 4, 6, 3]` (also PreActResNet-34 with [`ResNetConfig::init_preact`]).
    pub fn resnet34(num_classes: usize) -> Self {
        Self::new(vec![3, 4, 6, 3]).with_num_classes(num_classes)
    }

    /// A small ResNet for 28x28 grey images: three stages of one block, `width` channels first.
    pub fn small(width: usize, num_classes: usize) -> Self {
        Self::new(vec![1, 1, 1])
            .with_base_width(width)
            .with_in_channels(1)
            .with_num_classes(num_classes)
    }

    /// Channels of the last stage.
    pub(crate) fn last_width(&self) -> usize {
        self.base_width << (self.blocks.len() - 1)
    }

    /// The four stages (unused ones empty) of blocks built by `block(in, out, stride, device)`:
    /// stage `i` has `base_width * 2^i` channels and stride 2 in its first block except stage 0.
    ///
    /// # Panics
    /// When `blocks` has no stage or more than four (a configuration error, not user data).
    pub(crate) fn stages<B>(
        &self,
        device: &Device,
        block: impl Fn(usize, usize, usize, &Device) -> B,
    ) -> Vec<Vec<B>> {
        assert!(
            (1..=4).contains(&self.blocks.len()),
            "a ResNet needs 1 to 4 stages, got {:?}",
            self.blocks
        );
        let mut in_channels = self.base_width;
        let mut stages: Vec<Vec<B>> = (0..4).map(|_| Vec::new()).collect();
        for (i, &count) in self.blocks.iter().enumerate() {
            let out_channels = self.base_width << i;
            for b in 0..count {
                let stride = if b == 0 && i > 0 { 2 } else { 1 };
                stages[i].push(block(in_channels, out_channels, stride, device));
                in_channels = out_channels;
            }
        }
        stages
    }

    /// Builds the model on `device`.
    ///
    /// # Panics
    /// When `blocks` has no stage or more than four.
    pub fn init(&self, device: &Device) -> ResNet {
        let mut stages = self.stages(device, BasicBlock::new);
        ResNet {
            conv1: conv(self.in_channels, self.base_width, 3, 1, device),
            bn1: batch_norm(self.base_width, device),
            layer1: stages.remove(0),
            layer2: stages.remove(0),
            layer3: stages.remove(0),
            layer4: stages.remove(0),
            linear: LinearConfig::new(self.last_width(), self.num_classes).init(device),
            normalization: self.normalization.clone(),
        }
    }
}

impl Classifier for ResNet {
    fn features_tapped(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let x = normalize(&self.normalization, x);
        let mut out = tap.batch_norm_relu(&self.bn1, conv_forward(&self.conv1, x));
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

    fn head_tapped(&self, z: Tensor<4>, _tap: &mut Tap) -> Tensor<2> {
        self.linear.forward(global_avg_pool(z))
    }

    fn num_classes(&self) -> usize {
        self.linear.weight.dims()[1]
    }
}

impl crate::weights::PyTorchLayout for ResNet {
    /// `shortcut.0`/`shortcut.1` (a PyTorch `Sequential`) are `shortcut.conv`/`shortcut.bn`.
    fn pytorch_renames(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (r"\.shortcut\.0\.", ".shortcut.conv."),
            (r"\.shortcut\.1\.", ".shortcut.bn."),
        ]
    }
}
