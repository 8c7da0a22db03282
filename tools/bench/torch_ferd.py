"""PyTorch timing of what benches/ferd.rs measures: one FERD synthesis iteration (generator
forward, crop augmentation, teacher with BatchNorm hooks, student, the information-bottleneck
inner loop of Adam steps, the four losses, backward, two Adam steps) and one student step
(teacher forward, student forward in train mode, 10 UTAE steps against the frozen student,
student forward on the UTAEs, the IKL loss, backward, SGD step), at batch FERD_BENCH_BATCH
(default 64) and in the shapes of FERD_BENCH_SHAPE:

- `fmnist` (default, the `fmnist-quick` budget): teacher small-cnn-16, student small-cnn-8,
  generator nz 100 / ngf 16, 28x28x1, 20 bottleneck steps, crops with padding 2;
- `cifar` (the paper's `cifar10-paper` budget): teacher WRN-34-10, student ResNet-18, generator
  nz 100 / ngf 64, 32x32x3, 50 bottleneck steps, crops with padding 4 and flips.

Prints one Markdown row per workload: PyTorch's median, ferd's criterion median when
`cargo bench --bench ferd` has run, and the ratio. `tools/bench/compare.sh` runs both sides with
the same thread count (THREADS here, RAYON_NUM_THREADS for ferd):

    THREADS=2 python3 tools/bench/torch_ferd.py   (needs torch; uses tools/golden/ferd_fixtures.py)
"""
import copy
import os
import pathlib
import sys

import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/golden"))
sys.path.insert(0, str(ROOT / "tools/bench"))
import ferd_fixtures as fx  # noqa: E402
from model_fixtures import ResNet, WideResNet  # noqa: E402
from table import (BATCH, Full, criterion_ms, median_ms, peak_memory_note,  # noqa: E402
                   reset_peak_memory, row, set_threads, setup_note)

SHAPE = os.environ.get("FERD_BENCH_SHAPE", "fmnist")
B, K, ROUND = BATCH, 10, 5
# side, channels, ngf, bottleneck steps, crop padding, flips: as ferd's presets.
SIDE, CH, NGF, INNER, PAD, FLIP, EPS = {"fmnist": (28, 1, 16, 20, 2, False, 0.1),
                                        "cifar": (32, 3, 64, 50, 4, True, 8 / 255)}[SHAPE]
ALPHA = EPS / 4


def crop(x, pad=PAD, flip=FLIP):
    """Random crop with zero padding and, for CIFAR, a random flip, per sample (as ferd's
    augmentation)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device="cpu")  # offsets stay on the host
    dx = torch.randint(0, 2 * pad + 1, (n,), device="cpu")
    flips = torch.rand(n, device="cpu") < 0.5
    out = [padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)]
    return torch.stack([o.flip(2) if flip and f else o for o, f in zip(out, flips)])


def synthesis_round(teacher, student):
    generator = fx.Generator(100, NGF, SIDE, CH).train()
    z = torch.randn(B, 100).requires_grad_(True)
    y = torch.randint(0, 10, (B,)).sort()[0]
    opt_g = torch.optim.Adam(generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_z = torch.optim.Adam([z], lr=0.015, betas=(0.5, 0.999))
    fx.INNER_STEPS = INNER
    best, best_x = float("inf"), None
    for _ in range(ROUND):
        x = generator(z)
        xa = crop(x)
        l_bn, feats = fx.bn_loss(teacher, xa)
        t = teacher.head(feats)
        s = student(xa)
        noise = torch.randn(INNER, B, feats.shape[1], 1, 1)
        _, _, t_nr, _ = fx.non_robust(teacher, feats, y, noise)
        loss = (5 * l_bn - fx.ikl(s, t, F.softmax(t / 100.0, 1)) + F.cross_entropy(t, y)
                + 5 * fx.kl_uniform(t_nr))
        opt_g.zero_grad()
        opt_z.zero_grad()
        loss.backward()
        opt_g.step()
        opt_z.step()
        if loss.item() < best:
            best, best_x = loss.item(), x.detach()
    return best_x


def student_step(teacher, student, opt, x, y):
    with torch.no_grad():
        t = teacher(x)
    student.train()
    s_clean = student(x)
    frozen = copy.deepcopy(student).eval()  # the official code evaluates the same module; a copy costs little
    for p in frozen.parameters():
        p.requires_grad_(False)
    x_adv = x + 0.001 * torch.randn_like(x)
    p_t = F.softmax(t, 1)
    for _ in range(K):
        x_adv.requires_grad_(True)
        log_s = F.log_softmax(frozen(x_adv), 1)
        j = (p_t * (F.log_softmax(t, 1) - log_s)).sum() - 0.3 * (0.1 * (torch.log(torch.tensor(0.1)) - log_s)).sum()
        g, = torch.autograd.grad(j, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + ALPHA * g.sign(), x - EPS), x + EPS).clamp(0, 1)
    s_adv = student(x_adv)
    w = F.softmax(t / 100.0, 1)
    loss = 5.0 / 6.0 * fx.ikl(s_clean, t, w) + 1.0 / 6.0 * fx.ikl(s_adv, t, w)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def main():
    threads = set_threads()
    torch.manual_seed(0)
    if SHAPE == "cifar":
        teacher, student = Full(WideResNet(34, 10)).eval(), Full(ResNet([2, 2, 2, 2], 64))
    else:
        teacher, student = fx.SmallCnn(16).eval(), fx.SmallCnn(8)
    for p in teacher.parameters():
        p.requires_grad_(False)
    frozen_student = copy.deepcopy(student).eval()
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(B, CH, SIDE, SIDE)
    y = torch.arange(B) % 10
    print(setup_note(threads))
    group = f"ferd_{SHAPE}_b{B}"
    names = {"fmnist": ("28x28", "small-cnn-8"), "cifar": ("32x32x3", "ResNet-18")}[SHAPE]
    reset_peak_memory()
    synthesis = median_ms(lambda: synthesis_round(teacher, frozen_student), 5, warmup=1) / ROUND
    ours = criterion_ms(group, "synthesis_round_5")
    first = f"FERD synthesis iteration (B{B}, {names[0]}, {INNER} bottleneck steps)"
    print(row(first, synthesis, ours and ours / ROUND))
    notes = [peak_memory_note(first)]
    reset_peak_memory()
    step = median_ms(lambda: student_step(teacher, student, opt, x, y), 10)
    second = f"FERD student step (B{B}, {names[1]}, UTAE K=10)"
    print(row(second, step, criterion_ms(group, "student_step")))
    notes.append(peak_memory_note(second))
    for note in filter(None, notes):
        print(note)


if __name__ == "__main__":
    main()
