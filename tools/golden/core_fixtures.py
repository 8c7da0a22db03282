"""Golden fixtures for ferd-core: losses (values and input gradients), class reweighting and
class-wise metrics, computed with PyTorch in float64 on inputs that are exactly representable in
float32. The Rust tests (crates/ferd-core/tests/golden.rs) compare against them without Python.

Run:  python3 tools/golden/core_fixtures.py   (needs torch; writes crates/ferd-core/tests/fixtures/)

Each reference is written from the formula in shared/spec (ferd-method.md section 4,
attacks.md) in plain PyTorch, independently of the Rust code.
"""
import json
import math
import pathlib

import torch
import torch.nn.functional as F

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/ferd-core/tests/fixtures"
torch.manual_seed(20260)


def f32(t):
    """Round to float32 and back, so Rust receives exactly the same inputs."""
    return t.float().double()


def flat(t):
    return [float(v) for v in t.detach().reshape(-1)]


def grad_of(fn, *inputs):
    """Value of fn and its gradient with respect to every input."""
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    value = fn(*leaves)
    grads = torch.autograd.grad(value.sum(), leaves, allow_unused=True)
    return value, [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]


def max_other(z, y):
    mask = F.one_hot(y, z.shape[1]).bool()
    return z.masked_fill(mask, -math.inf).max(dim=1).values


def pick(z, y):
    return z.gather(1, y[:, None])[:, 0]


def ikl(o, t, w_full, detach_weights):
    """IKL(o, t; W) with an explicit [B, C, C] weight tensor (ferd-method.md, section 4)."""
    if detach_weights:
        w_full = w_full.detach()
    d_t = t[:, :, None] - t[:, None, :]
    d_o = o[:, :, None] - o[:, None, :]
    pairwise = 0.25 * ((d_t - d_o) ** 2 * w_full).sum() / w_full.sum()
    soft_ce = -(F.softmax(t, dim=1).detach() * F.log_softmax(o, dim=1)).sum(1).mean()
    return pairwise + soft_ce


def outer(w):
    return w[:, :, None] * w[:, None, :]


def losses():
    b, c = 8, 10
    student = f32(torch.randn(b, c) * 3)
    teacher = f32(torch.randn(b, c) * 3)
    labels = torch.randint(0, c, (b,))
    targets = (labels + torch.randint(1, c, (b,))) % c
    soft = f32(F.softmax(torch.randn(b, c), dim=1))
    full_w = f32(torch.rand(b, c, c))
    # A row whose true class is the top logit and one where it is not, for DLR's two branches.
    student[0, labels[0]] = student[0].max() + 1.0

    cases = {}

    def case(name, fn, *inputs):
        value, grads = grad_of(fn, *inputs)
        cases[name] = {"value": flat(value), "grads": [flat(g) for g in grads]}

    case("cross_entropy_per_sample", lambda z: F.cross_entropy(z, labels, reduction="none"), student)
    case("cross_entropy", lambda z: F.cross_entropy(z, labels).reshape(1), student)
    case("soft_cross_entropy", lambda z: -(soft * F.log_softmax(z, 1)).sum(1).mean().reshape(1), student)
    for reduction, torch_name in [("sum", "sum"), ("batch_mean", "batchmean"), ("element_mean", "mean")]:
        case(
            f"kl_{reduction}",
            lambda p, q, r=torch_name: F.kl_div(F.log_softmax(q, 1), F.softmax(p, 1), reduction=r).reshape(1),
            teacher, student,
        )
    case("kl_per_sample",
         lambda p, q: F.kl_div(F.log_softmax(q, 1), F.softmax(p, 1), reduction="none").sum(1),
         teacher, student)
    uniform = torch.full((b, c), 1.0 / c, dtype=torch.float64)
    case("kl_to_uniform_per_sample",
         lambda z: F.kl_div(F.log_softmax(z, 1), uniform, reduction="none").sum(1), student)
    case("kl_to_uniform", lambda z: F.kl_div(F.log_softmax(z, 1), uniform, reduction="batchmean").reshape(1),
         student)
    case("ikl_teacher_softmax",
         lambda o, t: ikl(o, t, outer(F.softmax(t / 100.0, 1)), detach_weights=False).reshape(1),
         student, teacher)
    case("ikl_class_prior",
         lambda o, t: ikl(o, t, outer(F.one_hot(labels, c).double()), detach_weights=True).reshape(1),
         student, teacher)
    case("ikl_outer_soft",
         lambda o, t: ikl(o, t, outer(soft), detach_weights=True).reshape(1), student, teacher)
    case("ikl_full", lambda o, t: ikl(o, t, full_w, detach_weights=True).reshape(1), student, teacher)
    for kappa in [50.0, 0.5]:
        case(f"cw_margin_kappa_{kappa}",
             lambda z, k=kappa: torch.clamp(max_other(z, labels) - pick(z, labels), min=-k), student)
    case("margin", lambda z: pick(z, labels) - max_other(z, labels), student)

    def dlr(z):
        s = z.sort(dim=1, descending=True).values
        return -(pick(z, labels) - max_other(z, labels)) / (s[:, 0] - s[:, 2] + 1e-12)

    def dlr_targeted(z):
        s = z.sort(dim=1, descending=True).values
        return -(pick(z, labels) - pick(z, targets)) / (s[:, 0] - (s[:, 2] + s[:, 3]) / 2 + 1e-12)

    case("dlr", dlr, student)
    case("dlr_targeted", dlr_targeted, student)

    return {
        "batch": b,
        "classes": c,
        "student": flat(student),
        "teacher": flat(teacher),
        "labels": [int(v) for v in labels],
        "targets": [int(v) for v in targets],
        "soft_targets": flat(soft),
        "full_weights": flat(full_w),
        "cases": cases,
    }


