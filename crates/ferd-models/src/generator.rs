//! The DCGAN-style generator of CMI and FERD (method spec, section 1):
//! `z -> Linear -> [2 ngf, s/4, s/4] -> BN -> Up x2 -> Conv3x3 -> BN -> LeakyReLU(0.2) -> Up x2
//! -> Conv3x3 -> BN -> LeakyReLU(0.2) -> Conv3x3 -> Sigmoid`, producing images in `[0, 1]`.
//!
//! PyTorch names: `l1.0`, `conv_blocks.{0, 2, 3, 6, 7, 9}`; here `l1`, `bn0`, `conv1`, `bn1`,
//! `conv2`, `bn2`, `conv3`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use ferd_kernels::Activation;

use crate::init::{Init, initialize};
use crate::layers::{batch_norm, batch_norm_forward, conv, conv_forward, upsample_nearest};

/// The negative slope of the generator's LeakyReLUs (`nn.LeakyReLU(0.2)` in CMI's and FERD's
/// generator).
const LEAKY_SLOPE: f32 = 0.2;

/// Configuration of a [`Generator`].
#[derive(Config, Debug)]
pub struct GeneratorConfig {
    /// Latent size `nz`.
    #[config(default = 100)]
    pub latent: usize,
    /// Base width `ngf`.
    #[config(default = 64)]
    pub ngf: usize,
    /// Image side `s` (32; 28 for MNIST-like data); must be divisible by 4.
    #[config(default = 32)]
    pub image_side: usize,
    /// Image channels.
    #[config(default = 3)]
    pub channels: usize,
}

/// The generator.
#[derive(Module, Debug)]
pub struct Generator {
    l1: Linear,
    bn0: BatchNorm,
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    init_side: usize,
}

impl GeneratorConfig {
    /// Builds the generator with the initialization FERD applies at every synthesis round,
    /// drawn from `seed` on the host ([`Init::Dcgan`]): conv and linear weights `N(0, 0.02)`,
    /// biases 0, BatchNorm weights `N(1, 0.02)`, BatchNorm biases 0, fresh running statistics.
    ///
    /// # Panics
    /// When `image_side` is not a positive multiple of 4.
    pub fn init(&self, device: &Device, seed: u64) -> Generator {
        assert!(
            self.image_side > 0 && self.image_side.is_multiple_of(4),
            "image side {} is not a multiple of 4",
            self.image_side
        );
        let init_side = self.image_side / 4;
        let wide = 2 * self.ngf;
        let generator = Generator {
            l1: LinearConfig::new(self.latent, wide * init_side * init_side).init(device),
            bn0: batch_norm(wide, device),
            conv1: conv(wide, wide, 3, 1, device),
            bn1: batch_norm(wide, device),
            conv2: conv(wide, self.ngf, 3, 1, device),
            bn2: batch_norm(self.ngf, device),
            conv3: Conv2dConfig::new([self.ngf, self.channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            init_side,
        };
        initialize(generator, Init::Dcgan, seed)
    }
}

impl Generator {
    /// The latent size `nz`.
    pub fn latent(&self) -> usize {
        self.l1.weight.dims()[0]
    }

    /// Images `[B, channels, s, s]` in `[0, 1]` from latents `[B, latent]`.
    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let [batch, _] = z.dims();
        let side = self.init_side;
        let up = |x: Tensor<4>| upsample_nearest(x, 2);
        let x = self
            .l1
            .forward(z)
            .reshape([batch as i64, -1, side as i64, side as i64]);
        let leaky = Activation::LeakyRelu {
            negative_slope: LEAKY_SLOPE,
        };
        let x = up(batch_norm_forward(&self.bn0, x, Activation::Identity));
        let x = batch_norm_forward(&self.bn1, conv_forward(&self.conv1, x), leaky);
        let x = batch_norm_forward(&self.bn2, conv_forward(&self.conv2, up(x)), leaky);
        sigmoid(conv_forward(&self.conv3, x))
    }
}

impl crate::weights::PyTorchLayout for Generator {
    /// The PyTorch `Sequential` indices of `l1` and `conv_blocks` name the layers here.
    fn pytorch_renames(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (r"^l1\.0\.", "l1."),
            (r"^conv_blocks\.0\.", "bn0."),
            (r"^conv_blocks\.2\.", "conv1."),
            (r"^conv_blocks\.3\.", "bn1."),
            (r"^conv_blocks\.6\.", "conv2."),
            (r"^conv_blocks\.7\.", "bn2."),
            (r"^conv_blocks\.9\.", "conv3."),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferd_core::device::test_device;

    fn mean_std(t: Tensor<1>) -> (f32, f32) {
        let v = t.try_to_vec_as::<f32>().unwrap();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
        (mean, var.sqrt())
    }

    #[test]
    fn dcgan_initialization() {
        let g = GeneratorConfig::new().init(&test_device(), 0);
        for (name, weights) in [
            ("l1", g.l1.weight.val().flatten::<1>(0, 1)),
            ("conv1", g.conv1.weight.val().flatten::<1>(0, 3)),
            ("conv3", g.conv3.weight.val().flatten::<1>(0, 3)),
        ] {
            let (mean, std) = mean_std(weights);
            assert!(
                mean.abs() < 2e-3 && (std - 0.02).abs() < 2e-3,
                "{name}: mean {mean}, std {std}"
            );
        }
        let (mean, std) = mean_std(g.bn1.gamma.val());
        assert!(
            (mean - 1.0).abs() < 1e-2 && (std - 0.02).abs() < 6e-3,
            "bn gamma: {mean}, {std}"
        );
        for zeros in [
            g.l1.bias.as_ref().unwrap().val(),
            g.conv3.bias.as_ref().unwrap().val(),
            g.bn0.beta.val(),
        ] {
            assert_eq!(zeros.abs().max().into_scalar::<f32>(), 0.0);
        }
    }
}
