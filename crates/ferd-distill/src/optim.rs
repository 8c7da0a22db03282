//! The optimizers of ferd's training loops, with PyTorch's conventions made explicit where
//! Burn's defaults differ: SGD without dampening, Adam with epsilon 1e-8.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, ModuleOptimizer, SgdConfig};
use serde::{Deserialize, Serialize};

/// SGD with momentum as PyTorch's `torch.optim.SGD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sgd {
    /// Momentum (0 = none). PyTorch's dampening 0 is set explicitly (Burn's default differs).
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay, added to the gradient as PyTorch's SGD does.
    pub weight_decay: f64,
}

impl Sgd {
    /// The optimizer.
    pub fn build(&self) -> ModuleOptimizer {
        let momentum = (self.momentum > 0.0).then(|| {
            MomentumConfig::new()
                .with_momentum(self.momentum)
                .with_dampening(0.0)
                .with_nesterov(self.nesterov)
        });
        let decay =
            (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        SgdConfig::new()
            .with_momentum(momentum)
            .with_weight_decay(decay)
            .init()
    }

    /// Checks the settings.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..1.0).contains(&self.momentum)
            || self.weight_decay.is_nan()
            || self.weight_decay < 0.0
        {
            return Err(format!(
                "momentum {} must be in [0, 1), weight decay {} >= 0",
                self.momentum, self.weight_decay
            ));
        }
        Ok(())
    }
}

/// Adam as PyTorch's `torch.optim.Adam` with the given betas: epsilon 1e-8 (Burn's default is
/// 1e-5), no weight decay.
pub fn adam(beta_1: f32, beta_2: f32) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(beta_1)
        .with_beta_2(beta_2)
        .with_epsilon(PYTORCH_ADAM_EPSILON)
        .init()
}

/// PyTorch's default Adam epsilon.
pub const PYTORCH_ADAM_EPSILON: f32 = 1e-8;
