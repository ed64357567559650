#!/usr/bin/env bash
# GPU check, one short call: the IWSLT14 recipe's model and hyperparameters (configs/iwslt14_de_en:
# transformer_iwslt_de_en shape, RAdam, lr 7e-4, dropout 0.3, wd 1e-4, 4096 tokens, fp16; warmup shortened
# to 1000 to see learning within seconds) on the bundled real corpus (.gpu/bin, see prepare_gpu_data.sh):
# Admin and stock Post-LN back to back for the same wall time, words/s ratio, then Admin's test BLEU.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; SECS=${SECS:-40}
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .wheels312/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1  # checkpoints load weights-only (the plugin allowlists fairseq's types)
hours=$(python3 -c "print($SECS/3600)")
common=(.gpu/bin --user-dir fairseq_admin --share-all-embeddings --optimizer radam --adam-betas "(0.9,0.98)"
  --clip-norm 0 --lr 7e-4 --lr-scheduler inverse_sqrt --warmup-updates 1000 --warmup-init-lr 1e-7
  --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --dropout 0.3 --attention-dropout 0.1
  --activation-dropout 0.1 --weight-decay 1e-4 --max-tokens 4096 --fp16 --seed 1111 --stop-time-hours "$hours"
  --disable-validation --no-epoch-checkpoints --log-format simple --log-interval 100 --num-workers 2)
python3 -m fairseq_cli.train "${common[@]}" --task translation_admin --arch admin_transformer_iwslt_de_en \
  --save-dir /tmp/admin > "$OUT/iwslt_admin.log" 2>&1
python3 -m fairseq_cli.train "${common[@]}" --task translation --arch transformer_iwslt_de_en \
  --save-dir /tmp/stock > "$OUT/iwslt_stock.log" 2>&1
python3 benchmarks/parse_logs.py admin="$OUT/iwslt_admin.log" stock="$OUT/iwslt_stock.log" | tee "$OUT/iwslt_summary.txt"
python3 -m fairseq_cli.generate .gpu/bin --user-dir fairseq_admin --path /tmp/admin/checkpoint_last.pt \
  --beam 5 --batch-size 256 --remove-bpe --fp16 > "$OUT/iwslt_admin_generate.txt" 2>&1
grep "BLEU4" "$OUT/iwslt_admin_generate.txt" | tee -a "$OUT/iwslt_summary.txt"
