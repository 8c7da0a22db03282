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
//! channels, padded by `(k - 1) d - p` (`super::packed_cpu::input_grad`).
//!
//! Each output is one running sum over `(c, i, j)` in order, whatever the thread count. The
//! kernel needs AVX-512; where the CPU lacks it (or a layer does not qualify) the callers keep
//! the im2col path.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::conv_cpu::{ConvGeometry, with_scratch};
use super::packed_cpu::{LANES, Packed, ROWS, VECTORS, has_avx512};
use super::uninit::written_by;

/// Whether [`forward`] computes this convolution: one group, at least one input channel (an
/// image of none has no chunks to copy), a kernel larger than 1x1 (a 1x1 convolution reads its
/// input in place and gemm is as fast), at least a tile's [`ROWS`] output channels (ResNet-18's
/// 3-channel input gradient took twice as long here as through gemm), output rows a whole number
/// of vectors, and a CPU with AVX-512. Any stride and dilation: the copy splits each row by
/// column phase ([`Padded`]).
pub(super) fn qualifies(g: &ConvGeometry) -> bool {
    g.groups == 1
        && g.in_channels > 0
        && g.kernel[0] * g.kernel[1] > 1
        && g.out_channels >= ROWS
        && g.out_width.is_multiple_of(LANES)
        && has_avx512()
}

/// The padded copy of one image: `C_in` planes of `height` rows, where pixel `(y, x)` of the
/// padded image (input pixel `(y - padding[0], x - padding[1])`, or a zero) sits in row `y`,
/// column phase `x % stride`, slot `x / stride`. Each row is its `stride` phases one after the
/// other, `phase_width` slots each: the columns that consecutive outputs of a strided row read
/// for one kernel tap are consecutive slots of one phase. With stride 1 a row is the padded row.
#[derive(Clone, Copy)]
struct Padded {
    height: usize,
    /// Columns of the padded image that the taps reach.
    width: usize,
    /// The horizontal stride: phases per row.
    stride: usize,
    /// Slots per phase: `width / stride`, rounded up.
    phase_width: usize,
}

impl Padded {
    /// The copy that the convolution reads: exactly the rows and columns its taps reach.
    fn of(g: &ConvGeometry) -> Self {
        let reach = |axis: usize, out: usize| {
            (out - 1) * g.stride[axis] + (g.kernel[axis] - 1) * g.dilation[axis] + 1
        };
        let width = reach(1, g.out_width);
        Self {
            height: reach(0, g.out_height),
            width,
            stride: g.stride[1],
            phase_width: width.div_ceil(g.stride[1]),
        }
    }

    /// Floats of one row: its phases.
    fn row(&self) -> usize {
        self.stride * self.phase_width
    }

    fn plane(&self) -> usize {
        self.height * self.row()
    }

    /// Offset of padded column `x` in a row.
    fn column(&self, x: usize) -> usize {
        (x % self.stride) * self.phase_width + x / self.stride
    }

    /// Offset of tap `(c, i, j)` in the copy, for every tap in the weight's order: where output
    /// `(0, 0)` reads it.
    fn taps(&self, g: &ConvGeometry) -> Vec<usize> {
        let mut taps = Vec::with_capacity(g.in_channels * g.kernel[0] * g.kernel[1]);
        for c in 0..g.in_channels {
            for i in 0..g.kernel[0] {
                for j in 0..g.kernel[1] {
                    let (dy, dx) = (i * g.dilation[0], j * g.dilation[1]);
                    taps.push(c * self.plane() + dy * self.row() + self.column(dx));
                }
            }
        }
        taps
    }

    /// Offset in a plane of output `(oy, ox)`'s reads, relative to its taps: output `(oy, ox)`
    /// reads tap `(i, j)` at padded `(oy s_y + i d_y, ox s_x + j d_x)`, whose phase is the tap's
    /// and whose slot is `ox` further on.
    fn output(&self, g: &ConvGeometry, oy: usize, ox: usize) -> usize {
        oy * g.stride[0] * self.row() + ox
    }

