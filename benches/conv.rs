//! ferd's CPU convolution kernels alone, layer by layer, at ResNet-18's shapes (CIFAR, batch 64):
//! forward, input gradient and weight gradient of each distinct layer, best of `FERD_BENCH_REPS`
//! runs (default 20), with GFLOP/s. The per-operation view behind the train step of
//! `benches/models.rs`: which kernel each layer takes shows in its rate.
//! `tools/bench/torch_conv.py` times the same operations in PyTorch and prints the same table.
//!
//! ```text
//! RAYON_NUM_THREADS=2 cargo bench --bench conv
//! THREADS=2 python3 tools/bench/torch_conv.py
//! ```

use std::time::Instant;

use ferd::kernels::conv::{self, ConvGeometry};

#[global_allocator]
static ALLOCATOR: ferd::allocator::Allocator = ferd::allocator::Allocator;

const BATCH: usize = 64;

/// One distinct convolution of ResNet-18 and how many times the network has it.
struct Layer {
    in_channels: usize,
    out_channels: usize,
    size: usize,
    kernel: usize,
    stride: usize,
    count: usize,
}

/// ResNet-18 for 32x32 inputs (`ResNetConfig::resnet18`): the stem, the four stages' 3x3
/// convolutions, the downsampling 3x3 and 1x1 shortcut of stages 2 to 4. Each row: input and
/// output channels, map size, kernel, stride, count.
fn layers() -> [Layer; 11] {
    [
        [3, 64, 32, 3, 1, 1],
        [64, 64, 32, 3, 1, 4],
        [64, 128, 32, 3, 2, 1],
        [64, 128, 32, 1, 2, 1],
        [128, 128, 16, 3, 1, 3],
        [128, 256, 16, 3, 2, 1],
        [128, 256, 16, 1, 2, 1],
        [256, 256, 8, 3, 1, 3],
        [256, 512, 8, 3, 2, 1],
        [256, 512, 8, 1, 2, 1],
        [512, 512, 4, 3, 1, 3],
    ]
    .map(
        |[in_channels, out_channels, size, kernel, stride, count]| Layer {
            in_channels,
            out_channels,
            size,
            kernel,
            stride,
            count,
        },
    )
}

/// Deterministic values in [-0.5, 0.5).
fn values(len: usize, step: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * step) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

/// The best of `reps` runs of `op`, in seconds.
fn best(reps: usize, mut op: impl FnMut() -> Vec<f32>) -> f64 {
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(op());
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let reps = std::env::var("FERD_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    println!("| layer (B{BATCH}) | count | forward | input grad | weight grad |");
    println!("|---|---:|---:|---:|---:|");
    let mut total = [0.0; 3];
    for l in layers() {
        let padding = l.kernel / 2;
        let g = ConvGeometry::new(
            [BATCH, l.in_channels, l.size, l.size],
            [l.out_channels, l.in_channels, l.kernel, l.kernel],
            [l.stride; 2],
            [(padding, padding); 2],
            [1, 1],
            1,
        )
        .expect("ResNet-18's layers fit");
        let x = values(BATCH * l.in_channels * l.size * l.size, 7919);
        let w = values(g.weight_len(), 104_729);
        let dy = values(g.output_len(), 31);
        let times = [
            best(reps, || conv::forward(&g, &x, &w)),
            best(reps, || conv::input_grad(&g, &w, &dy)),
            best(reps, || conv::weight_grad(&g, &x, &dy)),
        ];
        let flops = 2.0 * (g.output_len() * l.in_channels * l.kernel * l.kernel) as f64;
        let cell = |t: f64| format!("{:.2} ms ({:.0} GFLOP/s)", t * 1e3, flops / t / 1e9);
        println!(
            "| {}->{} {}x{} k{} s{} | {} | {} | {} | {} |",
            l.in_channels,
            l.out_channels,
            l.size,
            l.size,
            l.kernel,
            l.stride,
            l.count,
            cell(times[0]),
            cell(times[1]),
            cell(times[2])
        );
        for (sum, t) in total.iter_mut().zip(times) {
            *sum += t * l.count as f64;
        }
    }
    println!(
        "| all of ResNet-18's convolutions | | {:.1} ms | {:.1} ms | {:.1} ms |",
        total[0] * 1e3,
        total[1] * 1e3,
        total[2] * 1e3
    );
}
