//! Datasets for ferd: readers for the IDX (MNIST, Fashion-MNIST) and CIFAR binary formats, an
//! in-memory image dataset with seeded shuffling and batching onto any Burn device, seeded
//! on-device augmentation, and the logic that finds a dataset on disk.
//!
//! Every reader validates what it reads: a truncated, corrupt or mismatched file is a
//! [`DataError`] naming the file and what is wrong.

pub mod augment;
pub mod cifar;
pub mod dataset;
pub mod error;
pub mod idx;
pub mod locate;

pub use augment::Augment;
pub use dataset::{Batch, ImageDataset, Order};
pub use error::DataError;
pub use locate::{DatasetName, Split, load};
