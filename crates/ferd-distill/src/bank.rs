//! The sample bank: every round's synthesized batch, kept for the whole run (FERD keeps all
//! rounds), from which the student draws its batches.
//!
//! Images are kept as `f32`, exactly as synthesized: the official code saves every round with
//! `np.save` of the float32 images (`utils.py`, `save_mem`) and trains the student on them. The
//! paper's CIFAR-10 budget ends with 56,320 images, 692 MB. On disk the bank is one SafeTensors
//! file (`bank.safetensors`: `images` `[N, C, H, W]` f32, `labels` `[N]` i64).

use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use ferd_core::random::Noise;
use ferd_data::{Batch, ImageDataset};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

use crate::error::{DistillError, Result, io_error};

/// The growing bank of synthesized samples.
#[derive(Debug, Clone)]
pub struct Bank {
    image_shape: [usize; 3],
    classes: usize,
    images: Vec<f32>,
    labels: Vec<usize>,
}

const FILE: &str = "bank.safetensors";

impl Bank {
    /// An empty bank of `[C, H, W]` images over `classes` classes.
    pub fn new(image_shape: [usize; 3], classes: usize) -> Result<Self> {
        if image_shape.contains(&0) || classes == 0 {
            return Err(DistillError::Config(format!(
                "a bank of {image_shape:?} images over {classes} classes"
            )));
        }
        Ok(Self {
            image_shape,
            classes,
            images: Vec::new(),
            labels: Vec::new(),
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the bank is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Samples per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes];
        for &y in &self.labels {
            counts[y] += 1;
        }
        counts
    }

    /// The labels, in the order the samples were added.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The pixels `[N, C, H, W]`, row-major.
    pub fn pixels(&self) -> &[f32] {
        &self.images
    }

    /// The samples as an 8-bit dataset (`round(255 x)`), for pictures of the bank.
    pub fn dataset(&self) -> Result<ImageDataset> {
        let bytes = self
            .images
            .iter()
            .map(|&p| (p * 255.0 + 0.5).clamp(0.0, 255.0) as u8)
            .collect();
        let names = (0..self.classes).map(|c| c.to_string()).collect();
        Ok(ImageDataset::new(
            "bank",
            bytes,
            self.labels.clone(),
            self.image_shape,
            names,
        )?)
    }

    /// Adds a batch of images `[B, C, H, W]` in `[0, 1]` with their labels.
    pub fn push(&mut self, images: &Tensor<4>, labels: &[usize]) -> Result<()> {
        let [batch, c, h, w] = images.dims();
        if [c, h, w] != self.image_shape || batch != labels.len() {
            return Err(DistillError::Config(format!(
                "a batch of {:?} images with {} labels for a bank of {:?} images",
                images.dims(),
                labels.len(),
                self.image_shape
            )));
        }
        if let Some(&y) = labels.iter().find(|&&y| y >= self.classes) {
            return Err(DistillError::Config(format!(
                "label {y} in a bank of {} classes",
                self.classes
            )));
        }
        let pixels = images
            .clone()
            .without_autodiff()
            .try_to_vec_as::<f32>()
            .map_err(|e| DistillError::Config(format!("bank images unreadable: {e:?}")))?;
        self.images.extend(pixels);
        self.labels.extend_from_slice(labels);
        Ok(())
    }

    /// `steps` batches of `batch_size` indices for one epoch of student training: the bank
    /// shuffled and walked through, reshuffled whenever exhausted, as PyTorch's shuffling
    /// `DataLoader` re-iterated for `steps` steps. Each pass orders the bank by `N` uniforms
    /// drawn from `noise` (sample `i` goes where its draw ranks). Batches never mix two passes;
    /// a pass's short last batch is dropped when the bank holds a whole batch (a bank of whole
    /// rounds never has one), and a bank smaller than `batch_size` gives batches of the whole
    /// bank.
    pub fn epoch_batches(
        &self,
        batch_size: usize,
        steps: usize,
        noise: &mut dyn Noise,
    ) -> Vec<Vec<usize>> {
        let n = self.len();
        let mut batches = Vec::with_capacity(steps);
        while batches.len() < steps && n > 0 {
            let ranks = noise.unit_uniform(n);
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| ranks[a].total_cmp(&ranks[b]));
            for chunk in order.chunks(batch_size.min(n)) {
                if batches.len() == steps || (chunk.len() < batch_size && n >= batch_size) {
                    break;
                }
                batches.push(chunk.to_vec());
            }
        }
        batches
    }

