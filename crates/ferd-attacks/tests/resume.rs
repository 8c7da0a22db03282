//! A resumable evaluation: with a state file, `evaluate` records its progress after every batch
//! of every attack; stopped by an error or killed with SIGKILL, it continues from the file and
//! gives the report of an uninterrupted run (timings aside).

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::tensor::Tensor;
use ferd_attacks::{
    Attack, AttackError, EvalConfig, EvaluationReport, Frozen, Model, attack_by_name, evaluate,
};
use ferd_core::device::test_device;
use ferd_core::random::rng;
use ferd_data::{DatasetName, ImageDataset, Split};
use ferd_models::small_cnn::{SmallCnn, SmallCnnConfig};
use ferd_models::weights::load_pytorch;
use rand::Rng;

/// Set in a child process: the state file of its evaluation.
const CHILD_ENV: &str = "FERD_EVAL_KILL_STATE";
const EPS: f32 = 0.1;
const BATCH: usize = 20;
const PER_CLASS: usize = 12;
/// Kills before the child is let finish, and the largest delay before a kill.
const KILLS: usize = 8;
const MAX_DELAY: Duration = Duration::from_millis(2500);
/// Forward passes before the failing model turns to NaN: past the clean pass and FGSM, inside
/// PGD-10 (about a dozen passes per batch).
const NAN_AFTER: usize = 60;

fn model() -> SmallCnn {
    let mut model = SmallCnnConfig::new().with_width(8).init(&test_device());
    let weights =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small_cnn_w8.safetensors");
    load_pytorch(&mut model, &weights).unwrap();
    model
}

fn data() -> ImageDataset {
    ferd_data::load(DatasetName::FashionMnist, Split::Test, None)
        .unwrap()
        .balanced_subset(PER_CLASS)
}

fn attacks() -> Vec<Box<dyn Attack>> {
    ["fgsm", "pgd-10", "apgd-ce"]
        .iter()
        .map(|name| attack_by_name(name, EPS).unwrap())
        .collect()
}

fn config(state: Option<PathBuf>) -> EvalConfig {
    EvalConfig {
        batch_size: BATCH,
        seed: 3,
        state,
    }
}

fn run(model: &dyn Model, state: Option<PathBuf>) -> Result<EvaluationReport, AttackError> {
    let attacks = attacks();
    let attacks: Vec<&dyn Attack> = attacks.iter().map(AsRef::as_ref).collect();
    evaluate(model, &data(), &attacks, &test_device(), &config(state))
}

/// The report with its wall-clock timings zeroed (the only figures a resumed run may change).
fn without_times(mut report: EvaluationReport) -> EvaluationReport {
    for attack in &mut report.attacks {
        attack.seconds = 0.0;
        for stage in &mut attack.stages {
            stage.seconds = 0.0;
        }
    }
    report
}

fn state_file(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("ferd-eval-{name}-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Stopped by an error (the model starts returning NaN after a number of forward passes, in
/// the middle of the second attack), then resumed with the working model. A slow test (3
/// minutes on Mesa's software Vulkan, where APGD's 100 steps on batches of 20 are
/// dispatch-bound): resumption is host-side bookkeeping, the same on every backend.
#[test]
fn an_evaluation_stopped_by_an_error_resumes_to_the_same_report() {
    if let Some(why) = ferd_core::device::slow_test_skipped() {
        eprintln!("skipped: {why}");
        return;
    }
    let frozen = Frozen::new(&model());
    let whole = without_times(run(&frozen, None).unwrap());

    let state = state_file("stopped");
    let calls = Cell::new(0usize);
    let failing = |x: Tensor<4>| {
        calls.set(calls.get() + 1);
        let logits = frozen.logits(x);
        if calls.get() > NAN_AFTER {
            logits.mul_scalar(f32::NAN)
        } else {
            logits
        }
    };
    let err = run(&failing, Some(state.clone())).unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let done: Vec<u64> = recorded["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["batches_done"].as_u64().unwrap())
        .collect();
    eprintln!("batches done per attack when stopped: {done:?}");
    let batches = (10 * PER_CLASS).div_ceil(BATCH) as u64;
    assert!(
        done[0] == batches && done[1] > 0 && done[1] < batches && done[2] == 0,
        "not stopped inside the second attack: {done:?}"
    );

    let resumed = without_times(run(&frozen, Some(state.clone())).unwrap());
    assert!(resumed == whole, "the resumed report differs");

    // A state file of another evaluation is refused, not silently mixed in.
    let other = EvalConfig {
        seed: 4,
        ..config(Some(state.clone()))
    };
    let attacks = attacks();
    let attacks: Vec<&dyn Attack> = attacks.iter().map(AsRef::as_ref).collect();
    let err = evaluate(&frozen, &data(), &attacks, &test_device(), &other).unwrap_err();
    assert!(err.to_string().contains("another evaluation"), "{err}");
    let _ = std::fs::remove_file(&state);
}

/// The child: evaluates with the state file it is given, then writes the report beside it.
#[test]
fn child_evaluation() {
    let Ok(state) = std::env::var(CHILD_ENV) else {
        return;
    };
    let state = PathBuf::from(state);
    let report = run(&Frozen::new(&model()), Some(state.clone())).unwrap();
    std::fs::write(state.with_extension("report"), report.to_json()).unwrap();
}

#[test]
fn a_killed_evaluation_resumes_to_the_same_report() {
    if let Some(why) =
        ferd_core::device::flex_only_skipped("the child process runs on the CPU (flex)")
    {
        eprintln!("skipped {why}");
        return;
    }
    let whole = without_times(run(&Frozen::new(&model()), None).unwrap());
    let state = state_file("killed");
    let report_path = state.with_extension("report");
    let _ = std::fs::remove_file(&report_path);
    let spawn = || {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "resume::child_evaluation", "--test-threads", "1"])
            .env(CHILD_ENV, &state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut draws = rng(9);
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        let mut child = spawn();
        let delay = MAX_DELAY.mul_f64(draws.random::<f64>());
        let started = Instant::now();
        while started.elapsed() < delay && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        // SIGKILL on Unix.
        let _ = child.kill();
        child.wait().unwrap();
        if report_path.exists() {
            break;
        }
        let batches: u64 = std::fs::read_to_string(&state)
            .ok()
            .and_then(|raw| serde_json::from_str::<serde_json::Value>(&raw).ok())
            .map_or(0, |v| {
                v["attacks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["batches_done"].as_u64().unwrap())
                    .sum()
            });
        kills.push(batches);
    }
    assert!(
        spawn().wait().unwrap().success(),
        "the resumed child failed"
    );
    eprintln!("attack batches recorded after each kill: {kills:?}");
    assert!(!kills.is_empty(), "no kill interrupted the evaluation");
    let resumed = EvaluationReport::read(&report_path).unwrap();
    assert!(
        without_times(resumed) == whole,
        "the killed and resumed evaluation gives another report"
    );
    let _ = std::fs::remove_file(&state);
    let _ = std::fs::remove_file(&report_path);
}
