//! A training run killed with SIGKILL at any moment, including in the middle of writing a
//! checkpoint, resumes from its last complete checkpoint and ends with the weights of a run that
//! was never interrupted (bit for bit, on the CPU).
//!
//! The run is a real process: this test binary starts itself again (the `child_run` test, active
//! only when `FERD_KILL_TEST_DIR` is set), kills it after a seeded random delay, and starts it
//! again with `resume`, until a child finishes.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::module::Module;
use common::parameters;
use ferd_core::device::test_device;
use ferd_core::random::rng;
use ferd_data::{DatasetName, ImageDataset, Split};
use ferd_distill::{LrSchedule, RunOptions, TeacherConfig, TeacherMethod, train_teacher};
use ferd_models::init::{Init, initialize};
use ferd_models::small_cnn::{SmallCnn, SmallCnnConfig};
use ferd_models::weights::load_weights;
use rand::Rng;

/// Set in a child process: the run folder it trains into.
const CHILD_ENV: &str = "FERD_KILL_TEST_DIR";
/// Epochs of the run: enough checkpoints (one per epoch) for kills to land in their writes.
const EPOCHS: usize = 120;
/// Kills before the child is let finish: at least `MIN_KILLS`, and until `MIN_MID_WRITE` of
/// them cut a checkpoint write short (at most `MAX_KILLS`).
const MIN_KILLS: usize = 10;
const MIN_MID_WRITE: usize = 3;
const MAX_KILLS: usize = 60;
/// Kill delays are drawn uniformly below this (a child takes about 0.3 s to start).
const MAX_DELAY: Duration = Duration::from_millis(800);

fn data() -> ImageDataset {
    ferd_data::load(DatasetName::FashionMnist, Split::Test, None)
        .unwrap()
        .balanced_subset(12)
}

fn config() -> TeacherConfig {
    TeacherConfig {
        method: TeacherMethod::Standard,
        epochs: EPOCHS,
        batch_size: 32,
        lr: 0.02,
        momentum: 0.9,
        nesterov: false,
        weight_decay: 5e-4,
        schedule: LrSchedule::Cosine,
        crop_padding: 2,
        flip: false,
        seed: 11,
        held_out_per_class: 2,
        eval_eps: 0.1,
        eval_steps: 1,
    }
}

fn model() -> SmallCnn {
    let model = SmallCnnConfig::new()
        .with_width(2)
        .init(&test_device().autodiff());
    initialize(model, Init::PyTorch, 3)
}

fn train(dir: &Path, resume: bool) -> SmallCnn {
    let options = RunOptions {
        dir: dir.to_path_buf(),
        resume,
        stop_after: None,
        device: test_device(),
    };
    train_teacher(model(), &data(), &config(), &options, &mut ())
        .unwrap()
        .model
}

/// The child: trains into the folder it is given, resuming whatever is there.
#[test]
fn child_run() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let model = train(Path::new(&dir), true);
    ferd_models::weights::save_weights(&model.valid(), Path::new(&dir).join("final.bpk")).unwrap();
}

fn spawn_child(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill::child_run", "--test-threads", "1"])
        .env(CHILD_ENV, dir)
        // One core for the child, one for the parent that watches for checkpoint writes.
        .env("RAYON_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferd-kill-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn epochs_done(dir: &Path) -> usize {
    let state = dir.join("checkpoint/state.json");
    std::fs::read_to_string(state)
        .ok()
        .and_then(|raw| serde_json::from_str::<serde_json::Value>(&raw).ok())
        .and_then(|v| v["epochs_done"].as_u64())
        .map_or(0, |n| n as usize)
}

#[test]
fn a_run_killed_anywhere_resumes_to_the_uninterrupted_weights() {
    if let Some(why) =
        ferd_core::device::flex_only_skipped("bit-exact resumption is promised on the CPU (flex)")
    {
        eprintln!("skipped {why}");
        return;
    }
    let whole = parameters(&train(&fresh_dir("whole"), false));

    let dir = fresh_dir("killed");
    let mut draws = rng(5);
    let (mut kills, mut mid_write, mut progress) = (0, 0, Vec::new());
    while kills < MAX_KILLS && !(kills >= MIN_KILLS && mid_write >= MIN_MID_WRITE) {
        let mut child = spawn_child(&dir);
        // Every other kill waits for a checkpoint write to start (its temporary folder
        // appears) and kills at once; the others after a random delay.
        let on_write = kills % 2 == 1;
        let delay = MAX_DELAY.mul_f64(draws.random::<f64>());
        let started = Instant::now();
        let tmp = dir.join("checkpoint.tmp");
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            if on_write && tmp.exists() {
                break;
            }
            if !on_write && started.elapsed() >= delay {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
            std::thread::sleep(Duration::from_micros(if on_write { 50 } else { 1000 }));
        }
        // `Child::kill` is SIGKILL on Unix: no destructor runs, nothing is flushed.
        let _ = child.kill();
        child.wait().unwrap();
        kills += 1;
        // A write cut short leaves its temporary folder, or the previous checkpoint moved
        // aside, next to the checkpoint.
        let cut = ["checkpoint.tmp", "checkpoint.old"]
            .iter()
            .any(|name| dir.join(name).exists());
        mid_write += usize::from(cut);
        progress.push(epochs_done(&dir));
        if dir.join("final.bpk").exists() {
            break;
        }
    }
    let mut last = spawn_child(&dir);
    assert!(last.wait().unwrap().success(), "the resumed child failed");
    eprintln!(
        "{kills} kills, {mid_write} during a checkpoint write; epochs done after each: \
         {progress:?}"
    );

    let mut resumed = model();
    load_weights(&mut resumed, dir.join("final.bpk")).unwrap();
    assert!(
        parameters(&resumed) == whole,
        "the killed and resumed run ends with other weights"
    );
    // The kills did interrupt the run, and some cut a checkpoint write short.
    assert!(progress.iter().any(|&done| done < EPOCHS));
    assert!(
        mid_write >= MIN_MID_WRITE,
        "only {mid_write} of {kills} kills landed in a checkpoint write"
    );
    let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), EPOCHS);
}
