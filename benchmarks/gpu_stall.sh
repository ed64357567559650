#!/usr/bin/env bash
# The stall ablation on a GPU, one call (about 8 minutes on an H100): the earlier H100 probe's Admin
# 18-18 run (benchmarks/gpu_probe.sh: width 512, ffn 2048, Adam lr 1e-3, inverse-sqrt warmup 1000,
# 8,192 tokens, fairseq 0.12's init, 400 updates, valid every 100) with one factor changed at a time:
#   admin_fp16        as the probe (fp16, fairseq's default loss scaling): does the stall come back?
#   admin_fp32        the same in fp32: is it fp16? (on CPU at width 128 in fp32 there was no stall)
#   admin_fp16_ref    fp16 with the reference's loss scaling (--fp16-scale-window 256
#                     --threshold-loss-scale 0.03125) and the reference init: the recipes' settings
#   preln_fp32        Pre-LN in fp32, for scale
# Then the valid losses side by side (parse_logs.py) and the loss-scale changes of each run.
#
# On the lent GPU machine, from the repo root, with .wheels312 (fairseq wheels, ../shared/tools/gpu-wheels.sh)
# and .gpu/bin (benchmarks/prepare_gpu_data.sh) carried along:  bash benchmarks/gpu_stall.sh
# Here, to check the script on the CPU in seconds (tiny model, 4 updates, the study's data):
#   QUICK=1 BIN=work/bench/study-bin OUT=/tmp/stall bash benchmarks/gpu_stall.sh
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BIN=${BIN:-.gpu/bin}
if [ -d .wheels312 ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .wheels312/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
if [ -n "${QUICK:-}" ]; then
  device=(--cpu); fp16=(); secs=120
  shape=(--encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 32 --decoder-embed-dim 32
    --encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64 --encoder-attention-heads 2 --decoder-attention-heads 2)
  probe=(--max-update 4 --validate-interval-updates 2 --validate-interval 1000 --max-tokens 1024 --num-workers 0)
else
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/device.txt"
  device=(); fp16=(--fp16); secs=150
  shape=(--encoder-layers 18 --decoder-layers 18 --encoder-embed-dim 512 --decoder-embed-dim 512
    --encoder-ffn-embed-dim 2048 --decoder-ffn-embed-dim 2048 --encoder-attention-heads 8 --decoder-attention-heads 8)
  probe=(--max-update 400 --validate-interval-updates 100 --validate-interval 1000 --max-tokens 8192 --num-workers 2)
fi
common=("$BIN" --user-dir fairseq_admin --share-all-embeddings --optimizer adam --adam-betas "(0.9,0.98)"
  --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 1000 --warmup-init-lr 1e-7
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --dropout 0.1 --seed 1 --no-save
  --log-format simple --log-interval 50 "${shape[@]}" "${probe[@]}" "${device[@]}")
admin=(--task translation_admin --arch admin_transformer --weight-init fairseq)
run() {  # name args...
  local name=$1; shift
  echo "== $name $(date +%T)"
  timeout "$secs" python3 -m fairseq_cli.train "${common[@]}" --save-dir "/tmp/ck_stall_$name" "$@" > "$OUT/$name.log" 2>&1
  echo "   rc=$? $(grep -c "valid on" "$OUT/$name.log") valid lines"
}
run admin_fp16 "${admin[@]}" "${fp16[@]}"
run admin_fp32 "${admin[@]}"
run admin_fp16_ref --task translation_admin --arch admin_transformer "${fp16[@]}" \
  $([ ${#fp16[@]} -gt 0 ] && echo --fp16-scale-window 256 --threshold-loss-scale 0.03125)
run preln_fp32 --task translation --arch refinit_transformer --weight-init fairseq \
  --encoder-normalize-before --decoder-normalize-before
{
  python3 benchmarks/parse_logs.py admin_fp16="$OUT/admin_fp16.log" admin_fp32="$OUT/admin_fp32.log" \
    admin_fp16_ref="$OUT/admin_fp16_ref.log" preln_fp32="$OUT/preln_fp32.log"
  for n in admin_fp16 admin_fp32 admin_fp16_ref preln_fp32; do
    echo "$n: $(grep -c "gradient overflow" "$OUT/$n.log") fp16 overflows; loss scale: $(grep -o "loss_scale=[0-9.]*" "$OUT/$n.log" | cut -d= -f2 | tr '\n' ' ')"
  done
} | tee "$OUT/stall_summary.txt"
