#!/usr/bin/env bash
# The robust-fairness study on Fashion-MNIST, first protocol (docs/results.md, fixed before any
# run; reduced rounds): every arm distilled from the bundled teacher at the `fmnist-study`
# budget, then every student and the teacher evaluated on the test set. Resumable at every
# level; the machinery is tools/study/lib.sh.
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
CHARTS=docs/results
BUDGET=fmnist-study
STUDENT=small-cnn-8
TEACHER_ARCH=small-cnn-16
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

source tools/study/lib.sh
study_main "$@"
