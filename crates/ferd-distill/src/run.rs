//! The epoch loop shared by teacher training and FERD distillation: the run folder
//! (`config.json`, `metrics.jsonl`, `checkpoint/`), resuming, slicing a long run with
//! `stop_after`, and events. A job says what one epoch does and how to save and restore its
//! state ([`Job`]); [`run`] does the rest, the same way for every job.
//!
//! Every random draw of a job is derived from its seed and the position in the run
//! (`ferd_core::random::mix`), so a resumed run draws what an uninterrupted one would, and (on
//! the CPU) ends with the same weights bit for bit.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointDir;
use crate::error::{DistillError, Result, io_error};
use crate::events::{Event, Observer};

/// Where a run keeps its files and how far it goes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run folder: `config.json`, `metrics.jsonl`, `checkpoint/` and the job's own files.
    pub dir: PathBuf,
    /// Continue from the checkpoint in `dir` if there is one (it must have been written with
    /// the same configuration).
    pub resume: bool,
    /// Stop after this many epochs in all (the checkpoint then allows resuming), to run a long
    /// job in slices.
    pub stop_after: Option<usize>,
    /// The plain (non-autodiff) device; training runs on its autodiff twin.
    pub device: Device,
}

impl RunOptions {
    /// A fresh run in `dir` on `device`, to the end.
    pub fn new(dir: impl Into<PathBuf>, device: Device) -> Self {
        Self {
            dir: dir.into(),
            resume: false,
            stop_after: None,
            device,
        }
    }
}

/// A training job run epoch by epoch by [`run`].
pub trait Job {
    /// What one epoch reports (one line of `metrics.jsonl`).
    type Metrics: Serialize + DeserializeOwned + Clone;

    /// Runs epoch `epoch` (0-based).
    fn epoch(&mut self, epoch: usize, observer: &mut dyn Observer<Event>) -> Result<Self::Metrics>;

    /// A one-line digest of an epoch's metrics, for the [`Event::EpochEnded`] event.
    fn summary(&self, metrics: &Self::Metrics) -> String;

    /// Writes everything the job needs to continue into `dir` (a fresh folder).
    fn save(&self, dir: &Path) -> Result<()>;

    /// Restores what [`Job::save`] wrote.
    fn restore(&mut self, dir: &Path) -> Result<()>;
}

/// The loop's own state, saved with each checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct LoopState<M> {
    config: serde_json::Value,
    epochs_done: usize,
    history: Vec<M>,
}

/// Runs `job` for `epochs` epochs (or up to `options.stop_after`) in `options.dir`, checkpointing
/// after every epoch. Returns the metrics of every epoch done so far, resumed ones included.
///
/// `config` is written to `config.json` and stored with each checkpoint; resuming with another
/// configuration is refused.
pub fn run<J: Job>(
    job: &mut J,
    config: &impl Serialize,
    epochs: usize,
    options: &RunOptions,
    observer: &mut dyn Observer<Event>,
) -> Result<Vec<J::Metrics>> {
    let dir = &options.dir;
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let config = serde_json::to_value(config).expect("a config serializes");
    let config_path = dir.join("config.json");
    let pretty = serde_json::to_string_pretty(&config).expect("a config serializes");
    fs::write(&config_path, pretty).map_err(io_error(&config_path))?;

    let checkpoint = CheckpointDir::new(dir.join("checkpoint"));
    let mut state = LoopState::<J::Metrics> {
        config,
        epochs_done: 0,
        history: Vec::new(),
    };
    if options.resume {
        checkpoint.recover()?;
    }
    if options.resume && checkpoint.exists() {
        state = read_state(&checkpoint, &state.config)?;
        job.restore(checkpoint.path())?;
    }
    write_metrics(dir, &state.history, false)?;

    let last = options.stop_after.unwrap_or(epochs).min(epochs);
    observer.event(&Event::RunStarted {
        first_epoch: state.epochs_done,
        epochs,
    });
    for epoch in state.epochs_done..last {
        let started = Instant::now();
        // A failed epoch leaves the checkpoint of the last complete one in place.
        let metrics = job.epoch(epoch, observer).map_err(|e| {
            let done = state.epochs_done;
            let plural = if done == 1 { "" } else { "s" };
            e.at(format_args!(
                "epoch {epoch} (the last checkpoint, {done} epoch{plural} done, is kept)"
            ))
        })?;
        write_metrics(dir, std::slice::from_ref(&metrics), true)?;
        observer.event(&Event::EpochEnded {
            epoch,
            epochs,
            seconds: started.elapsed().as_secs_f64(),
            summary: job.summary(&metrics),
        });
        state.history.push(metrics);
        state.epochs_done = epoch + 1;
        let json = serde_json::to_string(&state).expect("the loop state serializes");
        checkpoint.write(&json, |folder| job.save(folder))?;
        observer.event(&Event::Checkpoint {
            epochs_done: state.epochs_done,
        });
    }
    Ok(state.history)
}

fn read_state<M: DeserializeOwned>(
    checkpoint: &CheckpointDir,
    config: &serde_json::Value,
) -> Result<LoopState<M>> {
    let raw = checkpoint.read_state()?;
    let state: LoopState<M> = serde_json::from_str(&raw)
        .map_err(|e| checkpoint.error(format!("unreadable state: {e}")))?;
    // Compared as parsed JSON on both sides: serde_json's default float parser may miss the last
    // bit, so a parsed config need not equal the one it was written from.
    let reparsed: serde_json::Value =
        serde_json::from_str(&config.to_string()).expect("a JSON value parses");
    if state.config != reparsed {
        return Err(checkpoint.error(
            "it was written with another configuration; resume with the same settings or use a new run folder",
        ));
    }
    Ok(state)
}

/// Reads the `metrics.jsonl` of a run folder: one `M` per finished epoch (a FERD run's
/// [`crate::DistillEpoch`]s, a teacher run's [`crate::TeacherEpoch`]). A line that does not parse
/// as `M` is an error naming the file and the line.
pub fn read_metrics<M: DeserializeOwned>(dir: impl AsRef<Path>) -> Result<Vec<M>> {
    let path = dir.as_ref().join("metrics.jsonl");
    let text = fs::read_to_string(&path).map_err(io_error(&path))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| DistillError::File {
                path: path.clone(),
                reason: format!("line {}: not the metrics of this kind of run: {e}", i + 1),
            })
        })
        .collect()
}

/// Appends `metrics` to `metrics.jsonl`, or (when `append` is false) rewrites it with them:
/// on resume, lines of an epoch interrupted before its checkpoint are dropped.
fn write_metrics<M: Serialize>(dir: &Path, metrics: &[M], append: bool) -> Result<()> {
    let path = dir.join("metrics.jsonl");
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(&path)
        .map_err(io_error(&path))?;
    for m in metrics {
        let line = serde_json::to_string(m).expect("metrics serialize");
        writeln!(file, "{line}").map_err(io_error(&path))?;
    }
    Ok(())
}
