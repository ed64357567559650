#!/usr/bin/env bash
# WMT14 En-De: europarl v7 + commoncrawl + news-commentary v9, Moses normalize + tokenize -a,
# clean 1-80 (ratio 1.5), joint BPE 32k, valid newstest2013, test newstest2014 (full).
# Usage: scripts/prepare_wmt14.sh [DATA_ROOT=work/wmt14_en_de]
exec bash "$(dirname "$0")/prepare_recipe.sh" "$(dirname "$0")/../configs/wmt14_en_de.json" "${1:-work/wmt14_en_de}"
