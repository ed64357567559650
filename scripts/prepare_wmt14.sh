#!/usr/bin/env bash
# WMT14 En-De as the Admin reference's script: europarl v7 + commoncrawl + news-commentary v12, Moses
# normalize-punctuation + remove-non-printing-char (train, valid) + tokenize -a (escaping on),
# clean train only 1-80 (ratio 9), joint BPE 32,764 merges, valid newstest2013, test newstest2014 (full, 3,003).
# Usage: scripts/prepare_wmt14.sh [DATA_ROOT=work/wmt14_en_de]
exec bash "$(dirname "$0")/prepare_recipe.sh" "$(dirname "$0")/../configs/wmt14_en_de" "${1:-work/wmt14_en_de}"
