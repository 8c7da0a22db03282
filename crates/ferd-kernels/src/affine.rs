//! A per-channel affine map followed by an optional ReLU, `y = act(x * scale[c] + shift[c])`, on
//! the CPU over plain `f32` slices, forward and input gradient: an inference-mode BatchNorm and
//! its activation in one pass. Planes run in parallel with rayon.
//!
//! A BatchNorm with running statistics is this map with `scale = gamma / sqrt(var + eps)` and
//! `shift = beta - mean * scale`, the form PyTorch's CPU kernel evaluates too
//! (`batch_norm_cpu_collect_linear_and_constant_terms`). Burn's generic `batch_norm` makes four
//! passes over the activation (subtract, divide, multiply, add) and ReLU a fifth, each recorded
//! by autodiff; here the forward is one pass and the input gradient another.
//!
//! ReLU follows PyTorch and Burn: `relu(NaN) = NaN`, and the gradient is zero exactly where the
//! output is `<= 0`.
//!
//! Layout: `[B, C, H, W]` contiguous, so a plane of `H * W` values shares one channel.
//! Nothing here knows about Burn; `crate::flex::affine` moves tensors in and out.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Values per rayon task: small planes are grouped so that a task is worth its scheduling.
const MIN_VALUES_PER_TASK: usize = 16 * 1024;

/// The activation applied after the affine map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// None: `y = x * scale + shift` (a BatchNorm alone).
    Identity,
    /// `y = max(x * scale + shift, 0)`, NaN kept.
    Relu,
    /// Burn's and PyTorch's `leaky_relu`: `z` where `z = x * scale + shift` is not negative,
    /// `negative_slope * z` where it is, NaN kept (the generator's, slope 0.2). ferd's kernels
    /// take a slope in `(0, 1]`; any other goes to Burn's ops ([`Activation::fusable`]).
    LeakyRelu {
        /// The factor of the negative part.
        negative_slope: f32,
    },
}

impl Activation {
    /// Whether ferd's kernels compute this activation. A leaky slope must be positive: the
    /// backward reads the sign of the output, which a slope of 0 or below would not keep.
    pub fn fusable(self) -> bool {
        match self {
            Activation::LeakyRelu { negative_slope } => {
                negative_slope > 0.0 && negative_slope <= 1.0
            }
            _ => true,
        }
    }

    /// The kernel mode and the leaky slope (1 where there is none).
    pub(super) fn mode(self) -> (Mode, f32) {
        match self {
            Activation::Identity => (IDENTITY, 1.0),
            Activation::Relu => (RELU, 1.0),
            Activation::LeakyRelu { negative_slope } => (LEAKY, negative_slope),
        }
    }
}

/// The activation as a constant of a kernel's loop, so that the loop vectorizes (a `match`
/// per element does not): [`IDENTITY`], [`RELU`] or [`LEAKY`], with the slope beside it.
pub(super) type Mode = u8;
pub(super) const IDENTITY: Mode = 0;
pub(super) const RELU: Mode = 1;
pub(super) const LEAKY: Mode = 2;

/// `act(z)` for the kernel mode `MODE`. Every activation here is piecewise linear through 0,
/// so `act(z)` is its gradient applied to `z` itself ([`activate_grad`]): the ReLU as a mask
/// on the bits, the leaky ReLU as a select, in Burn's order (`z < 0` takes `z * slope`).
#[inline(always)]
fn activate<const MODE: Mode>(z: f32, slope: f32) -> f32 {
    activate_grad::<MODE>(z, z, slope)
}

/// The gradient `d` of `act(z)` carried back to `z`, for the kernel mode `MODE`: zero where a
/// ReLU's `z <= 0`, `d * slope` where a leaky ReLU's `z < 0`. `z` may be the output instead of
/// the input: both have the same sign.
#[inline(always)]
pub(super) fn activate_grad<const MODE: Mode>(z: f32, d: f32, slope: f32) -> f32 {
    match MODE {
        RELU => f32::from_bits(d.to_bits() & keep(z)),
        LEAKY => {
            if z < 0.0 {
                d * slope
            } else {
                d
            }
        }
        _ => d,
    }
}

/// The shapes of one affine map, checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffineGeometry {
    /// Batch size.
    pub batch: usize,
    /// Channels: the length of `scale` and `shift`.
    pub channels: usize,
    /// Values per plane (`H * W`).
    pub plane: usize,
}

