//! A 2-D convolution on the CPU over plain `f32` slices: forward, input gradient and weight
//! gradient, in PyTorch's layouts (input `[B, C_in, H, W]`, weight `[C_out, C_in / groups, kH,
//! kW]`, output `[B, C_out, H_out, W_out]`, all contiguous). Nothing here knows about Burn;
//! `crate::flex::conv` moves tensors in and out.
//!
//! This module owns the geometry ([`ConvGeometry`]) and the choice of kernels ([`ConvPath`]);
//! each path is a leaf that imports only this module and the helpers below it:
//!
//! | path | leaf | takes |
//! |---|---|---|
//! | [`ConvPath::Im2col`] | `gemm` (im2col + GEMM), `depthwise` (one channel per group) | every layer |
//! | [`ConvPath::DirectRows`] | `direct_rows`, `weight_tiles` | output rows of whole AVX-512 vectors (ResNet-18's 32x32 and 16x16 stages) |
//! | [`ConvPath::DirectImages`] | `direct_images`, `weight_tiles` | maps of at most 8x8, batches of about 48 images and more |
//!
//! The helpers: `taps` (where each kernel tap reads), `shares` (the batch split of a weight
//! gradient), `tile` (the register tile and packed weight of the direct paths), `copies` (the
//! padded and interleaved input copies they read). The direct paths need AVX-512; where the CPU
//! lacks it, or a layer does not fit them, im2col computes it. The input gradient of a stride-1
//! layer is the forward of the flipped convolution (`flipped`) and takes the same paths.
//!
//! [`with_path`] (or [`PATH_VAR`] for a whole process) forces one path where it can run, for
//! tests and benchmarks; every path computes the same convolution, in its own summation order.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;

mod copies;
mod depthwise;
mod direct_images;
mod direct_rows;
mod gemm;
mod shares;
mod taps;
#[cfg(test)]
mod tests;
mod tile;
mod weight_tiles;

use tile::Packed;

thread_local! {
    /// Each thread's im2col buffer, kept between calls: a fresh multi-megabyte allocation per
    /// image costs more in page faults than the copy it holds.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` with this thread's scratch buffer resized to `len`.
fn with_scratch<R>(len: usize, work: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        work(&mut scratch[..len])
    })
}

/// The shapes and options of one convolution, checked once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size.
    pub batch: usize,
    /// Input channels (all groups).
    pub in_channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Output channels (all groups).
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding before the first row and column (the padding after them only shapes the output).
    pub padding: [usize; 2],
    /// Dilation along height and width.
    pub dilation: [usize; 2],
    /// Number of groups.
    pub groups: usize,
    /// Output height.
    pub out_height: usize,
    /// Output width.
    pub out_width: usize,
}

impl ConvGeometry {
    /// The geometry of `x [B, C_in, H, W]` convolved with `w [C_out, C_in/groups, kH, kW]`, with
    /// `(begin, end)` paddings per spatial dimension; an error says what does not fit.
    pub fn new(
        x: [usize; 4],
        w: [usize; 4],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        dilation: [usize; 2],
        groups: usize,
    ) -> Result<Self, String> {
        let [batch, in_channels, height, width] = x;
        let [out_channels, group_in, kh, kw] = w;
        if groups == 0 || stride.contains(&0) || dilation.contains(&0) {
            return Err(format!(
                "stride {stride:?}, dilation {dilation:?} and groups {groups} must be positive"
            ));
        }
        if in_channels % groups != 0
            || out_channels % groups != 0
            || group_in * groups != in_channels
        {
            return Err(format!(
                "input {x:?} and weight {w:?} do not fit {groups} group(s): the weight's second \
                 dimension must be C_in / groups and C_out must divide into the groups"
            ));
        }
        let out_size = |size: usize, (begin, end): (usize, usize), k: usize, s: usize, d: usize| {
            let span = d * (k.max(1) - 1) + 1;
            (size + begin + end)
                .checked_sub(span)
                .map(|room| room / s + 1)
        };
        let out_height = out_size(height, padding[0], kh, stride[0], dilation[0]);
        let out_width = out_size(width, padding[1], kw, stride[1], dilation[1]);
        match (out_height, out_width) {
            (Some(out_height), Some(out_width)) if kh > 0 && kw > 0 => Ok(Self {
                batch,
                in_channels,
                height,
                width,
                out_channels,
                kernel: [kh, kw],
                stride,
                padding: [padding[0].0, padding[1].0],
                dilation,
                groups,
                out_height,
                out_width,
            }),
            _ => Err(format!(
                "kernel {:?} (dilation {dilation:?}) does not fit the padded input {:?}",
                [kh, kw],
                [
                    height + padding[0].0 + padding[0].1,
                    width + padding[1].0 + padding[1].1
                ]
            )),
        }
    }

