"""PyTorch timing of what benches/models.rs measures: forward + cross-entropy + backward of
small-cnn-16 at batch 64 on 28x28x1 images, and of the CIFAR ResNet-18 and MobileNet-V2 at batch
64 on 32x32 images, on the CPU (or the GPU: TORCH_DEVICE=cuda). Prints one Markdown row per model (PyTorch's median, ferd's
criterion median when `cargo bench --bench models` has run, the ratio).

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
from table import DEVICE, criterion_ms, median_ms, row, set_threads  # noqa: E402


def time_step(model, x, y, repeats=10):
    def step():
        model.zero_grad(set_to_none=True)
        xg = x.clone().requires_grad_(True)
        F.cross_entropy(model(xg), y).backward()
        return xg.grad.abs().sum().item()

    return median_ms(step, repeats, warmup=3)


class Full(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.head(self.net.features(x))


def main():
    threads = set_threads()
    torch.manual_seed(0)
    print(f"<!-- torch {torch.__version__}, {threads} threads, {DEVICE} -->")
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    ms = time_step(SmallCnn(16).train(), x, y)
    print(row("small-cnn-16 train step (B64, 28x28x1)", ms,
              criterion_ms("forward_backward_b64_28x28", "small_cnn16")))
    x = torch.rand(64, 3, 32, 32)
    for name, label, net in [("resnet18", "ResNet-18", ResNet([2, 2, 2, 2], 64)),
                             ("mobilenet_v2", "MobileNet-V2", MobileNetV2(1.0))]:
        ms = time_step(Full(net).train(), x, y)
        print(row(f"{label} train step (B64, 32x32x3)", ms,
                  criterion_ms("forward_backward_b64_32x32", name)))


if __name__ == "__main__":
    main()
