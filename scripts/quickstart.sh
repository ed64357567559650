#!/usr/bin/env bash
# The main job on the bundled real De-En sample (LibreOffice help, MPL-2.0): set up, prepare
# (Moses tokenize, lowercase, joint BPE 6k), binarize, profile + train a small Admin model for a fixed
# number of updates (800: about 9 minutes on 2 idle CPU cores), generate, score. On the CPU the result is
# the same on any machine (same seed, THREADS, pinned versions); a visible GPU trains in fp16 instead.
# Rerunning resumes: finished steps are skipped, training continues from checkpoint_last.pt, if that run was
# made from the same data, THREADS and device and is not past UPDATES (scripts/quickstart_resume.py).
# Environment: WORK (output folder, default work/quickstart), UPDATES (default 800), THREADS (CPU threads,
# default 2), MINUTES (train for this long instead of UPDATES: the result then depends on the machine's
# speed), LOG_INTERVAL (updates between progress lines, default 50), SAMPLE_LINES (use only the first N
# lines of each split: smoke runs).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
WORK="${WORK:-$ROOT/work/quickstart}"
UPDATES="${UPDATES:-800}"
THREADS="${THREADS:-2}"
LOG_INTERVAL="${LOG_INTERVAL:-50}"
# the settings first, in one line each, before anything is installed or written
whole() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "quickstart: error: $1=$2: give a whole number of at least 1" >&2; exit 2; }; }
whole UPDATES "$UPDATES"; whole THREADS "$THREADS"; whole LOG_INTERVAL "$LOG_INTERVAL"
if [ -n "${SAMPLE_LINES:-}" ]; then whole SAMPLE_LINES "$SAMPLE_LINES"; fi
if [ -n "${MINUTES:-}" ] && ! [[ "$MINUTES" =~ ^[0-9]*\.?[0-9]+$ && "$MINUTES" =~ [1-9] ]]; then
  echo "quickstart: error: MINUTES=$MINUTES: give a number of minutes above 0 (e.g. 10 or 2.5)" >&2; exit 2
fi
source scripts/setup_env.sh
set -euo pipefail
# one thread count everywhere: float sums split over threads differently round differently
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
#: the README's figure for the default configuration (UPDATES=800, THREADS=2, CPU, constraints.txt)
README_BLEU="${README_BLEU:-26.27}"
mkdir -p "$WORK"
log() { echo "$(date '+%F %T') | INFO | quickstart | $*"; }

src=data/de-en-libreoffice-sample
if [ -n "${SAMPLE_LINES:-}" ]; then  # smoke runs (the tests): the first N lines of each split
  mkdir -p "$WORK/sample"
  for f in "$src"/{train,valid,test}.{de,en}; do head -n "$SAMPLE_LINES" "$f" > "$WORK/sample/$(basename "$f")"; done
  src="$WORK/sample"
fi
log "1-2/5 prepare (tokenize, lowercase, BPE) and binarize $src -> $WORK/prep, $WORK/bin"
bash scripts/prepare_custom.sh "$src" "$WORK" de en 6000 --lowercase --max-ratio 9

device=(--cpu)
if python -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then device=(--fp16); fi
if [ -n "${MINUTES:-}" ]; then
  budget=(--max-epoch 20 --stop-time-hours "$(python -c "import sys; print(float(sys.argv[1]) / 60)" "$MINUTES")")
  log "3/5 profile + train Admin 3-3 (width 128) for ${MINUTES} min ${device[*]} (MINUTES: the result depends on this machine's speed)"
  total=100000
else
  budget=(--max-update "$UPDATES")
  log "3/5 profile + train Admin 3-3 (width 128) for $UPDATES updates ${device[*]}, $THREADS threads"
  total=$UPDATES
fi
# resume only a run made from the same data and settings, and not already past UPDATES
python scripts/quickstart_resume.py "$WORK/checkpoints" "$WORK/bin" "THREADS=$THREADS, ${device[*]}" \
  "$([ -n "${MINUTES:-}" ] && echo 0 || echo "$UPDATES")"
fairseq-train "$WORK/bin" --user-dir "$ROOT/fairseq_admin" --task translation_admin \
  --arch admin_transformer --encoder-layers 3 --decoder-layers 3 \
  --encoder-embed-dim 128 --decoder-embed-dim 128 --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512 \
  --encoder-attention-heads 4 --decoder-attention-heads 4 --share-all-embeddings \
  --optimizer adam --adam-betas '(0.9,0.98)' --lr 2e-3 --lr-scheduler inverse_sqrt --warmup-updates 300 \
  --warmup-init-lr 1e-7 --criterion label_smoothed_cross_entropy --label-smoothing 0.1 --dropout 0.1 \
  --max-tokens 4096 "${budget[@]}" \
  --save-dir "$WORK/checkpoints" --no-epoch-checkpoints --log-format simple --log-interval "$LOG_INTERVAL" \
  --seed 1 --num-workers 0 "${device[@]}" 2>&1 | grep --line-buffered -v -E "Warning|warn\(|deprecat|^\s*$|super\(\).__init__|_canonical_mask" \
  | python scripts/progress.py "$total"

log "4/5 generate the test split (beam 5) with checkpoint_best.pt"
# --required-batch-size-multiple 1: else fairseq 0.12 leaves out the last test sentences (fairseq issue 5036)
fairseq-generate "$WORK/bin" --user-dir "$ROOT/fairseq_admin" --path "$WORK/checkpoints/checkpoint_best.pt" \
  --beam 5 --batch-size 128 --required-batch-size-multiple 1 --max-len-a 1.2 --max-len-b 10 --remove-bpe \
  --num-workers 0 "${device[@]}" ${GEN_EXTRA:-} \
  > "$WORK/generate.out.tmp" 2> "$WORK/generate.log"
mv "$WORK/generate.out.tmp" "$WORK/generate.out"

log "5/5 score"
grep ^H- "$WORK/generate.out" | sort -t- -k2 -n | cut -f3 > "$WORK/hyp.txt"
scores=$(fairseq-admin score "$WORK/generate.out" --raw-ref "$src/test.en" --lowercase 2>/dev/null)
echo
echo "== Admin profile (omega per sublayer) =="
fairseq-admin show "$WORK/checkpoints/admin_profile.json" 2>/dev/null
echo
echo "== Result on the test split ($(wc -l < "$WORK/hyp.txt") segments) =="
echo "$scores"
if [ -z "${MINUTES:-}${SAMPLE_LINES:-}" ] && [ "$UPDATES" = 800 ] && [ "$THREADS" = 2 ] && [ "${device[0]}" = --cpu ]; then
  echo "README's figure for this configuration (800 updates, 2 threads, CPU, constraints.txt): tokenized BLEU $README_BLEU"
fi
echo
echo "checkpoints:  $WORK/checkpoints/checkpoint_best.pt (checkpoint_last.pt to resume)"
echo "profile:      $WORK/checkpoints/admin_profile.json (fairseq-admin show ... --plot omega.png)"
echo "translations: $WORK/generate.out (H- lines; plain text in $WORK/hyp.txt)"
