"""EC2 mode end to end: real `berth agent` processes running tasks through the
real Docker Engine, driven with boto3 and the aws CLI."""
import time
import urllib.request
from pathlib import Path

import pytest

from docker_support import containers_of, docker, wait_for


def web(image, **extra):
    c = {"name": "web", "image": image, "memory": 64,
         "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
         "portMappings": [{"containerPort": 80}]}
    c.update(extra)
    return c


def sleeper(image, name="app", seconds=300, **extra):
    c = {"name": name, "image": image, "memory": 32, "command": ["sleep", str(seconds)]}
    c.update(extra)
    return c


def describe(ecs, arn):
    return ecs.describe_tasks(tasks=[arn])["tasks"][0]


def wait_status(ecs, arn, status, timeout=40):
    def check():
        t = describe(ecs, arn)
        return t if t["lastStatus"] == status else None
    return wait_for(f"task {arn} to be {status}", check, timeout=timeout)


def connected(ecs, agent):
    arn = agent.instance_arn()

    def check():
        ci = ecs.describe_container_instances(containerInstances=[arn])["containerInstances"]
        return ci[0] if ci and ci[0]["agentConnected"] else None
    return wait_for("the agent to connect", check, timeout=20)


def resource(instance, kind, name):
    r = next(r for r in instance[kind] if r["name"] == name)
    return r.get("stringSetValue") if r["type"] == "STRINGSET" else r["integerValue"]


def run_one(ecs, family, **kw):
    out = ecs.run_task(taskDefinition=family, **kw)
    assert out["failures"] == [], out["failures"]
    assert len(out["tasks"]) == 1
    return out["tasks"][0]["taskArn"]


def test_web_task_on_a_dynamic_port_answers_and_stops(server, ecs, agents, registry):
    agent = agents()
    instance = connected(ecs, agent)
    assert instance["status"] == "ACTIVE"
    assert resource(instance, "registeredResources", "CPU") % 1024 == 0
    assert "22" in resource(instance, "registeredResources", "PORTS")
    attrs = {a["name"]: a.get("value") for a in instance["attributes"]}
    assert attrs["ecs.availability-zone"] == "us-east-1a"
    assert attrs["ecs.os-type"] == "linux"
    assert "ecs.capability.container-health-check" in attrs
    assert instance["versionInfo"]["dockerVersion"].startswith("DockerVersion: ")

    ecs.register_task_definition(family="web", containerDefinitions=[web(registry.image)])
    arn = run_one(ecs, "web", startedBy="e2e", group="web-group")
    task = wait_status(ecs, arn, "RUNNING")
    assert task["desiredStatus"] == "RUNNING"
    assert task["group"] == "web-group" and task["startedBy"] == "e2e"
    assert task["containerInstanceArn"] == instance["containerInstanceArn"]
    assert task["pullStartedAt"] <= task["pullStoppedAt"] <= task["startedAt"]
    container = task["containers"][0]
    assert container["lastStatus"] == "RUNNING" and container["runtimeId"]
    binding = next(b for b in container["networkBindings"] if b["bindIP"] == "0.0.0.0")
    assert binding["containerPort"] == 80 and binding["hostPort"] >= 1024
    body = urllib.request.urlopen(f"http://127.0.0.1:{binding['hostPort']}/", timeout=5).read()
    assert body == b"berth test page\n"

    # The instance accounts for the task; the cluster counts it.
    ci = ecs.describe_container_instances(containerInstances=[instance["containerInstanceArn"]])
    now = ci["containerInstances"][0]
    assert now["runningTasksCount"] == 1
    assert resource(now, "remainingResources", "MEMORY") == \
        resource(instance, "registeredResources", "MEMORY") - 64
    cluster = ecs.describe_clusters(clusters=["default"])["clusters"][0]
    assert cluster["runningTasksCount"] == 1
    assert cluster["registeredContainerInstancesCount"] == 1
    assert ecs.list_tasks(startedBy="e2e")["taskArns"] == [arn]
    assert ecs.list_tasks(family="other")["taskArns"] == []
    assert ecs.list_tasks(launchType="EC2")["taskArns"] == [arn]
    assert ecs.list_tasks(launchType="FARGATE")["taskArns"] == []
    assert ecs.list_tasks(containerInstance=instance["containerInstanceArn"])["taskArns"] == [arn]

    # DeleteCluster is refused while the cluster holds an instance (and tasks).
    err = ecs.exceptions.ClusterContainsContainerInstancesException
    with pytest.raises(err):
        ecs.delete_cluster(cluster="default")

    stopped = ecs.stop_task(task=arn, reason="e2e says stop")["task"]
    assert stopped["desiredStatus"] == "STOPPED"
    done = wait_status(ecs, arn, "STOPPED", timeout=60)
    assert done["stopCode"] == "UserInitiated"
    assert done["stoppedReason"] == "e2e says stop"
    assert done["stoppingAt"] <= done["stoppedAt"]
    assert done["containers"][0]["lastStatus"] == "STOPPED"
    running = [c for c in containers_of(instance["containerInstanceArn"]) if c[2] == "running"]
    assert running == []
    assert ecs.list_tasks()["taskArns"] == []
    assert ecs.list_tasks(desiredStatus="STOPPED")["taskArns"] == [arn]


