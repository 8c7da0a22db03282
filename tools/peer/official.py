"""The official FERD code (mayaobuduyao/FERD), imported from the snapshot folder named by
FERD_OFFICIAL_DIR, with the patches it needs to run here, each named P1..P8 where it is made
(tools/peer/README.md lists them). Shared by the peers in this folder; nothing of the official
repository is copied here.
"""
import inspect
import os
import pathlib
import sys
import tempfile
from types import SimpleNamespace

import torch
import torch.nn as nn
import torch.nn.functional as F


def snapshot():
    """The snapshot folder, or exit with how to get one."""
    folder = os.environ.get("FERD_OFFICIAL_DIR")
    if not folder or not (pathlib.Path(folder) / "IBD_module_cmi.py").is_file():
        sys.exit("set FERD_OFFICIAL_DIR to a snapshot of mayaobuduyao/FERD (tools/peer/README.md)")
    return pathlib.Path(folder)


def load(args):
    """Imports the official modules; `args` become test.py's command line (it parses them at
    import and seeds torch with --seed)."""
    folder = snapshot()
    sys.path.insert(0, str(folder))
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *a, **k: self  # P1: `.cuda()` in models/IFP.py, on CPU
    runs = tempfile.mkdtemp(prefix="ferd-official-")
    sys.argv = ["test.py", "--data", "CIFAR10", "--result_dir", runs, "--experiment_name", "peer"] + args
    import test as official_test
    import IBD_module_cmi as ibd
    import models as official_models
    import query_sample
    from kornia import augmentation
    from models.IFP import InformativeFeaturePackage

    return SimpleNamespace(folder=folder, test=official_test, ibd=ibd, models=official_models,
                           query_sample=query_sample, augmentation=augmentation,
                           Ifp=InformativeFeaturePackage)


class SmallCnn(nn.Module):
    """ferd's small CNN (ferd_models::small_cnn), split after the second pooling. P2: the
    official teacher's `pop` / `intermediate_propagate` interface, on a model ferd also has."""

    def __init__(self, w, classes=10):
        super().__init__()
        convs = []
        for cin, cout in [(1, w), (w, w), (w, 2 * w), (2 * w, 2 * w)]:
            convs.append(nn.ModuleDict({"conv": nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                        "bn": nn.BatchNorm2d(cout)}))
        self.convs = nn.ModuleList(convs)
        self.fc1 = nn.Linear(2 * w * 7 * 7, 8 * w)
        self.fc2 = nn.Linear(8 * w, classes)

    def features(self, x):
        if x.shape[1:] == (3, 32, 32):
            # P3: Train_Gen_Module's constructor probes the teacher with one 3x32x32 image to size
            # an unused memory bank (CMI); answered on a 28x28 one-channel crop of it.
            x = x[:, :1, 2:30, 2:30]
        for i, layer in enumerate(self.convs):
            x = F.relu(layer["bn"](layer["conv"](x)))
            if i % 2 == 1:
                x = F.max_pool2d(x, 2)
        return x

    def head(self, z):
        return self.fc2(F.relu(self.fc1(z.flatten(1))))

    def forward(self, x, pop=None, intermediate_propagate=None):
        if intermediate_propagate is not None:
            return self.head(x)
        z = self.features(x)
        return z if pop is not None else self.head(z)


def ferd_names(state):
    """A SmallCnn state dict as ferd's PyTorch definition names it (`convs.0.conv.weight`)."""
    return {k: v.detach().clone().contiguous() for k, v in state.items()
            if not k.endswith("num_batches_tracked")}


def rng_copy():
    """A generator in the global CPU generator's current state: drawing from it gives the
    numbers the official code's next global draw will give."""
    g = torch.Generator()
    g.set_state(torch.get_rng_state())
    return g


def augmentations(official, side, padding):
    """P4: the official augmentations are built for 32x32 CIFAR; the same ones at `side`:
    the generator round's two views (`IBD_module_cmi.py:137-148`) and the student's
    (`test.py:106-109`)."""
    aug = official.augmentation
    views = official.ibd.MultiTransform([
        nn.Sequential(aug.RandomCrop(size=[side, side], padding=padding), aug.RandomHorizontalFlip()),
        nn.Sequential(aug.RandomResizedCrop(size=[side, side], scale=[0.25, 1.0]),
                      aug.RandomHorizontalFlip()),
    ])
    student = aug.container.ImageSequential(aug.RandomCrop(size=[side, side], padding=padding),
                                            aug.RandomHorizontalFlip())
    return views, student


def fragility_pgd(official, eps, alpha, steps, record_start=None):
    """The official fragility PGD (`query_sample.pgd_attack`), callable where
    `IBD_module_cmi.py:238` calls it. P5: the released call passes (teacher logits, labels) where
    (labels, eps) belong and cannot run; called with the true labels and the run's eps, step and
    steps. P6: `pgd_attack` leaves the teacher in training mode; ferd keeps it frozen, so it is
    put back in inference mode for the margins."""

    def call(model, images, _logits, labels):
        if record_start is not None:
            start = torch.empty_like(images).uniform_(-eps, eps, generator=rng_copy())
            record_start(start, images)
        x_adv = official.query_sample.pgd_attack(model, images, labels, eps=eps, alpha=alpha, iters=steps)
        model.eval()
        return x_adv

    return call


def utae_at(official, eps, alpha):
    """P7: the official UTAE (`query_sample.generate_adv`) has eps 8/255 and step 2/255 written
    into its body; the same function with the run's eps and step in their place."""
    source = inspect.getsource(official.query_sample.generate_adv)
    if source.count("2.0/255") != 1 or source.count("8.0/255") != 2:
        sys.exit("query_sample.generate_adv is not the function this peer knows")
    source = source.replace("2.0/255", repr(alpha)).replace("8.0/255", repr(eps))
    scope = dict(vars(official.query_sample))
    exec(compile(source, "query_sample.py", "exec"), scope)
    return scope["generate_adv"]


def reweighting(official):
    """The reweighting lines of test.py's `main` (min-max of the class fragility), read from the
    snapshot and compiled as they are: run with `labels_loss`, `class_max`, `class_min` in scope,
    they set `labels_prob`."""
    source = (official.folder / "test.py").read_text()
    start = source.index("        min_val = labels_loss.min()")
    end = source.index("        logger.info(\"Epoch %d\", epoch)")
    return compile("\n".join(line[8:] for line in source[start:end].splitlines()), "test.py", "exec")


class Terms:
    """An official module whose named loss functions record what they return (by the name given)
    in `table`; everything else passes through."""

    def __init__(self, module, names, table, prefix):
        self.module, self.names, self.table, self.prefix = module, names, table, prefix

    def __getattr__(self, name):
        fn = getattr(self.module, name)
        if name not in self.names:
            return fn

        def wrapped(*a, **k):
            value = fn(*a, **k)
            self.table.setdefault(self.prefix() + self.names[name], []).append(value.item())
            return value
        return wrapped


def record_bn(helper, table, key):
    """Records `L_bn` (the sum of the teacher's DeepInversion hooks) at every synthesis step of
    `helper` (a `Train_Gen_Module`) under `key()` in `table`: read when the unused head's
    optimizer steps, right after the generator's Adam step (`IBD_module_cmi.py:224-225`)."""
    head_step = helper.optimizer_head.step

    def step(*a, **k):
        table.setdefault(key(), []).append(sum(h.r_feature for h in helper.t_hooks).item())
        return head_step(*a, **k)

    helper.optimizer_head.step = step
