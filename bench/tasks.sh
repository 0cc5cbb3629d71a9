#!/usr/bin/env bash
# One command: RunTask → RUNNING through berth (server + a separate agent
# process) against a bare Docker Engine API create+start of the same
# container, same host and image, one at a time and 50 at once; plus the
# agent's RSS idle and with 50 tasks. Prints a markdown table.
#   bench/tasks.sh            (ROUNDS=40 BURST=50 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/docker-up >/dev/null
cargo build --quiet --release -p berth -p berth-bench
IMAGE="${BERTH_TEST_IMAGE:-berth-test/busybox:latest}"
PORT=4613
KEY=AKIABENCHTASKS000000
SECRET=bench-tasks-secret

work="$(mktemp -d)"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  ids="$(docker ps -aq --filter label=berth.bench=bare)"
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  ids="$(docker ps -aq --filter "label=com.amazonaws.ecs.cluster=arn:aws:ecs:us-east-1:555555555555:cluster/default")"
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  [ -n "${KEEP_WORK:-}" ] && cp "$work/agent.err" /tmp/agent-bench.err; rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/config.toml" <<TOML
[[accounts]]
id = "555555555555"
keys = [{ access_key_id = "$KEY", secret_access_key = "$SECRET" }]
TOML
./target/release/berth server --listen "127.0.0.1:$PORT" --data-dir "$work/data" \
  --config "$work/config.toml" > "$work/server.out" 2> "$work/server.err" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# prefer-cached: both sides start from the image already on the host.
RUST_LOG=${AGENT_LOG:-warn} ./target/release/berth agent --server "http://127.0.0.1:$PORT" --cluster default \
  --data-dir "$work/agent" --access-key-id "$KEY" --secret-access-key "$SECRET" \
  --image-pull-behavior prefer-cached 2> "$work/agent.err" &
agent=$!
pids+=($agent)

./target/release/berth-bench-tasks --endpoint "http://127.0.0.1:$PORT" --access-key-id "$KEY" \
  --secret-access-key "$SECRET" --image "$IMAGE" --agent-pid "$agent" \
  --rounds "${ROUNDS:-40}" --burst "${BURST:-50}" > "$work/result.json"

python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| measure | berth | bare Docker | overhead (median of paired rounds) or ratio |")
print("| --- | ---: | ---: | ---: |")
print(f"| one task, median of {r['rounds']} (ms) | {r['one_berth_median_ms']:.1f} | {r['one_bare_median_ms']:.1f} | +{r['one_overhead_median_ms']:.1f} ms |")
print(f"| {r['burst']} tasks at once, until the last is RUNNING (ms) | {r['burst_berth_ms']:.0f} | {r['burst_bare_ms']:.0f} | {r['burst_ratio']:.2f}x |")
print(f"| agent RSS idle (MiB) | {r['agent_rss_idle_mib']:.1f} | | |")
print(f"| agent RSS with {r['burst']} tasks (MiB) | {r['agent_rss_busy_mib']:.1f} | | |")
PY