    /// Input channels per group.
    fn group_in(&self) -> usize {
        self.in_channels / self.groups
    }

    /// Output channels per group.
    fn group_out(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Rows of one group's im2col matrix: `C_in/groups * kH * kW`.
    fn col_rows(&self) -> usize {
        self.group_in() * self.kernel[0] * self.kernel[1]
    }

    /// Columns of the im2col matrix: output positions per image.
    fn col_cols(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Elements of one input image.
    fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// Elements of one output image.
    fn out_image_len(&self) -> usize {
        self.out_channels * self.col_cols()
    }

    /// Elements of the weight.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.col_rows()
    }

    /// Elements of the output.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_image_len()
    }

    /// Output shape `[B, C_out, H_out, W_out]`.
    pub fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ]
    }

    /// A 1x1 convolution that reads every input pixel once, in order: `col(X) = X`.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.padding == [0, 0]
            && self.out_height == self.height
            && self.out_width == self.width
    }

    /// One input channel and one output channel per group.
    fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.group_in() == 1 && self.group_out() == 1
    }

    /// For kernel offset `k` along a dimension, the input coordinate read by output `o`:
    /// `o * stride + k * dilation - padding`, `None` where it falls in the padding. The
    /// definition that [`ConvGeometry::tap`]'s ranges are tested against, and what
    /// `direct_images` visits tap by tap.
    fn source(
        o: usize,
        k: usize,
        stride: usize,
        dilation: usize,
        padding: usize,
        size: usize,
    ) -> Option<usize> {
        (o * stride + k * dilation)
            .checked_sub(padding)
            .filter(|&i| i < size)
    }

    /// The outputs `lo..hi` (of `count`) whose input coordinate for kernel offset `k` lies inside
    /// the image; the first of them reads input `lo * stride + k * dilation - padding`.
    #[inline]
    fn inside(
        count: usize,
        k: usize,
        stride: usize,
        dilation: usize,
        padding: usize,
        size: usize,
    ) -> (usize, usize) {
        let shift = k * dilation;
        let lo = padding.saturating_sub(shift).div_ceil(stride);
        let hi = if size + padding > shift {
            ((size + padding - shift - 1) / stride + 1).min(count)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
}

/// A GEMM's columns below which images are batched into one GEMM. A deep layer has few output
/// positions per image (16 for a 4x4 map): one GEMM per image then runs gemm's narrow edge
/// kernel and packs the whole weight again for every image. From a 16x16 map on, one image is
/// enough.
const MIN_GEMM_COLUMNS: usize = 256;

impl ConvGeometry {
    /// Images per GEMM: enough for [`MIN_GEMM_COLUMNS`] columns, never more than the batch.
    /// It depends on the shapes alone, so the arithmetic (and every result) is the same whatever
    /// the number of threads.
    fn images_per_gemm(&self) -> usize {
        MIN_GEMM_COLUMNS
            .div_ceil(self.col_cols().max(1))
            .clamp(1, self.batch.max(1))
    }
}

/// The kernels that compute a convolution on the CPU (the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConvPath {
    /// im2col + GEMM, and the depthwise loops: every layer, on every CPU.
    Im2col,
    /// Direct register tiles vectorized over output positions (AVX-512).
    DirectRows,
    /// Direct register tiles vectorized over images (AVX-512).
    DirectImages,
}

