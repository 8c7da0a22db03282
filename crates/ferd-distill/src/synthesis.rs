//! One synthesis round (method spec, section 2): a freshly initialized generator and a learnable
//! latent are optimized for `N_G` steps on
//! `L_G = w_bn L_bn + w_adv L_adv + w_oh L_oh + w_uni L_uni`,
//! evaluated on augmented images, and the un-augmented batch with the lowest loss is kept.
//!
//! - `L_bn`: DeepInversion's match of the batch statistics at every BatchNorm layer of the
//!   teacher with its running statistics.
//! - `L_oh`: the teacher's cross-entropy on the sampled labels.
//! - `L_adv = -IKL(s, t)` with the generator's weights: the student (frozen) should disagree
//!   with the teacher.
//! - `L_uni`: the Fairness-Aware Examples' uniformity term ([`crate::fairness_aware`]).

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use ferd_core::losses::{IklWeights, cross_entropy, ikl};
use ferd_core::random::{Noise, normal};
use ferd_core::reweighting::sample_labels_from;
use ferd_models::generator::{Generator, GeneratorConfig};
use ferd_models::{BnStats, Classifier, Tap};
use serde::{Deserialize, Serialize};

use crate::config::FerdConfig;
use crate::draws::{Draws, Site};
use crate::error::{DistillError, Result};
use crate::fairness_aware::non_robust;
use crate::optim::adam;

/// The learnable latent codes `z` `[B, nz]` as a module, for Burn's optimizer.
#[derive(Module, Debug)]
pub struct Latent {
    /// The codes.
    pub z: Param<Tensor<2>>,
}

/// The terms of the generator loss at one step (unweighted) and their weighted sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LossTerms {
    /// `L_bn`.
    pub bn: f64,
    /// `L_adv = -IKL(s, t)`.
    pub adv: f64,
    /// `L_oh = CE(t, y)`.
    pub oh: f64,
    /// `L_uni` (0 when Fairness-Aware Examples are off).
    pub uni: f64,
    /// `L_G`, the weighted sum.
    pub total: f64,
    /// Fraction of (sample, channel) pairs of the teacher's features found robust.
    pub robust_fraction: f64,
}

/// The generator loss of one step, differentiable towards the images.
pub struct StepLoss {
    /// `L_G` (one element).
    pub total: Tensor<1>,
    /// The terms in [`LossTerms`]' order, detached and still on the device: read back in one
    /// transfer by [`StepLoss::terms`], when the caller is ready to wait for the device.
    values: Tensor<1>,
}

impl StepLoss {
    /// The terms, read back from the device: one synchronizing read for all of them. On a GPU,
    /// reading after the backward pass and the optimizer steps are queued lets the device
    /// compute while the host builds the backward graph.
    pub fn terms(&self) -> LossTerms {
        let values = self.values.try_to_vec_as::<f32>().expect("f32 terms");
        let [bn, adv, oh, uni, total, robust_fraction] = <[f32; 6]>::try_from(values)
            .expect("six terms")
            .map(f64::from);
        LossTerms {
            bn,
            adv,
            oh,
            uni,
            total,
            robust_fraction,
        }
    }
}

/// `L_bn = sum over layers of ||mu - running_mean||_2 + ||var - running_var||_2`.
pub fn bn_loss(stats: &[BnStats]) -> Option<Tensor<1>> {
    let norm = |a: &Tensor<1>, b: &Tensor<1>| (a.clone() - b.clone()).powi_scalar(2).sum().sqrt();
    stats
        .iter()
        .map(|s| norm(&s.batch_mean, &s.running_mean) + norm(&s.batch_var, &s.running_var))
        .reduce(|a, b| a + b)
}

/// The generator loss on augmented images `x` (differentiable towards the generator) with
/// sampled `labels`, against `teacher` and `student`, which must be frozen (`valid()`): a model
/// in training mode fed these differentiable images would use and move its BatchNorm batch
/// statistics. `noise` feeds the fairness split's inner loop.
pub fn step_loss<T: Classifier, S: Classifier>(
    teacher: &T,
    student: &S,
    x: Tensor<4>,
    labels: &Tensor<1, Int>,
    config: &FerdConfig,
    noise: &mut dyn Noise,
) -> Result<StepLoss> {
    let weights = config.synthesis.weights;
    let mut tap = Tap::bn_stats();
    let features = teacher.features_tapped(x.clone(), &mut tap);
    let t = teacher.head_tapped(features.clone(), &mut tap);
    let bn = bn_loss(&tap.into_bn_stats()).ok_or_else(|| {
        DistillError::Config(
            "the teacher has no BatchNorm layer: L_bn (DeepInversion) needs one".into(),
        )
    })?;
    let oh = cross_entropy(t.clone(), labels.clone())?;
    let s = student.forward(x);
    let adv = ikl(
        s,
        t,
        &IklWeights::TeacherSoftmax {
            temperature: config.synthesis.adv_temperature,
        },
    )?
    .neg();
    let mut total = bn.clone().mul_scalar(weights.bn)
        + adv.clone().mul_scalar(weights.adv)
        + oh.clone().mul_scalar(weights.oh);
    let (uni, robust_share) = if config.fairness_aware() {
        let split = non_robust(teacher, &features, labels, &config.fairness, noise)?;
        let uni = split.uniformity_loss()?;
        total = total + uni.clone().mul_scalar(weights.uni);
        (uni, split.robust_share())
    } else {
        let zero = || Tensor::zeros([1], &total.device());
        (zero(), zero())
    };
    let values = Tensor::cat(
        [bn, adv, oh, uni, total.clone(), robust_share]
            .map(|t| t.without_autodiff())
            .to_vec(),
        0,
    );
    Ok(StepLoss { total, values })
}

