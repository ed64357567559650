#!/usr/bin/env bash
# Binarize BPE'd {train,valid,test}.{src,tgt} with a joined dictionary (shared embeddings), once.
# Usage: scripts/binarize.sh BPE_DIR BIN_DIR SRC TGT
set -euo pipefail
bpe=${1:?}; bin=${2:?}; src=${3:?}; tgt=${4:?}
if [ -f "$bin/.done" ]; then echo "| $bin already binarized"; exit 0; fi
rm -rf "$bin.tmp"
fairseq-preprocess --source-lang "$src" --target-lang "$tgt" --trainpref "$bpe/train" --validpref "$bpe/valid" \
  --testpref "$bpe/test" --destdir "$bin.tmp" --joined-dictionary --workers "${WORKERS:-2}"
rm -rf "$bin" && mv "$bin.tmp" "$bin" && touch "$bin/.done"   # appears whole or not at all
