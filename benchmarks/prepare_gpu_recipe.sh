#!/usr/bin/env bash
# Data for the GPU acceptance run (benchmarks/gpu_recipe.sh), made on the CPU: the bundled De-En sample
# (data/de-en-libreoffice-sample) packed as IWSLT14's de-en.tgz (train.tags.de-en.{de,en} from its train
# split; its test split spread over the five TED .xml test sets in one <seg> per line), then prepared by the
# IWSLT14 recipe's own preparation, offline (scripts/prepare_iwslt14.sh: Moses tokenizer, lowercase, clean
# 1-175, valid = every 23rd training line, joint BPE 10k, binarized) into DATA_ROOT (default .gpu/iwslt).
# Carry DATA_ROOT/bin and DATA_ROOT/raw to the GPU machine. Redone only when the sample changes. Where
# .wheels312 exists (../shared/tools/gpu-wheels.sh, run first), sacremoses' wheels are added to it.
# Usage: bash benchmarks/prepare_gpu_recipe.sh [DATA_ROOT]; LINES=N takes only the first N lines of each
# split (the CPU check of gpu_recipe.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-.gpu/iwslt}
source scripts/setup_env.sh
set -euo pipefail
mkdir -p "$data/archives"
python - "$data/archives/de-en.tgz" "${LINES:-0}" <<'PY'
import hashlib, io, os, sys, tarfile
dest, limit = sys.argv[1], int(sys.argv[2]) or None
sample = "data/de-en-libreoffice-sample"
def lines(split, lang):
    with open(os.path.join(sample, f"{split}.{lang}"), encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f][:limit]
members = {}
for lang in ("de", "en"):
    members[f"de-en/train.tags.de-en.{lang}"] = "".join(l + "\n" for l in lines("train", lang))
    test = lines("test", lang)
    names = ["IWSLT14.TED.dev2010", "IWSLT14.TEDX.dev2012", "IWSLT14.TED.tst2010", "IWSLT14.TED.tst2011",
             "IWSLT14.TED.tst2012"]  # the order in which the preparation concatenates them
    step = -(-len(test) // len(names))
    for i, name in enumerate(names):
        segs = "".join(f'<seg id="{j + 1}"> {l} </seg>\n' for j, l in enumerate(test[i * step:(i + 1) * step]))
        members[f"de-en/{name}.de-en.{lang}.xml"] = f'<mteval>\n<doc docid="{i}">\n{segs}</doc>\n</mteval>\n'
digest = hashlib.sha256("".join(members[k] for k in sorted(members)).encode()).hexdigest()
stamp = dest + ".content"
if os.path.exists(dest) and os.path.exists(stamp) and open(stamp).read().strip() == digest:
    sys.exit(0)
tmp = dest + ".tmp"
with tarfile.open(tmp, "w:gz") as tar:
    for name in sorted(members):
        blob = members[name].encode("utf-8")
        info = tarfile.TarInfo(name); info.size = len(blob); info.mtime = 0
        tar.addfile(info, io.BytesIO(blob))
os.replace(tmp, dest)
import shutil
if os.path.exists(dest + ".sha256"):  # a new archive: its checksum is recorded afresh
    os.remove(dest + ".sha256")
root = os.path.dirname(os.path.dirname(dest))
for derived in ("raw", "prep", "bin"):  # made from the old archive: never reused for the new one
    shutil.rmtree(os.path.join(root, derived), ignore_errors=True)
with open(stamp + ".tmp", "w") as f: f.write(digest + "\n")
os.replace(stamp + ".tmp", stamp)
print(f"| wrote {dest} from {sample}")
PY
bash scripts/prepare_iwslt14.sh "$data"
if [ -d .wheels312 ]; then  # scoring detokenizes with sacremoses, which the GPU image may lack (pure Python)
  pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .wheels312 \
    sacremoses==0.2.0 click joblib tqdm
fi
grep -qxF "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
echo "| $data: bin $(du -sh "$data/bin" | cut -f1), test sentences $(wc -l < "$data/raw/test.en")"
