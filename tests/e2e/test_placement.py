"""RunTask placement on real agents: strategies, constraints and their errors."""
import json

import pytest

from docker_support import docker, wait_for

from test_tasks_ec2 import connected, sleeper


def placed_on(tasks):
    return sorted(t["containerInstanceArn"] for t in tasks)


def test_strategies_and_constraints_choose_instances(ecs, agents, registry):
    a = connected(ecs, agents("agent1", zone="us-east-1a"))["containerInstanceArn"]
    b = connected(ecs, agents("agent2", zone="us-east-1b", attributes=["disk=ssd"]))["containerInstanceArn"]
    ecs.register_task_definition(family="p", containerDefinitions=[sleeper(registry.image, stopTimeout=1)])
    started = []

    def run(**kw):
        out = ecs.run_task(taskDefinition="p", **kw)
        started.extend(t["taskArn"] for t in out["tasks"])
        return out

    out = run(count=4, group="spread", placementStrategy=[
        {"type": "spread", "field": "attribute:ecs.availability-zone"}])
    assert placed_on(out["tasks"]) == sorted([a, a, b, b])

    out = run(count=3, group="ssd", placementConstraints=[{"type": "memberOf", "expression": "attribute:disk == ssd"}])
    assert placed_on(out["tasks"]) == [b, b, b]

    out = run(count=3, group="once", placementConstraints=[{"type": "distinctInstance"}])
    assert placed_on(out["tasks"]) == sorted([a, b])
    reasons = {f["reason"] for f in out["failures"]}
    assert reasons == {"DistinctInstance placement constraint unsatisfied."}

    # task:group reads the groups already on each instance: only b runs "ssd" tasks.
    out = run(count=2, group="near-ssd", placementConstraints=[
        {"type": "memberOf", "expression": "task:group == ssd"}])
    assert placed_on(out["tasks"]) == [b, b]

    out = run(count=1, placementConstraints=[{"type": "memberOf", "expression": "attribute:disk == hdd"}])
    assert out["tasks"] == []
    assert sorted(f["arn"] for f in out["failures"]) == sorted([a, b])
    assert {f["reason"] for f in out["failures"]} == {"MemberOf placement constraint unsatisfied."}

    for bad in ([{"type": "memberOf", "expression": "attribute:disk ~~ ssd"}], [{"type": "memberOf"}]):
        with pytest.raises(ecs.exceptions.InvalidParameterException):
            ecs.run_task(taskDefinition="p", placementConstraints=bad)
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.run_task(taskDefinition="p", placementStrategy=[{"type": "binpack", "field": "disk"}])
    for arn in started:
        ecs.stop_task(task=arn)


def all_attributes(ecs, size=100):
    """Every attribute of the default cluster, page by page."""
    found, token = [], None
    for _ in range(50):
        page = ecs.list_attributes(targetType="container-instance", maxResults=size,
                                   **({"nextToken": token} if token else {}))
        found += page["attributes"]
        token = page.get("nextToken")
        if not token:
            return found
    raise AssertionError("ListAttributes kept giving tokens")


def attributes_of(ecs, arn):
    return {a["name"]: a.get("value") for a in all_attributes(ecs) if a["targetId"] == arn}


