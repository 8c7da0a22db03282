"""Loads the PyTorch-layout SafeTensors files that ferd exports (`save_pytorch`) into the PyTorch
definitions of model_fixtures.py with `load_state_dict(strict=True)`, and compares the logits on
the fixtures' inputs with those PyTorch computed when it made the fixtures (models.json).

    FERD_EXPORT_DIR=/tmp/export cargo test -p ferd-models --test integration pytorch_layout_export
    python3 tools/golden/check_export.py /tmp/export          (needs torch and safetensors)
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from model_fixtures import OUT, MobileNetV2, PreActResNet, ResNet, WideResNet  # noqa: E402

MODELS = {
    "resnet_w8": lambda: ResNet([2, 2, 2, 2], 8),
    "small_resnet_w4": lambda: ResNet([1, 1, 1], 4, cin=1),
    "preact_resnet_w8": lambda: PreActResNet([2, 2, 2, 2], 8),
    "wrn_10_1": lambda: WideResNet(10, 1),
    "mobilenet_v2_w025": lambda: MobileNetV2(0.25),
}


def main():
    folder = pathlib.Path(sys.argv[1])
    cases = {c["name"]: c for c in json.loads((OUT / "models.json").read_text())["classifiers"]}
    worst = 0.0
    for name, build in MODELS.items():
        model = build()
        model.load_state_dict(load_file(folder / f"{name}.safetensors"), strict=True)
        model.eval()
        case = cases[name]
        x = torch.tensor(case["input"]).reshape(case["input_shape"])
        with torch.no_grad():
            logits = model.head(model.features(x)).flatten()
        expected = torch.tensor(case["logits"])
        err = ((logits - expected).abs().max() / expected.abs().max()).item()
        worst = max(worst, err)
        print(f"{name}: strict load ok, logits max relative difference {err:.2e}")
    print(f"torch {torch.__version__}; worst {worst:.2e}")
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