impl AffineGeometry {
    /// The geometry of `x [B, C, H, W]` under per-channel parameters of length `params`; an
    /// error says what does not fit.
    pub fn new(x: [usize; 4], params: usize) -> Result<Self, String> {
        let [batch, channels, height, width] = x;
        if params != channels {
            return Err(format!(
                "{params} per-channel parameters for an input of {channels} channels {x:?}"
            ));
        }
        Ok(Self {
            batch,
            channels,
            plane: height * width,
        })
    }

    /// Elements of the input (and output).
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.plane
    }

    /// Whether the input is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Planes per rayon task.
    fn planes_per_task(&self) -> usize {
        MIN_VALUES_PER_TASK.div_ceil(self.plane.max(1)).max(1)
    }
}

/// Runs `f(channel, plane of data, plane of other)` over groups of whole planes in parallel;
/// `other` is as long as `data`, or empty (then `f` sees empty planes of it).
pub(super) fn for_planes<T: Send>(
    g: &AffineGeometry,
    data: &mut [T],
    other: &[f32],
    f: impl Fn(usize, &mut [T], &[f32]) + Sync,
) {
    if g.is_empty() {
        return;
    }
    let per_task = g.planes_per_task();
    let chunk = per_task * g.plane;
    data.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(task, data)| {
            let first = task * per_task;
            for (i, data) in data.chunks_mut(g.plane).enumerate() {
                let plane = first + i;
                let other = match other.is_empty() {
                    true => &[][..],
                    false => &other[plane * g.plane..][..g.plane],
                };
                f(plane % g.channels, data, other);
            }
        });
}

/// Zero where `value <= 0`, all ones elsewhere (NaN included): `bits & keep(value)` zeroes
/// exactly what a ReLU zeroes. Integer masks keep the loops free of branches, so they
/// vectorize; a branch on the sign of random activations mispredicts half the time.
#[inline(always)]
pub(super) fn keep(value: f32) -> u32 {
    u32::from(value <= 0.0).wrapping_sub(1)
}

/// `act(v * s + t)`, the activation chosen at compile time ([`activate`]).
#[inline(always)]
fn affine_value<const MODE: Mode>(v: f32, s: f32, t: f32, slope: f32) -> f32 {
    activate::<MODE>(v * s + t, slope)
}

/// One plane of the map in place: `x <- act(x * s + t)`. With [`affine_plane_into`] the element
/// loops of every affine forward (inference-mode BatchNorm here, training-mode in
/// `crate::batch_norm`).
pub(super) fn affine_plane(x: &mut [f32], s: f32, t: f32, activation: Activation) {
    fn run<const MODE: Mode>(x: &mut [f32], s: f32, t: f32, slope: f32) {
        x.iter_mut()
            .for_each(|v| *v = affine_value::<MODE>(*v, s, t, slope));
    }
    let (mode, slope) = activation.mode();
    match mode {
        RELU => run::<RELU>(x, s, t, slope),
        LEAKY => run::<LEAKY>(x, s, t, slope),
        _ => run::<IDENTITY>(x, s, t, slope),
    }
}

/// One plane of the map into a fresh plane: `out <- act(input * s + t)`, every element of `out`
/// written (`input` is at least as long).
pub(super) fn affine_plane_into(
    out: &mut [MaybeUninit<f32>],
    input: &[f32],
    s: f32,
    t: f32,
    activation: Activation,
) {
    fn run<const MODE: Mode>(
        out: &mut [MaybeUninit<f32>],
        input: &[f32],
        s: f32,
        t: f32,
        slope: f32,
    ) {
        let input = &input[..out.len()];
        (out.iter_mut().zip(input)).for_each(|(v, &x)| {
            v.write(affine_value::<MODE>(x, s, t, slope));
        });
    }
    let (mode, slope) = activation.mode();
    match mode {
        RELU => run::<RELU>(out, input, s, t, slope),
        LEAKY => run::<LEAKY>(out, input, s, t, slope),
        _ => run::<IDENTITY>(out, input, s, t, slope),
    }
}

/// `x <- act(x * scale[c] + shift[c])` for every value of `x`, in place.
pub fn forward_in_place(
    g: &AffineGeometry,
    x: &mut [f32],
    scale: &[f32],
    shift: &[f32],
    activation: Activation,
) {
    assert_eq!(x.len(), g.len(), "channel affine: input length");
    for_planes(g, x, &[], |c, x, _| {
        affine_plane(x, scale[c], shift[c], activation)
    });
}

