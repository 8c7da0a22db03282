//! The integration tests, one module per file, built as one test binary: each binary links
//! all of Burn, so one per file cost minutes of linking and gigabytes of disk in CI.

mod golden;
mod properties;
