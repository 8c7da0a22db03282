//! Image grids saved as PNG: a quick look at a dataset or at a batch of synthesized images.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use ferd_data::ImageDataset;
use thiserror::Error;

/// Why a grid could not be written.
#[derive(Debug, Error)]
pub enum ImageError {
    /// The images do not fit the described grid.
    #[error("image grid: {0}")]
    Layout(String),
    /// The PNG could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The output file.
        path: String,
        /// The encoder's or the system's error.
        reason: String,
    },
}

/// Images of one shape `[C, H, W]` (`C` = 1 or 3, bytes in CHW order), laid out row by row.
#[derive(Debug, Clone)]
pub struct Grid<'a> {
    /// `[C, H, W]` of every image.
    pub image_shape: [usize; 3],
    /// Images per row.
    pub columns: usize,
    /// The images; `None` leaves a cell blank.
    pub images: Vec<Option<&'a [u8]>>,
}

impl<'a> Grid<'a> {
    /// One row per class of `dataset`: the first `per_class` of the images at `indices` with
    /// that label, left to right (blank cells where a class has fewer).
    ///
    /// # Examples
    /// ```
    /// use ferd::data::ImageDataset;
    /// use ferd::images::Grid;
    ///
    /// let data = ImageDataset::new("toy", vec![10, 20, 30], vec![1, 0, 1], [1, 1, 1],
    ///     vec!["a".into(), "b".into()]).unwrap();
    /// let grid = Grid::per_class(&data, 0..3, 2);
    /// let cells: Vec<Option<u8>> = grid.images.iter().map(|i| i.map(|p| p[0])).collect();
    /// assert_eq!(cells, [Some(20), None, Some(10), Some(30)]);
    /// ```
    pub fn per_class(
        dataset: &'a ImageDataset,
        indices: impl IntoIterator<Item = usize> + Clone,
        per_class: usize,
    ) -> Self {
        let mut images = Vec::new();
        for class in 0..dataset.num_classes() {
            let mut row: Vec<Option<&[u8]>> = indices
                .clone()
                .into_iter()
                .filter(|&i| dataset.labels()[i] == class)
                .take(per_class)
                .map(|i| Some(dataset.image(i)))
                .collect();
            row.resize(per_class, None);
            images.extend(row);
        }
        Self {
            image_shape: dataset.image_shape(),
            columns: per_class,
            images,
        }
    }

    /// Renders the grid (1-pixel gaps) and writes it as an 8-bit grey or RGB PNG.
    pub fn save_png(&self, path: &Path) -> Result<(u32, u32), ImageError> {
        let [c, h, w] = self.image_shape;
        if !(c == 1 || c == 3) || h == 0 || w == 0 || self.columns == 0 || self.images.is_empty() {
            return Err(ImageError::Layout(format!(
                "{} images of shape {:?} in {} columns",
                self.images.len(),
                self.image_shape,
                self.columns
            )));
        }
        if let Some(bad) = self
            .images
            .iter()
            .flatten()
            .find(|img| img.len() != c * h * w)
        {
            return Err(ImageError::Layout(format!(
                "an image of {} bytes, expected {}",
                bad.len(),
                c * h * w
            )));
        }
        let rows = self.images.len().div_ceil(self.columns);
        let (width, height) = (self.columns * (w + 1) + 1, rows * (h + 1) + 1);
        let mut canvas = vec![64u8; width * height * c];
        for (k, image) in self.images.iter().enumerate() {
            let Some(image) = image else { continue };
            let (top, left) = (
                (k / self.columns) * (h + 1) + 1,
                (k % self.columns) * (w + 1) + 1,
            );
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        canvas[((top + y) * width + left + x) * c + ch] =
                            image[(ch * h + y) * w + x];
                    }
                }
            }
        }
        let fail = |reason: String| ImageError::Write {
            path: path.display().to_string(),
            reason,
        };
        let file = File::create(path).map_err(|e| fail(e.to_string()))?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
        encoder.set_color(if c == 1 {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        });
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().map_err(|e| fail(e.to_string()))?;
        writer
            .write_image_data(&canvas)
            .map_err(|e| fail(e.to_string()))?;
        writer.finish().map_err(|e| fail(e.to_string()))?;
        Ok((width as u32, height as u32))
    }
}
