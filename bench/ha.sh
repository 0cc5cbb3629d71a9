#!/usr/bin/env bash
# One command: several servers on etcd against one server on its embedded
# store, same machine, same run, same load generator.
#   - DescribeClusters, RegisterTaskDefinition and RunTask (on simulated
#     agents) at 1/4/16 clients: embedded, etcd with one server, etcd with three;
#   - etcd's own Put rate at 1/4/16 clients (the floor under every write);
#   - leader failover: kill -9 of the leading server to a stopped service task
#     replaced by the next leader (FAILOVER_ROUNDS, 5 by default);
#   - AGENTS (5,000) simulated agents polling across three servers: how long
#     after a StartTask is acknowledged its agent's poll answers with it.
# Prints markdown tables.
#   sudo bench/ha.sh            (SECONDS_PER_RUN=3, CLIENTS="1 4 16")
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${SECONDS_PER_RUN:-3}"
CLIENTS="${CLIENTS:-1 4 16}"
OPS="${OPS:-DescribeClusters RegisterTaskDefinition RunTask}"
AGENTS="${AGENTS:-5000}"
ROUNDS="${FAILOVER_ROUNDS:-5}"
# Thousands of agents hold a poll open each: a descriptor per connection, on both sides.
ulimit -n "$(ulimit -Hn)"

command -v etcd >/dev/null && command -v etcdctl >/dev/null || ./scripts/docker-up >/dev/null
./scripts/build-deps >/dev/null
[ -x .venv/bin/python ] || python3 -m venv .venv
cargo build --quiet --release -p berth -p berth-bench
berth=./target/release/berth
ha=./target/release/berth-bench-ha

