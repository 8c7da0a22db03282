//! A study's Markdown: the paper's table (per measure the average, worst class and NSD, mean ±
//! std over seeds), per-class tables with their intervals, the diagnostics of FERD's components
//! and the wall-clock cost of every arm.

use std::fmt::Write as _;

use super::stats::{Interval, Spread, class_intervals};
use super::{Arm, REFERENCE_MEASURE, TEACHER, figures};
use crate::report::diagnostics::{HELD_SHARE, WEAKEST, diagnose};
use crate::report::{class_name, measure};

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
