"""Log collection, measured side by side in one run:

1. A container printing numbered lines as fast as it can for 10 s, run by
   plain Docker with its json-file driver and read back with `docker logs`
   (the baseline rate), then run by berth as a task with the console's
   awslogs block: the lines per second that reach GetLogEvents, the delay
   from print (Docker's timestamp) to storage (ingestionTime), and the
   agent's RSS while it ships.
2. The server's RSS while 10 million events arrive through PutLogEvents.
3. PutLogEvents throughput, berth against moto, with the same load generator.

  python3 bench/logs.py BERTH_BIN BENCH_BIN MOTO_SERVER
Prints JSON.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config

BERTH, BENCH, MOTO = sys.argv[1], sys.argv[2], sys.argv[3]
ACCOUNT, KEY, SECRET, REGION = "444444444444", "AKIABENCH00000000000", "bench-secret", "us-east-1"
IMAGE = "berth-test/busybox:latest"
PRINT_SECONDS = 10
# As fast as it can: busybox seq into Docker's pipe, stopped after PRINT_SECONDS
# (sh stays PID 1, so timeout's kill reaches seq).
PRINTER = f"timeout -s KILL {PRINT_SECONDS} seq 1 1000000000; sleep 3600"
BASELINE = f"timeout -s KILL {PRINT_SECONDS} seq 1 1000000000; true"
MEMORY_EVENTS = int(os.environ.get("MEMORY_EVENTS", "10000000"))
work = Path(tempfile.mkdtemp(prefix="berth-bench-logs-"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=600).stdout


def rss_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


class Sampler(threading.Thread):
    """A process's RSS every 100 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [], threading.Event()

    def run(self):
        while not self.done.wait(0.1):
            self.samples.append((time.monotonic(), rss_kib(self.pid)))


def cpu_s(pid):
    """User and system CPU seconds a process has used."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(what, fn, timeout, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def baseline():
    """Docker's json-file driver alone: lines written in PRINT_SECONDS, read back with docker logs."""
    cid = docker("run", "-d", "--log-driver", "json-file", IMAGE, "sh", "-c", BASELINE).strip()
    try:
        docker("wait", cid)
        p = subprocess.Popen(["docker", "logs", cid], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: p.stdout.read(1 << 20), b""))
        p.wait()
        state = json.loads(docker("inspect", "-f", "{{json .State}}", cid))
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
    return {"lines": lines, "lines_per_s": lines / PRINT_SECONDS, "exit": state["ExitCode"]}


def start_server(data, port, cfg):
    err = open(work / f"server-{port}.log", "ab")
    p = subprocess.Popen([BERTH, "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
                          "--config", str(cfg)], stdout=subprocess.PIPE, stderr=err)
    wait_for("the server", lambda: b"listening on" in p.stdout.readline(), timeout=20, interval=0)
    return p


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEY,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 2}, read_timeout=120))


