//! Helpers shared by the integration tests.

/// Asserts that `ours` has `reference`'s length and matches it value by value within
/// `tolerance` times the largest magnitude in `reference` (at least 1): the yardstick for two
/// implementations of one op that sum in different orders. `what` names the quantity and the
/// problem in the message.
pub fn assert_close(what: &str, ours: &[f32], reference: &[f32], tolerance: f32) {
    assert_eq!(ours.len(), reference.len(), "length of {what}");
    let scale = reference.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (p, q)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (p - q).abs() <= tolerance * scale,
            "{what}, value {i}: ferd {p} vs reference {q}"
        );
    }
}

/// Every activation ferd's affine and batch-norm kernels fuse, the leaky one with the
/// generator's slope: the random problems of their tests cycle through these.
pub const ACTIVATIONS: [ferd_kernels::Activation; 3] = [
    ferd_kernels::Activation::Identity,
    ferd_kernels::Activation::Relu,
    ferd_kernels::Activation::LeakyRelu {
        negative_slope: 0.2,
    },
];