def test_an_essential_container_exit_stops_the_task_with_its_exit_code(ecs, agents, registry):
    connected(ecs, agents())
    ecs.register_task_definition(family="exit", containerDefinitions=[
        sleeper(registry.image, name="side", seconds=300, essential=False, stopTimeout=2),
        {"name": "main", "image": registry.image, "memory": 32,
         "command": ["sh", "-c", "sleep 1; exit 3"]},
    ])
    arn = run_one(ecs, "exit")
    done = wait_status(ecs, arn, "STOPPED", timeout=60)
    assert done["stopCode"] == "EssentialContainerExited"
    assert done["stoppedReason"] == "Essential container in task exited"
    by_name = {c["name"]: c for c in done["containers"]}
    assert by_name["main"]["exitCode"] == 3
    # The other container was stopped along with it (busybox sleep dies on SIGTERM).
    assert by_name["side"]["lastStatus"] == "STOPPED"
    assert by_name["side"]["exitCode"] in (137, 143)


def test_depends_on_orders_container_starts(ecs, agents, registry):
    agent = agents()
    instance = connected(ecs, agent)["containerInstanceArn"]
    ecs.register_task_definition(family="ordered", containerDefinitions=[
        {"name": "init", "image": registry.image, "memory": 32, "essential": False,
         "command": ["sh", "-c", "sleep 1; exit 0"]},
        sleeper(registry.image, name="app", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}]),
    ])
    arn = run_one(ecs, "ordered")
    task = wait_status(ecs, arn, "RUNNING")
    by_name = {c["name"]: c for c in task["containers"]}
    assert by_name["init"]["lastStatus"] == "STOPPED" and by_name["init"]["exitCode"] == 0
    assert by_name["app"]["lastStatus"] == "RUNNING"
    init_finished = docker("inspect", "-f", "{{.State.FinishedAt}}", by_name["init"]["runtimeId"]).stdout
    app_started = docker("inspect", "-f", "{{.State.StartedAt}}", by_name["app"]["runtimeId"]).stdout
    assert app_started > init_finished, (app_started, init_finished)

    # A SUCCESS dependency that fails means the dependent never starts: the task stops.
    ecs.register_task_definition(family="broken-order", containerDefinitions=[
        {"name": "init", "image": registry.image, "memory": 32, "essential": False,
         "command": ["sh", "-c", "exit 1"]},
        sleeper(registry.image, name="app", dependsOn=[{"containerName": "init", "condition": "SUCCESS"}]),
    ])
    arn = run_one(ecs, "broken-order")
    done = wait_status(ecs, arn, "STOPPED")
    assert done["stopCode"] == "TaskFailedToStart"
    app = next(c for c in done["containers"] if c["name"] == "app")
    assert "exitCode" not in app
    broken_id = arn.rsplit("/", 1)[1]
    assert [c for c in containers_of(instance) if broken_id in c[1] and c[2] == "running"] == []


