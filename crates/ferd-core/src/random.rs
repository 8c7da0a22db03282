//! Seeded randomness that does not depend on the backend: every random number ferd uses is drawn
//! on the host from a [`StdRng`] and uploaded, so a seed gives the same numbers on flex, wgpu and
//! CUDA, and a test never touches Burn's global RNG.
//!
//! - [`mix`] is the one seed mixer: it derives the seed of a draw from a run's seed and the
//!   coordinates of the draw (round, step, purpose), so that a resumed run draws exactly what an
//!   uninterrupted one would.
//! - [`Noise`] is a source of standard normal and uniform numbers. A seeded [`StdRng`] is the one
//!   used everywhere ([`rng`]); [`Replay`] plays back recorded numbers, which is how the golden tests inject
//!   PyTorch's noise into ferd's computations.

use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Derives the seed of one draw from a base seed and the draw's coordinates (e.g. round, step,
/// purpose). Different coordinates give unrelated seeds; the same ones give the same seed.
///
/// # Examples
/// ```
/// use ferd_core::random::mix;
/// assert_eq!(mix(7, &[1, 2]), mix(7, &[1, 2]));
/// assert_ne!(mix(7, &[1, 2]), mix(7, &[2, 1]));
/// ```
pub fn mix(seed: u64, coordinates: &[u64]) -> u64 {
    let mut h = seed ^ 0x51_7C_C1_B7_27_22_0A_95;
    for &v in coordinates {
        h = (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
    h
}

/// A source of random numbers for tensors.
pub trait Noise {
    /// `count` draws from `N(0, 1)`.
    fn standard_normal(&mut self, count: usize) -> Vec<f32>;

    /// `count` draws from `U[0, 1)`.
    fn unit_uniform(&mut self, count: usize) -> Vec<f32>;
}

/// A seeded [`StdRng`] is the noise source of every random draw in ferd (normals by
/// Box-Muller on two uniform draws).
impl Noise for StdRng {
    fn standard_normal(&mut self, count: usize) -> Vec<f32> {
        (0..count)
            .map(|_| {
                let u1: f32 = 1.0 - self.random::<f32>(); // in (0, 1]
                let u2: f32 = self.random();
                (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect()
    }

    fn unit_uniform(&mut self, count: usize) -> Vec<f32> {
        (0..count).map(|_| self.random::<f32>()).collect()
    }
}

/// A [`StdRng`] seeded with `seed`.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Plays back recorded numbers in order (both kinds of draw read the same tape).
///
/// # Panics
/// When more numbers are asked for than were recorded: a golden test whose tape is too short
/// is a broken test.
#[derive(Debug, Clone)]
pub struct Replay {
    tape: Vec<f32>,
    next: usize,
}

impl Replay {
    /// Plays back `tape`.
    pub fn new(tape: Vec<f32>) -> Self {
        Self { tape, next: 0 }
    }

    /// Numbers not played yet.
    pub fn remaining(&self) -> usize {
        self.tape.len() - self.next
    }

    fn take(&mut self, count: usize) -> Vec<f32> {
        assert!(
            count <= self.remaining(),
            "the replay tape has {} numbers left, {count} asked",
            self.remaining()
        );
        self.next += count;
        self.tape[self.next - count..self.next].to_vec()
    }
}

impl Noise for Replay {
    fn standard_normal(&mut self, count: usize) -> Vec<f32> {
        self.take(count)
    }

    fn unit_uniform(&mut self, count: usize) -> Vec<f32> {
        self.take(count)
    }
}

/// A tensor of `shape` filled with `N(mean, std^2)` draws from `noise`.
pub fn normal<const D: usize>(
    noise: &mut dyn Noise,
    shape: [usize; D],
    mean: f32,
    std: f32,
    device: &Device,
) -> Tensor<D> {
    let count = shape.iter().product();
    let values = noise
        .standard_normal(count)
        .into_iter()
        .map(|v| mean + std * v)
        .collect::<Vec<_>>();
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// A tensor of `shape` filled with `U[low, high)` draws from `noise`.
pub fn uniform<const D: usize>(
    noise: &mut dyn Noise,
    shape: [usize; D],
    low: f32,
    high: f32,
    device: &Device,
) -> Tensor<D> {
    let count = shape.iter().product();
    let values = noise
        .unit_uniform(count)
        .into_iter()
        .map(|v| low + (high - low) * v)
        .collect::<Vec<_>>();
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_normals_have_unit_moments() {
        let v = rng(3).standard_normal(200_000);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "{mean} {var}"
        );
        assert_eq!(v[..5], rng(3).standard_normal(5)[..]);
    }

    #[test]
    fn uniform_draws_stay_in_range() {
        let v = rng(1).unit_uniform(10_000);
        assert!(v.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean - 0.5).abs() < 0.01);
    }

    #[test]
    fn replay_plays_back_in_order() {
        let mut r = Replay::new(vec![1.0, 2.0, 3.0]);
        assert_eq!(r.standard_normal(2), vec![1.0, 2.0]);
        assert_eq!(r.unit_uniform(1), vec![3.0]);
        assert_eq!(r.remaining(), 0);
    }
}
