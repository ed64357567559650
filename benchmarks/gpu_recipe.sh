#!/usr/bin/env bash
# GPU acceptance of the IWSLT14 recipe (issue 15), one call of at most ~9 minutes on one GPU: the recipe's
# own driver, scripts/run_recipe.sh configs/iwslt14_de_en VARIANT DATA --gpus 1 (fp16, the recipe's
# loss scaling), for admin-6-6 then preln-6-6: profile (Admin), train, average the last 5 epoch
# checkpoints, generate (beam 5, all 1,612 test sentences), score; on the bundled sample prepared in the
# IWSLT14 style (benchmarks/prepare_gpu_recipe.sh, on the CPU). Everything of the recipe is kept but
# the length: --max-update $UPDATES (default 1500) and --warmup-updates $WARMUP (default 500, the
# recipe's 6000 would leave the lr near zero in so short a run), --keep-last-epochs 6 (disk).
# Writes to $OUT: per variant the driver's log (train log included), the translations, the scores; then
# summary.txt (best valid loss, words/s, BLEU) and device.txt.
#
# On the lent GPU machine (no network), from the repo root, carrying .wheels312
# (../shared/tools/gpu-wheels.sh), .gpu/iwslt/bin and .gpu/iwslt/raw:  bash benchmarks/gpu_recipe.sh
# Here, to check the script on the CPU in a few minutes (1,000 lines of each split, tiny model, two epochs):
#   QUICK=1 OUT=/tmp/acc bash benchmarks/gpu_recipe.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
DATA=${DATA:-.gpu/iwslt}
UPDATES=${UPDATES:-1500}; WARMUP=${WARMUP:-500}; PER_VARIANT_S=${PER_VARIANT_S:-260}; AVERAGE=5
export PYTHONUNBUFFERED=1
if [ -n "${QUICK:-}" ]; then  # its own small data: the first 1,000 lines of each split
  DATA=${QUICK_DATA:-/tmp/gpu-recipe-quick-data}
  LINES=1000 bash benchmarks/prepare_gpu_recipe.sh "$DATA" > "$OUT/prepare.log" 2>&1 || { tail -5 "$OUT/prepare.log"; exit 1; }
  rm -rf "$DATA/runs"
fi
[ -f "$DATA/bin/dict.de.txt" ] && [ -f "$DATA/raw/test.en" ] \
  || { echo "gpu_recipe.sh: error: no prepared data in $DATA (bin/, raw/): run benchmarks/prepare_gpu_recipe.sh first" >&2; exit 2; }
if [ -d .wheels312 ]; then
  # the GPU machine: torch is there, fairseq comes as wheels; no virtual environment (FAIRSEQ_ADMIN_SETUP=none)
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .wheels312/*.whl || exit 1
  mkdir -p /tmp/shim
  printf '#!/bin/sh\nexec python3 -m fairseq_admin.tools.cli "$@"\n' > /tmp/shim/fairseq-admin
  chmod +x /tmp/shim/fairseq-admin
  command -v python > /dev/null || ln -sf "$(command -v python3)" /tmp/shim/python
  export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/shim:/tmp/site/bin:$PATH FAIRSEQ_ADMIN_SETUP=none
fi
if [ -n "${QUICK:-}" ]; then
  # the environment of the tests; two epochs of a tiny model (epoch checkpoints to average)
  source scripts/setup_env.sh; set +e
  device=(--cpu); WARMUP=4; AVERAGE=2
  shape="--encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 32 --decoder-embed-dim 32 \
--encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64 --encoder-attention-heads 2 --decoder-attention-heads 2 \
--max-tokens 4000 --num-workers 0 --max-epoch 2"
  gen="--max-len-b 5 --batch-size 256"
else
  device=(--gpus 1); shape="--max-update $UPDATES"; gen=""
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/device.txt"
fi
: > "$OUT/summary.txt"
python -c "import torch, fairseq; print('torch', torch.__version__, 'fairseq', fairseq.__version__)" >> "$OUT/device.txt"; cat "$OUT/device.txt"
extra="$shape --warmup-updates $WARMUP --keep-last-epochs 6"
for variant in admin-6-6 preln-6-6; do
  start=$(date +%s)
  timeout "$PER_VARIANT_S" bash scripts/run_recipe.sh configs/iwslt14_de_en "$variant" "$DATA" "${device[@]}" \
    --seeds 1111 --average-last "$AVERAGE" --extra "$extra" ${gen:+--gen-extra "$gen"} > "$OUT/$variant.log" 2>&1
  rc=$?
  echo "| $variant: exit $rc after $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
  run="$DATA/runs/$variant"
  cp "$run/seed1111/generate-test.txt" "$OUT/$variant.generate-test.txt" 2>/dev/null
  cp "$run/scores.txt" "$OUT/$variant.scores.txt" 2>/dev/null
  cp "$run/admin_profile.json" "$OUT/$variant.admin_profile.json" 2>/dev/null
done
python benchmarks/parse_logs.py admin="$OUT/admin-6-6.log" preln="$OUT/preln-6-6.log" | tee -a "$OUT/summary.txt"
for variant in admin-6-6 preln-6-6; do
  echo "== $variant"
  cat "$OUT/$variant.scores.txt" 2>/dev/null || echo "no scores (see $variant.log)"
done | tee -a "$OUT/summary.txt"
