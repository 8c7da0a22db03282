//! ferd's kernels as Burn backend extensions on Flex: each op family's file moves Flex tensors
//! in and out of its CPU kernels (`crate::conv`, `crate::pool`, ...) and writes the op's
//! backward for `Autodiff<Flex>` by hand. Only `crate`'s seam calls them, for f32 tensors on
//! Flex; every other backend and dtype keeps Burn's own ops.

use burn::backend::TensorMetadata;
use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, TensorData};

pub(crate) mod affine;
pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod pool;
pub(crate) mod upsample;

/// The contiguous f32 values of a Flex tensor (a copy only when it is not contiguous).
pub(super) fn values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    assert_eq!(tensor.dtype(), DType::F32, "ferd kernels: f32 only");
    match tensor.as_slice::<f32>() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous")
                .to_vec(),
        ),
    }
}

/// `tensor` as one this op may overwrite: itself when it owns its contiguous data (the usual
/// case: the convolution's output, the gradient just handed over), else a contiguous copy.
pub(super) fn writable(tensor: FlexTensor) -> FlexTensor {
    let owned = tensor.is_unique() && tensor.layout().contiguous_offsets().is_some();
    match owned && tensor.dtype() == DType::F32 {
        true => tensor,
        false => FlexTensor::from_data(TensorData::new(
            values(&tensor).into_owned(),
            tensor.shape(),
        )),
    }
}

/// The values of a tensor made by [`writable`].
pub(super) fn values_mut(tensor: &mut FlexTensor) -> &mut [f32] {
    let (start, end) = tensor
        .layout()
        .contiguous_offsets()
        .expect("writable: contiguous");
    &mut tensor.try_storage_mut::<f32>().expect("writable: unique")[start..end]
}
