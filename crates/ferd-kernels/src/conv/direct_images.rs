//! A direct convolution vectorized over images, for small maps (inputs of at most 8x8: ResNet-18's
//! 8x8 and 4x4 stages and the strided layer between them), whose output rows are too short for
//! `super::direct_rows` and where im2col + gemm spends a large share of its multiply-adds on the
//! padding's zeros. The input gradient of a stride-1 layer is this forward on the output gradient
//! with the flipped kernel (`super::flipped`).
//!
//! The batch is copied into blocks of [`BLOCK`] images whose pixels are interleaved: in a block,
//! channel `c` at position `p` is [`BLOCK`] consecutive floats, one per image (missing images of
//! the last block are zeros). A tile is [`ROWS`] output channels at one output position for the
//! block's images, [`VECTORS`] vectors of [`LANES`]: for every tap `(c, i, j)` that lands inside
//! the input it loads 4 vectors, broadcasts 6 weights and does 24 fused multiply-adds into
//! registers. A tap that lands on the padding is skipped, not multiplied by zero: at 4x4 with a
//! 3x3 kernel that is 31% of im2col's multiply-adds, at 8x8 16%. Any stride and dilation reads
//! the same way.
//!
//! The input channels are taken in chunks whose block of the copy stays in the second-level cache
//! while every output position and channel block reads it; the accumulators go back to the output
//! between chunks. Each output is one running sum over its taps in `(c, i, j)` order, whatever the
//! thread count. The kernel needs AVX-512; where the CPU lacks it, or a layer does not qualify,
//! the callers keep the im2col path.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::ConvGeometry;
use super::copies::{BLOCK, deinterleave, interleave};
use super::tile::{LANES, Packed, ROWS, VECTORS};
use crate::uninit::written_by;

/// Output-channel blocks of [`ROWS`] per task: a task's share of the weight for one input chunk
/// stays in cache while it sweeps the output positions.
const BLOCKS_PER_TASK: usize = 8;

/// The largest input map this kernel takes, in pixels: 8x8. Measured on ResNet-18's and
/// small-cnn's layers (batch 64 and 500, 2 threads, against im2col + gemm): 20-50% faster on
/// stride-1 layers of 8x8, 7x7 and 4x4 inputs, level on the stride-2 layer from 8x8 and on 14x14
/// inputs, slower from 16x16 on (twice as slow at 28x28), where the interleaved copies grow with
/// the map and an input chunk holds only a few channels.
const MAX_INPUT_PIXELS: usize = 64;

/// Floats of an image block's copy per input chunk: 512 KiB, a quarter of the second-level cache
/// of the machine in `docs/performance.md` (chunks of 64 KiB to 1 MiB timed the same within the
/// host's noise on ResNet-18's layers).
const CHUNK_FLOATS: usize = 1 << 17;

/// Whether [`forward`] computes this convolution: one group, at least one input channel, a
/// kernel larger than 1x1 (gemm reads a 1x1 convolution in place), at least a tile's [`ROWS`]
/// output channels, blocks of images at least three quarters full (the missing images of the
/// last block are computed on zeros) and inputs of at most [`MAX_INPUT_PIXELS`] (the CPU's
/// AVX-512 is `super::ConvPath::takes`'s to check).
pub(super) fn fits(g: &ConvGeometry) -> bool {
    g.groups == 1
        && g.in_channels > 0
        && g.kernel[0] * g.kernel[1] > 1
        && g.out_channels >= ROWS
        && blocks_full_enough(g.batch)
        && g.height * g.width <= MAX_INPUT_PIXELS
}

/// Whether blocks of [`BLOCK`] images hold a batch of `batch` at least three quarters full: the
/// missing images of the last block are computed on zeros.
fn blocks_full_enough(batch: usize) -> bool {
    batch > 0 && 4 * batch >= 3 * batch.div_ceil(BLOCK) * BLOCK
}

/// A kernel tap that lands inside the input for one output position: its index `i kW + j` in
/// the kernel and the offset of the pixel it reads in a channel of an image block.
#[derive(Clone, Copy)]
struct Reach {
    tap: usize,
    offset: usize,
}

/// The taps inside the input for every output position, in `(i, j)` order.
struct Reaches {
    reach: Vec<Reach>,
    /// `reach[starts[p]..starts[p + 1]]` are position `p`'s.
    starts: Vec<usize>,
}

impl Reaches {
    fn of(g: &ConvGeometry) -> Self {
        let mut reach = Vec::new();
        let mut starts = vec![0];
        let inside = |o: usize, k: usize, axis: usize, size: usize| {
            let (stride, dilation, padding) = (g.stride[axis], g.dilation[axis], g.padding[axis]);
            ConvGeometry::source(o, k, stride, dilation, padding, size)
        };
        for oy in 0..g.out_height {
            for ox in 0..g.out_width {
                for i in 0..g.kernel[0] {
                    for j in 0..g.kernel[1] {
                        let (Some(y), Some(x)) =
                            (inside(oy, i, 0, g.height), inside(ox, j, 1, g.width))
                        else {
                            continue;
                        };
                        reach.push(Reach {
                            tap: i * g.kernel[1] + j,
                            offset: (y * g.width + x) * BLOCK,
                        });
                    }
                }
                starts.push(reach.len());
            }
        }
        Self { reach, starts }
    }

    fn of_position(&self, p: usize) -> &[Reach] {
        &self.reach[self.starts[p]..self.starts[p + 1]]
    }
}

