#!/usr/bin/env bash
# The robust-fairness study on Fashion-MNIST, second protocol (docs/results.md, fixed before any
# run): the paper's round shape (`--budget fmnist-paper-round`) at a CPU-sized epoch count.
# Every arm distilled from the bundled teacher, then every student and the teacher evaluated on
# the test set. Resumable at every level; the machinery is tools/study/lib.sh.
#
#   tools/study/fmnist-fairness-2.sh                 # everything, seed by seed (see queue)
#   tools/study/fmnist-fairness-2.sh ferd-minmax 1   # one arm and seed
#   tools/study/fmnist-fairness-2.sh configs         # (re)write the committed configs
#   tools/study/fmnist-fairness-2.sh teacher         # the teacher's evaluation
#   tools/study/fmnist-fairness-2.sh report          # the tables and charts of what is done
#   tools/study/fmnist-fairness-2.sh charts          # and the charts docs/results.md shows
#   tools/study/fmnist-fairness-2.sh rerun ferd 0    # a committed run again, compared
#
# Runs go to runs/study2/<arm>-s<seed> (not committed); what docs/results.md is made of is
# copied to studies/fmnist-fairness-2/.
set -euo pipefail
cd "$(dirname "$0")/../.."

STUDY=studies/fmnist-fairness-2
RUNS=runs/study2
CHARTS=docs/results/paper-round
BUDGET=fmnist-paper-round
STUDENT=small-cnn-8
TEACHER_ARCH=small-cnn-16
TEACHER=models/fmnist-small-teacher/teacher.bpk

# arm: method. Seeds: 3 for the baseline and the two FERD label rules, 1 for the others. The
# ablations remove one component each from the main variant, FERD with the paper's rule.
declare -A METHOD=(
  [baseline]=dfrd-uniform [ferd]=ferd [ferd-minmax]=ferd-minmax
  [ferd-official-code]=ferd-official-code
  [no-reweighting]=no-reweighting [no-fae]=no-fae [no-utae]=no-utae
)
declare -A SET=()
ARMS=(baseline ferd ferd-minmax ferd-official-code no-reweighting no-fae no-utae)
seeds() { case "$1" in baseline|ferd|ferd-minmax) echo 0 1 2 ;; *) echo 0 ;; esac; }

# Seed by seed, so that the headline's first comparison is complete early; the teacher's
# evaluation (needed by the diagnostics) after the first seed.
queue() {
  for seed in 0 1 2; do
    for arm in baseline ferd ferd-minmax; do echo "$arm $seed"; done
    [[ $seed == 0 ]] && echo "teacher -"
  done
  for arm in ferd-official-code no-reweighting no-fae no-utae; do echo "$arm 0"; done
}

source tools/study/lib.sh
study_main "$@"
