#!/usr/bin/env bash
# Create (once) the virtual environment .venv with torch, fairseq and fairseq-admin, in the order that
# works (fairseq-fixed compiles against an already installed torch), then activate it.
# Source it: `source scripts/setup_env.sh`. Settings (environment variables):
#   PYTHON                 the interpreter (default python3; 3.10-3.13)
#   FAIRSEQ_ADMIN_TORCH    cpu | cuda | a pip requirement (default: cuda when nvidia-smi lists a GPU, else cpu)
#   FAIRSEQ_ADMIN_VENV     the environment's folder (default .venv); one that already imports fairseq
#                          (upstream 0.12 or a source checkout) keeps it: fairseq-fixed only goes where
#                          there is no fairseq
#   FAIRSEQ_ADMIN_CONSTRAINTS  the pip constraints file (default constraints.txt: every version pinned, Python
#                          >= 3.11); none: no constraints (the newest versions pip finds)
#   FAIRSEQ_ADMIN_SETUP    none: make no environment, use the python and commands on PATH as they are (a
#                          machine without network where fairseq, fairseq-admin and their CLIs are installed
#                          by hand); checked, one line if something is missing
# Decisions are made by scripts/setup_choice.py; a missing prerequisite stops here with one line.
set -euo pipefail
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${FAIRSEQ_ADMIN_SETUP:-}" = none ]; then
  _missing=$(python -c 'import fairseq, fairseq_admin, sacrebleu' 2>&1 | tail -1) \
    || { echo "setup: error: FAIRSEQ_ADMIN_SETUP=none, but 'python' on PATH cannot import what is needed (${_missing:-no python on PATH}): install fairseq-fixed, sacrebleu and fairseq-admin into it, or unset FAIRSEQ_ADMIN_SETUP" >&2; set +euo pipefail; return 1 2>/dev/null || exit 1; }
  for _cmd in fairseq-train fairseq-generate fairseq-preprocess fairseq-admin; do
    command -v "$_cmd" > /dev/null || { echo "setup: error: FAIRSEQ_ADMIN_SETUP=none, but no $_cmd on PATH: install the packages with pip (which makes the commands), or unset FAIRSEQ_ADMIN_SETUP" >&2; set +euo pipefail; return 1 2>/dev/null || exit 1; }
  done
  set +euo pipefail
  return 0 2>/dev/null || exit 0
fi
_venv="${FAIRSEQ_ADMIN_VENV:-$_root/.venv}"
_py="${PYTHON:-python3}"
_cons="${FAIRSEQ_ADMIN_CONSTRAINTS:-$_root/constraints.txt}"
_stamp="$_venv/.fairseq-admin-$(cksum < "$_root/scripts/setup_env.sh" | cut -d' ' -f1)-$(cksum < "$_root/setup.py" | cut -d' ' -f1)-$( [ -f "$_cons" ] && cksum < "$_cons" | cut -d' ' -f1 || echo none)"  # redone when any changes
if [ ! -f "$_stamp" ]; then
  if ! command -v "$_py" > /dev/null; then
    echo "setup: error: no $_py on PATH: install Python 3.10-3.13 (or set PYTHON=/path/to/python3)" >&2; set +euo pipefail; return 1 2>/dev/null || exit 1
  fi
  "$_py" "$_root/scripts/setup_choice.py" python || { set +euo pipefail; return 1 2>/dev/null || exit 1; }
  _fairseq=install
  [ -x "$_venv/bin/python" ] && _fairseq=$("$_py" "$_root/scripts/setup_choice.py" fairseq "$_venv/bin/python")
  if [ "$_fairseq" = install ]; then "$_py" "$_root/scripts/setup_choice.py" prerequisites || { set +euo pipefail; return 1 2>/dev/null || exit 1; }; fi
  _c=()
  if [ "$_cons" != none ]; then
    if [ ! -f "$_cons" ]; then
      echo "setup: error: no constraints file $_cons: give an existing file, or FAIRSEQ_ADMIN_CONSTRAINTS=none" >&2; set +euo pipefail; return 1 2>/dev/null || exit 1
    fi
    if "$_py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      _c=(-c "$_cons")
    else
      echo "| Python 3.10: the pinned versions (constraints.txt) need Python >= 3.11; installing without them" >&2
    fi
  fi
  echo "| setting up $_venv (torch, fairseq, fairseq-admin): a few minutes, once; versions: ${_c[1]:-not pinned}" >&2
  if [ ! -x "$_venv/bin/python" ]; then
    "$_py" -m venv "$_venv" || { echo "setup: error: '$_py -m venv' failed: install the venv module (Debian/Ubuntu: sudo apt install python3-venv) and rerun" >&2; set +euo pipefail; return 1 2>/dev/null || exit 1; }
  fi
  "$_venv/bin/pip" install -q "${_c[@]}" --upgrade pip
  # Python >= 3.12 venvs have no setuptools, which the no-build-isolation installs below need
  "$_venv/bin/pip" install -q "${_c[@]}" setuptools wheel
  IFS=$'\t' read -r _torch_label _torch_args < <("$_py" "$_root/scripts/setup_choice.py" torch)
  echo "| torch: $_torch_label; set FAIRSEQ_ADMIN_TORCH=cpu|cuda|'<pip requirement>' to choose" >&2
  # shellcheck disable=SC2086  # pip arguments, split on purpose
  "$_venv/bin/pip" install -q "${_c[@]}" $_torch_args
  "$_venv/bin/pip" install -q "${_c[@]}" numpy Cython
  if [ "$_fairseq" = install ]; then
    # never with build isolation: fairseq's isolated build would download another (CUDA) torch
    "$_venv/bin/pip" install -q "${_c[@]}" --no-build-isolation fairseq-fixed==0.12.3.1
  else
    echo "| fairseq: keeping the installed fairseq ${_fairseq#keep }" >&2
  fi
  "$_venv/bin/pip" install -q "${_c[@]}" sacrebleu sacremoses subword-nmt matplotlib tensorboardX pytest pytest-xdist
  "$_venv/bin/pip" install -q --no-build-isolation --no-deps -e "$_root"
  [ -z "${_c[*]}" ] || cp "$_cons" "$_venv/.fairseq-admin-constraints.txt"  # what this environment was pinned to
  touch "$_stamp"
fi
# shellcheck disable=SC1091
source "$_venv/bin/activate"
set +euo pipefail
