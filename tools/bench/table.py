"""Shared pieces of the PyTorch side of ferd's benchmarks: thread count, median timing, ferd's
criterion medians, and one Markdown table row per workload (collected by compare.sh)."""
import json
import os
import pathlib
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def set_threads():
    """Uses THREADS (compare.sh sets it, as RAYON_NUM_THREADS for ferd) or every core, and
    TORCH_DEVICE (default `cpu`; `cuda` for the GPU comparison with ferd on wgpu) as the device
    every tensor and model is created on."""
    threads = int(os.environ.get("THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    torch.set_default_device(DEVICE)
    return threads


DEVICE = os.environ.get("TORCH_DEVICE", "cpu")


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
