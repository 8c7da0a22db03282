//! Seeded initialization of any module built from Burn's `Conv2d`, `Linear` and `BatchNorm`,
//! drawn on the host: the same seed gives the same weights on every backend and in every test,
//! whatever else uses Burn's global RNG at the same time.
//!
//! - [`Init::PyTorch`]: PyTorch's defaults for `nn.Conv2d` and `nn.Linear` (weights and biases
//!   `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`, which is `kaiming_uniform_(a = sqrt(5))` for the
//!   weights), BatchNorm weight 1 and bias 0.
//! - [`Init::Dcgan`]: the generator initialization of DCGAN, CMI and FERD (method spec,
//!   section 1): conv and linear weights `N(0, 0.02)`, biases 0, BatchNorm weights `N(1, 0.02)`,
//!   BatchNorm biases 0.
//!
//! Running statistics are reset to mean 0 and variance 1 in both cases.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;
use ferd_core::random::{normal, rng, uniform};
use rand::rngs::StdRng;

/// An initialization scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's default initialization of convolutions, linear layers and BatchNorm.
    PyTorch,
    /// DCGAN's initialization (FERD's generator at every synthesis round).
    Dcgan,
}

/// `module` with every parameter drawn afresh from `seed` by `scheme`. Parameter ids are kept
/// (an optimizer keyed by them stays valid).
///
/// # Examples
/// ```
/// use ferd_models::init::{Init, initialize};
/// use ferd_models::small_cnn::SmallCnnConfig;
/// use ferd_models::Classifier;
///
/// let device = ferd_core::device::test_device();
/// let a = initialize(SmallCnnConfig::new().with_width(2).init(&device), Init::PyTorch, 5);
/// let b = initialize(SmallCnnConfig::new().with_width(2).init(&device), Init::PyTorch, 5);
/// let x = burn::tensor::Tensor::<4>::ones([1, 1, 28, 28], &device);
/// assert_eq!(
///     a.forward(x.clone()).try_to_vec_as::<f32>().unwrap(),
///     b.forward(x).try_to_vec_as::<f32>().unwrap()
/// );
/// ```
///
/// # Panics
/// When the module holds a float parameter outside `Conv2d`, `Linear` and `BatchNorm`: it would
/// otherwise keep a draw of Burn's global RNG and the run would not be reproducible.
pub fn initialize<M: Module>(module: M, scheme: Init, seed: u64) -> M {
    let mut mapper = Initializer {
        scheme,
        rng: rng(seed),
        path: Vec::new(),
        fan_in: 1,
    };
    module.map(&mut mapper)
}

struct Initializer {
    scheme: Init,
    rng: StdRng,
    /// `(field name, container type)` from the root to the current parameter.
    path: Vec<(String, String)>,
    /// Fan-in of the last weight seen, for the bias that follows it.
    fan_in: usize,
}

/// The kind of layer a parameter belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Conv,
    Linear,
    BatchNorm,
}

impl Initializer {
    fn layer(&self) -> Option<Layer> {
        self.path
            .iter()
            .rev()
            .find_map(|(_, container)| match container.as_str() {
                "Struct:Conv2d" => Some(Layer::Conv),
                "Struct:Linear" => Some(Layer::Linear),
                "Struct:BatchNorm" => Some(Layer::BatchNorm),
                _ => None,
            })
    }

    fn field(&self) -> &str {
        self.path.last().map_or("", |(name, _)| name.as_str())
    }
}

