//! RobustBench's view of an evaluation: the `model_info` JSON each leaderboard entry has
//! (`model_info/<dataset>/Linf/<Name>.json` in the RobustBench repository), and its
//! leaderboard's column names, so that ferd's figures go next to RobustBench's as they are.

use serde::Serialize;

use ferd_attacks::EvaluationReport;
use ferd_models::zoo::Architecture;

use super::{Entry, measure};

/// The name of AutoAttack's standard version in ferd's reports.
const AUTOATTACK: &str = "autoattack";

/// One model's entry in RobustBench's format: the same keys, accuracies as strings in % with
/// two decimals, `eps` as a string (`"8/255"`). What ferd cannot know (the paper, its link,
/// authors, venue, the reported figure) is `null`, for the user to fill in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// The paper's link.
    pub link: Option<String>,
    /// The paper's title.
    pub name: Option<String>,
    /// The paper's authors.
    pub authors: Option<String>,
    /// Whether training used data beyond the dataset's training set.
    pub additional_data: Option<bool>,
    /// Forward passes per prediction (1 for a plain classifier).
    pub number_forward_passes: u32,
    /// The dataset (`cifar10`, `fashion-mnist`, ...).
    pub dataset: String,
    /// Where the paper appeared.
    pub venue: Option<String>,
    /// The architecture, as RobustBench names it (`WideResNet-34-10`).
    pub architecture: Option<String>,
    /// The Linf radius.
    pub eps: String,
    /// Clean accuracy in %.
    pub clean_acc: String,
    /// The robust accuracy the paper reported, in %.
    pub reported: Option<String>,
    /// Robust accuracy under AutoAttack (standard) in %.
    pub autoattack_acc: String,
}

/// RobustBench's `model_info` for a report with an AutoAttack (standard) measure; `None`
/// without one (RobustBench ranks by AutoAttack only).
pub fn model_info(entry: &Entry) -> Option<ModelInfo> {
    let report = entry.report;
    let autoattack = measure(report, AUTOATTACK)?;
    Some(ModelInfo {
        link: None,
        name: None,
        authors: None,
        additional_data: None,
        number_forward_passes: 1,
        dataset: dataset(report),
        venue: None,
        architecture: architecture(report),
        eps: eps_string(autoattack.eps.unwrap_or_default()),
        clean_acc: format!("{:.2}", 100.0 * report.clean.overall),
        reported: None,
        autoattack_acc: format!("{:.2}", 100.0 * autoattack.accuracy.overall),
    })
}

/// The dataset without ferd's split suffix: `fashion-mnist/test` is `fashion-mnist`.
pub fn dataset(report: &EvaluationReport) -> String {
    let name = report.dataset.as_str();
    name.split_once('/').map_or(name, |(d, _)| d).to_string()
}

/// The architecture as papers and RobustBench name it (`WideResNet-34-10`), or as the report
/// gives it when ferd does not know the name.
pub fn architecture(report: &EvaluationReport) -> Option<String> {
    let name = report.architecture.as_ref()?;
    Some(
        name.parse::<Architecture>()
            .map_or_else(|_| name.clone(), |a| a.paper_name()),
    )
}

/// `eps` as RobustBench writes it: `k/255` when it is one (to 1e-6), else the decimal.
pub fn eps_string(eps: f32) -> String {
    let k = (f64::from(eps) * 255.0).round();
    if k >= 1.0 && (f64::from(eps) - k / 255.0).abs() < 1e-6 {
        format!("{k}/255")
    } else {
        format!("{eps}")
    }
}

/// The leaderboard's name of a measure's column: clean accuracy is `Standard accuracy`,
/// AutoAttack's is `AutoAttack robust accuracy`; other attacks keep their names.
pub fn column_name(measure: &str) -> String {
    match measure {
        "clean" => "Standard accuracy".into(),
        AUTOATTACK => "AutoAttack robust accuracy".into(),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use ferd_attacks::AttackReport;
    use ferd_core::metrics::ClassWiseAccuracy;

    use super::*;

    /// A CIFAR-10 WRN-34-10 report: 3 of 4 images right clean, 1 of 4 under AutoAttack.
    fn report() -> EvaluationReport {
        let labels = [0, 1, 2, 3];
        let accuracy = |predictions: &[usize]| {
            ClassWiseAccuracy::from_predictions(predictions, &labels, 10).unwrap()
        };
        EvaluationReport {
            architecture: Some("wrn-34-10".into()),
            dataset: "cifar10/test".into(),
            samples: 4,
            class_names: Vec::new(),
            seed: 0,
            clean: accuracy(&[0, 1, 2, 9]),
            attacks: vec![AttackReport {
                name: "autoattack".into(),
                eps: 8.0 / 255.0,
                robust: accuracy(&[0, 9, 9, 9]),
                stages: Vec::new(),
                max_perturbation: 8.0 / 255.0,
                seconds: 1.0,
            }],
            warnings: Vec::new(),
        }
    }

    #[test]
    fn model_info_has_robustbench_keys_and_formats() {
        let report = report();
        let info =
            serde_json::to_value(model_info(&Entry::new("student", &report)).unwrap()).unwrap();
        // The keys of RobustBench's model_info/cifar10/Linf/*.json files (a serde_json map
        // lists them sorted).
        let keys: Vec<&str> = info
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = [
            "link",
            "name",
            "authors",
            "additional_data",
            "number_forward_passes",
            "dataset",
            "venue",
            "architecture",
            "eps",
            "clean_acc",
            "reported",
            "autoattack_acc",
        ];
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(info["clean_acc"], "75.00");
        assert_eq!(info["autoattack_acc"], "25.00");
        assert_eq!(info["eps"], "8/255");
        assert_eq!(info["dataset"], "cifar10");
        assert_eq!(info["architecture"], "WideResNet-34-10");
        assert_eq!(info["number_forward_passes"], 1);
        assert!(info["link"].is_null() && info["reported"].is_null());
    }

    #[test]
    fn no_model_info_without_autoattack() {
        let mut report = report();
        report.attacks[0].name = "pgd-20".into();
        assert_eq!(model_info(&Entry::new("student", &report)), None);
    }

    #[test]
    fn eps_is_written_as_robustbench_writes_it() {
        assert_eq!(eps_string(8.0 / 255.0), "8/255");
        assert_eq!(eps_string(0.5 / 255.0 * 2.0), "1/255");
        assert_eq!(eps_string(0.1), "0.1");
        assert_eq!(eps_string(0.3), "0.3");
    }
}