def reweighting():
    fragility = [float(v) for v in torch.randn(10).double() * 2]
    d = torch.tensor(fragility, dtype=torch.float64)
    out = {"fragility": fragility}
    for tau in [1.0, 0.5, 3.0]:
        out[f"softmax_{tau}"] = flat(F.softmax(d / tau, dim=0))
    q = 0.05 + (0.2 - 0.05) * (d - d.min()) / (d.max() - d.min() + 1e-8)
    out["minmax"] = flat(q / q.sum())
    return out


def metrics_case(n, classes, empty):
    labels = torch.randint(0, classes, (n,))
    for e in empty:
        labels[labels == e] = (e + 1) % classes
    # Predictions right about 60% of the time, with class-dependent skill.
    skill = torch.rand(classes)
    right = torch.rand(n) < skill[labels]
    preds = torch.where(right, labels, torch.randint(0, classes, (n,)))
    confusion = torch.bincount(labels * classes + preds, minlength=classes * classes).reshape(classes, classes)
    counts = confusion.sum(1)
    present = counts > 0
    per_class = confusion.diag().double() / counts.clamp(min=1).double()
    accs = per_class[present]
    k = max(1, math.ceil(0.1 * len(accs) - 1e-9))
    return {
        "classes": classes,
        "labels": [int(v) for v in labels],
        "predictions": [int(v) for v in preds],
        "overall": float((preds == labels).double().mean()),
        "per_class": [float(a) if p else None for a, p in zip(per_class, present)],
        "mean_class": float(accs.mean()),
        "worst_class": [int(torch.nonzero(present)[accs.argmin()]), float(accs.min())],
        "worst_10_percent": float(accs.sort().values[:k].mean()),
        "nsd": float(torch.std(accs) / accs.mean()),
        "confusion": confusion.tolist(),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    fixtures = {
        "losses.json": losses(),
        "reweighting.json": reweighting(),
        "metrics.json": {
            "ten_classes_one_empty": metrics_case(500, 10, empty=[7]),
            "hundred_classes": metrics_case(3000, 100, empty=[]),
        },
    }
    for name, data in fixtures.items():
        data["generator"] = f"tools/golden/core_fixtures.py with torch {torch.__version__}"
        (OUT / name).write_text(json.dumps(data, indent=1) + "\n")
        print("wrote", OUT / name)


if __name__ == "__main__":
    main()
