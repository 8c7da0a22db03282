//! ferd's per-channel affine map with its activation as a Burn backend extension: the kernels of
//! [`crate::affine`] on Flex tensors, and a hand-written backward for `Autodiff<Flex>` that
//! calls them. `scale` and `shift` are constants here: [`crate::channel_affine`] sends
//! parameters that need gradients to Burn's ops instead.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, backend_extension};

use super::{values, values_mut, writable};
use crate::affine::{self, Activation, AffineGeometry};

/// The affine ops ferd implements itself.
#[backend_extension(Flex, Autodiff)]
pub trait AffineBackend: Backend {
    /// `activation(x * scale[c] + shift[c])` over `x [B, C, H, W]`.
    fn ferd_channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        activation: Activation,
    ) -> FloatTensor<Self>;

    /// The gradient of `x` given the output `y` and its gradient.
    fn ferd_channel_affine_backward(
        y: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        activation: Activation,
    ) -> FloatTensor<Self>;
}

/// The geometry of `x` under `scale`. The caller has checked the shapes, so a mismatch here is a
/// bug.
fn geometry(x: &FlexTensor, scale: &FlexTensor) -> AffineGeometry {
    let shape = x.shape();
    AffineGeometry::new([shape[0], shape[1], shape[2], shape[3]], scale.shape()[0])
        .expect("ferd channel_affine: shapes checked by ops::channel_affine")
}

impl AffineBackend for Flex {
    fn ferd_channel_affine(
        x: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        activation: Activation,
    ) -> FlexTensor {
        let g = geometry(&x, &scale);
        let mut y = writable(x);
        affine::forward_in_place(
            &g,
            values_mut(&mut y),
            &values(&scale),
            &values(&shift),
            activation,
        );
        y
    }

    fn ferd_channel_affine_backward(
        y: FlexTensor,
        output_grad: FlexTensor,
        scale: FlexTensor,
        activation: Activation,
    ) -> FlexTensor {
        let g = geometry(&y, &scale);
        let mut dx = writable(output_grad);
        affine::input_grad_in_place(
            &g,
            &values(&y),
            values_mut(&mut dx),
            &values(&scale),
            activation,
        );
        dx
    }
}

/// The backward step of [`AffineBackend::ferd_channel_affine`] on an autodiff backend. Its state
/// is the output (the ReLU's mask) and the scale; the output is the next op's input, so keeping
/// it costs no memory of its own.
#[derive(Debug)]
struct AffineBackward;

impl<B: AffineBackend> Backward<B, 1> for AffineBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, Activation);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (y, scale, activation) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::ferd_channel_affine_backward(y, grad, scale, activation)
        });
    }
}

impl<B: AffineBackend, C: CheckpointStrategy> AffineBackend for Autodiff<B, C> {
    fn ferd_channel_affine(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        activation: Activation,
    ) -> FloatTensor<Self> {
        let (scale, shift) = (scale.into_primitive(), shift.into_primitive());
        match AffineBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y =
                    B::ferd_channel_affine(x.into_primitive(), scale.clone(), shift, activation);
                prep.finish((y.clone(), scale, activation), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ferd_channel_affine(
                x.into_primitive(),
                scale,
                shift,
                activation,
            )),
        }
    }

    /// Second derivatives are not needed by ferd: the gradient is computed on the inner backend,
    /// outside the graph.
    fn ferd_channel_affine_backward(
        y: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        activation: Activation,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::ferd_channel_affine_backward(
            Self::inner(y),
            Self::inner(output_grad),
            Self::inner(scale),
            activation,
        ))
    }
}
