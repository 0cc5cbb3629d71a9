"""Task roles' two costs, each beside its baseline in the same run:
1. a credentials fetch from inside a bridge container (fresh connection per
   fetch, as the SDKs' container provider makes) against a GET of berth's
   /healthz from the same container;
2. server CPU per DescribeClusters call by an IAM user holding 10 attached
   policies of 20 statements each, against the same call by the account root.
Prints a markdown table; the raw figures go to stderr as JSON."""
import json
import os
import subprocess
import sys
import time

import bench_user
import boto3
from botocore.config import Config

ENDPOINT, KEY, SECRET, PID, IMAGE = sys.argv[1:6]
FETCHES = int(os.environ.get("FETCHES", "2000"))
CALLS = int(os.environ.get("CALLS", "300"))
BLOCKS = int(os.environ.get("BLOCKS", "101"))
ACCOUNT = "777777777777"
cfg = Config(retries={"max_attempts": 1})


def client(service, key=KEY, secret=SECRET):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret, config=cfg)


def cpu_seconds(pid):
    """The server's time on a CPU, to the nanosecond: the sum of its threads' schedstat
    (the clock ticks of /proc/PID/stat are 10 ms, 4 % of a block)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{tid}/schedstat").read().split()[0])
        except FileNotFoundError:  # a thread that ended between the listing and the read
            pass
    return total / 1e9


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


ecs, iam = client("ecs"), client("iam")
ecs.create_cluster(clusterName="default")
trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}
iam.create_role(RoleName="bench", AssumeRolePolicyDocument=json.dumps(trust))

# 1. Credentials from inside a container.
PROBE = r'''
import http.client, json, os, sys, time
uri = os.environ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
host, port = os.environ["BERTH_HOST"].split(":")
def timed(h, p, path):
    t = time.perf_counter()
    c = http.client.HTTPConnection(h, int(p), timeout=5)
    c.request("GET", path)
    r = c.getresponse(); r.read(); c.close()
    assert r.status == 200, r.status
    return (time.perf_counter() - t) * 1000
n = int(os.environ["FETCHES"])
creds, health = [], []
for i in range(n):
    creds.append(timed("169.254.170.2", 80, uri))
    health.append(timed(host, port, "/healthz"))
print("RESULT " + json.dumps({"credentials": creds, "healthz": health}), flush=True)
time.sleep(3600)
'''
host = ENDPOINT.split("//", 1)[1]
ecs.register_task_definition(family="probe", taskRoleArn=f"arn:aws:iam::{ACCOUNT}:role/bench",
                             containerDefinitions=[{"name": "probe", "image": IMAGE, "memory": 128,
                                                    "command": ["python3", "-c", PROBE],
                                                    "environment": [{"name": "BERTH_HOST", "value": host},
                                                                    {"name": "FETCHES", "value": str(FETCHES)},
                                                                    {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"}]}])
deadline = time.monotonic() + 60
while not ecs.list_container_instances()["containerInstanceArns"]:
    assert time.monotonic() < deadline, "no agent"
    time.sleep(0.2)
task = ecs.run_task(taskDefinition="probe")["tasks"][0]["taskArn"]
result = None
deadline = time.monotonic() + 300
while result is None:
    assert time.monotonic() < deadline, "no result from the probe task"
    t = ecs.describe_tasks(tasks=[task])["tasks"][0]
    assert t["lastStatus"] != "STOPPED", t.get("stoppedReason")
    rid = (t.get("containers") or [{}])[0].get("runtimeId")
    if rid:
        logs = subprocess.run(["docker", "logs", rid], capture_output=True, text=True).stdout
        for line in logs.splitlines():
            if line.startswith("RESULT "):
                result = json.loads(line[7:])
    time.sleep(0.5)
ecs.stop_task(task=task)

# 2. Policy evaluation per call.
user_key = bench_user.make(iam, ACCOUNT)
user = client("ecs", *user_key)
root = ecs
assert user.describe_clusters(clusters=["default"])["clusters"][0]["clusterName"] == "default"
per_call = {"root": [], "user": []}
latency = {"root": [], "user": []}
for block in range(BLOCKS):
    # Every other pair runs the user first, so a drift in the machine's speed within a
    # pair falls on each caller as often.
    pair = (("root", root), ("user", user))
    for who, c in pair if block % 2 == 0 else pair[::-1]:
        before = cpu_seconds(PID)
        for _ in range(CALLS):
            t = time.perf_counter()
            c.describe_clusters(clusters=["default"])
            latency[who].append((time.perf_counter() - t) * 1000)
        per_call[who].append((cpu_seconds(PID) - before) / CALLS * 1e6)

cr, hz = result["credentials"], result["healthz"]
root_us = sorted(per_call["root"])[len(per_call["root"]) // 2]
user_us = sorted(per_call["user"])[len(per_call["user"]) // 2]
# Each user block runs beside its root block: the median of the paired ratios is
# steadier than the ratio of medians on a machine whose speed drifts. Its 95 %
# interval is the pair of order statistics that bracket the median (sign test).
ratios = sorted(100 * (u - r) / r for u, r in zip(per_call["user"], per_call["root"]))
paired = ratios[BLOCKS // 2]
half = int(0.98 * BLOCKS ** 0.5)
low, high = ratios[max(BLOCKS // 2 - half, 0)], ratios[min(BLOCKS // 2 + half, BLOCKS - 1)]
print("| measure | value | baseline in the same run | goal |")
print("| --- | ---: | ---: | --- |")
print(f"| credentials fetch from a bridge container, median | {pct(cr, 0.5):.3f} ms | /healthz: {pct(hz, 0.5):.3f} ms | |")
print(f"| credentials fetch from a bridge container, p99 | {pct(cr, 0.99):.3f} ms | /healthz: {pct(hz, 0.99):.3f} ms | under 2 ms |")
print(f"| server CPU per DescribeClusters (median of {BLOCKS} blocks of {CALLS}) | user with 10x20 statements: {user_us:.1f} us | root: {root_us:.1f} us | |")
print(f"| added by policy evaluation (median of paired blocks, 95 % interval) | {paired:+.1f} % ({low:+.1f} to {high:+.1f} %) | | under 5 % |")
print(f"| DescribeClusters latency median (client) | user {pct(latency['user'], 0.5):.3f} ms | root {pct(latency['root'], 0.5):.3f} ms | |")
print(json.dumps({"fetches": FETCHES, "per_call_us": per_call}), file=sys.stderr)
