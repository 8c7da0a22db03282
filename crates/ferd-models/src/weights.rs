//! Weights in and out: PyTorch checkpoints (`.pt`/`.pth`) and SafeTensors files written by
//! PyTorch, and Burn's own burnpack format (`.bpk`) and SafeTensors for ferd's models.
//!
//! PyTorch state dicts load one to one: each architecture lists how its PyTorch names differ
//! from its Burn field names ([`PyTorchLayout`]); Burn's store applies the usual adapter (linear
//! weights transposed, BatchNorm `weight`/`bias` to `gamma`/`beta`). Checkpoints wrapped as
//! `{"state_dict": ...}` or `{"model_state_dict": ...}`, and DataParallel's `module.` prefixes,
//! are unwrapped. A checkpoint that does not fit — a missing parameter, an unexpected tensor, a
//! wrong shape — is an error naming every offending key; PyTorch's `num_batches_tracked`
//! counters are the only keys ignored.

use std::path::Path;

use burn::store::{
    ApplyError, ApplyResult, BurnpackStore, ModuleSnapshot, PytorchStore, SafetensorsStore,
};

use crate::error::{ModelError, ShapeDifference};

/// How a model's PyTorch state-dict names map to its Burn names: `(regex, replacement)` pairs
/// applied in order to every key.
pub trait PyTorchLayout {
    /// The key renamings from the PyTorch definition's names to ferd's, e.g.
    /// `(r"\.shortcut\.0\.", ".shortcut.conv.")`. Reversed, they name the tensors of
    /// [`save_pytorch`].
    fn pytorch_renames(&self) -> &'static [(&'static str, &'static str)];

    /// Other layouts' names accepted on load only (not written by [`save_pytorch`]), e.g. the
    /// FERD repository's MobileNet-V2 head `fc`.
    fn pytorch_aliases(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}

/// A user's key renaming for [`load_pytorch_with`]: a regular expression on the file's keys and
/// its replacement (`$1` for groups), applied before ferd's own renamings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRename {
    /// The pattern (Rust `regex` syntax).
    pub pattern: String,
    /// The replacement.
    pub replacement: String,
}

impl std::str::FromStr for KeyRename {
    type Err = ModelError;

    /// `PATTERN=REPLACEMENT`, as `--rename` takes it on the command line; an invalid regular
    /// expression is an error here, not a panic later.
    fn from_str(text: &str) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::InvalidArgument {
            what: "key rename".into(),
            detail: reason,
        };
        let (pattern, replacement) = text
            .split_once('=')
            .ok_or_else(|| bad(format!("`{text}` is not PATTERN=REPLACEMENT")))?;
        burn::store::KeyRemapper::new()
            .add_pattern(pattern, replacement)
            .map_err(|e| bad(format!("`{pattern}`: {e}")))?;
        Ok(Self {
            pattern: pattern.to_string(),
            replacement: replacement.to_string(),
        })
    }
}

/// Renames shared by every layout: wrappers of training checkpoints and DataParallel.
const UNWRAP: [(&str, &str); 3] = [
    (r"^(model_state_dict|state_dict|model)\.", ""),
    (r"^module\.", ""),
    (r"^_orig_mod\.", ""),
];

/// Which file format a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    /// A PyTorch pickle (`.pt`, `.pth`).
    PyTorch,
    /// SafeTensors (`.safetensors`).
    SafeTensors,
    /// Burn's burnpack (`.bpk`).
    Burnpack,
}

