//! Nearest-neighbour upsampling by an integer factor on the CPU over plain `f32` slices, forward
//! and input gradient. Planes run in parallel with rayon.
//!
//! Layout is PyTorch's: input `[B, C, H, W]`, output `[B, C, f H, f W]`, contiguous. Output pixel
//! `(y, x)` is input pixel `(y / f, x / f)`, integer division (PyTorch's `nn.Upsample(
//! scale_factor=f)` for an integer `f`), so the gradient of input pixel `(i, j)` is the sum of the
//! output gradient over its `f x f` block.
//!
//! Nothing here knows about Burn; `crate::flex::upsample` moves tensors in and out.

use rayon::prelude::*;

/// Output elements per rayon task: planes are grouped so a task is not one 14x14 plane.
const MIN_OUTPUTS_PER_TASK: usize = 16384;

/// The shapes of one upsampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsampleGeometry {
    /// Batch size times channels: the number of planes.
    pub planes: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// The integer scale factor along both sides.
    pub factor: usize,
}

impl UpsampleGeometry {
    /// The geometry of `x [B, C, H, W]` upsampled by `factor`; an error says what does not fit.
    pub fn new(x: [usize; 4], factor: usize) -> Result<Self, String> {
        if factor == 0 {
            return Err("the scale factor must be positive, got 0".into());
        }
        let [batch, channels, height, width] = x;
        Ok(Self {
            planes: batch * channels,
            height,
            width,
            factor,
        })
    }

    fn plane_len(&self) -> usize {
        self.height * self.width
    }

    fn out_plane_len(&self) -> usize {
        self.plane_len() * self.factor * self.factor
    }

    /// The output's shape for a `[B, C, H, W]` input.
    pub fn output_shape(&self, x: [usize; 4]) -> [usize; 4] {
        [x[0], x[1], self.factor * x[2], self.factor * x[3]]
    }

    /// Planes per rayon task.
    fn planes_per_task(&self) -> usize {
        MIN_OUTPUTS_PER_TASK.div_ceil(self.out_plane_len().max(1))
    }
}

/// The upsampled `x`.
pub fn forward(g: &UpsampleGeometry, x: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), g.planes * g.plane_len(), "upsample: input length");
    let mut out = vec![0.0; g.planes * g.out_plane_len()];
    if out.is_empty() {
        return out;
    }
    let per_task = g.planes_per_task();
    out.par_chunks_mut(per_task * g.out_plane_len())
        .zip(x.par_chunks(per_task * g.plane_len()))
        .for_each(|(out, x)| {
            // One input row becomes `factor` equal output rows: widen it once, then copy it.
            let out_width = g.factor * g.width;
            for (out, row) in out.chunks_mut(g.factor * out_width).zip(x.chunks(g.width)) {
                let (first, rest) = out.split_at_mut(out_width);
                for (block, &value) in first.chunks_exact_mut(g.factor).zip(row) {
                    block.fill(value);
                }
                for copy in rest.chunks_exact_mut(out_width) {
                    copy.copy_from_slice(first);
                }
            }
        });
    out
}

/// The gradient of `x` given the output gradient `dy`: each input pixel's block summed, the
/// block's rows in order and within a row its columns in order.
pub fn input_grad(g: &UpsampleGeometry, dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        dy.len(),
        g.planes * g.out_plane_len(),
        "upsample: output gradient length"
    );
    let mut dx = vec![0.0; g.planes * g.plane_len()];
    if dx.is_empty() {
        return dx;
    }
    let per_task = g.planes_per_task();
    let out_width = g.factor * g.width;
    dx.par_chunks_mut(per_task * g.plane_len())
        .zip(dy.par_chunks(per_task * g.out_plane_len()))
        .for_each(|(dx, dy)| {
            for (dx, rows) in dx.chunks_mut(g.width).zip(dy.chunks(g.factor * out_width)) {
                for row in rows.chunks_exact(out_width) {
                    for (d, block) in dx.iter_mut().zip(row.chunks_exact(g.factor)) {
                        *d += block.iter().sum::<f32>();
                    }
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two 2x3 planes upsampled by 2 and by 3, worked by hand: blocks of copies forward, block
    /// sums backward.
    #[test]
    fn hand_worked_blocks() {
        let x = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0,
        ];
        let g = UpsampleGeometry::new([1, 2, 2, 3], 2).unwrap();
        assert_eq!(g.output_shape([1, 2, 2, 3]), [1, 2, 4, 6]);
        #[rustfmt::skip]
        let expected = [
            1., 1., 2., 2., 3., 3.,
            1., 1., 2., 2., 3., 3.,
            4., 4., 5., 5., 6., 6.,
            4., 4., 5., 5., 6., 6.,
        ];
        let y = forward(&g, &x);
        assert_eq!(y[..24], expected);
        assert_eq!(y[24..], expected.map(|v| -v));
        // Upstream gradient k at flat index k: block (i, j) of a plane starting at p sums
        // p + 12 i + 2 j + {0, 1, 6, 7} = 4 p + 48 i + 8 j + 14.
        let dy: Vec<f32> = (0..48).map(|k| k as f32).collect();
        let dx = input_grad(&g, &dy);
        let block = |p: f32, i: f32, j: f32| 4.0 * p + 48.0 * i + 8.0 * j + 14.0;
        let mut want = Vec::new();
        for p in [0.0, 24.0] {
            for i in 0..2 {
                for j in 0..3 {
                    want.push(block(p, i as f32, j as f32));
                }
            }
        }
        assert_eq!(dx, want);

        let g = UpsampleGeometry::new([1, 1, 1, 2], 3).unwrap();
        assert_eq!(forward(&g, &[7.0, 8.0]), [7., 7., 7., 8., 8., 8.].repeat(3));
        let dy: Vec<f32> = (0..18).map(|k| k as f32).collect();
        // Left block: columns 0..3 of rows 0..3 = (0+1+2) + (6+7+8) + (12+13+14).
        assert_eq!(input_grad(&g, &dy), [63.0, 90.0]);
    }

    #[test]
    fn factor_one_is_the_identity_and_zero_is_refused() {
        let g = UpsampleGeometry::new([2, 1, 1, 3], 1).unwrap();
        let x = [1.0, -2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(forward(&g, &x), x);
        assert_eq!(input_grad(&g, &x), x);
        assert!(UpsampleGeometry::new([1, 1, 2, 2], 0).is_err());
    }

    /// Many planes, split over rayon tasks, give the plane-by-plane answer.
    #[test]
    fn tasks_cover_every_plane_once() {
        let g = UpsampleGeometry::new([3, 50, 7, 5], 2).unwrap();
        let x: Vec<f32> = (0..g.planes * 35).map(|k| k as f32).collect();
        let y = forward(&g, &x);
        for plane in 0..g.planes {
            for oy in 0..14 {
                for ox in 0..10 {
                    let got = y[plane * 140 + oy * 10 + ox];
                    assert_eq!(got, x[plane * 35 + (oy / 2) * 5 + ox / 2]);
                }
            }
        }
        let dx = input_grad(&g, &y);
        assert_eq!(dx, x.iter().map(|v| 4.0 * v).collect::<Vec<_>>());
    }
}
