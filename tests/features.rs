//! The backends' features as cargo resolves them for a user of the `ferd` crate.
//!
//! ferd depends on `burn` with `default-features = false`, which also drops each backend's own
//! defaults: Flex's rayon threads and SIMD kernels, and the GPU backends' autotune (the
//! per-shape kernel choice). ferd's features put them back. Nothing fails when one goes
//! missing, the backend only gets slower, so this test reads the resolved set (`cargo tree`'s
//! `{f}`) for each backend feature and names what is missing. It also holds Burn's kernel
//! fusion out of the default GPU build, where it gave wrong attack results
//! (`docs/performance.md`, "On a GPU"), and in the opt-in `fusion` feature. It builds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Package name -> the features cargo resolves for it, with ferd's `features` arguments.
fn resolved(features: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--locked", "-e", "normal", "--prefix", "none"])
        .args(["--format", "{p}|{f}"])
        .args(features)
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree {features:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        // `burn-flex v0.22.1|rayon,simd,std` (a repeat ends in ` (*)`).
        let line = line.trim_end_matches(" (*)");
        let Some((package, list)) = line.split_once('|') else {
            continue;
        };
        let name = package.split_whitespace().next().unwrap_or_default();
        packages
            .entry(name.to_string())
            .or_default()
            .extend(list.split(',').filter(|f| !f.is_empty()).map(String::from));
    }
    packages
}

/// Asserts that `package` is in the build with at least `required`.
fn requires(
    packages: &BTreeMap<String, BTreeSet<String>>,
    build: &str,
    package: &str,
    required: &[&str],
) {
    let features = features_of(packages, build, package);
    let missing: Vec<_> = required
        .iter()
        .filter(|f| !features.contains(**f))
        .collect();
    assert!(
        missing.is_empty(),
        "{build}: {package} is built without {missing:?} (it has {features:?}); \
         ferd-core's backend features must turn them on"
    );
}

/// Asserts that `package` is in the build without `feature`.
fn lacks(packages: &BTreeMap<String, BTreeSet<String>>, build: &str, package: &str, feature: &str) {
    let features = features_of(packages, build, package);
    assert!(
        !features.contains(feature),
        "{build}: {package} is built with {feature:?} (it has {features:?})"
    );
}

fn features_of<'a>(
    packages: &'a BTreeMap<String, BTreeSet<String>>,
    build: &str,
    package: &str,
) -> &'a BTreeSet<String> {
    packages
        .get(package)
        .unwrap_or_else(|| panic!("{build}: {package} is not in the dependency graph"))
}

#[test]
fn flex_keeps_its_threads_and_simd() {
    let default = resolved(&[]);
    requires(
        &default,
        "default features",
        "burn-flex",
        &["rayon", "simd"],
    );
    // The run-time backend choice: CI builds flex and wgpu together.
    let both = resolved(&["--features", "wgpu"]);
    requires(&both, "--features wgpu", "burn-flex", &["rayon", "simd"]);
}

#[test]
fn the_gpu_backends_keep_autotune_and_leave_fusion_opt_in() {
    for (build, args) in [
        ("--features wgpu", &["--features", "wgpu"][..]),
        (
            "--no-default-features --features wgpu",
            &["--no-default-features", "--features", "wgpu"][..],
        ),
        ("--features vulkan", &["--features", "vulkan"][..]),
    ] {
        let packages = resolved(args);
        requires(&packages, build, "burn-wgpu", &["autotune"]);
        // The backend that `Device::wgpu` dispatches to.
        requires(&packages, build, "burn-cubecl", &["autotune", "wgpu"]);
        lacks(&packages, build, "burn-cubecl", "fusion");
    }
    // CI's build: the same backend without autotune (Mesa's tuning runs on the CPU).
    let build = "--features wgpu-untuned";
    let untuned = resolved(&["--features", "wgpu-untuned"]);
    requires(&untuned, build, "burn-cubecl", &["wgpu"]);
    lacks(&untuned, build, "burn-cubecl", "autotune");
    let vulkan = resolved(&["--features", "vulkan"]);
    requires(&vulkan, "--features vulkan", "burn-wgpu", &["vulkan"]);
    let fused = resolved(&["--features", "wgpu,fusion"]);
    requires(
        &fused,
        "--features wgpu,fusion",
        "burn-wgpu",
        &["autotune", "fusion"],
    );
    requires(&fused, "--features wgpu,fusion", "burn-cubecl", &["fusion"]);
    // ferd's `persistence`: the autotune results on disk (CubeCL's runtime keeps them).
    let kept = resolved(&["--features", "wgpu,persistence"]);
    requires(
        &kept,
        "--features wgpu,persistence",
        "cubecl-runtime",
        &["persistence"],
    );
    // Resolved only, never built here (its build downloads LLVM).
    let cuda = resolved(&["--features", "cuda"]);
    requires(&cuda, "--features cuda", "burn-cuda", &["autotune"]);
    requires(
        &cuda,
        "--features cuda",
        "burn-cubecl",
        &["autotune", "cuda"],
    );
    lacks(&cuda, "--features cuda", "burn-cubecl", "fusion");
}
