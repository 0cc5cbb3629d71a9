"""berth's registry against a plain Distribution registry on the same machine:
push and pull of a 100 MiB image of several layers (each rep on fresh
storage, the order alternating), then 20 tasks on one host started at once
from each, counting how often each blob was downloaded.

  python3 bench/registry.py BERTH_BIN IMAGE REPS
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

BERTH, IMAGE, REPS = sys.argv[1], sys.argv[2], int(sys.argv[3])
ACCOUNT, KEY, SECRET, REGION = "888888888888", "AKIABENCHREGISTRY000", "bench-registry-secret", "us-east-1"
TASKS = 20
work = Path(tempfile.mkdtemp(prefix="berth-bench-registry-"))
docker_config = work / "docker-config"
docker_config.mkdir()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args, check=True, stdin=None):
    p = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, DOCKER_CONFIG=str(docker_config)))
    if check and p.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {p.stderr}")
    return p


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Plain:
    """docker-registry serving on loopback, access log on (it counts downloads)."""

    def __init__(self, d):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        d.mkdir(parents=True)
        cfg = d / "config.yml"
        cfg.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {d / 'data'}\n"
                       f"http:\n  addr: {self.host}\n")
        self.log = d / "log"
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)], stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT)
        wait_port(self.port)
        self.ref = f"{self.host}/bench/hundred:v1"

    def downloads(self):
        text = self.log.read_text(errors="replace")
        return count(re.findall(r'"GET /v2/[^ ]+/blobs/(sha256:[0-9a-f]+) HTTP/1.1" 200', text))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Berth:
    """berth server with its registry (and, for the task run, an agent)."""

    def __init__(self, d):
        d.mkdir(parents=True)
        self.dir = d
        cfg = d / "config.toml"
        cfg.write_text(f'[[accounts]]\nid = "{ACCOUNT}"\nkeys = [{{ access_key_id = "{KEY}", secret_access_key = "{SECRET}" }}]\n')
        self.log = d / "server.err"
        self.proc = subprocess.Popen(
            [BERTH, "server", "--listen", "127.0.0.1:0", "--data-dir", str(d / "data"), "--config", str(cfg),
             "--registry-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=open(self.log, "wb"),
            env=dict(os.environ, RUST_LOG="warn,berth_server::registry::front=debug"))
        self.registry = None
        while True:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"berth did not start: {self.log.read_text()}")
            if line.startswith("registry on "):
                self.registry = line.split()[-1]
            if line.startswith("listening on "):
                self.endpoint = "http://" + line.split()[-1]
                break
        self.agent = None
        ecr = self.client("ecr")
        uri = ecr.create_repository(repositoryName="bench/hundred")["repository"]["repositoryUri"]
        self.ref = uri + ":v1"
        self.ecr_name = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/bench/hundred:v1"
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
        import base64
        password = base64.b64decode(token).decode().split(":", 1)[1]
        docker("login", "--username", "AWS", "--password-stdin", self.registry, stdin=password)

    def client(self, service):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                            aws_access_key_id=KEY, aws_secret_access_key=SECRET)

    def start_agent(self):
        self.agent = subprocess.Popen(
            [BERTH, "agent", "--server", self.endpoint, "--cluster", "default", "--data-dir", str(self.dir / "agent"),
             "--access-key-id", KEY, "--secret-access-key", SECRET],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "agent.err", "wb"), env=dict(os.environ, RUST_LOG="warn"))
        ecs = self.client("ecs")
        ecs.create_cluster(clusterName="default")
        deadline = time.monotonic() + 30
        while not ecs.list_container_instances(cluster="default")["containerInstanceArns"]:
            assert time.monotonic() < deadline, "the agent did not register"
            time.sleep(0.2)
        return ecs

    def downloads(self):
        text = self.log.read_text(errors="replace")
        return count(re.findall(r"blob download.*?digest=\"?(sha256:[0-9a-f]+)", re.sub(r"\x1b\[[0-9;]*m", "", text)))

    def stop(self):
        if self.agent:
            self.agent.terminate()
            self.agent.wait(timeout=20)
        self.proc.terminate()
        self.proc.wait(timeout=20)


def count(digests):
    out = {}
    for d in digests:
        out[d] = out.get(d, 0) + 1
    return out


def timed(*args):
    t = time.perf_counter()
    docker(*args)
    return time.perf_counter() - t


def forget_image(*refs):
    """Removes these tags; with every tag of the image gone, so are its layers."""
    for r in refs:
        docker("rmi", r, check=False)


def push_pull():
    times = {k: [] for k in ("push plain", "push berth", "pull plain", "pull berth")}
    for rep in range(REPS):
        d = work / f"rep{rep}"
        plain, berth = Plain(d / "plain"), Berth(d / "berth")
        try:
            order = [("plain", plain), ("berth", berth)]
            if rep % 2:
                order.reverse()
            for name, target in order:
                docker("tag", IMAGE, target.ref)
                times[f"push {name}"].append(timed("push", target.ref))
            # Gone from Docker: each pull fetches and unpacks every layer.
            forget_image(plain.ref, berth.ref, IMAGE)
            for i, (name, target) in enumerate(order):
                times[f"pull {name}"].append(timed("pull", target.ref))
                docker("tag", target.ref, IMAGE)
                if i == 0:
                    forget_image(target.ref, IMAGE)
            forget_image(plain.ref, berth.ref)
        finally:
            plain.stop()
            berth.stop()
    return times


def all_running(ecs, arns, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        tasks = []
        for i in range(0, len(arns), 100):
            tasks += ecs.describe_tasks(cluster="default", tasks=arns[i:i + 100])["tasks"]
        stopped = [t for t in tasks if t["lastStatus"] == "STOPPED"]
        assert not stopped, stopped[0].get("stoppedReason")
        if all(t["lastStatus"] == "RUNNING" for t in tasks):
            return
        assert time.monotonic() < deadline, "tasks did not all run"
        time.sleep(0.1)


def concurrent():
    d = work / "tasks"
    plain, berth = Plain(d / "plain"), Berth(d / "berth")
    out = {}
    try:
        for target in (plain, berth):
            docker("tag", IMAGE, target.ref)
            docker("push", target.ref)
        ecs = berth.start_agent()
        for name, image, target in (("plain", plain.ref, plain), ("berth", berth.ecr_name, berth)):
            forget_image(plain.ref, berth.ref, IMAGE)
            before = target.downloads()
            ecs.register_task_definition(family=name, containerDefinitions=[
                {"name": "app", "image": image, "memory": 16, "command": ["sleep", "3600"]}])
            t = time.perf_counter()
            arns = []
            for _ in range(TASKS // 10):
                arns += [x["taskArn"] for x in ecs.run_task(cluster="default", taskDefinition=name, count=10)["tasks"]]
            all_running(ecs, arns)
            elapsed = time.perf_counter() - t
            after = target.downloads()
            fetched = {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) > before.get(k, 0)}
            out[name] = {"seconds": elapsed, "blobs": len(fetched), "most_fetches_of_one_blob": max(fetched.values())}
            for a in arns:
                ecs.stop_task(cluster="default", task=a)
            deadline = time.monotonic() + 120
            while any(t["lastStatus"] != "STOPPED"
                      for i in range(0, len(arns), 100)
                      for t in ecs.describe_tasks(cluster="default", tasks=arns[i:i + 100])["tasks"]):
                assert time.monotonic() < deadline
                time.sleep(0.5)
            ids = docker("ps", "-aq", "--filter", f"label=com.amazonaws.ecs.task-definition-family={name}").stdout.split()
            if ids:
                docker("rm", "-f", *ids)
        docker("tag", berth.ref, IMAGE)
    finally:
        berth.stop()
        plain.stop()
    return out


def main():
    times = push_pull()
    tasks = concurrent()
    summary = {}
    for k, v in times.items():
        summary[k] = {"median_s": statistics.median(v), "runs": [round(x, 3) for x in v]}
    for op in ("push", "pull"):
        p, b = statistics.median(times[f"{op} plain"]), statistics.median(times[f"{op} berth"])
        summary[f"{op} added"] = f"{(b / p - 1) * 100:+.1f}%"
    summary["20 tasks"] = tasks
    print(json.dumps(summary, indent=2))
    shutil.rmtree(work, ignore_errors=True)


main()
