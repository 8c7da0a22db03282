//! The reports of evaluations ([`EvaluationReport`]s under labels): Markdown (the one rendering,
//! printed by `ferd evaluate` and kept as `report.md`), CSV and per-class SVG charts, and the
//! folder that holds them with the RobustBench `model_info` of each model.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ferd_attacks::EvaluationReport;
use ferd_core::metrics::ClassWiseAccuracy;

use super::files::{create_dir, write_file};
use super::svg::{BarChart, Bars};
use super::{ReportError, robustbench};

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

/// Markdown, the one rendering of evaluation reports (the `ferd evaluate` command prints it,
/// `report.md` holds it): a RobustBench-style summary (one row per model: architecture,
/// dataset, images, eps, then clean and robust accuracy under the leaderboard's column names),
/// the fairness summary (worst class and NSD of every measure), one class-wise table per measure
/// with a column per model, the robust accuracy after each component of a composite attack
/// (AutoAttack), and the reports' warnings.
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
    for e in entries {
        for attack in e.report.attacks.iter().filter(|a| !a.stages.is_empty()) {
            let _ = writeln!(
                out,
                "## {}, {}: robust accuracy after each component\n",
                e.label, attack.name
            );
            let _ = writeln!(out, "| after | accuracy |\n|---|---:|");
            let _ = writeln!(out, "| clean | {} |", percent(Some(e.report.clean.overall)));
            for stage in &attack.stages {
                let _ = writeln!(
                    out,
                    "| {} | {} |",
                    stage.name,
                    percent(Some(stage.robust_accuracy))
                );
            }
            out.push('\n');
        }
        for warning in &e.report.warnings {
            let _ = writeln!(out, "**Warning** ({}): {warning}\n", e.label);
        }
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

#[cfg(test)]
mod tests {
    use ferd_attacks::{AttackReport, StageReport};
    use ferd_core::metrics::ClassWiseAccuracy;

    use super::*;

    /// Two classes, four images: 3 right clean, 1 after AutoAttack's two components.
    fn report() -> EvaluationReport {
        let labels = [0, 0, 1, 1];
        let accuracy = |predictions: &[usize]| {
            ClassWiseAccuracy::from_predictions(predictions, &labels, 2).unwrap()
        };
        let stage = |name: &str, robust_accuracy: f64| StageReport {
            name: name.into(),
            robust_accuracy,
            per_class: vec![Some(robust_accuracy); 2],
            seconds: 1.0,
        };
        EvaluationReport {
            architecture: Some("small-cnn-8".into()),
            dataset: "fashion-mnist/test".into(),
            samples: 4,
            class_names: vec!["T-shirt".into(), "Trouser".into()],
            seed: 0,
            clean: accuracy(&[0, 0, 1, 0]),
            attacks: vec![AttackReport {
                name: "autoattack".into(),
                eps: 0.1,
                robust: accuracy(&[0, 1, 0, 0]),
                stages: vec![stage("apgd-ce", 0.5), stage("apgd-t", 0.25)],
                max_perturbation: 0.1,
                seconds: 2.0,
            }],
            warnings: vec!["a warning".into()],
        }
    }

    /// Everything a report holds is in its one rendering: per-class rows by name, the worst
    /// class, each component's robust accuracy in order, and the warnings.
    #[test]
    fn markdown_shows_classes_components_and_warnings() {
        let report = report();
        let md = markdown(&[Entry::new("student", &report)]);
        // Clean: T-shirt 2 of 2, Trouser 1 of 2; AutoAttack: 1 of 2 and 0 of 2.
        let (clean_table, aa_table) = md
            .split_once("## autoattack, per class")
            .expect("a per-class table under AutoAttack");
        assert!(clean_table.contains("| T-shirt | 100.0 |"), "{md}");
        assert!(clean_table.contains("| Trouser | 50.0 |"), "{md}");
        assert!(aa_table.contains("| T-shirt | 50.0 |"), "{md}");
        assert!(aa_table.contains("| Trouser | 0.0 |"), "{md}");
        assert!(md.contains("Trouser (0.0)"), "{md}");
        let clean = md.find("| clean | 75.0 |").expect("clean row");
        let (first, second) = (md.find("| apgd-ce | 50.0 |"), md.find("| apgd-t | 25.0 |"));
        assert!(clean < first.unwrap() && first < second, "{md}");
        assert!(md.contains("a warning"), "{md}");
    }
}
