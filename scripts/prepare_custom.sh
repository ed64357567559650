#!/usr/bin/env bash
# Bring your own corpus: RAW_DIR holds plain-text {train,valid,test}.{SRC,TGT}, line-aligned.
# Tokenize (Moses, as the WMT14 reference by default; see fairseq-admin prepare --help), clean train
# (1-80 tokens, ratio 9), joint BPE, binarize into OUT/bin. Extra arguments go to fairseq-admin prepare.
# Usage: scripts/prepare_custom.sh RAW_DIR OUT SRC TGT [BPE_MERGES=10000] [--lowercase]
# Then train with scripts/run_recipe.sh, e.g. on configs/iwslt14_de_en's hyperparameters.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
usage="usage: scripts/prepare_custom.sh RAW_DIR OUT SRC TGT [BPE_MERGES (default 10000)] [fairseq-admin prepare options, e.g. --lowercase]"
if [[ $# -lt 4 ]]; then echo "prepare_custom.sh: error: $usage" >&2; exit 2; fi
raw=$1; out=$2; src=$3; tgt=$4; merges=10000
if [[ $# -ge 5 && "$5" != -* ]]; then   # the merges are optional: an option in their place is an option
  merges=$5
  if ! [[ "$merges" =~ ^[1-9][0-9]*$ ]]; then
    echo "prepare_custom.sh: error: BPE_MERGES must be a positive number, not '$merges'; $usage" >&2; exit 2
  fi
  shift 5
else
  shift 4
fi
source "$ROOT/scripts/setup_env.sh"
set -euo pipefail
fairseq-admin prepare "$raw" "$out/prep" -s "$src" -t "$tgt" --bpe-merges "$merges" "$@"
bash "$ROOT/scripts/binarize.sh" "$out/prep/bpe" "$out/bin" "$src" "$tgt"
