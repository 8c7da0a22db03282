//! The sample bank: every round's synthesized batch, kept for the whole run (FERD keeps all
//! rounds), from which the student draws its batches.
//!
//! Images are stored as `u8`, like the official code's PNG round trip (`round(255 x)`): a
//! quarter of the memory of `f32` (the paper's CIFAR-10 budget ends with 56,320 images: 173 MB
//! instead of 692 MB) at a quantization error of at most 1/510 per pixel, far below any eps
//! used. On disk the bank is a pair of IDX files (`bank-images.idx`, `bank-labels.idx`).

use std::path::Path;

use burn::tensor::Tensor;
use ferd_data::idx::{IdxArray, encode_idx, read_idx};
use ferd_data::{Batch, ImageDataset};
use rand::seq::SliceRandom;

use crate::error::{DistillError, Result, io_error};
use ferd_core::random::rng;

/// The growing bank of synthesized samples.
#[derive(Debug, Clone)]
pub struct Bank {
    data: ImageDataset,
}

const IMAGES: &str = "bank-images.idx";
const LABELS: &str = "bank-labels.idx";

/// `round(255 x)` of pixels in `[0, 1]` (the PNG round trip of the official code).
pub fn quantize(pixels: &[f32]) -> Vec<u8> {
    pixels
        .iter()
        .map(|&p| (p * 255.0 + 0.5).clamp(0.0, 255.0) as u8)
        .collect()
}

impl Bank {
    /// An empty bank of `[C, H, W]` images over `classes` classes.
    pub fn new(image_shape: [usize; 3], classes: usize) -> Result<Self> {
        let names = (0..classes).map(|c| c.to_string()).collect();
        Ok(Self {
            data: ImageDataset::new("bank", Vec::new(), Vec::new(), image_shape, names)?,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the bank is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        self.data.class_counts()
    }

    /// The samples as a dataset.
    pub fn dataset(&self) -> &ImageDataset {
        &self.data
    }

    /// Adds a batch of images `[B, C, H, W]` in `[0, 1]` with their labels.
    pub fn push(&mut self, images: &Tensor<4>, labels: &[usize]) -> Result<()> {
        let pixels = images
            .clone()
            .without_autodiff()
            .try_to_vec_as::<f32>()
            .map_err(|e| DistillError::Config(format!("bank images unreadable: {e:?}")))?;
        Ok(self.data.extend(&quantize(&pixels), labels)?)
    }

    /// `steps` batches of `batch_size` indices for one epoch of student training: the bank
    /// shuffled with `seed` and walked through, reshuffled (seed + pass) whenever exhausted, as a
    /// shuffling data loader re-iterated for `steps` steps. Batches never mix two passes, so a
    /// bank smaller than `batch_size` gives batches of the whole bank.
    pub fn epoch_batches(&self, batch_size: usize, steps: usize, seed: u64) -> Vec<Vec<usize>> {
        let n = self.len();
        let mut batches = Vec::with_capacity(steps);
        let mut pass = 0u64;
        while batches.len() < steps && n > 0 {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng(seed.wrapping_add(pass)));
            for chunk in order.chunks(batch_size.min(n)) {
                if batches.len() == steps || (chunk.len() < batch_size && n >= batch_size) {
                    break;
                }
                batches.push(chunk.to_vec());
            }
            pass += 1;
        }
        batches
    }

    /// The samples at `indices` on `device`.
    pub fn batch(&self, indices: &[usize], device: &burn::tensor::Device) -> Result<Batch> {
        Ok(self.data.batch(indices, device)?)
    }

    /// Writes the bank into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let [c, h, w] = self.data.image_shape();
        let images = IdxArray {
            dims: vec![self.len(), c, h, w],
            data: self.data.pixels().to_vec(),
        };
        let labels = IdxArray {
            dims: vec![self.len()],
            data: self.data.labels().iter().map(|&y| y as u8).collect(),
        };
        for (name, array) in [(IMAGES, images), (LABELS, labels)] {
            let path = dir.join(name);
            std::fs::write(&path, encode_idx(&array)).map_err(io_error(&path))?;
        }
        Ok(())
    }

    /// Reads a bank written by [`Bank::save`] into an empty bank of the same shape.
    pub fn load(&mut self, dir: &Path) -> Result<()> {
        let images = read_idx(&dir.join(IMAGES))?;
        let labels = read_idx(&dir.join(LABELS))?;
        let [c, h, w] = self.data.image_shape();
        let n = labels.dims.first().copied().unwrap_or(0);
        if images.dims != [n, c, h, w] {
            return Err(DistillError::Checkpoint {
                path: dir.join(IMAGES),
                detail: format!(
                    "bank of shape {:?}, expected [{n}, {c}, {h}, {w}]",
                    images.dims
                ),
            });
        }
        let labels: Vec<usize> = labels.data.iter().map(|&y| usize::from(y)).collect();
        self.data = ImageDataset::new(
            "bank",
            Vec::new(),
            Vec::new(),
            self.data.image_shape(),
            self.data.class_names().to_vec(),
        )?;
        Ok(self.data.extend(&images.data, &labels)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantization_rounds_to_nearest() {
        assert_eq!(
            quantize(&[0.0, 1.0, 0.5, 0.2, 1.0 / 510.0 - 1e-6]),
            vec![0, 255, 128, 51, 0]
        );
    }

    #[test]
    fn epoch_batches_cover_the_bank_before_repeating() {
        let mut bank = Bank::new([1, 1, 1], 2).unwrap();
        let device = ferd_core::device::test_device();
        let x = Tensor::<4>::zeros([10, 1, 1, 1], &device);
        bank.push(&x, &[0, 1, 0, 1, 0, 1, 0, 1, 0, 1]).unwrap();
        let batches = bank.epoch_batches(4, 5, 3);
        assert_eq!(batches.len(), 5);
        assert!(batches.iter().all(|b| b.len() == 4));
        // The first pass gives two full batches of distinct indices (the remainder 2 is dropped).
        let mut first: Vec<usize> = batches[..2].concat();
        first.sort();
        first.dedup();
        assert_eq!(first.len(), 8);
        assert_eq!(batches, bank.epoch_batches(4, 5, 3));
        assert_ne!(batches, bank.epoch_batches(4, 5, 4));
        // A bank smaller than the batch gives batches of the whole bank.
        assert!(bank.epoch_batches(16, 3, 0).iter().all(|b| b.len() == 10));
    }
}