def test_health_checks_drive_container_and_task_health(ecs, agents, registry):
    connected(ecs, agents())
    check = {"interval": 5, "timeout": 2, "retries": 1, "startPeriod": 0}
    ecs.register_task_definition(family="health", containerDefinitions=[
        sleeper(registry.image, name="good", healthCheck=dict(check, command=["CMD-SHELL", "true"])),
    ])
    ecs.register_task_definition(family="sick", containerDefinitions=[
        sleeper(registry.image, name="bad", healthCheck=dict(check, command=["CMD-SHELL", "exit 1"])),
    ])
    good = run_one(ecs, "health")
    bad = run_one(ecs, "sick")
    t = wait_status(ecs, good, "RUNNING")
    assert t["containers"][0]["healthStatus"] in ("UNKNOWN", "HEALTHY")
    healthy = wait_for("HEALTHY", lambda: describe(ecs, good)["healthStatus"] == "HEALTHY", timeout=30)
    assert healthy
    t = describe(ecs, good)
    assert t["containers"][0]["healthStatus"] == "HEALTHY"
    wait_for("UNHEALTHY", lambda: describe(ecs, bad)["healthStatus"] == "UNHEALTHY", timeout=30)
    assert describe(ecs, bad)["containers"][0]["healthStatus"] == "UNHEALTHY"


def test_stop_timeout_is_honoured(ecs, agents, registry):
    connected(ecs, agents())
    # httpd as PID 1 ignores SIGTERM, so only the SIGKILL after stopTimeout ends it.
    ecs.register_task_definition(family="stubborn", containerDefinitions=[
        web(registry.image, stopTimeout=3, portMappings=[])])
    arn = run_one(ecs, "stubborn")
    wait_status(ecs, arn, "RUNNING")
    stopped = ecs.stop_task(task=arn)["task"]
    assert stopped["stoppedReason"] == "Task stopped by user"
    done = wait_status(ecs, arn, "STOPPED", timeout=30)
    took = (done["executionStoppedAt"] - done["stoppingAt"]).total_seconds()
    assert 2.5 <= took < 15, took
    assert done["containers"][0]["exitCode"] == 137


def test_failed_pull_stops_the_task(ecs, agents, registry):
    connected(ecs, agents())
    ecs.register_task_definition(family="nopull", containerDefinitions=[
        sleeper(f"{registry.host}/berth-test/missing:latest")])
    arn = run_one(ecs, "nopull")
    done = wait_status(ecs, arn, "STOPPED")
    assert done["stopCode"] == "TaskFailedToStart"
    assert done["stoppedReason"].startswith("CannotPullContainerError:")
    assert done["containers"][0]["reason"].startswith("CannotPullContainerError:")
    assert "exitCode" not in done["containers"][0]


def test_resource_exhaustion_answers_failures(ecs, agents, registry):
    instance = connected(ecs, agents())
    arn = instance["containerInstanceArn"]
    memory = resource(instance, "registeredResources", "MEMORY")
    cpu = resource(instance, "registeredResources", "CPU")
    ecs.register_task_definition(family="huge-mem", containerDefinitions=[
        sleeper(registry.image, memory=memory + 1)])
    ecs.register_task_definition(family="huge-cpu", containerDefinitions=[
        sleeper(registry.image, cpu=cpu + 1)])
    ecs.register_task_definition(family="port", containerDefinitions=[
        web(registry.image, portMappings=[{"containerPort": 80, "hostPort": 18080}])])
    out = ecs.run_task(taskDefinition="huge-mem")
    assert out["tasks"] == [] and out["failures"] == [{"arn": arn, "reason": "RESOURCE:MEMORY"}]
    out = ecs.run_task(taskDefinition="huge-cpu")
    assert out["failures"] == [{"arn": arn, "reason": "RESOURCE:CPU"}]
    out = ecs.run_task(taskDefinition="port", count=2)
    assert len(out["tasks"]) == 1
    assert out["failures"] == [{"arn": arn, "reason": "RESOURCE:PORTS"}]
    wait_status(ecs, out["tasks"][0]["taskArn"], "RUNNING")
    ports = resource(ecs.describe_container_instances(containerInstances=[arn])["containerInstances"][0],
                     "remainingResources", "PORTS")
    assert "18080" in ports
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.run_task(taskDefinition="port", count=11)
    with pytest.raises(ecs.exceptions.ClientException):
        ecs.run_task(taskDefinition="never-registered")


