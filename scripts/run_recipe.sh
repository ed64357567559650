#!/usr/bin/env bash
# One recipe variant from prepared data to BLEU, for each seed: profile (Admin, once, with the first
# seed, shared by all seeds as the reference) -> train -> average the reference's epoch checkpoints ->
# generate -> score; then tokenized BLEU mean ± std over the seeds next to the paper's figure.
# Every step resumes or skips what is done; any failing step stops the script with its error shown.
# Usage: scripts/run_recipe.sh CONFIG VARIANT DATA_ROOT [--gpus N | --cpu] [--seeds "1111 2222"]
#          [--average-last N] [--extra "fairseq-train args"] [--gen-extra "fairseq-generate args"]
#   DATA_ROOT/bin is the binarized data (scripts/prepare_recipe.sh); runs go to DATA_ROOT/runs/VARIANT/seedS.
#   Device: all GPUs torch sees (fp16), with the reference's effective batch (update-freq); --cpu, or no
#   GPU on the machine, trains on the CPU. A GPU that torch cannot use is an error, never a silent CPU run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
usage="usage: run_recipe.sh CONFIG VARIANT DATA_ROOT [--gpus N|--cpu] [--seeds \"S ...\"] [--average-last N] [--extra ARGS] [--gen-extra ARGS]"
die() { echo "run_recipe.sh: error: $*" >&2; exit 2; }
[ $# -ge 3 ] || die "$usage"
config=$1 variant=$2 data=$3; shift 3
want_gpus="" cpu=false extra="" gen_extra="" seeds_opt="" average_opt=""
while [ $# -gt 0 ]; do
  case "$1" in
    --gpus) [ $# -ge 2 ] || die "--gpus needs a number"; want_gpus=$2; shift 2 ;;
    --cpu) cpu=true; shift ;;
    --seeds) [ $# -ge 2 ] || die "--seeds needs a list"; seeds_opt=$2; shift 2 ;;
    --average-last) [ $# -ge 2 ] || die "--average-last needs a number"; average_opt=$2; shift 2 ;;
    --extra) [ $# -ge 2 ] || die "--extra needs arguments"; extra=$2; shift 2 ;;
    --gen-extra) [ $# -ge 2 ] || die "--gen-extra needs arguments"; gen_extra=$2; shift 2 ;;
    *) die "unknown option $1 ($usage)" ;;
  esac
done
whole() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 $2: give a whole number of at least 1"; }
[ -z "$want_gpus" ] || whole --gpus "$want_gpus"
[ -z "$average_opt" ] || whole --average-last "$average_opt"
for s in $seeds_opt; do [[ "$s" =~ ^[0-9]+$ ]] || die "--seeds \"$seeds_opt\": give whole numbers separated by spaces"; done
source "$ROOT/scripts/setup_env.sh"
set -euo pipefail
log() { echo "$(date '+%F %T') | INFO | run_recipe | $*"; }
# an output is reused only if the settings that made it are the same: FILE.settings holds them
same_settings() { [ -f "$1" ] && [ -f "$1.settings" ] && [ "$(cat "$1.settings")" = "$2" ]; }
record_settings() { printf '%s\n' "$2" > "$1.settings.tmp" && mv -f "$1.settings.tmp" "$1.settings"; }

# the device, decided with the environment's own torch
if [ "$cpu" = true ]; then
  gpus=0; log "device: CPU (--cpu)"
