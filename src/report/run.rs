//! The report of a run folder: a FERD distillation (`metrics.jsonl` of [`DistillEpoch`]s and,
//! once finished, `final.json`) or a teacher run (`metrics.jsonl` of [`TeacherEpoch`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ferd_core::metrics::ClassWiseAccuracy;
use ferd_distill::bank::Bank;
use ferd_distill::{DistillEpoch, FerdConfig, TeacherEpoch, read_metrics};

use crate::images::Grid;

use super::diagnostics::{HELD_SHARE, classes_held};
use super::files::{create_dir, write_file};
use super::svg::{Line, LineChart};
use super::{Entry, ReportError, class_charts, class_name, csv, markdown};
use crate::compare::Comparison;

/// Synthesized images per class in each grid of [`RunReport::write`].
const GRID_PER_CLASS: usize = 12;

/// What kind of run a folder holds, with its per-epoch metrics.
#[derive(Debug, Clone)]
pub enum RunKind {
    /// A FERD distillation.
    Ferd(Vec<DistillEpoch>),
    /// A teacher's training.
    Teacher(Vec<TeacherEpoch>),
}

/// A run folder, read.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The folder.
    pub dir: PathBuf,
    /// Its metrics.
    pub kind: RunKind,
    /// The teacher-student comparison of a finished FERD run (`final.json`), if any.
    pub comparison: Option<Comparison>,
}

