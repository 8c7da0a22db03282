//! Losses of FERD and of the attacks, batched over logits `[B, C]`.
//!
//! Per-sample functions (`*_per_sample`) return `[B]`: attacks track losses per sample (APGD's
//! best-loss bookkeeping). The reduced forms return a one-element tensor and are differentiable,
//! so they serve training and the generator. Labels are `Int` tensors `[B]` with values in
//! `0..C`; the dataset readers guarantee that range, so it is not re-checked here (a check would
//! force a device-to-host copy in every training step).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};

use crate::error::{Result, param_error, shape_error};

/// How an element-wise loss `[B, C]` is reduced to one number, as in PyTorch's `kl_div`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Sum over all elements (`reduction="sum"`).
    Sum,
    /// Sum divided by the batch size: the true mean KL per sample (`reduction="batchmean"`).
    BatchMean,
    /// Mean over all `B * C` elements (`reduction="mean"`).
    ElementMean,
}

impl Reduction {
    fn apply(self, elements: Tensor<2>) -> Tensor<1> {
        let [batch, _] = elements.dims();
        match self {
            Self::Sum => elements.sum(),
            Self::BatchMean => elements.sum().div_scalar(batch as f32),
            Self::ElementMean => elements.mean(),
        }
    }
}

/// Checks that `logits` is a non-empty batch over at least two classes; returns `[B, C]`.
fn logits_dims(what: &'static str, logits: &Tensor<2>) -> Result<[usize; 2]> {
    let [batch, classes] = logits.dims();
    if batch == 0 || classes < 2 {
        return Err(shape_error(
            what,
            format!("logits must be [B >= 1, C >= 2], got [{batch}, {classes}]"),
        ));
    }
    Ok([batch, classes])
}

fn check_labels(what: &'static str, labels: &Tensor<1, Int>, batch: usize) -> Result<()> {
    let [n] = labels.dims();
    if n != batch {
        return Err(shape_error(
            what,
            format!("{n} labels for a batch of {batch} logits"),
        ));
    }
    Ok(())
}

fn check_same_dims(what: &'static str, a: &Tensor<2>, b: &Tensor<2>) -> Result<[usize; 2]> {
    let dims = logits_dims(what, a)?;
    if b.dims() != dims {
        return Err(shape_error(what, format!("{:?} vs {:?}", dims, b.dims())));
    }
    Ok(dims)
}

/// `z[b, y_b]` for every sample: `[B]`.
fn pick(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    logits
        .gather(1, labels.reshape([batch, 1]))
        .reshape([batch])
}

/// `max_{j != y_b} z[b, j]` for every sample: `[B]`. The gradient flows to the arg-max.
fn max_other(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [batch, classes] = logits.dims();
    let is_label = labels.one_hot::<2>(classes).bool();
    logits
        .mask_fill(is_label, f32::MIN)
        .max_dim(1)
        .reshape([batch])
}

/// Cross-entropy with hard labels, per sample: `-log softmax(z)_y`.
pub fn cross_entropy_per_sample(logits: Tensor<2>, labels: Tensor<1, Int>) -> Result<Tensor<1>> {
    let [batch, _] = logits_dims("cross_entropy", &logits)?;
    check_labels("cross_entropy", &labels, batch)?;
    Ok(pick(log_softmax(logits, 1), labels).neg())
}

/// Mean cross-entropy with hard labels (PyTorch `F.cross_entropy`).
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Result<Tensor<1>> {
    Ok(cross_entropy_per_sample(logits, labels)?.mean())
}

/// Cross-entropy against soft targets (probabilities `[B, C]`), per sample:
/// `-sum_j p_j log softmax(z)_j`.
pub fn soft_cross_entropy_per_sample(logits: Tensor<2>, targets: Tensor<2>) -> Result<Tensor<1>> {
    let [batch, _] = check_same_dims("soft_cross_entropy", &logits, &targets)?;
    Ok((targets * log_softmax(logits, 1))
        .sum_dim(1)
        .reshape([batch])
        .neg())
}

/// Mean cross-entropy against soft targets.
pub fn soft_cross_entropy(logits: Tensor<2>, targets: Tensor<2>) -> Result<Tensor<1>> {
    Ok(soft_cross_entropy_per_sample(logits, targets)?.mean())
}

/// The terms `p_j (log p_j - log q_j)` of KL(p || q), `p = softmax(p_logits)`,
/// `q = softmax(q_logits)`: `[B, C]`.
fn kl_terms(p_logits: Tensor<2>, q_logits: Tensor<2>) -> Tensor<2> {
    let log_p = log_softmax(p_logits, 1);
    let log_q = log_softmax(q_logits, 1);
    log_p.clone().exp() * (log_p - log_q)
}

