//! An evaluation's progress on disk: after every batch, the predictions so far, so that a killed
//! evaluation resumes where it stopped and ends with the report an uninterrupted one gives. A
//! state file of another evaluation (other data, batch size, seed or attacks) is refused.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{AttackError, Result};

/// What identifies an evaluation: a state file of another one is refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct StateKey {
    pub(super) dataset: String,
    pub(super) samples: usize,
    pub(super) labels_checksum: u64,
    pub(super) batch_size: usize,
    pub(super) seed: u64,
    pub(super) attacks: Vec<(String, f32)>,
}

/// The batches of one attack done so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct AttackProgress {
    pub(super) batches_done: usize,
    pub(super) robust_pred: Vec<usize>,
    /// Per stage of a composite attack: name, robust flags so far, seconds.
    pub(super) stages: Vec<(String, Vec<bool>, f64)>,
    pub(super) max_perturbation: f32,
    pub(super) seconds: f64,
}

/// The progress of an evaluation, as recorded in `super::EvalConfig::state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct EvalState {
    pub(super) key: StateKey,
    pub(super) clean_pred: Vec<usize>,
    pub(super) attacks: Vec<AttackProgress>,
}

/// Where the state is kept, if anywhere.
pub(super) struct StateFile<'a> {
    pub(super) path: Option<&'a Path>,
}

impl StateFile<'_> {
    fn error(path: &Path, reason: String) -> AttackError {
        AttackError::File {
            path: path.to_path_buf(),
            reason,
        }
    }

    /// The recorded state, when there is one for this evaluation. `batch_lengths` are the
    /// images per batch: every attack's record must cover exactly its first batches.
    pub(super) fn load(
        &self,
        key: &StateKey,
        batch_lengths: &[usize],
    ) -> Result<Option<EvalState>> {
        let Some(path) = self.path.filter(|p| p.exists()) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|e| Self::error(path, e.to_string()))?;
        let state: EvalState = serde_json::from_str(&text)
            .map_err(|e| Self::error(path, format!("not an evaluation state: {e}")))?;
        if state.key != *key {
            return Err(Self::error(
                path,
                "the state of another evaluation (dataset, images, attacks, batch size or seed \
                 differ): remove it or choose another file"
                    .into(),
            ));
        }
        let covered = |done: usize| batch_lengths.iter().take(done).sum::<usize>();
        let consistent = state.attacks.len() == key.attacks.len()
            && state.clean_pred.len() == key.samples
            && state.attacks.iter().all(|a| {
                a.batches_done <= batch_lengths.len()
                    && a.robust_pred.len() == covered(a.batches_done)
            });
        if !consistent {
            return Err(Self::error(path, "inconsistent evaluation state".into()));
        }
        Ok(Some(state))
    }

    /// Records `state`: written beside the file, then renamed over it (a reader sees the old or
    /// the new state, never a mix).
    pub(super) fn save(&self, state: &EvalState) -> Result<()> {
        let Some(path) = self.path else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_string(state).expect("an evaluation state serializes");
        std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Self::error(path, format!("cannot record progress: {e}")))
    }
}

/// A checksum of the labels (FNV-1a), so that a state file is not resumed on other data.
pub(super) fn labels_checksum(labels: &[usize]) -> u64 {
    labels.iter().fold(0xcbf2_9ce4_8422_2325, |h, &y| {
        (h ^ y as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