def test_agent_killed_and_restarted_adopts_its_containers(ecs, agents, registry):
    agent = agents()
    instance = connected(ecs, agent)["containerInstanceArn"]
    ecs.register_task_definition(family="keep", containerDefinitions=[sleeper(registry.image)])
    ecs.register_task_definition(family="dies", containerDefinitions=[sleeper(registry.image, name="d")])
    keep = run_one(ecs, "keep")
    dies = run_one(ecs, "dies")
    wait_status(ecs, keep, "RUNNING")
    dying = wait_status(ecs, dies, "RUNNING")["containers"][0]["runtimeId"]
    before = sorted(containers_of(instance))
    assert len(before) == 2

    agent.kill9()
    # While the agent is away one task's container dies on its own.
    docker("kill", dying)
    agent.start()
    assert agent.instance_arn() == instance
    done = wait_status(ecs, dies, "STOPPED")
    assert done["stopCode"] == "EssentialContainerExited"
    assert done["containers"][0]["exitCode"] == 137
    t = describe(ecs, keep)
    assert t["lastStatus"] == "RUNNING"
    # No task was started twice: the same containers, no new ones.
    assert sorted(c[0] for c in containers_of(instance)) == sorted(c[0] for c in before)
    running = [c for c in containers_of(instance) if c[2] == "running"]
    assert [c[0] for c in running] == [t["containers"][0]["runtimeId"][:12]]


def test_server_killed_and_restarted_loses_nothing_and_the_agent_reconnects(server, ecs, agents, registry):
    agent = agents()
    connected(ecs, agent)
    ecs.register_task_definition(family="survive", containerDefinitions=[sleeper(registry.image, stopTimeout=2)])
    arn = run_one(ecs, "survive")
    wait_status(ecs, arn, "RUNNING")
    server.kill9()
    server.start()
    assert describe(ecs, arn)["lastStatus"] == "RUNNING"
    ecs.stop_task(task=arn, reason="after restart")
    done = wait_status(ecs, arn, "STOPPED", timeout=60)
    assert done["stoppedReason"] == "after restart"


def test_two_agents_on_one_docker_keep_to_their_own(ecs, agents, registry):
    one = agents("agent1", zone="us-east-1a")
    two = agents("agent2", zone="us-east-1b", attributes=["team=blue"])
    a = connected(ecs, one)["containerInstanceArn"]
    b = connected(ecs, two)
    attrs = {x["name"]: x.get("value") for x in b["attributes"]}
    assert attrs["team"] == "blue" and attrs["ecs.availability-zone"] == "us-east-1b"
    b = b["containerInstanceArn"]
    assert sorted(ecs.list_container_instances()["containerInstanceArns"]) == sorted([a, b])
    # The cluster query language filters instances.
    assert ecs.list_container_instances(filter="attribute:team == blue")["containerInstanceArns"] == [b]
    assert ecs.list_container_instances(
        filter="attribute:ecs.availability-zone in [us-east-1a, us-east-1c]")["containerInstanceArns"] == [a]
    assert ecs.list_container_instances(
        filter="not(attribute:team exists) and agentConnected == true")["containerInstanceArns"] == [a]
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="filter expression"):
        ecs.list_container_instances(filter="attribute:team ~~ blue")
    ecs.register_task_definition(family="pin", containerDefinitions=[sleeper(registry.image, stopTimeout=2)])
    on_a = ecs.start_task(taskDefinition="pin", containerInstances=[a])["tasks"][0]["taskArn"]
    on_b = ecs.start_task(taskDefinition="pin", containerInstances=[b])["tasks"][0]["taskArn"]
    assert describe(ecs, on_b)["availabilityZone"] == "us-east-1b"
    wait_status(ecs, on_a, "RUNNING")
    wait_status(ecs, on_b, "RUNNING")
    assert len(containers_of(a)) == 1 and len(containers_of(b)) == 1
    ecs.stop_task(task=on_a)
    wait_status(ecs, on_a, "STOPPED")
    # The other agent's task and container are untouched.
    assert describe(ecs, on_b)["lastStatus"] == "RUNNING"
    assert [c[2] for c in containers_of(b)] == ["running"]

    # Draining: no new task goes to the drained instance.
    out = ecs.update_container_instances_state(containerInstances=[a], status="DRAINING")
    assert out["containerInstances"][0]["status"] == "DRAINING"
    placed = ecs.run_task(taskDefinition="pin", count=3)["tasks"]
    assert placed and all(t["containerInstanceArn"] == b for t in placed)
    for t in placed:
        ecs.stop_task(task=t["taskArn"])

    # Deregistering an instance with a running task needs force, which stops it.
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.deregister_container_instance(containerInstance=b)
    gone = ecs.deregister_container_instance(containerInstance=b, force=True)["containerInstance"]
    assert gone["status"] == "INACTIVE"
    wait_status(ecs, on_b, "STOPPED")
    assert b not in ecs.list_container_instances()["containerInstanceArns"]


