//! WideResNet (Zagoruyko & Komodakis 2016) as used by TRADES, RobustBench and FERD's teacher:
//! depth `6n + 4`, widths `16, 16k, 32k, 64k`, pre-activation blocks.
//! WRN-34-10 is the paper's teacher; WRN-16-k suits small runs.
//!
//! Split point: the output of block 3 including the final BatchNorm, before its ReLU; the head
//! is ReLU, pooling, `fc`. PyTorch names: `conv1`, `block{1,2,3}.layer.N.{bn1, conv1, bn2,
//! conv2, convShortcut}`, `bn1`, `fc` (`convShortcut` is `conv_shortcut` here).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::classifier::{Classifier, Tap};
use crate::layers::{Normalization, batch_norm, conv, conv_forward, global_avg_pool, normalize};

/// Configuration of a [`WideResNet`].
#[derive(Config, Debug)]
pub struct WideResNetConfig {
    /// Depth, `6n + 4` (34 for WRN-34-10).
    pub depth: usize,
    /// Widen factor `k` (10 for WRN-34-10).
    pub widen_factor: usize,
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

/// The WRN block: BN-ReLU, conv, BN-ReLU, conv; the first block of a group projects.
#[derive(Module, Debug)]
pub struct WrnBlock {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
}

impl WrnBlock {
    fn new(in_channels: usize, out_channels: usize, stride: usize, device: &Device) -> Self {
        Self {
            bn1: batch_norm(in_channels, device),
            conv1: conv(in_channels, out_channels, 3, stride, device),
            bn2: batch_norm(out_channels, device),
            conv2: conv(out_channels, out_channels, 3, 1, device),
            conv_shortcut: (in_channels != out_channels)
                .then(|| conv(in_channels, out_channels, 1, stride, device)),
        }
    }

    fn forward(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let pre = tap.batch_norm_relu(&self.bn1, x.clone());
        let out = tap.batch_norm_relu(&self.bn2, conv_forward(&self.conv1, pre.clone()));
        let out = conv_forward(&self.conv2, out);
        match &self.conv_shortcut {
            // A projecting block adds the projection of the pre-activated input.
            Some(shortcut) => shortcut.forward(pre) + out,
            None => x + out,
        }
    }
}

/// A group of WRN blocks (`NetworkBlock` in PyTorch, its blocks under `layer`).
#[derive(Module, Debug)]
pub struct WrnGroup {
    layer: Vec<WrnBlock>,
}

/// A WideResNet.
#[derive(Module, Debug)]
pub struct WideResNet {
    conv1: Conv2d,
    block1: WrnGroup,
    block2: WrnGroup,
    block3: WrnGroup,
    bn1: BatchNorm,
    fc: Linear,
    #[module(skip)]
    normalization: Option<Normalization>,
}

impl WideResNetConfig {
    /// WRN-34-10, the FERD teacher.
    pub fn wrn_34_10(num_classes: usize) -> Self {
        Self::new(34, 10).with_num_classes(num_classes)
    }

    /// Builds the model on `device`.
    ///
    /// # Panics
    /// When `depth` is not `6n + 4` with `n >= 1`.
    pub fn init(&self, device: &Device) -> WideResNet {
        assert!(
            self.depth >= 10 && (self.depth - 4).is_multiple_of(6),
            "WRN depth must be 6n + 4, got {}",
            self.depth
        );
        let n = (self.depth - 4) / 6;
        let widths = [
            16,
            16 * self.widen_factor,
            32 * self.widen_factor,
            64 * self.widen_factor,
        ];
        let group = |i: usize, stride: usize| WrnGroup {
            layer: (0..n)
                .map(|b| {
                    let in_channels = if b == 0 { widths[i] } else { widths[i + 1] };
                    WrnBlock::new(
                        in_channels,
                        widths[i + 1],
                        if b == 0 { stride } else { 1 },
                        device,
                    )
                })
                .collect(),
        };
        WideResNet {
            conv1: conv(self.in_channels, widths[0], 3, 1, device),
            block1: group(0, 1),
            block2: group(1, 2),
            block3: group(2, 2),
            bn1: batch_norm(widths[3], device),
            fc: LinearConfig::new(widths[3], self.num_classes).init(device),
            normalization: self.normalization.clone(),
        }
    }
}

impl Classifier for WideResNet {
    fn features_tapped(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let mut out = conv_forward(&self.conv1, normalize(&self.normalization, x));
        for block in self
            .block1
            .layer
            .iter()
            .chain(&self.block2.layer)
            .chain(&self.block3.layer)
        {
            out = block.forward(out, tap);
        }
        tap.batch_norm(&self.bn1, out)
    }

    fn head_tapped(&self, z: Tensor<4>, _tap: &mut Tap) -> Tensor<2> {
        self.fc.forward(global_avg_pool(relu(z)))
    }

    fn num_classes(&self) -> usize {
        self.fc.weight.dims()[1]
    }
}

impl crate::weights::PyTorchLayout for WideResNet {
    /// `convShortcut` is `conv_shortcut`.
    fn pytorch_renames(&self) -> &'static [(&'static str, &'static str)] {
        &[(r"\.convShortcut\.", ".conv_shortcut.")]
    }
}
