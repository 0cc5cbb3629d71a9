"""Task roles inside real containers: Debian's boto3 in a task finds its role's
credentials through the SDK's container provider at 169.254.170.2, calls
berth with them, and reads the task metadata endpoint; berth's policies apply."""
import json
import subprocess

import boto3
import pytest

from conftest import ACCOUNTS, Berth, CONFIG, REGION
from docker_support import docker, wait_for

A = ACCOUNTS["a"][0]
SDK_IMAGE = "berth-test/boto3:latest"
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}

# What the task's application does: its SDK finds credentials with no keys given,
# asks berth who it is and what it may do, and reads its metadata; then it waits.
SCRIPT = r'''
import json, os, sys, time, urllib.request
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError
ep = os.environ.get("BERTH_ENDPOINT")
cfg = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=10)
def once():
    out = {"env": {k: os.environ.get(k) for k in ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "ECS_CONTAINER_METADATA_URI_V4")}}
    s = boto3.session.Session(region_name="us-east-1")
    c = s.get_credentials()
    out["credentials"] = c.get_frozen_credentials().access_key if c else None
    if c and os.environ.get("SHOW_SESSION"):
        f = c.get_frozen_credentials()
        out["session"] = [f.access_key, f.secret_key, f.token]
    if c and ep:
        out["arn"] = s.client("sts", endpoint_url=ep, config=cfg).get_caller_identity()["Arn"]
        ecs = s.client("ecs", endpoint_url=ep, config=cfg)
        out["described"] = [x["clusterName"] for x in ecs.describe_clusters(clusters=["prod"])["clusters"]]
        try:
            ecs.list_clusters()
            out["listed"] = "allowed"
        except ClientError as e:
            out["listed"] = e.response["Error"]["Code"]
    md = os.environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if md:
        out["container"] = json.load(urllib.request.urlopen(md, timeout=5))
        out["task"] = json.load(urllib.request.urlopen(md + "/task", timeout=5))
        out["stats"] = sorted(json.load(urllib.request.urlopen(md + "/stats", timeout=5)).keys())[:3]
    print("RESULT " + json.dumps(out), flush=True)
while True:
    once()
    time.sleep(float(os.environ.get("EVERY", "3600")))
'''


def docker_gateway():
    """The bridge network's gateway; a dockerd that found its bridge already made reports
    none, and then the bridge's own address is the gateway."""
    inspect = lambda f: subprocess.run(["docker", "network", "inspect", "bridge", "-f", f],
                                       capture_output=True, text=True, check=True).stdout.strip()
    gateway = inspect("{{(index .IPAM.Config 0).Gateway}}")
    if gateway:
        return gateway
    bridge = inspect('{{index .Options "com.docker.network.bridge.name"}}') or "docker0"
    addr = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", bridge],
                          capture_output=True, text=True, check=True).stdout.split()
    return addr[addr.index("inet") + 1].split("/")[0]


@pytest.fixture
def server(data_dir):
    """berth listening on Docker's bridge gateway, so bridge containers reach it on this host
    (it overrides the suite's loopback server here; the agents fixture uses it)."""
    cfg = data_dir / "config.toml"
    cfg.write_text(CONFIG)
    b = Berth(data_dir / "data", cfg, listen=f"{docker_gateway()}:0",
              args=("--task-credentials-lifetime", "60")).start()
    yield b
    b.stop()


@pytest.fixture
def sdk_image():
    docker("image", "inspect", SDK_IMAGE)
    return SDK_IMAGE


def app(image, mode, every="3600"):
    return {"name": "app", "image": image, "memory": 256, "essential": True,
            "command": ["python3", "-c", SCRIPT],
            "environment": [{"name": "AWS_EC2_METADATA_DISABLED", "value": "true"},
                            {"name": "EVERY", "value": every}]}


def results(container_id, count=1, timeout=60):
    def read():
        logs = docker("logs", container_id, check=False).stdout
        lines = [json.loads(l[len("RESULT "):]) for l in logs.splitlines() if l.startswith("RESULT ")]
        return lines if len(lines) >= count else None
    return wait_for(f"{count} results from the task", read, timeout=timeout)


def running_task(ecs, family, timeout=90):
    arn = ecs.run_task(cluster="prod", taskDefinition=family)["tasks"][0]["taskArn"]
    return running_task_of(ecs, arn, timeout)


