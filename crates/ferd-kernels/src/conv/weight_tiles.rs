//! The weight gradients of the direct paths' layers, with one register tile: [`OUT_ROWS`]
//! output channels by [`IN_ROWS`] input rows, summed over [`Pair`]s of vectors. No im2col matrix
//! and no partial sums per share of the batch.
//!
//! **Small maps** (`super::direct_images`' layers, [`images_weight_grad`]), vectorized over
//! images like their forward: `dW[o, c, i, j]` is the sum over images and output positions of
//! `dY[o, p] X[c, src(p, i, j)]`, and a vector holds that product for [`LANES`] images at once.
//! Both the input and the output gradient are copied into blocks of interleaved images
//! (`super::copies::interleave`). A tile is [`OUT_ROWS`] output channels by [`IN_ROWS`] input
//! channels for one kernel tap: for every output position whose tap lands inside the input, and
//! each vector of the block's images, it loads the [`OUT_ROWS`] output-gradient vectors and the
//! [`IN_ROWS`] input vectors and does 24 fused multiply-adds into registers; the 24 vectors are
//! summed across their lanes at the end. The positions whose tap reads padding are skipped, where
//! im2col + gemm multiplies zeros (31% of its work at 4x4 with a 3x3 kernel, 16% at 8x8), and no
//! weight-sized partial sums per share of the batch are written and added (at ResNet-18's 4x4
//! stage four of 9 MiB each). A task is [`IMAGES_OUT_PER_TASK`] output channels: their output
//! gradient stays in the second-level cache while the input channels are swept.
//!
//! **Large outputs** (`super::direct_rows`' layers of at least [`MIN_POSITIONS`] outputs,
//! ResNet-18's stem and first stage, [`rows_weight_grad`]), vectorized over output positions like
//! their forward. In each image's padded copy (`super::copies::Plan`), the input read by tap
//! `k = (c, i, j)` for 16 consecutive outputs of a row is 16 consecutive floats, at the tap's
//! offset plus the vector's. So the same tile applies: [`OUT_ROWS`] output channels by
//! [`IN_ROWS`] taps `k`, over every vector of a chunk of [`IMAGES_PER_TILE`] images, the lanes
//! summed at the end. Where im2col wrote a `[K, H W]` matrix per image (2.4 MB at the first
//! stage, more than the second-level cache) and gemm packed it again, this reads each image's
//! padded copy and output gradient in place. A task is [`ROWS_OUT_PER_TASK`] output channels.
//!
//! Each weight is one sum in an order fixed by the shapes (blocks or chunks of images, positions,
//! vectors, then across the lanes), whatever the thread count.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::ConvGeometry;
use super::copies::{BLOCK, Plan, interleave};
use super::tile::{LANES, VECTORS};
use crate::uninit::written_by;

/// Output channels per tile, whose output-gradient vectors stay in registers while the
/// [`IN_ROWS`] input vectors stream past: 24 accumulators, 4 held vectors and one loaded, 29 of
/// the 32 registers; 10 loads for 24 multiply-adds, as in the forward's tile.
const OUT_ROWS: usize = 4;

/// Input channels per tile.
const IN_ROWS: usize = 6;

/// Output channels per task: at an 8x8 map and one block of 64 images their output gradient is
/// 512 KiB, half of the second-level cache of the machine in `docs/performance.md`, read again
/// for every tile of input channels.
const IMAGES_OUT_PER_TASK: usize = 32;

/// One vector of products a tile sums: the offsets of an output-gradient vector and of the
/// input vector it multiplies (here an output position where a tap lands inside the input and
/// one vector of a block's images; in [`rows_weight_grad`] 16 consecutive outputs of a
/// row), each from its channel's start in a block (here) or image (there).
#[derive(Clone, Copy)]
struct Pair {
    out: usize,
    input: usize,
}

/// The [`Pair`]s a tile sums over, in order (here: where one tap lands inside the input, one
/// per vector of an image block), and the ends of the runs they read, for the bounds check.
struct TapPairs {
    pairs: Vec<Pair>,
    out_end: usize,
    in_end: usize,
}

