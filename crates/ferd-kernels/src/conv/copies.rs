//! The copies of the input that the direct paths read, made once per image (or block of
//! images) so that a tile's reads are whole vectors of consecutive floats:
//!
//! - [`Plan`]: a zero-padded copy of one image, each row split by column phase for a strided
//!   layer, with every tap's and every output vector's offset in it (`super::direct_rows` and
//!   the row tiles of `super::weight_tiles`);
//! - [`interleave`]: blocks of [`BLOCK`] images with their pixels interleaved, so that one
//!   vector holds one pixel of [`LANES`] images (`super::direct_images` and the image tiles of
//!   `super::weight_tiles`).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::ConvGeometry;
use super::tile::{LANES, VECTORS};
use crate::uninit::written_by;

/// Images per block of the interleaved copy: one tile's vectors.
pub(super) const BLOCK: usize = LANES * VECTORS;

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
    pub(super) last_tap: usize,
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

/// `x` (`[B, C, P]`) as blocks of [`BLOCK`] images, `[B / BLOCK, C, P, BLOCK]`, zeros past B.
pub(super) fn interleave(x: &[f32], batch: usize, channels: usize, plane: usize) -> Vec<f32> {
    let fill = |copy: &mut [MaybeUninit<f32>]| {
        copy.par_chunks_mut(plane * BLOCK)
            .enumerate()
            .for_each(|(index, dst)| {
                let (block, c) = (index / channels, index % channels);
                let images = BLOCK.min(batch - block * BLOCK);
                for lane in 0..images {
                    let src = &x[((block * BLOCK + lane) * channels + c) * plane..][..plane];
                    for (p, &value) in src.iter().enumerate() {
                        dst[p * BLOCK + lane].write(value);
                    }
                }
                if images < BLOCK {
                    for position in dst.chunks_exact_mut(BLOCK) {
                        position[images..].fill(MaybeUninit::new(0.0));
                    }
                }
            })
    };
    // SAFETY: each position of each channel plane gets its block's images and zeros after them.
    unsafe { written_by(batch.div_ceil(BLOCK) * channels * plane * BLOCK, fill) }
}

/// The inverse of [`interleave`], dropping the zero images past `batch`.
pub(super) fn deinterleave(y: &[f32], batch: usize, channels: usize, plane: usize) -> Vec<f32> {
    let image_len = channels * plane;
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(BLOCK * image_len)
            .zip(y.par_chunks(channels * plane * BLOCK))
            .for_each(|(out, y)| {
                for (c, src) in y.chunks_exact(plane * BLOCK).enumerate() {
                    for (lane, dst) in out.chunks_exact_mut(image_len).enumerate() {
                        let dst = &mut dst[c * plane..][..plane];
                        for (p, value) in dst.iter_mut().enumerate() {
                            value.write(src[p * BLOCK + lane]);
                        }
                    }
                }
            })
    };
    // SAFETY: every image of every block gets each of its channels' planes.
    unsafe { written_by(batch * image_len, fill) }
}
