//! A small CNN for 28x28 single-channel images (Fashion-MNIST, MNIST), sized for CPU teachers and
//! students: two conv-conv-pool stages of `width` and `2 width` channels, then a two-layer MLP.
//!
//! Split point: the last pooled feature map `[B, 2 width, 7, 7]`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor};

use crate::classifier::{Classifier, Tap};
use crate::layers::{Normalization, batch_norm, conv, conv_forward, normalize};

/// Configuration of a [`SmallCnn`].
#[derive(Config, Debug)]
pub struct SmallCnnConfig {
    /// Channels of the first stage (the second has twice as many).
    #[config(default = 32)]
    pub width: usize,
    /// Image channels.
    #[config(default = 1)]
    pub in_channels: usize,
    /// Image side (28 for MNIST-like data; must be divisible by 4).
    #[config(default = 28)]
    pub image_side: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub num_classes: usize,
    /// Normalization applied to the `[0, 1]` input.
    #[config(default = "None")]
    pub normalization: Option<Normalization>,
}

/// Conv-BN-ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBn {
    fn new(in_channels: usize, out_channels: usize, device: &Device) -> Self {
        Self {
            conv: conv(in_channels, out_channels, 3, 1, device),
            bn: batch_norm(out_channels, device),
        }
    }

    fn forward(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        tap.batch_norm_relu(&self.bn, conv_forward(&self.conv, x))
    }
}

/// The small CNN.
#[derive(Module, Debug)]
pub struct SmallCnn {
    convs: Vec<ConvBn>,
    fc1: Linear,
    fc2: Linear,
    #[module(skip)]
    normalization: Option<Normalization>,
}

impl SmallCnnConfig {
    /// Builds the model on `device`.
    ///
    /// # Panics
    /// When `image_side` is not a positive multiple of 4.
    pub fn init(&self, device: &Device) -> SmallCnn {
        assert!(
            self.image_side > 0 && self.image_side.is_multiple_of(4),
            "image side {} is not a multiple of 4",
            self.image_side
        );
        let (w, side) = (self.width, self.image_side / 4);
        SmallCnn {
            convs: vec![
                ConvBn::new(self.in_channels, w, device),
                ConvBn::new(w, w, device),
                ConvBn::new(w, 2 * w, device),
                ConvBn::new(2 * w, 2 * w, device),
            ],
            fc1: LinearConfig::new(2 * w * side * side, 8 * w).init(device),
            fc2: LinearConfig::new(8 * w, self.num_classes).init(device),
            normalization: self.normalization.clone(),
        }
    }
}

impl Classifier for SmallCnn {
    fn features_tapped(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4> {
        let mut out = normalize(&self.normalization, x);
        for pair in self.convs.chunks(2) {
            for layer in pair {
                out = layer.forward(out, tap);
            }
            out = ferd_kernels::max_pool2d(out, MaxPoolOptions::new([2, 2]));
        }
        out
    }

    fn head_tapped(&self, z: Tensor<4>, _tap: &mut Tap) -> Tensor<2> {
        let [batch, c, h, w] = z.dims();
        self.fc2
            .forward(relu(self.fc1.forward(z.reshape([batch, c * h * w]))))
    }

    fn num_classes(&self) -> usize {
        self.fc2.weight.dims()[1]
    }
}

impl crate::weights::PyTorchLayout for SmallCnn {
    /// A ferd architecture: its PyTorch twin uses the same names.
    fn pytorch_renames(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferd_core::device::test_device;

    /// The first recorded statistics are those of the first conv's output, computed on the host
    /// (mean and biased variance over N, H, W), next to the layer's running statistics.
    #[test]
    fn recorded_statistics_are_the_bn_input_statistics() {
        let device = test_device();
        let model = SmallCnnConfig::new().with_width(3).init(&device);
        let model = crate::init::initialize(model, crate::init::Init::PyTorch, 1);
        let mut noise = ferd_core::random::rng(2);
        let x = ferd_core::random::uniform(&mut noise, [4, 1, 28, 28], 0.0, 1.0, &device);
        let (_, stats) = model.forward_with_bn_stats(x.clone());
        let input = model.convs[0]
            .conv
            .forward(x)
            .try_to_vec_as::<f32>()
            .unwrap();
        let plane = 28 * 28;
        for c in 0..3 {
            let values: Vec<f64> = (0..4)
                .flat_map(|b| {
                    input[(b * 3 + c) * plane..(b * 3 + c + 1) * plane]
                        .iter()
                        .map(|&v| f64::from(v))
                })
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            let got_mean = f64::from(stats[0].batch_mean.try_to_vec_as::<f32>().unwrap()[c]);
            let got_var = f64::from(stats[0].batch_var.try_to_vec_as::<f32>().unwrap()[c]);
            assert!(
                (got_mean - mean).abs() < 1e-5 * mean.abs().max(1.0),
                "{got_mean} vs {mean}"
            );
            assert!(
                (got_var - var).abs() < 1e-4 * var.max(1e-3),
                "{got_var} vs {var}"
            );
        }
        assert_eq!(
            stats[0].running_var.try_to_vec_as::<f32>().unwrap(),
            vec![1.0; 3]
        );
        assert_eq!(stats.len(), 4);
    }
}
