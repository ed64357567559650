#!/usr/bin/env bash
# The evidence study (see benchmarks/study.py): sets up .venv, prepares the bundled De-En sample as the
# quickstart does (lowercase, joint BPE 6k, max ratio 9) into work/bench/bin when no --bin is given,
# then runs (or resumes) every run and writes benchmarks/results-study/{summary.md,valid_loss_*.png}.
# Usage: bash benchmarks/study.sh [study.py options]; in the background:
#   nohup bash benchmarks/study.sh > work/study.out 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
set -euo pipefail
if [[ " $* " != *" --bin "* ]] && [ ! -f work/bench/bin/.done ]; then
  bash scripts/prepare_custom.sh data/de-en-libreoffice-sample work/bench de en 6000 --lowercase --max-ratio 9
fi
exec python benchmarks/study.py "$@"
