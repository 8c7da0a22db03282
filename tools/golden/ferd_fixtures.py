"""Golden fixtures for FERD's distillation (ferd-distill), written from the method spec
(shared/spec/ferd-method.md) in plain PyTorch, independently of ferd's code.

Small fixed networks: a teacher (ferd's small-cnn-4, BatchNorm statistics randomized), a student
(small-cnn-2, train mode where the spec says so) and a generator (nz 16, ngf 8, 28x28, one
channel, train mode). Fixed latents, labels, images and noise; the noise is saved so that ferd
replays exactly the same draws. Recorded:

- one synthesis step without augmentation: the four loss terms L_bn, L_adv, L_oh, L_uni and L_G
  (weights 5, 1, 1, 5), the information-bottleneck noise scale, the robust mask and the
  non-robust logits after the inner loop, and the gradient of L_G with respect to the latent
  and to the generator's last convolution weight;
- one UTAE step (gamma 0.3, alpha 0.01, eps 0.1) from x + 0.001 n: the objective per sample,
  its input gradient and the stepped images;
- the student loss 5/6 IKL(S(x), t) + 1/6 IKL(S(x_adv), t) with the paper's weights
  (softmax(t / 100)) and with the official code's one-hot weights, and the gradient of each
  with respect to the student's fc2 weight.

Everything runs in float32, as ferd does.

Run:  python3 tools/golden/ferd_fixtures.py   (needs torch and safetensors)
Writes crates/ferd-distill/tests/fixtures/{ferd_teacher,ferd_student,ferd_generator}.safetensors
and ferd_golden.json.
"""
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from model_fixtures import Generator, randomize_bn

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/ferd-distill/tests/fixtures"
B, NZ, NGF, SIDE, CLASSES = 6, 16, 8, 28, 10
INNER_STEPS, INNER_LR, BETA, D = 8, 0.1, 0.3, 1e-10
W_BN, W_ADV, W_OH, W_UNI, ADV_T = 5.0, 1.0, 1.0, 5.0, 100.0
EPS, ALPHA, GAMMA, START_STD = 0.1, 0.01, 0.3, 0.001
CONTRAST, FEATURE_GAIN = 20.0, 3.3


class ConvBn(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SmallCnn(nn.Module):
    """ferd's small CNN; split point after the second pooling."""

    def __init__(self, w):
        super().__init__()
        self.convs = nn.ModuleList([ConvBn(1, w), ConvBn(w, w), ConvBn(w, 2 * w), ConvBn(2 * w, 2 * w)])
        self.fc1 = nn.Linear(2 * w * 7 * 7, 8 * w)
        self.fc2 = nn.Linear(8 * w, CLASSES)

    def features(self, x):
        for i, layer in enumerate(self.convs):
            x = layer(x)
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        return x

    def head(self, z):
        return self.fc2(F.relu(self.fc1(z.flatten(1))))

    def forward(self, x):
        return self.head(self.features(x))


def save(model, name):
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, OUT / f"{name}.safetensors")


def bn_loss(teacher, x):
    """DeepInversion: sum over BN layers of ||mu - running_mean||_2 + ||var - running_var||_2."""
    terms, hooks = [], []
    for m in teacher.modules():
        if isinstance(m, nn.BatchNorm2d):
            def hook(mod, inputs, _out):
                h = inputs[0]
                mean = h.mean(dim=[0, 2, 3])
                var = h.var(dim=[0, 2, 3], unbiased=False)
                terms.append(torch.norm(mean - mod.running_mean, 2) + torch.norm(var - mod.running_var, 2))
            hooks.append(m.register_forward_hook(hook))
    z = teacher.features(x)
    for h in hooks:
        h.remove()
    return sum(terms), z


def ikl(o, t, w):
    """IKL(o, t; W_b = w_b w_b^T), spec section 4; softmax(t) detached in the second term."""
    d = t - o
    pair = (d[:, :, None] - d[:, None, :]) ** 2
    weights = w[:, :, None] * w[:, None, :]
    first = 0.25 * (weights * pair).sum() / weights.sum()
    second = -(F.softmax(t, 1).detach() * F.log_softmax(o, 1)).sum(1).mean()
    return first + second


def kl_uniform(logits):
    c = logits.shape[1]
    return ((1.0 / c) * (torch.log(torch.tensor(1.0 / c)) - F.log_softmax(logits, 1))).sum(1).mean()


