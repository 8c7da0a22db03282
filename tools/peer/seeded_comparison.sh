#!/usr/bin/env bash
# The seeded end-to-end comparison (docs/results.md): ferd's `ferd-official-code` method and the
# official FERD code, each from the bundled Fashion-MNIST teacher at the quickstart's budget,
# seeds 1..5 per side, every student evaluated by the same `ferd evaluate` (clean and PGD-20 on
# 1,000 balanced test images), then the table (compare_seeded.py).
#
#   cargo build --release --bin ferd --example export_pytorch   # or a debug build: FERD=target/debug/ferd
#   FERD_OFFICIAL_DIR=/path/to/snapshot tools/peer/seeded_comparison.sh [OUT] [SEEDS]
#
# Resumable: a run whose eval.json exists is skipped, a ferd run continues from its checkpoint.
# SET="epochs=2 synthesis.steps=3" changes the setting of both sides (a smoke test).
# About 4 minutes per run on each side on 2 cores (the official code also computes,
# and throws away, a second augmented view per synthesis step).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/seeded-comparison}
seeds=${2:-"1 2 3 4 5"}
ferd=${FERD:-target/release/ferd}
export_pytorch=${EXPORT_PYTORCH:-target/release/examples/export_pytorch}
python=${PYTHON:-python3}
mkdir -p "$out"
sets=(); for kv in ${SET:-}; do sets+=(--set "$kv"); done
"$ferd" distill --budget fmnist-quick --method ferd-official-code "${sets[@]}" --print-config \
  > "$out/config.json"
[ -f "$out/teacher.safetensors" ] || "$export_pytorch" small-cnn-16 \
  models/fmnist-small-teacher/teacher.bpk "$out/teacher.safetensors"
evaluate() { # weights, report, extra flags
  "$ferd" evaluate --arch small-cnn-8 --weights "$1" --attacks pgd-20 --limit 1000 --eps 0.1 \
    --out "$2" "${@:3}" > /dev/null
}
for seed in $seeds; do
  run="$out/ferd-$seed"
  if [ ! -f "$run/eval.json" ]; then
    resume=(); [ -d "$run/checkpoint" ] && resume=(--resume)
    "$ferd" distill --config "$out/config.json" --set "seed=$seed" --out "$run" "${resume[@]}"
    evaluate "$run/student.bpk" "$run/eval.json"
  fi
  run="$out/official-$seed"
  if [ ! -f "$run/eval.json" ]; then
    "$python" tools/peer/official_seeded.py "$out/config.json" "$out/teacher.safetensors" "$seed" "$run"
    evaluate "$run/student.safetensors" "$run/eval.json" --pytorch
  fi
done
"$python" tools/peer/compare_seeded.py "$out"