/// The forward convolution without bias, `[B, C_out, H_out, W_out]`, of a layer that
/// [`fits`], with its packed weight.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], packed: &Packed) -> Vec<f32> {
    let taps = g.kernel[0] * g.kernel[1];
    let reaches = Reaches::of(g);
    let (in_plane, out_plane) = (
        g.height * g.width * BLOCK,
        g.out_height * g.out_width * BLOCK,
    );
    let copy = interleave(x, g.batch, g.in_channels, g.height * g.width);
    let chunk = (CHUNK_FLOATS / in_plane).clamp(1, g.in_channels);
    let task_len = BLOCKS_PER_TASK * ROWS * out_plane;
    let fill = |y: &mut [MaybeUninit<f32>]| {
        y.par_chunks_mut(g.out_channels * out_plane)
            .zip(copy.par_chunks(g.in_channels * in_plane))
            .for_each(|(y, images)| {
                y.par_chunks_mut(task_len)
                    .enumerate()
                    .for_each(|(task, y)| {
                        let first_block = task * BLOCKS_PER_TASK;
                        for first in (0..g.in_channels).step_by(chunk) {
                            let channels = chunk.min(g.in_channels - first);
                            let input = &images[first * in_plane..][..channels * in_plane];
                            for p in 0..g.out_height * g.out_width {
                                let reach = reaches.of_position(p);
                                for (b, y) in y.chunks_mut(ROWS * out_plane).enumerate() {
                                    let block = packed.block(first_block + b);
                                    let tile = Tile {
                                        channels,
                                        in_plane,
                                        taps,
                                        at: p * BLOCK,
                                        out_plane,
                                        accumulate: first > 0,
                                    };
                                    let weights = &block[first * taps * ROWS..];
                                    // SAFETY: `super::ConvPath::takes` checked AVX-512; the bounds are
                                    // checked on entry; the first chunk (`accumulate` false)
                                    // writes what later chunks read.
                                    unsafe { tile_kernel(input, reach, weights, &tile, y) };
                                }
                            }
                        }
                    })
            })
    };
    // SAFETY: the first input chunk stores every output channel at every position of every
    // block (the loops above), before any later chunk reads them back.
    let y = unsafe { written_by(g.batch.div_ceil(BLOCK) * g.out_channels * out_plane, fill) };
    deinterleave(&y, g.batch, g.out_channels, g.out_height * g.out_width)
}

/// Where one tile reads and writes.
struct Tile {
    /// Input channels of this chunk.
    channels: usize,
    /// Floats of one channel of an image block's copy.
    in_plane: usize,
    /// `kH kW`.
    taps: usize,
    /// The output position's offset in an output channel of the block.
    at: usize,
    /// Floats of one output channel of the block.
    out_plane: usize,
    /// Whether to add to the outputs (a later chunk) or overwrite them.
    accumulate: bool,
}

/// One tile: the first `out.len() / out_plane` (at most [`ROWS`]) output channels at one
/// position for an image block, summed over the chunk's channels and the position's `reach`.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_kernel(
    input: &[f32],
    reach: &[Reach],
    weights: &[f32],
    t: &Tile,
    out: &mut [MaybeUninit<f32>],
) {
    use std::arch::x86_64::*;
    let rows = (out.len() / t.out_plane).min(ROWS);
    assert!(t.channels * t.in_plane <= input.len() && weights.len() >= t.channels * t.taps * ROWS);
    assert!(
        reach
            .iter()
            .all(|r| r.offset + BLOCK <= t.in_plane && r.tap < t.taps)
    );
    assert!(t.at + BLOCK <= t.out_plane && rows >= 1);
    let mut acc = [[_mm512_setzero_ps(); VECTORS]; ROWS];
    if t.accumulate {
        for (r, acc) in acc.iter_mut().enumerate().take(rows) {
            for (s, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `r * out_plane + at + BLOCK <= rows * out_plane <= out.len()`.
                *acc = unsafe {
                    _mm512_loadu_ps(
                        out.as_ptr()
                            .cast::<f32>()
                            .add(r * t.out_plane + t.at + s * LANES),
                    )
                };
            }
        }
    }
    for c in 0..t.channels {
        let channel = &input[c * t.in_plane..][..t.in_plane];
        let w = &weights[c * t.taps * ROWS..][..t.taps * ROWS];
        for r in reach {
            let mut v = [_mm512_setzero_ps(); VECTORS];
            for (s, v) in v.iter_mut().enumerate() {
                // SAFETY: `offset + BLOCK <= in_plane = channel.len()` (asserted).
                *v = unsafe { _mm512_loadu_ps(channel.as_ptr().add(r.offset + s * LANES)) };
            }
            let w = &w[r.tap * ROWS..][..ROWS];
            for (row, acc) in acc.iter_mut().enumerate() {
                let b = _mm512_set1_ps(w[row]);
                for (acc, v) in acc.iter_mut().zip(v) {
                    *acc = _mm512_fmadd_ps(b, v, *acc);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate().take(rows) {
        for (s, acc) in acc.iter().enumerate() {
            // SAFETY: as for the loads above.
            unsafe {
                _mm512_storeu_ps(
                    out.as_mut_ptr()
                        .cast::<f32>()
                        .add(r * t.out_plane + t.at + s * LANES),
                    *acc,
                )
            };
        }
    }
}

/// Never called: `super::tile::has_avx512` is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_kernel(
    _input: &[f32],
    _reach: &[Reach],
    _weights: &[f32],
    _t: &Tile,
    _out: &mut [MaybeUninit<f32>],
) {
    unreachable!("the direct convolution needs AVX-512")
}
