//! 2-D max pooling on the CPU over plain `f32` slices, forward and input gradient, for windows
//! without padding or dilation (the small CNNs' 2x2 pooling). Planes run in parallel with rayon.
//!
//! Layout is PyTorch's: input `[B, C, H, W]`, output `[B, C, H_out, W_out]`, contiguous, with
//! `H_out = (H - kH) / sH + 1` (floor mode). Each output is the value of its window's *winner*:
//! the first largest value in row-major order, or the last NaN if the window holds one. That is
//! PyTorch's rule (`val > max || isnan(val)`), which Burn's Flex follows, so gradients land on the
//! same inputs as theirs when values tie.
//!
//! The gradient is `dX[winner(o)] += dY[o]`; the backward recomputes the winners from `X` instead
//! of keeping an index tensor alive between the passes.
//!
//! Nothing here knows about Burn; `crate::flex::pool` moves tensors in and out.

use rayon::prelude::*;

/// Outputs per rayon task: planes are grouped so a task is not a 7x7 plane.
const MIN_OUTPUTS_PER_TASK: usize = 4096;

/// The shapes of one max pooling, checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Batch size times channels: the number of planes.
    pub planes: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Output height.
    pub out_height: usize,
    /// Output width.
    pub out_width: usize,
}

impl PoolGeometry {
    /// The geometry of `x [B, C, H, W]` pooled by `kernel` windows at `stride`; an error says
    /// what does not fit.
    pub fn new(x: [usize; 4], kernel: [usize; 2], stride: [usize; 2]) -> Result<Self, String> {
        let [batch, channels, height, width] = x;
        if kernel.contains(&0) || stride.contains(&0) {
            return Err(format!(
                "kernel {kernel:?} and stride {stride:?} must be positive"
            ));
        }
        if kernel[0] > height || kernel[1] > width {
            return Err(format!(
                "window {kernel:?} does not fit the input's {:?}",
                [height, width]
            ));
        }
        Ok(Self {
            planes: batch * channels,
            height,
            width,
            kernel,
            stride,
            out_height: (height - kernel[0]) / stride[0] + 1,
            out_width: (width - kernel[1]) / stride[1] + 1,
        })
    }

    fn plane_len(&self) -> usize {
        self.height * self.width
    }

    fn out_plane_len(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.planes * self.out_plane_len()
    }

    /// Planes per rayon task.
    fn planes_per_task(&self) -> usize {
        MIN_OUTPUTS_PER_TASK.div_ceil(self.out_plane_len().max(1))
    }

    /// The index in `plane` of the winner of output `(oy, ox)`'s window.
    fn winner(&self, plane: &[f32], oy: usize, ox: usize) -> usize {
        let (top, left) = (oy * self.stride[0], ox * self.stride[1]);
        let mut best = top * self.width + left;
        let mut max = plane[best];
        for row in top..top + self.kernel[0] {
            let start = row * self.width + left;
            for (j, &value) in plane[start..start + self.kernel[1]].iter().enumerate() {
                // Selects, not branches: random data mispredicts a branch half the time.
                let take = wins(value, max);
                max = if take { value } else { max };
                best = if take { start + j } else { best };
            }
        }
        best
    }
}

/// Whether `value` replaces `max` as a window's winner (PyTorch's rule). A non-short-circuit
/// `|` keeps it free of branches.
#[inline(always)]
fn wins(value: f32, max: f32) -> bool {
    (value > max) | value.is_nan()
}

/// `max_pool2d(x)`.
pub fn forward(g: &PoolGeometry, x: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.planes * g.plane_len(), "max pool: input length");
    let mut out = vec![0.0; g.output_len()];
    if out.is_empty() {
        return out;
    }
    let per_task = g.planes_per_task();
    out.par_chunks_mut(per_task * g.out_plane_len())
        .zip(x.par_chunks(per_task * g.plane_len()))
        .for_each(|(out, x)| {
            for (out, plane) in out
                .chunks_mut(g.out_plane_len())
                .zip(x.chunks(g.plane_len()))
            {
                pool_plane(g, plane, out);
            }
        });
    out
}

