//! A study's per-class charts: one per measure, one bar per arm (mean over seeds), with the
//! bootstrap interval of each class.

use super::{Arm, class_means, figures};
use crate::report::svg::{BarChart, Bars};
use crate::report::{class_name, file_stem};

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
            (format!("study_{}", file_stem(m)), chart)
        })
        .collect()
}
