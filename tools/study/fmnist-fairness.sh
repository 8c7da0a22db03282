#!/usr/bin/env bash
# The robust-fairness study on Fashion-MNIST (docs/results.md, protocol fixed before any run):
# every arm distilled from the bundled teacher at the `fmnist-study` budget, then every student
# and the teacher evaluated on the test set. Resumable at every level: run it again after an
# interruption and it continues (distillation from its last checkpoint, evaluation from its
# last batch); finished parts are skipped.
#
#   tools/study/fmnist-fairness.sh                 # everything, in the order of the table
#   tools/study/fmnist-fairness.sh ferd 1          # one arm and seed
#   tools/study/fmnist-fairness.sh configs         # (re)write the committed configs
#   tools/study/fmnist-fairness.sh teacher         # the teacher's evaluation
#   tools/study/fmnist-fairness.sh report          # the tables and charts of what is done
#   tools/study/fmnist-fairness.sh charts          # and the charts docs/results.md shows
#   tools/study/fmnist-fairness.sh rerun ferd 2    # a committed run again: weights, images, check
#
# Runs go to runs/study/<arm>-s<seed> (not committed); what docs/results.md is made of
# (config, metrics, final comparison, evaluations) is copied to studies/fmnist-fairness/.
set -euo pipefail
cd "$(dirname "$0")/../.."

STUDY=studies/fmnist-fairness
RUNS=runs/study
# One binary for the whole study, whatever is built beside it: built at the first start (the dev
# profile is optimized, Cargo.toml), copied, and kept with the commit it was built from, so that
# later speed work does not change the study's arithmetic. Delete runs/study/ferd to rebuild.
mkdir -p "$RUNS"
if [[ ! -x "$RUNS/ferd" ]]; then
  cargo build --quiet --bin ferd
  cp target/debug/ferd "$RUNS/ferd.new" && mv "$RUNS/ferd.new" "$RUNS/ferd"
  echo "$(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)')" > "$RUNS/ferd.commit"
fi
echo "study binary from commit $(cat "$RUNS/ferd.commit")" >&2
FERD=("$RUNS/ferd")
STUDENT=small-cnn-8
TEACHER=models/fmnist-small-teacher/teacher.bpk

# arm: method and extra settings. Seeds: 3 for the baseline and FERD, 1 for the others. The gamma
# sweep's 0 is `no-utae` (FERD with gamma 0: the same config, byte for byte) and its 0.3 is `ferd`.
declare -A METHOD=(
  [baseline]=dfrd-uniform [ferd]=ferd [ferd-official-code]=ferd-official-code
  [no-reweighting]=no-reweighting [no-fae]=no-fae [no-utae]=no-utae [no-fae-utae]=no-fae-utae
  [gamma-0.1]=ferd [gamma-0.5]=ferd
)
declare -A SET=([gamma-0.1]=student.utae.gamma=0.1 [gamma-0.5]=student.utae.gamma=0.5)
ARMS=(baseline ferd ferd-official-code no-reweighting no-fae no-utae no-fae-utae
  gamma-0.1 gamma-0.5)
seeds() { case "$1" in baseline|ferd) echo 0 1 2 ;; *) echo 0 ;; esac; }

configs() {
  mkdir -p "$STUDY/configs"
  for arm in "${ARMS[@]}"; do
    local set=()
    [[ -n "${SET[$arm]:-}" ]] && set=(--set "${SET[$arm]}")
    "${FERD[@]}" distill --budget fmnist-study --method "${METHOD[$arm]}" "${set[@]}" \
      --print-config > "$STUDY/configs/$arm.json"
  done
}

# Clean, FGSM, PGD-20 and CW-20 on the 10,000 test images; AutoAttack (standard) on a
# class-balanced 1,000. Seed 0 for every evaluation.
evaluate() {
  local arch=$1 weights=$2 dir=$3
  mkdir -p "$dir"
  [[ -f "$dir/eval-10k.json" ]] || "${FERD[@]}" evaluate --arch "$arch" --weights "$weights" \
    --attacks fgsm,pgd-20,cw-20 --batch 500 --out "$dir/eval-10k.json" --resume
  [[ -f "$dir/eval-aa1000.json" ]] || "${FERD[@]}" evaluate --arch "$arch" --weights "$weights" \
    --limit 1000 --attacks autoattack --batch 250 --out "$dir/eval-aa1000.json" --resume
}