    /// Copies `image` (`[C_in, H, W]`) into `dst` (`C_in` padded planes), zeroing the padding
    /// around it (with a stride, a row is zeroed, then each phase's columns gathered into it).
    fn fill(&self, g: &ConvGeometry, image: &[f32], dst: &mut [f32]) {
        let [top, left] = g.padding;
        // With a stride, a padding wider than the taps reach can leave the copy short of the
        // input's first row or column: then no tap reads the input along that axis.
        let rows = top.min(self.height)..(top + g.height).min(self.height);
        let cols = left.min(self.width)..(left + g.width).min(self.width);
        for (plane, channel) in dst
            .chunks_exact_mut(self.plane())
            .zip(image.chunks_exact(g.height * g.width))
        {
            plane[..rows.start * self.row()].fill(0.0);
            plane[rows.end * self.row()..].fill(0.0);
            for y in rows.clone() {
                let line = &mut plane[y * self.row()..][..self.row()];
                let source = &channel[(y - top) * g.width..][..cols.len()];
                if self.stride == 1 {
                    line[..cols.start].fill(0.0);
                    line[cols.end..].fill(0.0);
                    line[cols.clone()].copy_from_slice(source);
                    continue;
                }
                line.fill(0.0);
                for (phase, slots) in line.chunks_exact_mut(self.phase_width).enumerate() {
                    // The first slot of this phase inside the input, and its column.
                    let first = cols.start.saturating_sub(phase).div_ceil(self.stride);
                    let x = phase + first * self.stride;
                    if x < cols.end {
                        let taken = source[x - left..].iter().step_by(self.stride);
                        for (slot, &value) in slots[first..].iter_mut().zip(taken) {
                            *slot = value;
                        }
                    }
                }
            }
        }
    }
}

/// What a direct convolution reads: the padded copy's shape, each tap's offset in it and each
/// vector's place.
pub(super) struct Plan {
    padded: Padded,
    /// Offset of tap `(c, i, j)` in the padded copy, in the weight's order (`K` of them).
    pub(super) taps: Vec<usize>,
    /// The largest of `taps`: a vector at `at` reads up to `last_tap + at + LANES`.
    last_tap: usize,
    /// Each vector's first output: `[offset in a padded plane, offset in an output plane]`.
    pub(super) vectors: Vec<[usize; 2]>,
}

impl Plan {
    pub(super) fn of(g: &ConvGeometry) -> Self {
        let padded = Padded::of(g);
        let taps = padded.taps(g);
        let vectors = (0..g.out_height)
            .flat_map(|oy| {
                (0..g.out_width)
                    .step_by(LANES)
                    .map(move |ox| [padded.output(g, oy, ox), oy * g.out_width + ox])
            })
            .collect();
        Self {
            last_tap: taps.iter().copied().max().unwrap_or(0),
            padded,
            taps,
            vectors,
        }
    }

    /// Copies `image` into `dst`, one image's padded copy ([`Plan::copy_len`] floats).
    pub(super) fn fill(&self, g: &ConvGeometry, image: &[f32], dst: &mut [f32]) {
        self.padded.fill(g, image, dst);
    }

    /// Elements of one image's padded copy.
    pub(super) fn copy_len(&self, g: &ConvGeometry) -> usize {
        g.in_channels * self.padded.plane()
    }
}

/// The forward convolution without bias, `[B, C_out, H_out, W_out]`, of a layer that
/// [`qualifies`], with its packed weight.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], packed: &Packed) -> Vec<f32> {
    let plan = Plan::of(g);
    let plane = g.out_height * g.out_width;
    let image_len = g.in_channels * g.height * g.width;
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(g.out_channels * plane)
            .zip(x.par_chunks_exact(image_len))
            .for_each(|(out, image)| {
                with_scratch(plan.copy_len(g), |copy| {
                    plan.padded.fill(g, image, copy);
                    for (block, weights) in packed.blocks().enumerate() {
                        let rows = (g.out_channels - block * ROWS).min(ROWS);
                        let out = &mut out[block * ROWS * plane..][..rows * plane];
                        for tile in plan.vectors.chunks(VECTORS) {
                            // A short last tile repeats its last vector (computed, stored twice).
                            let pick = |s: usize| tile[s.min(tile.len() - 1)];
                            let tile: [[usize; 2]; VECTORS] = std::array::from_fn(pick);
                            // SAFETY: `qualifies` checked AVX-512; `tile_kernel`'s bounds are
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

/// Never called: `qualifies` is false off x86-64.
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
