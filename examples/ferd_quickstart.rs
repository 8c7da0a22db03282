//! The FERD quickstart: distill a robust student from the bundled Fashion-MNIST teacher without
//! any training data, then compare student and teacher class by class (clean and PGD-20 on the
//! Fashion-MNIST test set).
//!
//! ```sh
//! cargo run --example ferd_quickstart
//! cargo run --example ferd_quickstart -- --budget fmnist --method dfrd-uniform \
//!     --out runs/fmnist-dfrd --seed 1
//! ```
//!
//! Options: `--budget fmnist-quick|fmnist|cifar10-paper|tiny` (default `fmnist-quick`),
//! `--method ferd|ferd-official-code|dfrd-uniform|no-reweighting|no-fae|no-utae|no-fae-utae`
//! (default `ferd`), `--config FILE` (a `config.json` instead of a preset), `--out DIR` (default
//! `runs/quickstart`), `--resume`, `--stop-after N` (epochs, to run in slices), `--seed S`,
//! `--epochs N`, `--student ARCH` (default `small-cnn-8`), `--teacher-arch ARCH` and
//! `--teacher FILE` (default: the bundled teacher), `--final-per-class N` (test images per class
//! of the final comparison, a balanced subset; default 100, 1000 for the whole Fashion-MNIST test
//! set), `--device flex|wgpu|cuda:N`, `--data-dir DIR`.
//!
//! The run folder gets `config.json`, `metrics.jsonl` (one line per epoch: synthesis losses,
//! class distribution, fragility, student losses, per-epoch evaluation), `checkpoint/`,
//! `student.bpk` and `final.json` (the final comparison).

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use ferd::core::DeviceSpec;
use ferd::distill::{Budget, FerdConfig, FerdMethod, RunOptions};
use ferd::distillation::{BUNDLED_TEACHER, Distillation, Outcome};
use ferd::models::zoo::Architecture;

/// Test images per class of the final comparison: 1,000 images keep the quickstart within its
/// ten minutes (PGD-20 on all 10,000 takes about five more minutes on 2 cores).
const FINAL_PER_CLASS: usize = 100;

const USAGE: &str = "usage: ferd_quickstart [--budget NAME] [--method NAME] [--config FILE] \
[--out DIR] [--resume] [--stop-after N] [--seed S] [--epochs N] [--student ARCH] \
[--teacher-arch ARCH] [--teacher FILE] [--final-per-class N] [--device flex|wgpu|cuda:N] \
[--data-dir DIR]";

