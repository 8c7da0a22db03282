//! A study: several arms (methods), each run with one or more seeds, summarized in the layout of
//! the FERD paper's tables: for every measure (clean, FGSM, PGD, CW, AutoAttack) the average,
//! worst-class accuracy and NSD, as mean ± standard deviation over seeds; and per class,
//! bootstrap intervals over the test images.
//!
//! A study folder holds one folder per run, `<arm>-s<seed>` (or `<arm>` for a single model such
//! as the teacher), each with the evaluations of `tools/study/*.sh`: `eval-10k.json` (clean and
//! the attacks on the whole test set) and, optionally, `eval-aa1000.json` (AutoAttack on a
//! class-balanced subset), whose measures are merged.

use std::fmt::Write as _;
use std::path::Path;

use ferd_attacks::EvaluationReport;
use ferd_core::metrics::ClassWiseAccuracy;
use ferd_distill::{EpochRecord, read_metrics};

use super::diagnostics::{HELD_SHARE, WEAKEST, diagnose};
use super::svg::{BarChart, Bars};
use super::{ReportError, class_name, measure};

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
    pub histories: Vec<Vec<EpochRecord>>,
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
fn class_means(accuracies: &[&ClassWiseAccuracy]) -> Vec<Option<f64>> {
    let classes = accuracies.first().map_or(0, |a| a.per_class.len());
    (0..classes)
        .map(|c| {
            let values: Option<Vec<f64>> = accuracies.iter().map(|a| a.per_class[c]).collect();
            values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect()
}

/// Mean and sample standard deviation of a figure over seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The mean.
    pub mean: f64,
    /// The sample standard deviation (`n - 1`); `None` for a single seed.
    pub std: Option<f64>,
}

impl Spread {
    /// The spread of `values` (at least one).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.len() > 1)
            .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
        Self { mean, std }
    }

    /// `mean ± std` scaled by `scale` with `decimals` decimals (`mean` alone for one seed).
    fn show(&self, scale: f64, decimals: usize) -> String {
        match self.std {
            Some(std) => format!(
                "{:.decimals$} ± {:.decimals$}",
                scale * self.mean,
                scale * std
            ),
            None => format!("{:.decimals$}", scale * self.mean),
        }
    }
}

/// A bootstrap interval of a per-class accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// The accuracy (mean over seeds).
    pub estimate: f64,
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
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
                .map(read_metrics::<EpochRecord>)
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
fn figures(arm: &Arm, name: &str) -> Option<[Spread; 3]> {
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

/// The paper's table: one row per arm; for each of `measures` the average and worst-class
/// accuracy (%) and the NSD, mean ± std over seeds (a dash where an arm lacks the measure).
pub fn paper_table(arms: &[Arm], measures: &[&str]) -> String {
    let mut out = String::from("| arm | seeds |");
    for m in measures {
        let _ = write!(out, " {m} avg | {m} worst | {m} NSD |");
    }
    out.push_str("\n|---|---:|");
    out.push_str(&"---:|".repeat(3 * measures.len()));
    out.push('\n');
    for arm in arms {
        let _ = write!(out, "| {} | {} |", arm.name, arm.seeds.len());
        for m in measures {
            match figures(arm, m) {
                Some([avg, worst, nsd]) => {
                    let _ = write!(
                        out,
                        " {} | {} | {} |",
                        avg.show(100.0, 1),
                        worst.show(100.0, 1),
                        nsd.show(1.0, 3)
                    );
                }
                None => out.push_str(" – | – | – |"),
            }
        }
        out.push('\n');
    }
    out
}

/// Per class, the mean over seeds of `accuracies` with its bootstrap interval at `level`
/// (e.g. 0.95): resampling each seed's test images within the class with replacement. For
/// right/wrong outcomes that bootstrap has an exact distribution, a binomial per seed (the
/// class's images, its accuracy), so the interval is computed, not sampled: the percentiles of
/// the mean of independent binomials.
pub fn class_intervals(accuracies: &[&ClassWiseAccuracy], level: f64) -> Vec<Option<Interval>> {
    let classes = accuracies.first().map_or(0, |a| a.per_class.len());
    (0..classes)
        .map(|c| {
            let seeds: Vec<(u64, f64)> = accuracies
                .iter()
                .map(|a| Some((a.class_counts[c], a.per_class[c]?)))
                .collect::<Option<_>>()?;
            let mut pmf = vec![1.0];
            for &(n, p) in &seeds {
                pmf = convolve(&pmf, &binomial(n as usize, p));
            }
            let total = seeds.iter().map(|s| s.0).sum::<u64>() as f64;
            let tail = (1.0 - level) / 2.0;
            let quantile = |q: f64| {
                let mut cdf = 0.0;
                let k = pmf
                    .iter()
                    .position(|p| {
                        cdf += p;
                        cdf >= q - 1e-12
                    })
                    .unwrap_or(pmf.len() - 1);
                k as f64 / total
            };
            let estimate = seeds.iter().map(|s| s.1).sum::<f64>() / seeds.len() as f64;
            Some(Interval {
                estimate,
                low: quantile(tail),
                high: quantile(1.0 - tail),
            })
        })
        .collect()
}

/// The probabilities of 0..=n successes in `n` trials of probability `p`, computed outward
/// from the mode by the ratio of neighbours (no factorials, no underflow at the mode).
fn binomial(n: usize, p: f64) -> Vec<f64> {
    let mut pmf = vec![0.0; n + 1];
    if p <= 0.0 || p >= 1.0 {
        pmf[if p <= 0.0 { 0 } else { n }] = 1.0;
        return pmf;
    }
    let mode = (((n + 1) as f64) * p).floor().min(n as f64) as usize;
    let odds = p / (1.0 - p);
    pmf[mode] = 1.0;
    for k in mode..n {
        pmf[k + 1] = pmf[k] * (n - k) as f64 / (k + 1) as f64 * odds;
    }
    for k in (0..mode).rev() {
        pmf[k] = pmf[k + 1] * (k + 1) as f64 / ((n - k) as f64 * odds);
    }
    let sum: f64 = pmf.iter().sum();
    pmf.iter_mut().for_each(|p| *p /= sum);
    pmf
}

/// The distribution of the sum of two independent counts.
fn convolve(a: &[f64], b: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; a.len() + b.len() - 1];
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            out[i + j] += x * y;
        }
    }
    out
}

