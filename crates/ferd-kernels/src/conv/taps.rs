//! Where each kernel tap of a convolution reads its input: for tap `(i, j)`, the rectangle of
//! outputs whose input pixel lies inside the image ([`Tap`]), and for "same" layers the tap's
//! rows as one run of the plane ([`TapRun`]). The im2col copy (`super::gemm`) and the depthwise
//! loops (`super::depthwise`) both read through them.

use std::ops::Range;

use super::ConvGeometry;

impl ConvGeometry {
    /// Where kernel tap `(i, j)` reads the input: see [`Tap`].
    pub(super) fn tap(&self, i: usize, j: usize) -> Tap {
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
    pub(super) fn taps(&self) -> Vec<Tap> {
        let [kh, kw] = self.kernel;
        (0..kh * kw).map(|t| self.tap(t / kw, t % kw)).collect()
    }

    /// Whether each output row of every tap reads one input row shifted along it: stride 1 and
    /// `W_out = W`, as in every "same" layer. Then a tap's rows are one run of the plane
    /// ([`Tap::gather_rows`], [`TapRun`]).
    pub(super) fn reads_shifted_rows(&self) -> bool {
        self.stride == [1, 1] && self.out_width == self.width
    }

    /// `taps` (from [`ConvGeometry::taps`]) as [`TapRun`]s, in their order, where
    /// [`ConvGeometry::reads_shifted_rows`]; `None` elsewhere.
    pub(super) fn tap_runs(&self, taps: &[Tap]) -> Option<Vec<TapRun>> {
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
pub(super) struct TapRun {
    pub(super) out: usize,
    pub(super) input: usize,
    pub(super) inside: Vec<bool>,
}

/// The outputs for which one kernel tap reads inside the image form a rectangle, `rows x cols`;
/// output `(rows.start + a, cols.start + b)` reads input
/// `(first_row + a * stride[0], first_col + b * stride[1])`. Everywhere else the tap reads padding.
pub(super) struct Tap {
    pub(super) rows: Range<usize>,
    pub(super) cols: Range<usize>,
    pub(super) first_row: usize,
    pub(super) first_col: usize,
    pub(super) stride: [usize; 2],
}

impl Tap {
    /// The input row read by output row `oy` (one of `rows`).
    pub(super) fn input_row(&self, oy: usize) -> usize {
        self.first_row + (oy - self.rows.start) * self.stride[0]
    }

    /// `dst[b] = line[first_col + b * stride]` for the tap's columns of one output row.
    pub(super) fn gather(&self, dst: &mut [f32], line: &[f32]) {
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
    pub(super) fn gather_rows(&self, row: &mut [f32], channel: &[f32], width: usize) {
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
    pub(super) fn scatter_add(&self, line: &mut [f32], src: &[f32]) {
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
