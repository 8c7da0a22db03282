//! `ferd`: FERD distillation, class-wise robustness evaluation, robust teachers and reports,
//! from the command line. Each subcommand is a thin layer over the library: the same presets,
//! configs and run folders as the API.
//!
//! Exit codes: 0 success, 1 a failed run (the error is printed), 2 bad arguments.

mod distill;
mod evaluate;
mod report;
mod teacher;
mod ui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, keeping freed memory for reuse (`ferd::allocator`).
#[global_allocator]
static ALLOCATOR: ferd::allocator::Allocator = ferd::allocator::Allocator;

/// Data-free adversarial robustness distillation with robust fairness (FERD), on Burn.
#[derive(Debug, Parser)]
#[command(name = "ferd", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Distill a robust student from a robust teacher without training data (FERD), then compare
    /// the two class by class on the test set.
    Distill(distill::Args),
    /// Evaluate a model under attacks (FGSM, PGD, CW, APGD, FAB, Square, AutoAttack), class by
    /// class, and write the report as JSON.
    Evaluate(evaluate::Args),
    /// Train a robust teacher from a recipe (adversarial training on a dataset).
    TrainTeacher(teacher::Args),
    /// Turn evaluation reports or a run folder into Markdown, CSV and SVG charts.
    Report(report::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Distill(args) => distill::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::TrainTeacher(args) => teacher::run(args),
        Command::Report(args) => report::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}

/// `--list-config`: every field as `key = value`, then its doc and an enum's alternatives,
/// wrapped and indented.
fn list_config(fields: &[ferd::distill::config::FieldDoc]) -> String {
    let mut out = String::new();
    for field in fields {
        out.push_str(&format!("{} = {}\n", field.key, shortest(&field.value)));
        wrap(&mut out, "    ", &field.doc);
        for alternative in &field.alternatives {
            wrap(&mut out, "      - ", alternative);
        }
    }
    out
}

/// `text` wrapped at 96 columns, the first line after `lead`, the others aligned with it.
fn wrap(out: &mut String, lead: &str, text: &str) {
    const WIDTH: usize = 96;
    let indent = " ".repeat(lead.len());
    let mut line = lead.to_string();
    for word in text.split_whitespace() {
        if line.len() > indent.len() && line.len() + 1 + word.len() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line.clone_from(&indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// JSON with each number as written in a config: an `f32` field's 0.3 is shown as 0.3, not as
/// the 0.30000001192092896 its widening to `f64` gives.
fn shortest(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let v = n.as_f64().unwrap_or_default();
            let narrow = v as f32;
            if f64::from(narrow) == v {
                format!("{narrow:?}")
            } else {
                format!("{v:?}")
            }
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(shortest).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), shortest(v)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
        other => other.to_string(),
    }
}

/// Parses `KEY=VALUE` of `--set`.
fn key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    Ok((key.trim().to_string(), value.trim().to_string()))
}
