#!/usr/bin/env bash
# One recipe variant from prepared data to BLEU: profile (Admin) -> train -> average the last epoch
# checkpoints -> generate -> score. Every step resumes or skips what is done.
# Usage: scripts/run_recipe.sh CONFIG VARIANT DATA_ROOT [--gpus N | --cpu] [--extra "fairseq-train args"]
#                              [--gen-extra "fairseq-generate args"]
#   DATA_ROOT/bin is the binarized data (scripts/prepare_recipe.sh); the run goes to DATA_ROOT/runs/VARIANT.
#   GPUs: all visible by default (fp16); the effective batch of the reference is kept (update-freq).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
config=${1:?usage: run_recipe.sh CONFIG VARIANT DATA_ROOT [--gpus N|--cpu] [--extra ARGS]}
variant=${2:?}; data=${3:?}; shift 3
device=() extra="" gen_extra=""
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
while [ $# -gt 0 ]; do
  case "$1" in
    --gpus) gpus=$2; shift 2 ;;
    --cpu) gpus=0; shift ;;
    --extra) extra=$2; shift 2 ;;
    --gen-extra) gen_extra=$2; shift 2 ;;
    *) echo "run_recipe.sh: error: unknown option $1 (use --gpus N, --cpu, --extra ARGS or --gen-extra ARGS)" >&2; exit 2 ;;
  esac
done
source "$ROOT/scripts/setup_env.sh"
set -euo pipefail
if [ "$gpus" = 0 ]; then device=(--cpu); else device=(--gpus "$gpus"); fi
run="$data/runs/$variant"; mkdir -p "$run"
log() { echo "$(date '+%F %T') | INFO | run_recipe | $*"; }
# one call gives every command and setting of this variant (configs/ hold them all)
eval "$(fairseq-admin recipe "$config" "$variant" --step env --data "$data/bin" --save-dir "$run" \
        "${device[@]}" --extra "$extra" 2>/dev/null)"

if [ "$admin" = true ] && [ ! -f "$run/admin_profile.json" ]; then
  log "profile: $profile_cmd"; eval "$profile_cmd"
fi
log "train: $train_cmd"; eval "$train_cmd"

avg="$run/checkpoint_avg_last$average_last.pt"
newest=$(ls -t "$run"/checkpoint[0-9]*.pt 2>/dev/null | head -1)
if [ ! -f "$avg" ] || [ "$newest" -nt "$avg" ]; then
  log "average the last $average_last epoch checkpoints -> $avg"
  fairseq-admin average "$run" --last "$average_last" --output "$avg"
fi

out="$run/generate-test.txt"
if [ ! -f "$out" ] || [ "$avg" -nt "$out" ]; then
  gen=(); [ "$gpus" = 0 ] && gen=(--cpu)
  cmd=$(fairseq-admin recipe "$config" --step generate --data "$data/bin" --checkpoint "$avg" "${gen[@]}" \
        --extra "$gen_extra" 2>/dev/null)
  log "generate: $cmd"; eval "$cmd" > "$out.tmp" && mv "$out.tmp" "$out"
fi

score=(--target-lang "$target_lang")
[ -f "$data/raw/test.$target_lang" ] && score+=(--raw-ref "$data/raw/test.$target_lang")
[ "$compound_split" = true ] && score+=(--compound-split)
[ "$lowercase" = true ] && score+=(--lowercase)
echo "== $variant ($(basename "$config" .json)); the paper's BLEU: $paper_bleu"
fairseq-admin score "$out" "${score[@]}" 2>/dev/null | tee "$run/scores.txt"
