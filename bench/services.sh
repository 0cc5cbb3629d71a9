#!/usr/bin/env bash
# One command: a service scaling 0 → 100 RUNNING against 100 bare Docker
# create+start calls, a killed service container's replacement time, and the
# heal time after an agent's kill -9 (with --instance-timeout 3). A berth
# server and two agents (zones a and b) on this host's Docker. Prints a
# markdown table.
#   bench/services.sh            (SCALE=100 ROUNDS=10 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/docker-up >/dev/null
cargo build --quiet --release -p berth -p berth-bench
IMAGE="${BERTH_TEST_IMAGE:-berth-test/busybox:latest}"
PORT=4614
KEY=AKIABENCHSERVICES000
SECRET=bench-services-secret
ACCOUNT=666666666666

work="$(mktemp -d)"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  ids="$(docker ps -aq --filter label=berth.bench=bare)"
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  ids="$(docker ps -aq --filter "label=com.amazonaws.ecs.cluster=arn:aws:ecs:us-east-1:$ACCOUNT:cluster/default")"
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/config.toml" <<TOML
[[accounts]]
id = "$ACCOUNT"
keys = [{ access_key_id = "$KEY", secret_access_key = "$SECRET" }]
TOML
./target/release/berth server --listen "127.0.0.1:$PORT" --data-dir "$work/data" \
  --config "$work/config.toml" --instance-timeout 3 > "$work/server.out" 2> "$work/server.err" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
agent() {
  RUST_LOG=warn ./target/release/berth agent --server "http://127.0.0.1:$PORT" --cluster default \
    --data-dir "$work/$1" --access-key-id "$KEY" --secret-access-key "$SECRET" \
    --availability-zone "$2" --image-pull-behavior prefer-cached 2> "$work/$1.err" &
}
agent agent1 us-east-1a; pids+=($!)
agent agent2 us-east-1b; victim=$!; pids+=($victim)
for _ in $(seq 200); do [ -s "$work/agent2/agent-state.json" ] && break; sleep 0.1; done
victim_arn="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["container_instance_arn"])' "$work/agent2/agent-state.json")"

./target/release/berth-bench-services --endpoint "http://127.0.0.1:$PORT" --access-key-id "$KEY" \
  --secret-access-key "$SECRET" --image "$IMAGE" --victim-agent-pid "$victim" \
  --victim-instance-arn "$victim_arn" --scale "${SCALE:-100}" --rounds "${ROUNDS:-10}" > "$work/result.json"

python3 - "$work/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("| measure | berth | baseline | ratio / goal |")
print("| --- | ---: | ---: | ---: |")
print(f"| service 0 → {r['scale']} RUNNING vs {r['scale']} bare create+start (ms) | {r['scale_out_berth_ms']:.0f} | {r['scale_out_bare_ms']:.0f} | {r['scale_out_ratio']:.2f}x (goal ≤ 1.1x) |")
print(f"| killed container → replacement RUNNING, median of {r['rounds']} (ms) | {r['replacement_median_ms']:.0f} | | goal < 1000 |")
print(f"| killed container → replacement RUNNING, worst of {r['rounds']} (ms) | {r['replacement_max_ms']:.0f} | | |")
print("replacement rounds (ms): " + ", ".join(f"{x:.0f}" for x in r["replacement_all_ms"]), file=sys.stderr)
print(f"| agent kill -9 → its tasks RUNNING elsewhere, --instance-timeout 3 (ms) | {r['heal_ms']:.0f} | | goal < 5000 |")
PY
