//! Seeded per-sample augmentation on the device: random crop with zero padding, then random
//! horizontal flip (torchvision's `RandomCrop(s, padding=4)` + `RandomHorizontalFlip()`).
//!
//! The random choices (offsets and flips) are drawn on the host from the seed, so the result is
//! the same on every backend; the pixels never leave the device. Crop and flip are one `gather`
//! over the padded images, so gradients flow through the augmentation to the images: FERD
//! augments the generator's output inside the synthesis loss.

use burn::tensor::{Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
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

    fn draws(&self, batch: usize, seed: u64) -> Vec<Draw> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..batch)
            .map(|_| Draw {
                dy: rng.random_range(0..=2 * self.padding),
                dx: rng.random_range(0..=2 * self.padding),
                flip: self.flip && rng.random_bool(0.5),
            })
            .collect()
    }

    /// Augments a batch `[B, C, H, W]`; the same seed gives the same crops and flips.
    pub fn apply(&self, images: Tensor<4>, seed: u64) -> Tensor<4> {
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
        for draw in self.draws(batch, seed) {
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
        let draws = aug.draws(batch, 3);
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
