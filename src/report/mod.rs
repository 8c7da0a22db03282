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

mod error;
mod evaluation;
mod files;

pub mod diagnostics;
pub mod robustbench;
pub mod run;
pub mod study;
pub mod svg;

pub use error::ReportError;
pub use evaluation::{
    Entry, Measure, class_charts, class_name, csv, file_stem, markdown, measure, measures,
    write_evaluation,
};
pub use run::{RunKind, RunReport};
pub use svg::{BarChart, Bars, Line, LineChart};
