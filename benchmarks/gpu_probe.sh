#!/usr/bin/env bash
# GPU check, one call: the 18-18 stability probe (stock Post-LN, stock Pre-LN, Admin) on the bundled
# real De-En sample, then words/s of Admin vs stock transformer (6-6 and 18-18, fp16), back to back.
# Runs on the lent GPU machine from the repo root, with .wheels312 (fairseq wheels) and .gpu/bin
# (the sample, BPE 8k, binarized here by benchmarks/prepare_gpu_data.sh) carried along.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .wheels312/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1  # checkpoints load weights-only (the plugin allowlists fairseq's types)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
common=(.gpu/bin --user-dir fairseq_admin --share-all-embeddings --optimizer adam --adam-betas "(0.9,0.98)"
  --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 1000 --warmup-init-lr 1e-7
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --dropout 0.1 --max-tokens 8192
  --fp16 --seed 1 --no-save --log-format simple --log-interval 50 --num-workers 2)
run() {  # name seconds args...
  local name=$1 secs=$2; shift 2
  echo "== $name $(date +%T)"
  timeout "$secs" python3 -m fairseq_cli.train "${common[@]}" --save-dir "/tmp/ck_$name" "$@" > "$OUT/$name.log" 2>&1
  echo "   rc=$? $(grep -c valid "$OUT/$name.log") valid lines"
}
deep=(--arch transformer_wmt_en_de --encoder-layers 18 --decoder-layers 18)
probe=(--max-update 400 --validate-interval-updates 100 --validate-interval 1000)
run postln_18 150 --task translation "${deep[@]}" "${probe[@]}"
run preln_18 150 --task translation "${deep[@]}" --encoder-normalize-before --decoder-normalize-before "${probe[@]}"
run admin_18 150 --task translation_admin --arch admin_transformer_wmt_en_de_18_18 "${probe[@]}"
cp /tmp/ck_admin_18/admin_profile.json "$OUT/admin_18_profile.json" 2>/dev/null
speed=(--max-update 600 --disable-validation)
run stock_6_speed 90 --task translation --arch transformer_wmt_en_de "${speed[@]}"
run admin_6_speed 90 --task translation_admin --arch admin_transformer_wmt_en_de "${speed[@]}"
python3 benchmarks/parse_logs.py postln_18="$OUT/postln_18.log" preln_18="$OUT/preln_18.log" \
  admin_18="$OUT/admin_18.log" stock_6_speed="$OUT/stock_6_speed.log" admin_6_speed="$OUT/admin_6_speed.log" \
  | tee "$OUT/summary.txt"
