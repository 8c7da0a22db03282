//! What the benches share: the workload's batch and shapes, from the environment, as the PyTorch
//! scripts of `tools/bench/` read them (`tools/bench/table.py`).

/// The batch: `FERD_BENCH_BATCH`, else 64. Criterion groups are named after it, so that the
/// PyTorch scripts (which read the same variable) find the matching medians.
pub fn batch() -> usize {
    std::env::var("FERD_BENCH_BATCH")
        .map(|b| b.parse().expect("FERD_BENCH_BATCH: a number of images"))
        .unwrap_or(64)
}
