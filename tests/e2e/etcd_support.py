"""An etcd cluster of real `etcd` members on loopback, and berth servers sharing it."""
import json
import shutil
import subprocess
import urllib.request

from conftest import CONFIG, Berth
from docker_support import free_port, wait_for


class EtcdCluster:
    def __init__(self, root, members=3):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.names = [f"m{i}" for i in range(members)]
        self.client = {n: f"http://127.0.0.1:{free_port()}" for n in self.names}
        self.peer = {n: f"http://127.0.0.1:{free_port()}" for n in self.names}
        self.procs = {}

    @property
    def endpoints(self):
        return ",".join(self.client.values())

    def start(self, name, state="new"):
        initial = ",".join(f"{n}={self.peer[n]}" for n in self.names)
        self.procs[name] = subprocess.Popen(
            ["etcd", "--name", name, "--data-dir", str(self.root / name),
             "--listen-client-urls", self.client[name], "--advertise-client-urls", self.client[name],
             "--listen-peer-urls", self.peer[name], "--initial-advertise-peer-urls", self.peer[name],
             "--initial-cluster", initial, "--initial-cluster-state", state,
             "--initial-cluster-token", "berth-e2e"],
            stdout=subprocess.DEVNULL, stderr=open(self.root / f"{name}.log", "ab"))

    def healthy(self, name):
        try:
            with urllib.request.urlopen(self.client[name] + "/health", timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"
        except OSError:
            return False

    def __enter__(self):
        for n in self.names:
            self.start(n)
        wait_for("the etcd cluster", lambda: all(self.healthy(n) for n in self.names), timeout=30)
        return self

    def __exit__(self, *exc):
        for p in self.procs.values():
            p.kill()
            p.wait(timeout=10)
        # Each member preallocates its log (64 MB files): a run of the suite would fill a disk.
        shutil.rmtree(self.root, ignore_errors=True)


def start_servers(etcd, tmp_path, *extra, count=2):
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    key = tmp_path / "secrets.key"
    return [Berth(tmp_path / f"server{n}" / "data", cfg,
                  args=("--store", "etcd", "--etcd-endpoints", etcd.endpoints, "--secrets-key-file", str(key),
                        *extra)).start() for n in range(count)]


def leader_pid(etcd):
    out = subprocess.run(["etcdctl", "--endpoints", etcd.endpoints, "get", "coordination/leader",
                          "--print-value-only"], capture_output=True, text=True, timeout=10,
                         env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
    value = out.stdout.strip()
    return int(value.rsplit("/", 1)[1]) if value else None


def leads(server):
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as r:
        lines = [line for line in r.read().decode().splitlines() if line.startswith("berth_leader ")]
    assert len(lines) == 1, lines
    return lines[0].split()[1] == "1"
