"""PyTorch timing of what benches/ferd.rs measures, at the `fmnist-quick` sizes: one FERD synthesis
iteration (generator forward, crop augmentation, teacher with BatchNorm hooks, student, the
information-bottleneck inner loop of 20 Adam steps, the four losses, backward, two Adam steps)
and one student step (teacher forward, student forward in train mode, 10 UTAE steps against the
frozen student, student forward on the UTAEs, the IKL loss, backward, SGD step). Batch 64,
teacher small-cnn-16, student small-cnn-8, generator nz 100 / ngf 16, 28x28x1.

Prints one Markdown row per workload: PyTorch's median, ferd's criterion median when
`cargo bench --bench ferd` has run, and the ratio. `tools/bench/compare.sh` runs both sides with
the same thread count (THREADS here, RAYON_NUM_THREADS for ferd):

    THREADS=2 python3 tools/bench/torch_ferd.py   (needs torch; uses tools/golden/ferd_fixtures.py)
"""
import copy
import pathlib
import sys

import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools/golden"))
sys.path.insert(0, str(ROOT / "tools/bench"))
import ferd_fixtures as fx  # noqa: E402
from table import DEVICE, criterion_ms, median_ms, row, set_threads  # noqa: E402

B, INNER, K, ROUND = 64, 20, 10, 5


def crop(x, pad=2):
    """Random crop with zero padding, per sample (as ferd's augmentation)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device="cpu")  # offsets stay on the host
    dx = torch.randint(0, 2 * pad + 1, (n,), device="cpu")
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def synthesis_round(teacher, student):
    generator = fx.Generator(100, 16, 28, 1).train()
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
        x_adv = torch.min(torch.max(x_adv.detach() + 0.01 * g.sign(), x - 0.1), x + 0.1).clamp(0, 1)
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
    teacher, student = fx.SmallCnn(16).eval(), fx.SmallCnn(8)
    for p in teacher.parameters():
        p.requires_grad_(False)
    frozen_student = copy.deepcopy(student).eval()
    opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(B, 1, 28, 28)
    y = torch.arange(B) % 10
    print(f"<!-- torch {torch.__version__}, {threads} threads, {DEVICE}, batch {B} -->")
    synthesis = median_ms(lambda: synthesis_round(teacher, frozen_student), 5, warmup=1) / ROUND
    ours = criterion_ms("ferd", "synthesis_round_5")
    print(row("FERD synthesis iteration (B64, 28x28)", synthesis, ours and ours / ROUND))
    step = median_ms(lambda: student_step(teacher, student, opt, x, y), 10)
    print(row("FERD student step (B64, small-cnn-8, UTAE K=10)", step, criterion_ms("ferd", "student_step")))


if __name__ == "__main__":
    main()
