//! Reports people look at: Markdown (for papers and READMEs), CSV (for spreadsheets and
//! pandas) and SVG charts, from evaluation reports ([`EvaluationReport`]) and from run folders
//! (a FERD run's `metrics.jsonl` and `final.json`, a teacher run's `metrics.jsonl`).
//!
//! Every figure is read from the report it describes; nothing is recomputed.
//!
//! # Examples
//! ```
//! use ferd::attacks::EvaluationReport;
//! use ferd::report::{Entry, markdown};
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/models/fmnist-small-teacher/eval_test10k.json");
//! let report = EvaluationReport::read(path).unwrap();
//! let text = markdown(&[Entry::new("teacher", &report)]);
//! assert!(text.contains("| teacher |"));
//! ```

pub mod diagnostics;
pub mod robustbench;
pub mod run;
pub mod study;
pub mod svg;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ferd_attacks::{AttackError, EvaluationReport};
use ferd_core::metrics::ClassWiseAccuracy;
use ferd_distill::DistillError;
use serde::{Deserialize, Serialize};

pub use run::{RunKind, RunReport};
pub use svg::{BarChart, Bars, Line, LineChart};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file that cannot be read or written, or is not what it should be.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An evaluation report that cannot be read.
    #[error(transparent)]
    Attack(#[from] AttackError),
    /// A run folder that cannot be read.
    #[error(transparent)]
    Distill(#[from] DistillError),
    /// An image grid that cannot be written.
    #[error(transparent)]
    Image(#[from] crate::images::ImageError),
}

fn write_file(path: PathBuf, text: &str) -> Result<PathBuf, ReportError> {
    std::fs::write(&path, text).map_err(|e| ReportError::File {
        path: path.clone(),
        reason: format!("cannot write: {e}"),
    })?;
    Ok(path)
}

fn create_dir(dir: &Path) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::File {
        path: dir.to_path_buf(),
        reason: format!("cannot create the folder: {e}"),
    })
}

/// Writes `report.md`, `report.csv`, one SVG per chart of [`class_charts`] and, for every model
/// evaluated under AutoAttack, its RobustBench `model_info` (`robustbench-<label>.json`, see
/// [`robustbench::model_info`]) into `dir` (created if missing); returns the files written.
pub fn write_evaluation(
    entries: &[Entry],
    dir: impl AsRef<Path>,
) -> Result<Vec<PathBuf>, ReportError> {
    let dir = dir.as_ref();
    create_dir(dir)?;
    let mut written = vec![
        write_file(dir.join("report.md"), &markdown(entries))?,
        write_file(dir.join("report.csv"), &csv(entries))?,
    ];
    for (stem, chart) in class_charts(entries) {
        written.push(write_file(
            dir.join(format!("{stem}.svg")),
            &chart.to_svg(),
        )?);
    }
    for entry in entries {
        if let Some(info) = robustbench::model_info(entry) {
            let json = serde_json::to_string_pretty(&info).expect("model info serializes");
            let file = format!("robustbench-{}.json", file_stem(entry.label));
            written.push(write_file(dir.join(file), &(json + "\n"))?);
        }
    }
    Ok(written)
}

/// One model's evaluation under a label (`teacher`, `student`, a file name).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The label in tables and legends.
    pub label: &'a str,
    /// The evaluation.
    pub report: &'a EvaluationReport,
}

impl<'a> Entry<'a> {
    /// `report` labelled `label`.
    pub fn new(label: &'a str, report: &'a EvaluationReport) -> Self {
        Self { label, report }
    }
}

/// The comparison at the end of a FERD run (`final.json`): teacher and student on the same
/// test images under the same attack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Test images evaluated (a class-balanced subset of the test set, or all of it).
    pub test_images: usize,
    /// Seconds the distillation took.
    pub distill_seconds: f64,
    /// Seconds of distillation and evaluation.
    pub total_seconds: f64,
    /// The teacher's evaluation.
    pub teacher: EvaluationReport,
    /// The student's evaluation.
    pub student: EvaluationReport,
}

