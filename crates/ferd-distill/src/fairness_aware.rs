//! Fairness-Aware Examples (FAEs): the uniformity constraint on the teacher's prediction from
//! its *non-robust* features (method spec, section 2; official `models/IFP.py`).
//!
//! At the teacher's split point the features `Z` `[B, C, H, W]` are split per (sample, channel)
//! by an information bottleneck (Kim et al., NeurIPS 2021): a noise scale `sigma =
//! softplus(lambda)` `[B, C, 1, 1]` is learned so that the teacher still classifies
//! `Z + sigma * N(0, I)` while as much noise as possible is injected. Channels that tolerate
//! noise larger than any channel's own spread (`sigma^2 > max v`) are robust; the rest are
//! non-robust. The generator is then asked to make the teacher's prediction from the
//! non-robust channels alone uniform: `L_uni = KL(U || softmax(T_head(Z * (1 - m))))`, so that
//! the synthesized examples do not let the teacher rely on non-robust features of one class.

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::softplus;
use burn::tensor::{Int, Tensor};
use ferd_core::losses::{cross_entropy, kl_to_uniform};
use ferd_core::random::{Noise, normal};
use ferd_models::Classifier;

use crate::config::FairnessConfig;
use crate::error::Result;
use crate::optim::adam;

/// `d` of the bottleneck's KL term (official code: 1e-10).
const KL_FLOOR: f32 = 1e-10;
/// Adam betas of the noise scale (PyTorch's defaults, as the official code uses).
const NOISE_SCALE_BETAS: [f32; 2] = [0.9, 0.999];

/// The learnable noise scale `lambda` `[B, C, 1, 1]` as a module, for Burn's optimizer.
#[derive(Module, Debug)]
struct NoiseScale {
    lambda: Param<Tensor<4>>,
}

/// The split of the teacher's features and the prediction from their non-robust part.
#[derive(Debug, Clone)]
pub struct NonRobust {
    /// The robust mask `m` `[B, C, 1, 1]`: 1 for robust channels (plain tensor).
    pub mask: Tensor<4>,
    /// The teacher's logits from the non-robust channels, `T_head(Z * (1 - m))`: differentiable
    /// through `Z` (towards the generator).
    pub logits: Tensor<2>,
}

impl NonRobust {
    /// The fraction of (sample, channel) pairs found robust.
    pub fn robust_fraction(&self) -> f32 {
        self.robust_share().into_scalar::<f32>()
    }

    /// [`NonRobust::robust_fraction`] as a one-element tensor, left on the device.
    pub fn robust_share(&self) -> Tensor<1> {
        self.mask.clone().mean()
    }

    /// `L_uni = KL(U || softmax(t_nr))`, the batch mean.
    pub fn uniformity_loss(&self) -> Result<Tensor<1>> {
        Ok(kl_to_uniform(self.logits.clone())?)
    }
}

/// The unbiased spatial variance `v` `[B, C, 1, 1]` of each (sample, channel) of `z` (divisor
/// `H W - 1`, as `torch.var`).
pub fn spatial_variance(z: &Tensor<4>) -> Tensor<4> {
    let [batch, channels, height, width] = z.dims();
    z.clone()
        .reshape([batch, channels, height * width])
        .var(2)
        .reshape([batch, channels, 1, 1])
}

/// Learns the noise scale `lambda` `[B, C, 1, 1]` on the detached features `z` (a plain tensor):
/// `inner_steps` Adam steps from 0 on
/// `CE(T_head(z + softplus(lambda) eps), y) + beta mean 0.5 (v / (s^2 + d) + log((s^2 + d) / (v + d)) - 1)`,
/// fresh `eps ~ N(0, I)` `[B, C, 1, 1]` from `noise` at every step. Returns `lambda` (plain).
pub fn noise_scale<C: Classifier>(
    teacher: &C,
    z: &Tensor<4>,
    labels: &Tensor<1, Int>,
    config: &FairnessConfig,
    noise: &mut dyn Noise,
) -> Result<Tensor<4>> {
    let [batch, channels, _, _] = z.dims();
    let device = z.device().autodiff();
    let z = z.clone().without_autodiff().autodiff();
    let labels = labels.clone().without_autodiff().autodiff();
    let variance = spatial_variance(&z);
    let mut scale = NoiseScale {
        lambda: Param::from_tensor(Tensor::zeros([batch, channels, 1, 1], &device)),
    };
    let mut optim = adam(NOISE_SCALE_BETAS[0], NOISE_SCALE_BETAS[1]);
    for _ in 0..config.inner_steps {
        let sigma = softplus(scale.lambda.val(), 1.0);
        let eps = normal(noise, [batch, channels, 1, 1], 0.0, 1.0, &device);
        let logits = teacher.head(z.clone() + sigma.clone() * eps);
        let ce = cross_entropy(logits, labels.clone())?;
        let s2 = sigma.powi_scalar(2).add_scalar(KL_FLOOR);
        let kl = (variance.clone() / s2.clone()
            + (s2 / variance.clone().add_scalar(KL_FLOOR)).log())
        .sub_scalar(1.0)
        .mul_scalar(0.5)
        .mean();
        let loss = ce + kl.mul_scalar(config.beta);
        let grads = GradientsParams::from_grads(loss.backward(), &scale);
        scale = optim.step(config.lr, scale, grads);
    }
    Ok(scale.lambda.val().without_autodiff())
}

/// The robust mask `1[softplus(lambda)^2 > max_{b,c} v_bc]` `[B, C, 1, 1]` (strict, threshold
/// over the whole batch and all channels, as the official code).
pub fn robust_mask(lambda: &Tensor<4>, z: &Tensor<4>) -> Tensor<4> {
    // The threshold stays on the device: no read-back in the middle of a synthesis step.
    let threshold = spatial_variance(&z.clone().without_autodiff())
        .max()
        .reshape([1, 1, 1, 1])
        .expand(lambda.dims());
    softplus(lambda.clone().without_autodiff(), 1.0)
        .powi_scalar(2)
        .greater(threshold)
        .float()
}

/// Splits the teacher's features `z` (differentiable towards the generator) into robust and
/// non-robust channels and returns the prediction from the non-robust ones.
pub fn non_robust<C: Classifier>(
    teacher: &C,
    z: &Tensor<4>,
    labels: &Tensor<1, Int>,
    config: &FairnessConfig,
    noise: &mut dyn Noise,
) -> Result<NonRobust> {
    let lambda = noise_scale(teacher, z, labels, config, noise)?;
    let mask = robust_mask(&lambda, z);
    let keep = mask.clone().neg().add_scalar(1.0);
    let keep = if z.device().is_autodiff() {
        keep.autodiff()
    } else {
        keep
    };
    let logits = teacher.head(z.clone() * keep);
    Ok(NonRobust { mask, logits })
}