def test_attributes_put_through_the_api_place_tasks_and_outlive_an_agent_restart(ecs, agents, registry):
    agent_a = agents("agent1")
    a = connected(ecs, agent_a)["containerInstanceArn"]
    b = connected(ecs, agents("agent2", attributes=["disk=ssd"]))["containerInstanceArn"]
    ecs.register_task_definition(family="attr", containerDefinitions=[sleeper(registry.image, stopTimeout=1)])
    prod = [{"type": "memberOf", "expression": "attribute:stack == prod"}]
    started = []

    def placed(constraints, count=2):
        out = ecs.run_task(taskDefinition="attr", count=count, placementConstraints=constraints)
        started.extend(t["taskArn"] for t in out["tasks"])
        return placed_on(out["tasks"])

    assert placed(prod) == []
    # A short id needs its target type; the answer gives back what was put.
    short_id = a.rsplit("/", 1)[1]
    out = ecs.put_attributes(attributes=[
        {"name": "stack", "value": "prod", "targetId": short_id, "targetType": "container-instance"},
        {"name": "team/a.b", "targetId": a}])
    assert [x["name"] for x in out["attributes"]] == ["stack", "team/a.b"]
    assert attributes_of(ecs, a)["stack"] == "prod"
    assert "team/a.b" in attributes_of(ecs, a) and attributes_of(ecs, a)["team/a.b"] is None
    # The agent's own --attribute values are the same attributes, and ECS's are listed too.
    assert attributes_of(ecs, b)["disk"] == "ssd"
    assert attributes_of(ecs, a)["ecs.os-type"] == "linux"
    listed = ecs.list_attributes(targetType="container-instance", attributeName="stack", attributeValue="prod")
    assert [(x["targetId"], x["value"]) for x in listed["attributes"]] == [(a, "prod")]
    assert placed(prod) == [a, a]
    assert ecs.list_container_instances(filter="attribute:stack == prod")["containerInstanceArns"] == [a]

    # Pages of ten and of a hundred cover every attribute once.
    names = [(x["targetId"], x["name"]) for x in all_attributes(ecs, 10)]
    assert names == [(x["targetId"], x["name"]) for x in all_attributes(ecs, 100)]
    assert len(names) == len(set(names)) > 100 and (a, "stack") in names and (b, "disk") in names

    # A restarted agent registers again; what was put through the API stays.
    version = ecs.describe_container_instances(containerInstances=[a])["containerInstances"][0]["version"]
    agent_a.stop()
    agent_a.start()
    wait_for("the agent to register again", lambda: ecs.describe_container_instances(
        containerInstances=[a])["containerInstances"][0]["version"] > version, timeout=30)
    assert attributes_of(ecs, a)["stack"] == "prod"

    ecs.put_attributes(attributes=[{"name": "stack", "value": "dev", "targetId": a}])
    assert placed(prod) == []
    out = ecs.delete_attributes(attributes=[{"name": "stack", "targetId": a}])
    assert out["attributes"][0]["name"] == "stack"
    assert "stack" not in attributes_of(ecs, a)

    def refused(error, **kw):
        with pytest.raises(error) as e:
            ecs.put_attributes(**kw)
        return e.value.response["Error"]["Message"]

    ghost = a.rsplit("/", 1)[0] + "/0123456789abcdef0123456789abcdef"
    refused(ecs.exceptions.TargetNotFoundException, attributes=[{"name": "x", "targetId": ghost}])
    assert "reserved" in refused(ecs.exceptions.InvalidParameterException,
                                 attributes=[{"name": "ecs.os-type", "value": "windows", "targetId": a}])
    refused(ecs.exceptions.InvalidParameterException, attributes=[{"name": "x", "value": " lead", "targetId": a}])
    refused(ecs.exceptions.InvalidParameterException, attributes=[{"name": "x", "targetId": short_id}])
    refused(ecs.exceptions.ClusterNotFoundException, cluster="nope", attributes=[{"name": "x", "targetId": a}])
    # With team/a.b, nine more make ten custom attributes (ECS's own do not count).
    ecs.put_attributes(attributes=[{"name": f"c{i}", "targetId": a} for i in range(9)])
    refused(ecs.exceptions.AttributeLimitExceededException, attributes=[{"name": "c9", "targetId": a}])
    ecs.put_attributes(attributes=[{"name": "c0", "value": "again", "targetId": a}])
    # A refused call changes nothing, even for the attribute of it that was fine.
    refused(ecs.exceptions.TargetNotFoundException, attributes=[
        {"name": "fine", "targetId": b}, {"name": "x", "targetId": ghost}])
    assert "fine" not in attributes_of(ecs, b)
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.list_attributes(targetType="container-instance", attributeValue="prod")
    for arn in started:
        ecs.stop_task(task=arn)


def test_discover_poll_endpoint_answers_with_the_server_the_caller_reached(server, ecs, agents):
    arn = connected(ecs, agents("agent1"))["containerInstanceArn"]
    out = ecs.discover_poll_endpoint(containerInstance=arn, cluster="default")
    assert out["endpoint"] == server.endpoint + "/"
    assert out["telemetryEndpoint"] == out["serviceConnectEndpoint"] == out["endpoint"]
    # The aws CLI reaches it the same way, and an agent could poll there.
    cli = server.cli("ecs", "discover-poll-endpoint")
    assert cli["endpoint"] == server.endpoint + "/"


