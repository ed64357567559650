#!/usr/bin/env bash
# Binarize BPE'd {train,valid,test}.{src,tgt} with a joined dictionary (shared embeddings).
# BIN_DIR/.done holds a hash of the inputs and settings: the step is skipped only when they are the
# same, and redone (into BIN_DIR.tmp, then swapped in whole) when the BPE'd text changed.
# Usage: scripts/binarize.sh BPE_DIR BIN_DIR SRC TGT
set -euo pipefail
[ $# -eq 4 ] || { echo "binarize.sh: error: usage: scripts/binarize.sh BPE_DIR BIN_DIR SRC TGT" >&2; exit 2; }
bpe=$1; bin=$2; src=$3; tgt=$4
for s in train valid test; do for l in "$src" "$tgt"; do
  [ -f "$bpe/$s.$l" ] || { echo "binarize.sh: error: no $bpe/$s.$l: BPE_DIR needs {train,valid,test}.{$src,$tgt} (e.g. prepare_custom.sh's OUT/prep/bpe)" >&2; exit 2; }
done; done
stamp=$( { echo "fairseq-preprocess --joined-dictionary $src $tgt"
           for s in train valid test; do for l in "$src" "$tgt"; do sha256sum < "$bpe/$s.$l"; done; done
         } | sha256sum | cut -d' ' -f1 )
if [ "$(cat "$bin/.done" 2>/dev/null)" = "$stamp" ]; then echo "| $bin already binarized from these files"; exit 0; fi
rm -rf "$bin.tmp"
fairseq-preprocess --source-lang "$src" --target-lang "$tgt" --trainpref "$bpe/train" --validpref "$bpe/valid" \
  --testpref "$bpe/test" --destdir "$bin.tmp" --joined-dictionary --workers "${WORKERS:-2}"
echo "$stamp" > "$bin.tmp/.done"
rm -rf "$bin" && mv "$bin.tmp" "$bin"   # appears whole or not at all
