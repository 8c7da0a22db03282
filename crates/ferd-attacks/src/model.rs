//! What an attack attacks: anything that maps images in `[0, 1]` to logits.
//!
//! A closure `|x| model.forward(x)` is a [`Model`]; so is a ferd classifier wrapped in
//! [`Frozen`], which freezes it. Attack a frozen model (`model.valid()`): its BatchNorm layers
//! then use their running statistics, its parameters get no gradients, and its forward passes
//! on plain inputs hold no autodiff graph. A closure over a training module would let every
//! attack step move the BatchNorm statistics.

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use ferd_core::metrics::to_indices;
use ferd_models::Classifier;

use crate::error::{AttackError, Result, bad_input};

/// A function from images `[B, C, H, W]` in `[0, 1]` to logits `[B, classes]`.
///
/// It must accept autodiff inputs (attacks differentiate through it to the input) and plain
/// inputs (clean and robustness checks).
pub trait Model {
    /// The logits of `x`.
    fn logits(&self, x: Tensor<4>) -> Tensor<2>;
}

impl<F: Fn(Tensor<4>) -> Tensor<2>> Model for F {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self(x)
    }
}

/// A frozen copy of a ferd [`Classifier`] (`model.valid()`) as a [`Model`].
#[derive(Debug, Clone)]
pub struct Frozen<C>(C);

impl<C: Classifier + Module> Frozen<C> {
    /// Freezes a copy of `model`: BatchNorm in inference mode, no parameter gradients.
    pub fn new(model: &C) -> Self {
        Self(model.valid())
    }

    /// The frozen classifier.
    pub fn classifier(&self) -> &C {
        &self.0
    }
}

impl<C: Classifier> Model for Frozen<C> {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.0.forward(x)
    }
}

/// Logits, per-sample loss and the gradient of the summed loss with respect to the input, all
/// detached from autodiff.
pub(crate) struct Probe {
    pub logits: Tensor<2>,
    pub loss: Tensor<1>,
    pub grad: Tensor<4>,
}

/// One forward and backward pass at `x` (a plain tensor) for a per-sample loss of the logits.
pub(crate) fn probe(
    model: &dyn Model,
    x: &Tensor<4>,
    loss: &dyn Fn(Tensor<2>) -> Result<Tensor<1>>,
) -> Result<Probe> {
    let input = x.clone().autodiff().require_grad();
    let logits = model.logits(input.clone());
    let per_sample = loss(logits.clone())?;
    let grads = per_sample.clone().sum().backward();
    let grad = input
        .grad(&grads)
        .unwrap_or_else(|| x.zeros_like())
        .without_autodiff();
    Ok(Probe {
        logits: logits.without_autodiff(),
        loss: per_sample.without_autodiff(),
        grad,
    })
}

/// Logits of a plain (non-autodiff) input.
pub(crate) fn logits(model: &dyn Model, x: Tensor<4>) -> Tensor<2> {
    model.logits(x.without_autodiff()).without_autodiff()
}

/// The model's logits on `x`, checked to be finite. A NaN or infinite logit has no meaningful
/// arg-max: without the check a broken model would be scored as some class (often class 0),
/// and a point it cannot classify could be counted as robust.
pub(crate) fn finite_logits(
    what: &'static str,
    model: &dyn Model,
    x: Tensor<4>,
) -> Result<Tensor<2>> {
    let out = logits(model, x);
    check_finite(what, &out)?;
    Ok(out)
}

/// An error naming how many rows of `logits` hold a NaN or infinite value, and the first one.
pub(crate) fn check_finite(what: &'static str, logits: &Tensor<2>) -> Result<()> {
    let [batch, classes] = logits.dims();
    let values = logits
        .clone()
        .try_to_vec_as::<f32>()
        .map_err(|e| bad_input(what, format!("cannot read the model's logits: {e:?}")))?;
    let bad: Vec<usize> = (0..batch)
        .filter(|&i| {
            values[i * classes..(i + 1) * classes]
                .iter()
                .any(|v| !v.is_finite())
        })
        .collect();
    match bad.first() {
        None => Ok(()),
        Some(&first) => Err(AttackError::NonFinite {
            what,
            detail: format!(
                "the model returned NaN or infinite logits for {} of {batch} images (first: \
                 image {first} of the batch, logits {:?})",
                bad.len(),
                &values[first * classes..(first + 1) * classes]
            ),
        }),
    }
}

/// Per sample, whether the arg-max of `logits` is the label (compared on the host: Bool
/// tensors read back differently across backends).
pub(crate) fn correct(logits: Tensor<2>, labels: Tensor<1, Int>) -> Vec<bool> {
    let [batch, _] = logits.dims();
    let predictions = to_indices(logits.argmax(1).reshape([batch]));
    predictions
        .iter()
        .zip(to_indices(labels))
        .map(|(&p, y)| p == y)
        .collect()
}

/// Per sample, whether the model classifies `x` correctly.
pub(crate) fn classified(model: &dyn Model, x: Tensor<4>, labels: Tensor<1, Int>) -> Vec<bool> {
    correct(logits(model, x), labels)
}