impl TapPairs {
    /// The pairs, with the ends of the vectors they read.
    fn new(pairs: Vec<Pair>) -> Self {
        let end =
            |offset: fn(&Pair) -> usize| pairs.iter().map(|p| offset(p) + LANES).max().unwrap_or(0);
        let (out_end, in_end) = (end(|p| p.out), end(|p| p.input));
        Self {
            pairs,
            out_end,
            in_end,
        }
    }
}

/// For each tap `i kW + j`, its [`TapPairs`].
fn tap_pairs(g: &ConvGeometry) -> Vec<TapPairs> {
    let inside = |o: usize, k: usize, axis: usize, size: usize| {
        let (stride, dilation, padding) = (g.stride[axis], g.dilation[axis], g.padding[axis]);
        ConvGeometry::source(o, k, stride, dilation, padding, size)
    };
    let mut taps = Vec::with_capacity(g.kernel[0] * g.kernel[1]);
    for i in 0..g.kernel[0] {
        for j in 0..g.kernel[1] {
            let mut pairs = Vec::new();
            for oy in 0..g.out_height {
                for ox in 0..g.out_width {
                    if let (Some(y), Some(x)) =
                        (inside(oy, i, 0, g.height), inside(ox, j, 1, g.width))
                    {
                        pairs.extend((0..VECTORS).map(|s| Pair {
                            out: (oy * g.out_width + ox) * BLOCK + s * LANES,
                            input: (y * g.width + x) * BLOCK + s * LANES,
                        }));
                    }
                }
            }
            taps.push(TapPairs::new(pairs));
        }
    }
    taps
}

/// Where one tile reads: the offsets of its rows (output channels; input channels here, taps
/// `(c, i, j)` in [`rows_weight_grad`]) in the first block of each copy, the floats from
/// one block to the next, and the blocks (of images) summed.
struct Rows {
    out: [usize; OUT_ROWS],
    input: [usize; IN_ROWS],
    out_block: usize,
    in_block: usize,
    blocks: usize,
}

/// The weight gradient `[C_out, C_in, kH, kW]` of a layer that `super::direct_images::fits`,
/// from its input `x` and output gradient `dy`.
pub(super) fn images_weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let taps = g.kernel[0] * g.kernel[1];
    let (in_plane, out_plane) = (
        g.height * g.width * BLOCK,
        g.out_height * g.out_width * BLOCK,
    );
    let x = interleave(x, g.batch, g.in_channels, g.height * g.width);
    let dy = interleave(dy, g.batch, g.out_channels, g.out_height * g.out_width);
    let taps_pairs = tap_pairs(g);
    let row_len = g.in_channels * taps;
    let fill = |dw: &mut [MaybeUninit<f32>]| {
        dw.par_chunks_mut(IMAGES_OUT_PER_TASK * row_len)
            .enumerate()
            .for_each(|(task, dw)| {
                let (first, outs) = (task * IMAGES_OUT_PER_TASK, dw.len() / row_len);
                for c0 in (0..g.in_channels).step_by(IN_ROWS) {
                    let ins = IN_ROWS.min(g.in_channels - c0);
                    for o0 in (0..outs).step_by(OUT_ROWS) {
                        let rows_out = OUT_ROWS.min(outs - o0);
                        // A short tile repeats its last channel; only its real rows are stored.
                        let rows = Rows {
                            out: std::array::from_fn(|r| {
                                (first + o0 + r.min(rows_out - 1)) * out_plane
                            }),
                            input: std::array::from_fn(|c| (c0 + c.min(ins - 1)) * in_plane),
                            out_block: g.out_channels * out_plane,
                            in_block: g.in_channels * in_plane,
                            blocks: g.batch.div_ceil(BLOCK),
                        };
                        for (tap, pairs) in taps_pairs.iter().enumerate() {
                            // SAFETY: `super::ConvPath::takes` checked AVX-512 (F and VL); the kernel checks
                            // its reads.
                            let sums = unsafe { tile_kernel(&dy, &x, &rows, pairs) };
                            for (r, sums) in sums.iter().enumerate().take(rows_out) {
                                let dw = &mut dw[(o0 + r) * row_len + c0 * taps + tap..];
                                for (c, &sum) in sums.iter().enumerate().take(ins) {
                                    dw[c * taps].write(sum);
                                }
                            }
                        }
                    }
                }
            })
    };
    // SAFETY: every task writes each of its output channels' weights: every input channel (the
    // tiles of `c0`) at every tap.
    unsafe { written_by(g.weight_len(), fill) }
}

