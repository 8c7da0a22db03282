//! Training loops: robust teachers (PGD-AT, TRADES, fast AT) and FERD's data-free distillation
//! (synthesis of Fairness-Aware Examples, robustness-guided reweighting, Uniform-Target
//! Adversarial Examples, the student loss).
//!
//! Not implemented yet: this crate is the workspace slot for the teacher and distillation
//! issues. It exports nothing, so that no caller can mistake it for working training code.
