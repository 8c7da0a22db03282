//! The CIFAR-10 and CIFAR-100 binary formats.
//!
//! CIFAR-10 (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`): records of 1 label byte
//! then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32 row-major), i.e. already
//! CHW. CIFAR-100 (`train.bin`, `test.bin`): records of a coarse label byte, a fine label byte,
//! then the same 3072 pixel bytes.

use std::path::Path;

use crate::error::{DataError, Result, corrupt};

/// Bytes of one CIFAR image (3 x 32 x 32).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// The CIFAR-10 class names, in label order.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Which CIFAR-100 label to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cifar100Labels {
    /// The 100 fine classes.
    Fine,
    /// The 20 superclasses.
    Coarse,
}

impl Cifar100Labels {
    /// Number of classes of this labelling.
    pub fn classes(self) -> usize {
        match self {
            Self::Fine => 100,
            Self::Coarse => 20,
        }
    }
}

/// Images (CHW bytes, concatenated) and labels read from CIFAR files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CifarRecords {
    /// `labels.len() * IMAGE_BYTES` bytes.
    pub images: Vec<u8>,
    /// One label per image.
    pub labels: Vec<usize>,
}

/// Reads one CIFAR-10 batch file.
pub fn read_cifar10(path: &Path) -> Result<CifarRecords> {
    read_records(path, 1, |label_bytes| label_bytes[0] as usize, 10)
}

/// Reads one CIFAR-100 file with the chosen labels.
pub fn read_cifar100(path: &Path, labels: Cifar100Labels) -> Result<CifarRecords> {
    let position = match labels {
        Cifar100Labels::Coarse => 0,
        Cifar100Labels::Fine => 1,
    };
    read_records(
        path,
        2,
        |label_bytes| label_bytes[position] as usize,
        labels.classes(),
    )
}

fn read_records(
    path: &Path,
    label_bytes: usize,
    label_of: impl Fn(&[u8]) -> usize,
    classes: usize,
) -> Result<CifarRecords> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.into(),
        source,
    })?;
    let record = label_bytes + IMAGE_BYTES;
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(corrupt(
            path,
            format!(
                "{} bytes is not a whole number of {record}-byte records (truncated or not a \
                 CIFAR-{classes} binary file)",
                bytes.len()
            ),
        ));
    }
    let count = bytes.len() / record;
    let mut out = CifarRecords {
        images: Vec::with_capacity(count * IMAGE_BYTES),
        labels: Vec::with_capacity(count),
    };
    for (index, chunk) in bytes.chunks_exact(record).enumerate() {
        let label = label_of(&chunk[..label_bytes]);
        if label >= classes {
            return Err(corrupt(
                path,
                format!("record {index} has label {label}, but there are {classes} classes"),
            ));
        }
        out.labels.push(label);
        out.images.extend_from_slice(&chunk[label_bytes..]);
    }
    Ok(out)
}

impl CifarRecords {
    /// Appends the records of another file.
    pub fn extend(&mut self, other: CifarRecords) {
        self.images.extend(other.images);
        self.labels.extend(other.labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ferd-cifar-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn record(labels: &[u8], fill: u8) -> Vec<u8> {
        let mut r = labels.to_vec();
        r.extend(std::iter::repeat_n(fill, IMAGE_BYTES));
        r
    }

    #[test]
    fn reads_cifar10_records() {
        let bytes = [record(&[3], 7), record(&[9], 1)].concat();
        let out = read_cifar10(&write("ok10.bin", &bytes)).unwrap();
        assert_eq!(out.labels, vec![3, 9]);
        assert_eq!(out.images.len(), 2 * IMAGE_BYTES);
        assert_eq!(out.images[IMAGE_BYTES], 1);
    }

    #[test]
    fn reads_both_cifar100_labels() {
        let path = write(
            "ok100.bin",
            &[record(&[19, 99], 0), record(&[0, 42], 0)].concat(),
        );
        assert_eq!(
            read_cifar100(&path, Cifar100Labels::Coarse).unwrap().labels,
            vec![19, 0]
        );
        assert_eq!(
            read_cifar100(&path, Cifar100Labels::Fine).unwrap().labels,
            vec![99, 42]
        );
    }

    #[test]
    fn rejects_truncated_and_bad_labels() {
        let mut bytes = record(&[1], 0);
        bytes.pop();
        let err = read_cifar10(&write("short.bin", &bytes)).unwrap_err();
        assert!(matches!(err, DataError::Corrupt { ref reason, .. } if reason.contains("records")));
        let err = read_cifar10(&write("label.bin", &record(&[10], 0))).unwrap_err();
        assert!(
            matches!(err, DataError::Corrupt { ref reason, .. } if reason.contains("label 10"))
        );
        let err = read_cifar100(
            &write("c100.bin", &record(&[20, 5], 0)),
            Cifar100Labels::Coarse,
        );
        assert!(err.is_err());
        // A CIFAR-10 file read as CIFAR-100 does not divide into 3074-byte records.
        let ten = write("ten.bin", &[record(&[1], 0), record(&[2], 0)].concat());
        assert!(read_cifar100(&ten, Cifar100Labels::Fine).is_err());
        let missing = read_cifar10(Path::new("/nonexistent/ferd.bin")).unwrap_err();
        assert!(matches!(missing, DataError::Io { .. }));
    }
}