/// One tile: `Σ dY[o] X[c]` over the blocks, the tap's `pairs` and the images, for the
/// [`OUT_ROWS`] output and [`IN_ROWS`] input channels of `rows`.
///
/// Plain loops only: closures inside a `target_feature` function were not inlined (a call per
/// bound checked and per pointer), a quarter of the kernel's time at 8x8.
///
/// # Safety
/// The CPU must have AVX-512F and AVX-512VL (`super::tile::has_avx512`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn tile_kernel(
    dy: &[f32],
    x: &[f32],
    rows: &Rows,
    tap: &TapPairs,
) -> [[f32; IN_ROWS]; OUT_ROWS] {
    use std::arch::x86_64::*;
    let last = rows.blocks.max(1) - 1;
    for &o in &rows.out {
        assert!(last * rows.out_block + o + tap.out_end <= dy.len());
    }
    for &c in &rows.input {
        assert!(last * rows.in_block + c + tap.in_end <= x.len());
    }
    let mut acc = [[_mm512_setzero_ps(); IN_ROWS]; OUT_ROWS];
    for block in 0..rows.blocks {
        let (dy, x) = (
            dy.as_ptr().wrapping_add(block * rows.out_block),
            x.as_ptr().wrapping_add(block * rows.in_block),
        );
        let mut dys = [dy; OUT_ROWS];
        for (dys, &o) in dys.iter_mut().zip(&rows.out) {
            *dys = dy.wrapping_add(o);
        }
        let mut xs = [x; IN_ROWS];
        for (xs, &c) in xs.iter_mut().zip(&rows.input) {
            *xs = x.wrapping_add(c);
        }
        for p in &tap.pairs {
            let mut d = [_mm512_setzero_ps(); OUT_ROWS];
            for r in 0..OUT_ROWS {
                // SAFETY: `offset + p.out + LANES <= offset + out_end`, in bounds (asserted).
                d[r] = unsafe { _mm512_loadu_ps(dys[r].add(p.out)) };
            }
            for c in 0..IN_ROWS {
                // SAFETY: as for `d`, with the input's bound.
                let v = unsafe { _mm512_loadu_ps(xs[c].add(p.input)) };
                for r in 0..OUT_ROWS {
                    acc[r][c] = _mm512_fmadd_ps(d[r], v, acc[r][c]);
                }
            }
        }
    }
    let mut sums = [[0.0; IN_ROWS]; OUT_ROWS];
    for (sums, acc) in sums.iter_mut().zip(&acc) {
        for (sum, &acc) in sums.iter_mut().zip(acc) {
            *sum = _mm512_reduce_add_ps(acc);
        }
    }
    sums
}

/// Never called: `qualifies` is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_kernel(
    _dy: &[f32],
    _x: &[f32],
    _rows: &Rows,
    _tap: &TapPairs,
) -> [[f32; IN_ROWS]; OUT_ROWS] {
    unreachable!("the direct convolution needs AVX-512")
}

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
const ROWS_OUT_PER_TASK: usize = 16;

/// Whether [`rows_weight_grad`] takes this layer: one the direct forward takes
/// (`super::direct_rows::fits`, checked by the caller) with at least [`MIN_POSITIONS`]
/// output positions per image.
pub(super) fn rows_fit(g: &ConvGeometry) -> bool {
    g.out_height * g.out_width >= MIN_POSITIONS
}

/// The weight gradient `[C_out, C_in, kH, kW]` of a layer that `super::direct_rows::fits` and
/// [`rows_fit`] take, from its input `x` and output gradient `dy`.
pub(super) fn rows_weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
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
    dw.par_chunks_mut(ROWS_OUT_PER_TASK * k)
        .enumerate()
        .for_each(|(task, dw)| {
            let (first_out, outs) = (task * ROWS_OUT_PER_TASK, dw.len() / k);
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
                        // SAFETY: `super::ConvPath::takes` checked AVX-512 (F and VL); the
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
