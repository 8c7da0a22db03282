//! A study: several arms (methods), each run with one or more seeds, summarized in the layout of
//! the FERD paper's tables: for every measure (clean, FGSM, PGD, CW, AutoAttack) the average,
//! worst-class accuracy and NSD, as mean ± standard deviation over seeds; and per class,
//! bootstrap intervals over the test images.
//!
//! A study folder holds one folder per run, `<arm>-s<seed>` (or `<arm>` for a single model such
//! as the teacher), each with the evaluations of `tools/study/*.sh`: `eval-10k.json` (clean and
//! the attacks on the whole test set) and, optionally, `eval-aa1000.json` (AutoAttack on a
//! class-balanced subset), whose measures are merged.

use std::path::Path;

use ferd_attacks::EvaluationReport;
use ferd_core::metrics::ClassWiseAccuracy;
use ferd_distill::{DistillEpoch, read_metrics};

use super::{ReportError, measure};

mod charts;
mod stats;
mod tables;

pub use charts::study_charts;
pub use stats::{Interval, Spread, class_intervals};
pub use tables::{cost_table, diagnostics_table, paper_table, study_markdown};

/// The evaluation files of a run, in the order their measures are merged (the first one's
/// clean accuracy is kept).
const EVALUATIONS: [&str; 2] = ["eval-10k.json", "eval-aa1000.json"];

/// The arm whose per-class robust accuracy the diagnostics compare the reweighting with.
const TEACHER: &str = "teacher";
/// The measure of that comparison.
const REFERENCE_MEASURE: &str = "pgd-20";

/// One arm of a study: its name and, per seed, the merged evaluation and the run's metrics.
#[derive(Debug, Clone)]
pub struct Arm {
    /// The arm's name (`baseline`, `ferd`, `teacher`, ...).
    pub name: String,
    /// One evaluation per seed, in seed order.
    pub seeds: Vec<EvaluationReport>,
    /// Per seed, the FERD run's `metrics.jsonl` (empty for a model that was not distilled).
    pub histories: Vec<Vec<DistillEpoch>>,
}

impl Arm {
    /// The class-wise figures of measure `name` for every seed; `None` when a seed lacks it.
    fn accuracies(&self, name: &str) -> Option<Vec<&ClassWiseAccuracy>> {
        self.seeds
            .iter()
            .map(|r| measure(r, name).map(|m| m.accuracy))
            .collect()
    }
}

/// Per class, the mean accuracy over seeds (`None` where a seed has no image of the class).
pub(super) fn class_means(accuracies: &[&ClassWiseAccuracy]) -> Vec<Option<f64>> {
    let classes = accuracies.first().map_or(0, |a| a.per_class.len());
    (0..classes)
        .map(|c| {
            let values: Option<Vec<f64>> = accuracies.iter().map(|a| a.per_class[c]).collect();
            values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect()
}

/// Reads the arms of the study in `dir`, in the order of `names` (every arm found, sorted by
/// name, when `names` is empty). A run folder `<arm>-s<seed>` is a seed of `<arm>`.
pub fn read_study(dir: &Path, names: &[String]) -> Result<Vec<Arm>, ReportError> {
    let io = |e: std::io::Error| ReportError::File {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let mut runs: Vec<(String, u64, std::path::PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if !path.join(EVALUATIONS[0]).is_file() {
            continue;
        }
        let folder = path.file_name().unwrap_or_default().to_string_lossy();
        let (arm, seed) = match folder.rsplit_once("-s") {
            Some((arm, seed)) if seed.parse::<u64>().is_ok() => {
                (arm.to_string(), seed.parse().unwrap_or(0))
            }
            _ => (folder.to_string(), 0),
        };
        runs.push((arm, seed, path));
    }
    runs.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut order: Vec<String> = names.to_vec();
    if order.is_empty() {
        order = runs.iter().map(|r| r.0.clone()).collect();
        order.dedup();
    }
    order
        .into_iter()
        .map(|name| {
            let folders: Vec<&Path> = runs
                .iter()
                .filter(|r| r.0 == name)
                .map(|r| r.2.as_path())
                .collect();
            if folders.is_empty() {
                return Err(ReportError::File {
                    path: dir.join(&name),
                    reason: format!("no evaluated run of `{name}`"),
                });
            }
            let seeds = folders
                .iter()
                .map(|f| read_run(f))
                .collect::<Result<Vec<_>, _>>()?;
            let histories = folders
                .iter()
                .filter(|f| f.join("metrics.jsonl").is_file())
                .map(read_metrics::<DistillEpoch>)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arm {
                name,
                seeds,
                histories,
            })
        })
        .collect()
}

/// The evaluations of one run folder, merged into one report.
fn read_run(dir: &Path) -> Result<EvaluationReport, ReportError> {
    let mut merged: Option<EvaluationReport> = None;
    for file in EVALUATIONS {
        let path = dir.join(file);
        if !path.is_file() {
            continue;
        }
        let report = EvaluationReport::read(&path)?;
        match &mut merged {
            None => merged = Some(report),
            Some(m) => m.attacks.extend(report.attacks),
        }
    }
    merged.ok_or_else(|| ReportError::File {
        path: dir.to_path_buf(),
        reason: "no evaluation".into(),
    })
}

/// The three figures of the paper's tables for one measure over an arm's seeds.
pub(super) fn figures(arm: &Arm, name: &str) -> Option<[Spread; 3]> {
    let accuracies = arm.accuracies(name)?;
    let pick = |f: fn(&ClassWiseAccuracy) -> Option<f64>| {
        let values: Option<Vec<f64>> = accuracies.iter().map(|a| f(a)).collect();
        values.map(|v| Spread::of(&v))
    };
    Some([
        pick(|a| Some(a.overall))?,
        pick(|a| a.worst_class.map(|(_, v)| v))?,
        pick(|a| a.nsd)?,
    ])
}
