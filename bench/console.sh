#!/usr/bin/env bash
# One command: the console's heaviest pages in headless Chromium. A cluster
# with 1,000 RUNNING tasks (simulated: written to the store by the model's own
# functions, no agents) and a family with 500 revisions (registered through the
# API): server time per page (the sum of its API calls' Server-Timing) and time
# until the page is usable, p50/p99, beside the same calls signed by boto3.
#   bench/console.sh        (TASKS=1000 REVISIONS=500 LOADS=30)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/browser-up >/dev/null
[ -x .venv/bin/python ] && .venv/bin/python -c "import boto3, playwright" 2>/dev/null || {
  python3 -m venv .venv && .venv/bin/pip install --quiet -r tests/requirements.txt; }
cargo build --quiet --release -p berth -p berth-bench
. bench/simulated_store.sh
scale \
  --instances 10 --services 1 --tasks "${TASKS:-1000}" --populate-only >/dev/null
.venv/bin/python bench/console.py ./target/release/berth "$work" "$KEY" "$SECRET" \
  "${REVISIONS:-500}" "${LOADS:-30}"