work="$(mktemp -d)"
pids=()
cleanup() { kill -9 "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
cat > "$work/config.toml" <<TOML
[[accounts]]
id = "444444444444"
keys = [{ access_key_id = "AKIABENCH00000000000", secret_access_key = "bench-secret" }]
TOML
results="$work/results.jsonl"
: > "$results"

etcd_clients="http://127.0.0.1:4631,http://127.0.0.1:4632,http://127.0.0.1:4633"
start_etcd() {
  local initial="m1=http://127.0.0.1:4641,m2=http://127.0.0.1:4642,m3=http://127.0.0.1:4643"
  for i in 1 2 3; do
    etcd --name "m$i" --data-dir "$work/etcd/m$i" \
      --listen-client-urls "http://127.0.0.1:463$i" --advertise-client-urls "http://127.0.0.1:463$i" \
      --listen-peer-urls "http://127.0.0.1:464$i" --initial-advertise-peer-urls "http://127.0.0.1:464$i" \
      --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token berth-bench \
      > "$work/etcd-m$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 300); do
    ETCDCTL_API=3 etcdctl --endpoints "$etcd_clients" endpoint health >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "etcd did not start" >&2; exit 1
}

# start_server N STORE-ARGS...: server N on port 462N; its pid in server_pid[N].
declare -A server_pid server_args
start_server() {
  local n=$1; shift
  server_args[$n]="$*"
  "$berth" server --listen "127.0.0.1:462$n" --data-dir "$work/server$n" --config "$work/config.toml" \
    "$@" > "$work/server$n.out" 2>> "$work/server$n.err" &
  server_pid[$n]=$!
  pids+=($!)
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:462$n/healthz" >/dev/null && return
    sleep 0.1
  done
  echo "server $n did not start:" >&2; grep -v '^ ' "$work/server$n.err" | tail -5 >&2; exit 1
}
stop_server() { kill "${server_pid[$1]}" 2>/dev/null || true; wait "${server_pid[$1]}" 2>/dev/null || true; }
on_etcd=(--store etcd --etcd-endpoints "$etcd_clients" --secrets-key-file "$work/secrets.key")

# run_ops LABEL ENDPOINTS: every operation at every client count, with simulated agents for RunTask.
run_ops() {
  local label=$1 endpoints=$2
  "$ha" --endpoints "$endpoints" agents --count 50 > "$work/agents-$label.out" 2>&1 &
  local agents=$!
  pids+=($agents)
  for _ in $(seq 600); do grep -q registered "$work/agents-$label.out" && break; sleep 0.1; done
  for op in $OPS; do
    for c in $CLIENTS; do
      ./target/release/berth-bench --endpoint "$endpoints" --operation "$op" --clients "$c" \
        --seconds "$SECS" --label "$label" >> "$results"
    done
  done
  kill "$agents"; wait "$agents" 2>/dev/null || true
}

echo "embedded store, one server" >&2
start_server 1
run_ops embedded "http://127.0.0.1:4621"
stop_server 1

echo "etcd, one server" >&2
start_etcd
start_server 1 "${on_etcd[@]}"
run_ops etcd-1 "http://127.0.0.1:4621"
stop_server 1
# etcd's own Put, with no server watching; then the three servers start from an empty keyspace, as the one did.
ETCDCTL_API=3 etcdctl --endpoints "$etcd_clients" del "" --from-key >/dev/null
echo "etcd's own Put" >&2
for c in $CLIENTS; do "$ha" --endpoints "$etcd_clients" etcd-put --clients "$c" --seconds "$SECS" >> "$results"; done
ETCDCTL_API=3 etcdctl --endpoints "$etcd_clients" del "" --from-key >/dev/null

echo "etcd, three servers" >&2
for n in 1 2 3; do start_server "$n" "${on_etcd[@]}"; done
three="http://127.0.0.1:4621,http://127.0.0.1:4622,http://127.0.0.1:4623"
run_ops etcd-3 "$three"

echo "leader failover" >&2
# A cluster of its own, so no host of the runs before (their agents gone) is lost during a round.
"$ha" --endpoints "$three" --cluster failover agents --count 20 > "$work/agents-failover.out" 2>&1 &
pids+=($!)
for _ in $(seq 600); do grep -q registered "$work/agents-failover.out" && break; sleep 0.1; done
for round in $(seq "$ROUNDS"); do
  leader=""
  for _ in $(seq 100); do
    leader=$(ETCDCTL_API=3 etcdctl --endpoints "$etcd_clients" get coordination/leader --print-value-only | sed 's|.*/||')
    [ -n "$leader" ] && break
    sleep 0.1
  done
  victim="" survivor=""
  for n in 1 2 3; do
    if [ "${server_pid[$n]}" = "$leader" ]; then victim=$n; elif [ -z "$survivor" ]; then survivor=$n; fi
  done
  [ -n "$victim" ] || { echo "the leader ($leader) is not one of the servers" >&2; exit 1; }
  "$ha" --endpoints "$three" --cluster failover failover --leader-pid "$leader" --survivor "http://127.0.0.1:462$survivor" \
    --desired 3 >> "$results"
  wait "${server_pid[$victim]}" 2>/dev/null || true
  read -r -a again <<< "${server_args[$victim]}"
  start_server "$victim" "${again[@]}"
  echo "  round $round: server $victim was the leader" >&2
  sleep 3
done

echo "$AGENTS simulated agents on three servers" >&2
"$ha" --endpoints "$three" --cluster notify notify --count "$AGENTS" >> "$results"

.venv/bin/python - "$results" "$SECS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
api = {(r["operation"], r["clients"], r["target"]): r for r in rows if "operation" in r}
put = {r["clients"]: r for r in rows if r.get("measure") == "etcd-put"}
print(f"API, {sys.argv[2]} s per run (req/s, p99 ms):\n")
print("| operation | clients | embedded | etcd, 1 server | etcd, 3 servers | etcd 1 / embedded | etcd 3 / embedded | etcd Put | etcd 1 / Put | etcd 3 / Put |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for (op, c, t), e in api.items():
    if t != "embedded":
        continue
    one, three = api.get((op, c, "etcd-1")), api.get((op, c, "etcd-3"))
    p = put.get(c)
    cell = lambda r: f"{r['rps']:.0f} / {r['p99_ms']:.2f}" if r else "-"
    ratio = lambda a, b: f"{a['rps'] / b['rps']:.2f}" if a and b and b["rps"] else "-"
    write = op != "DescribeClusters"
    print(f"| {op} | {c} | {cell(e)} | {cell(one)} | {cell(three)} | {ratio(one, e)} | {ratio(three, e)} | "
          f"{cell(p) if write else ''} | {ratio(one, p) if write else ''} | {ratio(three, p) if write else ''} |")
fail = [r["seconds"] for r in rows if r.get("measure") == "failover"]
if fail:
    print(f"\nLeader failover, kill -9 to the stopped service task replaced ({len(fail)} rounds): "
          + ", ".join(f"{s:.2f}" for s in fail)
          + f" s; median {statistics.median(fail):.2f} s, worst {max(fail):.2f} s")
for r in rows:
    if r.get("measure") == "notify":
        print(f"\n{r['agents']} agents polling across {r['servers']} servers (registered in {r['registered_s']:.1f} s); "
              f"{r['changes']} StartTasks, {r['missed']} not seen within 10 s. Poll answer after the StartTask was "
              f"acknowledged: p50 {r['after_ack_p50_ms']:.2f} ms, p99 {r['after_ack_p99_ms']:.2f} ms "
              f"(after it was sent: p50 {r['after_send_p50_ms']:.2f}, p99 {r['after_send_p99_ms']:.2f} ms)")
PY
