//! The register tile the direct paths share: [`ROWS`] output channels by [`VECTORS`] vectors of
//! [`LANES`] floats, the weight packed in blocks of [`ROWS`] output channels ([`Packed`]) so that
//! a tile reads the weights of one tap as one run, and the CPU check ([`has_avx512`]).
//!
//! `super::direct_rows` vectorizes over output positions and takes layers whose output rows are
//! whole AVX-512 vectors (ResNet-18's 32x32 and 16x16 stages, and the stride-2 layer between
//! them); `super::direct_images` vectorizes over images and takes small maps of any stride (its
//! 8x8 and 4x4 stages and their strided layers); `super::weight_tiles` computes the weight
//! gradient of both with one tile.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::ConvGeometry;
use crate::uninit::written_by;

/// Output channels per tile: the weights broadcast for each tap.
pub(super) const ROWS: usize = 6;

/// Floats per vector: one AVX-512 register of `f32` (output positions in `super::direct_rows`,
/// images in `super::direct_images`).
pub(super) const LANES: usize = 16;

/// Vectors per tile. With [`ROWS`] they make 24 accumulators, and with the 4 loaded vectors and
/// a broadcast 29 of the 32 registers: 10 loads for 24 multiply-adds. Against 8 x 3 (11 loads)
/// and 4 x 6 (10 loads, more vectors held), 6 x 4 was as fast on ResNet-18's first stage (about
/// 290 GFLOP/s on 2 threads, the direct kernel) and 10% faster on its second.
pub(super) const VECTORS: usize = 4;

/// Whether the CPU has AVX-512F and AVX-512VL, which the direct kernels are written in. The
/// weight-gradient kernel needs VL: without it the lanes of its 512-bit accumulators are summed
/// through instructions that reach only the first 16 registers, and the compiler keeps the
/// accumulators there and spills the rest (`super::weight_tiles`). Every CPU with AVX-512F
/// but the Xeon Phi has VL.
#[cfg(target_arch = "x86_64")]
pub(super) fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

/// Whether the CPU has AVX-512F and AVX-512VL, which the direct kernels are written in.
#[cfg(not(target_arch = "x86_64"))]
pub(super) fn has_avx512() -> bool {
    false
}

/// A weight `[C_out, K]` in blocks of [`ROWS`] output channels, `[K, ROWS]` each (zeros past
/// `C_out`): a tile reads the [`ROWS`] weights of one tap as one run.
pub(super) struct Packed {
    data: Vec<f32>,
    k: usize,
}

impl Packed {
    /// Packs `C_out` rows of `k` weights; `row(o, dst)` writes row `o` into `dst`.
    fn from_rows(out_channels: usize, k: usize, row: impl Fn(usize, &mut [f32]) + Sync) -> Self {
        let fill = |data: &mut [MaybeUninit<f32>]| {
            if k == 0 {
                return;
            }
            data.par_chunks_mut(k * ROWS)
                .enumerate()
                .for_each(|(block, packed)| {
                    let mut values = vec![0.0; k];
                    let rows = ROWS.min(out_channels - block * ROWS);
                    for r in 0..ROWS {
                        match r < rows {
                            true => row(block * ROWS + r, &mut values),
                            false => values.fill(0.0),
                        }
                        for (t, &value) in values.iter().enumerate() {
                            packed[t * ROWS + r].write(value);
                        }
                    }
                })
        };
        // SAFETY: each block writes all `ROWS` rows of its `k` taps (zeros past `C_out`).
        let data = unsafe { written_by(out_channels.div_ceil(ROWS) * k * ROWS, fill) };
        Self { data, k }
    }

    /// The weight `[C_out, C_in, kH, kW]` of a one-group convolution.
    pub(super) fn new(g: &ConvGeometry, w: &[f32]) -> Self {
        let k = g.in_channels * g.kernel[0] * g.kernel[1];
        Self::from_rows(g.out_channels, k, |o, dst| {
            dst.copy_from_slice(&w[o * k..][..k]);
        })
    }

    /// The weight of [`flipped`]`(g)`: `g`'s kernel flipped in both directions and transposed
    /// between input and output channels, `[C_in, C_out, kH, kW]`.
    pub(super) fn flipped(g: &ConvGeometry, w: &[f32]) -> Self {
        let taps = g.kernel[0] * g.kernel[1];
        Self::from_rows(g.in_channels, g.out_channels * taps, |c, dst| {
            for (o, dst) in dst.chunks_exact_mut(taps).enumerate() {
                let src = &w[(o * g.in_channels + c) * taps..][..taps];
                for (value, &w) in dst.iter_mut().zip(src.iter().rev()) {
                    *value = w;
                }
            }
        })
    }

    /// Output-channel block `b`, `[K, ROWS]`.
    pub(super) fn block(&self, b: usize) -> &[f32] {
        &self.data[b * self.k * ROWS..][..self.k * ROWS]
    }

    /// The blocks in order.
    pub(super) fn blocks(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.k * ROWS)
    }
}
