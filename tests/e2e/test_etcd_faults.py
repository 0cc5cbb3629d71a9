"""Faults on a control plane of three servers sharing a three-member etcd cluster,
each with a client writing throughout (numbered RegisterTaskDefinitions, and a
RunTask every few) that records what was acknowledged. After each fault: every
acknowledged write is there, no task runs twice, no container is orphaned, the
controllers run again (a service is kept at its desired count) and the agent,
which knows every server, is connected and keeps its tasks."""
import json
import os
import signal
import subprocess
import threading
import time

import boto3
from botocore.config import Config

from conftest import ACCOUNTS, BERTH, REGION
from docker_support import TEST_IMAGE, Agent, docker, remove_containers_of, wait_for
from etcd_support import EtcdCluster, leader_pid, leads, start_servers

INSTANCE_TIMEOUT = 8
RUN_EVERY = 8


def ecs_of(server):
    _, key, secret = ACCOUNTS["a"]
    return boto3.client("ecs", endpoint_url=server.endpoint, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=20))


class Writer:
    """Writes numbered revisions (and runs a task every RUN_EVERY) round-robin over the
    servers, and keeps what each acknowledged write answered."""

    def __init__(self, servers):
        self.servers = servers
        self.revisions = {}  # n -> revision acknowledged
        self.tasks = {}  # task ARN -> n
        self.refused = 0
        self.n = 0
        self.stop = threading.Event()
        self.thread = None

    def start(self):
        self.stop.clear()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def halt(self):
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()

    def run(self):
        deadline = time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.n += 1
            n = self.n
            ecs = ecs_of(self.servers[n % len(self.servers)])
            try:
                td = ecs.register_task_definition(family="numbered", containerDefinitions=[{
                    "name": "app", "image": TEST_IMAGE, "memory": 8, "command": ["sleep", "3600"],
                    "environment": [{"name": "N", "value": str(n)}]}])["taskDefinition"]
                self.revisions[n] = td["revision"]
                if n % RUN_EVERY == 0:
                    run = ecs.run_task(taskDefinition=f"numbered:{td['revision']}", startedBy=f"n{n}")
                    for t in run["tasks"]:
                        self.tasks[t["taskArn"]] = n
            except Exception:
                # Not acknowledged: it may or may not have happened, and is not counted.
                self.refused += 1
            time.sleep(0.02)


