"""Several `berth server`s on one etcd cluster (Debian's etcd-server, three
members on loopback): every server answers every call, a write acknowledged by
one is read by the next call to any other, and compare-and-swap writes through
different servers never both win."""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ACCOUNTS, BERTH, CONFIG, Berth
from docker_support import TEST_IMAGE, Agent, free_port, remove_containers_of, wait_for
from etcd_support import EtcdCluster, leader_pid, leads, start_servers
from test_ecr import blob_file, docker_cli, first_layer, login, push, unique_image  # noqa: F401 (a fixture)


@pytest.fixture
def etcd(tmp_path):
    with EtcdCluster(tmp_path / "etcd") as cluster:
        yield cluster


@pytest.fixture
def servers(etcd, tmp_path):
    started = start_servers(etcd, tmp_path)
    yield started
    for b in started:
        b.stop()


def test_a_write_on_one_server_is_read_by_the_next_call_to_another(servers):
    a, b = servers
    ecs_a, ecs_b = a.client("ecs"), b.client("ecs")
    for i in range(30):
        ecs_a.create_cluster(clusterName=f"c{i}")
        described = ecs_b.describe_clusters(clusters=[f"c{i}"])
        assert [c["status"] for c in described["clusters"]] == ["ACTIVE"], i
        ecs_b.delete_cluster(cluster=f"c{i}")
        assert ecs_a.describe_clusters(clusters=[f"c{i}"])["clusters"][0]["status"] == "INACTIVE", i
    # An IAM user's key made through one server signs calls to the other at once.
    iam = a.client("iam")
    iam.create_user(UserName="ops")
    iam.put_user_policy(UserName="ops", PolicyName="list", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecs:ListClusters", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="ops")["AccessKey"]
    import boto3
    from botocore.config import Config
    ops = boto3.client("ecs", endpoint_url=b.endpoint, region_name="us-east-1",
                       aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                       config=Config(retries={"max_attempts": 1}))
    assert ops.list_clusters()["clusterArns"] == []


def counter(server, name, **labels):
    """A counter's value in a server's /metrics (0 when it has no such sample)."""
    with urllib.request.urlopen(server.endpoint + "/metrics", timeout=5) as r:
        families = text_string_to_metric_families(r.read().decode())
    return sum(s.value for f in families for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def server_log(server):
    return (server.data_dir.parent / "server.log").read_text(errors="replace")


def readers(etcd):
    """The servers listed as answering reads from their views: URL -> the lease they hold."""
    out = subprocess.run(["etcdctl", "--endpoints", etcd.endpoints, "get", "coordination/readers/", "--prefix",
                          "--print-value-only"], capture_output=True, text=True, timeout=10,
                         env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return {r["url"]: r["lease"] for r in records}


def test_servers_read_from_their_own_views_under_a_read_lease(servers, etcd):
    a, b = servers
    wait_for("both servers listed as readers", lambda: sorted(readers(etcd)) == sorted([a.endpoint, b.endpoint]), timeout=10)
    before = counter(b, "berth_view_reads_total", through="store")
    ecs_a, ecs_b = a.client("ecs"), b.client("ecs")
    for i in range(20):
        ecs_a.create_cluster(clusterName=f"lease{i}")
        assert [c["status"] for c in ecs_b.describe_clusters(clusters=[f"lease{i}"])["clusters"]] == ["ACTIVE"]
    # b answered from its view every time, and a's writes waited for it rather than b asking etcd.
    assert counter(b, "berth_view_reads_total", through="lease") >= 20
    assert counter(b, "berth_view_reads_total", through="store") == before
    assert counter(a, "berth_read_leases_ended_total") == 0


def test_a_server_the_others_cannot_reach_loses_its_read_lease_and_still_reads_every_write(etcd, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    [a] = start_servers(etcd, tmp_path / "a", count=1)
    # b tells the others a URL where nothing listens: they cannot learn how far its view got.
    nowhere = f"http://127.0.0.1:{free_port()}"
    [b] = start_servers(etcd, tmp_path / "b", "--advertise-url", nowhere, count=1)
    try:
        wait_for("both servers listed as readers", lambda: len(readers(etcd)) == 2, timeout=10)
        first_lease = readers(etcd)[nowhere]
        began = time.monotonic()
        a.client("ecs").create_cluster(clusterName="unheard")
        took = time.monotonic() - began
        # a waited its patience (5 s) for b, ended b's lease and waited out its time to live (2 s).
        assert 6.5 < took < 20, took
        assert counter(a, "berth_read_leases_ended_total") >= 1
        # b holds a new lease, taken after the write: it reads from its view only once that shows it.
        assert readers(etcd).get(nowhere) not in (None, first_lease)
        assert b.client("ecs").describe_clusters(clusters=["unheard"])["clusters"][0]["status"] == "ACTIVE"
        # b said so in its log when it started.
        assert "--advertise-url does not reach this server" in server_log(b)
        assert "--advertise-url does not reach" not in server_log(a)
    finally:
        a.stop()
        b.stop()


def test_a_server_stopped_past_its_read_lease_reads_what_was_written_meanwhile(servers, etcd):
    a, b = servers
    wait_for("both servers listed as readers", lambda: len(readers(etcd)) == 2, timeout=10)
    ecs_a, ecs_b = a.client("ecs"), b.client("ecs")
    ecs_a.create_cluster(clusterName="before")
    assert ecs_b.describe_clusters(clusters=["before"])["clusters"][0]["status"] == "ACTIVE"
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        # b cannot show these writes: a acknowledges each once b's lease has run out.
        began = time.monotonic()
        ecs_a.create_cluster(clusterName="during")
        ecs_a.delete_cluster(cluster="before")
        took = time.monotonic() - began
        assert took < 15, took
        wait_for("b's lease gone", lambda: a.endpoint in readers(etcd) and len(readers(etcd)) == 1, timeout=10)
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    # b's view missed both writes, but its lease ran out while it was stopped: it does not answer
    # from that view until it has caught up (through etcd, or under a new lease taken after them).
    described = ecs_b.describe_clusters(clusters=["during", "before"])["clusters"]
    assert {c["clusterName"]: c["status"] for c in described} == {"during": "ACTIVE", "before": "INACTIVE"}
    # And it takes a new lease and answers from its view again.
    wait_for("b listed again", lambda: len(readers(etcd)) == 2, timeout=10)
    ecs_a.create_cluster(clusterName="after")
    assert ecs_b.describe_clusters(clusters=["after"])["clusters"][0]["status"] == "ACTIVE"


def test_revisions_registered_through_two_servers_at_once_are_each_given_once(servers):
    clients = [s.client("ecs") for s in servers]
    container = [{"name": "app", "image": "busybox", "memory": 32}]

    def register(n):
        ecs = clients[n % 2]
        return ecs.register_task_definition(family="race", containerDefinitions=container)[
            "taskDefinition"]["revision"]
    # Sixteen writers on one family's revision counter: each loses to the other server many times.
    with ThreadPoolExecutor(16) as pool:
        revisions = list(pool.map(register, range(160)))
    assert sorted(revisions) == list(range(1, 161))
    # Registrations through the server that does not lead went on to the leader, which made them all.
    leader = next(s for s in servers if leads(s))
    assert counter(leader, "berth_api_requests_total", operation="RegisterTaskDefinition", code="Success") == 160
    listed = clients[1].list_task_definitions(familyPrefix="race", maxResults=100)
    listed = listed["taskDefinitionArns"] + clients[0].list_task_definitions(
        familyPrefix="race", maxResults=100, nextToken=listed["nextToken"])["taskDefinitionArns"]
    assert len(set(listed)) == 160


def test_acknowledged_writes_survive_kill_9_of_a_server_and_of_an_etcd_member(servers, etcd):
    a, b = servers
    ecs_a, ecs_b = a.client("ecs"), b.client("ecs")
    for i in range(10):
        ecs_a.create_cluster(clusterName=f"before{i}")
    a.kill9()
    # The other server answers everything a acknowledged.
    assert len(ecs_b.list_clusters()["clusterArns"]) == 10
    # One etcd member gone: the other two are a quorum, and writes go on.
    victim = etcd.names[0]
    etcd.procs[victim].kill()
    etcd.procs[victim].wait(timeout=10)
    acknowledged = []
    for i in range(10):
        ecs_b.create_cluster(clusterName=f"during{i}")
        acknowledged.append(f"during{i}")
    a.start()
    names = {arn.split("/")[-1] for arn in a.client("ecs").list_clusters()["clusterArns"]}
    assert names == {f"before{i}" for i in range(10)} | set(acknowledged)
    etcd.start(victim, state="existing")
    wait_for("the member to rejoin", lambda: etcd.healthy(victim), timeout=30)


def test_one_server_runs_the_controllers_and_another_takes_over_when_it_dies(servers, etcd):
    pids = {s.proc.pid: s for s in servers}
    first = wait_for("a leader", lambda: leader_pid(etcd), timeout=10)
    assert first in pids
    # It stays the leader while it lives.
    for _ in range(5):
        time.sleep(0.5)
        assert leader_pid(etcd) == first
    # Each server's /metrics says whether it leads.
    assert {pid: leads(s) for pid, s in pids.items()} == {pid: pid == first for pid in pids}
    pids[first].kill9()
    died = time.monotonic()
    second = wait_for("another leader", lambda: (p := leader_pid(etcd)) not in (None, first) and p, timeout=10)
    took = time.monotonic() - died
    assert second in pids and second != first
    wait_for("the new leader's metrics to say so", lambda: leads(pids[second]), timeout=5)
    # The lease runs out (2 s) and the next campaign tick takes it; the benchmark measures it.
    assert took < 5, took


@pytest.fixture
def short_timeout(etcd, tmp_path):
    """Two servers with a 6 s instance timeout: (timeout, leader, other, start_agent); agents and
    their containers are gone after."""
    timeout = 6
    servers = start_servers(etcd, tmp_path, "--instance-timeout", str(timeout))
    agents = []

    def start_agent(to):
        _, key, secret = ACCOUNTS["a"]
        agents.append(Agent(BERTH, to, (key, secret), tmp_path / "agent", pull="prefer-cached").start())
        return agents[-1]

    try:
        pids = {s.proc.pid: s for s in servers}
        leader = pids[wait_for("a leader", lambda: leader_pid(etcd), timeout=10)]
        other = next(s for s in servers if s is not leader)
        yield timeout, leader, other, start_agent
    finally:
        for a in agents:
            a.stop()
            try:
                remove_containers_of(a.instance_arn(timeout=1))
            except AssertionError:
                pass  # it never registered
        for s in servers:
            s.stop()


def test_an_agent_polling_another_server_is_not_lost_to_the_leader(short_timeout):
    timeout, leader, other, start_agent = short_timeout
    agent = start_agent(other)
    instance = agent.instance_arn()
    ecs = other.client("ecs")
    ecs.register_task_definition(family="sleeper", containerDefinitions=[{
        "name": "app", "image": TEST_IMAGE, "memory": 32, "command": ["sleep", "600"]}])
    task = ecs.run_task(taskDefinition="sleeper")["tasks"][0]["taskArn"]
    wait_for("the task to run", lambda: ecs.describe_tasks(tasks=[task])["tasks"][0]["lastStatus"] == "RUNNING",
             timeout=60)
    # Three timeouts pass with the agent polling the other server only: the leader, which runs
    # the lost-host controller, hears of it through the store and leaves its task alone.
    time.sleep(3 * timeout)
    described = leader.client("ecs").describe_tasks(tasks=[task])["tasks"][0]
    assert (described["lastStatus"], described["desiredStatus"]) == ("RUNNING", "RUNNING"), described
    ci = leader.client("ecs").describe_container_instances(containerInstances=[instance])
    assert ci["containerInstances"][0]["agentConnected"] is True
    # Once the agent is gone for good, the leader does find the host lost.
    agent.kill9()
    wait_for("the leader to find the host lost", lambda: leader.client("ecs").describe_tasks(
        tasks=[task])["tasks"][0]["desiredStatus"] == "STOPPED", timeout=6 * timeout)


def test_a_new_agent_is_known_connected_to_every_server_within_seconds(etcd, tmp_path):
    # With a 120 s timeout servers tell each other their agents every 30 s; a new one is told at once.
    a, b = start_servers(etcd, tmp_path, "--instance-timeout", "120")
    _, key, secret = ACCOUNTS["a"]
    agent = Agent(BERTH, a, (key, secret), tmp_path / "agent", pull="prefer-cached")
    instance = None
    try:
        # Both servers have shared what they heard (nothing) before the agent arrives.
        time.sleep(2)
        agent.start()
        instance = agent.instance_arn()
        wait_for("b to know the agent connected", lambda: b.client("ecs").describe_container_instances(
            containerInstances=[instance])["containerInstances"][0]["agentConnected"], timeout=5)
        b.client("ecs").register_task_definition(family="quick", containerDefinitions=[{
            "name": "app", "image": TEST_IMAGE, "memory": 32, "command": ["sleep", "600"]}])
        started = b.client("ecs").start_task(taskDefinition="quick", containerInstances=[instance])
        assert started["failures"] == [] and len(started["tasks"]) == 1, started
    finally:
        agent.stop()
        if instance:
            remove_containers_of(instance)
        a.stop()
        b.stop()


def log_pages(logs, servers, **request):
    """Every event of a stream, one page per call, each call through the next server in turn."""
    events, token, seen = [], None, set()
    forward = request.get("startFromHead", False)
    for i in range(100):
        page = servers[i % len(servers)].get_log_events(**request, **({"nextToken": token} if token else {}))
        events = events + page["events"] if forward else page["events"] + events
        token = page["nextForwardToken" if forward else "nextBackwardToken"]
        if token in seen:
            return events
        seen.add(token)
    raise AssertionError("paging never ended")


def test_log_events_taken_by_either_server_are_read_through_both(servers, etcd):
    a, b = servers
    wait_for("both servers listed as readers", lambda: sorted(readers(etcd)) == sorted([a.endpoint, b.endpoint]), timeout=10)
    logs_a, logs_b = a.client("logs"), b.client("logs")
    logs_a.create_log_group(logGroupName="/ecs/web")
    stream = {"logGroupName": "/ecs/web", "logStreamName": "ecs/web/1"}
    logs_a.create_log_stream(**stream)
    now = int(time.time() * 1000)
    # Interleaved in time, and two in the very same millisecond on different servers.
    logs_a.put_log_events(**stream, logEvents=[{"timestamp": now + t, "message": f"a{t}"} for t in (0, 2, 4)])
    logs_b.put_log_events(**stream, logEvents=[{"timestamp": now + t, "message": f"b{t}"} for t in (1, 3, 4)])
    every = ["a0", "b1", "a2", "b3"]
    for logs in (logs_a, logs_b):
        got = [e["message"] for e in logs.get_log_events(**stream, startFromHead=True)["events"]]
        assert got[:4] == every and sorted(got[4:]) == ["a4", "b4"], got
    ordered = [e["message"] for e in logs_a.get_log_events(**stream, startFromHead=True)["events"]]
    # A token one server gave means the same to the other: one event a page, alternating servers.
    forward = log_pages(None, [logs_a, logs_b], **stream, startFromHead=True, limit=1)
    assert [e["message"] for e in forward] == ordered
    backward = log_pages(None, [logs_b, logs_a], **stream, limit=1)
    assert [e["message"] for e in backward] == ordered
    found = logs_b.filter_log_events(logGroupName="/ecs/web", filterPattern="b1 ?a2 ?a4")["events"]
    assert sorted(e["message"] for e in found) == ["a2", "a4", "b1"]
    assert len({e["eventId"] for e in logs_a.filter_log_events(logGroupName="/ecs/web")["events"]}) == 6
    for logs in (logs_a, logs_b):
        [described] = logs.describe_log_streams(logGroupName="/ecs/web")["logStreams"]
        assert (described["firstEventTimestamp"], described["lastEventTimestamp"]) == (now, now + 4)
    # Deleted through a: b drops the events it held, so a stream made again under the name starts empty.
    logs_a.delete_log_stream(**stream)
    logs_a.create_log_stream(**stream)
    wait_for("b's events of the deleted stream gone",
             lambda: logs_a.get_log_events(**stream, startFromHead=True)["events"] == [], timeout=10)
    assert logs_b.describe_log_streams(logGroupName="/ecs/web")["logStreams"][0].get("lastEventTimestamp") is None


def test_a_stopped_servers_log_events_come_back_with_it_and_its_peer_endpoint_wants_a_seal(servers, etcd):
    a, b = servers
    wait_for("both servers listed as readers", lambda: len(readers(etcd)) == 2, timeout=10)
    logs_a, logs_b = a.client("logs"), b.client("logs")
    logs_a.create_log_group(logGroupName="/ecs/app")
    stream = {"logGroupName": "/ecs/app", "logStreamName": "s"}
    logs_a.create_log_stream(**stream)
    now = int(time.time() * 1000)
    logs_a.put_log_events(**stream, logEvents=[{"timestamp": now, "message": "held by a"}])
    logs_b.put_log_events(**stream, logEvents=[{"timestamp": now + 1, "message": "held by b"}])

    def read_through_a():
        try:
            return [e["message"] for e in logs_a.get_log_events(**stream, startFromHead=True)["events"]]
        except logs_a.exceptions.ServiceUnavailableException:
            return None  # b was still listed and did not answer: the SDKs retry this

    assert read_through_a() == ["held by a", "held by b"]
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        # Once b's lease has run out, a answers with what it holds.
        wait_for("a reads without b", lambda: read_through_a() == ["held by a"], timeout=30)
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    wait_for("b's events back", lambda: read_through_a() == ["held by a", "held by b"], timeout=30)
    # Only a server holding the shared key may ask for a server's events.
    query = json.dumps({"stats": {"keys": [["000000000000/us-east-1//ecs/app:s", now]]}}).encode()
    for headers in ({}, {"x-berth-peer": "bm90IGEgc2VhbA=="}):
        request = urllib.request.Request(b.endpoint + "/_berth/log-events", data=query, method="POST",
                                         headers={"content-type": "application/json", **headers})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 403


def test_an_image_pushed_through_one_server_is_pulled_through_another(etcd, tmp_path, docker_cli):
    shared = tmp_path / "images"
    a, b = start_servers(etcd, tmp_path, "--registry-listen", "127.0.0.1:0",
                         "--registry-storage-dir", str(shared))
    try:
        repo = a.cli("ecr", "create-repository", "--repository-name", "shared/web")["repository"]
        for s in (a, b):
            login(s, docker_cli)
        path = repo["repositoryUri"].split("/", 1)[1]
        out = push(docker_cli, unique_image("shared-web"), f"{a.registry}/{path}:v1")
        assert out.returncode == 0, out.stderr
        pushed = next(w for w in out.stdout.split() if w.startswith("sha256:"))
        # b's registry finds the image in the store's records and its blobs in the shared storage.
        described = b.client("ecr").describe_images(repositoryName="shared/web")["imageDetails"]
        assert [d["imageDigest"] for d in described] == [pushed]
        pulled = docker_cli("pull", f"{b.registry}/{path}:v1", check=False)
        assert pulled.returncode == 0, pulled.stderr
        assert pushed in pulled.stdout, pulled.stdout
        docker_cli("rmi", f"{b.registry}/{path}:v1", check=False)
    finally:
        a.stop()
        b.stop()


def test_blobs_on_shared_storage_are_collected_with_every_server_holding_its_pushes(etcd, tmp_path, docker_cli):
    shared = tmp_path / "images"
    a, b = start_servers(etcd, tmp_path, "--registry-listen", "127.0.0.1:0", "--registry-gc-quiet-secs", "1",
                         "--registry-storage-dir", str(shared))
    try:
        wait_for("both servers listed as readers", lambda: len(readers(etcd)) == 2, timeout=10)
        repo = a.cli("ecr", "create-repository", "--repository-name", "gc")["repository"]
        path = repo["repositoryUri"].split("/", 1)[1]
        for s in (a, b):
            login(s, docker_cli)
        for tag in ("gone", "kept"):
            assert push(docker_cli, unique_image(f"shared-gc-{tag}"), f"{b.registry}/{path}:{tag}").returncode == 0
        ecr = a.client("ecr")
        gone, kept = (Path(blob_file(a, first_layer(ecr, "gc", tag), storage=shared)) for tag in ("gone", "kept"))
        assert gone.exists() and kept.exists()
        ecr.batch_delete_image(repositoryName="gc", imageIds=[{"imageTag": "gone"}])
        # The leader collects once the other server holds its pushes for it.
        wait_for("the deleted image's layer to be collected", lambda: not gone.exists(), timeout=60)
        assert kept.exists()
        # The collection is over: both servers take pushes again, and the kept image pulls from either.
        assert push(docker_cli, unique_image("shared-gc-after"), f"{a.registry}/{path}:after").returncode == 0
        assert push(docker_cli, unique_image("shared-gc-after-b"), f"{b.registry}/{path}:after-b").returncode == 0
        for s in (a, b):
            pulled = docker_cli("pull", f"{s.registry}/{path}:kept", check=False)
            assert pulled.returncode == 0, pulled.stderr
            docker_cli("rmi", f"{s.registry}/{path}:kept", check=False)
    finally:
        a.stop()
        b.stop()


def test_an_agent_moves_to_another_server_when_its_own_dies(etcd, short_timeout):
    timeout, leader, other, start_agent = short_timeout
    # The agent polls the leader first: its death costs both the agent's server and the controllers.
    agent = start_agent([leader, other])
    instance = agent.instance_arn()
    ecs = other.client("ecs")
    ecs.register_task_definition(family="sleeper", containerDefinitions=[{
        "name": "app", "image": TEST_IMAGE, "memory": 32, "command": ["sleep", "600"]}])
    # The other server hears of the agent through the leader's presence record.
    wait_for("the agent to show connected on the other server", lambda: ecs.describe_container_instances(
        containerInstances=[instance])["containerInstances"][0]["agentConnected"], timeout=10)
    first = ecs.run_task(taskDefinition="sleeper")["tasks"][0]["taskArn"]
    wait_for("the task to run", lambda: ecs.describe_tasks(tasks=[first])["tasks"][0]["lastStatus"] == "RUNNING",
             timeout=60)
    leader.kill9()
    wait_for("the other server to lead", lambda: leader_pid(etcd) == other.proc.pid, timeout=10)
    # Past three timeouts the new leader has kept the task: the agent polls it now.
    time.sleep(3 * timeout)
    described = ecs.describe_tasks(tasks=[first])["tasks"][0]
    assert (described["lastStatus"], described["desiredStatus"]) == ("RUNNING", "RUNNING"), described
    ci = ecs.describe_container_instances(containerInstances=[instance])["containerInstances"][0]
    assert ci["agentConnected"] is True
    # A task placed through the surviving server reaches the agent and runs.
    second = ecs.run_task(taskDefinition="sleeper")["tasks"][0]["taskArn"]
    wait_for("the second task to run",
             lambda: ecs.describe_tasks(tasks=[second])["tasks"][0]["lastStatus"] == "RUNNING", timeout=30)
    log = agent.log()
    assert "poll failed" in log and leader.endpoint in log, log[-2000:]


def test_an_embedded_installation_copied_onto_etcd_serves_the_same_resources(etcd, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    old = Berth(tmp_path / "old" / "data", cfg).start()
    try:
        ecs = old.client("ecs")
        for i in range(150):
            ecs.create_cluster(clusterName=f"c{i}", tags=[{"key": "n", "value": str(i)}])
        for i in range(3):
            ecs.register_task_definition(family="web", containerDefinitions=[
                {"name": "app", "image": "nginx", "memory": 64 + i}])
        ecs.deregister_task_definition(taskDefinition="web:2")
        old.client("secretsmanager").create_secret(Name="db", SecretString="s3cret")
        iam = old.client("iam")
        iam.create_user(UserName="ops")
        key = iam.create_access_key(UserName="ops")["AccessKey"]
        # The copy refuses a store a server still has open (the file is locked).
        running = subprocess.run([str(BERTH), "store", "copy", "--from", f"embedded:{old.data_dir}",
                                  "--to", f"etcd:{etcd.endpoints}"], capture_output=True, text=True, timeout=60)
        assert running.returncode != 0 and "opening the store" in running.stderr, running.stderr
    finally:
        old.stop()
    copied = subprocess.run([str(BERTH), "store", "copy", "--from", f"embedded:{old.data_dir}",
                             "--to", f"etcd:{etcd.endpoints}"], capture_output=True, text=True, timeout=120)
    assert copied.returncode == 0, copied.stderr
    first = copied.stdout.splitlines()[0]
    count, checksum = int(first.split()[1]), first.split()[-1]
    assert count > 150 and len(checksum) == 64, first
    # Counted and summed again from the other side: the same.
    back = subprocess.run([str(BERTH), "store", "copy", "--from", f"etcd:{etcd.endpoints}",
                           "--to", f"embedded:{tmp_path / 'back'}"], capture_output=True, text=True, timeout=120)
    assert back.returncode == 0, back.stderr
    assert back.stdout.splitlines()[0] == first
    # A second copy onto the now used etcd is refused, and changes nothing.
    again = subprocess.run([str(BERTH), "store", "copy", "--from", f"embedded:{old.data_dir}",
                            "--to", f"etcd:{etcd.endpoints}"], capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and f"already holds {count} keys" in again.stderr, again.stderr

    new = Berth(tmp_path / "new" / "data", cfg, args=(
        "--store", "etcd", "--etcd-endpoints", etcd.endpoints,
        "--secrets-key-file", str(old.data_dir / "secrets.key"))).start()
    try:
        ecs = new.client("ecs")
        described = ecs.describe_clusters(clusters=[f"c{i}" for i in range(100)], include=["TAGS"])["clusters"]
        assert [c["tags"] for c in described] == [[{"key": "n", "value": str(i)}] for i in range(100)]
        assert len(ecs.list_clusters(maxResults=100)["clusterArns"]) == 100
        assert ecs.describe_task_definition(taskDefinition="web:2")["taskDefinition"]["status"] == "INACTIVE"
        # Revisions go on from where they were.
        assert ecs.register_task_definition(family="web", containerDefinitions=[
            {"name": "app", "image": "nginx", "memory": 64}])["taskDefinition"]["revision"] == 4
        assert new.client("secretsmanager").get_secret_value(SecretId="db")["SecretString"] == "s3cret"
        import boto3
        from botocore.config import Config
        ops = boto3.client("sts", endpoint_url=new.endpoint, region_name="us-east-1",
                           aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                           config=Config(retries={"max_attempts": 1}))
        assert ops.get_caller_identity()["Arn"].endswith(":user/ops")
    finally:
        new.stop()


def test_compare_and_swaps_through_two_servers_are_linearizable(servers):
    """Secrets Manager's UpdateSecretVersionStage moves AWSCURRENT only from the version named in
    RemoveFromVersionId: a compare-and-swap on one key. Four clients, two per server, race on it."""
    from linearizability import INFINITY, Op, linearizable
    first = servers[0].client("secretsmanager").create_secret(Name="register", SecretString="0")["VersionId"]
    history, lock = [], __import__("threading").Lock()

    def client(c):
        sm = servers[c % 2].client("secretsmanager")
        ops = []
        for i in range(25):
            began = time.monotonic()
            try:
                seen = sm.get_secret_value(SecretId="register")["VersionId"]
                ops.append(Op("read", began, time.monotonic(), value=seen))
            except Exception:
                continue
            # A new version under this client's own label: it does not move AWSCURRENT.
            new = sm.put_secret_value(SecretId="register", SecretString=f"{c}.{i}",
                                      VersionStages=[f"client{c}"])["VersionId"]
            began = time.monotonic()
            try:
                sm.update_secret_version_stage(SecretId="register", VersionStage="AWSCURRENT",
                                               MoveToVersionId=new, RemoveFromVersionId=seen)
                ops.append(Op("cas", began, time.monotonic(), old=seen, new=new, ok=True))
            except sm.exceptions.InvalidParameterException:
                ops.append(Op("cas", began, time.monotonic(), old=seen, new=new, ok=False))
            except Exception:
                ops.append(Op("cas", began, INFINITY, old=seen, new=new, ok=None))
        with lock:
            history.extend(ops)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(client, range(4)))
    swaps = [op for op in history if op.kind == "cas"]
    won = sum(1 for op in swaps if op.ok)
    print(f"{len(history)} operations, {len(swaps)} compare-and-swaps, {won} won")
    assert len(swaps) >= 90 and won >= 1
    assert linearizable(history, first)
    # The checker is not lenient with this history: a lost swap claimed as won breaks it.
    lost = [op for op in swaps if op.ok is False]
    if lost:
        forged = [Op("cas", op.start, op.end, old=op.old, new=op.new, ok=True) if op is lost[0] else op
                  for op in history]
        assert not linearizable(forged, first)


def test_a_server_on_etcd_makes_its_data_directory(etcd, tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    data = tmp_path / "not" / "made" / "yet"
    proc = subprocess.Popen([str(BERTH), "server", "--listen", "127.0.0.1:0", "--data-dir", str(data),
                             "--config", str(cfg), "--store", "etcd", "--etcd-endpoints", etcd.endpoints],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("listening on ") or first.startswith("registry"), proc.stderr.read()[-2000:]
        # Log events and the secrets key live there whatever the store.
        assert (data / "logs.redb").is_file() and (data / "secrets.key").is_file()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def make_certs(d):
    """A CA, etcd's certificate for 127.0.0.1 and a client certificate, as an operator makes them."""
    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=berth-test-ca")
    for name, ext in [("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
                      ("client", "extendedKeyUsage=clientAuth\n")]:
        (d / f"{name}.ext").write_text(ext)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=berth-test-{name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext")


def test_a_server_reaches_etcd_over_tls_with_a_client_certificate(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs)
    client, peer = f"https://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    etcd = subprocess.Popen(
        ["etcd", "--name", "tls", "--data-dir", str(tmp_path / "etcd"),
         "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", f"tls={peer}",
         "--cert-file", str(certs / "server.pem"), "--key-file", str(certs / "server.key"),
         "--trusted-ca-file", str(certs / "ca.pem"), "--client-cert-auth"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "etcd.log", "ab"))
    tls = ["--etcd-ca-file", str(certs / "ca.pem")]
    identity = ["--etcd-cert-file", str(certs / "client.pem"), "--etcd-key-file", str(certs / "client.key")]
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    try:
        def healthy():
            out = subprocess.run(["etcdctl", "--endpoints", client, "--cacert", str(certs / "ca.pem"),
                                  "--cert", str(certs / "client.pem"), "--key", str(certs / "client.key"),
                                  "endpoint", "health"], capture_output=True, text=True, timeout=10,
                                 env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
            return out.returncode == 0
        wait_for("etcd over TLS", healthy, timeout=30)
        server = Berth(tmp_path / "server" / "data", cfg,
                       args=("--store", "etcd", "--etcd-endpoints", client, *tls, *identity)).start()
        try:
            ecs = server.client("ecs")
            ecs.create_cluster(clusterName="over-tls")
            assert [c["status"] for c in ecs.describe_clusters(clusters=["over-tls"])["clusters"]] == ["ACTIVE"]
        finally:
            server.stop()
        # etcd asks for a client certificate: without one the server does not start.
        refused = subprocess.run([str(BERTH), "server", "--listen", "127.0.0.1:0", "--data-dir",
                                  str(tmp_path / "refused"), "--config", str(cfg), "--store", "etcd",
                                  "--etcd-endpoints", client, *tls], capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "etcd" in refused.stderr, refused.stderr[-2000:]
    finally:
        etcd.kill()
        etcd.wait(timeout=10)
        shutil.rmtree(tmp_path / "etcd", ignore_errors=True)
