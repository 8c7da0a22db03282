//! The library's evaluation API in a few lines: the bundled Fashion-MNIST teacher under FGSM,
//! PGD-20 and CW-20 at eps 0.1 on a class-balanced subset of the test set, printed class by
//! class and written as Markdown, CSV and SVG charts into `teacher-report/`.
//!
//! ```sh
//! cargo run --example evaluate              # 100 images per class
//! cargo run --example evaluate -- 1000      # the whole test set
//! ```
//!
//! `ferd evaluate` (`docs/guide.md`) does the same for any model, dataset and attack list, with
//! resumable progress.

use ferd::attacks::{EvalConfig, Frozen, attack_by_name, evaluate};
use ferd::core::DeviceSpec;
use ferd::data::{DatasetName, Split, load};
use ferd::models::{load_weights, zoo::Architecture};
use ferd::pipeline::BUNDLED_TEACHER;
use ferd::report::{Entry, markdown, write_evaluation};

/// mimalloc, keeping freed memory for reuse (`ferd::allocator`; the default `mimalloc` feature).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: ferd::allocator::Allocator = ferd::allocator::Allocator;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let per_class = std::env::args().nth(1).map_or(Ok(100), |n| n.parse())?;
    let device = DeviceSpec::Flex.device()?;
    let test = load(DatasetName::FashionMnist, Split::Test, None)?.balanced_subset(per_class);
    let mut teacher = Architecture::SmallCnn { width: 16 }.build(1, 10, &device);
    load_weights(&mut teacher, BUNDLED_TEACHER)?;
    let attacks = ["fgsm", "pgd-20", "cw-20"]
        .into_iter()
        .map(|name| attack_by_name(name, 0.1))
        .collect::<Result<Vec<_>, _>>()?;
    let report = evaluate(
        &Frozen::new(&teacher),
        &test,
        &attacks.iter().map(AsRef::as_ref).collect::<Vec<_>>(),
        &device,
        &EvalConfig::default(),
    )?;
    let entries = [Entry::new("teacher", &report)];
    println!("{}", markdown(&entries));
    for file in write_evaluation(&entries, "teacher-report")? {
        println!("{}", file.display());
    }
    Ok(())
}