def test_container_instance_and_task_errors(ecs, ecs_b, agents, registry):
    arn = connected(ecs, agents())["containerInstanceArn"]
    missing = ecs.describe_container_instances(containerInstances=["nope"])
    assert missing["failures"][0]["reason"] == "MISSING"
    assert ecs.describe_tasks(tasks=["0" * 32])["failures"][0]["reason"] == "MISSING"
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.stop_task(task="0" * 32)
    # Another account sees nothing of this one.
    with pytest.raises(ecs_b.exceptions.ClusterNotFoundException):
        ecs_b.describe_container_instances(containerInstances=[arn])
    ecs_b.create_cluster(clusterName="default")
    assert ecs_b.describe_container_instances(containerInstances=[arn])["failures"][0]["reason"] == "MISSING"
    assert ecs_b.list_container_instances()["containerInstanceArns"] == []
    ecs_b.register_task_definition(family="x", containerDefinitions=[sleeper(registry.image)])
    with pytest.raises(ecs_b.exceptions.InvalidParameterException, match="No Container Instances"):
        ecs_b.run_task(taskDefinition="x")


def task_cgroups(task_id):
    """The directories of a task's cgroup, in every hierarchy of the host."""
    return sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/berth/{task_id}")) + (
        [f"/sys/fs/cgroup/berth/{task_id}"] if Path(f"/sys/fs/cgroup/berth/{task_id}").is_dir() else [])


def test_task_level_cpu_and_memory_are_enforced(ecs, agents, registry):
    connected(ecs, agents())
    ecs.register_task_definition(family="limited", cpu="256", memory="64", containerDefinitions=[
        {"name": "app", "image": registry.image, "command": ["sleep", "300"], "stopTimeout": 2}])
    arn = run_one(ecs, "limited")
    task = wait_status(ecs, arn, "RUNNING")
    assert (task["cpu"], task["memory"]) == ("256", "64")
    task_id = arn.rsplit("/", 1)[1]
    runtime = task["containers"][0]["runtimeId"]
    assert docker("inspect", "-f", "{{.HostConfig.CgroupParent}}", runtime).stdout.strip() == f"/berth/{task_id}"
    limit = open(f"/sys/fs/cgroup/memory/berth/{task_id}/memory.limit_in_bytes").read().strip()
    assert int(limit) == 64 * 1024 * 1024
    quota = open(f"/sys/fs/cgroup/cpu/berth/{task_id}/cpu.cfs_quota_us").read().strip()
    assert int(quota) == 25000
    # Docker makes the task's cgroup in every controller, not only cpu and memory.
    assert len(task_cgroups(task_id)) > 2, task_cgroups(task_id)

    # A stopped task leaves no cgroup behind in any of them.
    ecs.stop_task(task=arn)
    wait_status(ecs, arn, "STOPPED")
    wait_for("the task's cgroups to go", lambda: task_cgroups(task_id) == [], timeout=30)

    # A container that outgrows the task's memory is killed by the kernel.
    ecs.register_task_definition(family="greedy", memory="32", containerDefinitions=[
        {"name": "app", "image": registry.image,
         "command": ["sh", "-c", "head -c 200000000 /dev/zero | tail > /dev/null"]}])
    arn = run_one(ecs, "greedy")
    done = wait_status(ecs, arn, "STOPPED")
    assert done["containers"][0]["exitCode"] != 0
    assert done["stopCode"] == "EssentialContainerExited"


def task_volumes(task_id):
    listed = docker("volume", "ls", "-q", "--filter", f"name=berth-{task_id}-").stdout
    return sorted(listed.split())


