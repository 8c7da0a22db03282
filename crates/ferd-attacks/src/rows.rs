//! Per-sample bookkeeping shared by the attacks: taking the rows of a batch that are still
//! robust, writing results back into them, choosing per sample between two tensors, and the
//! restart loop that AutoAttack's attacks and PGD's restarts share.

use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::error::Result;
use crate::events::PassStarted;
use crate::model::{Model, classified};

/// An index tensor on the device of `like`.
pub(crate) fn index_tensor<const D: usize>(rows: &[usize], like: &Tensor<D>) -> Tensor<1, Int> {
    let values: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Tensor::from_data(TensorData::new(values, [rows.len()]), &like.device())
}

/// The rows of `t` at `rows`.
pub(crate) fn select_rows<const D: usize>(t: &Tensor<D>, rows: &[usize]) -> Tensor<D> {
    t.clone().select(0, index_tensor(rows, t))
}

/// The rows of an Int tensor at `rows`.
pub(crate) fn select_labels(t: &Tensor<1, Int>, rows: &[usize]) -> Tensor<1, Int> {
    let values: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    let index = Tensor::from_data(TensorData::new(values, [rows.len()]), &t.device());
    t.clone().select(0, index)
}

/// `base` with its rows `rows[i]` replaced by row `i` of `values`. Built from one `select` over
/// the concatenation, which every backend supports.
pub(crate) fn merge_rows<const D: usize>(
    base: Tensor<D>,
    rows: &[usize],
    values: Tensor<D>,
) -> Tensor<D> {
    let n = base.dims()[0];
    let mut source: Vec<usize> = (0..n).collect();
    for (i, &r) in rows.iter().enumerate() {
        source[r] = n + i;
    }
    let index = index_tensor(&source, &base);
    Tensor::cat(vec![base, values], 0).select(0, index)
}

/// A per-sample mask broadcast to the shape of `like`.
pub(crate) fn row_mask<const D: usize>(mask: &[bool], like: &Tensor<D>) -> Tensor<D, Bool> {
    let dims = like.dims();
    let mut shape = [1; D];
    shape[0] = mask.len();
    // Built from integers: backends store Bool tensors differently (wgpu uses u32).
    let flags: Vec<i64> = mask.iter().map(|&m| i64::from(m)).collect();
    Tensor::<1, Int>::from_data(TensorData::new(flags, [mask.len()]), &like.device())
        .equal_elem(1)
        .reshape(shape)
        .expand(dims)
}

/// Per sample, row of `yes` where `mask` holds, else row of `no`.
pub(crate) fn where_rows<const D: usize>(
    mask: &[bool],
    yes: Tensor<D>,
    no: Tensor<D>,
) -> Tensor<D> {
    if !mask.iter().any(|&m| m) {
        return no;
    }
    no.clone().mask_where(row_mask(mask, &no), yes)
}

/// The indices where `flags` holds.
pub(crate) fn true_rows(flags: &[bool]) -> Vec<usize> {
    flags
        .iter()
        .enumerate()
        .filter_map(|(i, &f)| f.then_some(i))
        .collect()
}

/// Adversarial examples and, per sample, whether the model still classifies it correctly.
pub(crate) struct Robust {
    /// The current adversarial images (clean images where nothing was found).
    pub adv: Tensor<4>,
    /// Per sample: still correctly classified.
    pub flags: Vec<bool>,
}

impl Robust {
    /// Starts from the clean images and, per sample, whether the clean image is classified
    /// correctly.
    pub fn new(x: &Tensor<4>, flags: Vec<bool>) -> Self {
        Self {
            adv: x.clone(),
            flags,
        }
    }

    /// Pass `pass` of `passes` starts, on the points still robust.
    pub fn pass(&self, pass: usize, passes: usize) -> PassStarted {
        PassStarted {
            pass,
            passes,
            points: self.flags.iter().filter(|&&f| f).count(),
        }
    }

    /// Runs `attack` on the points still robust (it gets their row indices, clean images and
    /// labels, and returns candidate adversarial images for them). A candidate that the model
    /// misclassifies replaces the point's adversarial image and marks the point non-robust;
    /// every other point is left as it was. This is AutoAttack's chaining rule, also used for
    /// restarts and targets within an attack.
    pub fn refine(
        &mut self,
        model: &dyn Model,
        x: &Tensor<4>,
        labels: &Tensor<1, Int>,
        attack: impl FnOnce(&[usize], Tensor<4>, Tensor<1, Int>) -> Result<Tensor<4>>,
    ) -> Result<()> {
        let rows = true_rows(&self.flags);
        if rows.is_empty() {
            return Ok(());
        }
        let y = select_labels(labels, &rows);
        let candidates = attack(&rows, select_rows(x, &rows), y.clone())?;
        let still = classified(model, candidates.clone(), y);
        let fooled: Vec<usize> = (0..rows.len()).filter(|&i| !still[i]).collect();
        if fooled.is_empty() {
            return Ok(());
        }
        let fooled_rows: Vec<usize> = fooled.iter().map(|&i| rows[i]).collect();
        for &r in &fooled_rows {
            self.flags[r] = false;
        }
        let values = select_rows(&candidates, &fooled);
        self.adv = merge_rows(self.adv.clone(), &fooled_rows, values);
        Ok(())
    }
}
