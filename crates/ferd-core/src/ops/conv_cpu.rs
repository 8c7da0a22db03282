//! A 2-D convolution on the CPU over plain `f32` slices: forward, input gradient and weight
//! gradient, as im2col + GEMM per image (rayon across the batch, the `gemm` crate inside).
//!
//! Layouts are PyTorch's: input `[B, C_in, H, W]`, weight `[C_out, C_in / groups, kH, kW]`,
//! output `[B, C_out, H_out, W_out]`, all contiguous. For one image and one group, with
//! `K = C_in/groups * kH * kW` and `N = H_out * W_out`:
//!
//! - forward: `Y_g = W_g · col(X_g)`, `[C_out/groups, K] x [K, N]`;
//! - input gradient: `dX_g = col⁻¹(W_gᵀ · dY_g)` (col⁻¹ adds each column back where it was read);
//! - weight gradient: `dW_g = Σ_b dY_g · col(X_g)ᵀ` (or its transpose, whichever gemm writes
//!   faster), accumulated per share of the batch, then summed.
//!
//! A 1x1 convolution with stride 1 and no padding needs no im2col: `col(X) = X`. Depthwise
//! convolutions (one input channel per group) use a direct loop instead of a `[1, kH kW]` GEMM.
//! Where the CPU has AVX-512, two direct kernels take the forward and the stride-1 input gradient
//! first (`super::packed_cpu` chooses): `super::direct_cpu` for layers whose output rows are
//! whole vectors, `super::lanes_cpu` for small maps of batches of about 48 images and more; the
//! weight gradient of those small maps and of the direct kernel's 32x32 layers goes through one
//! tile (`super::lanes_weight_cpu`, `super::direct_weight_cpu`).
//!
//! Nothing here knows about Burn; `super::flex` moves tensors in and out.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::packed_cpu;
use super::simd::dispatch;
use super::uninit::{assume_written, written_by, zeroed};

thread_local! {
    /// Each thread's im2col buffer, kept between calls: a fresh multi-megabyte allocation per
    /// image costs more in page faults than the copy it holds.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` with this thread's scratch buffer resized to `len`.
pub(super) fn with_scratch<R>(len: usize, work: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        work(&mut scratch[..len])
    })
}

/// The shapes and options of one convolution, checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub batch: usize,
    /// Input channels (all groups).
    pub in_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels (all groups).
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding before the first row and column (the padding after them only shapes the output).
    pub padding: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Number of groups.
    pub groups: usize,
    /// Output height.
    pub out_height: usize,
    /// Output width.
    pub out_width: usize,
}

impl ConvGeometry {
    /// The geometry of `x [B, C_in, H, W]` convolved with `w [C_out, C_in/groups, kH, kW]`, with
    /// `(begin, end)` paddings per spatial dimension; an error says what does not fit.
    pub fn new(
        x: [usize; 4],
        w: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Self, String> {
        let [batch, in_channels, height, width] = x;
        let [out_channels, group_in, kh, kw] = w;
        if groups == 0 || stride.contains(&0) || dilation.contains(&0) {
            return Err(format!(
                "stride {stride:?}, dilation {dilation:?} and groups {groups} must be positive"
            ));
        }
        if in_channels % groups != 0
            || out_channels % groups != 0
            || group_in * groups != in_channels
        {
            return Err(format!(
                "input {x:?} and weight {w:?} do not fit {groups} group(s): the weight's second \
                 dimension must be C_in / groups and C_out must divide into the groups"
            ));
        }
        let out_size = |size: usize, (begin, end): (usize, usize), k: usize, s: usize, d: usize| {
            let span = d * (k.max(1) - 1) + 1;
            (size + begin + end)
                .checked_sub(span)
                .map(|room| room / s + 1)
        };
        let out_height = out_size(height, padding[0], kh, stride[0], dilation[0]);
        let out_width = out_size(width, padding[1], kw, stride[1], dilation[1]);
        match (out_height, out_width) {
            (Some(out_height), Some(out_width)) if kh > 0 && kw > 0 => Ok(Self {
                batch,
                in_channels,
                height,
                width,
                out_channels,
                kernel: [kh, kw],
                stride,
                padding: [padding[0].0, padding[1].0],
                dilation,
                groups,
                out_height,
                out_width,
            }),
            _ => Err(format!(
                "kernel {:?} (dilation {dilation:?}) does not fit the padded input {:?}",
                [kh, kw],
                [
                    height + padding[0].0 + padding[0].1,
                    width + padding[1].0 + padding[1].1
                ]
            )),
        }
    }

    /// Input channels per group.
    fn group_in(&self) -> usize {
        self.in_channels / self.groups
    }

    /// Output channels per group.
    fn group_out(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Rows of one group's im2col matrix: `C_in/groups * kH * kW`.
    fn col_rows(&self) -> usize {
        self.group_in() * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the im2col matrix: output positions per image.
    fn col_cols(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Elements of one input image.
    fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// Elements of one output image.
    fn out_image_len(&self) -> usize {
        self.out_channels * self.col_cols()
    }

    /// Elements of the weight.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.col_rows()
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_image_len()
    }

    /// Output shape `[B, C_out, H_out, W_out]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ]
    }

    /// A 1x1 convolution that reads every input pixel once, in order: `col(X) = X`.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.padding == [0, 0]
            && self.out_height == self.height
            && self.out_width == self.width
    }

    /// One input channel and one output channel per group.
    fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.group_in() == 1 && self.group_out() == 1
    }