/// One column of a report: clean accuracy or one attack's robust accuracy.
#[derive(Debug, Clone, Copy)]
pub struct Measure<'a> {
    /// `clean` or the attack's name.
    pub name: &'a str,
    /// The attack's radius (`None` for clean accuracy).
    pub eps: Option<f32>,
    /// The class-wise figures.
    pub accuracy: &'a ClassWiseAccuracy,
}

/// Clean accuracy, then each attack in the report's order.
pub fn measures(report: &EvaluationReport) -> Vec<Measure<'_>> {
    let clean = Measure {
        name: "clean",
        eps: None,
        accuracy: &report.clean,
    };
    std::iter::once(clean)
        .chain(report.attacks.iter().map(|a| Measure {
            name: &a.name,
            eps: Some(a.eps),
            accuracy: &a.robust,
        }))
        .collect()
}

/// The measure called `name` in `report`.
pub fn measure<'a>(report: &'a EvaluationReport, name: &str) -> Option<Measure<'a>> {
    measures(report).into_iter().find(|m| m.name == name)
}

/// The measures of all `entries` by name, in order of first appearance.
fn measure_names<'a>(entries: &[Entry<'a>]) -> Vec<&'a str> {
    let mut names: Vec<&'a str> = Vec::new();
    for e in entries {
        for m in measures(e.report) {
            if !names.contains(&m.name) {
                names.push(m.name);
            }
        }
    }
    names
}

/// The name of class `c` (its index when the report has no names).
pub fn class_name(report: &EvaluationReport, c: usize) -> String {
    report
        .class_names
        .get(c)
        .cloned()
        .unwrap_or_else(|| c.to_string())
}

fn percent(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}", 100.0 * v))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

/// `worst_class` as "name (acc%)".
fn worst(report: &EvaluationReport, accuracy: &ClassWiseAccuracy) -> String {
    accuracy.worst_class.map_or("–".into(), |(c, a)| {
        format!("{} ({:.1})", class_name(report, c), 100.0 * a)
    })
}

/// Markdown: a RobustBench-style summary (one row per model: architecture, dataset, images,
/// eps, then clean and robust accuracy under the leaderboard's column names), the fairness
/// summary (worst class and NSD of every measure), then one
/// class-wise table per measure with a column per model.
pub fn markdown(entries: &[Entry]) -> String {
    let mut out = String::new();
    let Some(first) = entries.first() else {
        return out;
    };
    let names = measure_names(entries);

    let _ = writeln!(out, "## Summary\n");
    let _ = write!(out, "| model | architecture | dataset | images | eps |");
    for name in &names {
        let _ = write!(out, " {} |", robustbench::column_name(name));
    }
    let _ = write!(out, "\n|---|---|---|---:|---:|");
    out.push_str(&"---:|".repeat(names.len()));
    out.push('\n');
    for e in entries {
        let eps = e.report.attacks.first().map(|a| a.eps);
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} |",
            e.label,
            robustbench::architecture(e.report).unwrap_or_else(|| "–".into()),
            e.report.dataset,
            e.report.samples,
            eps.map_or("–".into(), |e| format!("{e:.4}"))
        );
        for name in &names {
            let value = measure(e.report, name).map(|m| m.accuracy.overall);
            let _ = write!(out, " {} |", percent(value));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nAccuracy in %. Robust accuracy counts an image as robust only if it is classified \
         correctly clean and under the attack.\n"
    );

    let _ = writeln!(out, "## Robust fairness\n");
    let _ = writeln!(
        out,
        "| model | measure | average | mean of classes | worst class | worst 10% | NSD |\n|---|---|---:|---:|---|---:|---:|"
    );
    for e in entries {
        for m in measures(e.report) {
            let a = m.accuracy;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                e.label,
                m.name,
                percent(Some(a.overall)),
                percent(a.mean_class),
                worst(e.report, a),
                percent(a.worst_10_percent),
                ratio(a.nsd)
            );
        }
    }
    let _ = writeln!(
        out,
        "\nNSD: standard deviation of the class-wise accuracies divided by their mean (lower is \
         fairer).\n"
    );

    for name in &names {
        let _ = writeln!(out, "## {name}, per class\n");
        let _ = write!(out, "| class |");
        for e in entries {
            let _ = write!(out, " {} |", e.label);
        }
        let _ = write!(out, "\n|---|");
        out.push_str(&"---:|".repeat(entries.len()));
        out.push('\n');
        let classes = first.report.clean.per_class.len();
        for c in 0..classes {
            let _ = write!(out, "| {} |", class_name(first.report, c));
            for e in entries {
                let value = measure(e.report, name)
                    .and_then(|m| m.accuracy.per_class.get(c).copied().flatten());
                let _ = write!(out, " {} |", percent(value));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// CSV in long form, one row per (model, measure, class):
/// `model,dataset,measure,eps,class,class_name,images,accuracy` (accuracy a fraction, empty for
/// a class without images; eps empty for clean accuracy).
pub fn csv(entries: &[Entry]) -> String {
    let mut out = String::from("model,dataset,measure,eps,class,class_name,images,accuracy\n");
    for e in entries {
        for m in measures(e.report) {
            for (c, value) in m.accuracy.per_class.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{},{},{},{},{c},{},{},{}",
                    csv_field(e.label),
                    csv_field(&e.report.dataset),
                    csv_field(m.name),
                    m.eps.map_or(String::new(), |e| e.to_string()),
                    csv_field(&class_name(e.report, c)),
                    m.accuracy.class_counts.get(c).copied().unwrap_or(0),
                    value.map_or(String::new(), |v| v.to_string())
                );
            }
        }
    }
    out
}

/// Quotes a field that holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn legend_note(accuracy: &ClassWiseAccuracy, report: &EvaluationReport) -> String {
    format!(
        "average {}%, worst {}, NSD {}",
        percent(Some(accuracy.overall)),
        worst(report, accuracy),
        ratio(accuracy.nsd)
    )
}