def test_a_tasks_volumes_go_with_its_containers_and_a_killed_agents_at_its_next_run(ecs, agents, registry):
    agent = agents(extra=["--task-cleanup-wait", "1"])
    connected(ecs, agent)
    # "data" has no host path: Docker makes a task volume; "shared" is shared and stays.
    ecs.register_task_definition(family="vols", containerDefinitions=[
        {"name": "app", "image": registry.image, "memory": 32, "command": ["sleep", "300"], "stopTimeout": 2,
         "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"},
                         {"sourceVolume": "shared", "containerPath": "/shared"}]}],
        volumes=[{"name": "data", "host": {}},
                 {"name": "shared", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": True}}])
    arn = run_one(ecs, "vols")
    wait_status(ecs, arn, "RUNNING")
    task_id = arn.rsplit("/", 1)[1]
    assert task_volumes(task_id) == [f"berth-{task_id}-data"]
    ecs.stop_task(task=arn)
    wait_status(ecs, arn, "STOPPED")
    # After the cleanup wait (and the next orphan sweep, at a poll) the task's
    # containers go, and its volume with them.
    wait_for("the task's volume to go", lambda: task_volumes(task_id) == [], timeout=90)
    assert docker("volume", "inspect", "shared", check=False).returncode == 0

    # A killed agent's task, stopped meanwhile, its containers removed while no
    # agent ran (a reboot, an operator): the agent's next run takes the volume away.
    arn = run_one(ecs, "vols")
    wait_status(ecs, arn, "RUNNING")
    task_id = arn.rsplit("/", 1)[1]
    agent.kill9()
    ecs.stop_task(task=arn)
    ids = [c[0] for c in containers_of(agent.owner()) if task_id in c[1]]
    assert ids, containers_of(agent.owner())
    docker("rm", "-f", *ids)
    assert task_volumes(task_id) == [f"berth-{task_id}-data"]
    agent.start()
    wait_for("the killed run's task volume to go", lambda: task_volumes(task_id) == [], timeout=90)
    docker("volume", "rm", "shared", check=False)


def test_berth_logs_reads_a_tasks_output(ecs, agents, registry):
    import subprocess
    from conftest import BERTH
    connected(ecs, agents())
    ecs.register_task_definition(family="talk", containerDefinitions=[
        {"name": "app", "image": registry.image, "memory": 32,
         "command": ["sh", "-c", "echo hello from berth; echo oops >&2; sleep 300"], "stopTimeout": 2}])
    ecs.register_task_definition(family="ticks", containerDefinitions=[
        {"name": "app", "image": registry.image, "memory": 32,
         "command": ["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 1; done"]}])
    arn = run_one(ecs, "talk")
    wait_status(ecs, arn, "RUNNING")
    out = wait_for("the output", lambda: (p := subprocess.run(
        [str(BERTH), "logs", arn], capture_output=True, text=True, timeout=20)).stdout.count("\n") >= 2 and p)
    assert "hello from berth\n" in out.stdout and "oops\n" in out.stdout
    missing = subprocess.run([str(BERTH), "logs", "f" * 32], capture_output=True, text=True, timeout=20)
    assert missing.returncode != 0 and "no containers" in missing.stderr

    ticks = run_one(ecs, "ticks")
    wait_status(ecs, ticks, "RUNNING")
    follow = subprocess.run([str(BERTH), "logs", "--follow", ticks.rsplit("/", 1)[1]],
                            capture_output=True, text=True, timeout=30)
    assert follow.stdout.endswith("tick 3\n"), follow.stdout


def test_container_definition_features_reach_docker(ecs, agents, registry, tmp_path):
    import json as jsonlib
    import os
    connected(ecs, agents())
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    os.chmod(host_dir, 0o777)
    script = ("wget -q -O /host/fetched http://database:8080/hello; cat /shared/hello > /host/copied; "
              "id -u > /host/uid; pwd > /host/pwd; echo $FOO > /host/env; sleep 300")
    ecs.register_task_definition(family="features", volumes=[
        {"name": "shared"}, {"name": "hostdir", "host": {"sourcePath": str(host_dir)}}],
        containerDefinitions=[
            {"name": "db", "image": registry.image, "memory": 32, "stopTimeout": 2,
             "command": ["sh", "-c", "echo from-db > /shared/hello; exec httpd -f -p 8080 -h /shared"],
             "mountPoints": [{"sourceVolume": "shared", "containerPath": "/shared"}],
             "dockerLabels": {"team": "blue"},
             "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m", "max-file": "2"}},
             "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}]},
            {"name": "app", "image": registry.image, "memory": 32, "stopTimeout": 2,
             "command": ["sh", "-c", "sleep 30"],
             "links": ["db:database"], "volumesFrom": [{"sourceContainer": "db", "readOnly": True}],
             "mountPoints": [{"sourceVolume": "hostdir", "containerPath": "/host"}],
             "readonlyRootFilesystem": True, "user": "65534", "workingDirectory": "/www",
             "environment": [{"name": "FOO", "value": "from-definition"}],
             "linuxParameters": {"initProcessEnabled": True, "capabilities": {"drop": ["NET_RAW"]}},
             "dependsOn": [{"containerName": "db", "condition": "START"}]},
        ])
    out = ecs.run_task(taskDefinition="features", tags=[{"key": "env", "value": "e2e"}], overrides={
        "containerOverrides": [{"name": "app", "command": ["sh", "-c", script],
                                "environment": [{"name": "FOO", "value": "overridden"}]}]})
    arn = out["tasks"][0]["taskArn"]
    task = wait_status(ecs, arn, "RUNNING")
    by_name = {c["name"]: c for c in task["containers"]}
    wait_for("the app's files", lambda: (host_dir / "env").exists(), timeout=20)
    assert (host_dir / "fetched").read_text() == "from-db\n"
    assert (host_dir / "copied").read_text() == "from-db\n"
    assert (host_dir / "uid").read_text() == "65534\n"
    assert (host_dir / "pwd").read_text() == "/www\n"
    assert (host_dir / "env").read_text() == "overridden\n"

    db = jsonlib.loads(docker("inspect", by_name["db"]["runtimeId"]).stdout)[0]
    app = jsonlib.loads(docker("inspect", by_name["app"]["runtimeId"]).stdout)[0]
    labels = db["Config"]["Labels"]
    assert labels["com.amazonaws.ecs.task-arn"] == arn
    assert labels["com.amazonaws.ecs.container-name"] == "db"
    assert labels["com.amazonaws.ecs.cluster"].endswith(":cluster/default")
    assert labels["com.amazonaws.ecs.task-definition-family"] == "features"
    assert labels["com.amazonaws.ecs.task-definition-version"] == "1"
    assert labels["berth.container-instance"] == task["containerInstanceArn"]
    assert labels["team"] == "blue"
    assert db["HostConfig"]["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert db["HostConfig"]["Memory"] == 32 * 1024 * 1024
    assert db["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
    assert app["HostConfig"]["ReadonlyRootfs"] is True
    assert app["HostConfig"]["Init"] is True
    assert app["HostConfig"]["CapDrop"] == ["NET_RAW"]
    assert app["Config"]["User"] == "65534"

    # Tags: given at RunTask, shown with include TAGS, and taggable afterwards.
    assert "tags" not in describe(ecs, arn)
    tagged = ecs.describe_tasks(tasks=[arn], include=["TAGS"])["tasks"][0]
    assert tagged["tags"] == [{"key": "env", "value": "e2e"}]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "more", "value": "yes"}])
    assert {t["key"] for t in ecs.list_tags_for_resource(resourceArn=arn)["tags"]} == {"env", "more"}
    instance = task["containerInstanceArn"]
    ecs.tag_resource(resourceArn=instance, tags=[{"key": "rack", "value": "r1"}])
    assert ecs.list_tags_for_resource(resourceArn=instance)["tags"] == [{"key": "rack", "value": "r1"}]


