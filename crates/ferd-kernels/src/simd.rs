//! Run-time dispatch of ferd's element loops to the CPU's widest vector instructions.
//!
//! ferd is built for the baseline x86-64 target (SSE2, 4 lanes), so its loops compile to 4-lane
//! code even where the CPU has AVX2 (8 lanes) or AVX-512 (16). [`dispatch`] runs a closure
//! inside a function compiled for AVX-512, or for AVX2 with FMA, where the CPU has them (the
//! check is a cached flag), and as it is elsewhere. The closure must be `#[inline(always)]`, and
//! so must what it calls in its loops, so that they are compiled into the wide copy. Every copy
//! computes the same values to the bit: Rust never fuses a multiply and an add into an FMA on
//! its own, and a loop's order of operations does not change with the width.

/// Runs `work` compiled for the widest vector instructions the CPU has (see the module doc).
///
/// Mark the closure `#[inline(always)]`: `dispatch(#[inline(always)] || ...)`.
#[inline(always)]
pub(crate) fn dispatch<R>(work: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU has every feature `avx512` is compiled for.
            return unsafe { avx512(work) };
        }
        if has_avx2() {
            // SAFETY: the CPU has every feature `avx2` is compiled for.
            return unsafe { avx2(work) };
        }
    }
    work()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
fn avx512<R>(work: impl FnOnce() -> R) -> R {
    work()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2<R>(work: impl FnOnce() -> R) -> R {
    work()
}

/// Whether the CPU runs [`dispatch`]'s AVX-512 copy.
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && has_avx2()
}

/// Whether the CPU runs [`dispatch`]'s AVX2 copy.
#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Multiply then add, rounded twice, in every copy: the same bits as the scalar definition,
    /// on values where a fused multiply-add would round differently.
    #[test]
    fn every_copy_rounds_like_the_scalar_definition() {
        let x: Vec<f32> = (0..67)
            .map(|i| 1.0 + (i as f32) * f32::EPSILON * 3.0)
            .collect();
        let mut y: Vec<f32> = x.iter().map(|v| -v * 0.1).collect();
        let want: Vec<f32> = x.iter().zip(&y).map(|(&x, &y)| y + 0.1 * x).collect();
        // At least one value where the fused result differs, or the test would prove nothing.
        let fused = x
            .iter()
            .zip(&y)
            .filter(|&(&x, &y)| 0.1f32.mul_add(x, y) != y + 0.1 * x);
        assert!(fused.count() > 0);
        dispatch(
            #[inline(always)]
            || {
                for (y, &x) in y.iter_mut().zip(&x) {
                    *y += 0.1 * x;
                }
            },
        );
        assert_eq!(y, want);
    }
}
