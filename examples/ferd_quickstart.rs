//! The FERD quickstart: distill a robust `small-cnn-8` student from the bundled Fashion-MNIST
//! teacher without any training data, then compare student and teacher class by class (clean
//! and PGD-20 on 1,000 Fashion-MNIST test images).
//!
//! ```sh
//! cargo run --example ferd_quickstart                  # into runs/quickstart
//! cargo run --example ferd_quickstart -- runs/mine     # another run folder
//! ```
//!
//! An interrupted run continues from its last checkpoint when started again on the same
//! folder. Other methods, budgets, configs, teachers and devices: `ferd distill` (`--help`),
//! which runs the same [`Distillation`]. The run folder gets `config.json`, `metrics.jsonl`
//! (one line per epoch), `checkpoint/`, `student.bpk`, `student.safetensors` and `final.json`;
//! `ferd report <folder>` draws it.

use std::time::Instant;

use ferd::core::DeviceSpec;
use ferd::distill::{Budget, Event, FerdConfig, FerdMethod, RunOptions};
use ferd::pipeline::{Distillation, Outcome};
use ferd::report::{Entry, markdown};

/// mimalloc, keeping freed memory for reuse (`ferd::allocator`; the default `mimalloc` feature).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: ferd::allocator::Allocator = ferd::allocator::Allocator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let dir = std::env::args().nth(1).unwrap_or("runs/quickstart".into());
    let config = FerdConfig::preset(Budget::FmnistQuick, FerdMethod::Ferd);
    let options = RunOptions {
        resume: true, // continue a run found in `dir`; start one otherwise
        ..RunOptions::new(&dir, DeviceSpec::Flex.device()?)
    };
    let run = Distillation::new(config, options);
    eprintln!("FERD from the bundled teacher to small-cnn-8, data-free, into {dir}");
    let outcome = run.run(&mut |event: &Event| match event {
        Event::RunStarted { first_epoch, .. } if *first_epoch > 0 => {
            eprintln!("resuming at epoch {}", first_epoch + 1);
        }
        Event::EpochEnded {
            epoch,
            epochs,
            seconds,
            summary,
        } => {
            eprintln!("epoch {}/{epochs} ({seconds:.0} s): {summary}", epoch + 1);
        }
        _ => {}
    })?;
    let Outcome::Finished(comparison) = outcome else {
        unreachable!("the run is not sliced");
    };
    let entries = [
        Entry::new("teacher", &comparison.teacher),
        Entry::new("student", &comparison.student),
    ];
    println!("{}", markdown(&entries));
    println!(
        "{} test images; distillation {:.1} min, in all {:.1} min",
        comparison.test_images,
        comparison.distill_seconds / 60.0,
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}
