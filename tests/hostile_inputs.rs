//! Hostile inputs: every reader of untrusted bytes is fed thousands of seeded mutations of a real
//! file (truncations, bit flips, byte and header edits with huge values, deleted and repeated
//! spans, appended garbage). Each read must return `Ok` or a typed error that names the file:
//! no panic, and no single allocation larger than the file justifies (a header claiming 2^40
//! images must not allocate them).
//!
//! The readers: IDX raw and gzip (`ferd_data::idx`), CIFAR-10 and CIFAR-100 binaries, burnpack,
//! SafeTensors and PyTorch `.pt` weights (`ferd_models::weights`), a FERD config and an
//! evaluation report (JSON). A failing mutation is printed with its seed, so it can be replayed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use ferd::attacks::EvaluationReport;
use ferd::core::device::test_device;
use ferd::core::random::rng;
use ferd::data::cifar::{Cifar100Labels, IMAGE_BYTES, read_cifar10, read_cifar100};
use ferd::data::idx::{IdxArray, encode_idx, read_idx};
use ferd::distill::{Budget, FerdConfig, FerdMethod};
use ferd::models::generator::GeneratorConfig;
use ferd::models::small_cnn::SmallCnnConfig;
use ferd::models::{Architecture, load_pytorch, load_weights};
use rand::Rng;
use rand::rngs::StdRng;

/// The global allocator, which records the largest single request made on each thread.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// The message of the last panic on this thread (the hook below stores it there instead of
    /// printing thousands of expected backtraces).
    static PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn record_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Inside a read (`Some`), keep the message; elsewhere (the test's own assertions)
            // print as usual.
            let kept = PANIC.try_with(|p| match p.borrow_mut().as_mut() {
                Some(slot) => {
                    *slot = info.to_string();
                    true
                }
                None => false,
            });
            if kept != Ok(true) {
                default(info);
            }
        }));
    });
}

fn note(size: usize) {
    // `try_with`: allocations during thread teardown must not touch a destroyed slot.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; `note` only records a size
// in a thread-local `Cell` (const-initialized, so it never allocates).
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Mutations per reader, each a fresh seeded draw: 50,000 reads in all, about 15 s.
const MUTATIONS: u64 = 5_000;

/// The largest single allocation a read may make: the real file's size (plus its decompressed
/// size for gzip) times this factor, plus a fixed allowance for parsers' tables. Growth by
/// doubling of a buffer the size of the file stays well within it; a header taken at its word
/// does not.
const ALLOCATION_FACTOR: usize = 8;
const ALLOCATION_SLACK: usize = 1 << 20;

/// Huge values written over headers: counts and lengths that no file of this size can hold.
const HUGE: [u64; 7] = [
    u32::MAX as u64,
    0x7FFF_FFFF,
    1 << 30,
    1 << 40,
    u64::MAX,
    i64::MAX as u64,
    0,
];

/// One edit of a file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    /// Keep the first `len` bytes.
    Truncate { len: usize },
    /// Flip these bits (byte offset, bit).
    FlipBits { bits: Vec<(usize, u8)> },
    /// Overwrite one byte.
    SetByte { at: usize, value: u8 },
    /// Overwrite 4 bytes with a big- or little-endian `u32`.
    Write32 {
        at: usize,
        value: u32,
        big_endian: bool,
    },
    /// Overwrite 8 bytes with a little-endian `u64`.
    Write64 { at: usize, value: u64 },
    /// Remove a span.
    Delete { at: usize, len: usize },
    /// Insert a copy of a span right after it.
    Repeat { at: usize, len: usize },
    /// Append random bytes.
    Append { bytes: Vec<u8> },
    /// Replace the first run of ASCII digits at or after `at` with a huge number.
    HugeNumber { at: usize, digits: &'static str },
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FlipBits { bits } => {
                write!(f, "FlipBits({} bits, first {:?})", bits.len(), bits[0])
            }
            Self::Append { bytes } => write!(f, "Append({} bytes)", bytes.len()),
            other => write!(f, "{other:?}"),
        }
    }
}

/// A position in the file: its header region (the first 64 bytes), its last 256 bytes (zip
/// central directories, trailing records) or anywhere, with equal odds.
fn position(rng: &mut StdRng, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    match rng.random_range(0..3) {
        0 => rng.random_range(0..len.min(64)),
        1 => rng.random_range(len.saturating_sub(256)..len),
        _ => rng.random_range(0..len),
    }
}

