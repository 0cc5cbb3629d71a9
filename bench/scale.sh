#!/usr/bin/env bash
# One command: control-plane memory and cold restart with 10,000 container
# instances, 5,000 services and 100,000 RUNNING tasks held (simulated: written
# to the store by the model's own functions, no agents). Prints a markdown table.
#   bench/scale.sh        (INSTANCES=10000 SERVICES=5000 TASKS=100000 SETTLE=20)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p berth -p berth-bench
. bench/simulated_store.sh
scale \
  --instances "${INSTANCES:-10000}" --services "${SERVICES:-5000}" --tasks "${TASKS:-100000}" \
  --settle "${SETTLE:-20}" > "$work/result.json"
du -sh "$work/data" >&2
python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['instances']} instances, {r['services']} services, {r['tasks']} tasks (store written in {r['populate_s']:.0f} s)\n")
print("| measure | berth | goal |")
print("| --- | ---: | ---: |")
print(f"| RSS after {r['settle_s']} s serving (MiB) | {r['rss_mib']:.0f} | < 300 |")
print(f"| first start: spawn → signed ListServices answers (s) | {r['first_start_serving_s']:.2f} | |")
print(f"| cold restart after kill -9: spawn → ListServices answers (s) | {r['cold_restart_serving_s']:.2f} | < 3 |")
print(f"| RSS after {r['settle_s']} s serving, after the restart (MiB) | {r['rss_after_restart_mib']:.0f} | < 300 |")
print(f"| server CPU during the first start and {r['settle_s']} s serving (s) | {r['server_cpu_s_during_settle']:.1f} | |")
PY
