//! Run-time dispatch of ferd's element loops to the CPU's widest vector instructions.
//!
//! ferd is built for the baseline x86-64 target (SSE2, 4 lanes), so its loops compile to 4-lane
//! code even where the CPU has AVX2 (8 lanes) or AVX-512 (16). [`vectorized!`] defines a function
//! whose body is compiled three times, for AVX-512, for AVX2 with FMA and for the baseline, and
//! calls the widest copy the CPU runs (the check is a cached flag). The copies compute the same
//! values to the bit: Rust never fuses a multiply and an add into an FMA on its own, and the
//! loops' order of operations does not change with the width.

/// Defines `fn name(args) { body }` with its body compiled for AVX-512, AVX2 + FMA and the
/// baseline target, dispatched at run time. Arguments are plain parameters (`name: Type`); the
/// function returns nothing.
macro_rules! vectorized {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                fn v4($($arg: $ty),*) {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn v3($($arg: $ty),*) {
                    body($($arg),*)
                }
                if $crate::ops::simd::has_avx512() {
                    // SAFETY: the CPU has every feature `v4` is compiled for.
                    return unsafe { v4($($arg),*) };
                }
                if $crate::ops::simd::has_avx2() {
                    // SAFETY: the CPU has every feature `v3` is compiled for.
                    return unsafe { v3($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use vectorized;

/// Whether the CPU runs the AVX-512 copies of [`vectorized!`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && has_avx2()
}

/// Whether the CPU runs the AVX2 copies of [`vectorized!`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(test)]
mod tests {
    vectorized! {
        /// A loop whose every copy must agree with the scalar definition.
        fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
            for (y, &x) in y.iter_mut().zip(x) {
                *y += a * x;
            }
        }
    }

    /// Multiply then add, rounded twice, in every copy: the same bits as the scalar loop,
    /// including values where a fused multiply-add would round differently.
    #[test]
    fn every_copy_rounds_like_the_scalar_definition() {
        let x: Vec<f32> = (0..67)
            .map(|i| 1.0 + (i as f32) * f32::EPSILON * 3.0)
            .collect();
        let mut y: Vec<f32> = x.iter().map(|v| -v * 0.1).collect();
        let want: Vec<f32> = x.iter().zip(&y).map(|(&x, &y)| y + 0.1 * x).collect();
        axpy(0.1, &x, &mut y);
        assert_eq!(y, want);
    }
}