/// KL(p || q) per sample, with `p = softmax(p_logits)` and `q = softmax(q_logits)`.
pub fn kl_divergence_per_sample(p_logits: Tensor<2>, q_logits: Tensor<2>) -> Result<Tensor<1>> {
    let [batch, _] = check_same_dims("kl_divergence", &p_logits, &q_logits)?;
    Ok(kl_terms(p_logits, q_logits).sum_dim(1).reshape([batch]))
}

/// KL(p || q) reduced as asked. Equals PyTorch's
/// `F.kl_div(log_softmax(q_logits), softmax(p_logits), reduction=...)`.
pub fn kl_divergence(
    p_logits: Tensor<2>,
    q_logits: Tensor<2>,
    reduction: Reduction,
) -> Result<Tensor<1>> {
    check_same_dims("kl_divergence", &p_logits, &q_logits)?;
    Ok(reduction.apply(kl_terms(p_logits, q_logits)))
}

/// The uniformity constraint per sample: KL(U || softmax(z)) = `sum_j (1/C)(log(1/C) - log
/// softmax(z)_j)`. Zero exactly when the prediction is uniform (FERD's `L_uni`).
pub fn kl_to_uniform_per_sample(logits: Tensor<2>) -> Result<Tensor<1>> {
    let [batch, classes] = logits_dims("kl_to_uniform", &logits)?;
    let log_uniform = -(classes as f32).ln();
    Ok(log_softmax(logits, 1)
        .neg()
        .add_scalar(log_uniform)
        .sum_dim(1)
        .reshape([batch])
        .div_scalar(classes as f32))
}

/// Mean over the batch of KL(U || softmax(z)): FERD's `L_uni` (method spec, section 2).
pub fn kl_to_uniform(logits: Tensor<2>) -> Result<Tensor<1>> {
    Ok(kl_to_uniform_per_sample(logits)?.mean())
}

/// The pairwise weights `W_bjk` of [`ikl`].
#[derive(Debug, Clone)]
pub enum IklWeights {
    /// `W_b = w_b w_b^T`, `w_b = softmax(t_b / temperature)`: the generator's weighting
    /// (temperature 100 in FERD). Not detached, as in the reference code: the generator also
    /// receives gradient through the weights.
    TeacherSoftmax {
        /// The softening temperature (FERD: 100).
        temperature: f32,
    },
    /// `W_b = w_b w_b^T` for given per-sample class weights `w` `[B, C]`, treated as constants.
    /// The student's weighting in the official code is the one-hot class prior (see
    /// [`IklWeights::class_prior`]); with it the first term of IKL vanishes.
    Outer(Tensor<2>),
    /// An arbitrary weight tensor `W` `[B, C, C]`, treated as constants.
    Full(Tensor<3>),
}

impl IklWeights {
    /// The official code's student weighting: `w_b = e_{y_b}` (one-hot labels).
    pub fn class_prior(labels: Tensor<1, Int>, classes: usize) -> Self {
        Self::Outer(labels.one_hot::<2>(classes).float())
    }
}

/// The improved / decoupled KL of Cui et al., as used by FERD (method spec, section 4):
///
/// `IKL(o, t; W) = 0.25 * sum_{b,j,k} W_bjk (Δ_jk(t) - Δ_jk(o))^2 / sum_{b,j,k} W_bjk
///                 - mean_b sum_j softmax(t)_bj log softmax(o)_bj`,  `Δ_jk(z) = z_j - z_k`.
///
/// `student` is `o`, `teacher` is `t`. The teacher's probabilities in the second term are
/// detached, as in the reference implementation (`losses.py`, `dkl_loss`); the logit differences
/// of the first term are not, so that a generator gets gradient through both models.
///
/// For rank-one weights `W_b = w w^T` the first term is computed in `O(BC)` through the identity
/// `sum_jk w_j w_k (d_j - d_k)^2 = 2 (sum_j w_j) sum_j w_j (d_j - dbar)^2`, `d = t - o`,
/// `dbar = sum_j w_j d_j / sum_j w_j` (a weighted variance, stable in f32).
pub fn ikl(student: Tensor<2>, teacher: Tensor<2>, weights: &IklWeights) -> Result<Tensor<1>> {
    let [batch, classes] = check_same_dims("ikl", &student, &teacher)?;
    let diff = teacher.clone() - student.clone();
    let pairwise = match weights {
        IklWeights::TeacherSoftmax { temperature } => {
            if temperature.is_nan() || *temperature <= 0.0 {
                return Err(param_error(
                    "ikl",
                    format!("temperature {temperature} must be > 0"),
                ));
            }
            let w = softmax(teacher.clone().div_scalar(*temperature), 1);
            rank_one_pairwise_term(diff, w)
        }
        IklWeights::Outer(w) => {
            if w.dims() != [batch, classes] {
                return Err(shape_error(
                    "ikl",
                    format!("weights {:?} vs [{batch}, {classes}]", w.dims()),
                ));
            }
            rank_one_pairwise_term(diff, w.clone().detach())
        }
        IklWeights::Full(w) => {
            if w.dims() != [batch, classes, classes] {
                return Err(shape_error(
                    "ikl",
                    format!("weights {:?} vs [{batch}, {classes}, {classes}]", w.dims()),
                ));
            }
            full_pairwise_term(diff, w.clone().detach())
        }
    };
    let soft_targets = softmax(teacher, 1).detach();
    Ok(pairwise + soft_cross_entropy(student, soft_targets)?)
}

