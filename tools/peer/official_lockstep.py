"""Runs the official FERD code (mayaobuduyao/FERD) for two epochs on tiny models and records
every random draw it makes and every quantity it computes, so that ferd can replay the same
draws and be compared with it step by step (crates/ferd-distill/tests/lockstep.rs).

Nothing of the official repository is copied here: the script imports it from a snapshot folder
named by FERD_OFFICIAL_DIR (see tools/peer/README.md) and drives its own functions:
`Train_Gen_Module.train` (generator, DeepInversion hooks, `InformativeFeaturePackage`, `dkl_loss`,
`KT_loss_student`, the fragility PGD and margins), `save_mem` and `SyntheticDataset` (the bank),
`train_model_ds_at` (the student epoch with `generate_adv` and `dkl_loss`), and the reweighting
lines of `test.py`'s `main`, which are read from the snapshot's source and executed as they are.
The epoch loop of `main` (generator round, bank, student epoch, scheduler step, reweighting) is
driven here because `main` also loads CIFAR and a checkpoint.

What the official code cannot run here is patched, each patch named P1..P6 where it is made:
P1 device (CPU), P2 models (tiny teacher and student), P3 the CMI probe at construction,
P4 image size (28x28, one channel), P5 the fragility PGD's argument order, P6 the teacher's mode
after that PGD. Everything else records and changes nothing.

The draws are converted into the form ferd's `Draws` consumes (`ferd_distill::draws`):
uniforms for labels (inverse CDF), crops and flips, bank order (argsort); normals for the
latent, the bottleneck and UTAE starts; uniforms in [0, 1) for PGD's start. The generator's
initial weights of each round are saved as PyTorch state dicts.

Run:  FERD_OFFICIAL_DIR=/path/to/snapshot python3 tools/peer/official_lockstep.py [--threads N]
Writes crates/ferd-distill/tests/fixtures/lockstep/. With --check, writes nothing and prints how
far this run (e.g. with another --threads, so other summation orders) is from the fixture: the
float32 noise floor of the comparison.
"""
import argparse
import json
import os
import pathlib
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "golden"))
from model_fixtures import randomize_bn  # noqa: E402  (the golden fixtures' BN statistics)
import official as peer  # noqa: E402  (tools/peer/official.py)
from official import SmallCnn, Terms, ferd_names, rng_copy  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/ferd-distill/tests/fixtures/lockstep"
B, NZ, NGF, SIDE, CLASSES = 8, 16, 8, 28, 10
EPOCHS, N_G, N_S, WARMUP = 2, 3, 3, 0
LR_S, LR_G, LR_Z = 0.1, 2e-3, 0.015
TEACHER_WIDTH, STUDENT_WIDTH, PADDING = 4, 2, 4
FEATURE_GAIN, CONTRAST = 3.3, 20.0


class Recorder:
    def __init__(self):
        self.tape = {}      # ferd's draws, by site
        self.values = {}    # what the official code computed
        self.epoch = 0
        self.synthesis_step = -1
        self.student_step = -1

    def put(self, table, key, value):
        assert key not in table, key
        table[key] = torch.as_tensor(value).detach().clone().float().reshape(-1)


