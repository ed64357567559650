#!/usr/bin/env bash
# Prepare a recipe's corpus end to end: download (or find) the archives, unpack, Moses-tokenize,
# clean, joint BPE and binarize, with the settings of the recipe folder configs/RECIPE (recipe.yaml).
# Usage: scripts/prepare_recipe.sh CONFIG DATA_ROOT
#   DATA_ROOT/archives  the downloaded archives (put hand-downloaded ones here when offline)
#   DATA_ROOT/raw       plain-text {train,valid,test}.{src,tgt}
#   DATA_ROOT/prep      tokenized, cleaned, BPE'd text (prep/bpe/codes is the BPE model)
#   DATA_ROOT/bin       fairseq-preprocess output (joined dictionary)
# Every step skips work already done; rerun after an interruption to resume.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
config=${1:?usage: prepare_recipe.sh CONFIG DATA_ROOT}; data=${2:?usage: prepare_recipe.sh CONFIG DATA_ROOT}
source "$ROOT/scripts/setup_env.sh"
set -euo pipefail
recipe() { fairseq-admin recipe "$config" "$@" 2>/dev/null; }
corpus=$(recipe --step get --key prepare.corpus)
src=$(recipe --step get --key source_lang); tgt=$(recipe --step get --key target_lang)
fairseq-admin download "$corpus" "$data/raw" --archives "$data/archives"
eval "$(recipe --step prepare --raw "$data/raw" --out "$data/prep")"
bash "$ROOT/scripts/binarize.sh" "$data/prep/bpe" "$data/bin" "$src" "$tgt"
