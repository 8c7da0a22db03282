//! Seeded per-sample augmentation on the device: random crop with zero padding, then random
//! horizontal flip (torchvision's `RandomCrop(s, padding=4)` + `RandomHorizontalFlip()`).
//!
//! The random choices (offsets and flips) are drawn on the host from the seed, so the result is
//! the same on every backend; the pixels never leave the device. Crop and flip are one `gather`
//! over the padded images, so gradients flow through the augmentation to the images: FERD
//! augments the generator's output inside the synthesis loss.

use burn::tensor::{Int, Tensor, TensorData};
use ferd_core::random::{Noise, rng};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Random crop with zero padding and random horizontal flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Augment {
    /// Zero padding on every side before cropping back to the input size (0 = no crop).
    pub padding: usize,
    /// Whether to flip each image horizontally with probability 1/2. Leave it off for data
    /// whose meaning flips change (digits).
    pub flip: bool,
}

impl Default for Augment {
    /// Padding 4 and flips: the CIFAR recipe.
    fn default() -> Self {
        Self {
            padding: 4,
            flip: true,
        }
    }
}

/// Uniforms drawn per sample: crop row, crop column, flip.
const DRAWS_PER_SAMPLE: usize = 3;

/// One sample's draw: crop offsets into the padded image and whether to flip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Draw {
    dy: usize,
    dx: usize,
    flip: bool,
}

impl Augment {
    /// No augmentation at all.
    pub fn none() -> Self {
        Self {
            padding: 0,
            flip: false,
        }
    }

    /// Three uniforms per sample, `[u_dy, u_dx, u_flip]`: offset `floor(u (2 padding + 1))`
    /// on each axis, a flip when `u_flip < 1/2` (and flips are on). Drawn even when unused, so
    /// that a tape of another implementation's crops and flips replays sample by sample.
    fn draws(&self, batch: usize, noise: &mut dyn Noise) -> Vec<Draw> {
        let positions = 2 * self.padding + 1;
        let offset = |u: f32| ((u * positions as f32) as usize).min(positions - 1);
        noise
            .unit_uniform(DRAWS_PER_SAMPLE * batch)
            .chunks(DRAWS_PER_SAMPLE)
            .map(|u| Draw {
                dy: offset(u[0]),
                dx: offset(u[1]),
                flip: self.flip && u[2] < 0.5,
            })
            .collect()
    }

    /// Augments a batch `[B, C, H, W]`; the same seed gives the same crops and flips:
    /// [`Augment::apply_from`] on a seeded [`rng`].
    pub fn apply(&self, images: Tensor<4>, seed: u64) -> Tensor<4> {
        self.apply_from(images, &mut rng(seed))
    }

    /// [`Augment::apply`] with its crops and flips drawn from `noise` (three uniforms per
    /// sample, see `draws`), e.g. a tape recorded from another implementation.
    pub fn apply_from(&self, images: Tensor<4>, noise: &mut dyn Noise) -> Tensor<4> {
        let [batch, ..] = images.dims();
        let draws = self.draws(batch, noise);
        if *self == Self::none() {
            return images;
        }
        let [batch, channels, height, width] = images.dims();
        let p = self.padding;
        let (padded_h, padded_w) = (height + 2 * p, width + 2 * p);
        let device = images.device();
        let padded = images.pad((p, p, p, p), burn::tensor::ops::PadMode::Constant(0.0));
        let flat = padded.reshape([batch, channels, padded_h * padded_w]);

        // Output pixel (i, j) of sample b reads padded pixel (dy + i, dx + j'), j' = j or its
        // mirror W - 1 - j: flipping the crop is the same as reading it mirrored.
        let mut index = Vec::with_capacity(batch * height * width);
        for draw in draws {
            for i in 0..height {
                for j in 0..width {
                    let col = if draw.flip { width - 1 - j } else { j };
                    index.push(((draw.dy + i) * padded_w + draw.dx + col) as i64);
                }
            }
        }
        let index: Tensor<3, Int> =
            Tensor::from_data(TensorData::new(index, [batch, 1, height * width]), &device);
        let index = index.expand([batch, channels, height * width]);
        flat.gather(2, index)
            .reshape([batch, channels, height, width])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferd_core::device::test_device;

    fn ramp(batch: usize, side: usize) -> Tensor<4> {
        let n = batch * 2 * side * side;
        let values: Vec<f32> = (0..n).map(|v| 1.0 + v as f32).collect();
        Tensor::from_data(
            TensorData::new(values, [batch, 2, side, side]),
            &test_device(),
        )
    }

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.try_to_vec_as::<f32>().unwrap()
    }

    #[test]
    fn none_is_identity_and_seed_is_deterministic() {
        let x = ramp(3, 5);
        assert_eq!(
            values(Augment::none().apply(x.clone(), 1)),
            values(x.clone())
        );
        let a = values(Augment::default().apply(x.clone(), 9));
        assert_eq!(a, values(Augment::default().apply(x.clone(), 9)));
        assert_ne!(a, values(Augment::default().apply(x, 10)));
    }

    /// Checks every output pixel against the crop/flip the draw describes, computed on the host.
    #[test]
    fn matches_host_crop_and_flip() {
        let (batch, side) = (16, 5);
        let aug = Augment {
            padding: 2,
            flip: true,
        };
        let x = ramp(batch, side);
        let input = values(x.clone());
        let out = values(aug.apply(x, 3));
        let draws = aug.draws(batch, &mut rng(3));
        assert!(draws.iter().any(|d| d.flip) && draws.iter().any(|d| !d.flip));
        for (b, d) in draws.iter().enumerate() {
            for c in 0..2 {
                for i in 0..side {
                    for j in 0..side {
                        let col = if d.flip { side - 1 - j } else { j };
                        let (y, x) = ((d.dy + i) as isize - 2, (d.dx + col) as isize - 2);
                        let inside =
                            (0..side as isize).contains(&y) && (0..side as isize).contains(&x);
                        let expected = if inside {
                            input[((b * 2 + c) * side + y as usize) * side + x as usize]
                        } else {
                            0.0
                        };
                        let got = out[((b * 2 + c) * side + i) * side + j];
                        assert_eq!(got, expected, "b{b} c{c} ({i},{j}) {d:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn draws_map_uniforms_to_offsets_and_flips() {
        // Padding 2: five offsets, each a fifth of [0, 1); a flip below one half.
        let aug = Augment {
            padding: 2,
            flip: true,
        };
        let mut tape = ferd_core::random::Replay::new(vec![0.0, 0.999, 0.1, 0.5, 0.39, 0.5]);
        let draws = aug.draws(2, &mut tape);
        assert_eq!(
            draws,
            vec![
                Draw {
                    dy: 0,
                    dx: 4,
                    flip: true
                },
                Draw {
                    dy: 2,
                    dx: 1,
                    flip: false
                }
            ]
        );
        let mut tape = ferd_core::random::Replay::new(vec![0.5, 0.5, 0.1]);
        let no_flip = Augment { flip: false, ..aug }.draws(1, &mut tape);
        assert!(!no_flip[0].flip);
    }

    #[test]
    fn gradients_flow_through() {
        let device = test_device().autodiff();
        let x = Tensor::<4>::ones([2, 1, 4, 4], &device).require_grad();
        let y = Augment::default().apply(x.clone(), 0);
        let grads = y.sum().backward();
        let g = x.grad(&grads).unwrap();
        // Every input pixel is read at most once per output image of the same size.
        let total = g.sum().into_scalar::<f32>();
        assert!(total > 0.0 && total <= 32.0, "{total}");
    }
}
