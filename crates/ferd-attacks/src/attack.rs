//! The interface every attack implements, and the checks that run before any attack starts.

use burn::tensor::{Int, Tensor};

use crate::ball::{check_batch, check_eps};
use crate::error::Result;
use crate::events::{AttackEvent, Observer, PassStarted};
use crate::model::{Model, correct, finite_logits};

/// An attack in the Linf threat model: it returns images within `eps` of the clean ones (in
/// max-norm) and in `[0, 1]`. Attacks are seeded: the same seed on the same device gives the
/// same images.
pub trait Attack {
    /// A short name for reports, e.g. `pgd-20` or `apgd-ce`.
    fn name(&self) -> String;

    /// The radius of the threat model.
    fn eps(&self) -> f32;

    /// Adversarial images for the batch `x` `[B, C, H, W]` (in `[0, 1]`) with labels `[B]`.
    ///
    /// An attack implements this or, when it makes several passes (restarts, target classes),
    /// [`perturb_observed`](Attack::perturb_observed); each method's default calls the other.
    fn perturb(
        &self,
        model: &dyn Model,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        seed: u64,
    ) -> Result<Tensor<4>> {
        self.perturb_observed(model, x, labels, seed, &mut ())
    }

    /// [`perturb`](Attack::perturb), telling `observer` as each pass (restart or target class)
    /// starts. Attacks of a single pass keep this default, which tells nothing and calls
    /// `perturb`.
    fn perturb_observed(
        &self,
        model: &dyn Model,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        seed: u64,
        observer: &mut dyn Observer<PassStarted>,
    ) -> Result<Tensor<4>> {
        let _ = observer;
        self.perturb(model, x, labels, seed)
    }

    /// Like [`perturb`](Attack::perturb), also reporting, for a composite attack such as
    /// AutoAttack, which points were still robust after each of its stages, and telling
    /// `observer` as each stage and each pass starts. A single attack has no stages.
    fn perturb_staged(
        &self,
        model: &dyn Model,
        x: Tensor<4>,
        labels: Tensor<1, Int>,
        seed: u64,
        observer: &mut dyn Observer<AttackEvent>,
    ) -> Result<Staged> {
        let mut passes = |p: &PassStarted| observer.event(&AttackEvent::Pass(p.clone()));
        Ok(Staged {
            adv: self.perturb_observed(model, x, labels, seed, &mut passes)?,
            stages: Vec::new(),
        })
    }
}

/// Adversarial images with the robust flags after each stage of a composite attack.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The adversarial images.
    pub adv: Tensor<4>,
    /// The stages in order.
    pub stages: Vec<Stage>,
}

/// One stage of a composite attack.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The component's name.
    pub name: String,
    /// Per sample, whether the point was still robust after this stage.
    pub robust: Vec<bool>,
    /// Wall-clock seconds the stage took.
    pub seconds: f64,
}

/// A batch that passed the checks, with its clean logits.
pub(crate) struct Prepared {
    /// The images, detached from autodiff.
    pub x: Tensor<4>,
    /// The model's logits on them.
    pub logits: Tensor<2>,
}

impl Prepared {
    /// Per sample, whether the clean image is classified correctly.
    pub fn correct(&self, labels: &Tensor<1, Int>) -> Vec<bool> {
        correct(self.logits.clone(), labels.clone())
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.logits.dims()[1]
    }
}

/// Checks `eps` and the batch, then runs the clean forward pass every attack starts from
/// (whose logits must be finite).
pub(crate) fn prepare(
    what: &'static str,
    model: &dyn Model,
    x: Tensor<4>,
    labels: &Tensor<1, Int>,
    eps: f32,
) -> Result<Prepared> {
    check_eps(what, eps)?;
    let x = x.without_autodiff();
    let [batch, ..] = x.dims();
    let clean = if batch == 0 {
        None
    } else {
        Some(finite_logits(what, model, x.clone())?)
    };
    let classes = clean.as_ref().map_or(0, |l| l.dims()[1]);
    let x = check_batch(what, x, labels, classes)?;
    Ok(Prepared {
        x,
        logits: clean.expect("check_batch rejects empty batches"),
    })
}
