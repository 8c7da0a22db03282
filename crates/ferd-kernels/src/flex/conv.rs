//! ferd's convolution as a Burn backend extension: the kernels of [`crate::conv`] on Flex
//! tensors, and a hand-written backward for `Autodiff<Flex>` that calls them.
//!
//! Burn's `Autodiff` derives a convolution's gradients through `conv2d_x_backward` and
//! `conv2d_weight_backward`, which Flex leaves to Burn's generic defaults (a transposed
//! convolution, and a skinny GEMM after serial copies). This extension replaces all three for
//! f32 tensors on Flex; [`crate::conv2d`] routes every other backend and dtype to Burn's own op.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, backend_extension};
use burn::tensor::{Shape, TensorData};

use super::values;
use crate::conv::{self, ConvGeometry};

/// The convolution ops ferd implements itself (no bias: the caller adds it).
#[backend_extension(Flex, Autodiff)]
pub trait ConvBackend: Backend {
    /// `conv2d(x, weight)` without bias.
    fn ferd_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// The gradient of `x` given the output gradient.
    fn ferd_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// The gradient of `weight` given the output gradient.
    fn ferd_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

/// The geometry of `x` and `weight` under `options`. The caller has checked the shapes, so a
/// mismatch here is a bug.
fn geometry(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> ConvGeometry {
    crate::conv_geometry(dims4(&x.shape()), dims4(&weight.shape()), options)
        .expect("ferd conv2d: shapes checked by crate::conv2d")
}

fn dims4(shape: &Shape) -> [usize; 4] {
    [shape[0], shape[1], shape[2], shape[3]]
}

fn tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

impl ConvBackend for Flex {
    fn ferd_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let g = geometry(&x, &weight, &options);
        tensor(
            conv::forward(&g, &values(&x), &values(&weight)),
            g.output_shape(),
        )
    }

    fn ferd_conv2d_x_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let g = geometry(&x, &weight, &options);
        let dx = conv::input_grad(&g, &values(&weight), &values(&output_grad));
        tensor(dx, dims4(&x.shape()))
    }

    fn ferd_conv2d_weight_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let g = geometry(&x, &weight, &options);
        let dw = conv::weight_grad(&g, &values(&x), &values(&output_grad));
        tensor(dw, dims4(&weight.shape()))
    }
}

/// The backward step of [`ConvBackend::ferd_conv2d`] on an autodiff backend.
#[derive(Debug)]
struct ConvBackward;

impl<B: ConvBackend> Backward<B, 2> for ConvBackward {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        let (x_for_dx, weight_for_dx, options_for_dx) =
            (x.clone(), weight.clone(), options.clone());
        binary::<B, _, _>(
            ops.parents,
            ops.node,
            grads,
            |grad| B::ferd_conv2d_x_backward(x_for_dx, weight_for_dx, grad, options_for_dx),
            |grad| B::ferd_conv2d_weight_backward(x, weight, grad, options),
        );
    }
}

impl<B: ConvBackend, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    fn ferd_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match ConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output =
                    B::ferd_conv2d(x.into_primitive(), weight.into_primitive(), options.clone());
                prep.finish((x_state, weight_state, options), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ferd_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }

    /// Second derivatives are not needed by ferd: the gradients are computed on the inner
    /// backend, outside the graph.
    fn ferd_conv2d_x_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::ferd_conv2d_x_backward(
            Self::inner(x),
            Self::inner(weight),
            Self::inner(output_grad),
            options,
        ))
    }

    fn ferd_conv2d_weight_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::ferd_conv2d_weight_backward(
            Self::inner(x),
            Self::inner(weight),
            Self::inner(output_grad),
            options,
        ))
    }
}
