"""Secrets, measured side by side in one run:

1. GetSecretValue and GetParameter (SecureString, decrypted) requests per
   second and p50/p99, berth against moto, same load generator, 1/4/16 clients.
2. The start time a task with 10 secrets (5 Secrets Manager, 5 Parameter
   Store) adds over the same task with none: RunTask to the container started
   (the task's startedAt - createdAt), tasks of both kinds alternating on one
   agent with cached images, median and p90 of each.

  python3 bench/secrets.py BERTH_BIN BENCH_BIN MOTO_SERVER
Prints JSON.
"""
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

BERTH, BENCH, MOTO = sys.argv[1], sys.argv[2], sys.argv[3]
ACCOUNT, KEY, SECRET, REGION = "555555555555", "AKIABENCHSECRETS0000", "bench-secret", "us-east-1"
IMAGE = "berth-test/busybox:latest"
TASKS = int(os.environ.get("TASKS", "30"))
SECONDS_PER_RUN = float(os.environ.get("SECONDS_PER_RUN", "3"))
work = Path(tempfile.mkdtemp(prefix="berth-bench-secrets-"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_for(what, fn, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}")


def client(service, endpoint):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=KEY,
                        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 2}))


def bench(endpoint, label, operation, clients):
    out = subprocess.run([BENCH, "--endpoint", endpoint, "--operation", operation, "--clients", str(clients),
                          "--seconds", str(SECONDS_PER_RUN), "--label", label,
                          "--access-key-id", KEY, "--secret-access-key", SECRET],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    r = json.loads(out.stdout)
    return {k: r[k] for k in ("target", "operation", "clients", "rps", "p50_ms", "p99_ms")}


def throughput(endpoint):
    mport = free_port()
    moto = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(mport)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for("moto", lambda: listening(mport), timeout=30)
        rows = []
        for op in ("GetSecretValue", "GetParameter"):
            for c in (1, 4, 16):
                for label, ep in (("berth", endpoint), ("moto", f"http://127.0.0.1:{mport}")):
                    rows.append(bench(ep, label, op, c))
        return rows
    finally:
        moto.terminate()
        moto.wait(timeout=20)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def start_times(endpoint):
    iam, sm, ssm, ecs = (client(s, endpoint) for s in ("iam", "secretsmanager", "ssm", "ecs"))
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}
    iam.create_role(RoleName="exec", AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName="exec", PolicyName="secrets", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
                                                 "Action": ["secretsmanager:GetSecretValue", "ssm:GetParameters"]}]}))
    secrets = []
    for i in range(5):
        arn = sm.create_secret(Name=f"s{i}", SecretString=f"value-{i}")["ARN"]
        secrets.append({"name": f"S{i}", "valueFrom": arn})
        ssm.put_parameter(Name=f"/p/{i}", Value=f"value-{i}", Type="SecureString")
        secrets.append({"name": f"P{i}", "valueFrom": f"/p/{i}"})
    role = f"arn:aws:iam::{ACCOUNT}:role/exec"
    for family, s in (("none", []), ("ten", secrets)):
        ecs.register_task_definition(family=family, executionRoleArn=role, containerDefinitions=[
            {"name": "app", "image": IMAGE, "memory": 32, "command": ["sleep", "3600"], "secrets": s}])
    wait_for("the agent", lambda: ecs.list_container_instances()["containerInstanceArns"], timeout=30)
    took = {"none": [], "ten": []}
    for i in range(TASKS * 2):
        family = ("none", "ten")[i % 2]
        arn = ecs.run_task(taskDefinition=family)["tasks"][0]["taskArn"]
        t = wait_for("the task to start", lambda: (
            x := ecs.describe_tasks(tasks=[arn])["tasks"][0]).get("startedAt") and x, timeout=60, interval=0.02)
        if t["lastStatus"] == "STOPPED":
            raise RuntimeError(t.get("stoppedReason"))
        took[family].append((t["startedAt"] - t["createdAt"]).total_seconds() * 1000)
        ecs.stop_task(task=arn)
    out = {f: {"tasks": len(v), "median_ms": round(statistics.median(v), 1), "p90_ms": round(pct(v, 0.9), 1)}
           for f, v in took.items()}
    out["added_median_ms"] = round(out["ten"]["median_ms"] - out["none"]["median_ms"], 1)
    return out


def main():
    cfg = work / "config.toml"
    cfg.write_text(f'[[accounts]]\nid = "{ACCOUNT}"\nkeys = [{{ access_key_id = "{KEY}", '
                   f'secret_access_key = "{SECRET}" }}]\n')
    port = free_port()
    server = subprocess.Popen([BERTH, "server", "--listen", f"127.0.0.1:{port}", "--data-dir", str(work / "data"),
                               "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=open(work / "server.log", "ab"))
    agent = None
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_for("the server", lambda: listening(port), timeout=20)
        results = {"throughput": throughput(endpoint)}
        agent = subprocess.Popen([BERTH, "agent", "--server", endpoint, "--cluster", "default",
                                  "--data-dir", str(work / "agent"), "--access-key-id", KEY,
                                  "--secret-access-key", SECRET, "--image-pull-behavior", "prefer-cached"],
                                 stdout=subprocess.DEVNULL, stderr=open(work / "agent.log", "ab"))
        results["task_start"] = start_times(endpoint)
    finally:
        for p in (agent, server):
            if p:
                p.terminate()
                p.wait(timeout=30)
        ids = subprocess.run(["docker", "ps", "-aq", "--filter",
                              f"label=com.amazonaws.ecs.cluster=arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/default"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