def running_task_of(ecs, arn, timeout=90):
    def check():
        t = ecs.describe_tasks(cluster="prod", tasks=[arn])["tasks"][0]
        assert t["lastStatus"] != "STOPPED", t.get("stoppedReason")
        return t if t["lastStatus"] == "RUNNING" else None
    return wait_for("the task to run", check, timeout=timeout)


def start_agent(ecs, agents, name="agent1"):
    agent = agents(name=name, cluster="prod", pull="prefer-cached")
    arn = agent.instance_arn()

    def check():
        ci = ecs.describe_container_instances(cluster="prod", containerInstances=[arn])["containerInstances"]
        return ci and ci[0]["agentConnected"]
    wait_for("the agent to connect", check, timeout=20)
    return agent, arn


def running_with_session(server, ecs, arn):
    """Waits for the task to run; checks the session its SDK resolved, from outside
    (an awsvpc task's VPC cannot reach berth's API). Answers the task and its result."""
    def check():
        t = ecs.describe_tasks(cluster="prod", tasks=[arn])["tasks"][0]
        assert t["lastStatus"] != "STOPPED", t.get("stoppedReason")
        return t if t["lastStatus"] == "RUNNING" else None
    t = wait_for("the task to run", check, timeout=90)
    r = results(t["containers"][0]["runtimeId"])[0]
    key, secret, token = r["session"]
    sts = boto3.client("sts", endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=key,
                       aws_secret_access_key=secret, aws_session_token=token)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:sts::{A}:assumed-role/app/{arn.rsplit('/', 1)[1]}"
    return t, r