/// The environment variable that forces one [`ConvPath`] for a whole process: `im2col`,
/// `direct-rows` or `direct-images` (unset: each layer takes the fastest path that fits it).
pub const PATH_VAR: &str = "FERD_CONV_PATH";

impl ConvPath {
    /// Every path.
    pub const ALL: [ConvPath; 3] = [Self::Im2col, Self::DirectRows, Self::DirectImages];

    /// The path's name in [`PATH_VAR`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Im2col => "im2col",
            Self::DirectRows => "direct-rows",
            Self::DirectImages => "direct-images",
        }
    }

    /// Whether this CPU can run the path: the direct tiles are written in AVX-512F and VL.
    pub fn available(self) -> bool {
        self == Self::Im2col || tile::has_avx512()
    }

    /// Whether the path computes the forward of `g` on this CPU.
    pub fn takes(self, g: &ConvGeometry) -> bool {
        match self {
            Self::Im2col => true,
            Self::DirectRows => self.available() && direct_rows::fits(g),
            Self::DirectImages => self.available() && direct_images::fits(g),
        }
    }

    /// Whether the path computes the weight gradient of `g` on this CPU.
    fn takes_weight_grad(self, g: &ConvGeometry) -> bool {
        match self {
            Self::Im2col => true,
            Self::DirectRows => self.takes(g) && weight_tiles::rows_fit(g),
            Self::DirectImages => self.takes(g),
        }
    }
}

impl std::str::FromStr for ConvPath {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|path| path.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
                format!("unknown convolution path `{name}`: expected one of {names:?}")
            })
    }
}

thread_local! {
    /// The path [`with_path`] forces on this thread, if any.
    static FORCED: Cell<Option<ConvPath>> = const { Cell::new(None) };
}

/// Runs `work` with every convolution this thread starts computed by `path` where `path` takes
/// the layer (elsewhere by im2col), whatever [`PATH_VAR`] says. The choice is made on the
/// calling thread: Flex runs ferd's ops, their gradients included, on the thread that calls them.
pub fn with_path<R>(path: ConvPath, work: impl FnOnce() -> R) -> R {
    struct Restore(Option<ConvPath>);
    impl Drop for Restore {
        fn drop(&mut self) {
            FORCED.with(|forced| forced.set(self.0));
        }
    }
    let _restore = Restore(FORCED.with(|forced| forced.replace(Some(path))));
    work()
}

/// The path forced on this thread, else by [`PATH_VAR`] (read once per process).
///
/// # Panics
/// If [`PATH_VAR`] names no path: a benchmark must not silently measure another one.
fn forced() -> Option<ConvPath> {
    static FROM_ENV: OnceLock<Option<ConvPath>> = OnceLock::new();
    FORCED.with(Cell::get).or_else(|| {
        *FROM_ENV.get_or_init(|| {
            let name = std::env::var(PATH_VAR).ok()?;
            Some(
                name.parse()
                    .unwrap_or_else(|error| panic!("{PATH_VAR}: {error}")),
            )
        })
    })
}

/// The path that computes `g`'s forward: the forced one where it takes the layer, else the
/// first direct path that takes it, else im2col.
fn forward_path(g: &ConvGeometry) -> ConvPath {
    choose(g, ConvPath::takes)
}

/// The path that computes `g`'s weight gradient, chosen as [`forward_path`] chooses.
fn weight_grad_path(g: &ConvGeometry) -> ConvPath {
    choose(g, ConvPath::takes_weight_grad)
}

/// The forced path where `takes` it, else the first direct path that `takes` the layer, else
/// im2col.
fn choose(g: &ConvGeometry, takes: fn(ConvPath, &ConvGeometry) -> bool) -> ConvPath {
    match forced() {
        Some(path) if takes(path, g) => path,
        Some(_) => ConvPath::Im2col,
        None => [ConvPath::DirectRows, ConvPath::DirectImages]
            .into_iter()
            .find(|&path| takes(path, g))
            .unwrap_or(ConvPath::Im2col),
    }
}