impl WeightFormat {
    /// The format of `path`, from its extension.
    pub fn of(path: &Path) -> Result<Self, ModelError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("pt" | "pth") => Ok(Self::PyTorch),
            Some("safetensors") => Ok(Self::SafeTensors),
            Some("bpk") => Ok(Self::Burnpack),
            _ => Err(ModelError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

fn read_error(path: &Path, err: impl std::fmt::Display) -> ModelError {
    ModelError::Read {
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}

/// Turns Burn's apply report into an error naming every problem, or `Ok` when everything fit.
fn check(path: &Path, result: ApplyResult) -> Result<(), ModelError> {
    let mut problems: Vec<String> = result.errors.iter().map(ToString::to_string).collect();
    problems.extend(
        result
            .missing
            .iter()
            .map(|(key, _)| format!("missing in the file: {key}")),
    );
    problems.extend(
        result
            .unused
            .iter()
            .filter(|key| !key.ends_with("num_batches_tracked"))
            .map(|key| format!("unexpected in the file: {key}")),
    );
    let differences = result
        .errors
        .iter()
        .filter_map(|error| match error {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => Some(ShapeDifference {
                name: path.clone(),
                expected: expected.to_vec(),
                found: found.to_vec(),
            }),
            _ => None,
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            problems,
            differences,
            fits: None,
        })
    }
}

/// Loads a PyTorch state dict (`.pt`/`.pth` or `.safetensors`) into a ferd model.
pub fn load_pytorch<M: ModuleSnapshot + PyTorchLayout>(
    model: &mut M,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    load_pytorch_with(model, path, &[])
}

/// [`load_pytorch`] with the user's key renamings applied first, for checkpoints whose names
/// follow neither ferd's PyTorch definitions nor a layout ferd knows.
///
/// # Examples
/// ```no_run
/// use ferd_models::weights::{KeyRename, load_pytorch_with};
/// use ferd_models::zoo::Architecture;
///
/// let device = ferd_core::DeviceSpec::Flex.device().unwrap();
/// let mut model = Architecture::RESNET18.build(3, 10, &device);
/// let rename: KeyRename = r"^backbone\.=".parse().unwrap(); // drop a `backbone.` prefix
/// load_pytorch_with(&mut model, "resnet18.pt", &[rename]).unwrap();
/// ```
pub fn load_pytorch_with<M: ModuleSnapshot + PyTorchLayout>(
    model: &mut M,
    path: impl AsRef<Path>,
    user: &[KeyRename],
) -> Result<(), ModelError> {
    let path = path.as_ref();
    WeightFormat::of(path)?;
    FileStart::read(path)?.check_not_a_web_page(path)?;
    let renames: Vec<(&str, &str)> = user
        .iter()
        .map(|r| (r.pattern.as_str(), r.replacement.as_str()))
        .chain(UNWRAP.iter().copied())
        .chain(model.pytorch_aliases().iter().copied())
        .chain(model.pytorch_renames().iter().copied())
        .collect();
    // Both stores have the same builder methods but no common trait: configure them alike here.
    macro_rules! pytorch_layout {
        ($store:expr) => {{
            let mut store = $store
                .allow_partial(true)
                .validate(false)
                .skip_enum_variants(true)
                .map_indices_contiguous(false);
            for &(from, to) in &renames {
                store = store.with_key_remapping(from, to);
            }
            model
                .load_from(&mut store)
                .map_err(|e| read_error(path, e))?
        }};
    }
    let result = match WeightFormat::of(path)? {
        WeightFormat::PyTorch => pytorch_layout!(PytorchStore::from_file(path)),
        WeightFormat::SafeTensors => {
            pytorch_layout!(
                SafetensorsStore::from_file(path)
                    .with_from_adapter(burn::store::PyTorchToBurnAdapter)
            )
        }
        WeightFormat::Burnpack => {
            return Err(read_error(
                path,
                "a burnpack file holds Burn names: use load_weights",
            ));
        }
    };
    check(path, result)
}

/// The renaming from ferd's names back to the PyTorch definition's: `(r"\.shortcut\.0\.",
/// ".shortcut.conv.")` becomes `(r"\.shortcut\.conv\.", ".shortcut.0.")`. Patterns are plain
/// names with escaped dots and an optional `^` anchor (every layout of ferd's zoo).
fn reversed(pattern: &str, replacement: &str) -> (String, String) {
    let (anchor, literal) = match pattern.strip_prefix('^') {
        Some(rest) => ("^", rest),
        None => ("", pattern),
    };
    let from = format!("{anchor}{}", replacement.replace('.', r"\."));
    (from, literal.replace(r"\.", "."))
}

/// Saves a model in its PyTorch definition's layout (state-dict names, weights transposed as
/// PyTorch stores them) as SafeTensors, so that `load_state_dict` (or RobustBench tooling) reads
/// a model distilled by ferd. Save `model.valid()`. Only `.safetensors`: writing PyTorch's
/// pickle format is not supported by burn-store.
pub fn save_pytorch<M: ModuleSnapshot + PyTorchLayout>(
    model: &M,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    let path = path.as_ref();
    let write_error = |e: String| ModelError::Write {
        path: path.to_path_buf(),
        reason: e,
    };
    if WeightFormat::of(path)? != WeightFormat::SafeTensors {
        return Err(write_error(
            "PyTorch-layout weights are written as .safetensors only".into(),
        ));
    }
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .skip_enum_variants(true)
        .with_to_adapter(burn::store::BurnToPyTorchAdapter);
    for (pattern, replacement) in model.pytorch_renames() {
        let (from, to) = reversed(pattern, replacement);
        store = store.with_key_remapping(from, to);
    }
    model
        .save_into(&mut store)
        .map_err(|e| write_error(e.to_string()))
}

/// Saves a model in Burn's names, as burnpack (`.bpk`) or SafeTensors (`.safetensors`). Save
/// `model.valid()`: a training module may not hold the last BatchNorm update.
pub fn save_weights<M: ModuleSnapshot>(
    model: &M,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    let path = path.as_ref();
    let write_error = |e: String| ModelError::Write {
        path: path.to_path_buf(),
        reason: e,
    };
    match WeightFormat::of(path)? {
        WeightFormat::Burnpack => model
            .save_into(&mut BurnpackStore::from_file(path).overwrite(true))
            .map_err(|e| write_error(e.to_string())),
        WeightFormat::SafeTensors => model
            .save_into(&mut SafetensorsStore::from_file(path).overwrite(true))
            .map_err(|e| write_error(e.to_string())),
        WeightFormat::PyTorch => Err(write_error(
            "writing PyTorch pickles is not supported; use .safetensors".into(),
        )),
    }
}

/// The first bytes of a weights file and its length, read once for the checks below.
struct FileStart {
    bytes: Vec<u8>,
    len: u64,
}

/// Bytes of a file's start that the checks look at.
const SNIFF_BYTES: u64 = 512;

impl FileStart {
    fn read(path: &Path) -> Result<Self, ModelError> {
        use std::io::Read;
        let mut bytes = Vec::with_capacity(SNIFF_BYTES as usize);
        let file = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
        let len = file.metadata().map_err(|e| read_error(path, e))?.len();
        file.take(SNIFF_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| read_error(path, e))?;
        Ok(Self { bytes, len })
    }

    /// Refuses an empty file, and a web page saved under a weights file's name (the most
    /// common failed download: a login, error or redirect page), with an error that says so.
    fn check_not_a_web_page(&self, path: &Path) -> Result<(), ModelError> {
        if self.bytes.is_empty() {
            return Err(read_error(path, "the file is empty"));
        }
        let text = String::from_utf8_lossy(&self.bytes).to_ascii_lowercase();
        let trimmed = text.trim_start();
        if trimmed.starts_with("<!doctype html")
            || trimmed.starts_with("<html")
            || text.contains("<head>")
        {
            return Err(read_error(
                path,
                "this is an HTML page, not a weights file: the download probably failed (a \
                 login, error or redirect page was saved instead)",
            ));
        }
        Ok(())
    }

    /// Checks a burnpack header against the file's length before Burn's reader sees it: the
    /// reader allocates the metadata length the header claims (up to 100 MiB) before it reads,
    /// so a corrupt or truncated file would otherwise cost that much memory and end in a bare
    /// "failed to fill whole buffer".
    fn check_burnpack_header(&self, path: &Path) -> Result<(), ModelError> {
        let fail = |reason: String| read_error(path, reason);
        let Some(header) = self.bytes.get(..BURNPACK_HEADER) else {
            return Err(fail(format!(
                "{} bytes is too short for a burnpack header (truncated, or not a burnpack file)",
                self.len
            )));
        };
        if header[..4] != BURNPACK_MAGIC {
            return Err(fail("not a burnpack file: bad magic number".into()));
        }
        let metadata = u32::from_le_bytes([header[6], header[7], header[8], header[9]]) as u64;
        let available = self.len - BURNPACK_HEADER as u64;
        if metadata > available {
            return Err(fail(format!(
                "truncated or corrupt burnpack: its header announces {metadata} bytes of \
                 metadata, the file has {available} after the header"
            )));
        }
        Ok(())
    }
}

/// The fixed header of a burnpack file: magic number, format version, metadata length.
const BURNPACK_MAGIC: [u8; 4] = *b"NRUB";
const BURNPACK_HEADER: usize = 4 + 2 + 4;

/// Loads weights saved by [`save_weights`] (Burn's names).
pub fn load_weights<M: ModuleSnapshot>(
    model: &mut M,
    path: impl AsRef<Path>,
) -> Result<(), ModelError> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(read_error(path, "no such file"));
    }
    let start = FileStart::read(path)?;
    start.check_not_a_web_page(path)?;
    let result = match WeightFormat::of(path)? {
        WeightFormat::Burnpack => {
            start.check_burnpack_header(path)?;
            model.load_from(
                &mut BurnpackStore::from_file(path)
                    .allow_partial(true)
                    .validate(false),
            )
        }
        .map_err(|e| read_error(path, e))?,
        WeightFormat::SafeTensors => model
            .load_from(
                &mut SafetensorsStore::from_file(path)
                    .allow_partial(true)
                    .validate(false),
            )
            .map_err(|e| read_error(path, e))?,
        WeightFormat::PyTorch => return Err(read_error(path, "a PyTorch file: use load_pytorch")),
    };
    check(path, result)
}