def test_delete_cluster_is_refused_while_tasks_are_active(ecs, agents, registry):
    agent = agents()
    instance = connected(ecs, agent)["containerInstanceArn"]
    ecs.register_task_definition(family="hold", containerDefinitions=[sleeper(registry.image, stopTimeout=1)])
    arn = run_one(ecs, "hold")
    wait_status(ecs, arn, "RUNNING")
    # With its agent gone the task cannot stop, so the cluster still holds it.
    agent.kill9()
    ecs.deregister_container_instance(containerInstance=instance, force=True)
    with pytest.raises(ecs.exceptions.ClusterContainsTasksException):
        ecs.delete_cluster(cluster="default")
    assert describe(ecs, arn)["desiredStatus"] == "STOPPED"


def test_depends_on_complete_and_healthy(ecs, agents, registry):
    connected(ecs, agents())
    check = {"command": ["CMD-SHELL", "test -f /tmp/ready"], "interval": 5, "timeout": 2, "retries": 3}
    ecs.register_task_definition(family="gated", containerDefinitions=[
        {"name": "setup", "image": registry.image, "memory": 32, "essential": False,
         "command": ["sh", "-c", "sleep 1; exit 7"]},
        sleeper(registry.image, name="db", stopTimeout=1, healthCheck=check,
                command=["sh", "-c", "touch /tmp/ready; sleep 300"]),
        sleeper(registry.image, name="app", stopTimeout=1, dependsOn=[
            {"containerName": "setup", "condition": "COMPLETE"},
            {"containerName": "db", "condition": "HEALTHY"}]),
    ])
    arn = run_one(ecs, "gated")
    task = wait_status(ecs, arn, "RUNNING", timeout=60)
    by_name = {c["name"]: c for c in task["containers"]}
    assert by_name["setup"]["exitCode"] == 7, "COMPLETE accepts any exit code"
    assert by_name["db"]["healthStatus"] == "HEALTHY"
    assert task["healthStatus"] == "HEALTHY"
    app_started = docker("inspect", "-f", "{{.State.StartedAt}}", by_name["app"]["runtimeId"]).stdout
    db_health = json_health_time(by_name["db"]["runtimeId"])
    assert app_started > db_health, (app_started, db_health)


