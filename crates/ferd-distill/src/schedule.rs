//! Learning-rate schedules, as pure functions of the position in training (so that a resumed
//! run continues the schedule exactly).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the learning rate evolves over training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub enum LrSchedule {
    /// The base rate throughout.
    Constant,
    /// The base rate multiplied by `gamma` at each milestone epoch (0-based: from epoch
    /// `milestones[i]` on), as PyTorch's `MultiStepLR` stepped once per epoch.
    MultiStep {
        /// Epochs at which the rate drops.
        milestones: Vec<usize>,
        /// The factor.
        gamma: f64,
    },
    /// Cosine annealing from the base rate to 0 over all iterations.
    Cosine,
}

impl LrSchedule {
    /// The rate at iteration `step` of epoch `epoch`, with `steps` iterations per epoch and
    /// `epochs` epochs in all.
    pub fn lr(&self, base: f64, epoch: usize, step: usize, steps: usize, epochs: usize) -> f64 {
        match self {
            Self::Constant => base,
            Self::MultiStep { milestones, gamma } => {
                let drops = milestones.iter().filter(|&&m| epoch >= m).count();
                base * gamma.powi(drops as i32)
            }
            Self::Cosine => {
                let t = (epoch * steps + step) as f64;
                let total = (epochs * steps).max(1) as f64;
                0.5 * base * (1.0 + (std::f64::consts::PI * t / total).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistep_drops_at_milestones() {
        let s = LrSchedule::MultiStep {
            milestones: vec![100, 150],
            gamma: 0.1,
        };
        let lr = |e| s.lr(0.1, e, 0, 10, 200);
        assert_eq!(lr(0), 0.1);
        assert_eq!(lr(99), 0.1);
        assert!((lr(100) - 0.01).abs() < 1e-12);
        assert!((lr(150) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn cosine_goes_from_base_to_zero() {
        let s = LrSchedule::Cosine;
        assert_eq!(s.lr(0.2, 0, 0, 10, 4), 0.2);
        assert!((s.lr(0.2, 2, 0, 10, 4) - 0.1).abs() < 1e-12);
        assert!(s.lr(0.2, 3, 9, 10, 4) < 0.001);
    }
}
