//! ferd's max pooling as a Burn backend extension: the kernels of [`crate::pool`] on Flex
//! tensors, and a hand-written backward for `Autodiff<Flex>` that calls them.
//!
//! Flex's own max pooling goes through its 3-D kernel with per-output window arithmetic and an
//! `i64` index tensor, which Autodiff keeps for a scatter in the backward; in an AutoAttack run of
//! a small CNN the two took about a fifth of the time. [`crate::max_pool2d`] routes every other
//! backend, dtype and option (padding, dilation, ceil mode) to Burn's own op.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, backend_extension};
use burn::tensor::{Shape, TensorData};

use super::values;
use crate::pool::{self, PoolGeometry};

/// The pooling ops ferd implements itself: windows without padding or dilation, floor mode.
#[backend_extension(Flex, Autodiff)]
pub trait PoolBackend: Backend {
    /// `max_pool2d(x)` with `kernel` windows at `stride`.
    fn ferd_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self>;

    /// The gradient of `x` given the output gradient.
    fn ferd_max_pool2d_backward(
        x: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// The geometry of `x` under the window. The caller has checked the shapes, so a mismatch here
/// is a bug.
fn geometry(x: &FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> (PoolGeometry, Shape) {
    let shape = x.shape();
    let g = PoolGeometry::new([shape[0], shape[1], shape[2], shape[3]], kernel, stride)
        .expect("ferd max_pool2d: shapes checked by ops::max_pool2d");
    (g, shape)
}

impl PoolBackend for Flex {
    fn ferd_max_pool2d(x: FlexTensor, kernel: [usize; 2], stride: [usize; 2]) -> FlexTensor {
        let (g, shape) = geometry(&x, kernel, stride);
        let out_shape = [shape[0], shape[1], g.out_height, g.out_width];
        FlexTensor::from_data(TensorData::new(pool::forward(&g, &values(&x)), out_shape))
    }

    fn ferd_max_pool2d_backward(
        x: FlexTensor,
        output_grad: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FlexTensor {
        let (g, shape) = geometry(&x, kernel, stride);
        let dx = pool::input_grad(&g, &values(&x), &values(&output_grad));
        FlexTensor::from_data(TensorData::new(dx, shape))
    }
}

/// The backward step of [`PoolBackend::ferd_max_pool2d`] on an autodiff backend.
#[derive(Debug)]
struct MaxPoolBackward;

impl<B: PoolBackend> Backward<B, 1> for MaxPoolBackward {
    type State = (NodeId, [usize; 2], [usize; 2]);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (x_state, kernel, stride) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::ferd_max_pool2d_backward(x, grad, kernel, stride)
        });
    }
}

impl<B: PoolBackend, C: CheckpointStrategy> PoolBackend for Autodiff<B, C> {
    fn ferd_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self> {
        match MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let output = B::ferd_max_pool2d(x.into_primitive(), kernel, stride);
                prep.finish((x_state, kernel, stride), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::ferd_max_pool2d(x.into_primitive(), kernel, stride))
            }
        }
    }

    /// Second derivatives are not needed by ferd: the gradient is computed on the inner
    /// backend, outside the graph.
    fn ferd_max_pool2d_backward(
        x: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> FloatTensor<Self> {
        Self::from_inner(B::ferd_max_pool2d_backward(
            Self::inner(x),
            Self::inner(output_grad),
            kernel,
            stride,
        ))
    }
}
