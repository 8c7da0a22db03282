"""PyTorch timing of what benches/models.rs measures: forward + cross-entropy + backward of
small-cnn-16 on 28x28x1 images, and of the CIFAR ResNet-18 and MobileNet-V2 on 32x32 images, at
batch FERD_BENCH_BATCH (default 64), on the CPU (or the GPU: TORCH_DEVICE=cuda, with TORCH_TF32=0
or 1). Prints one Markdown row per model (PyTorch's median, ferd's criterion median when `cargo
bench --bench models` has run with the same batch, the ratio), and on a GPU each workload's peak
memory.

Run:  THREADS=2 python3 tools/bench/torch_models.py   (needs torch; uses the definitions of
tools/golden/model_fixtures.py and attack_fixtures.py, the same layouts as ferd's models)
"""
import pathlib
import sys

import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/golden"))
sys.path.insert(0, str(ROOT / "tools/bench"))
from attack_fixtures import SmallCnn  # noqa: E402
from model_fixtures import MobileNetV2, ResNet  # noqa: E402
from table import (BATCH, Full, criterion_ms, median_ms, peak_memory_note,  # noqa: E402
                   reset_peak_memory, row, set_threads, setup_note)


def time_step(model, x, y, repeats=10):
    def step():
        model.zero_grad(set_to_none=True)
        xg = x.clone().requires_grad_(True)
        F.cross_entropy(model(xg), y).backward()
        return xg.grad.abs().sum().item()

    return median_ms(step, repeats, warmup=3)


def main():
    threads = set_threads()
    torch.manual_seed(0)
    print(setup_note(threads))
    notes = []  # the GPU's peak memory per workload, after the rows (a comment line ends a table)
    x = torch.rand(BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (BATCH,))
    reset_peak_memory()
    workload = f"small-cnn-16 train step (B{BATCH}, 28x28x1)"
    ms = time_step(SmallCnn(16).train(), x, y)
    print(row(workload, ms, criterion_ms(f"forward_backward_b{BATCH}_28x28", "small_cnn16")))
    notes.append(peak_memory_note(workload))
    x = torch.rand(BATCH, 3, 32, 32)
    for name, label, net in [("resnet18", "ResNet-18", ResNet([2, 2, 2, 2], 64)),
                             ("mobilenet_v2", "MobileNet-V2", MobileNetV2(1.0))]:
        reset_peak_memory()
        workload = f"{label} train step (B{BATCH}, 32x32x3)"
        ms = time_step(Full(net).train(), x, y)
        print(row(workload, ms, criterion_ms(f"forward_backward_b{BATCH}_32x32", name)))
        notes.append(peak_memory_note(workload))
    for note in filter(None, notes):
        print(note)


if __name__ == "__main__":
    main()
