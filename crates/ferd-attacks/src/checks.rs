//! AutoAttack's checks that an evaluation can be trusted (fra31's `checks.py`): a model that
//! returns probabilities instead of logits, and a randomized model evaluated without EOT.

use burn::tensor::Tensor;

use crate::model::{Model, logits};

/// Warns when the outputs look like probabilities (all in `[0, 1]`, rows summing to 1): the
/// margin and DLR losses then see squashed values and the attacks weaken.
pub fn probability_warning(model: &dyn Model, x: &Tensor<4>) -> Option<String> {
    let out = logits(model, x.clone());
    let low = out.clone().min().into_scalar::<f32>();
    let high = out.clone().max().into_scalar::<f32>();
    let sums = out
        .sum_dim(1)
        .sub_scalar(1.0)
        .abs()
        .max()
        .into_scalar::<f32>();
    (low > -1e-5 && high < 1.0 + 1e-5 && sums < 1e-5).then(|| {
        "the model's outputs look like probabilities (in [0, 1], summing to 1): pass logits, \
         or the attacks' losses are distorted"
            .to_string()
    })
}

/// Warns when repeated clean passes disagree (a randomized model): the deterministic attacks
/// then overestimate robustness; use AutoAttack's `rand` version (EOT).
pub fn randomness_warning(model: &dyn Model, x: &Tensor<4>) -> Option<String> {
    let normalized = |t: Tensor<2>| {
        let norm = t.clone().powi_scalar(2).sum_dim(1).sqrt().add_scalar(1e-10);
        t / norm
    };
    let first = normalized(logits(model, x.clone()));
    let differs = (0..4).any(|_| {
        let again = normalized(logits(model, x.clone()));
        (again - first.clone()).abs().max().into_scalar::<f32>() > 1e-4
    });
    differs.then(|| {
        "repeated clean passes give different outputs: the model looks randomized; evaluate it \
         with AutoAttack's `rand` version (EOT)"
            .to_string()
    })
}
