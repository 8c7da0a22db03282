//! The weight gradient of the direct kernel's layers with large outputs (ResNet-18's stem and
//! first stage, 32x32), vectorized over output positions like their forward: no im2col matrix.
//!
//! `dW[o, k]` for `k = (c, i, j)` is the sum over images and output positions of
//! `dY[o, p] X[c, src(p, i, j)]`. In each image's padded copy (`super::direct_cpu`'s plan), the
//! input read by tap `k` for 16 consecutive outputs of a row is 16 consecutive floats, at the
//! tap's offset plus the vector's. So the tile of `super::lanes_weight_cpu` applies unchanged:
//! [`OUT_ROWS`] output channels by [`IN_ROWS`] taps `k`, over every vector of a chunk of
//! [`IMAGES_PER_TILE`] images, the lanes summed at the end. Where im2col wrote a `[K, H W]`
//! matrix per image (2.4 MB at the first stage, more than the second-level cache) and gemm
//! packed it again, this reads each image's padded copy and output gradient in place.
//!
//! A task is [`OUT_PER_TASK`] output channels; each weight is the sum of its chunks' sums in
//! image order, whatever the thread count.

use rayon::prelude::*;

use super::conv_cpu::ConvGeometry;
use super::direct_cpu::Plan;
use super::lanes_weight_cpu::{IN_ROWS, OUT_ROWS, Pair, Rows, TapPairs, tile_kernel};

/// The fewest output positions per image for which this beats im2col + gemm. Measured on
/// ResNet-18 (`cargo bench --bench conv`, 2 threads, against gemm alternated, 2026-12-02): 32x32
/// outputs (1,024 positions) 26.0-26.5 against 35.1-35.4 ms for the 64-channel layer and 1.7
/// against 3.6-3.8 ms for the stem; 16x16 outputs level or slower (25.6-28.2 against 24.8-27.6
/// ms at 128 channels; 19.1-22.4 against 20.0-21.1 for the stride-2 layer from 32x32).
const MIN_POSITIONS: usize = 1024;

/// Images per tile call: the lanes are summed once per chunk, a few percent of the work at 4
/// (64 vectors of 16 positions per image); 1 image was 10% slower at 32x32, 8 and 16 level.
const IMAGES_PER_TILE: usize = 4;

/// Output channels per task: their output gradient for a chunk of images (256 KiB at 32x32 and
/// 16 channels) stays in the second-level cache while the taps are swept. 8 and 32 were level.
const OUT_PER_TASK: usize = 16;

/// Whether [`weight_grad`] takes this layer: one the direct forward takes
/// (`super::direct_cpu::qualifies`, checked by the caller) with at least [`MIN_POSITIONS`]
/// output positions per image.
pub(super) fn qualifies(g: &ConvGeometry) -> bool {
    g.out_height * g.out_width >= MIN_POSITIONS
}

/// The weight gradient `[C_out, C_in, kH, kW]` of a layer that `super::direct_cpu` and
/// [`qualifies`] take, from its input `x` and output gradient `dy`.
pub(super) fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let plan = Plan::of(g);
    let n = g.out_height * g.out_width;
    let image_len = g.in_channels * g.height * g.width;
    let copy_len = plan.copy_len(g);
    let mut copies = vec![0.0; g.batch * copy_len];
    copies
        .par_chunks_mut(copy_len)
        .zip(x.par_chunks_exact(image_len))
        .for_each(|(copy, image)| plan.fill(g, image, copy));
    let vectors = TapPairs::new(
        (plan.vectors.iter())
            .map(|&[input, out]| Pair { out, input })
            .collect(),
    );
    let k = plan.taps.len();
    let mut dw = vec![0.0; g.weight_len()];
    dw.par_chunks_mut(OUT_PER_TASK * k)
        .enumerate()
        .for_each(|(task, dw)| {
            let (first_out, outs) = (task * OUT_PER_TASK, dw.len() / k);
            for first in (0..g.batch).step_by(IMAGES_PER_TILE) {
                let dy = &dy[first * g.out_channels * n..];
                let copies = &copies[first * copy_len..];
                for k0 in (0..k).step_by(IN_ROWS) {
                    let ins = IN_ROWS.min(k - k0);
                    for o0 in (0..outs).step_by(OUT_ROWS) {
                        let rows_out = OUT_ROWS.min(outs - o0);
                        // A short tile repeats its last row; only its real rows are added.
                        let rows = Rows {
                            out: std::array::from_fn(|r| {
                                (first_out + o0 + r.min(rows_out - 1)) * n
                            }),
                            input: std::array::from_fn(|c| plan.taps[k0 + c.min(ins - 1)]),
                            out_block: g.out_channels * n,
                            in_block: copy_len,
                            blocks: IMAGES_PER_TILE.min(g.batch - first),
                        };
                        // SAFETY: `direct_cpu::qualifies` checked AVX-512 (F and VL); the
                        // kernel checks its reads.
                        let sums = unsafe { tile_kernel(dy, copies, &rows, &vectors) };
                        for (r, sums) in sums.iter().enumerate().take(rows_out) {
                            let dw = &mut dw[(o0 + r) * k + k0..][..ins];
                            for (dw, &sum) in dw.iter_mut().zip(sums) {
                                *dw += sum;
                            }
                        }
                    }
                }
            }
        });
    dw
}
