"""One seeded run of the official FERD code (mayaobuduyao/FERD) in the setting of a ferd
`config.json`, from a teacher exported to SafeTensors: the peer side of the seeded end-to-end
comparison (tools/peer/seeded_comparison.sh, docs/results.md).

The official functions run as in the lockstep peer (official_lockstep.py): `Train_Gen_Module.train`,
`save_mem` / `SyntheticDataset`, `train_model_ds_at` and the reweighting lines of `test.py`,
with the epoch loop of `main` driven here, and the patches of tools/peer/official.py, plus:
P7 the UTAE's radius and step (written into `generate_adv`) set to the config's, and P8 the
budget: the generator's `ngf` (`main` writes 64) and the bottleneck's inner steps
(`InformativeFeaturePackage`'s default 50) set to the config's. Everything the official code
fixes (IKL temperature 100, bottleneck rate 0.1 and beta 0.3, UTAE 10 steps from 0.001 noise,
5/6 and 1/6, min-max into [0.05, 0.2], one-hot student weights, no UTAE uniform term) must be
what the config says: the script refuses a config that differs.

Run:  FERD_OFFICIAL_DIR=... python3 tools/peer/official_seeded.py CONFIG.json TEACHER.safetensors SEED OUT_DIR
Writes OUT_DIR/metrics.jsonl (per epoch: teacher agreement, mean loss terms, label distribution
and counts, fragility) and OUT_DIR/student.safetensors (ferd's PyTorch layout).
"""
import json
import math
import pathlib
import sys
import time

import torch
from safetensors.torch import load_file, save_file

import official as peer
from official import SmallCnn, Terms, ferd_names


def fixed_by_the_official_code(c):
    """(what, value in the config, value the official code runs) for every setting the official
    code writes into its functions."""
    s, u, f = c["student"], c["student"]["utae"], c["fairness"]
    return [
        ("synthesis.adv_temperature", c["synthesis"]["adv_temperature"], 100.0),
        ("synthesis.betas", c["synthesis"]["betas"], [0.5, 0.999]),
        ("fairness.lr", f["lr"], 0.1),
        ("fairness.beta", f["beta"], 0.3),
        ("student.utae.steps", u["steps"], 10),
        ("student.utae.start_std", u["start_std"], 0.001),
        ("student.utae.gamma", u["gamma"], 0.0),
        ("student.clean_weight", s["clean_weight"], 5.0 / 6.0),
        ("student.adv_weight", s["adv_weight"], 1.0 / 6.0),
        ("student.ikl", s["ikl"], {"kind": "class_prior"}),
        ("reweighting.strategy", c["reweighting"]["strategy"],
         {"strategy": "min_max", "p_min": 0.05, "p_max": 0.2}),
        ("augment", c["augment"], {"padding": 4, "flip": True}),
        ("image.channels", c["image"]["channels"], 1),
    ]


def same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def main():
    config_path, teacher_path, seed, out = sys.argv[1:5]
    c = json.loads(pathlib.Path(config_path).read_text())
    wrong = [f"{k}: config {v}, official {o}" for k, v, o in fixed_by_the_official_code(c) if not same(v, o)]
    if wrong:
        sys.exit("the config differs from what the official code runs:\n  " + "\n  ".join(wrong))
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    syn, stu = c["synthesis"], c["student"]
    official = peer.load([
        "--batch_size", str(c["batch_size"]), "--epochs", str(c["epochs"]),
        "--N_G", str(syn["steps"]), "--N_S", str(stu["steps"]), "--warmup", str(c["warmup"]),
        "--lr", str(stu["lr"]), "--lr_G", str(syn["lr_generator"]), "--lr_z", str(syn["lr_latent"]),
        "--momentum", str(stu["momentum"]), "--weight_decay", str(stu["weight_decay"]),
        "--gen_dim_z", str(c["generator"]["latent"]), "--bn", str(syn["weights"]["bn"]),
        "--adv", str(syn["weights"]["adv"]), "--oh", str(syn["weights"]["oh"]),
        "--uni", str(syn["weights"]["uni"]), "--seed", str(seed)])
    test, ibd = official.test, official.ibd
    args = test.args
    side, classes = c["image"]["side"], c["num_classes"]
    eps, alpha = c["threat"]["eps"], c["threat"]["alpha"]
    teacher_state = load_file(teacher_path)
    teacher = SmallCnn(teacher_state["convs.0.conv.weight"].shape[0], classes)
    missing, unexpected = teacher.load_state_dict(teacher_state, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        sys.exit(f"the teacher is not a small CNN: missing {missing}, unexpected {unexpected}")
    teacher.eval()
    student = SmallCnn(8, classes)
    generator = official.models.Generator(nz=args.gen_dim_z, ngf=c["generator"]["ngf"], img_size=side, nc=1)

    helper = ibd.Train_Gen_Module(args, teacher, student, generator)
    helper.IFM_t.IFD_iter = c["fairness"]["inner_steps"]  # P8
    helper.aug, student_aug = peer.augmentations(official, side, c["augment"]["padding"])
    test.std_aug = student_aug
    test.generate_adv = peer.utae_at(official, eps, alpha)  # P7
    ibd.pgd_attack = peer.fragility_pgd(official, eps, alpha, c["reweighting"]["pgd_steps"])
    terms = {}
    ibd.L = Terms(ibd.L, {"dkl_loss": "ikl", "KT_loss_student": "uni"}, terms, lambda: "")
    ibd.F = Terms(ibd.F, {"cross_entropy": "oh"}, terms, lambda: "")
    peer.record_bn(helper, terms, lambda: "bn")
    reweighting = peer.reweighting(official)
    optimizer_s = torch.optim.SGD(student.parameters(), lr=args.lr, weight_decay=args.weight_decay,
                                  momentum=args.momentum)
    scheduler_s = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer_s, T_max=args.epochs)
    labels_prob = torch.ones(classes) / classes
    with open(out / "metrics.jsonl", "w") as metrics:
        for epoch in range(1, args.epochs + 1):
            started = time.time()
            terms.clear()
            distribution = labels_prob.tolist()
            best_mem, labels, _, _, _, _, _, labels_loss = helper.train(labels_prob)
            test.save_mem(best_mem.data, labels, test.save_mem_dir, epoch, "cln")
            with torch.no_grad():
                agree = (teacher(best_mem).argmax(1) == labels).float().mean().item()
            if epoch > args.warmup:
                test.train_model_ds_at(args, generator, student, teacher, optimizer_s, epoch)
            scheduler_s.step()
            scope = {"labels_loss": labels_loss, "class_max": 0.2, "class_min": 0.05}
            exec(reweighting, scope)
            labels_prob = scope["labels_prob"]
            mean = {k: sum(v) / len(v) for k, v in terms.items()}
            record = {
                "epoch": epoch - 1, "teacher_agreement": agree,
                "synthesis_mean": {"bn": mean["bn"], "adv": -mean["ikl"], "oh": mean["oh"],
                                   "uni": mean["uni"]},
                "class_distribution": distribution,
                "label_counts": torch.bincount(labels, minlength=classes).tolist(),
                "fragility": labels_loss.tolist(), "seconds": time.time() - started,
            }
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            print(f"epoch {epoch}/{args.epochs} ({record['seconds']:.0f} s): agreement {agree:.2f}",
                  file=sys.stderr)
    save_file(ferd_names(student.state_dict()), str(out / "student.safetensors"))


if __name__ == "__main__":
    main()
