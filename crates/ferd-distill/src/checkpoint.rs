//! Checkpoints of a training run: a folder holding the model, the optimizer state, the
//! parameter ids the optimizer state is keyed by, and the loop's own state as JSON. A
//! checkpoint is written to a temporary folder and swapped in with renames, so an interruption
//! leaves either the previous checkpoint or the new one, never a mix.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::store::ModuleSnapshot;
use burn::tensor::Tensor;
use ferd_models::weights::{load_weights, save_weights};

use crate::error::{DistillError, Result, io_error};

/// Saves a model under training and its optimizer into a checkpoint folder as `NAME.bpk`,
/// `NAME.optimizer.bpk` and `NAME.ids.json` (the parameter ids the optimizer state is keyed by).
pub fn save_trainable<M: Module + ModuleSnapshot>(
    dir: &Path,
    name: &str,
    model: &M,
    optim: &ModuleOptimizer,
) -> Result<()> {
    save_weights(&model.valid(), dir.join(format!("{name}.bpk")))?;
    let optimizer = dir.join(format!("{name}.optimizer.bpk"));
    optim
        .save(&optimizer)
        .map_err(|e| checkpoint_error(&optimizer, format!("optimizer state: {e}")))?;
    let ids = dir.join(format!("{name}.ids.json"));
    let json = serde_json::to_string(&param_ids(model)).expect("ids serialize");
    fs::write(&ids, json).map_err(io_error(&ids))
}

/// Restores what [`save_trainable`] wrote into a freshly built `model` and `optim`.
pub fn restore_trainable<M: Module + ModuleSnapshot>(
    dir: &Path,
    name: &str,
    mut model: M,
    optim: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer)> {
    load_weights(&mut model, dir.join(format!("{name}.bpk")))?;
    let ids = dir.join(format!("{name}.ids.json"));
    let raw = fs::read_to_string(&ids).map_err(io_error(&ids))?;
    let ids_list: Vec<u64> = serde_json::from_str(&raw)
        .map_err(|e| checkpoint_error(&ids, format!("unreadable parameter ids: {e}")))?;
    let model = with_param_ids(model, &ids_list)?;
    let optimizer = dir.join(format!("{name}.optimizer.bpk"));
    let optim = optim
        .load(&optimizer)
        .map_err(|e| checkpoint_error(&optimizer, format!("optimizer state: {e}")))?;
    Ok((model, optim))
}

fn checkpoint_error(path: &Path, detail: String) -> DistillError {
    DistillError::Checkpoint {
        path: path.to_path_buf(),
        detail,
    }
}

/// The ids of a module's float parameters in traversal order. Burn's optimizer keys its state
/// by these ids; a model rebuilt for `--resume` gets fresh ids, so they are saved and restored.
pub fn param_ids<M: Module>(module: &M) -> Vec<u64> {
    struct Ids(Vec<u64>);
    impl ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.id.val());
        }
    }
    let mut ids = Ids(Vec::new());
    module.visit(&mut ids);
    ids.0
}

/// `module` with its float parameters given `ids` in traversal order.
pub fn with_param_ids<M: Module>(module: M, ids: &[u64]) -> Result<M> {
    struct Assign<'a> {
        ids: &'a [u64],
        next: usize,
    }
    impl ModuleMapper for Assign<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let id = self.ids.get(self.next).copied();
            self.next += 1;
            match id {
                Some(id) => {
                    let (_, value, mapper) = param.consume();
                    Param::from_mapped_value(ParamId::from(id), value, mapper)
                }
                None => param,
            }
        }
    }
    let expected = param_ids(&module).len();
    if expected != ids.len() {
        return Err(DistillError::Config(format!(
            "the model has {expected} parameter tensors, the checkpoint {}",
            ids.len()
        )));
    }
    Ok(module.map(&mut Assign { ids, next: 0 }))
}

/// A checkpoint folder.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    dir: PathBuf,
}

impl CheckpointDir {
    /// The checkpoint at `dir` (it may not exist yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether a complete checkpoint is there.
    pub fn exists(&self) -> bool {
        self.dir.join(STATE).is_file()
    }

