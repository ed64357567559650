#!/usr/bin/env bash
# Words/s of Admin vs fairseq's stock Post-LN transformer, same settings, back to back, on the CPU.
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
fairseq-train "${common[@]}" --task translation --arch transformer > "$out/stock.log" 2>&1
fairseq-train "${common[@]}" --task translation_admin --arch admin_transformer --save-dir "$out" > "$out/admin.log" 2>&1
python benchmarks/parse_logs.py stock="$out/stock.log" admin="$out/admin.log" | tee "$out/summary.txt"
python - "$out" <<'PY'
import sys; sys.path.insert(0, "benchmarks")
from parse_logs import parse, steady_wps
d = sys.argv[1]
s, a = steady_wps(parse(f"{d}/stock.log")["wps"]), steady_wps(parse(f"{d}/admin.log")["wps"])
print(f"admin/stock words/s ratio: {a / s:.3f}  (stock {s:.0f}, admin {a:.0f})")
PY
