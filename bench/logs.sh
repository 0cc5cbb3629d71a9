#!/usr/bin/env bash
# One command: log collection measured in one run (bench/logs.py): a container
# printing as fast as it can for 10 s under Docker's json-file (the baseline)
# and as a berth task with the console's awslogs block (lines/s reaching
# GetLogEvents, print-to-storage delay, agent RSS); server RSS over 10 million
# PutLogEvents events; PutLogEvents throughput against moto. Prints JSON.
#   sudo bench/logs.sh                      (MEMORY_EVENTS=10000000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/docker-up >/dev/null
[ -x .venv/bin/python ] && .venv/bin/python -c "import boto3" 2>/dev/null || {
  python3 -m venv .venv && .venv/bin/pip install --quiet -r tests/requirements.txt; }
[ -x .venv/bin/moto_server ] || .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
cargo build --quiet --release -p berth -p berth-bench
.venv/bin/python bench/logs.py "$PWD/target/release/berth" "$PWD/target/release/berth-bench" "$PWD/.venv/bin/moto_server"
