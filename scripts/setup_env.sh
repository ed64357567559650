#!/usr/bin/env bash
# Create (once) the virtual environment .venv with torch, fairseq-fixed and fairseq-admin,
# in the order that works (fairseq-fixed compiles against an already installed torch).
# Source it: `source scripts/setup_env.sh`; it activates .venv. PYTHON picks the interpreter.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${FAIRSEQ_ADMIN_VENV:-$_root/.venv}"
_stamp="$_venv/.fairseq-admin-$(cksum < "$_root/scripts/setup_env.sh" | cut -d' ' -f1)"
if [ ! -f "$_stamp" ]; then
  echo "| setting up $_venv (torch, fairseq-fixed 0.12.3.1, fairseq-admin): a few minutes, once" >&2
  "${PYTHON:-python3}" -m venv "$_venv"
  "$_venv/bin/pip" install -q --upgrade pip
  # a pinned torch: an open range would pull a multi-GB CUDA build where a CPU wheel is wanted
  "$_venv/bin/pip" install -q "torch==${TORCH_VERSION:-2.13.0}"
  "$_venv/bin/pip" install -q numpy Cython
  # never with build isolation: fairseq's isolated build would download another (CUDA) torch
  "$_venv/bin/pip" install -q --no-build-isolation fairseq-fixed==0.12.3.1 sacrebleu sacremoses \
      subword-nmt matplotlib tensorboardX pytest
  "$_venv/bin/pip" install -q --no-build-isolation --no-deps -e "$_root"
  touch "$_stamp"
fi
# shellcheck disable=SC1091
source "$_venv/bin/activate"
set +euo pipefail
