"""PyTorch timing of what benches/conv.rs measures: forward, input gradient and weight gradient of
each distinct convolution of the CIFAR ResNet-18 at batch 64, best of FERD_BENCH_REPS runs
(default 20), with GFLOP/s, as one Markdown table in the same layout.

Run:  THREADS=2 python3 tools/bench/torch_conv.py
"""
import os
import time

import torch

BATCH = 64
# (in, out, size, kernel, stride, count): the stem, the stages' 3x3 convolutions, the
# downsampling 3x3 and 1x1 shortcut of stages 2 to 4, as in benches/conv.rs.
LAYERS = [(3, 64, 32, 3, 1, 1), (64, 64, 32, 3, 1, 4), (64, 128, 32, 3, 2, 1),
          (64, 128, 32, 1, 2, 1), (128, 128, 16, 3, 1, 3), (128, 256, 16, 3, 2, 1),
          (128, 256, 16, 1, 2, 1), (256, 256, 8, 3, 1, 3), (256, 512, 8, 3, 2, 1),
          (256, 512, 8, 1, 2, 1), (512, 512, 4, 3, 1, 3)]


def best(reps, op):
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        op()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    reps = int(os.environ.get("FERD_BENCH_REPS", "20"))
    print(f"<!-- torch {torch.__version__}, {torch.get_num_threads()} threads -->")
    print(f"| layer (B{BATCH}) | count | forward | input grad | weight grad |")
    print("|---|---:|---:|---:|---:|")
    total = [0.0, 0.0, 0.0]
    for cin, cout, size, k, s, count in LAYERS:
        p = k // 2
        x = torch.randn(BATCH, cin, size, size)
        w = torch.randn(cout, cin, k, k)
        y = torch.nn.functional.conv2d(x, w, stride=s, padding=p)
        dy = torch.randn_like(y)

        def backward(mask):
            return torch.ops.aten.convolution_backward(
                dy, x, w, None, [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)

        times = [best(reps, lambda: torch.nn.functional.conv2d(x, w, stride=s, padding=p)),
                 best(reps, lambda: backward([True, False, False])),
                 best(reps, lambda: backward([False, True, False]))]
        flops = 2.0 * y.numel() * cin * k * k
        cells = [f"{t * 1e3:.2f} ms ({flops / t / 1e9:.0f} GFLOP/s)" for t in times]
        print(f"| {cin}->{cout} {size}x{size} k{k} s{s} | {count} | " + " | ".join(cells) + " |")
        total = [a + t * count for a, t in zip(total, times)]
    print(f"| all of ResNet-18's convolutions | | {total[0] * 1e3:.1f} ms | "
          f"{total[1] * 1e3:.1f} ms | {total[2] * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
