#!/usr/bin/env bash
# Run the test suite (CPU; see the README for its duration), with the 30 slowest tests listed at the end.
# Sets up .venv first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
set -euo pipefail
# tests run in parallel, one worker per core (pytest-xdist; a file's tests stay on one worker, so its fixtures are
# built once); TEST_WORKERS=N sets the number, TEST_WORKERS=0 runs them in this process
exec python -m pytest -q --durations=30 -n "${TEST_WORKERS:-auto}" --dist loadfile tests "$@"