impl ModuleMapper for Initializer {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, value, mapper) = param.consume();
        let shape: [usize; D] = value.dims();
        let device = value.device();
        let layer = self.layer();
        let field = self.field().to_string();
        let fresh = match (layer, field.as_str()) {
            (Some(Layer::Conv | Layer::Linear), "weight") => {
                // Burn stores conv weights [out, in / groups, kh, kw] and linear weights
                // [in, out].
                self.fan_in = match layer {
                    Some(Layer::Conv) => shape[1..].iter().product(),
                    _ => shape[0],
                };
                match self.scheme {
                    Init::PyTorch => {
                        let bound = 1.0 / (self.fan_in as f32).sqrt();
                        uniform(&mut self.rng, shape, -bound, bound, &device)
                    }
                    Init::Dcgan => normal(&mut self.rng, shape, 0.0, 0.02, &device),
                }
            }
            (Some(Layer::Conv | Layer::Linear), "bias") => match self.scheme {
                Init::PyTorch => {
                    let bound = 1.0 / (self.fan_in as f32).sqrt();
                    uniform(&mut self.rng, shape, -bound, bound, &device)
                }
                Init::Dcgan => Tensor::zeros(shape, &device),
            },
            (Some(Layer::BatchNorm), "gamma") => match self.scheme {
                Init::PyTorch => Tensor::ones(shape, &device),
                Init::Dcgan => normal(&mut self.rng, shape, 1.0, 0.02, &device),
            },
            (Some(Layer::BatchNorm), "beta" | "running_mean") => Tensor::zeros(shape, &device),
            (Some(Layer::BatchNorm), "running_var") => Tensor::ones(shape, &device),
            _ => panic!(
                "cannot initialize parameter `{}` ({layer:?}): only Conv2d, Linear and BatchNorm \
                 parameters are known",
                self.path
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(".")
            ),
        };
        let fresh = if value.is_require_grad() {
            fresh.require_grad()
        } else {
            fresh
        };
        Param::from_mapped_value(id, fresh, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::GeneratorConfig;
    use crate::small_cnn::SmallCnnConfig;
    use burn::module::ModuleVisitor;
    use ferd_core::device::test_device;

    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().try_to_vec_as::<f32>().unwrap());
        }
    }

    fn values<M: Module>(m: &M) -> Vec<Vec<f32>> {
        let mut c = Collect(Vec::new());
        m.visit(&mut c);
        c.0
    }

    #[test]
    fn same_seed_same_weights_other_seed_other_weights() {
        let device = test_device();
        let build = || SmallCnnConfig::new().with_width(4).init(&device);
        let a = values(&initialize(build(), Init::PyTorch, 1));
        assert_eq!(a, values(&initialize(build(), Init::PyTorch, 1)));
        assert_ne!(a, values(&initialize(build(), Init::PyTorch, 2)));
    }

    /// PyTorch's bound `1/sqrt(fan_in)`: the first conv of a small CNN has fan-in 1 * 3 * 3 = 9,
    /// so its weights are in [-1/3, 1/3] and spread over it (uniform: std 1/(3 sqrt 3)).
    #[test]
    fn pytorch_bounds_follow_fan_in() {
        let model = initialize(
            SmallCnnConfig::new().with_width(64).init(&test_device()),
            Init::PyTorch,
            3,
        );
        let all = values(&model);
        let first = &all[0]; // convs.0.conv.weight, 64 * 9 values
        assert_eq!(first.len(), 64 * 9);
        let max = first.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max <= 1.0 / 3.0 && max > 0.3, "{max}");
        let var = first.iter().map(|v| v * v).sum::<f32>() / first.len() as f32;
        let expected = (1.0f32 / 3.0).powi(2) / 3.0;
        assert!(
            (var - expected).abs() < 0.15 * expected,
            "{var} vs {expected}"
        );
    }

    #[test]
    fn dcgan_statistics() {
        let g = GeneratorConfig::new().init(&test_device(), 9);
        let all = values(&g);
        // l1.weight: N(0, 0.02); l1.bias: zeros.
        let w = &all[0];
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        let std = (w.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt();
        assert!(
            mean.abs() < 1e-3 && (std - 0.02).abs() < 1e-3,
            "{mean} {std}"
        );
        assert!(all[1].iter().all(|&v| v == 0.0));
    }
}
