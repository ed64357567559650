#!/usr/bin/env bash
# Stability at depth on the bundled real corpus, CPU: narrow but deep models (default 18-18 at width
# 128) trained for a fixed number of updates with a short warmup and a high peak lr, the setting in
# which stock deep Post-LN stalls on this corpus: Post-LN vs Pre-LN vs Admin vs DeepNorm.
# Usage: bash benchmarks/stability_cpu.sh [--quick]    (LAYERS, UPDATES, SEEDS, OUT, BIN to override;
#   BIN: binarized data, default work/bench/bin, made from the bundled sample when missing)
# --quick: 2-2 layers, 6 updates (what the tests run); the full mode fills RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
set -euo pipefail
layers=${LAYERS:-18} updates=${UPDATES:-150} seeds=${SEEDS:-1} valid_every=50
if [ "${1:-}" = --quick ]; then layers=2 updates=6 valid_every=3; fi
out=${OUT:-work/bench/stability-${layers}x${layers}}
bin=${BIN:-work/bench/bin}
if [ -z "${BIN:-}" ] && [ ! -f "$bin/.done" ]; then
  bash scripts/prepare_custom.sh data/de-en-libreoffice-sample work/bench de en 6000 --lowercase --max-ratio 9
fi
mkdir -p "$out"
common=("$bin" --user-dir fairseq_admin --encoder-layers "$layers" --decoder-layers "$layers"
  --encoder-embed-dim 128 --decoder-embed-dim 128 --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512
  --encoder-attention-heads 4 --decoder-attention-heads 4 --share-all-embeddings
  --optimizer adam --adam-betas "(0.9,0.98)" --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 100
  --warmup-init-lr 1e-7 --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --dropout 0.1
  --max-tokens 2048 --max-update "$updates" --validate-interval-updates "$valid_every" --validate-interval 1000
  --no-save --cpu --log-format simple --log-interval "$(( updates < 50 ? 2 : 25 ))" --num-workers 0)
declare -A method=(
  [postln]="--task translation --arch transformer"
  [preln]="--task translation --arch transformer --encoder-normalize-before --decoder-normalize-before"
  [admin]="--task translation_admin --arch admin_transformer"
  [deepnorm]="--task translation --arch admin_transformer --admin-init deepnorm"
)
args=()
for seed in $(seq 1 "$seeds"); do
  for m in postln preln admin deepnorm; do
    log="$out/$m-seed$seed.log"
    if ! grep -q "done training" "$log" 2>/dev/null; then
      echo "| $m seed $seed -> $log"
      # shellcheck disable=SC2086
      fairseq-train "${common[@]}" ${method[$m]} --seed "$seed" --save-dir "$out/ck-$m" > "$log.tmp" 2>&1
      mv "$log.tmp" "$log"
    fi
    args+=("$m-seed$seed=$log")
  done
done
python benchmarks/parse_logs.py "${args[@]}" | tee "$out/summary.txt"