impl RunReport {
    /// Reads the run in `dir`: its `metrics.jsonl` as FERD records or else as teacher metrics,
    /// and `final.json` when present.
    ///
    /// # Examples
    ///
    /// A two-epoch FERD run (the `tiny` budget), then its report:
    /// ```
    /// use ferd::distill::{Budget, FerdConfig, FerdMethod, RunOptions};
    /// use ferd::pipeline::Distillation;
    /// use ferd::report::RunReport;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = std::env::temp_dir().join("ferd-doc-run-report");
    /// # let _ = std::fs::remove_dir_all(&dir);
    /// let options = RunOptions::new(&dir, ferd::core::DeviceSpec::Flex.device()?);
    /// let config = FerdConfig::preset(Budget::Tiny, FerdMethod::Ferd);
    /// Distillation { final_per_class: 2, ..Distillation::new(config, options) }.run(&mut ())?;
    /// let report = RunReport::read(&dir)?;
    /// let files = report.write(dir.join("report"))?;
    /// assert!(files.iter().any(|f| f.ends_with("curves.svg")));
    /// assert!(report.markdown().contains("| student | SmallCNN-8 |"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn read(dir: impl AsRef<Path>) -> Result<Self, ReportError> {
        let dir = dir.as_ref().to_path_buf();
        let kind = match read_metrics::<DistillEpoch>(&dir) {
            Ok(records) => RunKind::Ferd(records),
            Err(ferd_err) => match read_metrics::<TeacherEpoch>(&dir) {
                Ok(metrics) => RunKind::Teacher(metrics),
                Err(_) => return Err(ReportError::Distill(ferd_err)),
            },
        };
        let final_path = dir.join("final.json");
        let comparison = if final_path.exists() {
            let text = std::fs::read_to_string(&final_path).map_err(|e| ReportError::File {
                path: final_path.clone(),
                reason: e.to_string(),
            })?;
            Some(serde_json::from_str(&text).map_err(|e| ReportError::File {
                path: final_path.clone(),
                reason: format!("not the final comparison of a FERD run: {e}"),
            })?)
        } else {
            None
        };
        Ok(Self {
            dir,
            kind,
            comparison,
        })
    }

    /// Markdown: the final comparison (when the run finished) and a table of every epoch.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Run `{}`\n", self.dir.display());
        if let Some(c) = &self.comparison {
            let _ = writeln!(
                out,
                "Teacher and student on {} test images; distillation {:.1} min, with the \
                 evaluation {:.1} min.\n",
                c.test_images,
                c.distill_seconds / 60.0,
                c.total_seconds / 60.0
            );
            out.push_str(&markdown(&[
                Entry::new("teacher", &c.teacher),
                Entry::new("student", &c.student),
            ]));
        }
        match &self.kind {
            RunKind::Ferd(records) => ferd_epochs(&mut out, records),
            RunKind::Teacher(metrics) => teacher_epochs(&mut out, metrics),
        }
        let epochs = self.synthesized_epochs();
        if !epochs.is_empty() {
            let _ = writeln!(
                out,
                "\n## Synthesized images\n\nOne row per class (class 0 at the top), the first \
                 {GRID_PER_CLASS} images the generator made for it in the epoch's round (blank: \
                 fewer were drawn for that class).\n"
            );
            for epoch in epochs {
                let _ = writeln!(out, "![epoch {}]({})\n", epoch + 1, grid_file(epoch));
            }
        }
        out
    }

    /// The epochs (0-based) whose synthesized images [`write`](Self::write) draws as grids:
    /// the first and the last of a FERD run whose sample bank is in its checkpoint.
    pub fn synthesized_epochs(&self) -> Vec<usize> {
        let bank = self.dir.join("checkpoint").join("bank.safetensors");
        match &self.kind {
            RunKind::Ferd(records) if bank.is_file() => {
                let mut epochs: Vec<usize> = records
                    .first()
                    .into_iter()
                    .chain(records.last())
                    .map(|r| r.epoch)
                    .collect();
                epochs.dedup();
                epochs
            }
            _ => Vec::new(),
        }
    }

    /// Writes the grids of [`synthesized_epochs`](Self::synthesized_epochs) into `dir`: the
    /// rows of the bank each epoch's round added, by class.
    fn synthesized_grids(&self, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
        let (epochs, RunKind::Ferd(records)) = (self.synthesized_epochs(), &self.kind) else {
            return Ok(Vec::new());
        };
        if epochs.is_empty() {
            return Ok(Vec::new());
        }
        let config = FerdConfig::read(self.dir.join("config.json"))?;
        let shape = [config.image.channels, config.image.side, config.image.side];
        let mut bank = Bank::new(shape, config.num_classes)?;
        bank.load(&self.dir.join("checkpoint"))?;
        let dataset = bank.dataset()?;
        let mut written = Vec::new();
        for epoch in epochs {
            let at = records.iter().position(|r| r.epoch == epoch).unwrap_or(0);
            let start = at.checked_sub(1).map_or(0, |p| records[p].bank_size);
            let end = records[at].bank_size.min(bank.len());
            let grid = Grid::per_class(&dataset, start..end, GRID_PER_CLASS);
            let path = dir.join(grid_file(epoch));
            grid.save_png(&path)?;
            written.push(path);
        }
        Ok(written)
    }

    /// The run's charts as `(file stem, SVG)`: accuracy and worst class over epochs, NSD over
    /// epochs; for FERD also the class distribution chosen by reweighting, the classes the
    /// student gives its UTAE examples, and the synthesis losses; and the final per-class
    /// comparison when the run finished.
    pub fn charts(&self) -> Vec<(String, String)> {
        let mut charts = Vec::new();
        let line = |label: &str, points: Vec<(f64, f64)>, dashed| Line {
            label: label.into(),
            points,
            dashed,
        };
        // Both kinds of run evaluate clean and PGD accuracy per epoch: one pair of charts.
        let (title, evaluated): (&str, Vec<(f64, &ClassWiseAccuracy, &ClassWiseAccuracy)>) =
            match &self.kind {
                RunKind::Ferd(records) => (
                    "Student on the test set per epoch (reported, never used to select)",
                    records
                        .iter()
                        .filter_map(|r| {
                            let e = r.evaluation.as_ref()?;
                            Some((r.epoch as f64 + 1.0, &e.clean, &e.robust))
                        })
                        .collect(),
                ),
                RunKind::Teacher(metrics) => (
                    "Teacher on the held-out training images per epoch",
                    metrics
                        .iter()
                        .map(|m| (m.epoch as f64 + 1.0, &m.clean, &m.robust))
                        .collect(),
                ),
            };
        let series = |f: &dyn Fn(&ClassWiseAccuracy, &ClassWiseAccuracy) -> Option<f64>| {
            evaluated
                .iter()
                .filter_map(|(x, clean, robust)| Some((*x, f(clean, robust)?)))
                .collect::<Vec<_>>()
        };
        let chart = LineChart {
            title: title.into(),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            percent: true,
            lines: vec![
                line("clean", series(&|c, _| Some(c.overall)), false),
                line("PGD", series(&|_, r| Some(r.overall)), false),
                line(
                    "PGD, worst class",
                    series(&|_, r| r.worst_class.map(|w| w.1)),
                    true,
                ),
            ],
        };
        charts.push(("curves".into(), chart.to_svg()));
        let chart = LineChart {
            title: "NSD of the class-wise accuracies (lower is fairer)".into(),
            x_label: "epoch".into(),
            y_label: "NSD".into(),
            percent: false,
            lines: vec![
                line("clean", series(&|c, _| c.nsd), false),
                line("PGD", series(&|_, r| r.nsd), false),
            ],
        };
        charts.push(("nsd".into(), chart.to_svg()));
        if let RunKind::Ferd(records) = &self.kind {
            let classes = records.first().map_or(0, |r| r.class_distribution.len());
            let names = self.class_names(classes);
            // One line per class of a per-class fraction of each epoch (where it has one).
            let per_class = |fraction: &dyn Fn(&DistillEpoch, usize) -> Option<f64>| -> Vec<Line> {
                (0..classes)
                    .map(|c| {
                        let points = records
                            .iter()
                            .filter_map(|r| Some((r.epoch as f64 + 1.0, fraction(r, c)?)))
                            .collect();
                        line(&names[c], points, false)
                    })
                    .collect()
            };
            let chart = LineChart {
                title: "Class distribution of each round's labels (reweighting)".into(),
                x_label: "epoch".into(),
                y_label: "probability".into(),
                percent: false,
                lines: per_class(&|r, c| r.class_distribution.get(c).copied()),
            };
            charts.push(("class_distribution".into(), chart.to_svg()));
            let utae = |r: &DistillEpoch, c: usize| {
                let counts = &r.student.as_ref()?.utae_predictions;
                let total: u64 = counts.iter().sum();
                let count = *counts.get(c)?;
                (total > 0).then(|| count as f64 / total as f64)
            };
            if records
                .iter()
                .any(|r| (0..classes).any(|c| utae(r, c).is_some()))
            {
                let chart = LineChart {
                    title: "The student's classes on the UTAE examples of each epoch".into(),
                    x_label: "epoch".into(),
                    y_label: "fraction".into(),
                    percent: false,
                    lines: per_class(&utae),
                };
                charts.push(("utae_predictions".into(), chart.to_svg()));
            }
            let term = |f: &dyn Fn(&DistillEpoch) -> f64| {
                records
                    .iter()
                    .map(|r| (r.epoch as f64 + 1.0, f(r)))
                    .collect::<Vec<_>>()
            };
            let chart = LineChart {
                title: "Synthesis losses, mean over each round's steps".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                percent: false,
                lines: vec![
                    line("L_bn", term(&|r| r.synthesis_mean.bn), false),
                    line(
                        "IKL(s, t) = -L_adv",
                        term(&|r| -r.synthesis_mean.adv),
                        false,
                    ),
                    line("L_oh", term(&|r| r.synthesis_mean.oh), false),
                    line("L_uni", term(&|r| r.synthesis_mean.uni), false),
                ],
            };
            charts.push(("synthesis_losses".into(), chart.to_svg()));
        }
        if let Some(c) = &self.comparison {
            let entries = [
                Entry::new("teacher", &c.teacher),
                Entry::new("student", &c.student),
            ];
            for (stem, chart) in class_charts(&entries) {
                charts.push((stem, chart.to_svg()));
            }
        }
        charts
    }

    /// Writes `report.md`, the charts of [`RunReport::charts`] as SVG and, when the run
    /// finished, `report.csv` of the final comparison into `dir`; returns the files written.
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, ReportError> {
        let dir = dir.as_ref();
        create_dir(dir)?;
        let mut written = vec![write_file(dir.join("report.md"), &self.markdown())?];
        if let Some(c) = &self.comparison {
            let entries = [
                Entry::new("teacher", &c.teacher),
                Entry::new("student", &c.student),
            ];
            written.push(write_file(dir.join("report.csv"), &csv(&entries))?);
        }
        for (stem, svg) in self.charts() {
            written.push(write_file(dir.join(format!("{stem}.svg")), &svg)?);
        }
        written.extend(self.synthesized_grids(dir)?);
        Ok(written)
    }

    fn class_names(&self, classes: usize) -> Vec<String> {
        (0..classes)
            .map(|c| match &self.comparison {
                Some(comparison) => class_name(&comparison.student, c),
                None => c.to_string(),
            })
            .collect()
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}", 100.0 * v)
}