/// The forward through a direct path: `None` for im2col.
fn direct_forward(
    path: ConvPath,
    g: &ConvGeometry,
    x: &[f32],
    weight: impl FnOnce() -> Packed,
) -> Option<Vec<f32>> {
    match path {
        ConvPath::Im2col => None,
        ConvPath::DirectRows => Some(direct_rows::forward(g, x, &weight())),
        ConvPath::DirectImages => Some(direct_images::forward(g, x, &weight())),
    }
}

/// The forward convolution without bias: returns `[B, C_out, H_out, W_out]`, contiguous.
pub fn forward(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        g.batch * g.image_len(),
        "conv forward: input length"
    );
    assert_eq!(w.len(), g.weight_len(), "conv forward: weight length");
    if let Some(out) = direct_forward(forward_path(g), g, x, || Packed::new(g, w)) {
        return out;
    }
    match g.is_depthwise() {
        true => depthwise::forward(g, x, w),
        false => gemm::forward(g, x, w),
    }
}

/// The gradient of the input, `[B, C_in, H, W]`, from the output gradient `dy`. For a stride-1
/// layer the direct paths compute it as the forward of the `flipped` convolution.
pub fn input_grad(g: &ConvGeometry, w: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        w.len(),
        g.weight_len(),
        "conv input gradient: weight length"
    );
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv input gradient: output-gradient length"
    );
    if let Some(flipped) = flipped(g)
        && let Some(dx) = direct_forward(forward_path(&flipped), &flipped, dy, || {
            Packed::flipped(g, w)
        })
    {
        return dx;
    }
    match g.is_depthwise() {
        true => depthwise::input_grad(g, w, dy),
        false => gemm::input_grad(g, w, dy),
    }
}

/// The gradient of the weight, `[C_out, C_in/groups, kH, kW]`, from the input `x` and the output
/// gradient `dy`. Every path sums in an order fixed by the shapes alone: the result depends
/// neither on scheduling nor on the number of threads.
pub fn weight_grad(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(
        x.len(),
        g.batch * g.image_len(),
        "conv weight gradient: input length"
    );
    assert_eq!(
        dy.len(),
        g.output_len(),
        "conv weight gradient: output-gradient length"
    );
    let len = g.weight_len();
    if g.batch == 0 || len == 0 {
        return vec![0.0; len];
    }
    match weight_grad_path(g) {
        ConvPath::DirectRows => weight_tiles::rows_weight_grad(g, x, dy),
        ConvPath::DirectImages => weight_tiles::images_weight_grad(g, x, dy),
        ConvPath::Im2col if g.is_depthwise() => depthwise::weight_grad(g, x, dy),
        ConvPath::Im2col => gemm::weight_grad(g, x, dy),
    }
}

/// The convolution whose forward is `g`'s input gradient: for stride 1 and one group, the output
/// gradient correlated with the flipped, transposed kernel ([`Packed::flipped`]), padded by
/// `(k - 1) d - p`. `None` for other strides and groups, or where a padding exceeds the kernel's
/// reach (`p > (k - 1) d`, where the flipped padding would be negative).
fn flipped(g: &ConvGeometry) -> Option<ConvGeometry> {
    if g.stride != [1, 1] || g.groups != 1 {
        return None;
    }
    let reach = |axis: usize| (g.kernel[axis] - 1) * g.dilation[axis];
    // Stride 1: H_out = H + top + bottom - reach, so the bottom padding is what is left.
    let [top, left] = g.padding;
    let bottom = (g.out_height + reach(0)).checked_sub(g.height + top)?;
    let right = (g.out_width + reach(1)).checked_sub(g.width + left)?;
    let flipped = ConvGeometry::new(
        [g.batch, g.out_channels, g.out_height, g.out_width],
        [g.in_channels, g.out_channels, g.kernel[0], g.kernel[1]],
        [1, 1],
        [
            (reach(0).checked_sub(top)?, reach(0).checked_sub(bottom)?),
            (reach(1).checked_sub(left)?, reach(1).checked_sub(right)?),
        ],
        g.dilation,
        1,
    )
    .ok()?;
    ([flipped.out_height, flipped.out_width] == [g.height, g.width]).then_some(flipped)
}