/// `dy <- act'(y) dy * scale[c]` (zero where a ReLU's output `y` is `<= 0`, times the slope
/// where a leaky ReLU's is negative): the gradient of `x`, written over the output gradient.
pub fn input_grad_in_place(
    g: &AffineGeometry,
    y: &[f32],
    dy: &mut [f32],
    scale: &[f32],
    activation: Activation,
) {
    assert_eq!(
        (y.len(), dy.len()),
        (g.len(), g.len()),
        "channel affine: gradient length"
    );
    for_planes(g, dy, y, |c, dy, y| {
        let s = scale[c];
        match activation {
            Activation::Identity => dy.iter_mut().for_each(|d| *d *= s),
            Activation::Relu => {
                let y = &y[..dy.len()];
                for (d, &y) in dy.iter_mut().zip(y) {
                    *d = f32::from_bits((*d * s).to_bits() & keep(y));
                }
            }
            Activation::LeakyRelu { negative_slope } => {
                // The activation's gradient first, then the map's: Burn's order, and its
                // rounding.
                let y = &y[..dy.len()];
                for (d, &y) in dy.iter_mut().zip(y) {
                    *d = activate_grad::<LEAKY>(y, *d, negative_slope) * s;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`forward_in_place`] into a new vector.
    fn forward(
        g: &AffineGeometry,
        x: &[f32],
        scale: &[f32],
        shift: &[f32],
        activation: Activation,
    ) -> Vec<f32> {
        let mut y = x.to_vec();
        forward_in_place(g, &mut y, scale, shift, activation);
        y
    }

    /// [`input_grad_in_place`] into a new vector.
    fn input_grad(
        g: &AffineGeometry,
        y: &[f32],
        dy: &[f32],
        scale: &[f32],
        activation: Activation,
    ) -> Vec<f32> {
        let mut dx = dy.to_vec();
        input_grad_in_place(g, y, &mut dx, scale, activation);
        dx
    }

    fn geometry(x: [usize; 4]) -> AffineGeometry {
        AffineGeometry::new(x, x[1]).unwrap()
    }

    /// Two images, two channels of two values: worked by hand.
    #[test]
    fn forward_and_gradient_by_hand() {
        let g = geometry([2, 2, 1, 2]);
        let x = [1.0, -2.0, 3.0, 0.5, -1.0, 4.0, 0.0, f32::NAN];
        let (scale, shift) = ([2.0, -1.0], [0.5, 1.0]);
        let plain = forward(&g, &x, &scale, &shift, Activation::Identity);
        let want = [2.5, -3.5, -2.0, 0.5, -1.5, 8.5, 1.0];
        assert_eq!(&plain[..7], &want);
        assert!(plain[7].is_nan());
        let relu = forward(&g, &x, &scale, &shift, Activation::Relu);
        assert_eq!(&relu[..7], &[2.5, 0.0, 0.0, 0.5, 0.0, 8.5, 1.0]);
        assert!(relu[7].is_nan(), "relu(NaN) is NaN");

        let dy = [1.0; 8];
        let d_plain = input_grad(&g, &plain, &dy, &scale, Activation::Identity);
        assert_eq!(d_plain, [2.0, 2.0, -1.0, -1.0, 2.0, 2.0, -1.0, -1.0]);
        // Zero where the output is <= 0; NaN is not <= 0, so its gradient flows (as in Burn).
        let d_relu = input_grad(&g, &relu, &dy, &scale, Activation::Relu);
        assert_eq!(d_relu, [2.0, 0.0, 0.0, -1.0, 0.0, 2.0, -1.0, -1.0]);
    }

    /// Planes grouped into tasks keep their channel: a batch large enough for several tasks,
    /// against a serial loop.
    #[test]
    fn channels_survive_task_grouping() {
        let g = geometry([40, 3, 11, 13]);
        let x: Vec<f32> = (0..g.len()).map(|i| (i % 97) as f32 - 48.0).collect();
        let (scale, shift) = ([0.5, -2.0, 3.0], [1.0, 0.0, -4.0]);
        let y = forward(&g, &x, &scale, &shift, Activation::Relu);
        for (i, (&x, &y)) in x.iter().zip(&y).enumerate() {
            let c = (i / g.plane) % 3;
            assert_eq!(y, (x * scale[c] + shift[c]).max(0.0), "value {i}");
        }
    }

    #[test]
    fn mismatched_parameters_are_refused() {
        let err = AffineGeometry::new([1, 4, 2, 2], 3).unwrap_err();
        assert!(err.contains("3 per-channel parameters") && err.contains("4 channels"));
    }
}