def non_robust(teacher, z, y, noise):
    """The information-bottleneck split of spec section 2 / section 7."""
    v = z.detach().flatten(2).var(2, unbiased=True)[:, :, None, None]
    lam = torch.zeros(z.shape[0], z.shape[1], 1, 1, requires_grad=True)
    opt = torch.optim.Adam([lam], lr=INNER_LR)
    for k in range(INNER_STEPS):
        sigma = F.softplus(lam)
        zi = z.detach() + sigma * noise[k]
        s2 = sigma ** 2 + D
        loss = F.cross_entropy(teacher.head(zi), y) + BETA * (0.5 * (v / s2 + torch.log(s2 / (v + D)) - 1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    threshold = v.max()
    mask = (F.softplus(lam.detach()) ** 2 > threshold).float()
    margin = ((F.softplus(lam.detach()) ** 2 - threshold).abs() / threshold).min().item()
    return lam.detach(), mask, teacher.head(z * (1 - mask)), margin


def flat(t):
    return t.detach().reshape(-1).tolist()


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    teacher, student, generator = SmallCnn(4), SmallCnn(2), Generator(NZ, NGF, SIDE, 1)
    randomize_bn(teacher, gen)
    randomize_bn(student, gen)
    # Images with structure and features with spread, so that the bottleneck's mask is mixed
    # (with near-constant images every channel tolerates more noise than any channel varies).
    with torch.no_grad():
        generator.conv_blocks[9].weight.mul_(CONTRAST)
        for layer in teacher.convs:
            layer.conv.weight.mul_(FEATURE_GAIN)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    save(teacher, "ferd_teacher")
    save(student, "ferd_student")
    save(generator, "ferd_generator")

    # --- one synthesis step (no augmentation) ---
    z = torch.randn(B, NZ, generator=gen).requires_grad_(True)
    y = torch.tensor([0, 2, 2, 5, 7, 9])
    c_l = 2 * 4
    noise = torch.randn(INNER_STEPS, B, c_l, 1, 1, generator=gen)
    generator.train()
    student.eval()
    x = generator(z)
    l_bn, feats = bn_loss(teacher, x)
    t = teacher.head(feats)
    s = student(x)
    l_oh = F.cross_entropy(t, y)
    l_adv = -ikl(s, t, F.softmax(t / ADV_T, 1))
    lam, mask, t_nr, margin = non_robust(teacher, feats, y, noise)
    l_uni = kl_uniform(t_nr)
    total = W_BN * l_bn + W_ADV * l_adv + W_OH * l_oh + W_UNI * l_uni
    total.backward()
    v = feats.detach().flatten(2).var(2, unbiased=True)
    print(f"v max {v.max().item():.4f} median {v.median().item():.4f}; sigma^2 in "
          f"[{(F.softplus(lam) ** 2).min().item():.4f}, {(F.softplus(lam) ** 2).max().item():.4f}]")
    print(f"mask: {mask.mean().item():.3f} robust, closest to threshold {margin:.3f} (relative)")
    synthesis = {
        "z": flat(z), "labels": y.tolist(), "noise": flat(noise),
        "inner_steps": INNER_STEPS, "images": flat(x),
        "bn": l_bn.item(), "adv": l_adv.item(), "oh": l_oh.item(), "uni": l_uni.item(), "total": total.item(),
        "lambda": flat(lam), "mask": flat(mask), "non_robust_logits": flat(t_nr),
        "grad_z": flat(z.grad),
        "grad_conv3_weight": flat(generator.conv_blocks[9].weight.grad),
    }

    # --- one UTAE step ---
    xf = torch.rand(B, 1, SIDE, SIDE, generator=gen)
    n = torch.randn(B, 1, SIDE, SIDE, generator=gen)
    with torch.no_grad():
        tl = teacher(xf)
    start = (xf + START_STD * n).requires_grad_(True)
    s_logits = student(start)
    log_s = F.log_softmax(s_logits, 1)
    p_t = F.softmax(tl, 1)
    kl_t = (p_t * (F.log_softmax(tl, 1) - log_s)).sum(1)
    kl_u = ((1.0 / CLASSES) * (torch.log(torch.tensor(1.0 / CLASSES)) - log_s)).sum(1)
    j = kl_t - GAMMA * kl_u
    g, = torch.autograd.grad(j.sum(), start)
    stepped = start.detach() + ALPHA * g.sign()
    stepped = torch.min(torch.max(stepped, xf - EPS), xf + EPS).clamp(0, 1)
    utae = {
        "x": flat(xf), "start_noise": flat(n), "teacher_logits": flat(tl),
        "objective": flat(j), "grad": flat(g), "stepped": flat(stepped),
    }

    # --- the student loss, student in train mode ---
    student.train()
    x_adv = stepped.detach()
    losses = {}
    for name in ["teacher_softmax", "class_prior"]:
        student.zero_grad()
        s_clean, s_adv = student(xf), student(x_adv)
        w = F.softmax(tl / 100.0, 1) if name == "teacher_softmax" else F.one_hot(y, CLASSES).float()
        loss = 5.0 / 6.0 * ikl(s_clean, tl, w) + 1.0 / 6.0 * ikl(s_adv, tl, w)
        loss.backward()
        losses[name] = {"loss": loss.item(), "grad_fc2_weight": flat(student.fc2.weight.grad)}
    fixtures = {"synthesis": synthesis, "utae": utae, "student": losses, "labels": y.tolist(),
                "config": {"inner_steps": INNER_STEPS, "inner_lr": INNER_LR, "beta": BETA,
                           "eps": EPS, "alpha": ALPHA, "gamma": GAMMA}}
    (OUT / "ferd_golden.json").write_text(json.dumps(fixtures))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