class Plane:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.etcd = EtcdCluster(tmp_path / "etcd")
        self.servers = []
        self.agent = None
        self.instance = None

    def __enter__(self):
        self.etcd.__enter__()
        self.servers = start_servers(self.etcd, self.tmp_path, "--instance-timeout", str(INSTANCE_TIMEOUT), count=3)
        _, key, secret = ACCOUNTS["a"]
        self.agent = Agent(BERTH, self.servers, (key, secret), self.tmp_path / "agent", pull="prefer-cached").start()
        self.instance = self.agent.instance_arn()
        return self

    def __exit__(self, *exc):
        if self.agent:
            self.agent.stop()
        if self.instance:
            remove_containers_of(self.instance)
        for s in self.servers:
            s.stop()
        self.etcd.__exit__(*exc)

    def live(self):
        return [s for s in self.servers if s.proc.poll() is None]

    def leader(self):
        pid = wait_for("a leader", lambda: leader_pid(self.etcd), timeout=15)
        return next(s for s in self.servers if s.proc.pid == pid)

    def etcd_leader_member(self):
        out = subprocess.run(["etcdctl", "--endpoints", self.etcd.endpoints, "endpoint", "status", "-w", "json"],
                             capture_output=True, text=True, timeout=10, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
        status = json.loads(out.stdout)
        leader = status[0]["Status"]["leader"]
        endpoint = next(s["Endpoint"] for s in status if s["Status"]["header"]["member_id"] == leader)
        return next(name for name, url in self.etcd.client.items() if url == endpoint)


def containers_by_task(instance):
    out = docker("ps", "-a", "--filter", f"label=berth.container-instance={instance}",
                 "--format", '{{.Label "com.amazonaws.ecs.task-arn"}} {{.State}}').stdout
    by_task = {}
    for line in out.splitlines():
        if line.strip():
            arn, state = line.split(" ", 1)
            by_task.setdefault(arn, []).append(state)
    return by_task


def check(plane, writer, fault):
    """Everything acknowledged is there and the plane works again; answers the counts."""
    server = plane.live()[0]
    ecs = ecs_of(server)
    # Every acknowledged revision is there, holding its own number, and no two share one.
    assert len(set(writer.revisions.values())) == len(writer.revisions), fault
    present = 0
    for n, revision in writer.revisions.items():
        td = ecs.describe_task_definition(taskDefinition=f"numbered:{revision}")["taskDefinition"]
        env = td["containerDefinitions"][0]["environment"]
        assert env == [{"name": "N", "value": str(n)}], (fault, n, revision, env)
        present += 1
    # Every acknowledged task is there, once.
    arns = list(writer.tasks)
    found = {}
    for i in range(0, len(arns), 100):
        for t in ecs.describe_tasks(tasks=arns[i:i + 100])["tasks"]:
            found[t["taskArn"]] = t
    assert set(found) == set(arns), (fault, set(arns) - set(found))
    for arn, n in writer.tasks.items():
        assert found[arn]["startedBy"] == f"n{n}", fault
    # The controllers run: the service is kept at its desired count, by whichever server leads.
    wait_for(f"the service back at 2 after {fault}", lambda: len(ecs.list_tasks(
        serviceName="kept", desiredStatus="RUNNING")["taskArns"]) == 2 and ecs.describe_services(
        services=["kept"])["services"][0]["runningCount"] == 2, timeout=60)
    # The agent is connected, and none of its tasks was found lost.
    for s in plane.live():
        ci = ecs_of(s).describe_container_instances(containerInstances=[plane.instance])["containerInstances"][0]
        assert ci["agentConnected"] is True, (fault, s.endpoint)
    stopped = [t for t in found.values() if t["desiredStatus"] == "STOPPED"]
    assert stopped == [], (fault, [(t["taskArn"], t.get("stoppedReason")) for t in stopped])
    # Every acknowledged task runs in one container, and no container runs for a task the plane lost.
    def settled():
        by_task = containers_by_task(plane.instance)
        running = {arn: states for arn, states in by_task.items() if any(s == "running" for s in states)}
        return all(len(running.get(arn, [])) == 1 for arn in arns) and by_task
    by_task = wait_for(f"each task in one running container after {fault}", settled, timeout=60)
    # A write whose answer was lost may still have run a task: that one is known too, not orphaned.
    unacknowledged = [arn for arn, states in by_task.items() if "running" in states and arn not in found]
    orphans = []
    for i in range(0, len(unacknowledged), 100):
        orphans += [f["arn"] for f in ecs.describe_tasks(tasks=unacknowledged[i:i + 100])["failures"]]
    assert orphans == [], (fault, orphans)
    twice = [arn for arn, states in by_task.items() if states.count("running") > 1]
    assert twice == [], (fault, twice)
    # Exactly one live server leads.
    assert sum(leads(s) for s in plane.live()) == 1, fault
    return {"fault": fault, "acknowledged_revisions": len(writer.revisions), "present_revisions": present,
            "acknowledged_tasks": len(arns), "present_tasks": len(found), "refused_writes": writer.refused,
            "containers_running_twice": len(twice), "orphaned_containers": len(orphans)}


def test_acknowledged_writes_survive_each_fault_and_the_plane_recovers(tmp_path):
    results = []
    with Plane(tmp_path) as plane:
        ecs = ecs_of(plane.servers[0])
        ecs.register_task_definition(family="kept", containerDefinitions=[{
            "name": "app", "image": TEST_IMAGE, "memory": 8, "command": ["sleep", "3600"]}])
        ecs.create_service(serviceName="kept", taskDefinition="kept", desiredCount=2)
        writer = Writer(plane.servers)

        def fault(name, act, recover):
            writer.start()
            time.sleep(2)
            act()
            time.sleep(4)
            recover()
            time.sleep(2)
            writer.halt()
            results.append(check(plane, writer, name))

        def kill_leader():
            victim = plane.leader()
            victim.kill9()
            plane.victim = victim

        def kill_other():
            leader = plane.leader()
            victim = next(s for s in plane.servers if s is not leader)
            victim.kill9()
            plane.victim = victim

        def restart_victim():
            plane.victim.start()

        fault("kill -9 of the leader server", kill_leader, restart_victim)
        fault("kill -9 of a non-leader server", kill_other, restart_victim)

        def kill_member():
            name = next(n for n in plane.etcd.names if n != plane.etcd_leader_member())
            plane.etcd.procs[name].kill()
            plane.etcd.procs[name].wait(timeout=10)
            plane.member = name

        def restart_member():
            plane.etcd.start(plane.member, state="existing")
            wait_for("the member back", lambda: plane.etcd.healthy(plane.member), timeout=30)

        fault("kill -9 of an etcd member", kill_member, restart_member)

        def freeze_leader_member():
            # Stopped, not gone: its connections stay open and nothing answers on them.
            plane.member = plane.etcd_leader_member()
            os.kill(plane.etcd.procs[plane.member].pid, signal.SIGSTOP)

        def thaw_leader_member():
            os.kill(plane.etcd.procs[plane.member].pid, signal.SIGCONT)
            wait_for("the member back", lambda: plane.etcd.healthy(plane.member), timeout=30)

        fault("the etcd leader member stopped (SIGSTOP) for 4 s", freeze_leader_member, thaw_leader_member)

        def kill_all_servers():
            for s in plane.servers:
                s.kill9()

        def restart_all_servers():
            for s in plane.servers:
                s.start()

        fault("every server killed -9 and restarted", kill_all_servers, restart_all_servers)
    report = os.environ.get("BERTH_FAULTS_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(results, f, indent=2)
    for r in results:
        print(json.dumps(r))
    assert [r["acknowledged_revisions"] == r["present_revisions"] for r in results] == [True] * 5
