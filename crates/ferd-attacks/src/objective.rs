//! What a gradient attack maximizes, per sample. The losses themselves live in
//! `ferd_core::losses`; this module only chooses among them.

use burn::tensor::{Int, Tensor};
use ferd_core::losses::{
    cross_entropy_per_sample, cw_margin, dlr, dlr_targeted, kl_divergence_per_sample,
    kl_to_uniform_per_sample,
};

use crate::error::Result;
use crate::rows::{select_labels, select_rows};

/// A per-sample objective that an attack increases.
#[derive(Debug, Clone)]
pub enum Objective {
    /// Cross-entropy with the true labels (FGSM, PGD, APGD-CE).
    CrossEntropy,
    /// Minus the cross-entropy with target labels: the attack pulls towards the targets.
    TargetedCrossEntropy {
        /// One target class per sample.
        targets: Tensor<1, Int>,
    },
    /// `KL(softmax(reference) || softmax(z))`: TRADES' inner maximization, where the reference
    /// is the model's clean logits.
    Kl {
        /// Reference logits `[B, C]`.
        reference: Tensor<2>,
    },
    /// FERD's Uniform-Target objective: `KL(softmax(reference) || softmax(z)) - gamma KL(U ||
    /// softmax(z))`, `U` uniform over the classes (method spec, section 3). Ascending it moves the
    /// prediction away from the teacher's (`reference`) while keeping it close to uniform, so
    /// the examples do not all collapse onto the nearest wrong class: their targets spread over
    /// the classes. `gamma = 0` is plain KL-PGD (TRADES' inner maximization).
    UniformTarget {
        /// The teacher's logits `[B, C]`.
        reference: Tensor<2>,
        /// Weight of the uniformity term (`gamma`).
        gamma: f32,
    },
    /// The CW margin `max(max_{j != y} z_j - z_y, -kappa)` (CW-inf).
    CwMargin {
        /// The confidence cap, 50 in the robust-fairness literature.
        kappa: f32,
    },
    /// The untargeted DLR loss (APGD-DLR).
    Dlr,
    /// The targeted DLR loss (APGD-T).
    DlrTargeted {
        /// One target class per sample.
        targets: Tensor<1, Int>,
    },
}

impl Objective {
    /// The objective per sample: `[B]`.
    pub fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Result<Tensor<1>> {
        Ok(match self {
            Self::CrossEntropy => cross_entropy_per_sample(logits, labels)?,
            Self::TargetedCrossEntropy { targets } => {
                cross_entropy_per_sample(logits, targets.clone())?.neg()
            }
            Self::Kl { reference } => kl_divergence_per_sample(reference.clone(), logits)?,
            Self::UniformTarget { reference, gamma } => {
                let uniformity = kl_to_uniform_per_sample(logits.clone())?.mul_scalar(*gamma);
                kl_divergence_per_sample(reference.clone(), logits)? - uniformity
            }
            Self::CwMargin { kappa } => cw_margin(logits, labels, *kappa)?,
            Self::Dlr => dlr(logits, labels)?,
            Self::DlrTargeted { targets } => dlr_targeted(logits, labels, targets.clone())?,
        })
    }

    /// The objective restricted to some samples of the batch (its per-sample data follows).
    pub(crate) fn rows(&self, rows: &[usize]) -> Self {
        match self {
            Self::TargetedCrossEntropy { targets } => Self::TargetedCrossEntropy {
                targets: select_labels(targets, rows),
            },
            Self::Kl { reference } => Self::Kl {
                reference: select_rows(reference, rows),
            },
            Self::UniformTarget { reference, gamma } => Self::UniformTarget {
                reference: select_rows(reference, rows),
                gamma: *gamma,
            },
            Self::DlrTargeted { targets } => Self::DlrTargeted {
                targets: select_labels(targets, rows),
            },
            other => other.clone(),
        }
    }

    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Self::CrossEntropy => "ce",
            Self::TargetedCrossEntropy { .. } => "ce-targeted",
            Self::Kl { .. } => "kl",
            Self::UniformTarget { .. } => "uniform-target",
            Self::CwMargin { .. } => "cw",
            Self::Dlr => "dlr",
            Self::DlrTargeted { .. } => "dlr-targeted",
        }
    }
}

/// The class with the `rank`-th highest logit per sample (`rank` 1 is the prediction): the
/// targets of APGD-T and FAB-T, which try ranks 2 to `n_target_classes + 1` of the clean logits.
pub fn ranked_class(logits: Tensor<2>, rank: usize) -> Tensor<1, Int> {
    let [batch, _] = logits.dims();
    logits
        .argsort_descending(1)
        .narrow(1, rank - 1, 1)
        .reshape([batch])
}
