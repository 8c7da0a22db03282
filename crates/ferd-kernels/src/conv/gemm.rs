//! The general convolution as im2col + GEMM per image (rayon across the batch, the `gemm` crate
//! inside). For one image and one group, with `K = C_in/groups * kH * kW` and
//! `N = H_out * W_out`:
//!
//! - forward: `Y_g = W_g · col(X_g)`, `[C_out/groups, K] x [K, N]`;
//! - input gradient: `dX_g = col⁻¹(W_gᵀ · dY_g)` (col⁻¹ adds each column back where it was read);
//! - weight gradient: `dW_g = Σ_b dY_g · col(X_g)ᵀ` (or its transpose, whichever gemm writes
//!   faster), accumulated per share of the batch (`super::shares`), then summed.
//!
//! A 1x1 convolution with stride 1 and no padding needs no im2col: `col(X) = X`. Deep layers of
//! few output positions batch several images into one GEMM ([`ConvGeometry::images_per_gemm`]).

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::{ConvGeometry, shares, with_scratch};
use crate::uninit::assume_written;

/// A row-major view of a matrix inside a slice, with explicit strides (a transpose is a swap).
#[derive(Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            data: self.data,
        }
    }

    fn last_index(&self) -> usize {
        (self.rows.max(1) - 1) * self.row_stride + (self.cols.max(1) - 1) * self.col_stride
    }
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` row-major `[a.rows, b.cols]`.
fn matmul(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    assert!(
        dst.len() >= a.rows * b.cols,
        "matmul: destination too small"
    );
    // SAFETY: `dst` holds the product (asserted) and is initialized, for `accumulate` to read.
    unsafe { gemm_to(dst.as_mut_ptr(), a, b, accumulate) }
}

/// `dst = a · b` into memory not yet written: every element of the product is written.
fn matmul_into(dst: &mut [MaybeUninit<f32>], a: Mat<'_>, b: Mat<'_>) {
    assert!(
        dst.len() >= a.rows * b.cols,
        "matmul: destination too small"
    );
    // SAFETY: `dst` holds the product (asserted); without `accumulate` nothing reads it.
    unsafe { gemm_to(dst.as_mut_ptr().cast::<f32>(), a, b, false) }
}

/// [`matmul`] through a pointer.
///
/// # Safety
/// `dst` must be valid for writes of `a.rows * b.cols` floats, alias neither operand, and hold
/// initialized floats where `accumulate` is set.
unsafe fn gemm_to(dst: *mut f32, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    assert_eq!(a.cols, b.rows, "matmul: inner dimensions");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            // SAFETY: the caller's bounds.
            unsafe { std::ptr::write_bytes(dst, 0, m * n) };
        }
        return;
    }
    assert!(
        a.last_index() < a.data.len() && b.last_index() < b.data.len(),
        "matmul: operand out of bounds"
    );
    // SAFETY: gemm writes the row-major m x n product within the caller's bounds and reads a
    // and b at most at their last index (asserted); it reads `dst` only to accumulate.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Fills one image's block of `col` for one group (`x` holds that group's channels): row `r` of
/// the image's `[K, N]` im2col matrix goes to `col[r * ld..][..N]`, so that the blocks of several
/// images sit side by side in one `[K, images * N]` matrix of leading dimension `ld`.
pub(super) fn im2col(g: &ConvGeometry, x: &[f32], col: &mut [f32], ld: usize) {
    let [kh, kw] = g.kernel;
    let (oh, ow) = (g.out_height, g.out_width);
    let plane = g.height * g.width;
    let shifted_rows = g.reads_shifted_rows();
    // Taps outermost: a tap depends on the kernel offset alone, not on the channel.
    for i in 0..kh {
        for j in 0..kw {
            let tap = g.tap(i, j);
            for c in 0..g.group_in() {
                let channel = &x[c * plane..(c + 1) * plane];
                let row = &mut col[((c * kh + i) * kw + j) * ld..][..oh * ow];
                if shifted_rows {
                    tap.gather_rows(row, channel, ow);
                    continue;
                }
                row[..tap.rows.start * ow].fill(0.0);
                row[tap.rows.end * ow..].fill(0.0);
                for oy in tap.rows.clone() {
                    let out = &mut row[oy * ow..(oy + 1) * ow];
                    out[..tap.cols.start].fill(0.0);
                    out[tap.cols.end..].fill(0.0);
                    let line = &channel[tap.input_row(oy) * g.width..][..g.width];
                    tap.gather(&mut out[tap.cols.clone()], line);
                }
            }
        }
    }
}

/// Adds one image's block of `col` (leading dimension `ld`, as [`im2col`] lays it out) back into
/// that image's gradient `dx` for one group: the adjoint of [`im2col`].
fn col2im(g: &ConvGeometry, col: &[f32], ld: usize, dx: &mut [f32]) {
    let [kh, kw] = g.kernel;
    let (oh, ow) = (g.out_height, g.out_width);
    let plane = g.height * g.width;
    let taps = g.taps();
    for c in 0..g.group_in() {
        let channel = &mut dx[c * plane..(c + 1) * plane];
        for i in 0..kh {
            for j in 0..kw {
                let row = &col[((c * kh + i) * kw + j) * ld..][..oh * ow];
                let tap = &taps[i * kw + j];
                for oy in tap.rows.clone() {
                    let line = &mut channel[tap.input_row(oy) * g.width..][..g.width];
                    tap.scatter_add(line, &row[oy * ow..(oy + 1) * ow][tap.cols.clone()]);
                }
            }
        }
    }
}

/// The images of one GEMM, `first..first + count`, whose `[K, count * N]` im2col matrix (and
/// `[C_out/groups, count * N]` output block) has leading dimension `width = count * N`.
#[derive(Clone, Copy)]
struct Chunk {
    first: usize,
    count: usize,
    width: usize,
}

impl ConvGeometry {
    /// The chunk of `count` images starting at image `first`.
    fn chunk(&self, first: usize, count: usize) -> Chunk {
        Chunk {
            first,
            count,
            width: count * self.col_cols(),
        }
    }

    /// Per-thread scratch of the im2col paths: the `[K, images * N]` matrix, then a
    /// `[C_out/groups, images * N]` staging block for the chunks of several images.
    fn scratch_len(&self) -> usize {
        let width = self.images_per_gemm() * self.col_cols();
        let staging = if self.images_per_gemm() > 1 {
            self.group_out() * width
        } else {
            0
        };
        self.col_rows() * width + staging
    }

    /// `group`'s columns of the chunk's images, as a `[K, width]` matrix in `col`; a single
    /// image of a pointwise convolution is read in place.
    fn chunk_cols<'a>(
        &self,
        x: &'a [f32],
        chunk: Chunk,
        group: usize,
        col: &'a mut [f32],
    ) -> Mat<'a> {
        let group_image = self.group_in() * self.height * self.width;
        let image = |b: usize| &x[b * self.image_len() + group * group_image..][..group_image];
        if chunk.count == 1 && self.is_pointwise() {
            return Mat::new(image(chunk.first), self.col_rows(), chunk.width);
        }
        let n = self.col_cols();
        // A matrix of no rows (no input channels) has nothing to fill, nor room to start at.
        if self.col_rows() > 0 {
            for i in 0..chunk.count {
                im2col(self, image(chunk.first + i), &mut col[i * n..], chunk.width);
            }
        }
        Mat::new(
            &col[..self.col_rows() * chunk.width],
            self.col_rows(),
            chunk.width,
        )
    }

    /// `group`'s output rows of the chunk's images gathered into a `[C_out/groups, width]`
    /// matrix (in `staging`), or read in place for a single image.
    fn chunk_rows<'a>(
        &self,
        y: &'a [f32],
        chunk: Chunk,
        group: usize,
        staging: &'a mut [f32],
    ) -> Mat<'a> {
        let (n, rows) = (self.col_cols(), self.group_out());
        let block = |b: usize| &y[b * self.out_image_len() + group * rows * n..][..rows * n];
        if chunk.count == 1 {
            return Mat::new(block(chunk.first), rows, n);
        }
        for i in 0..chunk.count {
            let image = block(chunk.first + i);
            for o in 0..rows {
                staging[o * chunk.width + i * n..][..n].copy_from_slice(&image[o * n..][..n]);
            }
        }
        Mat::new(&staging[..rows * chunk.width], rows, chunk.width)
    }

    /// The two factors of `group`'s weight gradient over the chunk's images: `col(X) · dYᵀ`
    /// where [`ConvGeometry::weight_grad_transposed`], `dY · col(X)ᵀ` otherwise.
    fn weight_grad_operands<'a>(
        &self,
        x: &'a [f32],
        dy: &'a [f32],
        chunk: Chunk,
        group: usize,
        col: &'a mut [f32],
        staging: &'a mut [f32],
    ) -> (Mat<'a>, Mat<'a>) {
        let cols = self.chunk_cols(x, chunk, group, col);
        let dyg = self.chunk_rows(dy, chunk, group, staging);
        match self.weight_grad_transposed() {
            true => (cols, dyg.t()),
            false => (dyg, cols.t()),
        }
    }
}

/// The forward convolution without bias, `[B, C_out, H_out, W_out]`.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; g.output_len()];
    if g.output_len() == 0 {
        return out;
    }
    let (k, n, rows) = (g.col_rows(), g.col_cols(), g.group_out());
    let per_gemm = g.images_per_gemm();
    out.par_chunks_mut(per_gemm * g.out_image_len())
        .enumerate()
        .for_each(|(index, out)| {
            let chunk = g.chunk(index * per_gemm, out.len() / g.out_image_len());
            with_scratch(g.scratch_len(), |scratch| {
                let (col, staging) = scratch.split_at_mut(k * per_gemm * n);
                for group in 0..g.groups {
                    let cols = g.chunk_cols(x, chunk, group, col);
                    let wg = Mat::new(&w[group * rows * k..][..rows * k], rows, k);
                    if chunk.count == 1 {
                        matmul(&mut out[group * rows * n..][..rows * n], wg, cols, false);
                        continue;
                    }
                    let staged = &mut staging[..rows * chunk.width];
                    matmul(staged, wg, cols, false);
                    for i in 0..chunk.count {
                        let image = &mut out[i * g.out_image_len() + group * rows * n..];
                        for o in 0..rows {
                            image[o * n..][..n]
                                .copy_from_slice(&staged[o * chunk.width + i * n..][..n]);
                        }
                    }
                }
            })
        });
    out
}

/// The input gradient, `[B, C_in, H, W]`.
pub(super) fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; g.batch * g.image_len()];
    if dx.is_empty() {
        return dx;
    }
    let (k, n) = (g.col_rows(), g.col_cols());
    let (rows, per_gemm) = (g.group_out(), g.images_per_gemm());
    let group_image = g.group_in() * g.height * g.width;
    dx.par_chunks_mut(per_gemm * g.image_len())
        .enumerate()
        .for_each(|(index, dx)| {
            let chunk = g.chunk(index * per_gemm, dx.len() / g.image_len());
            with_scratch(g.scratch_len(), |scratch| {
                let (col, staging) = scratch.split_at_mut(k * per_gemm * n);
                for group in 0..g.groups {
                    let wg = Mat::new(&w[group * rows * k..][..rows * k], rows, k);
                    let dyg = g.chunk_rows(dy, chunk, group, staging);
                    if chunk.count == 1 && g.is_pointwise() {
                        matmul(
                            &mut dx[group * group_image..][..group_image],
                            wg.t(),
                            dyg,
                            false,
                        );
                        continue;
                    }
                    let col = &mut col[..k * chunk.width];
                    matmul(col, wg.t(), dyg, false);
                    for i in 0..chunk.count {
                        let dxg = &mut dx[i * g.image_len() + group * group_image..][..group_image];
                        col2im(g, &col[i * n..], chunk.width, dxg);
                    }
                }
            })
        });
    dx
}

/// The weight gradient, `[C_out, C_in/groups, kH, kW]`: per share of the batch
/// ([`shares::sum_over_shares`]), each group's block stored as
/// [`ConvGeometry::weight_grad_transposed`] says, then turned back.
pub(super) fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let sum = shares::sum_over_shares(g, |images, dw| weight_grad_images(g, x, dy, images, dw));
    untranspose(g, sum)
}

/// Weight rows per task when a transposed sum is turned back: each task reads runs of this many
/// consecutive floats and writes this many rows, a few cache lines at a time.
const TILE: usize = 16;

/// Each group's block of the summed weight gradient turned back to `[C_out/groups, K]` where
/// [`ConvGeometry::weight_grad_transposed`] had it stored transposed.
fn untranspose(g: &ConvGeometry, sum: Vec<f32>) -> Vec<f32> {
    if !g.weight_grad_transposed() || g.group_out() == 1 {
        return sum;
    }
    let (k, rows) = (g.col_rows(), g.group_out());
    let mut dw = vec![0.0; g.weight_len()];
    // Tasks of `TILE` weight rows of one group; `rows` need not be a multiple of `TILE`.
    let tasks: Vec<(usize, &mut [f32])> = dw
        .chunks_mut(rows * k)
        .enumerate()
        .flat_map(|(group, block)| {
            (block.chunks_mut(TILE * k).enumerate())
                .map(move |(tile, dw)| (group * rows * k + tile * TILE, dw))
        })
        .collect();
    tasks.into_par_iter().for_each(|(source, dw)| {
        let count = dw.len() / k;
        for r in 0..k {
            let column = &sum[source + r * rows..][..count];
            for (i, &value) in column.iter().enumerate() {
                dw[i * k + r] = value;
            }
        }
    });
    dw
}

/// The most output channels (per group) whose weight gradient is computed transposed: at
/// ResNet-18's last stage (`[512, 4608]`, 4 shares) transposing the 2.4 million floats back
/// took more time than the faster product saved (27 against 33 ms per layer, 2 threads).
const MAX_TRANSPOSED_ROWS: usize = 256;

impl ConvGeometry {
    /// Whether [`weight_grad_images`] stores each group's `[C_out/groups, K]` block of the
    /// weight gradient transposed, `[K, C_out/groups]`, computing `col · dYᵀ` rather than
    /// `dY · colᵀ`: gemm writes a tall result faster than a wide one. At ResNet-18's first
    /// block (`[64, 576]` from 1,024 positions) that is 105-140 against 53-70 GFLOP/s on one
    /// core; at its stem (`[64, 27]`) the wide one wins, 65-72 against 40-42 (`gemm` 0.19).
    /// Past [`MAX_TRANSPOSED_ROWS`] output channels, turning the sum back costs more than the
    /// product gains.
    fn weight_grad_transposed(&self) -> bool {
        self.col_rows() >= self.group_out() && self.group_out() <= MAX_TRANSPOSED_ROWS
    }
}

/// Writes the weight gradient of `images` (at least one) into all of `dw`, each group's block
/// stored as [`ConvGeometry::weight_grad_transposed`] says (a depthwise group's block is one
/// row, the same either way). The first GEMM of each group writes its block, the later ones add
/// to it: `dw` needs no zeroing.
fn weight_grad_images(
    g: &ConvGeometry,
    x: &[f32],
    dy: &[f32],
    images: std::ops::Range<usize>,
    dw: &mut [MaybeUninit<f32>],
) {
    let (k, n) = (g.col_rows(), g.col_cols());
    let per_gemm = g.images_per_gemm();
    let mut chunks = (images.clone().step_by(per_gemm))
        .map(|first| g.chunk(first, per_gemm.min(images.end - first)));
    let first = chunks
        .next()
        .expect("weight gradient: a share of no images");
    let block = g.group_out() * k;
    with_scratch(g.scratch_len(), |scratch| {
        let (col, staging) = scratch.split_at_mut(k * per_gemm * n);
        for group in 0..g.groups {
            let (a, b) = g.weight_grad_operands(x, dy, first, group, col, staging);
            matmul_into(&mut dw[group * block..][..block], a, b);
        }
        // SAFETY: the groups' blocks tile `dw`, and each was written just above.
        let dw = unsafe { assume_written(dw) };
        for chunk in chunks {
            for group in 0..g.groups {
                let (a, b) = g.weight_grad_operands(x, dy, chunk, group, col, staging);
                matmul(&mut dw[group * block..][..block], a, b, true);
            }
        }
    });
}
