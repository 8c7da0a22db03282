//! The attack suite (FGSM, PGD, CW-inf, APGD-CE/DLR/T, FAB-T, Square, AutoAttack) and class-wise
//! robustness evaluation.
//!
//! Not implemented yet: this crate is the workspace slot for the attacks issue. It exports
//! nothing, so that no caller can mistake it for a working attack suite.
