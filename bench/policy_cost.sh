#!/usr/bin/env bash
# One command: what policy evaluation adds to a call, in instructions counted
# by callgrind (repeatable to the instruction, unlike CPU time on a shared VM):
# DescribeClusters by an IAM user with 10 attached policies of 20 statements
# against the same call by the account root, in one server, alternating blocks.
#   bench/policy_cost.sh        (CALLS=300 BLOCKS=3 by default; KEEP=DIR keeps the
#                                callgrind dumps there, for callgrind_annotate)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -q && apt-get install -y -q valgrind; }
[ -x .venv/bin/python ] && .venv/bin/python -c "import boto3" 2>/dev/null || {
  python3 -m venv .venv && .venv/bin/pip install --quiet -r tests/requirements.txt; }
cargo build --quiet --release -p berth
PORT=4618
KEY=AKIABENCHROLES000000
SECRET=bench-roles-secret
work="$(mktemp -d)"
server=
cleanup() {
  [ -z "${KEEP:-}" ] || cp "$work"/cg.* "$KEEP"/ 2>/dev/null || true
  [ -z "$server" ] || kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cat > "$work/config.toml" <<TOML
[[accounts]]
id = "777777777777"
keys = [{ access_key_id = "$KEY", secret_access_key = "$SECRET" }]
TOML
valgrind --tool=callgrind --callgrind-out-file="$work/cg" \
  ./target/release/berth server --listen "127.0.0.1:$PORT" --data-dir "$work/data" \
  --config "$work/config.toml" --connection-poll-us 0 > "$work/server.out" 2> "$work/server.err" &
server=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
.venv/bin/python bench/policy_cost.py "http://127.0.0.1:$PORT" "$KEY" "$SECRET" "$server" "$work/cg" \
  "${CALLS:-300}" "${BLOCKS:-3}"
