#!/usr/bin/env bash
# IWSLT14 De-En as fairseq 0.8's prepare-iwslt14.sh: Moses tokenizer -l only (escaping on), clean train
# 1-175 (ratio 1.5), lowercased,
# valid = lines 23, 46, ... of the cleaned train, test = dev2010 + tst2010-2012 + TEDX dev2012, joint BPE 10k.
# Usage: scripts/prepare_iwslt14.sh [DATA_ROOT=work/iwslt14_de_en]
exec bash "$(dirname "$0")/prepare_recipe.sh" "$(dirname "$0")/../configs/iwslt14_de_en" "${1:-work/iwslt14_de_en}"
