#!/usr/bin/env bash
# One command: task role credentials fetched from inside a container (median
# and p99, beside a plain GET from the same container), and the server CPU
# that policy evaluation adds to a call (a user with 10 attached policies of
# 20 statements against the account root). A release berth server on
# Docker's bridge gateway, one agent on this host's Docker. Prints a table.
#   sudo bench/task_roles.sh        (FETCHES=2000 CALLS=300 BLOCKS=101 by default: many short paired blocks, every other pair user first)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/docker-up >/dev/null
[ -x .venv/bin/python ] && .venv/bin/python -c "import boto3" 2>/dev/null || {
  python3 -m venv .venv && .venv/bin/pip install --quiet -r tests/requirements.txt; }
cargo build --quiet --release -p berth
IMAGE="${BERTH_SDK_IMAGE:-berth-test/boto3:latest}"
GATEWAY="$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')"
# A dockerd that found its bridge already made reports no gateway: the bridge's address is it.
[ -n "$GATEWAY" ] || GATEWAY="$(ip -4 -o addr show dev docker0 | awk '{print $4}' | cut -d/ -f1)"
PORT=4616
KEY=AKIABENCHROLES000000
SECRET=bench-roles-secret
ACCOUNT=777777777777
work="$(mktemp -d)"
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
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
# Connections do not poll after answering (POLL_US=0): the CPU measured is the calls' work,
# not the time a connection spins waiting for the client's next call.
./target/release/berth server --listen "$GATEWAY:$PORT" --data-dir "$work/data" \
  --config "$work/config.toml" --connection-poll-us "${POLL_US:-0}" > "$work/server.out" 2> "$work/server.err" &
server=$!
pids+=($server)
for _ in $(seq 100); do curl -sf "http://$GATEWAY:$PORT/healthz" >/dev/null && break; sleep 0.1; done
RUST_LOG=warn ./target/release/berth agent --server "http://$GATEWAY:$PORT" --cluster default \
  --data-dir "$work/agent" --access-key-id "$KEY" --secret-access-key "$SECRET" \
  --image-pull-behavior prefer-cached 2> "$work/agent.err" &
pids+=($!)
.venv/bin/python bench/task_roles.py "http://$GATEWAY:$PORT" "$KEY" "$SECRET" "$server" "$IMAGE" 2> "$work/raw.json"
cat "$work/raw.json" >&2