def json_health_time(container):
    """When Docker first logged a passing health check for `container`."""
    import json as jsonlib
    state = jsonlib.loads(docker("inspect", "-f", "{{json .State.Health}}", container).stdout)
    return min(entry["End"] for entry in state["Log"] if entry["ExitCode"] == 0)


def test_host_network_mode_binds_the_container_port(ecs, agents, registry):
    import socket
    connected(ecs, agents())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ecs.register_task_definition(family="hostnet", networkMode="host", containerDefinitions=[
        web(registry.image, stopTimeout=1, command=["httpd", "-f", "-p", str(port), "-h", "/www"],
            portMappings=[{"containerPort": port}])])
    arn = run_one(ecs, "hostnet")
    task = wait_status(ecs, arn, "RUNNING")
    assert task["containers"][0]["networkBindings"] == [
        {"bindIP": "0.0.0.0", "containerPort": port, "hostPort": port, "protocol": "tcp"}]
    body = wait_for("the page", lambda: _get(f"http://127.0.0.1:{port}/"), timeout=10)
    assert body == b"berth test page\n"
    instance = ecs.describe_container_instances(containerInstances=[task["containerInstanceArn"]])
    assert str(port) in resource(instance["containerInstances"][0], "remainingResources", "PORTS")
    # The port is taken on that instance: a second copy cannot go there.
    out = ecs.run_task(taskDefinition="hostnet")
    assert out["failures"] == [{"arn": task["containerInstanceArn"], "reason": "RESOURCE:PORTS"}]


def _get(url):
    try:
        return urllib.request.urlopen(url, timeout=2).read()
    except OSError:
        return None


@pytest.mark.server_args("--instance-timeout", "2")
def test_a_silent_agent_is_disconnected_and_gets_no_tasks(ecs, agents, registry):
    agent = agents()
    instance = connected(ecs, agent)["containerInstanceArn"]
    ecs.register_task_definition(family="lonely", containerDefinitions=[sleeper(registry.image)])
    # A healthy agent stays connected across its long polls, which outlast the timeout.
    time.sleep(4)
    assert ecs.describe_container_instances(containerInstances=[instance])["containerInstances"][0][
        "agentConnected"] is True
    agent.kill9()
    wait_for("agentConnected to turn false", lambda: not ecs.describe_container_instances(
        containerInstances=[instance])["containerInstances"][0]["agentConnected"], timeout=30)
    out = ecs.run_task(taskDefinition="lonely")
    assert out["tasks"] == [] and out["failures"] == [{"arn": instance, "reason": "AGENT"}]
    agent.start()
    connected(ecs, agent)
    wait_status(ecs, run_one(ecs, "lonely"), "RUNNING")
