//! Student training (method spec, section 3): one step on a batch of augmented bank images,
//! `L_S = 5/6 IKL(S(x), t) + 1/6 IKL(S(x_U), t)` with `x_U` the batch's Uniform-Target
//! Adversarial Examples, then one SGD step.
//!
//! Order within a step, as the official `test.py`: `S(x)` in training mode first (it moves the
//! BatchNorm running statistics), then the UTAEs against the student in inference mode, which
//! therefore uses the statistics just updated, then `S(x_U)` in training mode for the loss.
//! Burn's BatchNorm updates its running variance with the biased batch variance where PyTorch
//! uses the unbiased one (a factor `n / (n - 1)`, `n = B H W`): negligible at these batch sizes,
//! and documented in `docs/distillation.md`.

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::{Int, Tensor};
use ferd_attacks::Frozen;
use ferd_core::losses::ikl;
use ferd_core::random::Noise;
use ferd_models::Classifier;
use serde::{Deserialize, Serialize};

use crate::config::{StudentConfig, Threat};
use crate::error::{DistillError, Result};
use crate::uniform_target;

/// The student loss and its two terms.
#[derive(Debug, Clone)]
pub struct StudentLoss {
    /// `clean_weight IKL(s_clean, t) + adv_weight IKL(s_adv, t)` (one element).
    pub total: Tensor<1>,
    /// `IKL(s_clean, t)`.
    pub clean: Tensor<1>,
    /// `IKL(s_adv, t)`.
    pub adv: Tensor<1>,
}

/// The student loss from the student's logits on clean and adversarial images, the teacher's
/// logits on the clean images, and the labels (for class-prior weights).
pub fn student_loss(
    clean_logits: Tensor<2>,
    adv_logits: Tensor<2>,
    teacher_logits: Tensor<2>,
    labels: Tensor<1, Int>,
    config: &StudentConfig,
) -> Result<StudentLoss> {
    let classes = teacher_logits.dims()[1];
    let weights = config.ikl.weights(labels, classes);
    let clean = ikl(clean_logits, teacher_logits.clone(), &weights)?;
    let adv = ikl(adv_logits, teacher_logits, &weights)?;
    let total =
        clean.clone().mul_scalar(config.clean_weight) + adv.clone().mul_scalar(config.adv_weight);
    Ok(StudentLoss { total, clean, adv })
}

/// What one student step measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// `L_S`.
    pub loss: f64,
    /// `IKL(s_clean, t)`.
    pub clean: f64,
    /// `IKL(s_adv, t)`.
    pub adv: f64,
    /// Per class, how many Uniform-Target Adversarial Examples the student classified as it
    /// (a diagnostic of UTAE: does the uniformity term spread the classes the attack drives
    /// the student to?). Summed over an epoch's steps in the epoch's record.
    #[serde(default)]
    pub utae_predictions: Vec<u64>,
}

/// Per class, how many of `predicted` `[B, 1]` are that class: `[classes]`, on the device.
fn class_counts(predicted: Tensor<2, Int>, classes: usize) -> Tensor<1> {
    let [batch, _] = predicted.dims();
    let device = predicted.device();
    let class_ids = Tensor::<1, Int>::arange(0..classes as i64, &device)
        .reshape([1, classes])
        .expand([batch, classes]);
    predicted
        .expand([batch, classes])
        .equal(class_ids)
        .float()
        .sum_dim(0)
        .reshape([classes])
}

/// One training step of `student` (a training module on an autodiff device) on augmented
/// images `x` (plain) with `labels`, against the frozen `teacher`, at learning rate `lr`; the
/// UTAE start draws from `utae_start`.
///
/// The step reads back from the device once, after the SGD step is queued. A non-finite loss is
/// then a [`DistillError::NonFinite`]: the stepped student is dropped, but `optim`'s state has
/// taken the step, so a caller that goes on after the error starts from a fresh optimizer.
#[allow(clippy::too_many_arguments)]
pub fn train_step<S, T>(
    student: S,
    optim: &mut ModuleOptimizer,
    teacher: &T,
    x: Tensor<4>,
    labels: Tensor<1, Int>,
    config: &StudentConfig,
    threat: Threat,
    lr: f64,
    utae_start: &mut dyn Noise,
) -> Result<(S, StepReport)>
where
    S: Classifier + Module,
    T: Classifier,
{
    // A plain input: the teacher runs in inference mode whatever its training flag.
    let teacher_logits = teacher.forward(x.clone().without_autodiff());
    let clean_logits = student.forward(x.clone().autodiff());
    let x_adv = uniform_target::perturb_from(
        &Frozen::new(&student),
        x,
        labels.clone(),
        teacher_logits.clone(),
        threat,
        &config.utae,
        utae_start,
    )?;
    let adv_logits = student.forward(x_adv.autodiff());
    let [_, classes] = teacher_logits.dims();
    let utae_predictions = class_counts(adv_logits.clone().without_autodiff().argmax(1), classes);
    let loss = student_loss(
        clean_logits,
        adv_logits,
        teacher_logits.autodiff(),
        labels.autodiff(),
        config,
    )?;
    // What the step reports, gathered on the device and read back once, after the step is
    // queued: a non-finite loss is still an error, and the updated student is then dropped.
    let readout = Tensor::cat(
        vec![
            loss.total.clone().without_autodiff(),
            loss.clean.without_autodiff(),
            loss.adv.without_autodiff(),
            utae_predictions,
        ],
        0,
    );
    let grads = GradientsParams::from_grads(loss.total.backward(), &student);
    let student = optim.step(lr, student, grads);
    let values = readout.try_to_vec_as::<f32>().expect("f32 readout");
    let report = StepReport {
        loss: f64::from(values[0]),
        clean: f64::from(values[1]),
        adv: f64::from(values[2]),
        // Counts of at most a batch: exact in f32.
        utae_predictions: values[3..].iter().map(|&n| n as u64).collect(),
    };
    if !report.loss.is_finite() {
        return Err(DistillError::NonFinite {
            what: "the student loss".into(),
            detail: format!("{report:?}"),
        });
    }
    Ok((student, report))
}
