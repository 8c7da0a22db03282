"""Reference fixtures for ferd's attack suite, computed with torchattacks 3.5.1.

Trains a small CNN (ferd's `small-cnn-8`, the same parameter names) on Fashion-MNIST with
fast adversarial training (FGSM with random start, eps 0.1) so that the attacks have something
to do, saves its weights, and runs the reference attacks on the first 200 test images:

- deterministic pieces, compared element-wise by ferd's tests: the clean logits, the DLR loss
  at the clean logits, the FGSM output and the output of PGD without random start;
- AutoAttack standard built component by component with 100 iterations (torchattacks'
  `AutoAttack` runs 10) and Square's schedule not rescaled (fra31's setting), compared on
  robust accuracy.

Run: python3 tools/golden/attack_fixtures.py [--data /usr/share/datasets/fashion-mnist]
Writes crates/ferd-attacks/tests/fixtures/{small_cnn_w8.safetensors, attack_reference.json,
fgsm_adv.f32.gz, pgd_adv.f32.gz}.
"""

import argparse
import copy
import gzip
import json
import pathlib
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
try:  # only the fixture generation needs it; the model definitions are also used by tools/bench
    import torchattacks
except ImportError:
    torchattacks = None
from safetensors.torch import save_file

EPS = 0.1
N_IMAGES = 200
WIDTH = 8
OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/ferd-attacks/tests/fixtures"


def read_idx(path):
    data = gzip.open(path).read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class ConvBn(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SmallCnn(nn.Module):
    """ferd's SmallCnn: conv-conv-pool with `w` then `2w` channels, then a two-layer MLP."""

    def __init__(self, w=WIDTH, classes=10):
        super().__init__()
        self.convs = nn.ModuleList([ConvBn(1, w), ConvBn(w, w), ConvBn(w, 2 * w), ConvBn(2 * w, 2 * w)])
        self.fc1 = nn.Linear(2 * w * 7 * 7, 8 * w)
        self.fc2 = nn.Linear(8 * w, classes)

    def forward(self, x):
        for i, layer in enumerate(self.convs):
            x = layer(x)
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def train(model, images, labels, epochs=3, batch=128):
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(images), generator=gen)
        total, correct = 0, 0
        for start in range(0, len(images), batch):
            idx = perm[start:start + batch]
            x, y = images[idx], labels[idx]
            delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * EPS
            delta.requires_grad_(True)
            loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
            grad, = torch.autograd.grad(loss, delta)
            delta = (delta + 1.25 * EPS * grad.sign()).clamp(-EPS, EPS).detach()
            out = model((x + delta).clamp(0, 1))
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += len(y)
            correct += (out.argmax(1) == y).sum().item()
        print(f"epoch {epoch}: adversarial train accuracy {correct / total:.3f}")


def robust_accuracy(model, adv, y):
    with torch.no_grad():
        return (model(adv).argmax(1) == y).float().mean().item()


def dlr(logits, y):
    # Croce & Hein's DLR loss, as in autoattack's `dlr_loss`.
    s, ind = logits.sort(dim=1)
    top_is_y = (ind[:, -1] == y).float()
    u = torch.arange(len(y))
    return -(logits[u, y] - s[:, -2] * top_is_y - s[:, -1] * (1 - top_is_y)) / (s[:, -1] - s[:, -3] + 1e-12)


def float64_divergent_images(model, x, y, pgd32, alpha, steps):
    """Images whose fixed-start PGD trajectory changes when torch runs it in float64: where
    float32 rounding alone flips a gradient sign along the way (the noise floor for comparing
    two float32 implementations)."""
    m64 = copy.deepcopy(model).double().eval()
    x64 = x.double()
    adv = x64.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(m64(adv), y), adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.min(torch.max(adv, x64 - EPS), x64 + EPS).clamp(0, 1)
    diff = (adv.float() - pgd32).abs().flatten(1).max(1)[0]
    return (diff > 1e-5).nonzero().flatten().tolist()


def write_f32_gz(path, tensor):
    with gzip.open(path, "wb") as f:
        f.write(tensor.detach().numpy().astype("<f4").tobytes())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    data = pathlib.Path(args.data)
    train_x = torch.tensor(read_idx(data / "train-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    train_y = torch.tensor(read_idx(data / "train-labels-idx1-ubyte.gz"), dtype=torch.long)
    test_x = torch.tensor(read_idx(data / "t10k-images-idx3-ubyte.gz"), dtype=torch.float32)[:, None] / 255
    test_y = torch.tensor(read_idx(data / "t10k-labels-idx1-ubyte.gz"), dtype=torch.long)

    model = SmallCnn()
    train(model, train_x, train_y)
    model.eval()
    OUT.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(OUT / "small_cnn_w8.safetensors"))

    x, y = test_x[:N_IMAGES], test_y[:N_IMAGES]
    with torch.no_grad():
        logits = model(x)
    result = {
        "eps": EPS,
        "images": N_IMAGES,
        "torch": torch.__version__,
        "torchattacks": torchattacks.__version__,
        "clean_accuracy": (logits.argmax(1) == y).float().mean().item(),
        "clean_logits": logits.flatten().tolist(),
        "dlr": dlr(logits, y).tolist(),
    }

    fgsm = torchattacks.FGSM(model, eps=EPS)(x, y)
    write_f32_gz(OUT / "fgsm_adv.f32.gz", fgsm)
    pgd = torchattacks.PGD(model, eps=EPS, alpha=0.01, steps=10, random_start=False)(x, y)
    write_f32_gz(OUT / "pgd_adv.f32.gz", pgd)
    result["pgd_fixed"] = {
        "alpha": 0.01,
        "steps": 10,
        "float64_divergent_images": float64_divergent_images(model, x, y, pgd, 0.01, 10),
    }
    result["fgsm_robust"] = robust_accuracy(model, fgsm, y)
    pgd20 = torchattacks.PGD(model, eps=EPS, alpha=EPS / 4, steps=20, random_start=True)(x, y)
    result["pgd20_robust"] = robust_accuracy(model, pgd20, y)

    components = {
        "apgd-ce": torchattacks.APGD(model, eps=EPS, steps=100, n_restarts=1, loss="ce", seed=0),
        "apgd-t": torchattacks.APGDT(model, eps=EPS, steps=100, n_restarts=1, n_classes=10, seed=0),
        "fab-t": torchattacks.FAB(model, eps=EPS, steps=100, n_restarts=1, multi_targeted=True, n_classes=10, seed=0),
        "square": torchattacks.Square(model, eps=EPS, n_queries=5000, n_restarts=1, resc_schedule=False, seed=0),
    }
    # AutoAttack's chaining: each component attacks the points still robust, from the clean images.
    robust = logits.argmax(1) == y
    after = {}
    for name, attack in components.items():
        start = time.time()
        idx = robust.nonzero().flatten()
        if len(idx) > 0:
            adv = attack(x[idx], y[idx])
            still = (model(adv).argmax(1) == y[idx]).detach()
            robust[idx[~still]] = False
        after[name] = robust.float().mean().item()
        print(f"{name}: robust {after[name]:.3f} ({time.time() - start:.1f} s)")
    result["autoattack_after"] = after
    result["autoattack_robust"] = robust.float().mean().item()
    for name, attack in components.items():
        result[f"{name}_alone_robust"] = robust_accuracy(model, attack(x, y), y)

    (OUT / "attack_reference.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=1))


if __name__ == "__main__":
    main()