    /// A file of the checkpoint.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes a new checkpoint: `write` fills a fresh temporary folder, which then replaces the
    /// previous checkpoint. The loop state goes last, as `state.json`, which marks the folder
    /// complete.
    pub fn write(&self, state_json: &str, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let tmp = self.dir.with_extension("tmp");
        let old = self.dir.with_extension("old");
        for stale in [&tmp, &old] {
            if stale.exists() {
                fs::remove_dir_all(stale).map_err(io_error(stale))?;
            }
        }
        fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        write(&tmp)?;
        let state = tmp.join(STATE);
        fs::write(&state, state_json).map_err(io_error(&state))?;
        if self.dir.exists() {
            fs::rename(&self.dir, &old).map_err(io_error(&self.dir))?;
        }
        fs::rename(&tmp, &self.dir).map_err(io_error(&tmp))?;
        if old.exists() {
            fs::remove_dir_all(&old).map_err(io_error(&old))?;
        }
        Ok(())
    }

    /// Finishes a replacement that a killed process left half done. [`write`](Self::write)
    /// moves the previous checkpoint aside (`.old`) before it moves the new one (`.tmp`, complete
    /// by then) in place; a process killed between the two renames leaves no checkpoint folder
    /// but two complete ones beside it. The newer is restored, else the older. A `.tmp` folder
    /// without its state file is an unfinished write and is left for the next write to remove.
    pub fn recover(&self) -> Result<()> {
        if self.exists() {
            return Ok(());
        }
        for candidate in [
            self.dir.with_extension("tmp"),
            self.dir.with_extension("old"),
        ] {
            if candidate.join(STATE).is_file() {
                if self.dir.exists() {
                    fs::remove_dir_all(&self.dir).map_err(io_error(&self.dir))?;
                }
                return fs::rename(&candidate, &self.dir).map_err(io_error(&candidate));
            }
        }
        Ok(())
    }

    /// The loop state saved with the checkpoint.
    pub fn read_state(&self) -> Result<String> {
        let path = self.dir.join(STATE);
        fs::read_to_string(&path).map_err(io_error(path))
    }

    /// An error about this checkpoint.
    pub fn error(&self, detail: impl Into<String>) -> DistillError {
        DistillError::Checkpoint {
            path: self.dir.clone(),
            detail: detail.into(),
        }
    }
}

const STATE: &str = "state.json";

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> CheckpointDir {
        let root = std::env::temp_dir().join(format!("ferd-ckpt-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        CheckpointDir::new(root.join("checkpoint"))
    }

    fn complete(dir: &Path, state: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(STATE), state).unwrap();
    }

    /// Each state a process killed inside `write` can leave, and what `recover` makes of it.
    #[test]
    fn recover_completes_a_replacement_cut_short() {
        // Killed between the two renames: the new checkpoint (tmp) wins over the old one.
        let c = folder("between");
        complete(&c.dir.with_extension("old"), "old");
        complete(&c.dir.with_extension("tmp"), "new");
        c.recover().unwrap();
        assert_eq!(c.read_state().unwrap(), "new");
        // Killed after moving the old one aside, with the new one unfinished: the old one.
        let c = folder("unfinished");
        complete(&c.dir.with_extension("old"), "old");
        fs::create_dir_all(c.dir.with_extension("tmp")).unwrap();
        c.recover().unwrap();
        assert_eq!(c.read_state().unwrap(), "old");
        // Killed while filling tmp: the checkpoint in place stays, tmp is left for the next write.
        let c = folder("filling");
        complete(&c.dir, "current");
        fs::create_dir_all(c.dir.with_extension("tmp")).unwrap();
        c.recover().unwrap();
        assert_eq!(c.read_state().unwrap(), "current");
        // Killed before the first checkpoint was complete: nothing to resume from.
        let c = folder("first");
        fs::create_dir_all(c.dir.with_extension("tmp")).unwrap();
        c.recover().unwrap();
        assert!(!c.exists());
        // And a write after any of these leaves one complete checkpoint.
        c.write("written", |_| Ok(())).unwrap();
        assert_eq!(c.read_state().unwrap(), "written");
        assert!(!c.dir.with_extension("tmp").exists() && !c.dir.with_extension("old").exists());
    }
}
