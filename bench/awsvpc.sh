#!/usr/bin/env bash
# One command: RunTask → RUNNING for an awsvpc task against the same task in
# bridge mode (same agent, image and run, alternating, one at a time), then
# 50 bridge and 50 awsvpc tasks at once, the awsvpc ones checked for address
# and rule conflicts. A berth server and one agent on this host's Docker.
# Prints a markdown table.
#   sudo bench/awsvpc.sh            (ROUNDS=30 BURST=50 by default; root for namespaces)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/docker-up >/dev/null
cargo build --quiet --release -p berth -p berth-bench
IMAGE="${BERTH_TEST_IMAGE:-berth-test/busybox:latest}"
PORT=4615
KEY=AKIABENCHAWSVPC00000
SECRET=bench-awsvpc-secret
ACCOUNT=777777777777

work="$(mktemp -d)"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  ids="$(docker ps -aq --filter "label=com.amazonaws.ecs.cluster=arn:aws:ecs:us-east-1:$ACCOUNT:cluster/default")"
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  # The agent's started pause containers belong to its instance, not to a task.
  arn="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["container_instance_arn"])' "$work/agent/agent-state.json" 2>/dev/null || true)"
  if [ -n "$arn" ]; then
    ids="$(docker ps -aq --filter "label=berth.container-instance=$arn")"
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
  fi
  for ns in $(ip netns list | awk '{print $1}' | grep '^berth-' || true); do
    [ -e "$work/netns-before" ] && grep -qx "$ns" "$work/netns-before" || ip netns del "$ns" 2>/dev/null || true
  done
  [ -n "${KEEP_WORK:-}" ] && cp "$work/agent.err" /tmp/agent-awsvpc.err; rm -rf "$work"
}
trap cleanup EXIT
ip netns list | awk '{print $1}' > "$work/netns-before"
cat > "$work/config.toml" <<TOML
[[accounts]]
id = "$ACCOUNT"
keys = [{ access_key_id = "$KEY", secret_access_key = "$SECRET" }]
TOML
./target/release/berth server --listen "127.0.0.1:$PORT" --data-dir "$work/data" \
  --config "$work/config.toml" > "$work/server.out" 2> "$work/server.err" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
# prefer-cached: the image is on the host; both kinds start from it.
RUST_LOG=${AGENT_LOG:-warn} ./target/release/berth agent --server "http://127.0.0.1:$PORT" --cluster default \
  --data-dir "$work/agent" --access-key-id "$KEY" --secret-access-key "$SECRET" \
  --image-pull-behavior prefer-cached 2> "$work/agent.err" &
pids+=($!)

./target/release/berth-bench-awsvpc --endpoint "http://127.0.0.1:$PORT" --access-key-id "$KEY" \
  --secret-access-key "$SECRET" --image "$IMAGE" \
  --rounds "${ROUNDS:-30}" --burst "${BURST:-50}" > "$work/result.json"

python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| measure | value | goal |")
print("| --- | ---: | --- |")
print(f"| bridge task → RUNNING, median of {r['rounds']} (ms) | {r['bridge_median_ms']:.0f} | |")
print(f"| awsvpc task → RUNNING, median of {r['rounds']} (ms) | {r['awsvpc_median_ms']:.0f} | |")
print(f"| awsvpc added, median of paired rounds (ms) | {r['added_median_ms']:.0f} | < 30 |")
print(f"| {r['burst']} bridge tasks at once → all RUNNING (ms) | {r['bridge_burst_ms']:.0f} | |")
print(f"| {r['burst']} awsvpc tasks at once → all RUNNING (ms) | {r['burst_ms']:.0f} | |")
print(f"| … RUNNING / distinct addresses / ENIs listed / ENIs firewalled | {r['burst_running']} / {r['burst_distinct_addresses']} / {r['burst_enis_listed']} / {r['burst_enis_firewalled']} | all {r['burst']} |")
PY