def setup(server, agents, sdk_image, mode="bridge", every="3600", role=True, policy=None, agent=True):
    ecs, iam = server.client("ecs"), server.client("iam")
    ecs.create_cluster(clusterName="prod")
    ecs.create_cluster(clusterName="dev")
    if agent:
        start_agent(ecs, agents)
    kw = {}
    if role:
        iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(TRUST))
        iam.put_role_policy(RoleName="app", PolicyName="p", PolicyDocument=json.dumps(policy or {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ecs:Describe*", "Resource": f"arn:aws:ecs:*:*:cluster/prod"}]}))
        kw["taskRoleArn"] = f"arn:aws:iam::{A}:role/app"
    c = app(sdk_image, mode, every)
    c["environment"].append({"name": "BERTH_ENDPOINT", "value": server.endpoint})
    ecs.register_task_definition(family="sdk", networkMode=mode, containerDefinitions=[c], **kw)
    return ecs


def test_a_bridge_tasks_sdk_acts_as_its_role_and_reads_its_metadata(server, agents, sdk_image):
    ecs = setup(server, agents, sdk_image)
    t = running_task(ecs, "sdk")
    c = t["containers"][0]
    r = results(c["runtimeId"])[0]
    assert r["credentials"].startswith("ASIA")
    assert r["arn"] == f"arn:aws:sts::{A}:assumed-role/app/{t['taskArn'].rsplit('/', 1)[1]}"
    assert r["described"] == ["prod"]
    assert r["listed"] == "AccessDeniedException"
    md = r["task"]
    assert md["TaskARN"] == t["taskArn"]
    assert md["Cluster"] == t["clusterArn"]
    assert md["Family"] == "sdk" and md["Revision"] == "1"
    assert md["KnownStatus"] == "RUNNING" and md["DesiredStatus"] == "RUNNING"
    assert md["LaunchType"] == "EC2"
    assert md["AvailabilityZone"] == t["availabilityZone"]
    assert md["Containers"][0]["DockerId"] == c["runtimeId"]
    assert md["Containers"][0]["ContainerARN"] == c["containerArn"]
    assert md["Containers"][0]["Image"] == sdk_image
    me = r["container"]
    assert me["Name"] == "app" and me["DockerId"] == c["runtimeId"]
    assert me["Networks"][0]["NetworkMode"] == "bridge"
    inspected = json.loads(docker("inspect", c["runtimeId"]).stdout)[0]
    assert me["Networks"][0]["IPv4Addresses"] == [inspected["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]]
    assert me["ImageID"] == inspected["Image"]
    assert r["stats"], "Docker's stats document"


def test_a_second_agent_process_on_the_host_serves_its_tasks_through_the_first(server, agents, sdk_image):
    """Two agent processes on one host: the first holds 169.254.170.2, and a task of the
    second gets its role and metadata through it; when the first goes, the second takes
    the address over and its task is still served."""
    ecs = setup(server, agents, sdk_image, agent=False)
    first, _ = start_agent(ecs, agents, "agent1")
    _, second = start_agent(ecs, agents, "agent2")
    arn = ecs.start_task(cluster="prod", taskDefinition="sdk", containerInstances=[second])["tasks"][0]["taskArn"]
    t = running_task_of(ecs, arn)
    assert t["containerInstanceArn"] == second
    c = t["containers"][0]
    r = results(c["runtimeId"])[0]
    assert r["arn"] == f"arn:aws:sts::{A}:assumed-role/app/{arn.rsplit('/', 1)[1]}"
    assert r["described"] == ["prod"]
    assert r["task"]["TaskARN"] == arn and r["container"]["DockerId"] == c["runtimeId"]
    uri = r["env"]["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
    probe = ("import json, urllib.request, urllib.error\n"
             "try:\n print('GOT', json.load(urllib.request.urlopen('http://169.254.170.2" + uri + "', timeout=5))['RoleArn'])\n"
             "except Exception as e: print('FAILED', e)\n")
    # A container berth did not start, on the same bridge, is still refused by the second.
    out = docker("run", "--rm", "-e", "AWS_EC2_METADATA_DISABLED=true", sdk_image, "python3", "-c", probe).stdout
    assert out.startswith("FAILED HTTP Error 400"), out
    first.stop()

    def served():
        out = docker("exec", c["runtimeId"], "python3", "-c", probe).stdout
        return out if out.startswith("GOT") else None
    assert wait_for("the second agent to serve its task alone", served, timeout=20).split()[1] == \
        f"arn:aws:iam::{A}:role/app"


def test_a_task_without_a_role_gets_no_credentials(server, agents, sdk_image):
    ecs = setup(server, agents, sdk_image, role=False)
    t = running_task(ecs, "sdk")
    r = results(t["containers"][0]["runtimeId"])[0]
    assert r["env"]["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] is None
    assert r["credentials"] is None
    assert r["task"]["TaskARN"] == t["taskArn"]


def test_a_task_cannot_read_another_tasks_credentials(server, agents, sdk_image):
    ecs = setup(server, agents, sdk_image)
    one, two = running_task(ecs, "sdk"), running_task(ecs, "sdk")
    r1 = results(one["containers"][0]["runtimeId"])[0]
    uri = r1["env"]["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
    # The second task asks for the first one's credentials, from its own address: refused.
    probe = ("import urllib.request, urllib.error, sys\n"
             "try:\n urllib.request.urlopen('http://169.254.170.2" + uri + "', timeout=5); print('GOT')\n"
             "except urllib.error.HTTPError as e: print('HTTP', e.code, e.read().decode())\n")
    out = docker("exec", two["containers"][0]["runtimeId"], "python3", "-c", probe).stdout
    assert out.startswith("HTTP 400") and "InvalidIdInRequest" in out, out
    # A container berth did not start, on the same bridge, is refused too.
    out = docker("run", "--rm", "-e", "AWS_EC2_METADATA_DISABLED=true", sdk_image, "python3", "-c", probe).stdout
    assert out.startswith("HTTP 400"), out
    # The first task itself is served.
    own = docker("exec", one["containers"][0]["runtimeId"], "python3", "-c", probe).stdout
    assert own.startswith("GOT"), own


def test_credentials_rotate_before_they_expire(server, agents, sdk_image):
    """Sessions last 60 s here: the task's SDK sees new keys, each with time to spare."""
    ecs = setup(server, agents, sdk_image, every="8")
    t = running_task(ecs, "sdk")
    rs = results(t["containers"][0]["runtimeId"], count=6, timeout=90)
    keys = [r["credentials"] for r in rs]
    assert len(set(keys)) >= 2, keys
    assert all(r["described"] == ["prod"] for r in rs)


def test_a_host_network_tasks_sdk_acts_as_its_role(server, agents, sdk_image):
    ecs = setup(server, agents, sdk_image, mode="host")
    t = running_task(ecs, "sdk")
    r = results(t["containers"][0]["runtimeId"])[0]
    assert r["arn"].startswith(f"arn:aws:sts::{A}:assumed-role/app/")
    assert r["described"] == ["prod"] and r["listed"] == "AccessDeniedException"
    assert r["container"]["Networks"][0]["NetworkMode"] == "host"


def test_a_role_ecs_tasks_may_not_assume_stops_the_task(server, agents, sdk_image):
    ecs, iam = server.client("ecs"), server.client("iam")
    ecs.create_cluster(clusterName="prod")
    start_agent(ecs, agents)
    iam.create_role(RoleName="people", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"AWS": f"arn:aws:iam::{A}:root"}}]}))
    ecs.register_task_definition(family="x", executionRoleArn=f"arn:aws:iam::{A}:role/people",
                                 containerDefinitions=[app(sdk_image, "bridge")])
    arn = ecs.run_task(cluster="prod", taskDefinition="x")["tasks"][0]["taskArn"]

    def stopped():
        t = ecs.describe_tasks(cluster="prod", tasks=[arn])["tasks"][0]
        return t if t["lastStatus"] == "STOPPED" else None
    t = wait_for("the task to stop", stopped, timeout=60)
    assert t["stopCode"] == "TaskFailedToStart"
    assert t["stoppedReason"].startswith("ResourceInitializationError: unable to assume the task execution role")
    assert f"arn:aws:iam::{A}:role/people" in t["stoppedReason"]


def test_an_awsvpc_tasks_sdk_gets_its_role_and_metadata_over_its_own_link(server, agents, sdk_image):
    """The task's network is its VPC, which cannot reach berth's API: its SDK resolves the
    credentials, and the test uses them from outside."""
    ecs, iam = server.client("ecs"), server.client("iam")
    ecs.create_cluster(clusterName="prod")
    start_agent(ecs, agents)
    iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName="app", PolicyName="p", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "arn:aws:ecs:*:*:cluster/prod"}]}))
    c = app(sdk_image, "awsvpc")
    c["environment"].append({"name": "SHOW_SESSION", "value": "1"})
    ecs.register_task_definition(family="sdk", networkMode="awsvpc", containerDefinitions=[c],
                                 taskRoleArn=f"arn:aws:iam::{A}:role/app")
    subnet = server.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]
    arn = ecs.run_task(cluster="prod", taskDefinition="sdk", networkConfiguration={
        "awsvpcConfiguration": {"subnets": [subnet]}})["tasks"][0]["taskArn"]

    t, r = running_with_session(server, ecs, arn)
    eni = t["attachments"][0]
    details = {d["name"]: d["value"] for d in eni["details"]}
    me = r["container"]
    assert me["DockerId"] == t["containers"][0]["runtimeId"]
    net = me["Networks"][0]
    assert net["NetworkMode"] == "awsvpc"
    assert net["IPv4Addresses"] == [t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]]
    assert net["MACAddress"] == details["macAddress"]
    assert r["task"]["TaskARN"] == arn and r["task"]["Containers"][0]["Name"] == "app"


