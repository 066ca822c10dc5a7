#!/usr/bin/env bash
# Set up the environment (scripts/setup.sh) and run the whole test suite.
# GPU tests are skipped, with their reason, on machines without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export VSSAVSR_TEST_THREADS=${VSSAVSR_TEST_THREADS:-2}
exec .venv/bin/python -m pytest -rs "$@"