/// What one round produced.
#[derive(Debug, Clone)]
pub struct Round {
    /// The un-augmented images of the step with the lowest `L_G` `[B, C, s, s]` (plain).
    pub images: Tensor<4>,
    /// Their labels, sorted.
    pub labels: Vec<usize>,
    /// The augmented images of the last step (plain): the fragility attack's batch.
    pub last_augmented: Tensor<4>,
    /// Per step, the loss terms.
    pub steps: Vec<LossTerms>,
    /// The step whose images were kept.
    pub best_step: usize,
}

impl Round {
    /// The mean of every term over the round's steps.
    pub fn mean_terms(&self) -> LossTerms {
        let n = self.steps.len().max(1) as f64;
        let sum = |f: fn(&LossTerms) -> f64| self.steps.iter().map(f).sum::<f64>() / n;
        LossTerms {
            bn: sum(|t| t.bn),
            adv: sum(|t| t.adv),
            oh: sum(|t| t.oh),
            uni: sum(|t| t.uni),
            total: sum(|t| t.total),
            robust_fraction: sum(|t| t.robust_fraction),
        }
    }
}

/// Runs the synthesis round of `epoch` with labels drawn from `distribution`. `teacher` and
/// `student` are frozen here (`valid()`: their BatchNorm layers must not move on synthetic
/// images); `device` is the plain device (the generator trains on its autodiff twin). Every
/// random draw comes from `draws` (`Seeded` in a run). `on_step(step, terms)` is called after
/// every step.
#[allow(clippy::too_many_arguments)]
pub fn synthesize<T: Classifier + Module, S: Classifier + Module>(
    teacher: &T,
    student: &S,
    distribution: &[f64],
    config: &FerdConfig,
    draws: &mut dyn Draws,
    epoch: usize,
    device: &Device,
    on_step: &mut dyn FnMut(usize, &LossTerms),
) -> Result<Round> {
    let (teacher, student) = (&teacher.valid(), &student.valid());
    let synthesis = &config.synthesis;
    let batch = config.batch_size;
    let ad = device.clone().autodiff();
    let labels = sample_labels_from(
        distribution,
        batch,
        draws.noise(epoch, Site::Labels).as_mut(),
    )?;
    let label_tensor: Tensor<1, Int> = Tensor::from_data(
        TensorData::new(labels.iter().map(|&y| y as i64).collect(), [batch]),
        &ad,
    );
    let generator_config = GeneratorConfig::new()
        .with_latent(config.generator.latent)
        .with_ngf(config.generator.ngf)
        .with_image_side(config.image.side)
        .with_channels(config.image.channels);
    let mut generator: Generator = draws.generator(epoch, &generator_config, &ad)?;
    let mut latent = Latent {
        z: Param::from_tensor(normal(
            draws.noise(epoch, Site::Latent).as_mut(),
            [batch, config.generator.latent],
            0.0,
            1.0,
            &ad,
        )),
    };
    let [beta_1, beta_2] = synthesis.betas;
    let mut generator_optim = adam(beta_1, beta_2);
    let mut latent_optim = adam(beta_1, beta_2);

    let mut steps = Vec::with_capacity(synthesis.steps);
    let mut best: Option<(f64, usize, Tensor<4>)> = None;
    let mut last_augmented = None;
    for step in 0..synthesis.steps {
        let x = generator.forward(latent.z.val());
        let augmented = config.augment.apply_from(
            x.clone(),
            draws.noise(epoch, Site::SynthesisAugment { step }).as_mut(),
        );
        let loss = step_loss(
            teacher,
            student,
            augmented.clone(),
            &label_tensor,
            config,
            draws.noise(epoch, Site::Bottleneck { step }).as_mut(),
        )?;
        // The step is queued whole before its terms are read (the one read-back of the step):
        // a non-finite loss still ends the round, and the images kept are this step's `x`.
        let mut grads = loss.total.backward();
        let generator_grads = GradientsParams::from_module(&mut grads, &generator);
        let latent_grads = GradientsParams::from_module(&mut grads, &latent);
        generator = generator_optim.step(synthesis.lr_generator, generator, generator_grads);
        latent = latent_optim.step(synthesis.lr_latent, latent, latent_grads);
        let terms = loss.terms();
        if !terms.total.is_finite() {
            return Err(DistillError::NonFinite {
                what: format!("the generator loss at synthesis step {step}"),
                detail: format!("{terms:?}"),
            });
        }
        if best.as_ref().is_none_or(|(cost, _, _)| terms.total < *cost) {
            best = Some((terms.total, step, x.without_autodiff()));
        }
        last_augmented = Some(augmented.without_autodiff());
        on_step(step, &terms);
        steps.push(terms);
    }
    let (_, best_step, images) = best.expect("at least one synthesis step");
    Ok(Round {
        images,
        labels,
        last_augmented: last_augmented.expect("at least one synthesis step"),
        steps,
        best_step,
    })
}