def test_a_fargate_tasks_sdk_gets_its_role_on_the_fleet(server, agents, sdk_image):
    """A FARGATE task on a fleet host (an account's task on the platform's host)."""
    ecs, iam = server.client("ecs"), server.client("iam")
    ecs.create_cluster(clusterName="prod")
    agents("fleet1", fleet=True, pull="prefer-cached").owner()
    iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(TRUST))
    c = app(sdk_image, "awsvpc")
    c["environment"].append({"name": "SHOW_SESSION", "value": "1"})
    ecs.register_task_definition(family="sdk", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                                 cpu="256", memory="512", containerDefinitions=[c],
                                 taskRoleArn=f"arn:aws:iam::{A}:role/app")
    subnet = server.client("ec2").describe_subnets()["Subnets"][0]["SubnetId"]

    def placed():
        out = ecs.run_task(cluster="prod", taskDefinition="sdk", launchType="FARGATE",
                           networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})
        return out["tasks"][0]["taskArn"] if out["tasks"] else None
    arn = wait_for("the fleet to take the task", placed, timeout=20)

    t, r = running_with_session(server, ecs, arn)
    assert r["task"]["LaunchType"] == "FARGATE"
    assert r["task"]["TaskARN"] == arn
    assert r["container"]["Networks"][0]["IPv4Addresses"] == [
        t["containers"][0]["networkInterfaces"][0]["privateIpv4Address"]]