fn opt(v: Option<f64>, f: fn(f64) -> String) -> String {
    v.map_or("–".into(), f)
}

fn ferd_epochs(out: &mut String, records: &[DistillEpoch]) {
    let _ = writeln!(
        out,
        "## Epochs\n\n| epoch | L_bn | IKL(s,t) | L_oh | L_uni | robust mask | teacher agrees | \
         p(class) min–max | classes ≥ {held:.0}% | bank | student loss | clean | PGD | PGD worst | PGD NSD | seconds |\n\
         |---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        held = HELD_SHARE * 100.0
    );
    for r in records {
        let s = &r.synthesis_mean;
        let (lo, hi) = r
            .class_distribution
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), &p| {
                (lo.min(p), hi.max(p))
            });
        let e = r.evaluation.as_ref();
        let seconds = r.seconds.synthesis + r.seconds.fragility + r.seconds.student;
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {} | {lo:.3}–{hi:.3} | {} | {} | {} | {} | {} | {} | {} | {seconds:.0} |",
            r.epoch + 1,
            s.bn,
            -s.adv,
            s.oh,
            s.uni,
            pct(s.robust_fraction),
            pct(r.teacher_agreement),
            classes_held(&r.label_counts),
            r.bank_size,
            opt(r.student.as_ref().map(|s| s.loss), |v| format!("{v:.4}")),
            opt(e.map(|e| e.clean.overall), pct),
            opt(e.map(|e| e.robust.overall), pct),
            opt(e.and_then(|e| e.robust.worst_class.map(|w| w.1)), pct),
            opt(e.and_then(|e| e.robust.nsd), |v| format!("{v:.3}")),
        );
    }
    let _ = writeln!(
        out,
        "\nAccuracy in %, on the test images of the per-epoch evaluation (reported only: the \
         run keeps its last student)."
    );
}

fn teacher_epochs(out: &mut String, metrics: &[TeacherEpoch]) {
    let _ = writeln!(
        out,
        "## Epochs\n\n| epoch | lr | train loss | train accuracy | clean | PGD | PGD worst | PGD NSD | seconds |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in metrics {
        let _ = writeln!(
            out,
            "| {} | {:.4} | {:.4} | {} | {} | {} | {} | {} | {:.0} |",
            m.epoch + 1,
            m.lr,
            m.train_loss,
            pct(m.train_accuracy),
            pct(m.clean.overall),
            pct(m.robust.overall),
            opt(m.robust.worst_class.map(|w| w.1), pct),
            opt(m.robust.nsd, |v| format!("{v:.3}")),
            m.seconds
        );
    }
    let _ = writeln!(
        out,
        "\nAccuracy in %, on the images held out of the training set."
    );
}

/// The file of the grid of synthesized images of `epoch` (0-based).
fn grid_file(epoch: usize) -> String {
    format!("synthesized-epoch-{}.png", epoch + 1)
}