def test_gpus_are_placed_one_task_each_and_given_to_its_containers(ecs, agents, registry, tmp_path):
    plain = connected(ecs, agents("agent1"))["containerInstanceArn"]
    info = tmp_path / "nvidia-gpu-info.json"
    info.write_text(json.dumps({"DriverVersion": "535.0", "GPUIDs": ["GPU-0", "GPU-1", "GPU-2"]}))
    # This host has no NVIDIA runtime: Docker's own stands in, and the test reads what was asked of it.
    gpu_agent = agents("agent2", extra=["--enable-gpu-support", "--gpu-info-file", str(info),
                                        "--nvidia-runtime", "runc"])
    gpu = connected(ecs, gpu_agent)
    registered = {r["name"]: r for r in gpu["registeredResources"]}
    assert registered["GPU"]["stringSetValue"] == ["GPU-0", "GPU-1", "GPU-2"]
    assert "GPU" not in {r["name"] for r in ecs.describe_container_instances(
        containerInstances=[plain])["containerInstances"][0]["registeredResources"]}

    ml = sleeper(registry.image, name="ml", stopTimeout=1, resourceRequirements=[{"type": "GPU", "value": "1"}])
    side = sleeper(registry.image, name="side", stopTimeout=1)
    ecs.register_task_definition(family="gpu", containerDefinitions=[ml, side])
    out = ecs.run_task(taskDefinition="gpu", count=4)
    tasks = out["tasks"]
    assert placed_on(tasks) == [gpu["containerInstanceArn"]] * 3
    # The fourth finds no GPU anywhere.
    assert sorted((f["arn"], f["reason"]) for f in out["failures"]) == sorted(
        [(plain, "RESOURCE:GPU"), (gpu["containerInstanceArn"], "RESOURCE:GPU")])
    given = {t["taskArn"]: next(c for c in t["containers"] if c["name"] == "ml")["gpuIds"] for t in tasks}
    assert sorted(i for ids in given.values() for i in ids) == ["GPU-0", "GPU-1", "GPU-2"]
    assert all("gpuIds" not in c for t in tasks for c in t["containers"] if c["name"] == "side")
    remaining = {r["name"]: r for r in ecs.describe_container_instances(
        containerInstances=[gpu["containerInstanceArn"]])["containerInstances"][0]["remainingResources"]}
    assert "GPU" not in remaining or remaining["GPU"]["stringSetValue"] == []

    def running(arn):
        t = ecs.describe_tasks(tasks=[arn])["tasks"][0]
        return t if t["lastStatus"] == "RUNNING" else None
    first = tasks[0]["taskArn"]
    t = wait_for("a GPU task to run", lambda: running(first), timeout=60)
    ml_id = next(c for c in t["containers"] if c["name"] == "ml")["runtimeId"]
    side_id = next(c for c in t["containers"] if c["name"] == "side")["runtimeId"]
    inspected = json.loads(docker("inspect", ml_id).stdout)[0]
    assert f"NVIDIA_VISIBLE_DEVICES={','.join(given[first])}" in inspected["Config"]["Env"]
    assert inspected["HostConfig"]["Runtime"] == "runc"
    side_env = json.loads(docker("inspect", side_id).stdout)[0]["Config"]["Env"]
    assert not any(e.startswith("NVIDIA_VISIBLE_DEVICES=") for e in side_env)

    # A stopped task gives its GPU back, and the next task gets exactly that one.
    ecs.stop_task(task=first)
    wait_for("the GPU task to stop",
             lambda: ecs.describe_tasks(tasks=[first])["tasks"][0]["lastStatus"] == "STOPPED", timeout=60)
    again = ecs.run_task(taskDefinition="gpu")["tasks"]
    assert [next(c for c in t["containers"] if c["name"] == "ml")["gpuIds"] for t in again] == [given[first]]
    for arn in [t["taskArn"] for t in tasks[1:] + again]:
        ecs.stop_task(task=arn)
