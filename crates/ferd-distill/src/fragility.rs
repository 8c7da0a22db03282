//! Class fragility for robustness-guided reweighting (method spec, section 2, steps 5 and 6):
//! PGD on the teacher over the round's samples, the margin `t_adv[y] - max_{j != y} t_adv[j]`
//! per sample, and per class the mean negative margin. The next round's class distribution
//! follows from it by the configured rule (`ferd_core::reweighting`).
//!
//! Departures from the official code (`test.py`), which has two bugs here: its PGD call passes
//! the teacher's logits as the labels and the labels as eps, and it leaves the teacher in
//! training mode (BatchNorm moving its statistics on synthetic data). ferd attacks the frozen
//! teacher with the true labels and the run's eps and step.

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};
use ferd_attacks::Pgd;
use ferd_core::losses::margin;
use ferd_core::random::Noise;
use ferd_core::reweighting::class_fragility;
use ferd_models::Classifier;

use crate::config::Threat;
use crate::error::Result;

/// Per-class fragility `D_c` of `teacher` (frozen here) on `images` (plain, in `[0, 1]`) with
/// `labels`: PGD-`steps` (uniform random start drawn from `start`, cross-entropy) within
/// `threat`, then the mean of `-margin` over each class's samples (0 for a class without
/// samples, as the official code's `torch.where(class_fooled_count > 0, ..., 0)`).
pub fn fragility<T: Classifier + Module>(
    teacher: &T,
    images: &Tensor<4>,
    labels: &[usize],
    classes: usize,
    threat: Threat,
    steps: usize,
    start: &mut dyn Noise,
) -> Result<Vec<f64>> {
    let teacher = teacher.valid();
    let device = images.device();
    let label_tensor: Tensor<1, Int> = Tensor::from_data(
        TensorData::new(labels.iter().map(|&y| y as i64).collect(), [labels.len()]),
        &device,
    );
    let model = |x: Tensor<4>| teacher.forward(x);
    let adv = Pgd::new(threat.eps, threat.alpha, steps).perturb_from(
        &model,
        images.clone(),
        label_tensor.clone(),
        start,
    )?;
    let margins = margin(teacher.forward(adv), label_tensor)?
        .try_to_vec_as::<f32>()
        .expect("a float tensor reads back as f32");
    Ok(class_fragility(&margins, labels, classes)?)
}