/// `0.25 * sum_b w_b^T M_b w_b / sum_b (sum_j w_bj)^2` with `M_b,jk = (d_j - d_k)^2`.
fn rank_one_pairwise_term(diff: Tensor<2>, w: Tensor<2>) -> Tensor<1> {
    let mass = w.clone().sum_dim(1); // [B, 1]
    let mean = (w.clone() * diff.clone()).sum_dim(1) / mass.clone();
    let spread = (w * (diff - mean).powi_scalar(2)).sum_dim(1); // [B, 1]
    let numerator = (mass.clone() * spread).sum().mul_scalar(2.0);
    let denominator = mass.powi_scalar(2).sum();
    (numerator / denominator).mul_scalar(0.25)
}

/// The first IKL term for a full weight tensor `[B, C, C]`.
fn full_pairwise_term(diff: Tensor<2>, w: Tensor<3>) -> Tensor<1> {
    let [batch, classes] = diff.dims();
    let pair = diff.clone().reshape([batch, classes, 1]) - diff.reshape([batch, 1, classes]);
    let numerator = (w.clone() * pair.powi_scalar(2)).sum();
    (numerator / w.sum()).mul_scalar(0.25)
}

/// The CW margin, per sample: `max(max_{j != y} z_j - z_y, -kappa)`; an attack maximizes it.
/// Positive exactly when the sample is misclassified.
pub fn cw_margin(logits: Tensor<2>, labels: Tensor<1, Int>, kappa: f32) -> Result<Tensor<1>> {
    let [batch, _] = logits_dims("cw_margin", &logits)?;
    check_labels("cw_margin", &labels, batch)?;
    if kappa.is_nan() || kappa < 0.0 {
        return Err(param_error(
            "cw_margin",
            format!("kappa {kappa} must be >= 0"),
        ));
    }
    let margin = max_other(logits.clone(), labels.clone()) - pick(logits, labels);
    Ok(margin.clamp_min(-kappa))
}

/// The classification margin `z_y - max_{j != y} z_j` per sample: negative exactly when the
/// sample is misclassified. Square minimizes it; FERD's class fragility is its negation.
pub fn margin(logits: Tensor<2>, labels: Tensor<1, Int>) -> Result<Tensor<1>> {
    let [batch, _] = logits_dims("margin", &logits)?;
    check_labels("margin", &labels, batch)?;
    Ok(pick(logits.clone(), labels.clone()) - max_other(logits, labels))
}

/// The untargeted Difference of Logits Ratio (Croce & Hein 2020), per sample:
/// `-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)`, `pi` sorting the logits descending.
/// Needs at least 3 classes.
pub fn dlr(logits: Tensor<2>, labels: Tensor<1, Int>) -> Result<Tensor<1>> {
    let [batch, classes] = logits_dims("dlr", &logits)?;
    check_labels("dlr", &labels, batch)?;
    if classes < 3 {
        return Err(shape_error(
            "dlr",
            format!("needs C >= 3 classes, got {classes}"),
        ));
    }
    let sorted = logits.clone().sort_descending(1);
    let scale = sorted.clone().narrow(1, 0, 1) - sorted.narrow(1, 2, 1);
    let scale = scale.reshape([batch]).add_scalar(1e-12);
    Ok(margin(logits, labels)?.neg() / scale)
}

/// The targeted DLR, per sample: `-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`.
/// Needs at least 4 classes.
pub fn dlr_targeted(
    logits: Tensor<2>,
    labels: Tensor<1, Int>,
    targets: Tensor<1, Int>,
) -> Result<Tensor<1>> {
    let [batch, classes] = logits_dims("dlr_targeted", &logits)?;
    check_labels("dlr_targeted", &labels, batch)?;
    check_labels("dlr_targeted", &targets, batch)?;
    if classes < 4 {
        return Err(shape_error(
            "dlr_targeted",
            format!("needs C >= 4 classes, got {classes}"),
        ));
    }
    let sorted = logits.clone().sort_descending(1);
    let third_fourth = sorted.clone().narrow(1, 2, 2).sum_dim(1).mul_scalar(0.5);
    let scale = (sorted.narrow(1, 0, 1) - third_fourth)
        .reshape([batch])
        .add_scalar(1e-12);
    let gap = pick(logits.clone(), labels) - pick(logits, targets);
    Ok(gap.neg() / scale)
}