/// Markdown of a study: the paper's table over `measures`, then per measure a class-wise
/// table of every arm, each cell the mean over seeds with its 95% bootstrap interval.
pub fn study_markdown(arms: &[Arm], measures: &[&str]) -> String {
    let mut out = String::from("## Average, worst class and NSD\n\n");
    out.push_str(&paper_table(arms, measures));
    let _ = writeln!(
        out,
        "\nAccuracy in %, NSD (standard deviation of the class-wise accuracies over their \
         mean): mean ± standard deviation over seeds.\n"
    );
    let diagnostics = diagnostics_table(arms);
    if !diagnostics.is_empty() {
        let _ = writeln!(out, "## Diagnostics of FERD's components\n");
        out.push_str(&diagnostics);
        let _ = writeln!(
            out,
            "\nFrom each run's `metrics.jsonl` (`ferd::report::diagnostics`): the share of the \
             synthesized labels after the first round that went to the {WEAKEST} classes with \
             the teacher's lowest {REFERENCE_MEASURE} accuracy (uniform: {:.0}%), Spearman's \
             correlation between each class's share and the teacher's error on it, the mean \
             uniformity loss `L_uni` (– without Fairness-Aware Examples), and the entropy of \
             the classes the student gave its UTAE examples over ln C (1: evenly spread); \
             per round, averaged over rounds: the share of the teacher's channels the \
             information bottleneck kept as robust, the number of classes with at least \
             {:.0}% of the round's labels (the fewest in any round in brackets), and the \
             teacher's agreement with the labels.\n",
            100.0 * WEAKEST as f64 / classes(arms).max(1) as f64,
            100.0 * HELD_SHARE
        );
    }
    let _ = writeln!(out, "## Wall-clock cost\n");
    out.push_str(&cost_table(arms));
    let _ = writeln!(
        out,
        "\nDistillation: the epochs' phases (`metrics.jsonl`), without the final comparison; \
         evaluation: the attacks of `eval-10k.json` and `eval-aa1000.json`.\n"
    );
    let Some(first) = arms.first().and_then(|a| a.seeds.first()) else {
        return out;
    };
    for m in measures {
        let _ = writeln!(out, "## {m}, per class (95% bootstrap interval)\n");
        out.push_str("| class |");
        for arm in arms {
            let _ = write!(out, " {} |", arm.name);
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(arms.len()));
        out.push('\n');
        let columns: Vec<Vec<Option<Interval>>> = arms
            .iter()
            .map(|arm| {
                arm.accuracies(m)
                    .map_or_else(Vec::new, |a| class_intervals(&a, 0.95))
            })
            .collect();
        for c in 0..first.clean.per_class.len() {
            let _ = write!(out, "| {} |", class_name(first, c));
            for column in &columns {
                match column.get(c).copied().flatten() {
                    Some(i) => {
                        let _ = write!(
                            out,
                            " {:.1} [{:.1}, {:.1}] |",
                            100.0 * i.estimate,
                            100.0 * i.low,
                            100.0 * i.high
                        );
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// The number of classes of the study's first report.
fn classes(arms: &[Arm]) -> usize {
    arms.first()
        .and_then(|a| a.seeds.first())
        .map_or(0, |r| r.clean.per_class.len())
}

/// The diagnostics of every distilled arm (mean ± std over seeds), against the per-class
/// PGD-20 accuracy of the arm called `teacher`; empty without either.
pub fn diagnostics_table(arms: &[Arm]) -> String {
    let Some(teacher) = arms
        .iter()
        .find(|a| a.name == TEACHER)
        .and_then(|a| a.seeds.first())
        .and_then(|r| measure(r, REFERENCE_MEASURE))
    else {
        return String::new();
    };
    let reference: Vec<f64> = teacher
        .accuracy
        .per_class
        .iter()
        .map(|a| a.unwrap_or(0.0))
        .collect();
    let mut out = format!(
        "| arm | runs | labels on the teacher's {WEAKEST} weakest classes (%) | rank correlation, \
         class share vs teacher {REFERENCE_MEASURE} error | L_uni | UTAE spread | \
         robust mask (% of channels) | classes holding {held:.0}% of labels (fewest) | \
         teacher agrees with labels (%) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        held = HELD_SHARE * 100.0
    );
    let mut any = false;
    for arm in arms {
        let runs: Vec<_> = arm
            .histories
            .iter()
            .filter_map(|h| diagnose(h, &reference))
            .collect();
        if runs.is_empty() {
            continue;
        }
        any = true;
        let show = |values: Vec<Option<f64>>, scale: f64, decimals: usize| {
            let values: Option<Vec<f64>> = values.into_iter().collect();
            values.map_or("–".to_string(), |v| Spread::of(&v).show(scale, decimals))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} ({}) | {} |",
            arm.name,
            runs.len(),
            show(
                runs.iter().map(|d| Some(d.weakest_mass)).collect(),
                100.0,
                1
            ),
            show(runs.iter().map(|d| d.rank_correlation).collect(), 1.0, 2),
            show(runs.iter().map(|d| d.uniformity_loss).collect(), 1.0, 3),
            show(runs.iter().map(|d| d.utae_spread).collect(), 1.0, 3),
            show(runs.iter().map(|d| d.robust_share).collect(), 100.0, 1),
            show(runs.iter().map(|d| Some(d.classes_held)).collect(), 1.0, 1),
            runs.iter().map(|d| d.fewest_held).min().unwrap_or(0),
            show(
                runs.iter().map(|d| Some(d.teacher_agreement)).collect(),
                100.0,
                1
            ),
        );
    }
    if any { out } else { String::new() }
}

/// The wall-clock cost of every arm, mean ± std over its runs, in minutes: distillation (the
/// epochs' phases from `metrics.jsonl`, resumed slices included, the final comparison not) and
/// evaluation (every attack of the merged evaluations; the clean pass is not timed).
pub fn cost_table(arms: &[Arm]) -> String {
    let mut out = String::from(
        "| arm | runs | distillation (min) | evaluation (min) |\n|---|---:|---:|---:|\n",
    );
    for arm in arms {
        let distill: Vec<f64> = arm
            .histories
            .iter()
            .map(|h| {
                h.iter()
                    .map(|r| {
                        let s = &r.seconds;
                        s.synthesis + s.fragility + s.student + s.evaluation
                    })
                    .sum::<f64>()
                    / 60.0
            })
            .collect();
        let evaluation: Vec<f64> = arm
            .seeds
            .iter()
            .map(|r| r.attacks.iter().map(|a| a.seconds).sum::<f64>() / 60.0)
            .collect();
        let show = |v: &[f64]| {
            if v.is_empty() {
                "–".to_string()
            } else {
                Spread::of(v).show(1.0, 1)
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            arm.name,
            arm.seeds.len(),
            show(&distill),
            show(&evaluation)
        );
    }
    out
}

/// Per measure, a bar chart of the class-wise accuracy of every arm (mean over seeds), the
/// worst class outlined, as `(file stem, chart)`: `study_<measure>`.
pub fn study_charts(arms: &[Arm], measures: &[&str]) -> Vec<(String, BarChart)> {
    let Some(first) = arms.first().and_then(|a| a.seeds.first()) else {
        return Vec::new();
    };
    let classes = first.clean.per_class.len();
    let categories: Vec<String> = (0..classes).map(|c| class_name(first, c)).collect();
    measures
        .iter()
        .map(|m| {
            let series = arms
                .iter()
                .filter_map(|arm| {
                    let values = class_means(&arm.accuracies(m)?);
                    let marked = values
                        .iter()
                        .enumerate()
                        .filter_map(|(c, v)| Some((c, (*v)?)))
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|(c, _)| c);
                    let [avg, worst, nsd] = figures(arm, m)?;
                    Some(Bars {
                        label: arm.name.clone(),
                        values,
                        marked,
                        note: format!(
                            "average {}%, worst class {}%, NSD {} ({} seed{})",
                            avg.show(100.0, 1),
                            worst.show(100.0, 1),
                            nsd.show(1.0, 3),
                            arm.seeds.len(),
                            if arm.seeds.len() == 1 { "" } else { "s" }
                        ),
                    })
                })
                .collect();
            let chart = BarChart {
                title: format!("{m}: accuracy per class, mean over seeds"),
                categories: categories.clone(),
                series,
            };
            (format!("study_{}", super::file_stem(m)), chart)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accuracy(predictions: &[usize], labels: &[usize]) -> ClassWiseAccuracy {
        ClassWiseAccuracy::from_predictions(predictions, labels, 2).unwrap()
    }

    #[test]
    fn spread_is_the_mean_and_sample_deviation() {
        let s = Spread::of(&[0.5, 0.7]);
        assert!((s.mean - 0.6).abs() < 1e-12);
        // sqrt(((0.1)^2 + (0.1)^2) / 1)
        assert!((s.std.unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.show(100.0, 1), "60.0 ± 14.1");
        assert_eq!(Spread::of(&[0.25]).show(100.0, 1), "25.0");
    }

    #[test]
    fn binomial_matches_pascals_triangle() {
        let pmf = binomial(4, 0.5);
        for (p, expected) in pmf.iter().zip([1.0, 4.0, 6.0, 4.0, 1.0]) {
            assert!((p - expected / 16.0).abs() < 1e-12);
        }
        // n = 1000 at p = 0.9: (0.1)^1000 underflows, the mode does not; the mean is n p.
        let pmf = binomial(1000, 0.9);
        let mean: f64 = pmf.iter().enumerate().map(|(k, p)| k as f64 * p).sum();
        assert!((mean - 900.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn intervals_are_the_percentiles_of_the_bootstrap_distribution() {
        // Class 0: 4 images, 2 right. Bootstrap counts ~ Bin(4, 1/2); CDF 1/16, 5/16, 11/16,
        // 15/16, 1: at 80%, the 10th percentile is 1 of 4 and the 90th 3 of 4.
        let labels = [0, 0, 0, 0, 1, 1];
        let one = accuracy(&[0, 0, 1, 1, 1, 1], &labels);
        let intervals = class_intervals(&[&one], 0.8);
        assert_eq!(
            intervals[0],
            Some(Interval {
                estimate: 0.5,
                low: 0.25,
                high: 0.75
            })
        );
        // Class 1 always right: no spread.
        let i = intervals[1].unwrap();
        assert_eq!((i.estimate, i.low, i.high), (1.0, 1.0, 1.0));
        // Two seeds, class 0 at 0% and 100%: the mean is 1/2 whatever the resampling.
        let other = accuracy(&[1, 1, 1, 1, 1, 1], &labels);
        let all = accuracy(&[0, 0, 0, 0, 1, 1], &labels);
        let i = class_intervals(&[&other, &all], 0.95)[0].unwrap();
        assert_eq!((i.estimate, i.low, i.high), (0.5, 0.5, 0.5));
    }
}