def crop_flip_uniforms(crop, flip, x_in, x_out):
    """kornia's crop offsets and flips as ferd's per-sample uniforms [dy, dx, flip], checked by
    redoing the crop and flip from them."""
    src = crop._params["src"]
    flips = flip._params["batch_prob"]
    n = 2 * PADDING + 1
    u, redone = [], []
    padded = F.pad(x_in, (PADDING,) * 4)
    for b in range(x_in.shape[0]):
        dx, dy = int(src[b, 0, 0]), int(src[b, 0, 1])
        f = bool(flips[b] > 0.5)
        u += [(dy + 0.5) / n, (dx + 0.5) / n, 0.25 if f else 0.75]
        img = padded[b, :, dy:dy + SIDE, dx:dx + SIDE]
        redone.append(img.flip(-1) if f else img)
    assert torch.allclose(torch.stack(redone).detach(), x_out.detach(), atol=1e-6), "kornia's crop is not a plain crop"
    return u


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--check", action="store_true")
    cli = parser.parse_args()
    if cli.threads:
        torch.set_num_threads(cli.threads)
    official = peer.load(["--batch_size", str(B), "--epochs", str(EPOCHS), "--N_G", str(N_G),
                          "--N_S", str(N_S), "--warmup", str(WARMUP), "--lr", str(LR_S),
                          "--lr_G", str(LR_G), "--lr_z", str(LR_Z), "--gen_dim_z", str(NZ),
                          "--seed", "0"])
    official_test, ibd, Ifp = official.test, official.ibd, official.Ifp
    gen = torch.Generator().manual_seed(1234)
    teacher, student = SmallCnn(TEACHER_WIDTH), SmallCnn(STUDENT_WIDTH)
    generator = official.models.Generator(nz=NZ, ngf=NGF, img_size=SIDE, nc=1)
    randomize_bn(teacher, gen)
    randomize_bn(student, gen)
    with torch.no_grad():  # features with spread, so that the bottleneck's mask is mixed
        for layer in teacher.convs:
            layer["conv"].weight.mul_(FEATURE_GAIN)
    args = official_test.args
    rec = Recorder()

    helper = ibd.Train_Gen_Module(args, teacher, student, generator)
    helper.aug, student_aug = peer.augmentations(official, SIDE, PADDING)

    # --- recording wrappers (no change to what the official code computes) ---
    original_train = ibd.Train_Gen_Module.train

    def train(self, labels_prob):
        latent = torch.randn(args.batch_size, args.gen_dim_z, generator=rng_copy())
        rec.put(rec.tape, f"e{rec.epoch}.latent", latent)
        rec.synthesis_step = -1
        out = original_train(self, labels_prob)
        labels, cdf = out[1], torch.cumsum(labels_prob.double(), 0)
        lower = torch.cat([torch.zeros(1, dtype=torch.float64), cdf[:-1]])
        rec.put(rec.tape, f"e{rec.epoch}.labels", (lower[labels] + cdf[labels]) / 2)
        return out

    ibd.Train_Gen_Module.train = train

    original_reset = ibd.reset_model

    def reset_model(model, reset=1):
        original_reset(model, reset)
        if not cli.check:
            save_file(ferd_names(model.state_dict()), str(OUT / f"generator_e{rec.epoch}.safetensors"))
        rec.values[f"e{rec.epoch}.generator_init"] = torch.cat(
            [p.detach().reshape(-1) for p in model.parameters()]).float()

    ibd.reset_model = reset_model

    views_of = helper.aug
    global_view = views_of.transform[0]

    def augment(x):
        views = views_of(x)
        rec.synthesis_step += 1
        s = rec.synthesis_step
        rec.put(rec.tape, f"e{rec.epoch}.g{s}.augment",
                crop_flip_uniforms(global_view[0], global_view[1], x, views[0]))
        rec.put(rec.values, f"e{rec.epoch}.g{s}.images", x)
        return views

    helper.aug = augment

    original_sample_latent = Ifp.sample_latent
    noise_log = []

    def sample_latent(latent_r, lambda_r):
        noise_log.append(torch.normal(0, 1, size=lambda_r.size(), generator=rng_copy()))
        return original_sample_latent(latent_r, lambda_r)

    Ifp.sample_latent = staticmethod(sample_latent)
    original_mask = Ifp.sample_robust_and_non_robust_latent

    def robust_mask(self, latent_r, lambda_r):
        index = original_mask(self, latent_r, lambda_r)
        s = rec.synthesis_step
        rec.put(rec.tape, f"e{rec.epoch}.g{s}.bottleneck", torch.stack(noise_log))
        noise_log.clear()
        rec.put(rec.values, f"e{rec.epoch}.g{s}.mask", index)
        return index

    Ifp.sample_robust_and_non_robust_latent = robust_mask

    epoch_prefix = lambda: f"e{rec.epoch}."  # noqa: E731
    ibd.L = Terms(ibd.L, {"dkl_loss": "g.ikl", "KT_loss_student": "g.uni"}, rec.values, epoch_prefix)
    ibd.F = Terms(ibd.F, {"cross_entropy": "g.oh"}, rec.values, epoch_prefix)
    peer.record_bn(helper, rec.values, lambda: f"e{rec.epoch}.g.bn")

    def fragility_start(start, images):
        eps = 8 / 255
        rec.put(rec.tape, f"e{rec.epoch}.fragility", ((start + eps) / (2 * eps)).clamp(0, 1))
        rec.put(rec.values, f"e{rec.epoch}.fragility_images", images)

    # The official eps, step and steps (query_sample.py:92).
    ibd.pgd_attack = peer.fragility_pgd(official, 8 / 255, 2 / 255, 20, fragility_start)

    original_getitem = official_test.SyntheticDataset.__getitem__
    bank_log = []

    def getitem(self, index):
        bank_log.append(int(index))
        return original_getitem(self, index)

    official_test.SyntheticDataset.__getitem__ = getitem

    def std_aug(x):
        y = student_aug(x)
        rec.student_step += 1
        t = rec.student_step
        rec.put(rec.tape, f"e{rec.epoch}.s{t}.augment", crop_flip_uniforms(student_aug[0], student_aug[1], x, y))
        return y

    official_test.std_aug = std_aug
    original_generate_adv = official_test.generate_adv

    def generate_adv(model, x, logits, target):
        rec.put(rec.tape, f"e{rec.epoch}.s{rec.student_step}.utae", torch.randn(x.shape, generator=rng_copy()))
        x_adv = original_generate_adv(model, x, logits, target)
        return x_adv

    official_test.generate_adv = generate_adv
    official_test.L = Terms(official_test.L, {"dkl_loss": "s.ikl"}, rec.values, epoch_prefix)

    # --- the epoch loop of test.py's main ---
    reweighting = peer.reweighting(official)

    optimizer_s = torch.optim.SGD(student.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                  momentum=args.momentum)
    scheduler_s = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer_s, T_max=args.epochs)
    if not cli.check:
        save_file(ferd_names(teacher.state_dict()), str(OUT / "teacher.safetensors"))
        save_file(ferd_names(student.state_dict()), str(OUT / "student.safetensors"))
    labels_prob = torch.ones(CLASSES) / CLASSES
    class_max, class_min = 0.2, 0.05
    for epoch in range(1, EPOCHS + 1):
        rec.epoch, rec.student_step = epoch - 1, -1
        e = rec.epoch
        rec.put(rec.values, f"e{e}.distribution", labels_prob)
        rec.put(rec.values, f"e{e}.lr", optimizer_s.param_groups[0]["lr"])
        best_mem, labels, _, _, _, _, _, labels_loss = helper.train(labels_prob)
        rec.put(rec.values, f"e{e}.labels", labels)
        rec.put(rec.values, f"e{e}.kept", best_mem)
        rec.put(rec.values, f"e{e}.fragility", labels_loss)
        official_test.save_mem(best_mem.data, labels, official_test.save_mem_dir, epoch, "cln")
        bank = np.load(os.path.join(official_test.save_mem_dir, "synthetic_images.npy"))
        rec.put(rec.values, f"e{e}.bank", torch.from_numpy(bank))
        assert bank.dtype == np.float32, "the official bank is float32 .npy"
        if epoch > args.warmup:
            bank_log.clear()
            official_test.train_model_ds_at(args, generator, student, teacher, optimizer_s, epoch)
            n = len(bank)
            passes = [bank_log[i:i + n] for i in range(0, len(bank_log), n)]
            u = []
            for order in passes:
                pass_u = [1.0] * n
                rest = [i for i in range(n) if i not in order]
                for k, index in enumerate(order + rest):
                    pass_u[index] = (k + 0.5) / n
                u += pass_u
            rec.put(rec.tape, f"e{e}.bank", u)
        scheduler_s.step()
        scope = {"labels_loss": labels_loss, "class_max": class_max, "class_min": class_min}
        exec(reweighting, scope)
        labels_prob = scope["labels_prob"]

    if not cli.check:
        save_file(ferd_names(student.state_dict()), str(OUT / "student_final.safetensors"))
    rec.put(rec.values, "final_student", torch.cat([p.detach().reshape(-1) for p in student.parameters()]))
    values = {k: (torch.tensor(v) if isinstance(v, list) else v).float().reshape(-1)
              for k, v in rec.values.items()}
    if cli.check:
        reference = dict(load_values())
        for k in sorted(values):
            a, b = values[k].double(), reference[k].double()
            scale = b.abs().max().clamp_min(1e-12)
            print(f"{k:28} against the fixture: {((a - b).abs().max() / scale).item():.2e}")
        return
    save_file({f"tape.{k}": v.float().contiguous() for k, v in rec.tape.items()}
              | {f"value.{k}": v.contiguous() for k, v in values.items()},
              str(OUT / "lockstep.safetensors"))
    meta = {"batch": B, "latent": NZ, "ngf": NGF, "side": SIDE, "classes": CLASSES, "epochs": EPOCHS,
            "n_g": N_G, "n_s": N_S, "warmup": WARMUP, "lr_student": LR_S, "lr_generator": LR_G,
            "lr_latent": LR_Z, "teacher_width": TEACHER_WIDTH, "student_width": STUDENT_WIDTH,
            "padding": PADDING, "torch": torch.__version__}
    (OUT / "lockstep.json").write_text(json.dumps(meta, indent=1) + "\n")
    print("wrote", OUT, "with", len(rec.tape), "draw sites and", len(values), "records")


def load_values():
    from safetensors.torch import load_file
    for k, v in load_file(str(OUT / "lockstep.safetensors")).items():
        if k.startswith("value."):
            yield k[len("value."):], v


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    main()
