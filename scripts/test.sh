#!/usr/bin/env bash
# Run the test suite (CPU; see the README for its duration), with the 30 slowest tests listed at the end.
# Sets up .venv first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
set -euo pipefail
exec python -m pytest -q --durations=30 tests "$@"
