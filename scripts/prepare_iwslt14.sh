#!/usr/bin/env bash
# IWSLT14 De-En as fairseq's prepare-iwslt14.sh: lowercased, Moses-tokenized, clean 1-175 (ratio 1.5),
# valid = every 23rd training line, test = dev2010 + tst2010-2012 + TEDX dev2012, joint BPE 10k.
# Usage: scripts/prepare_iwslt14.sh [DATA_ROOT=work/iwslt14_de_en]
exec bash "$(dirname "$0")/prepare_recipe.sh" "$(dirname "$0")/../configs/iwslt14_de_en.json" "${1:-work/iwslt14_de_en}"
