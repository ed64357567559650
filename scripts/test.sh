#!/usr/bin/env bash
# Run the test suite (CPU; a few minutes on 2 cores). Sets up .venv first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
set -euo pipefail
exec python -m pytest -q tests "$@"