else
  cuda=$(python -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
  visible=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU ' || true)
  if [ -n "$want_gpus" ] && [ "$want_gpus" -gt "$cuda" ]; then
    die "--gpus $want_gpus asked, but torch $(python -c 'import torch; print(torch.__version__)') sees $cuda usable CUDA GPU(s): install a CUDA build of torch (see README), or pass --cpu"
  fi
  if [ "$cuda" = 0 ] && [ "$visible" -gt 0 ]; then
    die "the machine has $visible NVIDIA GPU(s) but torch $(python -c 'import torch; print(torch.__version__)') cannot use them: install a CUDA build of torch (see README), or pass --cpu to train on the CPU"
  fi
  gpus=${want_gpus:-$cuda}
  if [ "$gpus" = 0 ]; then log "device: CPU (no GPU on this machine)"; else log "device: $gpus CUDA GPU(s), fp16"; fi
fi
device=(--cpu); [ "$gpus" = 0 ] || device=(--gpus "$gpus")
ls "$data"/bin/dict.*.txt >/dev/null 2>&1 \
  || die "no binarized data in $data/bin: prepare it first (bash scripts/prepare_recipe.sh $config $data)"

run="$data/runs/$variant"; mkdir -p "$run"
profile="$run/admin_profile.json"
# one call gives every command and setting of this variant (configs/ hold them all)
recipe_env() {
  fairseq-admin recipe "$config" "$variant" --step env --data "$data/bin" --save-dir "$1" --seed "$2" \
    --profile "$profile" "${device[@]}" --extra "$extra"
}
env_text=$(recipe_env "$run/seed0" 0)
eval "$env_text"
all_seeds=${seeds_opt:-$seeds}
n_average=${average_opt:-$average_last}

# the binarized data's identity: binarize.sh's stamp (a hash of its inputs and settings), else a hash of
# the dictionaries and index files. A seed's checkpoints continue only on the data they were trained on;
# the Admin profile is redone when the data or its command (the seed and the seed's folder aside) change
if [ -f "$data/bin/.done" ]; then data_stamp="data: $(cat "$data/bin/.done")"
else data_stamp="data: $(cat "$data"/bin/dict.*.txt "$data"/bin/*.idx 2>/dev/null | sha256sum | cut -d' ' -f1)"; fi
for seed in $all_seeds; do
  dir="$run/seed$seed"
  if [ -f "$dir/checkpoint_last.pt" ] && [ -f "$dir/data.stamp" ] && [ "$(cat "$dir/data.stamp")" != "$data_stamp" ]; then
    die "$dir was trained on other binarized data than $data/bin holds now: delete $dir to train it again, or prepare the new data into another DATA_ROOT"
  fi
done
if [ "$admin" = true ]; then
  read -r first _ <<< "$all_seeds"
  eval "$(recipe_env "$run/seed$first" "$first")"
  profile_settings="$data_stamp
$(printf '%s' "$profile_cmd" | sed -e "s# --seed $first # #" -e "s#$run/seed$first#SEED_DIR#g")"
  if [ -f "$profile" ] && [ ! -f "$profile.settings" ]; then
    record_settings "$profile" "$profile_settings"  # made before profiles were stamped: kept, as before
  fi
  if ! same_settings "$profile" "$profile_settings"; then
    mkdir -p "$run/seed$first"
    log "profile (once, seed of the recipe, shared by every seed): $profile_cmd"
    eval "$profile_cmd"
    record_settings "$profile" "$profile_settings"
  fi
fi
outs=()
for seed in $all_seeds; do
  dir="$run/seed$seed"; mkdir -p "$dir"
  env_text=$(recipe_env "$dir" "$seed")
  eval "$env_text"
  printf '%s\n' "$data_stamp" > "$dir/data.stamp.tmp" && mv -f "$dir/data.stamp.tmp" "$dir/data.stamp"
  # a finished training is not run again: fairseq-train on a run already at --max-update trains one more
  # update and rewrites checkpoint_last.pt. Its settings are recorded when fairseq-train ends, and dropped
  # when it starts, so that a run stopped half-way with other settings is never taken for a finished one
  train_settings="$data_stamp
$train_cmd"
  if same_settings "$dir/checkpoint_last.pt" "$train_settings"; then
    log "train seed $seed: finished earlier with these settings, skipped"
  else
    rm -f "$dir/checkpoint_last.pt.settings"
    log "train seed $seed: $train_cmd"
    eval "$train_cmd"
    record_settings "$dir/checkpoint_last.pt" "$train_settings"
  fi

  avg="$dir/checkpoint_avg.pt"
  newest=$(ls -t "$dir"/checkpoint[0-9]*.pt 2>/dev/null | head -1 || true)
  upper=(); [ -n "$average_upper" ] && upper=(--upper-epoch "$average_upper")
  average=(fairseq-admin average "$dir" --last "$n_average" "${upper[@]}" --output "$avg")
  if ! same_settings "$avg" "${average[*]}" || [ "$newest" -nt "$avg" ]; then
    log "average the last $n_average epoch checkpoints${average_upper:+ up to epoch $average_upper} -> $avg"
    "${average[@]}"
    record_settings "$avg" "${average[*]}"
  fi

  out="$dir/generate-test.txt"
  gen=(); [ "$gpus" = 0 ] && gen=(--cpu)
  cmd=$(fairseq-admin recipe "$config" --step generate --data "$data/bin" --checkpoint "$avg" "${gen[@]}" \
        --extra "$gen_extra")
  # redone when its command (beam, lengths, --gen-extra), the averaged model or the binarized data changed
  if ! same_settings "$out" "$cmd" || [ "$avg" -nt "$out" ] || [ "$data/bin" -nt "$out" ]; then
    log "generate: $cmd"
    eval "$cmd" > "$out.tmp"
    mv "$out.tmp" "$out"
    record_settings "$out" "$cmd"
  fi
  outs+=("$out")
done

score=(--target-lang "$target_lang")
[ "$paper_bleu" != - ] && score+=(--paper "$paper_bleu")
[ -f "$data/raw/test.$target_lang" ] && score+=(--raw-ref "$data/raw/test.$target_lang")
[ "$compound_split" = true ] && score+=(--compound-split)
[ "$lowercase" = true ] && score+=(--lowercase)
echo "== $variant ($(basename "$config")), seeds: $all_seeds"
fairseq-admin score "${outs[@]}" "${score[@]}" > "$run/scores.txt.tmp"
mv "$run/scores.txt.tmp" "$run/scores.txt"
cat "$run/scores.txt"
