//! An in-memory image dataset: `u8` images `N x C x H x W`, labels and class names, with seeded
//! shuffling and batching into `f32` tensors in `[0, 1]` on any device.

use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Result, invalid};

/// Images and labels, all in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDataset {
    name: String,
    images: Vec<u8>,
    labels: Vec<usize>,
    image_shape: [usize; 3],
    class_names: Vec<String>,
}

/// A batch on a device: images `[B, C, H, W]` in `[0, 1]` and labels `[B]`.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The images.
    pub images: Tensor<4>,
    /// The labels.
    pub labels: Tensor<1, Int>,
}

/// The order in which [`ImageDataset::batches`] visits the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Index order.
    Sequential,
    /// A permutation drawn from the seed (the same seed gives the same order).
    Shuffled(u64),
}

impl ImageDataset {
    /// Builds a dataset, checking that the bytes hold whole images and that every label names a
    /// class.
    pub fn new(
        name: impl Into<String>,
        images: Vec<u8>,
        labels: Vec<usize>,
        image_shape: [usize; 3],
        class_names: Vec<String>,
    ) -> Result<Self> {
        let per_image: usize = image_shape.iter().product();
        if per_image == 0 {
            return Err(invalid(
                "ImageDataset::new",
                format!("image shape {image_shape:?}"),
            ));
        }
        if images.len() != labels.len() * per_image {
            return Err(invalid(
                "ImageDataset::new",
                format!(
                    "{} image bytes for {} labels of shape {image_shape:?} ({per_image} bytes each)",
                    images.len(),
                    labels.len()
                ),
            ));
        }
        if class_names.is_empty() {
            return Err(invalid("ImageDataset::new", "no classes"));
        }
        if let Some(&bad) = labels.iter().find(|&&y| y >= class_names.len()) {
            return Err(invalid(
                "ImageDataset::new",
                format!("label {bad} but only {} classes", class_names.len()),
            ));
        }
        Ok(Self {
            name: name.into(),
            images,
            labels,
            image_shape,
            class_names,
        })
    }

    /// The dataset's name (e.g. `fashion-mnist/test`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `[C, H, W]` of every image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Class names in label order.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// All labels.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The bytes of image `index` (CHW).
    pub fn image(&self, index: usize) -> &[u8] {
        let n: usize = self.image_shape.iter().product();
        &self.images[index * n..(index + 1) * n]
    }

    /// The bytes of every image, CHW, one image after another.
    pub fn pixels(&self) -> &[u8] {
        &self.images
    }

    /// Appends samples: `images` holds whole images of this dataset's shape, one per label.
    pub fn extend(&mut self, images: &[u8], labels: &[usize]) -> Result<()> {
        let per_image: usize = self.image_shape.iter().product();
        if images.len() != labels.len() * per_image {
            return Err(invalid(
                "ImageDataset::extend",
                format!(
                    "{} image bytes for {} labels of {per_image} bytes",
                    images.len(),
                    labels.len()
                ),
            ));
        }
        if let Some(&bad) = labels.iter().find(|&&y| y >= self.class_names.len()) {
            return Err(invalid(
                "ImageDataset::extend",
                format!("label {bad} but only {} classes", self.class_names.len()),
            ));
        }
        self.images.extend_from_slice(images);
        self.labels.extend_from_slice(labels);
        Ok(())
    }

