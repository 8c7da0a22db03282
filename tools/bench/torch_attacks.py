"""Times PGD-20 and AutoAttack standard (components with 100 iterations, Square not rescaled)
with torchattacks on the same model and images as ferd's `benches/attacks.rs`, and prints the
ratios to ferd's figures in target/attack_bench.json, as Markdown rows.

Run after `cargo bench --bench attacks`: python3 tools/bench/torch_attacks.py [--threads 2]
"""

import argparse
import gzip
import json
import pathlib
import sys
import time

import torch
import torchattacks
from safetensors.torch import load_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/golden"))
sys.path.insert(0, str(ROOT / "tools/bench"))
from attack_fixtures import SmallCnn, read_idx  # noqa: E402
from table import row  # noqa: E402

EPS = 0.1


def robust(model, attack, x, y, batch=500):
    start = time.time()
    hits = 0
    for i in range(0, len(x), batch):
        adv = attack(x[i:i + batch], y[i:i + batch])
        with torch.no_grad():
            hits += (model(adv).argmax(1) == y[i:i + batch]).sum().item()
    return hits / len(x), time.time() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ferd = json.loads((ROOT / "target/attack_bench.json").read_text())
    n = ferd["images"]
    data = ROOT / "data/fashion-mnist"
    x = torch.tensor(read_idx(data / "t10k-images-idx3-ubyte.gz")[:n], dtype=torch.float32)[:, None] / 255
    y = torch.tensor(read_idx(data / "t10k-labels-idx1-ubyte.gz")[:n], dtype=torch.long)
    model = SmallCnn()
    model.load_state_dict(load_file(str(ROOT / "crates/ferd-attacks/tests/fixtures/small_cnn_w8.safetensors")))
    model.eval()
    pgd_acc, pgd_s = robust(model, torchattacks.PGD(model, eps=EPS, alpha=EPS / 4, steps=20), x, y)
    aa = torchattacks.MultiAttack([
        torchattacks.APGD(model, eps=EPS, steps=100, loss="ce", seed=0),
        torchattacks.APGDT(model, eps=EPS, steps=100, n_classes=10, seed=0),
        torchattacks.FAB(model, eps=EPS, steps=100, multi_targeted=True, n_classes=10, seed=0),
        torchattacks.Square(model, eps=EPS, n_queries=5000, resc_schedule=False, seed=0),
    ])
    aa_acc, aa_s = robust(model, aa, x, y)
    print(f"<!-- {n} images, {args.threads} threads, ferd on {ferd['device']}; robust accuracy: PGD-20 "
          f"torchattacks {pgd_acc:.4f} / ferd {ferd['pgd20_robust']:.4f}, AutoAttack torchattacks {aa_acc:.4f} / "
          f"ferd {ferd['autoattack_robust']:.4f} -->")
    print(row(f"PGD-20, {n} images (small-cnn-8)", pgd_s, ferd["pgd20_seconds"], unit="s"))
    print(row(f"AutoAttack standard, {n} images (small-cnn-8)", aa_s, ferd["autoattack_seconds"], unit="s"))


if __name__ == "__main__":
    main()