def all_events(endpoint, group, stream):
    """(timestamp, ingestionTime) of every event, read with signed GetLogEvents calls
    parsed by json (boto3's shape walk is slower than the server for millions)."""
    import urllib.request
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    signer = SigV4Auth(Credentials(KEY, SECRET), "logs", REGION)
    out, token = [], None
    for _ in range(100_000):
        body = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            body["nextToken"] = token
        req = AWSRequest("POST", endpoint + "/", data=json.dumps(body).encode(), headers={
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Logs_20140328.GetLogEvents"})
        signer.add_auth(req)
        prepared = urllib.request.Request(endpoint + "/", data=req.body, headers=dict(req.headers), method="POST")
        page = json.load(urllib.request.urlopen(prepared, timeout=120))
        out += [(e["timestamp"], e["ingestionTime"]) for e in page["events"]]
        if page["nextForwardToken"] == token:
            return out
        token = page["nextForwardToken"]
    raise RuntimeError("the stream never ended")


def shipping(endpoint, server_pid):
    """The same printer as a berth task with the console's awslogs block."""
    agent_dir = work / "agent"
    agent = subprocess.Popen([BERTH, "agent", "--server", endpoint, "--cluster", "default", "--data-dir",
                              str(agent_dir), "--access-key-id", KEY, "--secret-access-key", SECRET,
                              "--region", REGION, "--image-pull-behavior", "prefer-cached"], stdout=subprocess.DEVNULL,
                             stderr=open(work / "agent.log", "ab"))
    ecs, logs = client("ecs", endpoint), client("logs", endpoint)
    try:
        wait_for("the agent", lambda: ecs.list_container_instances()["containerInstanceArns"], timeout=30)
        ecs.register_task_definition(family="printer", containerDefinitions=[{
            "name": "app", "image": IMAGE, "memory": 256, "command": ["sh", "-c", PRINTER],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ecs/printer", "awslogs-region": REGION,
                "awslogs-stream-prefix": "ecs", "awslogs-create-group": "true"}}}])
        idle_kib = rss_kib(agent.pid)
        sampler = Sampler(agent.pid)
        sampler.start()
        cpu0 = (cpu_s(agent.pid), cpu_s(server_pid))
        arn = ecs.run_task(taskDefinition="printer")["tasks"][0]["taskArn"]
        stream = f"ecs/app/{arn.rsplit('/', 1)[1]}"
        name = f"berth-{arn.rsplit('/', 1)[1]}-app"
        wait_for("the printer to start", lambda: ecs.describe_tasks(tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
                 timeout=60)
        # Printing ends after PRINT_SECONDS; then shipping catches up.
        time.sleep(PRINT_SECONDS)
        log_path = docker("inspect", "-f", "{{.LogPath}}", name).strip()
        written = sum(1 for _ in open(log_path, "rb"))
        stored = lambda: logs.describe_log_streams(logGroupName="/ecs/printer")["logStreams"]
        wait_for("every line to arrive",
                 lambda: (s := stored()) and s[0].get("lastIngestionTime") and
                 time.time() * 1000 - s[0]["lastIngestionTime"] > 2000, timeout=600, interval=0.5)
        sampler.done.set()
        cpu = (cpu_s(agent.pid) - cpu0[0], cpu_s(server_pid) - cpu0[1])
        events = all_events(endpoint, "/ecs/printer", stream)
        ecs.stop_task(task=arn)
        delays = sorted(i - t for t, i in events)
        first, last = min(t for t, _ in events), max(i for _, i in events)
        rss = [kib for _, kib in sampler.samples if kib]
        return {
            "lines_written_by_docker": written,
            "events_stored": len(events),
            "lines_per_s": len(events) / ((last - first) / 1000),
            "delay_ms_p50": delays[len(delays) // 2],
            "delay_ms_p99": delays[min(len(delays) - 1, int(len(delays) * 0.99))],
            "delay_ms_max": delays[-1],
            "agent_rss_mib_idle": idle_kib / 1024,
            "agent_rss_mib_max": max(rss) / 1024,
            "agent_rss_mib_median": statistics.median(rss) / 1024,
            "agent_cpu_s": round(cpu[0], 1),
            "server_cpu_s": round(cpu[1], 1),
        }
    finally:
        agent.terminate()
        agent.wait(timeout=20)
        ids = docker("ps", "-aq", "--filter", "label=com.amazonaws.ecs.task-definition-family=printer").split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def bench(endpoint, label, clients, seconds, max_requests=200_000):
    out = subprocess.run([BENCH, "--endpoint", endpoint, "--operation", "PutLogEvents", "--clients", str(clients),
                          "--seconds", str(seconds), "--max-requests", str(max_requests), "--label", label,
                          "--access-key-id", KEY, "--secret-access-key", SECRET],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout)


def memory(server_pid, endpoint):
    """Server RSS while MEMORY_EVENTS arrive (4 clients of 100-event batches)."""
    sampler = Sampler(server_pid)
    sampler.start()
    t0 = time.monotonic()
    clients = 4
    r = bench(endpoint, "berth", clients, 3600, max_requests=MEMORY_EVENTS // (clients * 100))
    sampler.done.set()
    samples = [(t - t0, kib / 1024) for t, kib in sampler.samples if kib]
    span = samples[-1][0]
    at = lambda f: min(samples, key=lambda s: abs(s[0] - f * span))[1]
    return {"events": r["requests"] * 100, "seconds": round(span, 1), "events_per_s": round(r["events_per_s"]),
            "rss_mib": {f"{int(f * 100)}%": round(at(f), 1) for f in (0.1, 0.25, 0.5, 0.75, 1.0)},
            "rss_mib_max": round(max(kib for _, kib in samples), 1)}


def main():
    cfg = work / "config.toml"
    cfg.write_text(f'[[accounts]]\nid = "{ACCOUNT}"\nkeys = [{{ access_key_id = "{KEY}", '
                   f'secret_access_key = "{SECRET}" }}]\n')
    results = {"baseline_docker_json_file": baseline()}
    if os.environ.get("ONLY") == "shipping":
        port = free_port()
        server = start_server(work / "data", port, cfg)
        try:
            results["berth_awslogs"] = shipping(f"http://127.0.0.1:{port}", server.pid)
        finally:
            server.terminate()
            server.wait(timeout=20)
        print(json.dumps(results, indent=1))
        return
    port = free_port()
    server = start_server(work / "data", port, cfg)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        results["berth_awslogs"] = shipping(endpoint, server.pid)
        results["ratio_to_docker"] = round(results["berth_awslogs"]["lines_per_s"] /
                                           results["baseline_docker_json_file"]["lines_per_s"], 3)
    finally:
        server.terminate()
        server.wait(timeout=20)
    # Memory over MEMORY_EVENTS on a fresh server.
    port = free_port()
    server = start_server(work / "data-memory", port, cfg)
    try:
        results["server_memory"] = memory(server.pid, f"http://127.0.0.1:{port}")
        results["logs_redb_mib"] = round((work / "data-memory" / "logs.redb").stat().st_size / 2**20, 1)
    finally:
        server.terminate()
        server.wait(timeout=20)
    # PutLogEvents: berth against moto, same generator, fresh servers.
    port, mport = free_port(), free_port()
    server = start_server(work / "data-put", port, cfg)
    moto = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(mport)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        def moto_up():
            try:
                socket.create_connection(("127.0.0.1", mport), timeout=0.5).close()
                return True
            except OSError:
                return False
        wait_for("moto", moto_up, timeout=30)
        rows = []
        for c in (1, 4, 16):
            for label, ep in (("berth", f"http://127.0.0.1:{port}"), ("moto", f"http://127.0.0.1:{mport}")):
                r = bench(ep, label, c, float(os.environ.get("SECONDS_PER_RUN", "3")))
                rows.append({k: r[k] for k in ("target", "clients", "rps", "events_per_s", "p50_ms", "p99_ms")})
        results["put_log_events"] = rows
    finally:
        server.terminate()
        moto.terminate()
        server.wait(timeout=20)
        moto.wait(timeout=20)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(work, ignore_errors=True)
