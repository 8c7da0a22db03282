//! How the batch is split for a weight gradient: into a fixed number of contiguous shares, each
//! summed on its own (in parallel), then added in order. The result depends neither on
//! scheduling nor on the number of threads. `super::gemm` and `super::depthwise` share it.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::ConvGeometry;
use crate::uninit::written_by;

/// The most shares the batch is split into for the weight gradient. A constant, not the thread
/// count, so that the sum (and every weight trained with it) is the same whatever the machine's
/// cores: a run resumed with another `RAYON_NUM_THREADS` stays bit-identical. 16 shares keep 16
/// cores busy; on fewer, a thread takes several.
const WEIGHT_GRAD_SHARES: usize = 16;

impl ConvGeometry {
    /// Shares of the weight gradient: [`WEIGHT_GRAD_SHARES`], or fewer where a share would hold
    /// less than one GEMM's images (a deep layer: 4 shares of 16 images for a 4x4 map at batch
    /// 64), since every share adds a whole weight-sized partial sum. Shapes alone decide it.
    fn weight_grad_shares(&self) -> usize {
        (self.batch / self.images_per_gemm()).clamp(1, WEIGHT_GRAD_SHARES)
    }
}

/// `Σ_s share(images_s)` over [`ConvGeometry::weight_grad_shares`] contiguous shares of the
/// batch: `share` writes all of its weight-sized slice for its images; the partial sums are
/// added in share order ([`sum`]).
pub(super) fn sum_over_shares(
    g: &ConvGeometry,
    share: impl Fn(Range<usize>, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let len = g.weight_len();
    let shares = g.weight_grad_shares();
    let per_share = g.batch.div_ceil(shares);
    let partials: Vec<Vec<f32>> = (0..g.batch.div_ceil(per_share))
        .into_par_iter()
        .map(|s| {
            let images = s * per_share..((s + 1) * per_share).min(g.batch);
            // SAFETY: `share` writes all of its slice (this function's contract).
            unsafe { written_by(len, |dw| share(images, dw)) }
        })
        .collect();
    sum(g, partials)
}

/// Floats per task when the partial sums are added: runs long enough to vectorize, tasks
/// enough to share a deep layer's weight between threads.
const SUM_CHUNK: usize = 1 << 14;

/// `Σ_s partials[s]`, the shares added in order, in parallel over chunks (a deep layer's weight
/// is millions of floats).
fn sum(g: &ConvGeometry, partials: Vec<Vec<f32>>) -> Vec<f32> {
    let mut partials = partials.into_iter();
    let mut sum = partials.next().unwrap_or_else(|| vec![0.0; g.weight_len()]);
    let rest: Vec<Vec<f32>> = partials.collect();
    sum.par_chunks_mut(SUM_CHUNK)
        .enumerate()
        .for_each(|(chunk, sum)| {
            for partial in &rest {
                let partial = &partial[chunk * SUM_CHUNK..][..sum.len()];
                sum.iter_mut().zip(partial).for_each(|(a, b)| *a += b);
            }
        });
    sum
}