run() {
  local arm=$1 seed=$2
  local run="$RUNS/$arm-s$seed" kept="$STUDY/runs/$arm-s$seed"
  [[ -f "$STUDY/configs/$arm.json" ]] || { echo "no config for $arm: run '$0 configs'"; exit 2; }
  # A run whose results are committed is done, also on a fresh checkout without runs/: delete
  # its folder under studies/ to run it again.
  if [[ ! -d "$run" && -f "$kept/eval-aa1000.json" ]]; then
    echo "$arm seed $seed: committed in $kept, skipped" >&2
    return
  fi
  distill "$arm" "$seed" "$run"
  evaluate "$STUDENT" "$run/student.bpk" "$run"
  mkdir -p "$kept"
  cp "$run"/{config.json,metrics.jsonl,final.json,eval-10k.json,eval-aa1000.json} "$kept/"
}

# One arm and seed distilled into a folder, resumed from its last checkpoint if there is one.
distill() {
  local arm=$1 seed=$2 run=$3
  [[ -f "$run/final.json" ]] && return
  local started=$SECONDS
  "${FERD[@]}" distill --config "$STUDY/configs/$arm.json" --set "seed=$seed" \
    --student "$STUDENT" --final-per-class 100 --out "$run" --resume
  echo "$arm seed $seed distilled in $(( SECONDS - started )) s (this slice)" >&2
}

# A committed run made again into runs/study/<arm>-s<seed>-rerun: its weights and synthesized
# images (the committed runs keep metrics only; the bundled FERD student comes from here), and
# a check that the study reproduces: every file must equal the committed one but for its
# wall-clock fields.
rerun() {
  local arm=$1 seed=$2
  local run="$RUNS/$arm-s$seed-rerun" kept="$STUDY/runs/$arm-s$seed"
  [[ -f "$kept/eval-aa1000.json" ]] || { echo "$kept is not committed: nothing to compare"; exit 2; }
  distill "$arm" "$seed" "$run"
  evaluate "$STUDENT" "$run/student.bpk" "$run"
  local differ=0
  for file in config.json metrics.jsonl final.json eval-10k.json eval-aa1000.json; do
    if cmp -s <(untimed "$kept/$file") <(untimed "$run/$file"); then
      echo "$file: identical to $kept/$file but for wall-clock times" >&2
    else
      echo "$file: DIFFERS from $kept/$file" >&2
      differ=1
    fi
  done
  return $differ
}

# A run's JSON (or JSON lines) without its wall-clock fields, keys sorted.
untimed() { jq -cS 'del(.. | objects | .seconds, .distill_seconds, .total_seconds)' "$1"; }

# Tables and charts are presentation, not the study's arithmetic: they are drawn by the binary of
# the working tree, whatever the study binary is.
REPORT=(cargo run --quiet --bin ferd --)

report() {
  local done=(teacher)
  for arm in "${ARMS[@]}"; do
    ls "$STUDY/runs/$arm"-s*/eval-10k.json > /dev/null 2>&1 && done+=("$arm")
  done
  "${REPORT[@]}" report "$STUDY/runs" --study --labels "$(IFS=,; echo "${done[*]}")" \
    --out "$STUDY/report"
}

# The charts of docs/results.md, drawn again from the committed runs: the study's per-class
# charts, and for every run its reweighting's class distribution, its per-epoch accuracy (worst
# class included) and its NSD over epochs.
charts() {
  report
  mkdir -p docs/results
  cp "$STUDY/report"/study_{clean,pgd-20,autoattack}.svg docs/results/
  for kept in "$STUDY"/runs/*-s*/; do
    local name; name=$(basename "$kept")
    # The run's own folder, where this machine still has it, or its verified re-run ('rerun')
    # also holds the synthesized images (the grids of its first and last rounds); the committed
    # copy has metrics only.
    local source="$kept"
    [[ -d "$RUNS/$name-rerun" ]] && source="$RUNS/$name-rerun"
    [[ -d "$RUNS/$name" ]] && source="$RUNS/$name"
    "${REPORT[@]}" report "$source" --out "$STUDY/report/$name" > /dev/null
    for chart in class_distribution curves nsd; do
      cp "$STUDY/report/$name/$chart.svg" "docs/results/$name-$chart.svg"
    done
    for grid in "$STUDY/report/$name"/synthesized-epoch-*.png; do
      if [[ -f "$grid" ]]; then cp "$grid" "docs/results/$name-$(basename "$grid")"; fi
    done
  done
}

case "${1:-all}" in
  configs) configs ;;
  report) report ;;
  charts) charts ;;
  teacher) evaluate small-cnn-16 "$TEACHER" "$STUDY/runs/teacher" ;;
  rerun) rerun "${2:?an arm}" "${3:?a seed}" ;;
  all)
    [[ -d "$STUDY/configs" ]] || configs
    evaluate small-cnn-16 "$TEACHER" "$STUDY/runs/teacher"
    for arm in "${ARMS[@]}"; do for seed in $(seeds "$arm"); do run "$arm" "$seed"; done; done
    report ;;
  *) run "$1" "${2:-0}" ;;
esac
