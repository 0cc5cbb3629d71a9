#!/usr/bin/env bash
# One command: berth and moto (server mode) side by side, same machine, same
# load generator, same signed requests. Prints a markdown table, then this
# machine's one-client floors (loopback round trip, durable write), and
# those floors set against 50 times moto at one client.
#   bench/run.sh            (SECONDS_PER_RUN=5 by default)
#   WAIT=spin bench/run.sh  (the load generator polls its sockets instead of sleeping)
#   BERTH_FLAGS="--connection-poll-us 0" bench/run.sh  (extra flags for berth server)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${SECONDS_PER_RUN:-5}"
OPS="${OPS:-RegisterTaskDefinition DescribeTaskDefinition ListTaskDefinitions DescribeClusters}"
CLIENTS="${CLIENTS:-1 4 16}"
WAIT="${WAIT:-block}"
read -r -a berth_flags <<< "${BERTH_FLAGS:-}"
BERTH_PORT=4611
MOTO_PORT=4612

if [ ! -x .venv/bin/moto_server ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
cargo build --quiet --release -p berth -p berth-bench

work="$(mktemp -d)"
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT
cat > "$work/config.toml" <<TOML
[[accounts]]
id = "444444444444"
keys = [{ access_key_id = "AKIABENCH00000000000", secret_access_key = "bench-secret" }]
TOML
./target/release/berth server --listen "127.0.0.1:$BERTH_PORT" --data-dir "$work/data" \
  --config "$work/config.toml" ${berth_flags[@]+"${berth_flags[@]}"} > "$work/berth.out" 2> "$work/berth.err" &
pids+=($!)
.venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" > "$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  if curl -sf "http://127.0.0.1:$BERTH_PORT/healthz" >/dev/null && \
     curl -s -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/"; then break; fi
  sleep 0.1
done

results="$work/results.jsonl"
for op in $OPS; do
  for c in $CLIENTS; do
    for target in berth moto; do
      port=$BERTH_PORT; [ "$target" = moto ] && port=$MOTO_PORT
      ./target/release/berth-bench --endpoint "http://127.0.0.1:$port" --operation "$op" \
        --clients "$c" --seconds "$SECS" --wait "$WAIT" --label "$target" >> "$results"
    done
  done
done

.venv/bin/python - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {(r["operation"], r["clients"], r["target"]): r for r in rows}
print("| operation | clients | berth req/s | berth p50 ms | berth p99 ms | moto req/s | moto p50 ms | moto p99 ms | berth / moto |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for (op, c, t), r in by.items():
    if t != "berth":
        continue
    m = by[(op, c, "moto")]
    print(f"| {op} | {c} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
          f"{m['rps']:.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {r['rps'] / max(m['rps'], 1e-9):.1f}x |")
PY

# What one client can reach on this machine at best, whatever the server does.
echo
./target/release/berth-bench-floor --dir "$work/floor" --json "$work/floor.json"

# Those floors set against the goal: one client's best case here, in this run.
echo
.venv/bin/python - "$results" "$work/floor.json" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
floor = json.load(open(sys.argv[2]))
# A client that waits in the kernel meets a server that polls: one side wakes per round trip.
rtt = floor["round_trip_us"]["one_polls"]
sync = floor["durable_write_us"]["preallocated"][1]
moto = {r["operation"]: r["rps"] for r in rows if r["target"] == "moto" and r["clients"] == 1}
print("| one client | floor per request µs | most req/s here | 50x moto req/s |")
print("| --- | ---: | ---: | ---: |")
for op, us, what in [("RegisterTaskDefinition", rtt + sync, "round trip + durable write p50"),
                     ("DescribeTaskDefinition", rtt, "round trip"),
                     ("ListTaskDefinitions", rtt, "round trip"),
                     ("DescribeClusters", rtt, "round trip")]:
    if op in moto:
        print(f"| {op} ({what}) | {us:.0f} | {1e6 / us:.0f} | {50 * moto[op]:.0f} |")
PY
