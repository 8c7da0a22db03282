//! The classifier interface shared by attacks, training and distillation.

use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use ferd_kernels::{Activation, batch_moments};

use crate::layers::batch_norm_forward;

/// The input statistics of one BatchNorm layer during a forward pass, next to the layer's
/// running statistics: what DeepInversion's loss compares (`||mu - running_mean||_2 +
/// ||var - running_var||_2`).
#[derive(Debug, Clone)]
pub struct BnStats {
    /// Mean of the layer's input over N, H, W: `[C]`.
    pub batch_mean: Tensor<1>,
    /// Biased variance of the layer's input over N, H, W: `[C]`.
    pub batch_var: Tensor<1>,
    /// The layer's running mean: `[C]`.
    pub running_mean: Tensor<1>,
    /// The layer's running variance: `[C]`.
    pub running_var: Tensor<1>,
}

/// What a forward pass records on its way: nothing, or the input statistics of every BatchNorm
/// layer in execution order. It replaces the forward hooks PyTorch code registers on BN layers;
/// every model routes its BN layers through [`Tap::batch_norm`], so the capture is written once.
#[derive(Debug, Default)]
pub struct Tap {
    bn_stats: Option<Vec<BnStats>>,
}

impl Tap {
    /// Records nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Records the input statistics of every BatchNorm layer.
    pub fn bn_stats() -> Self {
        Self {
            bn_stats: Some(Vec::new()),
        }
    }

    /// Applies `bn` to `x`, recording `x`'s statistics when asked. The layer itself behaves as
    /// it always does (inference mode on a `valid()` or frozen model).
    pub fn batch_norm(&mut self, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
        self.batch_norm_then(bn, x, Activation::Identity)
    }

    /// `relu(bn(x))`, recording `x`'s statistics when asked; in inference mode one op
    /// ([`ferd_kernels::channel_affine`]).
    pub fn batch_norm_relu(&mut self, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
        self.batch_norm_then(bn, x, Activation::Relu)
    }

    /// `activation(bn(x))` ([`batch_norm_forward`]), recording `x`'s statistics when asked.
    fn batch_norm_then(
        &mut self,
        bn: &BatchNorm,
        x: Tensor<4>,
        activation: Activation,
    ) -> Tensor<4> {
        if let Some(stats) = &mut self.bn_stats {
            let moments = batch_moments(x.clone());
            stats.push(BnStats {
                batch_mean: moments.mean,
                batch_var: moments.variance,
                running_mean: bn.running_mean.value(),
                running_var: bn.running_var.value(),
            });
        }
        batch_norm_forward(bn, x, activation)
    }

    /// The recorded statistics (empty when nothing was recorded).
    pub fn into_bn_stats(self) -> Vec<BnStats> {
        self.bn_stats.unwrap_or_default()
    }
}

/// A classifier of images in `[0, 1]` `[B, C, H, W]` into logits `[B, classes]`, split into
/// `features` (up to the model's split point) and `head` (the rest), with
/// `forward(x) = head(features(x))`.
///
/// Implement the two `*_tapped` methods (routing every BatchNorm through the [`Tap`]) and
/// `num_classes`; the rest follows. A user's own Burn module plugs in the same way.
pub trait Classifier {
    /// From images to the split point, recording into `tap`.
    fn features_tapped(&self, x: Tensor<4>, tap: &mut Tap) -> Tensor<4>;

    /// From the split point to logits, recording into `tap`.
    fn head_tapped(&self, z: Tensor<4>, tap: &mut Tap) -> Tensor<2>;

    /// Number of classes.
    fn num_classes(&self) -> usize;

    /// From images to the split point.
    fn features(&self, x: Tensor<4>) -> Tensor<4> {
        self.features_tapped(x, &mut Tap::none())
    }

    /// From the split point to logits.
    fn head(&self, z: Tensor<4>) -> Tensor<2> {
        self.head_tapped(z, &mut Tap::none())
    }

    /// Logits.
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head(self.features(x))
    }

    /// Logits and the input statistics of every BatchNorm layer, in execution order.
    fn forward_with_bn_stats(&self, x: Tensor<4>) -> (Tensor<2>, Vec<BnStats>) {
        let mut tap = Tap::bn_stats();
        let z = self.features_tapped(x, &mut tap);
        let logits = self.head_tapped(z, &mut tap);
        (logits, tap.into_bn_stats())
    }
}
