#!/usr/bin/env bash
# Binarize the bundled sample (true case, Moses tokenized, joint BPE 8k) into .gpu/bin for the GPU probe.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
set -euo pipefail
fairseq-admin prepare data/de-en-libreoffice-sample .gpu/prep -s de -t en --bpe-merges 8000 --max-ratio 9
[ -f .gpu/bin/.done ] || { fairseq-preprocess -s de -t en --trainpref .gpu/prep/bpe/train \
  --validpref .gpu/prep/bpe/valid --testpref .gpu/prep/bpe/test --destdir .gpu/bin --joined-dictionary \
  --workers 2 && touch .gpu/bin/.done; }
grep -qxF "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
