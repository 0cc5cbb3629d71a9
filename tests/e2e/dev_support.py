"""`berth dev` as a test starts it: the process, the exports it prints, real
clients with them, and on the way out everything its agents left on the host."""
import json
import os
import subprocess
import time

import boto3
from botocore.config import Config

from conftest import BERTH
from docker_support import host_network_artefacts, remove_containers_of, remove_host_network_artefacts

START_DEADLINE_S = 15


class Dev:
    def __init__(self, tmp_path, *args):
        self.data = tmp_path / "dev"
        self.log_path = tmp_path / "dev.log"
        self.args = list(args)
        self.env = dict(os.environ, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                        AWS_MAX_ATTEMPTS="1")
        self.said = []
        self.proc = None

    def __enter__(self):
        self.host_before = host_network_artefacts()
        self.proc = subprocess.Popen([str(BERTH), "dev", "--listen", "127.0.0.1:0", "--data-dir", str(self.data),
                                      *self.args], stdout=subprocess.PIPE, stderr=open(self.log_path, "wb"))
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            self.said.append(line)
            if line.startswith("export "):
                k, v = line[len("export "):].strip().split("=", 1)
                self.env[k] = v
            if line.startswith("listening on ") or not line:
                break
        assert "AWS_ENDPOINT_URL" in self.env, "".join(self.said)
        self.endpoint = self.env["AWS_ENDPOINT_URL"]
        return self

    def client(self, service):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=self.env["AWS_DEFAULT_REGION"],
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30))

    def __exit__(self, *exc):
        instances = []
        try:
            instances = self.client("ecs").list_container_instances()["containerInstanceArns"]
        except Exception:  # noqa: BLE001 - the server may be the thing that failed
            pass
        self.proc.terminate()
        self.proc.wait(timeout=10)
        for arn in instances:
            remove_containers_of(arn)
        fleet_state = self.data / "fleet" / "agent-state.json"
        if fleet_state.exists():
            remove_containers_of("fleet-host/" + json.loads(fleet_state.read_text())["ec2_instance_id"])
        remove_host_network_artefacts(self.host_before)
