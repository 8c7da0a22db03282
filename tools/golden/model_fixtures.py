"""Golden fixtures for ferd-models: each architecture built in PyTorch at reduced width, its
weights saved (as a .pt state dict, wrapped and prefixed in some cases, or as .safetensors), with
fixed inputs and the outputs ferd must reproduce: logits, split features and the input
statistics of every BatchNorm layer (forward hooks). Written to crates/ferd-models/tests/fixtures.

Run:  python3 tools/golden/model_fixtures.py   (needs torch and safetensors)

The PyTorch definitions below are written from the published architectures with the layer names
of the common PyTorch CIFAR repositories (the layout FERD/DFHL and RobustBench checkpoints use),
so that their state dicts are what ferd's users have.
"""
import json
import pathlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/ferd-models/tests/fixtures"


class Block(nn.Module):  # post-activation BasicBlock
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class PreBlock(nn.Module):  # pre-activation block
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + skip


def stages(block, blocks, width):
    layers, cin = [], width
    for i, n in enumerate(blocks):
        cout, seq = width << i, []
        for b in range(n):
            seq.append(block(cin, cout, 2 if (b == 0 and i > 0) else 1))
            cin = cout
        layers.append(nn.Sequential(*seq))
    return layers, cin


class ResNet(nn.Module):
    def __init__(self, blocks, width, cin=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, last = stages(Block, blocks, width)
        for i, layer in enumerate(layers):
            setattr(self, f"layer{i + 1}", layer)
        self.n = len(layers)
        self.linear = nn.Linear(last, classes)

    def features(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        for i in range(self.n):
            out = getattr(self, f"layer{i + 1}")(out)
        return out

    def head(self, z):
        return self.linear(F.adaptive_avg_pool2d(z, 1).flatten(1))


class PreActResNet(nn.Module):
    def __init__(self, blocks, width, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        layers, last = stages(PreBlock, blocks, width)
        for i, layer in enumerate(layers):
            setattr(self, f"layer{i + 1}", layer)
        self.n = len(layers)
        self.bn = nn.BatchNorm2d(last)
        self.linear = nn.Linear(last, classes)

    def features(self, x):
        out = self.conv1(x)
        for i in range(self.n):
            out = getattr(self, f"layer{i + 1}")(out)
        return out

    def head(self, z):
        return self.linear(F.adaptive_avg_pool2d(F.relu(self.bn(z)), 1).flatten(1))


class WrnBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return (x if self.equal else self.convShortcut(pre)) + out


class Group(nn.Module):
    def __init__(self, n, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WrnBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, k, classes=10):
        super().__init__()
        n, w = (depth - 4) // 6, [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.block1, self.block2, self.block3 = Group(n, w[0], w[1], 1), Group(n, w[1], w[2], 2), Group(n, w[2], w[3], 2)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.fc = nn.Linear(w[3], classes)

    def features(self, x):
        return self.bn1(self.block3(self.block2(self.block1(self.conv1(x)))))

    def head(self, z):
        return self.fc(F.adaptive_avg_pool2d(F.relu(z), 1).flatten(1))


class Inverted(nn.Module):
    def __init__(self, cin, cout, expansion, stride):
        super().__init__()
        hidden = expansion * cin
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride == 1 and cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2(nn.Module):
    cfg = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, width, classes=10):
        super().__init__()
        s = lambda c: max(1, round(c * width))
        self.conv1 = nn.Conv2d(3, s(32), 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(s(32))
        layers, cin = [], s(32)
        for e, c, n, st in self.cfg:
            for b in range(n):
                layers.append(Inverted(cin, s(c), e, st if b == 0 else 1))
                cin = s(c)
        self.layers = nn.Sequential(*layers)
        self.conv2 = nn.Conv2d(cin, s(1280), 1, bias=False)
        self.bn2 = nn.BatchNorm2d(s(1280))
        self.linear = nn.Linear(s(1280), classes)

    def features(self, x):
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return F.relu(self.bn2(self.conv2(out)))

    def head(self, z):
        return self.linear(F.adaptive_avg_pool2d(z, 1).flatten(1))


class Generator(nn.Module):
    def __init__(self, nz, ngf, side, nc):
        super().__init__()
        self.init = side // 4
        self.l1 = nn.Sequential(nn.Linear(nz, 2 * ngf * self.init ** 2))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(2 * ngf), nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, 2 * ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(2 * ngf), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2),
            nn.Conv2d(ngf, nc, 3, 1, 1), nn.Sigmoid())

    def forward(self, z):
        return self.conv_blocks(self.l1(z).view(z.shape[0], -1, self.init, self.init))


def randomize_bn(model, gen):
    """Non-trivial running statistics and affine parameters, so that loading them matters."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(1 + 0.1 * torch.randn(c, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=gen))


def bn_stats(model, fn):
    """Runs fn() with hooks on every BN layer; returns per-layer input statistics in call order."""
    records, hooks = [], []
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            def hook(mod, inputs, _out):
                x = inputs[0]
                records.append({
                    "batch_mean": x.mean(dim=[0, 2, 3]).tolist(),
                    "batch_var": x.var(dim=[0, 2, 3], unbiased=False).tolist(),
                    "running_mean": mod.running_mean.tolist(),
                    "running_var": mod.running_var.tolist(),
                })
            hooks.append(m.register_forward_hook(hook))
    out = fn()
    for h in hooks:
        h.remove()
    return out, records


def save_weights(model, name, fmt):
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        save_file(state, OUT / f"{name}.safetensors")
        return f"{name}.safetensors"
    if fmt == "wrapped":  # a training checkpoint: DataParallel prefix inside model_state_dict
        torch.save({"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in state.items()}}, OUT / f"{name}.pt")
    else:
        torch.save(state, OUT / f"{name}.pt")
    return f"{name}.pt"


def classifier_case(name, model, side, channels, fmt, gen):
    randomize_bn(model, gen)
    model.eval()
    x = torch.rand(2, channels, side, side, generator=gen)
    with torch.no_grad():
        (z, logits), stats = bn_stats(model, lambda: (lambda z: (z, model.head(z)))(model.features(x)))
    return {
        "name": name,
        "weights": save_weights(model, name, fmt),
        "input_shape": list(x.shape),
        "input": x.flatten().tolist(),
        "features_shape": list(z.shape),
        "features": z.flatten().tolist(),
        "logits": logits.flatten().tolist(),
        "bn": stats,
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    cases = [
        classifier_case("resnet_w8", ResNet([2, 2, 2, 2], 8), 32, 3, "pt", gen),
        classifier_case("resnet34_w4", ResNet([3, 4, 6, 3], 4), 32, 3, "wrapped", gen),
        classifier_case("small_resnet_w4", ResNet([1, 1, 1], 4, cin=1), 28, 1, "safetensors", gen),
        classifier_case("preact_resnet_w8", PreActResNet([2, 2, 2, 2], 8), 32, 3, "pt", gen),
        classifier_case("wrn_10_1", WideResNet(10, 1), 32, 3, "safetensors", gen),
        classifier_case("mobilenet_v2_w025", MobileNetV2(0.25), 32, 3, "pt", gen),
    ]
    generator = Generator(16, 8, 32, 3)
    randomize_bn(generator, gen)
    generator.eval()
    z = torch.randn(2, 16, generator=gen)
    with torch.no_grad():
        images = generator(z)
    gen_case = {"name": "generator", "weights": save_weights(generator, "generator", "pt"),
                "latent": z.flatten().tolist(), "images": images.flatten().tolist(), "images_shape": list(images.shape)}
    meta = {"generator": f"tools/golden/model_fixtures.py with torch {torch.__version__}",
            "classifiers": cases, "dcgan": gen_case}
    (OUT / "models.json").write_text(json.dumps(meta) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
