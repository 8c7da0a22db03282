#!/usr/bin/env bash
# ferd next to PyTorch on this machine, with the same number of threads on both sides, printed
# as one Markdown table (docs/performance.md keeps a copy with the date and the machine).
#
#   tools/bench/compare.sh [THREADS]        # default 2; keep the machine otherwise idle
#
# ferd: `cargo bench` (release, criterion medians; the attack bench is one timed run) with
# RAYON_NUM_THREADS=THREADS. PyTorch: tools/bench/torch_*.py (medians) with
# torch.set_num_threads(THREADS). Environment: PYTHON (default python3, needs torch, torchattacks,
# safetensors), FERD_BENCH_IMAGES (images of the attack workloads, default 200), FERD_KERNELS=burn
# (Burn's convolution and pooling instead of ferd's, for the "before" column), FERD_FEATURES
# (cargo features of the ferd side, e.g. x86-v4). Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
threads="${1:-2}"
python="${PYTHON:-python3}"
export RAYON_NUM_THREADS="$threads" THREADS="$threads" OMP_NUM_THREADS="$threads"
export FERD_BENCH_IMAGES="${FERD_BENCH_IMAGES:-200}"

features=(${FERD_FEATURES:+--features "$FERD_FEATURES"})
cargo bench "${features[@]}" --bench models --bench ferd -- --noplot >&2
cargo bench "${features[@]}" --bench attacks >&2

echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $threads threads, kernels ${FERD_KERNELS:-ferd}, features ${FERD_FEATURES:-default}"
echo
echo "| workload | PyTorch | ferd | ferd / PyTorch |"
echo "|---|---|---|---|"
"$python" tools/bench/torch_models.py
"$python" tools/bench/torch_ferd.py
"$python" tools/bench/torch_attacks.py --threads "$threads"