fn draw(rng: &mut StdRng, len: usize) -> Mutation {
    let at = position(rng, len);
    let huge = HUGE[rng.random_range(0..HUGE.len())];
    match rng.random_range(0..9) {
        0 => Mutation::Truncate {
            len: rng.random_range(0..len.max(1)),
        },
        1 => Mutation::FlipBits {
            bits: (0..rng.random_range(1..=8))
                .map(|_| (position(rng, len), rng.random_range(0..8)))
                .collect(),
        },
        2 => Mutation::SetByte {
            at,
            value: rng.random(),
        },
        3 => Mutation::Write32 {
            at,
            value: if rng.random() {
                huge as u32
            } else {
                rng.random()
            },
            big_endian: rng.random(),
        },
        4 => Mutation::Write64 {
            at,
            value: if rng.random() { huge } else { rng.random() },
        },
        5 => Mutation::Delete {
            at,
            len: rng.random_range(1..=64),
        },
        6 => Mutation::Repeat {
            at,
            len: rng.random_range(1..=64),
        },
        7 => Mutation::Append {
            bytes: (0..rng.random_range(1..=64))
                .map(|_| rng.random())
                .collect(),
        },
        _ => Mutation::HugeNumber {
            at,
            digits: ["99999999999999999999999", "4294967296", "1e308", "-1"]
                [rng.random_range(0..4)],
        },
    }
}

fn overwrite(bytes: &mut [u8], at: usize, new: &[u8]) {
    let end = (at + new.len()).min(bytes.len());
    let at = at.min(end);
    bytes[at..end].copy_from_slice(&new[..end - at]);
}

fn apply(original: &[u8], mutation: &Mutation) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let len = bytes.len();
    match mutation {
        Mutation::Truncate { len } => bytes.truncate(*len),
        Mutation::FlipBits { bits } => {
            for &(at, bit) in bits {
                if at < len {
                    bytes[at] ^= 1 << bit;
                }
            }
        }
        Mutation::SetByte { at, value } => overwrite(&mut bytes, *at, &[*value]),
        Mutation::Write32 {
            at,
            value,
            big_endian,
        } => {
            let new = if *big_endian {
                value.to_be_bytes()
            } else {
                value.to_le_bytes()
            };
            overwrite(&mut bytes, *at, &new);
        }
        Mutation::Write64 { at, value } => overwrite(&mut bytes, *at, &value.to_le_bytes()),
        Mutation::Delete { at, len: span } => {
            let end = (at + span).min(len);
            bytes.drain(*at.min(&end)..end);
        }
        Mutation::Repeat { at, len: span } => {
            let end = (at + span).min(len);
            let copy = bytes[*at.min(&end)..end].to_vec();
            bytes.splice(end..end, copy);
        }
        Mutation::Append { bytes: extra } => bytes.extend_from_slice(extra),
        Mutation::HugeNumber { at, digits } => {
            if let Some(start) = (*at..len).find(|&i| bytes[i].is_ascii_digit()) {
                let end = (start..len)
                    .find(|&i| !bytes[i].is_ascii_digit())
                    .unwrap_or(len);
                bytes.splice(start..end, digits.bytes());
            }
        }
    }
    bytes
}

/// What one reader did with the mutated files.
#[derive(Debug, Default)]
struct Tally {
    accepted: u64,
    rejected: u64,
    panics: Vec<String>,
    unnamed: Vec<String>,
    oversized: Vec<String>,
    largest: usize,
}

