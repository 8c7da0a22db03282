//! `ferd`: FERD distillation, class-wise robustness evaluation, robust teachers and reports,
//! from the command line. Each subcommand is a thin layer over the library: the same presets,
//! configs and run folders as the API.
//!
//! Exit codes: 0 success, 1 a failed run (the error is printed), 2 bad arguments.

mod distill;
mod evaluate;
mod job;
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
