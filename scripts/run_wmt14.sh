#!/usr/bin/env bash
# WMT14 En-De end to end: prepare, then the variants in VARIANTS (default: Admin 6-6, 18-18, 60-12 and
# the baselines the paper compares at 6-6 and 18-18; every variant: fairseq-admin recipe configs/wmt14_en_de --list).
# Usage: scripts/run_wmt14.sh [DATA_ROOT=work/wmt14_en_de] [run_recipe options, e.g. --gpus 8]
set -euo pipefail
here="$(dirname "$0")"; config="$here/../configs/wmt14_en_de"
data=${1:-work/wmt14_en_de}; shift $(( $# > 0 ? 1 : 0 ))
bash "$here/prepare_recipe.sh" "$config" "$data"
for variant in ${VARIANTS:-admin-6-6 postln-6-6 preln-6-6 admin-18-18 preln-18-18 postln-18-18 admin-60-12 preln-60-12}; do
  bash "$here/run_recipe.sh" "$config" "$variant" "$data" "$@"
done