    /// Number of samples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes()];
        for &y in &self.labels {
            counts[y] += 1;
        }
        counts
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        self.check_indices("subset", indices)?;
        let images = indices
            .iter()
            .flat_map(|&i| self.image(i).iter().copied())
            .collect();
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Ok(Self {
            images,
            labels,
            ..self.clone_meta()
        })
    }

    /// The first `per_class` samples of each class, in index order: a balanced subset.
    pub fn balanced_subset(&self, per_class: usize) -> Self {
        let mut taken = vec![0; self.num_classes()];
        let indices: Vec<usize> = (0..self.len())
            .filter(|&i| {
                let y = self.labels[i];
                taken[y] += 1;
                taken[y] <= per_class
            })
            .collect();
        self.subset(&indices)
            .expect("indices come from the dataset")
    }

    fn clone_meta(&self) -> Self {
        Self {
            name: self.name.clone(),
            images: Vec::new(),
            labels: Vec::new(),
            image_shape: self.image_shape,
            class_names: self.class_names.clone(),
        }
    }

    fn check_indices(&self, what: &'static str, indices: &[usize]) -> Result<()> {
        match indices.iter().find(|&&i| i >= self.len()) {
            Some(bad) => Err(invalid(
                what,
                format!("index {bad} >= {} samples", self.len()),
            )),
            None => Ok(()),
        }
    }

    /// The samples at `indices` as a batch on `device`, pixels scaled to `[0, 1]`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Batch> {
        self.check_indices("batch", indices)?;
        if indices.is_empty() {
            return Err(invalid("batch", "no indices"));
        }
        let [c, h, w] = self.image_shape;
        let pixels: Vec<f32> = indices
            .iter()
            .flat_map(|&i| self.image(i).iter().map(|&p| f32::from(p) / 255.0))
            .collect();
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        Ok(Batch {
            images: Tensor::from_data(TensorData::new(pixels, [indices.len(), c, h, w]), device),
            labels: Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
        })
    }

    /// The sample indices of one epoch split into batches of `batch_size` (the last may be
    /// smaller).
    pub fn batch_indices(&self, batch_size: usize, order: Order) -> Result<Vec<Vec<usize>>> {
        if batch_size == 0 {
            return Err(invalid("batch_indices", "batch size 0"));
        }
        let mut indices: Vec<usize> = (0..self.len()).collect();
        if let Order::Shuffled(seed) = order {
            indices.shuffle(&mut StdRng::seed_from_u64(seed));
        }
        Ok(indices.chunks(batch_size).map(<[usize]>::to_vec).collect())
    }

    /// Iterates over one epoch of batches on `device`.
    pub fn batches<'a>(
        &'a self,
        batch_size: usize,
        order: Order,
        device: &'a Device,
    ) -> Result<impl Iterator<Item = Batch> + 'a> {
        let chunks = self.batch_indices(batch_size, order)?;
        Ok(chunks.into_iter().map(move |chunk| {
            self.batch(&chunk, device)
                .expect("indices come from the dataset")
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferd_core::device::test_device;

    fn toy() -> ImageDataset {
        // 6 images 1x2x2, image i filled with 50 * i; labels 0,1,2,0,1,2.
        let images = (0..6u8).flat_map(|i| [50 * i; 4]).collect();
        let names = ["a", "b", "c"].map(String::from).to_vec();
        ImageDataset::new("toy", images, vec![0, 1, 2, 0, 1, 2], [1, 2, 2], names).unwrap()
    }

    #[test]
    fn validates_construction() {
        let names = vec!["a".to_string()];
        assert!(ImageDataset::new("x", vec![0; 3], vec![0], [1, 2, 2], names.clone()).is_err());
        assert!(ImageDataset::new("x", vec![0; 4], vec![1], [1, 2, 2], names.clone()).is_err());
        assert!(ImageDataset::new("x", vec![0; 4], vec![0], [1, 2, 2], vec![]).is_err());
        assert!(ImageDataset::new("x", vec![0; 4], vec![0], [1, 2, 2], names).is_ok());
    }

    #[test]
    fn batches_scale_to_unit_interval() {
        let device = test_device();
        let batch = toy().batch(&[5, 0], &device).unwrap();
        assert_eq!(batch.images.dims(), [2, 1, 2, 2]);
        let pixels = batch.images.try_to_vec_as::<f32>().unwrap();
        assert_eq!(pixels[0], 250.0 / 255.0);
        assert_eq!(pixels[4], 0.0);
        let labels = batch.labels.try_to_vec_as::<i64>().unwrap();
        assert_eq!(labels, vec![2, 0]);
        assert!(toy().batch(&[6], &device).is_err());
        assert!(toy().batch(&[], &device).is_err());
    }

    #[test]
    fn shuffling_is_seeded_and_covers_everything() {
        let d = toy();
        let a = d.batch_indices(4, Order::Shuffled(1)).unwrap();
        assert_eq!(a, d.batch_indices(4, Order::Shuffled(1)).unwrap());
        assert_ne!(a, d.batch_indices(4, Order::Shuffled(2)).unwrap());
        assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 2]);
        let mut all: Vec<usize> = a.concat();
        all.sort_unstable();
        assert_eq!(all, (0..6).collect::<Vec<_>>());
        assert_eq!(
            d.batch_indices(4, Order::Sequential).unwrap()[0],
            vec![0, 1, 2, 3]
        );
        assert!(d.batch_indices(0, Order::Sequential).is_err());
    }

    #[test]
    fn subsets_keep_labels_and_balance() {
        let d = toy();
        let s = d.subset(&[4, 1]).unwrap();
        assert_eq!(s.labels(), &[1, 1]);
        assert_eq!(s.image(0), &[200; 4]);
        assert_eq!(d.balanced_subset(1).labels(), &[0, 1, 2]);
        assert_eq!(d.class_counts(), vec![2, 2, 2]);
        assert!(d.subset(&[9]).is_err());
    }
}