    /// For kernel offset `k` along a dimension, the input coordinate read by output `o`:
    /// `o * stride + k * dilation - padding`, `None` where it falls in the padding. The
    /// definition that [`ConvGeometry::tap`]'s ranges are tested against, and what
    /// `super::lanes_cpu` visits tap by tap.
    pub(super) fn source(
        o: usize,
        k: usize,
        stride: usize,
        dilation: usize,
        padding: usize,
        size: usize,
    ) -> Option<usize> {
        (o * stride + k * dilation)
            .checked_sub(padding)
            .filter(|&i| i < size)
    }

    /// The outputs `lo..hi` (of `count`) whose input coordinate for kernel offset `k` lies inside
    /// the image; the first of them reads input `lo * stride + k * dilation - padding`.
    #[inline]
    fn inside(
        count: usize,
        k: usize,
        stride: usize,
        dilation: usize,
        padding: usize,
        size: usize,
    ) -> (usize, usize) {
        let shift = k * dilation;
        let lo = padding.saturating_sub(shift).div_ceil(stride);
        let hi = if size + padding > shift {
            ((size + padding - shift - 1) / stride + 1).min(count)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// Where kernel tap `(i, j)` reads the input: see [`Tap`].
    fn tap(&self, i: usize, j: usize) -> Tap {
        let along = |d: usize, k: usize, count: usize, size: usize| {
            let (lo, hi) = Self::inside(
                count,
                k,
                self.stride[d],
                self.dilation[d],
                self.padding[d],
                size,
            );
            // Exact whenever the range is not empty (then the coordinate is inside the image).
            let first =
                (lo * self.stride[d] + k * self.dilation[d]).saturating_sub(self.padding[d]);
            (lo..hi, first)
        };
        let (rows, first_row) = along(0, i, self.out_height, self.height);
        let (cols, first_col) = along(1, j, self.out_width, self.width);
        Tap {
            rows,
            cols,
            first_row,
            first_col,
            stride: self.stride,
        }
    }

    /// Every kernel tap, `(i, j)` at `i * kW + j`: computed once per op, not once per plane
    /// (finding a tap's rectangle takes divisions; per plane it was 8% of a MobileNet-V2 step).
    fn taps(&self) -> Vec<Tap> {
        let [kh, kw] = self.kernel;
        (0..kh * kw).map(|t| self.tap(t / kw, t % kw)).collect()
    }

    /// Whether each output row of every tap reads one input row shifted along it: stride 1 and
    /// `W_out = W`, as in every "same" layer. Then a tap's rows are one run of the plane
    /// ([`Tap::gather_rows`], [`TapRun`]).
    fn reads_shifted_rows(&self) -> bool {
        self.stride == [1, 1] && self.out_width == self.width
    }

    /// `taps` (from [`ConvGeometry::taps`]) as [`TapRun`]s, in their order, where
    /// [`ConvGeometry::reads_shifted_rows`]; `None` elsewhere.
    fn tap_runs(&self, taps: &[Tap]) -> Option<Vec<TapRun>> {
        if !self.reads_shifted_rows() {
            return None;
        }
        let width = self.width;
        let run = |tap: &Tap| {
            if tap.rows.is_empty() || tap.cols.is_empty() {
                return TapRun {
                    out: 0,
                    input: 0,
                    inside: Vec::new(),
                };
            }
            let out = tap.rows.start * width + tap.cols.start;
            let end = (tap.rows.end - 1) * width + tap.cols.end;
            TapRun {
                out,
                input: tap.first_row * width + tap.first_col,
                inside: (out..end)
                    .map(|p| tap.cols.contains(&(p % width)))
                    .collect(),
            }
        };
        Some(taps.iter().map(run).collect())
    }
}

/// One kernel tap of a convolution whose output rows each read one input row shifted along it,
/// as one run of the plane: from the tap's first output to its last, output `out + p` reads
/// input `input + p`. A run holds every row of the tap's rectangle, so a loop over it is long
/// (a whole 32x32 plane, where a row is 32 values or fewer, too short for 16 lanes and a tail).
/// The outputs in columns outside the rectangle read a neighbouring row's pixel instead of the
/// padding: `inside[p]` is false there, and a kernel adds `+0.0` to them, which changes no sum
/// (a sum that starts at `+0.0` is never `-0.0`).
struct TapRun {
    out: usize,
    input: usize,
    inside: Vec<bool>,
}

/// Partial sums of [`depthwise_weight_plane`] over a run: enough for the loop to vectorize.
const RUN_LANES: usize = 16;

/// `dst[p] += weight * src[p]` where `inside[p]`, and `+0.0` elsewhere: one tap over a
/// [`TapRun`], in the forward (`dst` the output) and in its adjoint (`dst` the input gradient).
#[inline(always)]
fn add_scaled_inside(dst: &mut [f32], src: &[f32], inside: &[bool], weight: f32) {
    for ((value, &source), &inside) in dst.iter_mut().zip(src).zip(inside) {
        let term = weight * source;
        *value += if inside { term } else { 0.0 };
    }
}

/// `dst[b] += weight * src[b]`: one tap along one row at stride 1.
#[inline(always)]
fn add_scaled(dst: &mut [f32], src: &[f32], weight: f32) {
    for (value, &source) in dst.iter_mut().zip(src) {
        *value += weight * source;
    }
}

/// The outputs for which one kernel tap reads inside the image form a rectangle, `rows x cols`;
/// output `(rows.start + a, cols.start + b)` reads input
/// `(first_row + a * stride[0], first_col + b * stride[1])`. Everywhere else the tap reads padding.
struct Tap {
    rows: Range<usize>,
    cols: Range<usize>,
    first_row: usize,
    first_col: usize,
    stride: [usize; 2],
}

impl Tap {
    /// The input row read by output row `oy` (one of `rows`).
    fn input_row(&self, oy: usize) -> usize {
        self.first_row + (oy - self.rows.start) * self.stride[0]
    }

    /// `dst[b] = line[first_col + b * stride]` for the tap's columns of one output row.
    fn gather(&self, dst: &mut [f32], line: &[f32]) {
        let line = &line[self.first_col..];
        if self.stride[1] == 1 {
            dst.copy_from_slice(&line[..dst.len()]);
        } else {
            for (b, value) in dst.iter_mut().enumerate() {
                *value = line[b * self.stride[1]];
            }
        }
    }

    /// The tap's whole im2col row (`[H_out * W_out]`, of output width `width`) when every output
    /// row reads one input row shifted along it (stride 1 and `W_out = W`, as in a "same" 3x3
    /// convolution). The rectangle's rows are then one run of the input channel: one copy moves
    /// it, and the columns that read padding (which the copy filled with the neighbouring row's
    /// pixels) are zeroed after. Fills the same values as [`Tap::gather`] row by row, without a
    /// short copy per output row.
    fn gather_rows(&self, row: &mut [f32], channel: &[f32], width: usize) {
        if self.rows.is_empty() || self.cols.is_empty() {
            row.fill(0.0);
            return;
        }
        let (start, end) = (self.rows.start * width, self.rows.end * width);
        row[..start].fill(0.0);
        row[end..].fill(0.0);
        // Output `p = oy * width + ox` inside the rectangle reads input `p + shift`.
        let shift = (self.first_row * width + self.first_col) as isize
            - (self.rows.start * width + self.cols.start) as isize;
        // The copy covers the outputs whose input lies inside the channel (`0 <= p + shift <
        // len`); the rectangle's own outputs all do.
        let first_inside = usize::try_from(-shift).unwrap_or(0);
        let past_inside = channel.len().saturating_add_signed(-shift);
        let lo = start.max(first_inside).min(end);
        let hi = end.min(past_inside).max(lo);
        row[start..lo].fill(0.0);
        row[hi..end].fill(0.0);
        row[lo..hi].copy_from_slice(
            &channel[lo.saturating_add_signed(shift)..hi.saturating_add_signed(shift)],
        );
        // The padding columns, a float or two at the ends of each output row, zeroed a column
        // at a time by strided stores: a fill per row was a libc call for as little as one
        // float, a few per row of an 8x8 or 4x4 map.
        let rectangle = &mut row[start..end];
        for ox in (0..self.cols.start).chain(self.cols.end..width) {
            rectangle[ox..]
                .iter_mut()
                .step_by(width)
                .for_each(|value| *value = 0.0);
        }
    }

    /// `line[first_col + b * stride] += src[b]`: the adjoint of [`Tap::gather`].
    fn scatter_add(&self, line: &mut [f32], src: &[f32]) {
        let line = &mut line[self.first_col..];
        if self.stride[1] == 1 {
            line.iter_mut().zip(src).for_each(|(a, b)| *a += b);
        } else {
            for (b, &value) in src.iter().enumerate() {
                line[b * self.stride[1]] += value;
            }
        }
    }
}

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
fn im2col(g: &ConvGeometry, x: &[f32], col: &mut [f32], ld: usize) {
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

/// A GEMM's columns below which images are batched into one GEMM. A deep layer has few output
/// positions per image (16 for a 4x4 map): one GEMM per image then runs gemm's narrow edge
/// kernel and packs the whole weight again for every image. From a 16x16 map on, one image is
/// enough.
const MIN_GEMM_COLUMNS: usize = 256;

/// The images of one GEMM, `first..first + count`, whose `[K, count * N]` im2col matrix (and
/// `[C_out/groups, count * N]` output block) has leading dimension `width = count * N`.
#[derive(Clone, Copy)]
struct Chunk {
    first: usize,
    count: usize,
    width: usize,
}

impl ConvGeometry {
    /// Images per GEMM: enough for [`MIN_GEMM_COLUMNS`] columns, never more than the batch.
    /// It depends on the shapes alone, so the arithmetic (and every result) is the same whatever
    /// the number of threads.
    fn images_per_gemm(&self) -> usize {
        MIN_GEMM_COLUMNS
            .div_ceil(self.col_cols().max(1))
            .clamp(1, self.batch.max(1))
    }

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

/// The forward convolution without bias: returns `[B, C_out, H_out, W_out]`, contiguous.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        g.batch * g.image_len(),
        "conv forward: input length"
    );
    assert_eq!(w.len(), g.weight_len(), "conv forward: weight length");
    if let Some(out) = packed_cpu::forward(g, x, w) {
        return out;
    }
    let mut out = vec![0.0; g.output_len()];
    if g.output_len() == 0 {
        return out;
    }
    if g.is_depthwise() {
        let taps = g.taps();
        let runs = g.tap_runs(&taps);
        out.par_chunks_mut(g.col_cols())
            .enumerate()
            .for_each(|(plane, out)| {
                let (b, c) = (plane / g.out_channels, plane % g.out_channels);
                let x = &x[(b * g.in_channels + c) * g.height * g.width..][..g.height * g.width];
                let w = &w[c * g.col_rows()..][..g.col_rows()];
                depthwise_plane(g, &taps, runs.as_deref(), x, w, out);
            });
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

/// One depthwise output plane: `out[o] = Σ_{i,j} w[i,j] x[src(o, i, j)]`, summed in `(i, j)`
/// order for every output.
fn depthwise_plane(
    g: &ConvGeometry,
    taps: &[Tap],
    runs: Option<&[TapRun]>,
    x: &[f32],
    w: &[f32],
    out: &mut [f32],
) {
    dispatch(
        #[inline(always)]
        || {
            if let Some(runs) = runs {
                for (&weight, run) in w.iter().zip(runs) {
                    let len = run.inside.len();
                    let (out, x) = (&mut out[run.out..][..len], &x[run.input..][..len]);
                    add_scaled_inside(out, x, &run.inside, weight);
                }
                return;
            }
            for (&weight, tap) in w.iter().zip(taps) {
                for oy in tap.rows.clone() {
                    let line = &x[tap.input_row(oy) * g.width..][tap.first_col..];
                    let out = &mut out[oy * g.out_width..][tap.cols.clone()];
                    if g.stride[1] == 1 {
                        // The same sums as below, as a loop over two slices that vectorizes.
                        add_scaled(out, line, weight);
                        continue;
                    }
                    for (b, value) in out.iter_mut().enumerate() {
                        *value += weight * line[b * g.stride[1]];
                    }
                }
            }
        },
    )
}

/// The gradient of the input, `[B, C_in, H, W]`, from the output gradient `dy`.
pub fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        w.len(),
        g.weight_len(),
        "conv input gradient: weight length"
    );
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv input gradient: output-gradient length"
    );
    if let Some(dx) = packed_cpu::input_grad(g, w, dy) {
        return dx;
    }
    let mut dx = vec![0.0; g.batch * g.image_len()];
    if dx.is_empty() {
        return dx;
    }
    let (k, n) = (g.col_rows(), g.col_cols());
    if g.is_depthwise() {
        let taps = g.taps();
        let runs = g.tap_runs(&taps);
        dx.par_chunks_mut(g.height * g.width)
            .enumerate()
            .for_each(|(plane, dx)| {
                let (b, c) = (plane / g.in_channels, plane % g.in_channels);
                let dy = &dy[(b * g.out_channels + c) * n..][..n];
                let w = &w[c * k..][..k];
                depthwise_input_plane(g, &taps, runs.as_deref(), w, dy, dx);
            });
        return dx;
    }
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

/// The adjoint of [`depthwise_plane`] for one plane.
fn depthwise_input_plane(
    g: &ConvGeometry,
    taps: &[Tap],
    runs: Option<&[TapRun]>,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) {
    dispatch(
        #[inline(always)]
        || {
            if let Some(runs) = runs {
                for (&weight, run) in w.iter().zip(runs) {
                    let len = run.inside.len();
                    let (dx, dy) = (&mut dx[run.input..][..len], &dy[run.out..][..len]);
                    add_scaled_inside(dx, dy, &run.inside, weight);
                }
                return;
            }
            for (&weight, tap) in w.iter().zip(taps) {
                for oy in tap.rows.clone() {
                    let line = &mut dx[tap.input_row(oy) * g.width..][tap.first_col..];
                    let dy = &dy[oy * g.out_width..][tap.cols.clone()];
                    if g.stride[1] == 1 {
                        add_scaled(line, dy, weight);
                        continue;
                    }
                    for (b, &grad) in dy.iter().enumerate() {
                        line[b * g.stride[1]] += weight * grad;
                    }
                }
            }
        },
    )
}

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

/// The gradient of the weight, `[C_out, C_in/groups, kH, kW]`, from the input `x` and the output
/// gradient `dy`: each of [`ConvGeometry::weight_grad_shares`] contiguous shares of the batch is
/// summed on its own, then the shares are added in a fixed order (the result depends neither on
/// scheduling nor on the number of threads).
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        g.batch * g.image_len(),
        "conv weight gradient: input length"
    );
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv weight gradient: output-gradient length"
    );
    let len = g.weight_len();
    if g.batch == 0 || len == 0 {
        return vec![0.0; len];
    }
    if let Some(dw) = packed_cpu::weight_grad(g, x, dy) {
        return dw;
    }
    let shares = g.weight_grad_shares();
    let per_share = g.batch.div_ceil(shares);
    let partials: Vec<Vec<f32>> = (0..g.batch.div_ceil(per_share))
        .into_par_iter()
        .map(|share| {
            let images = share * per_share..((share + 1) * per_share).min(g.batch);
            // SAFETY: `weight_grad_images` writes all of `dw` (its doc).
            unsafe { written_by(len, |dw| weight_grad_images(g, x, dy, images, dw)) }
        })
        .collect();
    sum_shares(g, partials)
}

