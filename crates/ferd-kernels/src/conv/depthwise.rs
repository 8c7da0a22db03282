//! Depthwise convolutions (one input and one output channel per group, MobileNet-V2's 3x3
//! layers): a direct loop per plane over the kernel's taps instead of a `[1, kH kW]` GEMM, for
//! the forward, the input gradient and the weight gradient. Each output is summed in tap order.

use rayon::prelude::*;

use super::ConvGeometry;
use super::shares;
use super::taps::{Tap, TapRun};
use crate::simd::dispatch;
use crate::uninit::zeroed;

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

/// The forward convolution without bias of a depthwise layer, `[B, C_out, H_out, W_out]`.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; g.output_len()];
    if g.output_len() == 0 {
        return out;
    }
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

/// The input gradient of a depthwise layer, `[B, C_in, H, W]`.
pub(super) fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    let mut dx = vec![0.0; g.batch * g.image_len()];
    if dx.is_empty() {
        return dx;
    }
    let (k, n) = (g.col_rows(), g.col_cols());
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

/// The weight gradient of a depthwise layer, `[C_out, 1, kH, kW]`, summed per share of the
/// batch ([`shares`]).
pub(super) fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (k, n) = (g.col_rows(), g.col_cols());
    let plane = g.height * g.width;
    shares::sum_over_shares(g, |images, dw| {
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
    })
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
