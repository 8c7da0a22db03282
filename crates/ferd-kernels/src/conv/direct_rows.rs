//! A direct convolution for layers whose output rows are whole AVX-512 vectors (16, 32, 48...
//! positions wide), such as the 32x32 and 16x16 stages of ResNet-18 and the stride-2 layer that
//! enters its 16x16 stage: no im2col matrix, no GEMM packing.
//!
//! Each image is copied once into a zero-padded plane per channel, so that the input read by
//! kernel tap `(i, j)` for 16 consecutive outputs of a row is 16 consecutive floats of that copy;
//! with a horizontal stride the copy's rows are split by column phase (even columns, then odd
//! ones for stride 2), which keeps those reads consecutive.
//!
//! A tile is 6 output channels by 4 such vectors: for every `(c, i, j)` it loads 4 vectors,
//! broadcasts 6 weights and does 24 fused multiply-adds into registers, so the work is bound by
//! the multiply-adds, not by memory. The im2col path wrote a `[C_in kH kW, H W]` matrix per image
//! and gemm copied it again into its panels; for ResNet-18's first stage that is two copies of
//! 2.4 MB per image, more than the second-level cache holds.
//!
//! The input gradient of a stride-1 convolution is the same operation: the output gradient
//! correlated with the kernel flipped in both directions and transposed between input and output
//! channels, padded by `(k - 1) d - p` (`super::flipped`).
//!
//! Each output is one running sum over `(c, i, j)` in order, whatever the thread count. The
//! kernel needs AVX-512; where the CPU lacks it (or a layer does not qualify) the module keeps
//! the im2col path.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::copies::Plan;
use super::tile::{LANES, Packed, ROWS, VECTORS};
use super::{ConvGeometry, with_scratch};
use crate::uninit::written_by;

/// Whether [`forward`] computes this convolution: one group, at least one input channel (an
/// image of none has no chunks to copy), a kernel larger than 1x1 (a 1x1 convolution reads its
/// input in place and gemm is as fast), at least a tile's [`ROWS`] output channels (ResNet-18's
/// 3-channel input gradient took twice as long here as through gemm), output rows a whole number
/// of vectors (the CPU's AVX-512 is `super::ConvPath::takes`'s to check). Any stride and
/// dilation: the copy splits each row by column phase (`super::copies::Plan`).
pub(super) fn fits(g: &ConvGeometry) -> bool {
    g.groups == 1
        && g.in_channels > 0
        && g.kernel[0] * g.kernel[1] > 1
        && g.out_channels >= ROWS
        && g.out_width.is_multiple_of(LANES)
}

/// The forward convolution without bias, `[B, C_out, H_out, W_out]`, of a layer that
/// [`fits`], with its packed weight.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], packed: &Packed) -> Vec<f32> {
    let plan = Plan::of(g);
    let plane = g.out_height * g.out_width;
    let image_len = g.in_channels * g.height * g.width;
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(g.out_channels * plane)
            .zip(x.par_chunks_exact(image_len))
            .for_each(|(out, image)| {
                with_scratch(plan.copy_len(g), |copy| {
                    plan.fill(g, image, copy);
                    for (block, weights) in packed.blocks().enumerate() {
                        let rows = (g.out_channels - block * ROWS).min(ROWS);
                        let out = &mut out[block * ROWS * plane..][..rows * plane];
                        for tile in plan.vectors.chunks(VECTORS) {
                            // A short last tile repeats its last vector (computed, stored twice).
                            let pick = |s: usize| tile[s.min(tile.len() - 1)];
                            let tile: [[usize; 2]; VECTORS] = std::array::from_fn(pick);
                            // SAFETY: `super::ConvPath::takes` checked AVX-512; `tile_kernel`'s bounds are
                            // checked on entry.
                            unsafe { tile_kernel(copy, &plan, weights, tile, out, plane) };
                        }
                    }
                })
            })
    };
    // SAFETY: every image's every block of channels stores all of `plan.vectors`, which cover
    // each output plane (its rows are whole vectors).
    unsafe { written_by(g.batch * g.out_channels * plane, fill) }
}

/// One tile: `ROWS` output channels (the first `out.len() / plane` of them stored) by
/// `VECTORS` vectors of `LANES` outputs, each `[position in the padded copy, position in the
/// output plane]`, summed over every tap.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_kernel(
    copy: &[f32],
    plan: &Plan,
    weights: &[f32],
    tile: [[usize; 2]; VECTORS],
    out: &mut [MaybeUninit<f32>],
    plane: usize,
) {
    use std::arch::x86_64::*;
    let rows = out.len() / plane;
    for [at, to] in tile {
        assert!(plan.last_tap + at + LANES <= copy.len() && to + LANES <= plane);
    }
    assert!(rows <= ROWS && weights.len() >= plan.taps.len() * ROWS);
    let mut acc = [[_mm512_setzero_ps(); VECTORS]; ROWS];
    for (t, &tap) in plan.taps.iter().enumerate() {
        let mut v = [_mm512_setzero_ps(); VECTORS];
        for s in 0..VECTORS {
            // SAFETY: every read ends below `last_tap + at + LANES <= copy.len()` (asserted).
            v[s] = unsafe { _mm512_loadu_ps(copy.as_ptr().add(tap + tile[s][0])) };
        }
        let w = &weights[t * ROWS..][..ROWS];
        for r in 0..ROWS {
            let b = _mm512_set1_ps(w[r]);
            for s in 0..VECTORS {
                acc[r][s] = _mm512_fmadd_ps(b, v[s], acc[r][s]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate().take(rows) {
        for s in 0..VECTORS {
            // SAFETY: `r * plane + tile[s][1] + LANES <= rows * plane = out.len()`.
            unsafe {
                _mm512_storeu_ps(
                    out.as_mut_ptr().cast::<f32>().add(r * plane + tile[s][1]),
                    acc[s],
                )
            };
        }
    }
}

/// Never called: `super::tile::has_avx512` is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_kernel(
    _copy: &[f32],
    _plan: &Plan,
    _weights: &[f32],
    _tile: [[usize; 2]; VECTORS],
    _out: &mut [MaybeUninit<f32>],
    _plane: usize,
) {
    unreachable!("the direct convolution needs AVX-512")
}