/// Floats per task when the partial sums are added: runs long enough to vectorize, tasks
/// enough to share a deep layer's weight between threads.
const SUM_CHUNK: usize = 1 << 14;

/// Weight rows per task when a transposed sum is turned back: each task reads runs of this many
/// consecutive floats and writes this many rows, a few cache lines at a time.
const TILE: usize = 16;

/// `dw = Σ_s partials[s]`, the shares added in order, in parallel over chunks (a deep layer's
/// weight is millions of floats); then each group's block turned back to `[C_out/groups, K]`
/// where [`ConvGeometry::weight_grad_transposed`] had it stored transposed.
fn sum_shares(g: &ConvGeometry, partials: Vec<Vec<f32>>) -> Vec<f32> {
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
    let plane = g.height * g.width;
    if g.is_depthwise() {
        let dw = zeroed(dw);
        let taps = g.taps();
        let (runs, mut columns) = (g.tap_runs(&taps), vec![0.0; g.out_width]);
        for b in images {
            for c in 0..g.out_channels {
                let x = &x[(b * g.in_channels + c) * plane..][..plane];
                let dy = &dy[(b * g.out_channels + c) * n..][..n];
                let dw = &mut dw[c * k..][..k];
                depthwise_weight_plane(g, &taps, runs.as_deref(), x, dy, dw, &mut columns);
            }
        }
        return;
    }
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

/// Adds one plane's depthwise weight gradient: `dw[i,j] += Σ_o dy[o] x[src(o, i, j)]`. Over
/// a [`TapRun`], [`RUN_LANES`] partial sums; otherwise each output column keeps its own
/// partial sum down the rows (`columns`, at least `W_out` long). Both are loops that
/// vectorize, where one running sum per row was a chain of dependent additions; the partial
/// sums are then added in order.
fn depthwise_weight_plane(
    g: &ConvGeometry,
    taps: &[Tap],
    runs: Option<&[TapRun]>,
    x: &[f32],
    dy: &[f32],
    dw: &mut [f32],
    columns: &mut [f32],
) {
    dispatch(
        #[inline(always)]
        || {
            if let Some(runs) = runs {
                for (dw, run) in dw.iter_mut().zip(runs) {
                    let len = run.inside.len();
                    let (x, dy) = (&x[run.input..][..len], &dy[run.out..][..len]);
                    let mut lanes = [0.0f32; RUN_LANES];
                    let chunks = (x.chunks_exact(RUN_LANES))
                        .zip(dy.chunks_exact(RUN_LANES))
                        .zip(run.inside.chunks_exact(RUN_LANES));
                    for ((x, dy), inside) in chunks {
                        for lane in 0..RUN_LANES {
                            let term = dy[lane] * x[lane];
                            lanes[lane] += if inside[lane] { term } else { 0.0 };
                        }
                    }
                    let tail = len - len % RUN_LANES;
                    let rest = (x[tail..].iter().zip(&dy[tail..]).zip(&run.inside[tail..]))
                        .map(|((&x, &dy), &inside)| if inside { dy * x } else { 0.0 });
                    *dw += lanes.iter().copied().chain(rest).sum::<f32>();
                }
                return;
            }
            for (dw, tap) in dw.iter_mut().zip(taps) {
                let columns = &mut columns[..tap.cols.len()];
                columns.fill(0.0);
                for oy in tap.rows.clone() {
                    let line = &x[tap.input_row(oy) * g.width..][tap.first_col..];
                    let dy = &dy[oy * g.out_width..][tap.cols.clone()];
                    if g.stride[1] == 1 {
                        for ((sum, &grad), &input) in columns.iter_mut().zip(dy).zip(line) {
                            *sum += grad * input;
                        }
                        continue;
                    }
                    for (b, (sum, &grad)) in columns.iter_mut().zip(dy).enumerate() {
                        *sum += grad * line[b * g.stride[1]];
                    }
                }
                *dw += columns.iter().sum::<f32>();
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The input pixel `(row, column)` that kernel tap `(i, j)` reads for output `(oy, ox)` by
    /// the definition ([`ConvGeometry::source`] along each dimension); `None` in the padding.
    fn reads(
        g: &ConvGeometry,
        (oy, ox): (usize, usize),
        (i, j): (usize, usize),
    ) -> Option<(usize, usize)> {
        let along = |d: usize, o: usize, k: usize, size: usize| {
            ConvGeometry::source(o, k, g.stride[d], g.dilation[d], g.padding[d], size)
        };
        along(0, oy, i, g.height).zip(along(1, ox, j, g.width))
    }

    /// The convolution by its definition, summed in f64: the reference of these unit tests.
    fn naive(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f64> {
        let mut out = vec![0.0; g.output_len()];
        let (gi, go) = (g.group_in(), g.group_out());
        for b in 0..g.batch {
            for o in 0..g.out_channels {
                let group = o / go;
                for oy in 0..g.out_height {
                    for ox in 0..g.out_width {
                        let mut sum = 0.0f64;
                        for c in 0..gi {
                            for i in 0..g.kernel[0] {
                                for j in 0..g.kernel[1] {
                                    if let Some((iy, ix)) = reads(g, (oy, ox), (i, j)) {
                                        let xv = x[((b * g.in_channels + group * gi + c)
                                            * g.height
                                            + iy)
                                            * g.width
                                            + ix];
                                        let wv =
                                            w[((o * gi + c) * g.kernel[0] + i) * g.kernel[1] + j];
                                        sum += xv as f64 * wv as f64;
                                    }
                                }
                            }
                        }
                        out[((b * g.out_channels + o) * g.out_height + oy) * g.out_width + ox] =
                            sum;
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// Forward against the definition; gradients against the adjoint identities
    /// `<dY, conv(X, W)> = <dX, X> = <dW, W>` (the convolution is bilinear).
    #[test]
    fn forward_and_gradients_match_the_definition() {
        let cases = [
            // x, w, stride, padding, dilation, groups
            (
                [2, 3, 7, 6],
                [4, 3, 3, 3],
                [1, 1],
                [(1, 1), (1, 1)],
                [1, 1],
                1,
            ),
            (
                [3, 4, 9, 8],
                [6, 2, 3, 2],
                [2, 1],
                [(2, 0), (1, 2)],
                [1, 2],
                2,
            ),
            (
                [2, 5, 6, 6],
                [5, 1, 3, 3],
                [2, 2],
                [(1, 1), (1, 1)],
                [1, 1],
                5,
            ),
            (
                [2, 4, 5, 5],
                [3, 4, 1, 1],
                [1, 1],
                [(0, 0), (0, 0)],
                [1, 1],
                1,
            ),
            (
                [1, 2, 4, 4],
                [2, 2, 1, 1],
                [2, 2],
                [(0, 0), (0, 0)],
                [1, 1],
                1,
            ),
            // Several GEMMs of several images (`images_per_gemm` 3: chunks of 3, 3, 1).
            (
                [7, 3, 10, 10],
                [4, 3, 3, 3],
                [1, 1],
                [(1, 1), (1, 1)],
                [1, 1],
                1,
            ),
            // Grouped pointwise, chunks of 4 and 1 (in place for the single image).
            (
                [5, 4, 9, 9],
                [6, 2, 1, 1],
                [1, 1],
                [(0, 0), (0, 0)],
                [1, 1],
                2,
            ),
            // Depthwise "same" layers, whose taps run over whole planes (`TapRun`): 3x3 with
            // padding 1; 5x3 dilated along the width, padded asymmetrically, 37 wide (runs
            // longer than the 16 lanes, with a tail); a 3x3 plane.
            (
                [2, 3, 7, 6],
                [3, 1, 3, 3],
                [1, 1],
                [(1, 1), (1, 1)],
                [1, 1],
                3,
            ),
            (
                [2, 4, 9, 37],
                [4, 1, 5, 3],
                [1, 1],
                [(2, 0), (1, 3)],
                [1, 2],
                4,
            ),
            (
                [1, 2, 3, 3],
                [2, 1, 3, 3],
                [1, 1],
                [(1, 1), (1, 1)],
                [1, 1],
                2,
            ),
            // Weight-gradient shares of 3 images, each one GEMM.
            (
                [40, 1, 10, 10],
                [2, 1, 3, 3],
                [1, 1],
                [(1, 1), (1, 1)],
                [1, 1],
                1,
            ),
        ];
        for (case, (xs, ws, stride, padding, dilation, groups)) in cases.into_iter().enumerate() {
            let g = ConvGeometry::new(xs, ws, stride, padding, dilation, groups).unwrap();
            let x = values(xs.iter().product(), 1 + case as u64);
            let w = values(ws.iter().product(), 100 + case as u64);
            let dy = values(g.output_len(), 200 + case as u64);
            let y = forward(&g, &x, &w);
            for (a, b) in y.iter().zip(naive(&g, &x, &w)) {
                assert!(
                    (*a as f64 - b).abs() < 1e-5,
                    "case {case}: forward {a} vs {b}"
                );
            }
            let dot = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum::<f64>()
            };
            let reference = naive(&g, &x, &w)
                .iter()
                .zip(&dy)
                .map(|(a, b)| a * *b as f64)
                .sum::<f64>();
            let dx = input_grad(&g, &w, &dy);
            let dw = weight_grad(&g, &x, &dy);
            assert!(
                (dot(&dx, &x) - reference).abs() < 1e-4,
                "case {case}: input gradient"
            );
            assert!(
                (dot(&dw, &w) - reference).abs() < 1e-4,
                "case {case}: weight gradient"
            );
        }
    }

    /// The range arithmetic agrees with the per-element definition everywhere.
    #[test]
    fn inside_is_where_source_is_some() {
        for count in 0..6 {
            for k in 0..4 {
                for stride in 1..4 {
                    for dilation in 1..3 {
                        for padding in 0..4 {
                            for size in 1..7 {
                                let (lo, hi) =
                                    ConvGeometry::inside(count, k, stride, dilation, padding, size);
                                for o in 0..count {
                                    let some =
                                        ConvGeometry::source(o, k, stride, dilation, padding, size)
                                            .is_some();
                                    assert_eq!(
                                        some,
                                        (lo..hi).contains(&o),
                                        "{count} {k} {stride} {dilation} {padding} {size} {o}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Each tap's rectangle and input coordinates agree with the per-element definition.
    #[test]
    fn taps_read_where_the_definition_says() {
        let geometries = [
            ([1, 1, 7, 6], [1, 1, 3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1]),
            ([1, 1, 9, 8], [1, 1, 3, 2], [2, 1], [(2, 0), (1, 2)], [1, 2]),
            (
                [1, 1, 5, 11],
                [1, 1, 4, 3],
                [3, 2],
                [(0, 3), (3, 0)],
                [2, 3],
            ),
        ];
        for (xs, ws, stride, padding, dilation) in geometries {
            let g = ConvGeometry::new(xs, ws, stride, padding, dilation, 1).unwrap();
            for i in 0..g.kernel[0] {
                for j in 0..g.kernel[1] {
                    let tap = g.tap(i, j);
                    for oy in 0..g.out_height {
                        for ox in 0..g.out_width {
                            let inside = tap.rows.contains(&oy) && tap.cols.contains(&ox);
                            let expected = reads(&g, (oy, ox), (i, j));
                            let found = inside.then(|| {
                                (
                                    tap.input_row(oy),
                                    tap.first_col + (ox - tap.cols.start) * stride[1],
                                )
                            });
                            assert_eq!(
                                found, expected,
                                "{xs:?} {ws:?} tap ({i}, {j}) output ({oy}, {ox})"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Every entry of an image's im2col block is the input pixel the definition names, or zero
    /// in the padding; also where one copy moves whole rows (stride 1, `W_out = W`) and a column
    /// tap reads nothing (a kernel wider than image plus padding on one side).
    #[test]
    fn im2col_puts_each_pixel_where_the_definition_says() {
        let geometries = [
            // "same" 3x3 and 5x5 (one copy per tap), with dilation and uneven padding.
            ([1, 2, 6, 7], [1, 2, 3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1]),
            ([1, 1, 5, 4], [1, 1, 5, 5], [1, 1], [(2, 2), (2, 2)], [1, 1]),
            ([1, 2, 7, 6], [1, 2, 3, 3], [1, 1], [(0, 2), (4, 0)], [1, 2]),
            ([1, 1, 3, 2], [1, 1, 3, 5], [1, 1], [(1, 1), (4, 0)], [1, 1]),
            // Row by row: stride 2, and a narrower output.
            ([1, 2, 7, 6], [1, 2, 3, 3], [2, 1], [(1, 1), (1, 1)], [1, 1]),
            ([1, 1, 6, 6], [1, 1, 3, 3], [1, 1], [(0, 0), (0, 0)], [1, 1]),
        ];
        for (xs, ws, stride, padding, dilation) in geometries {
            let g = ConvGeometry::new(xs, ws, stride, padding, dilation, 1).unwrap();
            let x = values(xs.iter().product(), 7);
            let ld = g.col_cols() + 3; // a wider leading dimension, as for several images
            let mut col = vec![f32::NAN; g.col_rows() * ld];
            im2col(&g, &x, &mut col, ld);
            for c in 0..g.in_channels {
                for i in 0..g.kernel[0] {
                    for j in 0..g.kernel[1] {
                        let r = (c * g.kernel[0] + i) * g.kernel[1] + j;
                        for oy in 0..g.out_height {
                            for ox in 0..g.out_width {
                                let expected = reads(&g, (oy, ox), (i, j))
                                    .map_or(0.0, |(iy, ix)| x[(c * g.height + iy) * g.width + ix]);
                                let found = col[r * ld + oy * g.out_width + ox];
                                assert_eq!(
                                    found.to_bits(),
                                    expected.to_bits(),
                                    "{xs:?} {ws:?} {padding:?} row {r} output ({oy}, {ox})"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// A layer with no input channels (or, for the input gradient, no output channels) sums
    /// nothing: zeros of the right shape, whichever path the layer's shape would otherwise take
    /// (here a stride-1 layer of whole-vector rows).
    #[test]
    fn empty_channel_dimensions_give_zeros() {
        let no_input =
            ConvGeometry::new([2, 0, 4, 16], [8, 0, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1).unwrap();
        assert_eq!(forward(&no_input, &[], &[]), vec![0.0; 2 * 8 * 4 * 16]);
        assert_eq!(
            weight_grad(&no_input, &[], &values(2 * 8 * 64, 1)),
            Vec::<f32>::new()
        );
        let no_output =
            ConvGeometry::new([2, 8, 4, 16], [0, 8, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1).unwrap();
        assert_eq!(input_grad(&no_output, &[], &[]), vec![0.0; 2 * 8 * 4 * 16]);
    }

    #[test]
    fn geometry_rejects_what_does_not_fit() {
        assert!(
            ConvGeometry::new([1, 3, 2, 2], [4, 3, 3, 3], [1, 1], [(0, 0); 2], [1, 1], 1).is_err()
        );
        assert!(
            ConvGeometry::new([1, 3, 8, 8], [4, 2, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1).is_err()
        );
        assert!(
            ConvGeometry::new([1, 4, 8, 8], [4, 2, 3, 3], [0, 1], [(1, 1); 2], [1, 1], 2).is_err()
        );
        let g =
            ConvGeometry::new([1, 4, 8, 8], [6, 2, 3, 3], [2, 2], [(1, 1); 2], [1, 1], 2).unwrap();
        assert_eq!(g.output_shape(), [1, 6, 4, 4]);
    }
}
