#!/usr/bin/env bash
# One command: GetSecretValue and GetParameter throughput against moto (same
# load generator, 1/4/16 clients), and the start time 10 secrets add to a task
# on a real agent (bench/secrets.py). Prints JSON.
#   sudo bench/secrets.sh          (TASKS=30 of each kind, SECONDS_PER_RUN=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/docker-up >/dev/null
[ -x .venv/bin/python ] && .venv/bin/python -c "import boto3" 2>/dev/null || {
  python3 -m venv .venv && .venv/bin/pip install --quiet -r tests/requirements.txt; }
[ -x .venv/bin/moto_server ] || .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
cargo build --quiet --release -p berth -p berth-bench
.venv/bin/python bench/secrets.py "$PWD/target/release/berth" "$PWD/target/release/berth-bench" "$PWD/.venv/bin/moto_server"