    /// The samples at `indices` on `device`.
    pub fn batch(&self, indices: &[usize], device: &burn::tensor::Device) -> Result<Batch> {
        let per_image: usize = self.image_shape.iter().product();
        let mut pixels = Vec::with_capacity(indices.len() * per_image);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= self.len() {
                return Err(DistillError::Config(format!(
                    "bank index {i} of {} samples",
                    self.len()
                )));
            }
            pixels.extend_from_slice(&self.images[i * per_image..(i + 1) * per_image]);
            labels.push(self.labels[i] as i64);
        }
        let [c, h, w] = self.image_shape;
        Ok(Batch {
            images: Tensor::from_data(TensorData::new(pixels, [indices.len(), c, h, w]), device),
            labels: Tensor::<1, Int>::from_data(TensorData::new(labels, [indices.len()]), device),
        })
    }

    /// Writes the bank into `dir` (`bank.safetensors`).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let [c, h, w] = self.image_shape;
        let image_bytes: Vec<u8> = self.images.iter().flat_map(|p| p.to_le_bytes()).collect();
        let label_bytes: Vec<u8> = self
            .labels
            .iter()
            .flat_map(|&y| (y as i64).to_le_bytes())
            .collect();
        let sized = "sizes computed from the bank";
        let tensors = [
            (
                "images",
                TensorView::new(Dtype::F32, vec![self.len(), c, h, w], &image_bytes).expect(sized),
            ),
            (
                "labels",
                TensorView::new(Dtype::I64, vec![self.len()], &label_bytes).expect(sized),
            ),
        ];
        let bytes =
            safetensors::serialize(tensors, None).map_err(|e| DistillError::Checkpoint {
                path: dir.join(FILE),
                detail: e.to_string(),
            })?;
        let path = dir.join(FILE);
        std::fs::write(&path, bytes).map_err(io_error(&path))
    }

    /// Reads a bank written by [`Bank::save`] into this bank (replacing what it holds), checking
    /// shapes, types, labels and pixels (finite).
    pub fn load(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE);
        let bytes = std::fs::read(&path).map_err(io_error(&path))?;
        let bad = |detail: String| DistillError::Checkpoint {
            path: path.clone(),
            detail,
        };
        let file = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let images = file.tensor("images").map_err(|e| bad(e.to_string()))?;
        let labels = file.tensor("labels").map_err(|e| bad(e.to_string()))?;
        let n = labels.shape().first().copied().unwrap_or(0);
        let [c, h, w] = self.image_shape;
        if images.dtype() != Dtype::F32 || labels.dtype() != Dtype::I64 {
            return Err(bad(format!(
                "images {:?} and labels {:?}, expected F32 and I64",
                images.dtype(),
                labels.dtype()
            )));
        }
        if images.shape() != [n, c, h, w] || labels.shape() != [n] {
            return Err(bad(format!(
                "images {:?} and labels {:?}, expected [{n}, {c}, {h}, {w}] and [{n}]",
                images.shape(),
                labels.shape()
            )));
        }
        let pixels: Vec<f32> = images
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("four bytes")))
            .collect();
        if pixels.iter().any(|p| !p.is_finite()) {
            return Err(bad("a non-finite pixel".into()));
        }
        let mut ys = Vec::with_capacity(n);
        for b in labels.data().chunks_exact(8) {
            let y = i64::from_le_bytes(b.try_into().expect("eight bytes"));
            match usize::try_from(y) {
                Ok(y) if y < self.classes => ys.push(y),
                _ => return Err(bad(format!("label {y} of {} classes", self.classes))),
            }
        }
        self.images = pixels;
        self.labels = ys;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_kept_exactly_and_survive_a_round_trip() {
        let device = ferd_core::device::test_device();
        let mut bank = Bank::new([1, 1, 2], 3).unwrap();
        let pixels = vec![0.123_456_79, 1.0 / 510.0, 0.999_999, 0.0];
        let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [2, 1, 1, 2]), &device);
        bank.push(&x, &[2, 0]).unwrap();
        assert_eq!(bank.pixels(), &pixels[..]);
        let dir = std::env::temp_dir().join(format!("ferd-bank-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        bank.save(&dir).unwrap();
        let mut back = Bank::new([1, 1, 2], 3).unwrap();
        back.load(&dir).unwrap();
        assert_eq!((back.pixels(), back.labels()), (&pixels[..], &[2, 0][..]));
        // A bank of another shape or class count refuses the file.
        assert!(Bank::new([1, 2, 1], 3).unwrap().load(&dir).is_err());
        assert!(Bank::new([2, 1, 2], 3).unwrap().load(&dir).is_err());
        assert!(Bank::new([1, 1, 2], 2).unwrap().load(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_pass_orders_the_bank_by_its_draws() {
        use ferd_core::random::Replay;
        let mut bank = Bank::new([1, 1, 1], 2).unwrap();
        let device = ferd_core::device::test_device();
        let x = Tensor::<4>::zeros([4, 1, 1, 1], &device);
        bank.push(&x, &[0, 1, 0, 1]).unwrap();
        // Ranks 0.7, 0.1, 0.9, 0.3: order 1, 3, 0, 2; then the next pass's draws.
        let mut tape = Replay::new(vec![0.7, 0.1, 0.9, 0.3, 0.2, 0.4, 0.6, 0.8]);
        let batches = bank.epoch_batches(2, 3, &mut tape);
        assert_eq!(batches, vec![vec![1, 3], vec![0, 2], vec![0, 1]]);
    }

    #[test]
    fn epoch_batches_cover_the_bank_before_repeating() {
        let mut bank = Bank::new([1, 1, 1], 2).unwrap();
        let device = ferd_core::device::test_device();
        let x = Tensor::<4>::zeros([10, 1, 1, 1], &device);
        bank.push(&x, &[0, 1, 0, 1, 0, 1, 0, 1, 0, 1]).unwrap();
        let draws = |seed| ferd_core::random::rng(seed);
        let batches = bank.epoch_batches(4, 5, &mut draws(3));
        assert_eq!(batches.len(), 5);
        assert!(batches.iter().all(|b| b.len() == 4));
        // The first pass gives two full batches of distinct indices (the remainder 2 is dropped).
        let mut first: Vec<usize> = batches[..2].concat();
        first.sort();
        first.dedup();
        assert_eq!(first.len(), 8);
        assert_eq!(batches, bank.epoch_batches(4, 5, &mut draws(3)));
        assert_ne!(batches, bank.epoch_batches(4, 5, &mut draws(4)));
        // A bank smaller than the batch gives batches of the whole bank.
        assert!(
            bank.epoch_batches(16, 3, &mut draws(0))
                .iter()
                .all(|b| b.len() == 10)
        );
    }
}