/// Per-class bar charts, as `(file stem, chart)`. One model: a single chart with a bar group per
/// class and one bar per measure (clean, then each attack). Several models: one chart per
/// measure, with one bar per model.
pub fn class_charts(entries: &[Entry]) -> Vec<(String, BarChart)> {
    let Some(first) = entries.first() else {
        return Vec::new();
    };
    let classes = first.report.clean.per_class.len();
    let categories: Vec<String> = (0..classes).map(|c| class_name(first.report, c)).collect();
    let bars = |label: String, report: &EvaluationReport, a: &ClassWiseAccuracy| Bars {
        label,
        values: a.per_class.clone(),
        marked: a.worst_class.map(|(c, _)| c),
        note: legend_note(a, report),
    };
    if let [only] = entries {
        let series = measures(only.report)
            .iter()
            .map(|m| bars(m.name.to_string(), only.report, m.accuracy))
            .collect();
        let chart = BarChart {
            title: format!(
                "{}: accuracy per class ({}, {} images)",
                only.label, only.report.dataset, only.report.samples
            ),
            categories,
            series,
        };
        return vec![("class_accuracy".into(), chart)];
    }
    measure_names(entries)
        .into_iter()
        .map(|name| {
            let series = entries
                .iter()
                .filter_map(|e| {
                    let m = measure(e.report, name)?;
                    Some(bars(e.label.to_string(), e.report, m.accuracy))
                })
                .collect();
            let chart = BarChart {
                title: format!("{name} accuracy per class ({})", first.report.dataset),
                categories: categories.clone(),
                series,
            };
            (format!("class_{}", file_stem(name)), chart)
        })
        .collect()
}

/// A file-name-safe form of a measure's name (`pgd-20` stays, `AutoAttack (standard)` becomes
/// `autoattack-standard`).
pub fn file_stem(name: &str) -> String {
    let mut stem = String::new();
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            stem.push(ch.to_ascii_lowercase());
        } else if !stem.ends_with('-') && !stem.is_empty() {
            stem.push('-');
        }
    }
    stem.trim_end_matches('-').to_string()
}
