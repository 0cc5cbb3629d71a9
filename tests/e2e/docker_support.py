"""Real Docker for the end-to-end tests: a local OCI registry on loopback
holding the test image, `berth agent` processes, and cleanup of every
container an agent made."""
import json
import os
import shlex
import signal
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

TEST_IMAGE = os.environ.get("BERTH_TEST_IMAGE", "berth-test/busybox:latest")
INSTANCE_LABEL = "berth.container-instance"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args, check=True, timeout=120):
    p = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, text=True)
    if check:
        assert p.returncode == 0, f"docker {' '.join(args)}: {p.stderr}"
    return p


def wait_for(what, fn, timeout=30, interval=0.2):
    """Polls `fn` until it returns something truthy, or fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last saw {last!r}")


class Registry:
    """docker-registry serving on a loopback port from a temp folder; with
    `users` ({name: password}), only they may push and pull (htpasswd, no TLS)."""

    def __init__(self, users=None):
        self.dir = Path(tempfile.mkdtemp(prefix="berth-registry-"))
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        cfg = self.dir / "config.yml"
        auth = ""
        if users:
            htpasswd = self.dir / "htpasswd"
            for i, (name, password) in enumerate(users.items()):
                flags = "-Bbc" if i == 0 else "-Bb"
                subprocess.run(["htpasswd", flags, str(htpasswd), name, password], check=True,
                               capture_output=True, timeout=30)
            auth = f"auth:\n  htpasswd:\n    realm: berth-test\n    path: {htpasswd}\n"
        cfg.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
            f"http:\n  addr: {self.host}\n"
            + auth
        )
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.dir / "log", "wb"))

        def up():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        wait_for("the registry to listen", up, timeout=15)

    def push(self, local, name, login=None):
        """Pushes a local image as NAME in this registry (as `login`, (user, password),
        when it asks for one) and returns its reference."""
        ref = f"{self.host}/{name}"
        docker("tag", local, ref)
        if login:
            subprocess.run(["docker", "login", "-u", login[0], "--password-stdin", self.host],
                           input=login[1], text=True, check=True, capture_output=True, timeout=60)
        try:
            docker("push", ref)
        finally:
            if login:
                docker("logout", self.host, check=False)
        # The pull under test must fetch it from the registry, not find it cached.
        docker("rmi", ref)
        return ref

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Agent:
    """One `berth agent` process."""

    def __init__(self, berth_bin, server, account_keys, data_dir, cluster="default",
                 zone="us-east-1a", pull="default", attributes=(), fleet=False, metrics_listen=None,
                 extra=()):
        self.bin = berth_bin
        self.server = server
        self.key, self.secret = account_keys
        self.data_dir = Path(data_dir)
        self.cluster = cluster
        self.zone = zone
        self.pull = pull
        self.attributes = attributes
        self.fleet = fleet
        self.metrics_listen = metrics_listen
        self.extra = list(extra)
        self.proc = None

    def start(self):
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "agent.log", "ab")
        # Several servers sharing a store: the agent moves to the next when its own fails.
        servers = self.server if isinstance(self.server, (list, tuple)) else [self.server]
        args = [str(self.bin), "agent", "--server", ",".join(s.endpoint for s in servers), "--cluster", self.cluster,
                "--data-dir", str(self.data_dir), "--access-key-id", self.key,
                "--secret-access-key", self.secret, "--region", "us-east-1",
                "--availability-zone", self.zone, "--image-pull-behavior", self.pull]
        for a in self.attributes:
            args += ["--attribute", a]
        if self.fleet:
            args.append("--fleet")
        if self.metrics_listen:
            args += ["--metrics-listen", self.metrics_listen]
        args += self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log,
                                     env=dict(os.environ, RUST_LOG="info"))
        return self

    def instance_arn(self, timeout=20):
        state = self.data_dir / "agent-state.json"

        def read():
            try:
                return json.loads(state.read_text()).get("container_instance_arn")
            except (OSError, ValueError):
                return None

        return wait_for("the agent to register", read, timeout=timeout)

    def owner(self, timeout=20):
        """What this agent's containers are labelled with: its instance ARN, or its fleet host."""
        if not self.fleet:
            return self.instance_arn(timeout)
        state = self.data_dir / "agent-state.json"

        def read():
            try:
                return "fleet-host/" + json.loads(state.read_text())["ec2_instance_id"]
            except (OSError, ValueError, KeyError):
                return None

        return wait_for("the fleet host to register", read, timeout=timeout)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def log(self):
        try:
            return (self.data_dir / "agent.log").read_text(errors="replace")
        except OSError:
            return ""


def containers_of(instance_arn, all_states=True):
    """(id, name, state) of every container labelled for one container instance."""
    args = ["ps", "--filter", f"label={INSTANCE_LABEL}={instance_arn}",
            "--format", "{{.ID}} {{.Names}} {{.State}}"]
    if all_states:
        args.insert(1, "-a")
    out = docker(*args).stdout.split("\n")
    return [tuple(line.split(" ", 2)) for line in out if line.strip()]


def remove_containers_of(instance_arn):
    ids = [c[0] for c in containers_of(instance_arn)]
    if ids:
        docker("rm", "-f", *ids, check=False)


def host_network_artefacts():
    """berth's router namespaces, host nftables tables and iptables rules on this machine, by name."""
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    rules = subprocess.run(["iptables", "-S", "DOCKER-USER"], capture_output=True, text=True).stdout
    # berth_link_local (no link-local address leaves the host) is the host's own, shared by its agents, kept.
    return ({line.split()[0] for line in namespaces.splitlines() if line.startswith("berth-")},
            {line.split()[2] for line in tables.splitlines()
             if " berth_" in line and "berth_link_local" not in line},
            {line for line in rules.splitlines() if "berth" in line})


def remove_host_network_artefacts(keep):
    """Removes the router namespaces, host tables and rules made since `keep` was taken."""
    namespaces, tables, rules = host_network_artefacts()
    for ns in namespaces - keep[0]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    for table in tables - keep[1]:
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True)
    for rule in rules - keep[2]:
        subprocess.run(["iptables", "-D", *shlex.split(rule)[1:]], capture_output=True)