/// One plane's outputs, window tap by window tap across a whole output row, so the inner loop
/// is a branch-free select the compiler can vectorize. The value is the same in any tap order:
/// the maximum, or NaN if the window holds one.
fn pool_plane(g: &PoolGeometry, plane: &[f32], out: &mut [f32]) {
    if g.kernel == [2, 2] && g.stride == [2, 2] {
        return pool_plane_2x2(g, plane, out);
    }
    for (oy, out) in out.chunks_mut(g.out_width).enumerate() {
        let top = oy * g.stride[0] * g.width;
        for (ox, out) in out.iter_mut().enumerate() {
            *out = plane[top + ox * g.stride[1]];
        }
        for i in 0..g.kernel[0] {
            for j in 0..g.kernel[1] {
                let taps = &plane[top + i * g.width + j..];
                for (ox, out) in out.iter_mut().enumerate() {
                    let value = taps[ox * g.stride[1]];
                    *out = if wins(value, *out) { value } else { *out };
                }
            }
        }
    }
}

/// [`pool_plane`] for the small CNNs' 2x2 windows at stride 2: pairs of columns of two rows, in
/// a loop the compiler vectorizes.
fn pool_plane_2x2(g: &PoolGeometry, plane: &[f32], out: &mut [f32]) {
    let pick = |max: f32, value: f32| if wins(value, max) { value } else { max };
    for (oy, out) in out.chunks_mut(g.out_width).enumerate() {
        let upper = &plane[2 * oy * g.width..][..2 * g.out_width];
        let lower = &plane[(2 * oy + 1) * g.width..][..2 * g.out_width];
        for ((out, a), b) in out
            .iter_mut()
            .zip(upper.chunks_exact(2))
            .zip(lower.chunks_exact(2))
        {
            *out = pick(pick(a[0], a[1]), pick(b[0], b[1]));
        }
    }
}

/// The gradient of `x` given the output gradient `dy`.
pub fn input_grad(g: &PoolGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.planes * g.plane_len(), "max pool: input length");
    assert_eq!(dy.len(), g.output_len(), "max pool: output gradient length");
    let mut dx = vec![0.0; x.len()];
    if dy.is_empty() {
        return dx;
    }
    let per_task = g.planes_per_task();
    dx.par_chunks_mut(per_task * g.plane_len())
        .zip(x.par_chunks(per_task * g.plane_len()))
        .zip(dy.par_chunks(per_task * g.out_plane_len()))
        .for_each(|((dx, x), dy)| {
            for ((dx, plane), dy) in dx
                .chunks_mut(g.plane_len())
                .zip(x.chunks(g.plane_len()))
                .zip(dy.chunks(g.out_plane_len()))
            {
                grad_plane(g, plane, dy, dx);
            }
        });
    dx
}

/// One plane's input gradient, added into `dx`.
fn grad_plane(g: &PoolGeometry, plane: &[f32], dy: &[f32], dx: &mut [f32]) {
    if g.kernel == [2, 2] && g.stride == [2, 2] {
        return grad_plane_2x2(g, plane, dy, dx);
    }
    for oy in 0..g.out_height {
        for ox in 0..g.out_width {
            dx[g.winner(plane, oy, ox)] += dy[oy * g.out_width + ox];
        }
    }
}

