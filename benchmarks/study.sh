#!/usr/bin/env bash
# The evidence study (see benchmarks/study.py): sets up .venv, binarizes the study's data (the bundled
# De-En sample, tokenized, lowercased and BPE'd as committed in benchmarks/study-data/) into
# work/bench/study-bin unless --bin is given, then runs (or resumes) every run and writes
# benchmarks/results-study/{summary.md,valid_loss_*.png,omega_mean.png}.
# Usage: bash benchmarks/study.sh [study.py options]; in the background:
#   nohup bash benchmarks/study.sh > work/study.out 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
set -euo pipefail
if [[ " $* " != *" --bin "* ]]; then
  text=work/bench/study-data
  mkdir -p "$text"
  for f in train valid test; do for l in de en; do
    tmp="$text/.$f.$l.$$.tmp"   # per process: two studies started together must not share a temporary file
    gunzip -c "benchmarks/study-data/$f.$l.gz" > "$tmp" && mv -f "$tmp" "$text/$f.$l"
  done; done
  bash scripts/binarize.sh "$text" work/bench/study-bin de en >&2   # redone only if the text changed
  set -- --bin work/bench/study-bin "$@"
fi
exec python benchmarks/study.py "$@"
