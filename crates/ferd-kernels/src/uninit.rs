//! Output buffers for kernels that write every element before anything reads it.
//!
//! `vec![0.0; n]` zeroes its memory, and a kernel that overwrites every element then writes it a
//! second time: in ResNet-18's train step the zeroing of such outputs was 3-4% of the time
//! (`docs/performance.md`, the profile at a3bf4d3). [`written_by`] hands the kernel memory that
//! has not been written, typed `MaybeUninit<f32>` so that nothing reads it before the kernel
//! does, and gives it back as floats.

use std::mem::MaybeUninit;

/// `len` floats, every one written by `fill`.
///
/// # Safety
/// `fill` must write every element of the slice it is given (or panic): the slice is returned
/// as initialized floats.
pub(super) unsafe fn written_by(
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut buffer = Box::<[f32]>::new_uninit_slice(len);
    fill(&mut buffer);
    // SAFETY: the caller's promise: `fill` wrote every element.
    unsafe { buffer.assume_init() }.into_vec()
}

/// `slice` zeroed, as floats: for kernels that add into their output.
pub(super) fn zeroed(slice: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    slice.fill(MaybeUninit::new(0.0));
    // SAFETY: every element was just written.
    unsafe { assume_written(slice) }
}

/// `slice` as the floats it holds.
///
/// # Safety
/// Every element of `slice` must have been written.
pub(super) unsafe fn assume_written(slice: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has the layout of `f32`; the caller promises initialization.
    unsafe { std::slice::from_raw_parts_mut(slice.as_mut_ptr().cast::<f32>(), slice.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_what_the_kernel_wrote() {
        // SAFETY: the closure writes all five elements.
        let v = unsafe {
            written_by(5, |out| {
                for (i, slot) in out.iter_mut().enumerate() {
                    slot.write(i as f32 * 1.5);
                }
            })
        };
        assert_eq!(v, [0.0, 1.5, 3.0, 4.5, 6.0]);
        // SAFETY: nothing to write.
        assert!(unsafe { written_by(0, |_| {}) }.is_empty());
    }
}
