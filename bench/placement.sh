#!/usr/bin/env bash
# One command: in-process placement throughput on one thread (issue 4).
#   bench/placement.sh        (INSTANCES=500,1000,5000,10000 TASKS=100000 SECONDS_PER_RUN=20)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p berth-bench
work="$(mktemp)"
trap 'rm -f "$work"' EXIT
./target/release/berth-bench-placement --instances "${INSTANCES:-500,1000,5000,10000}" \
  --tasks "${TASKS:-100000}" --seconds "${SECONDS_PER_RUN:-20}" > "$work"
python3 - "$work" <<'PY'
import json, sys
print("| instances | memberOf | path | placed | placements/s | instances used | lower bound | over bound |")
print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
for line in open(sys.argv[1]):
    r = json.loads(line)
    m = "yes" if r["member_of"] else "no"
    print(f"| {r['instances']} | {m} | {r['path']} | {r['placed']} | {r['placements_per_second']:.0f} | "
          f"{r['instances_used']} | {r['lower_bound']} | {r['over_lower_bound_pct']:.1f}% |")
PY