/// [`grad_plane`] for 2x2 windows at stride 2. The windows do not overlap, so each input gets
/// its window's gradient or nothing: the winner is found as [`pool_plane_2x2`] finds it (the
/// better of each row's pair, then of the two rows) and the four gradients are written as
/// selects, in a loop the compiler vectorizes. The scattered `+=` of the general loop, with its
/// index arithmetic, took about a seventh of an attack's time on a small CNN.
fn grad_plane_2x2(g: &PoolGeometry, plane: &[f32], dy: &[f32], dx: &mut [f32]) {
    let span = 2 * g.out_width;
    for (oy, dy) in dy.chunks(g.out_width).enumerate() {
        let row = 2 * oy * g.width;
        let upper = &plane[row..][..span];
        let lower = &plane[row + g.width..][..span];
        let (dx_upper, dx_lower) = dx[row..].split_at_mut(g.width);
        let windows = dy
            .iter()
            .zip(upper.chunks_exact(2))
            .zip(lower.chunks_exact(2))
            .zip(dx_upper[..span].chunks_exact_mut(2))
            .zip(dx_lower[..span].chunks_exact_mut(2));
        for ((((&d, a), b), da), db) in windows {
            let right_of_upper = wins(a[1], a[0]);
            let right_of_lower = wins(b[1], b[0]);
            let upper_best = if right_of_upper { a[1] } else { a[0] };
            let lower_best = if right_of_lower { b[1] } else { b[0] };
            let lower_row = wins(lower_best, upper_best);
            let pass = |won: bool| if won { d } else { 0.0 };
            da[0] = pass(!lower_row & !right_of_upper);
            da[1] = pass(!lower_row & right_of_upper);
            db[0] = pass(lower_row & !right_of_lower);
            db[1] = pass(lower_row & right_of_lower);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1x1x4x5 input worked by hand: 2x2 windows at stride 2 (the last column is dropped by
    /// floor mode), and 3x3 windows at stride 1 that overlap.
    #[test]
    fn hand_worked_windows() {
        #[rustfmt::skip]
        let x = [
            1.0, 5.0,   2.0, 2.0,   9.0,
            3.0, 4.0,   0.0, -1.0,  9.0,
            7.0, 7.0,   -3.0, -2.0, 9.0,
            6.0, 0.0,   -5.0, -4.0, 9.0,
        ];
        let g = PoolGeometry::new([1, 1, 4, 5], [2, 2], [2, 2]).unwrap();
        assert_eq!((g.out_height, g.out_width), (2, 2));
        assert_eq!(forward(&g, &x), [5.0, 2.0, 7.0, -2.0]);
        // Ties go to the first in row-major order: 2.0 at (0, 2), 7.0 at (2, 0).
        let dx = input_grad(&g, &x, &[1.0, 2.0, 3.0, 4.0]);
        let mut expected = [0.0; 20];
        (expected[1], expected[2], expected[10], expected[13]) = (1.0, 2.0, 3.0, 4.0);
        assert_eq!(dx, expected);

        let g = PoolGeometry::new([1, 1, 4, 5], [3, 3], [1, 1]).unwrap();
        assert_eq!((g.out_height, g.out_width), (2, 3));
        assert_eq!(forward(&g, &x), [7.0, 7.0, 9.0, 7.0, 7.0, 9.0]);
        // Overlapping windows add up: the 7.0s at (2, 0) and (2, 1) each win two windows (the
        // first of the pair where both are inside); the 9.0s at (0, 4) and (1, 4) one each.
        let dx = input_grad(&g, &x, &[1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]);
        let mut expected = [0.0; 20];
        (expected[10], expected[11]) = (1.0 + 1000.0, 10.0 + 10000.0);
        (expected[4], expected[9]) = (100.0, 100000.0);
        assert_eq!(dx, expected);
    }

    #[test]
    fn nan_wins_and_the_last_nan_takes_the_gradient() {
        let x = [f32::NAN, 3.0, 2.0, f32::NAN];
        let g = PoolGeometry::new([1, 1, 2, 2], [2, 2], [2, 2]).unwrap();
        assert!(forward(&g, &x)[0].is_nan());
        assert_eq!(input_grad(&g, &x, &[1.0]), [0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn planes_are_independent_across_task_boundaries() {
        // Enough 3x3 planes to span several rayon tasks; plane p holds its maximum p at
        // position p % 9 of its 3x3 window.
        let planes = 3 * MIN_OUTPUTS_PER_TASK + 5;
        let x: Vec<f32> = (0..planes)
            .flat_map(|p| (0..9).map(move |i| if i == p % 9 { p as f32 } else { -1.0 }))
            .collect();
        let g = PoolGeometry::new([planes, 1, 3, 3], [3, 3], [3, 3]).unwrap();
        let y = forward(&g, &x);
        assert!(y.iter().enumerate().all(|(p, &v)| v == p as f32));
        let dx = input_grad(&g, &x, &vec![1.0; planes]);
        for p in 0..planes {
            for i in 0..9 {
                let expected = if i == p % 9 { 1.0 } else { 0.0 };
                assert_eq!(dx[p * 9 + i], expected, "plane {p}, position {i}");
            }
        }
    }

    #[test]
    fn windows_that_do_not_fit_are_errors() {
        assert!(PoolGeometry::new([1, 1, 1, 4], [2, 2], [2, 2]).is_err());
        assert!(PoolGeometry::new([1, 1, 4, 4], [0, 2], [2, 2]).is_err());
        assert!(PoolGeometry::new([1, 1, 4, 4], [2, 2], [2, 0]).is_err());
    }
}
