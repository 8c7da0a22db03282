//! ferd's training-mode BatchNorm (+ ReLU) as a Burn backend extension: the kernels of
//! [`crate::batch_norm`] on Flex tensors, and a hand-written backward for `Autodiff<Flex>`
//! that gives the input, gamma and beta their gradients in one call.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Flex, backend_extension};
use burn::tensor::TensorData;

use super::{values, values_mut, writable};
use crate::affine::{Activation, AffineGeometry};
use crate::batch_norm::{self, BatchStats, Params};

/// The training-mode BatchNorm ops ferd implements itself.
#[backend_extension(Flex, Autodiff)]
pub trait BatchNormBackend: Backend {
    /// `(activation(bn(x)), mean, variance)` with the batch's statistics (biased variance).
    fn ferd_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        activation: Activation,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The mean and biased variance of every channel, stacked as `[2, C]`, differentiable in
    /// `x`.
    fn ferd_batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradient of `x` through [`BatchNormBackend::ferd_batch_stats`], given its output's
    /// gradient.
    fn ferd_batch_stats_backward(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The gradients of `x`, gamma and beta, given the statistics the forward returned.
    #[allow(clippy::too_many_arguments)]
    fn ferd_batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        epsilon: f64,
        activation: Activation,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// The geometry of `x` under `gamma`. The caller has checked the shapes, so a mismatch here is
/// a bug.
fn geometry(x: &FlexTensor, gamma: &FlexTensor) -> AffineGeometry {
    let shape = x.shape();
    AffineGeometry::new([shape[0], shape[1], shape[2], shape[3]], gamma.shape()[0])
        .expect("ferd batch_norm_train: shapes checked by ops::batch_norm_train")
}

fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `x`'s geometry with one parameter per channel.
fn geometry_of(x: &FlexTensor) -> AffineGeometry {
    let shape = x.shape();
    AffineGeometry::new([shape[0], shape[1], shape[2], shape[3]], shape[1])
        .expect("ferd batch_stats: a 4-D input")
}

impl BatchNormBackend for Flex {
    fn ferd_batch_stats(x: FlexTensor) -> FlexTensor {
        let g = geometry_of(&x);
        let stats = batch_norm::batch_stats(&g, &values(&x));
        let mut stacked = stats.mean;
        stacked.extend(stats.variance);
        tensor(stacked, vec![2, g.channels])
    }

    fn ferd_batch_stats_backward(
        x: FlexTensor,
        stats: FlexTensor,
        output_grad: FlexTensor,
    ) -> FlexTensor {
        let g = geometry_of(&x);
        let (stats, grad) = (values(&stats), values(&output_grad));
        let (mean, (dmean, dvariance)) = (&stats[..g.channels], grad.split_at(g.channels));
        let dx = batch_norm::batch_stats_backward(&g, &values(&x), mean, dmean, dvariance);
        tensor(dx, x.shape().to_vec())
    }

    fn ferd_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        activation: Activation,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let g = geometry(&x, &gamma);
        let x_values = values(&x);
        let stats = batch_norm::batch_stats(&g, &x_values);
        let (gamma, beta) = (values(&gamma), values(&beta));
        let params = Params {
            gamma: &gamma,
            beta: &beta,
            epsilon,
        };
        let y = batch_norm::forward(&g, &x_values, params, &stats, activation);
        (
            tensor(y, x.shape().to_vec()),
            tensor(stats.mean, vec![g.channels]),
            tensor(stats.variance, vec![g.channels]),
        )
    }

    fn ferd_batch_norm_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        output_grad: FlexTensor,
        epsilon: f64,
        activation: Activation,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let g = geometry(&x, &gamma);
        let stats = BatchStats {
            mean: values(&mean).into_owned(),
            variance: values(&variance).into_owned(),
        };
        let mut dx = writable(output_grad);
        let (gamma, beta) = (values(&gamma), values(&beta));
        let params = Params {
            gamma: &gamma,
            beta: &beta,
            epsilon,
        };
        let params = batch_norm::backward_in_place(
            &g,
            &values(&x),
            values_mut(&mut dx),
            params,
            &stats,
            activation,
        );
        (
            dx,
            tensor(params.gamma, vec![g.channels]),
            tensor(params.beta, vec![g.channels]),
        )
    }
}

/// The backward step of [`BatchNormBackend::ferd_batch_norm_train`] on an autodiff backend. Its
/// state is the input (Burn's generic op keeps it too), the parameters and the statistics.
#[derive(Debug)]
struct BatchNormTrainBackward;

/// What the backward step keeps: `x`, gamma, beta, mean, variance, epsilon, activation.
type TrainState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    f64,
    Activation,
);

impl<B: BatchNormBackend> Backward<B, 3> for BatchNormTrainBackward {
    type State = TrainState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, mean, variance, epsilon, activation) = ops.state;
        let (dx, dgamma, dbeta) = B::ferd_batch_norm_train_backward(
            x, gamma, beta, mean, variance, grad, epsilon, activation,
        );
        for (node, grad) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// The backward step of [`BatchNormBackend::ferd_batch_stats`]: its state is the input and the
/// statistics.
#[derive(Debug)]
struct BatchStatsBackward;

impl<B: BatchNormBackend> Backward<B, 1> for BatchStatsBackward {
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let (x, stats) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::ferd_batch_stats_backward(x, stats, grad)
        });
    }
}

impl<B: BatchNormBackend, C: CheckpointStrategy> BatchNormBackend for Autodiff<B, C> {
    fn ferd_batch_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match BatchStatsBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                let stats = B::ferd_batch_stats(x.clone());
                prep.finish((x, stats.clone()), stats)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::ferd_batch_stats(x.into_primitive())),
        }
    }

    /// Second derivatives are not needed by ferd (see `ferd_batch_norm_train_backward`).
    fn ferd_batch_stats_backward(
        x: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::ferd_batch_stats_backward(
            Self::inner(x),
            Self::inner(stats),
            Self::inner(output_grad),
        ))
    }

    fn ferd_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        activation: Activation,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = BatchNormTrainBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful();
        let (x, gamma, beta) = (
            x.into_primitive(),
            gamma.into_primitive(),
            beta.into_primitive(),
        );
        let (y, mean, variance) =
            B::ferd_batch_norm_train(x.clone(), gamma.clone(), beta.clone(), epsilon, activation);
        // The statistics leave as constants: the backward accounts for their dependence on x.
        let (mean_out, variance_out) = (
            Self::from_inner(mean.clone()),
            Self::from_inner(variance.clone()),
        );
        let y = match prep {
            OpsKind::Tracked(prep) => {
                prep.finish((x, gamma, beta, mean, variance, epsilon, activation), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        };
        (y, mean_out, variance_out)
    }

    /// Second derivatives are not needed by ferd: the gradients are computed on the inner
    /// backend, outside the graph.
    fn ferd_batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        epsilon: f64,
        activation: Activation,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dgamma, dbeta) = B::ferd_batch_norm_train_backward(
            Self::inner(x),
            Self::inner(gamma),
            Self::inner(beta),
            Self::inner(mean),
            Self::inner(variance),
            Self::inner(output_grad),
            epsilon,
            activation,
        );
        (
            Self::from_inner(dx),
            Self::from_inner(dgamma),
            Self::from_inner(dbeta),
        )
    }
}
