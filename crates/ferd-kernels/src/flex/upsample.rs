//! ferd's nearest-neighbour upsampling as a Burn backend extension: the kernels of
//! [`crate::upsample`] on Flex tensors, and a hand-written backward for `Autodiff<Flex>`.
//!
//! Written as a broadcast (`reshape`, `expand`, `reshape`), the upsampling made Flex copy the
//! expanded view through its generic strided iterator and sum the gradient back with a reduction
//! over two dimensions of a 6-D tensor: about a tenth of a FERD synthesis iteration in `perf`.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, backend_extension};
use burn::tensor::TensorData;

use super::values;
use crate::upsample::{self, UpsampleGeometry};

/// The upsampling ops ferd implements itself.
#[backend_extension(Flex, Autodiff)]
pub trait UpsampleBackend: Backend {
    /// `x [B, C, H, W]` upsampled to `[B, C, f H, f W]`.
    fn ferd_upsample_nearest(x: FloatTensor<Self>, factor: usize) -> FloatTensor<Self>;

    /// The gradient of `x` given the output gradient.
    fn ferd_upsample_nearest_backward(
        output_grad: FloatTensor<Self>,
        factor: usize,
    ) -> FloatTensor<Self>;
}

impl UpsampleBackend for Flex {
    fn ferd_upsample_nearest(x: FlexTensor, factor: usize) -> FlexTensor {
        let shape = x.shape();
        let shape = [shape[0], shape[1], shape[2], shape[3]];
        let g = UpsampleGeometry::new(shape, factor)
            .expect("ferd upsample_nearest: factor checked by ops::upsample_nearest");
        FlexTensor::from_data(TensorData::new(
            upsample::forward(&g, &values(&x)),
            g.output_shape(shape),
        ))
    }

    fn ferd_upsample_nearest_backward(output_grad: FlexTensor, factor: usize) -> FlexTensor {
        let shape = output_grad.shape();
        let shape = [shape[0], shape[1], shape[2] / factor, shape[3] / factor];
        let g = UpsampleGeometry::new(shape, factor)
            .expect("ferd upsample_nearest: factor checked by ops::upsample_nearest");
        FlexTensor::from_data(TensorData::new(
            upsample::input_grad(&g, &values(&output_grad)),
            shape,
        ))
    }
}

/// The backward step of [`UpsampleBackend::ferd_upsample_nearest`] on an autodiff backend: it
/// needs the factor only, no tensor.
#[derive(Debug)]
struct UpsampleBackward;

impl<B: UpsampleBackend> Backward<B, 1> for UpsampleBackward {
    type State = usize;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let factor = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::ferd_upsample_nearest_backward(grad, factor)
        });
    }
}

impl<B: UpsampleBackend, C: CheckpointStrategy> UpsampleBackend for Autodiff<B, C> {
    fn ferd_upsample_nearest(x: FloatTensor<Self>, factor: usize) -> FloatTensor<Self> {
        match UpsampleBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish(factor, B::ferd_upsample_nearest(x.into_primitive(), factor))
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::ferd_upsample_nearest(x.into_primitive(), factor))
            }
        }
    }

    /// Second derivatives are not needed by ferd: the gradient is computed on the inner
    /// backend, outside the graph.
    fn ferd_upsample_nearest_backward(
        output_grad: FloatTensor<Self>,
        factor: usize,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::ferd_upsample_nearest_backward(
            Self::inner(output_grad),
            factor,
        ))
    }
}
