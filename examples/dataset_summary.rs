//! Dataset summary: class counts, pixel statistics and a PNG grid of the first images of every
//! class. The main example until the FERD quickstart lands.
//!
//! ```text
//! cargo run --example dataset_summary -- [DATASET] [--split train|test] [--data-dir DIR]
//!                                        [--per-class N] [--out FILE.png]
//! ```
//! DATASET: fashion-mnist (default), mnist, cifar10, cifar100, cifar100-coarse.

use std::path::PathBuf;
use std::process::ExitCode;

use ferd::data::{DatasetName, Split, load};
use ferd::images::Grid;

struct Args {
    dataset: DatasetName,
    split: Split,
    data_dir: Option<PathBuf>,
    per_class: usize,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dataset: DatasetName::FashionMnist,
        split: Split::Test,
        data_dir: None,
        per_class: 8,
        out: PathBuf::from("dataset_summary.png"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--split" => {
                args.split = match value("--split")?.as_str() {
                    "train" => Split::Train,
                    "test" => Split::Test,
                    other => return Err(format!("unknown split `{other}` (train or test)")),
                }
            }
            "--data-dir" => args.data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--per-class" => {
                args.per_class = value("--per-class")?
                    .parse()
                    .map_err(|e| format!("--per-class: {e}"))?
            }
            "--out" => args.out = PathBuf::from(value("--out")?),
            "-h" | "--help" => return Err(String::new()),
            name if !name.starts_with('-') => {
                args.dataset = name.parse().map_err(|e| format!("{e}"))?
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!(
                "{msg}\nusage: dataset_summary [DATASET] [--split train|test] [--data-dir DIR] [--per-class N] [--out FILE.png]"
            );
            return ExitCode::FAILURE;
        }
    };
    let dataset = match load(args.dataset, args.split, args.data_dir.as_deref()) {
        Ok(d) => d,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let [c, h, w] = dataset.image_shape();
    println!(
        "{}: {} images of {c}x{h}x{w}, {} classes",
        dataset.name(),
        dataset.len(),
        dataset.num_classes()
    );
    let pixels =
        (0..dataset.len()).flat_map(|i| dataset.image(i).iter().map(|&p| f64::from(p) / 255.0));
    let (n, sum, sq) = pixels.fold((0usize, 0.0, 0.0), |(n, s, q), p| (n + 1, s + p, q + p * p));
    let mean = sum / n as f64;
    println!(
        "pixel mean {mean:.4}, std {:.4} (on [0, 1])",
        (sq / n as f64 - mean * mean).sqrt()
    );
    println!("{:>3}  {:<14} {:>7}", "id", "class", "count");
    for (id, (name, count)) in dataset
        .class_names()
        .iter()
        .zip(dataset.class_counts())
        .enumerate()
    {
        println!("{id:>3}  {name:<14} {count:>7}");
    }

    // One row per class: its first `per_class` images.
    let grid = Grid::per_class(&dataset, 0..dataset.len(), args.per_class);
    match grid.save_png(&args.out) {
        Ok((width, height)) => {
            println!(
                "wrote {} ({width}x{height}, one row per class)",
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
