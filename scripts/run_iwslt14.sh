#!/usr/bin/env bash
# IWSLT14 De-En end to end: prepare, then Admin and the Post-LN / Pre-LN baselines (same settings).
# Usage: scripts/run_iwslt14.sh [DATA_ROOT=work/iwslt14_de_en] [run_recipe options, e.g. --gpus 1]
set -euo pipefail
here="$(dirname "$0")"; config="$here/../configs/iwslt14_de_en"
data=${1:-work/iwslt14_de_en}; shift $(( $# > 0 ? 1 : 0 ))
bash "$here/prepare_recipe.sh" "$config" "$data"
for variant in ${VARIANTS:-admin-6-6 postln-6-6 preln-6-6}; do
  bash "$here/run_recipe.sh" "$config" "$variant" "$data" "$@"
done
