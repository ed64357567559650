#!/usr/bin/env bash
# Words/s of Admin vs the Post-LN transformer of the same initialisation, same settings and batches,
# back to back, on the CPU; the ratio is over the update intervals both runs logged (start-up left out).
# Usage: bash benchmarks/throughput_cpu.sh DATA_BIN [UPDATES]   (e.g. work/quickstart/bin after the quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
set -euo pipefail
data=${1:?usage: throughput_cpu.sh DATA_BIN [UPDATES]}; updates=${2:-150}
out=$(mktemp -d)
common=("$data" --user-dir fairseq_admin --encoder-layers 3 --decoder-layers 3 --encoder-embed-dim 128
  --decoder-embed-dim 128 --encoder-ffn-embed-dim 512 --decoder-ffn-embed-dim 512 --encoder-attention-heads 4
  --decoder-attention-heads 4 --share-all-embeddings --optimizer adam --lr 1e-3 --max-tokens 4096
  --max-update "$updates" --disable-validation --no-save --cpu --seed 1 --log-format simple
  --log-interval "$(( updates < 50 ? 2 : 25 ))"
  --num-workers 0)
fairseq-train "${common[@]}" --task translation --arch refinit_transformer > "$out/stock.log" 2>&1
fairseq-train "${common[@]}" --task translation_admin --arch admin_transformer --save-dir "$out" > "$out/admin.log" 2>&1
python benchmarks/parse_logs.py stock="$out/stock.log" admin="$out/admin.log" | tee "$out/summary.txt"
python - "$out" <<'PY'
import re, sys
d = sys.argv[1]
def intervals(path):
    """{num_updates: (wps, wpb)} of the train_inner lines, and whether the run finished."""
    text = open(path).read()
    rows = {int(u): (float(w), float(b)) for w, b, u in
            re.findall(r"train_inner .*?wps=([\d.]+), ups=[\d.]+, wpb=([\d.]+), .*?num_updates=(\d+)", text)}
    return rows, "done training" in text
(s, s_done), (a, a_done) = intervals(f"{d}/stock.log"), intervals(f"{d}/admin.log")
common = sorted(set(s) & set(a))[1:]  # the same update intervals in both runs, the first (start-up) left out
if not (s_done and a_done and common):
    sys.exit(f"throughput: error: runs unfinished or without common intervals (logs in {d})")
same_batches = all(s[u][1] == a[u][1] for u in common)
ws, wa = sum(s[u][0] for u in common) / len(common), sum(a[u][0] for u in common) / len(common)
print(f"compared intervals: updates {common[0]}..{common[-1]} ({len(common)} intervals in each run); "
      f"identical batches: {'yes' if same_batches else 'NO'}")
print(f"admin/stock words/s ratio: {wa / ws:.3f}  (stock {ws:.0f}, admin {wa:.0f})")
PY
