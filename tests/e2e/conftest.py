"""Starts the real berth binary on a loopback port with a fresh data dir and
hands out real AWS clients (boto3 and the aws CLI) for two accounts."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

import docker_support
import shapes

ROOT = Path(__file__).resolve().parents[2]
BERTH = Path(os.environ.get("BERTH_BIN", ROOT / "target" / "debug" / "berth"))
REGION = "us-east-1"
ACCOUNTS = {
    "a": ("111111111111", "AKIAAAAAAAAAAAAAAAAA", "secret-a-0123456789abcdefghijklmnopqrstu"),
    "b": ("222222222222", "AKIABBBBBBBBBBBBBBBB", "secret-b-0123456789abcdefghijklmnopqrstu"),
}
# The platform's public addresses in tests: loopback, so test traffic stays on this machine.
PUBLIC_IP_POOL = "127.0.110.0/24"
# The platform's own key, for `berth agent --fleet` hosts.
FLEET_KEY = ("AKIAFLEETFLEETFLEET0", "secret-fleet-0123456789abcdefghijklmnop")


def config(public_ip_pool=PUBLIC_IP_POOL):
    return "\n".join(
        f'[[accounts]]\nid = "{acct}"\nkeys = [{{ access_key_id = "{key}", secret_access_key = "{secret}" }}]\n'
        for acct, key, secret in ACCOUNTS.values()
    ) + f'[fleet]\nkeys = [{{ access_key_id = "{FLEET_KEY[0]}", secret_access_key = "{FLEET_KEY[1]}" }}]\n' \
      + f'public_ip_pool = "{public_ip_pool}"\n'


CONFIG = config()
START_DEADLINE_S = 15


class Berth:
    """One berth server process."""

    def __init__(self, data_dir, config_path, listen="127.0.0.1:0", args=()):
        self.data_dir = data_dir
        self.config_path = config_path
        self.listen = listen
        self.args = list(args)
        self.proc = None
        self.endpoint = None
        # Where berth's registry listens (host:port), when it runs one.
        self.registry = None

    def start(self):
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        log = open(Path(self.data_dir).parent / "server.log", "ab")
        self.proc = subprocess.Popen(
            [str(BERTH), "server", "--listen", self.listen, "--data-dir", str(self.data_dir),
             "--config", str(self.config_path), *self.args],
            stdout=subprocess.PIPE, stderr=log,
        )
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if line.startswith("registry on "):
                self.registry = line.split()[-1]
            if line.startswith("listening on "):
                self.endpoint = "http://" + line.split()[-1]
                # A restart listens where the first start did, so agents find it again.
                self.listen = line.split()[-1]
                return self
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"berth did not start; see {self.data_dir}/server.log")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def client(self, service, account="a", region=REGION, seen=None):
        _, key, secret = ACCOUNTS[account]
        c = boto3.client(
            service, endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=key, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )
        if service == "ecs":
            shapes.install(c, seen if seen is not None else [])
        return c

    def cli(self, *args, account="a", check=True):
        """Runs the real aws CLI; returns its parsed JSON output (or the process on failure)."""
        _, key, secret = ACCOUNTS[account]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
                   AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=self.endpoint,
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                   AWS_MAX_ATTEMPTS="1")
        aws = shutil.which("aws")
        p = subprocess.run([aws, *args, "--output", "json"], env=env, capture_output=True, timeout=60)
        if check:
            assert p.returncode == 0, p.stderr.decode()
            return json.loads(p.stdout or b"{}")
        return p


@pytest.fixture
def data_dir():
    d = tempfile.mkdtemp(prefix="berth-e2e-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def server(data_dir, request):
    cfg = data_dir / "config.toml"
    # A test may give the platform another public pool with @pytest.mark.public_ip_pool(CIDR).
    pool = request.node.get_closest_marker("public_ip_pool")
    cfg.write_text(config(*pool.args) if pool else CONFIG)
    # A test may ask for server flags with @pytest.mark.server_args(...).
    mark = request.node.get_closest_marker("server_args")
    b = Berth(data_dir / "data", cfg, args=mark.args if mark else ()).start()
    yield b
    b.stop()


@pytest.fixture
def ecs(server):
    return server.client("ecs")


@pytest.fixture
def ecs_b(server):
    return server.client("ecs", account="b")


@pytest.fixture(scope="session")
def registry():
    """A real registry on loopback holding the test image."""
    r = docker_support.Registry()
    r.image = r.push(docker_support.TEST_IMAGE, "berth-test/busybox:latest")
    yield r
    r.stop()


@pytest.fixture
def agents(server, data_dir):
    """Starts `berth agent` processes for account a; stops them and removes their containers after."""
    started = []
    host_before = docker_support.host_network_artefacts()

    def start(name="agent1", account="a", fleet=False, **kw):
        _, key, secret = ACCOUNTS[account]
        keys = FLEET_KEY if fleet else (key, secret)
        a = docker_support.Agent(BERTH, server, keys, data_dir / name, fleet=fleet, **kw).start()
        started.append(a)
        return a

    yield start
    for a in started:
        a.stop()
        arn = None
        try:
            arn = a.owner(timeout=1)
        except AssertionError:
            pass
        if arn:
            docker_support.remove_containers_of(arn)
    # A stopped agent leaves its tasks' networking as it was (it adopts it on restart); tests do not.
    docker_support.remove_host_network_artefacts(host_before)


def pytest_configure(config):
    config.addinivalue_line("markers", "server_args(*args): extra flags for the berth server of a test")
    config.addinivalue_line("markers", "public_ip_pool(cidr): the platform's public pool for a test's server")