/// Feeds `MUTATIONS` mutations of `original` to `read` (through a file named `name`) and checks
/// each outcome. `decoded` is how many bytes the real file legitimately expands to (gzip).
fn fuzz(
    name: &str,
    original: &[u8],
    decoded: usize,
    read: impl Fn(&Path) -> Result<(), String>,
) -> Tally {
    let dir = std::env::temp_dir().join(format!("ferd-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join(name);
    let limit = ALLOCATION_FACTOR * (original.len() + decoded) + ALLOCATION_SLACK;
    record_panics();
    let mut tally = Tally::default();
    // The real file itself must read.
    std::fs::write(&path, original).unwrap();
    read(&path).unwrap_or_else(|e| panic!("{name}: the unmutated file fails: {e}"));
    for seed in 0..MUTATIONS {
        let mut rng = rng(seed);
        let mutation = draw(&mut rng, original.len());
        let bytes = apply(original, &mutation);
        std::fs::write(&path, &bytes).unwrap();
        let label = format!("{name} seed {seed}: {mutation}");
        LARGEST.with(|l| l.set(0));
        PANIC.with(|p| *p.borrow_mut() = Some(String::new()));
        let outcome = catch_unwind(AssertUnwindSafe(|| read(&path)));
        let message = PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
        let largest = LARGEST.with(Cell::get);
        tally.largest = tally.largest.max(largest);
        if largest > limit {
            tally.oversized.push(format!(
                "{label}: allocated {largest} bytes (limit {limit})"
            ));
        }
        match outcome {
            Ok(Ok(())) => tally.accepted += 1,
            Ok(Err(message)) => {
                tally.rejected += 1;
                if !message.contains(name) {
                    tally.unnamed.push(format!("{label}: {message}"));
                }
            }
            Err(_) => tally.panics.push(format!("{label}: {message}")),
        }
    }
    let _ = std::fs::remove_file(&path);
    eprintln!(
        "{name}: {MUTATIONS} mutations, {} read, {} rejected, {} panics, largest allocation {} \
         bytes (file {} bytes)",
        tally.accepted,
        tally.rejected,
        tally.panics.len(),
        tally.largest,
        original.len()
    );
    tally
}

fn assert_clean(tally: &Tally) {
    let show = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join("\n  ");
    assert!(
        tally.panics.is_empty(),
        "{} panics:\n  {}",
        tally.panics.len(),
        show(&tally.panics)
    );
    assert!(
        tally.oversized.is_empty(),
        "oversized allocations:\n  {}",
        show(&tally.oversized)
    );
    assert!(
        tally.unnamed.is_empty(),
        "errors that do not name the file:\n  {}",
        show(&tally.unnamed)
    );
    assert!(tally.rejected > 0, "no mutation was rejected");
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The real Fashion-MNIST test labels, raw IDX bytes (10,008 bytes).
fn real_labels() -> Vec<u8> {
    let array = read_idx(&repo("data/fashion-mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    encode_idx(&array)
}

#[test]
fn idx_raw_reader() {
    // The first 40 images of the real test set, as a raw IDX file of its format.
    let images = read_idx(&repo("data/fashion-mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    let side = images.dims[1] * images.dims[2];
    let first = IdxArray {
        dims: vec![40, images.dims[1], images.dims[2]],
        data: images.data[..40 * side].to_vec(),
    };
    let tally = fuzz("images-idx3-ubyte", &encode_idx(&first), 0, |path| {
        read_idx(path).map(drop).map_err(|e| e.to_string())
    });
    assert_clean(&tally);
    let tally = fuzz("labels-idx1-ubyte", &real_labels(), 0, |path| {
        read_idx(path).map(drop).map_err(|e| e.to_string())
    });
    assert_clean(&tally);
}

#[test]
fn idx_gzip_reader() {
    // The real gzip file as shipped (5,125 bytes, 10,008 decompressed).
    let original = std::fs::read(repo("data/fashion-mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
    let tally = fuzz(
        "labels-idx1-ubyte.gz",
        &original,
        real_labels().len(),
        |path| read_idx(path).map(drop).map_err(|e| e.to_string()),
    );
    assert_clean(&tally);
}

#[test]
fn cifar_readers() {
    let original = std::fs::read(repo("data/cifar10-first20/test_batch_first20.bin")).unwrap();
    let tally = fuzz("test_batch.bin", &original, 0, |path| {
        read_cifar10(path).map(drop).map_err(|e| e.to_string())
    });
    assert_clean(&tally);
    // CIFAR-100's layout (coarse label, fine label, pixels), built from the same real records.
    let cifar100: Vec<u8> = original
        .chunks_exact(1 + IMAGE_BYTES)
        .enumerate()
        .flat_map(|(i, record)| {
            let mut out = vec![(i % 20) as u8, (i * 7 % 100) as u8];
            out.extend_from_slice(&record[1..]);
            out
        })
        .collect();
    let tally = fuzz("test.bin", &cifar100, 0, |path| {
        read_cifar100(path, Cifar100Labels::Fine)
            .map(drop)
            .map_err(|e| e.to_string())
    });
    assert_clean(&tally);
}

#[test]
fn burnpack_reader() {
    // The bundled teacher, as written by ferd.
    let original = std::fs::read(repo("models/fmnist-small-teacher/teacher.bpk")).unwrap();
    let device = test_device();
    let tally = fuzz("teacher.bpk", &original, 0, |path| {
        let mut model = Architecture::SmallCnn { width: 16 }.build(1, 10, &device);
        load_weights(&mut model, path).map_err(|e| e.to_string())
    });
    assert_clean(&tally);
}

#[test]
fn safetensors_reader() {
    // A small CNN saved by PyTorch's safetensors.
    let original = std::fs::read(repo(
        "crates/ferd-attacks/tests/fixtures/small_cnn_w8.safetensors",
    ))
    .unwrap();
    let device = test_device();
    let tally = fuzz("small_cnn_w8.safetensors", &original, 0, |path| {
        let mut model = SmallCnnConfig::new().with_width(8).init(&device);
        load_pytorch(&mut model, path).map_err(|e| e.to_string())
    });
    assert_clean(&tally);
}

#[test]
fn pytorch_pickle_reader() {
    // A DCGAN generator saved by `torch.save(model.state_dict())`.
    let original = std::fs::read(repo("crates/ferd-models/tests/fixtures/generator.pt")).unwrap();
    let device = test_device();
    let tally = fuzz("generator.pt", &original, 0, |path| {
        let mut model = GeneratorConfig::new()
            .with_latent(16)
            .with_ngf(8)
            .init(&device, 0);
        load_pytorch(&mut model, path).map_err(|e| e.to_string())
    });
    assert_clean(&tally);
}

#[test]
fn json_readers() {
    let config =
        serde_json::to_vec_pretty(&FerdConfig::preset(Budget::Fmnist, FerdMethod::Ferd)).unwrap();
    let tally = fuzz("config.json", &config, 0, |path| {
        FerdConfig::read(path).map(drop).map_err(|e| e.to_string())
    });
    assert_clean(&tally);
    // The bundled teacher's evaluation report, as written by ferd.
    let report = std::fs::read(repo("models/fmnist-small-teacher/eval_test10k.json")).unwrap();
    let tally = fuzz("eval_test10k.json", &report, 0, |path| {
        // A report that reads must also print.
        EvaluationReport::read(path)
            .map(|r| {
                drop(ferd::report::markdown(&[ferd::report::Entry::new(
                    "fuzzed", &r,
                )]))
            })
            .map_err(|e| e.to_string())
    });
    assert_clean(&tally);
}

/// The two most reported checkpoint failures: a web page saved by a failed download, and a file
/// cut short. Both get an error that says what happened, in every weight format.
#[test]
fn web_pages_and_truncated_checkpoints_say_so() {
    let dir = std::env::temp_dir().join(format!("ferd-hostile-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let device = test_device();
    let page = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body></body></html>\n";
    let model = || Architecture::SmallCnn { width: 16 }.build(1, 10, &device);
    let load = |path: &Path| {
        let bpk = path.extension().is_some_and(|e| e == "bpk");
        let result = if bpk {
            load_weights(&mut model(), path)
        } else {
            load_pytorch(&mut model(), path)
        };
        result.unwrap_err().to_string()
    };
    for name in ["teacher.bpk", "teacher.pt", "teacher.safetensors"] {
        let path = dir.join(name);
        std::fs::write(&path, page).unwrap();
        let err = load(&path);
        assert!(
            err.contains("HTML page") && err.contains(name),
            "{name}: {err}"
        );
        std::fs::write(&path, "").unwrap();
        let err = load(&path);
        assert!(err.contains("empty") && err.contains(name), "{name}: {err}");
    }
    let real = std::fs::read(repo("models/fmnist-small-teacher/teacher.bpk")).unwrap();
    let path = dir.join("cut.bpk");
    for keep in [4, 9, 100, 2000, real.len() / 2, real.len() - 1] {
        std::fs::write(&path, &real[..keep]).unwrap();
        let err = load(&path);
        assert!(
            err.contains("cut.bpk") && (err.contains("truncated") || err.contains("too short")),
            "cut at {keep}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