struct Args {
    budget: Budget,
    method: FerdMethod,
    config: Option<PathBuf>,
    out: PathBuf,
    resume: bool,
    stop_after: Option<usize>,
    seed: Option<u64>,
    epochs: Option<usize>,
    student: Architecture,
    teacher_arch: Architecture,
    teacher: PathBuf,
    final_per_class: usize,
    device: DeviceSpec,
    data_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        budget: Budget::FmnistQuick,
        method: FerdMethod::Ferd,
        config: None,
        out: PathBuf::from("runs/quickstart"),
        resume: false,
        stop_after: None,
        seed: None,
        epochs: None,
        student: Architecture::SmallCnn { width: 8 },
        teacher_arch: Architecture::SmallCnn { width: 16 },
        teacher: PathBuf::from(BUNDLED_TEACHER),
        final_per_class: FINAL_PER_CLASS,
        device: DeviceSpec::Flex,
        data_dir: None,
    };
    fn number<T: std::str::FromStr>(name: &str, v: String) -> Result<T, String> {
        v.parse()
            .map_err(|_| format!("{name}: `{v}` is not a number"))
    }
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let text = |e: &dyn std::fmt::Display| e.to_string();
        match arg.as_str() {
            "--budget" => args.budget = value(&arg)?.parse().map_err(|e| text(&e))?,
            "--method" => args.method = value(&arg)?.parse().map_err(|e| text(&e))?,
            "--config" => args.config = Some(value(&arg)?.into()),
            "--out" => args.out = value(&arg)?.into(),
            "--resume" => args.resume = true,
            "--stop-after" => args.stop_after = Some(number(&arg, value(&arg)?)?),
            "--seed" => args.seed = Some(number(&arg, value(&arg)?)?),
            "--epochs" => args.epochs = Some(number(&arg, value(&arg)?)?),
            "--student" => args.student = value(&arg)?.parse().map_err(|e| text(&e))?,
            "--teacher-arch" => args.teacher_arch = value(&arg)?.parse().map_err(|e| text(&e))?,
            "--teacher" => args.teacher = value(&arg)?.into(),
            "--final-per-class" => args.final_per_class = number(&arg, value(&arg)?)?,
            "--device" => args.device = value(&arg)?.parse().map_err(|e| text(&e))?,
            "--data-dir" => args.data_dir = Some(value(&arg)?.into()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(args)
}

fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.1}", 100.0 * v))
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut config = match &args.config {
        Some(path) => FerdConfig::read(path)?,
        None => FerdConfig::preset(args.budget, args.method),
    };
    if let Some(seed) = args.seed {
        config.seed = seed;
    }
    if let Some(epochs) = args.epochs {
        config.epochs = epochs;
    }
    eprintln!(
        "FERD ({}) from {:?} to {:?}: {} epochs, {} images per round, into {}",
        args.config
            .as_ref()
            .map_or(format!("{} / {}", args.method, args.budget), |p| p
                .display()
                .to_string()),
        args.teacher_arch,
        args.student,
        config.epochs,
        config.batch_size,
        args.out.display()
    );
    let run = Distillation {
        config,
        teacher_arch: args.teacher_arch,
        teacher_weights: args.teacher.clone(),
        pytorch: false,
        renames: Vec::new(),
        student_arch: args.student,
        options: RunOptions {
            dir: args.out.clone(),
            resume: args.resume,
            stop_after: args.stop_after,
            device: args.device.device()?,
        },
        data_dir: args.data_dir.clone(),
        final_per_class: args.final_per_class,
    };
    let mut renderer = common::Renderer::new();
    let comparison = match run.run(&mut |e: &ferd::distill::Event| renderer.draw(e))? {
        Outcome::Stopped { epochs_done } => {
            eprintln!(
                "stopped after epoch {epochs_done} of {}; continue with --resume",
                run.config.epochs
            );
            return Ok(());
        }
        Outcome::Finished(comparison) => comparison,
    };
    let config = &run.config;
    let distill_seconds = comparison.distill_seconds;
    let (teacher_report, student_report) = (&comparison.teacher, &comparison.student);

    let names = &comparison.student.class_names;
    let pgd_name = &student_report.attacks[0].name;
    println!(
        "\n{:<12} {:>14} {:>14} {:>14} {:>14}",
        "class", "teacher clean", "teacher pgd", "student clean", "student pgd"
    );
    let rows = [
        &teacher_report.clean,
        &teacher_report.attacks[0].robust,
        &student_report.clean,
        &student_report.attacks[0].robust,
    ];
    for (c, name) in names.iter().enumerate() {
        print!("{name:<12}");
        for r in rows {
            print!(" {:>14}", percent(r.per_class[c]));
        }
        println!();
    }
    for (label, pick) in [
        (
            "overall",
            (|r| Some(r.overall)) as fn(&ferd::core::metrics::ClassWiseAccuracy) -> Option<f64>,
        ),
        ("worst class", |r| r.worst_class.map(|(_, a)| a)),
        ("NSD", |r| r.nsd),
    ] {
        print!("{label:<12}");
        for r in rows {
            let v = pick(r);
            if label == "NSD" {
                print!(" {:>14}", v.map_or("-".into(), |v| format!("{v:.3}")));
            } else {
                print!(" {:>14}", percent(v));
            }
        }
        println!();
    }
    println!(
        "\n({pgd_name} at eps {}; {} test images; distillation {:.1} min, total {:.1} min)",
        config.threat.eps,
        comparison.test_images,
        distill_seconds / 60.0,
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

fn main() -> ExitCode {
    common::main(parse_args, run, USAGE)
}
