# The machinery of a robust-fairness study (docs/results.md), shared by the studies' scripts.
# A study script sets what differs, then sources this file and calls `study_main "$@"`:
#
#   STUDY    where the committed results go (configs/, runs/<arm>-s<seed>/, report/)
#   RUNS     where runs are made (not committed)
#   BUDGET   the `--budget` of every arm
#   STUDENT, TEACHER, TEACHER_ARCH
#   METHOD   associative array: arm -> `--method`
#   SET      associative array: arm -> one `--set key=value` (optional)
#   ARMS     the arms, in the order they are run and shown
#   seeds()  a function: the seeds of an arm
#   CHARTS   where `charts` puts the charts docs/results.md shows
#   queue()  optional, a function: the "arm seed" lines in the order `all` runs them, "teacher -"
#            for the teacher's evaluation (default: the teacher, then every seed of the first
#            arm, then the next arm)
#
# Every level resumes: run a script again after an interruption and it continues (distillation
# from its last checkpoint, evaluation from its last batch); finished parts are skipped.

# One binary for the whole study, whatever is built beside it: built at the first start (or
# copied from $FERD_STUDY_BIN), and kept with the commit it came from, so that later speed work
# does not change the study's arithmetic. Delete $RUNS/ferd to rebuild.
study_binary() {
  mkdir -p "$RUNS"
  if [[ ! -x "$RUNS/ferd" ]]; then
    if [[ -n "${FERD_STUDY_BIN:-}" ]]; then
      cp "$FERD_STUDY_BIN" "$RUNS/ferd.new"
    else
      cargo build --quiet --bin ferd
      cp target/debug/ferd "$RUNS/ferd.new"
    fi
    mv "$RUNS/ferd.new" "$RUNS/ferd"
    echo "$(git rev-parse --short HEAD)$(git diff --quiet || echo ' (modified)')" > "$RUNS/ferd.commit"
  fi
  echo "study binary from commit $(cat "$RUNS/ferd.commit")" >&2
  FERD=("$RUNS/ferd")
}

configs() {
  mkdir -p "$STUDY/configs"
  for arm in "${ARMS[@]}"; do
    local set=()
    [[ -n "${SET[$arm]:-}" ]] && set=(--set "${SET[$arm]}")
    "${FERD[@]}" distill --budget "$BUDGET" --method "${METHOD[$arm]}" "${set[@]}" \
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

# A committed run made again into $RUNS/<arm>-s<seed>-rerun: its weights and synthesized images
# (the committed runs keep metrics only), and a check that the study reproduces: every file
# must equal the committed one but for its wall-clock fields.
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
# the working tree ($FERD_REPORT_BIN, or cargo's), whatever the study binary is.
report_binary() {
  if [[ -n "${FERD_REPORT_BIN:-}" ]]; then REPORT=("$FERD_REPORT_BIN"); else
    REPORT=(cargo run --quiet --bin ferd --); fi
}

report() {
  report_binary
  local done=(teacher)
  for arm in "${ARMS[@]}"; do
    ls "$STUDY/runs/$arm"-s*/eval-10k.json > /dev/null 2>&1 && done+=("$arm")
  done
  "${REPORT[@]}" report "$STUDY/runs" --study --labels "$(IFS=,; echo "${done[*]}")" \
    --out "$STUDY/report"
}

# The charts of docs/results.md, drawn again from the committed runs into $CHARTS: the study's
# per-class charts, and for every run its reweighting's class distribution, its per-epoch
# accuracy (worst class included) and its NSD over epochs.
charts() {
  report
  mkdir -p "$CHARTS"
  for measure in clean pgd-20 autoattack; do
    cp "$STUDY/report/study_$measure.svg" "$CHARTS/study_$measure.svg"
  done
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
      cp "$STUDY/report/$name/$chart.svg" "$CHARTS/$name-$chart.svg"
    done
    for grid in "$STUDY/report/$name"/synthesized-epoch-*.png; do
      if [[ -f "$grid" ]]; then cp "$grid" "$CHARTS/$name-$(basename "$grid")"; fi
    done
  done
}

study_queue() {
  if declare -F queue > /dev/null; then queue; return; fi
  echo "teacher -"
  for arm in "${ARMS[@]}"; do for seed in $(seeds "$arm"); do echo "$arm $seed"; done; done
}

study_main() {
  case "${1:-all}" in
    report) report; return ;;
    charts) charts; return ;;
  esac
  study_binary
  case "${1:-all}" in
    configs) configs ;;
    teacher) evaluate "$TEACHER_ARCH" "$TEACHER" "$STUDY/runs/teacher" ;;
    rerun) rerun "${2:?an arm}" "${3:?a seed}" ;;
    all)
      [[ -d "$STUDY/configs" ]] || configs
      local arm seed
      while read -r arm seed; do
        if [[ $arm == teacher ]]; then evaluate "$TEACHER_ARCH" "$TEACHER" "$STUDY/runs/teacher"
        else run "$arm" "$seed"; fi
      done < <(study_queue)
      report ;;
    *) run "$1" "${2:-0}" ;;
  esac
}
