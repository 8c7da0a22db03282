"""Shared pieces of the PyTorch side of ferd's benchmarks: thread count, median timing, ferd's
criterion medians, and one Markdown table row per workload (collected by compare.sh)."""
import json
import os
import pathlib
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def set_threads():
    """Uses THREADS (compare.sh sets it, as RAYON_NUM_THREADS for ferd) or every core,
    TORCH_DEVICE (default `cpu`; `cuda` for the GPU comparison with ferd on wgpu) as the device
    every tensor and model is created on, and TORCH_TF32 where it is set."""
    threads = int(os.environ.get("THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    torch.set_default_device(DEVICE)
    if TF32 is not None:
        torch.backends.cudnn.allow_tf32 = TF32 == "1"
        torch.backends.cuda.matmul.allow_tf32 = TF32 == "1"
    return threads


DEVICE = os.environ.get("TORCH_DEVICE", "cpu")

# The batch of the model and FERD workloads (FERD_BENCH_BATCH, as ferd's benches read it): 64
# by default, the paper's 256 on a GPU.
BATCH = int(os.environ.get("FERD_BENCH_BATCH", "64"))

# TF32 on CUDA (TORCH_TF32=1 or 0): PyTorch convolves in TF32 by default and multiplies matrices
# in full f32; ferd computes in f32 throughout. Unset: PyTorch's defaults.
TF32 = os.environ.get("TORCH_TF32")


def setup_note(threads):
    """The HTML comment that heads a table: torch, threads, device, batch, TF32 and the GPU."""
    note = f"torch {torch.__version__}, {threads} threads, {DEVICE}, batch {BATCH}"
    if DEVICE.startswith("cuda"):
        note += (f", {torch.cuda.get_device_name()}, TF32 convolutions "
                 f"{torch.backends.cudnn.allow_tf32}, TF32 matmul "
                 f"{torch.backends.cuda.matmul.allow_tf32}")
    return f"<!-- {note} -->"


def reset_peak_memory():
    """Starts a workload's peak-memory count (CUDA only)."""
    if DEVICE.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_memory_note(workload):
    """The workload's peak allocated GPU memory as an HTML comment, or '' on the CPU."""
    if not DEVICE.startswith("cuda"):
        return ""
    return f"<!-- {workload}: peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB -->"


def sync():
    """Waits for the GPU's queued work, so that a timing covers it."""
    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(fn, repeats, warmup=2):
    """Median wall time of `fn` in milliseconds, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e3


class Full(torch.nn.Module):
    """A model of tools/golden/model_fixtures.py (features and head) as a whole classifier."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def features(self, x):
        return self.net.features(x)

    def head(self, z):
        return self.net.head(z)

    def forward(self, x):
        return self.head(self.features(x))


def criterion_ms(group, name):
    """ferd's median from `cargo bench` (criterion), or None when that bench has not run."""
    path = ROOT / f"target/criterion/{group}/{name}/new/estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["median"]["point_estimate"] / 1e6


def row(workload, torch_ms, ferd_ms, unit="ms"):
    """A Markdown row: workload | PyTorch | ferd | ferd / PyTorch."""
    if ferd_ms is None:
        return f"| {workload} | {torch_ms:.1f} {unit} | not run | |"
    return f"| {workload} | {torch_ms:.1f} {unit} | {ferd_ms:.1f} {unit} | {ferd_ms / torch_ms:.2f}x |"
