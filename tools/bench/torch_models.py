"""PyTorch timing of what benches/models.rs measures: forward + cross-entropy + backward of the
CIFAR ResNet-18 and MobileNet-V2 at batch 64 on 32x32 images, on the CPU, with as many threads as
the machine has cores. Prints milliseconds per step and, when `cargo bench --bench models` has
run, ferd's time and the ratio ferd / PyTorch.

Run:  python3 tools/bench/torch_models.py   (needs torch; uses the definitions of
tools/golden/model_fixtures.py, the same layouts as ferd's models)
"""
import json
import os
import pathlib
import sys
import time

import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/golden"))
from model_fixtures import MobileNetV2, ResNet  # noqa: E402


def time_step(model, x, y, repeats=10):
    def step():
        model.zero_grad(set_to_none=True)
        xg = x.clone().requires_grad_(True)
        F.cross_entropy(model(xg), y).backward()
        return xg.grad.abs().sum().item()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1e3


def ferd_ms(name):
    path = ROOT / f"target/criterion/forward_backward_b64_32x32/{name}/new/estimates.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())["mean"]["point_estimate"] / 1e6


class Full(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.head(self.net.features(x))


def main():
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    x = torch.rand(64, 3, 32, 32)
    y = torch.randint(0, 10, (64,))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, net in [("resnet18", ResNet([2, 2, 2, 2], 64)), ("mobilenet_v2", MobileNetV2(1.0))]:
        model = Full(net).train()
        ms = time_step(model, x, y)
        ours = ferd_ms(name)
        line = f"{name:>13}: pytorch {ms:8.1f} ms/step"
        if ours is not None:
            line += f" | ferd {ours:8.1f} ms/step | ferd/pytorch {ours / ms:5.2f}x"
        print(line)


if __name__ == "__main__":
    main()
