"""Services on real agents and Docker: steady state, replacement, rolling updates,
the circuit breaker, spread, lost hosts, DAEMON, draining and deletion."""
import pytest

from docker_support import containers_of, docker, wait_for
from test_tasks_ec2 import connected, sleeper

FAST = {"Delay": 1, "MaxAttempts": 90}


def service(ecs, name, cluster="default"):
    return ecs.describe_services(cluster=cluster, services=[name])["services"][0]


def stable(ecs, name, cluster="default"):
    """The real services-stable waiter (polled every second)."""
    ecs.get_waiter("services_stable").wait(cluster=cluster, services=[name], WaiterConfig=FAST)
    return service(ecs, name, cluster)


def running_tasks(ecs, name, cluster="default"):
    arns = ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"]
    if not arns:
        return []
    return [t for t in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if t["lastStatus"] == "RUNNING"]


def messages(svc):
    return [e["message"] for e in svc["events"]]


def two_agents(ecs, agents):
    a = connected(ecs, agents("agent1", zone="us-east-1a"))["containerInstanceArn"]
    b = connected(ecs, agents("agent2", zone="us-east-1b"))["containerInstanceArn"]
    return a, b


def register(ecs, registry, family="web", **extra):
    td = ecs.register_task_definition(
        family=family, containerDefinitions=[sleeper(registry.image, stopTimeout=1, **extra)])
    return td["taskDefinition"]["taskDefinitionArn"]


def test_service_reaches_steady_state_spreads_and_replaces_a_killed_container(ecs, agents, registry):
    a, b = two_agents(ecs, agents)
    register(ecs, registry)
    created = ecs.create_service(serviceName="web", taskDefinition="web", desiredCount=2)["service"]
    assert created["status"] == "ACTIVE"
    assert created["deployments"][0]["status"] == "PRIMARY"
    assert created["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    assert created["deploymentConfiguration"]["minimumHealthyPercent"] == 100
    svc = stable(ecs, "web")
    assert (svc["runningCount"], svc["pendingCount"], svc["desiredCount"]) == (2, 0, 2)
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
    started = [m for m in messages(svc) if "has started 2 tasks" in m]
    assert started and started[0].startswith("(service web) has started 2 tasks: (task ")
    assert "(service web) has reached a steady state." in messages(svc)
    tasks = running_tasks(ecs, "web")
    # Services spread across zones by default: one copy per agent.
    assert sorted(t["containerInstanceArn"] for t in tasks) == sorted([a, b])
    assert all(t["group"] == "service:web" for t in tasks)
    assert {t["startedBy"] for t in tasks} == {svc["deployments"][0]["id"]}
    assert svc["deployments"][0]["id"].startswith("ecs-svc/")

    # Kill the container on agent2: the task stops and the service replaces it.
    victim = next(t for t in tasks if t["containerInstanceArn"] == b)
    cid = victim["containers"][0]["runtimeId"]
    docker("kill", cid)

    def replaced():
        now = running_tasks(ecs, "web")
        arns = {t["taskArn"] for t in now}
        return now if len(now) == 2 and victim["taskArn"] not in arns else None
    wait_for("the killed task to be replaced", replaced, timeout=60)
    old = ecs.describe_tasks(tasks=[victim["taskArn"]])["tasks"][0]
    assert old["stopCode"] == "EssentialContainerExited"
    svc = stable(ecs, "web")
    assert svc["runningCount"] == 2
    assert any("has started 1 tasks" in m for m in messages(svc))
    ecs.delete_service(service="web", force=True)


def test_rolling_update_and_scale_out_across_zones(ecs, agents, registry):
    a, b = two_agents(ecs, agents)
    first = register(ecs, registry)
    ecs.create_service(serviceName="web", taskDefinition="web", desiredCount=2,
                       deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 150})
    stable(ecs, "web")
    old = {t["taskArn"] for t in running_tasks(ecs, "web")}
    second = register(ecs, registry, environment=[{"name": "REV", "value": "2"}])
    svc = ecs.update_service(service="web", taskDefinition="web")["service"]
    assert [d["status"] for d in svc["deployments"]] == ["PRIMARY", "ACTIVE"]
    assert svc["deployments"][0]["taskDefinition"] == second
    assert svc["deployments"][1]["taskDefinition"] == first
    svc = stable(ecs, "web")
    assert len(svc["deployments"]) == 1
    assert svc["deployments"][0]["taskDefinition"] == second
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
    assert svc["taskDefinition"] == second
    now = running_tasks(ecs, "web")
    assert {t["taskDefinitionArn"] for t in now} == {second}
    assert not old & {t["taskArn"] for t in now}
    stopped = ecs.describe_tasks(tasks=sorted(old))["tasks"]
    assert all(t["desiredStatus"] == "STOPPED" for t in stopped)
    assert all(t["stopCode"] == "ServiceSchedulerInitiated" for t in stopped)
    assert all(t["stoppedReason"].startswith("Scaling activity initiated by (deployment ecs-svc/")
               for t in stopped)
    assert any("deployment completed." in m for m in messages(svc))

    ecs.update_service(service="web", desiredCount=4)
    svc = stable(ecs, "web")
    assert svc["runningCount"] == 4
    zones = sorted(t["availabilityZone"] for t in running_tasks(ecs, "web"))
    assert zones == ["us-east-1a", "us-east-1a", "us-east-1b", "us-east-1b"]

    ecs.update_service(service="web", desiredCount=1)
    svc = stable(ecs, "web")
    assert svc["runningCount"] == 1
    assert len(running_tasks(ecs, "web")) == 1
    ecs.delete_service(service="web", force=True)


def test_broken_revision_trips_the_circuit_breaker_and_rolls_back(ecs, agents, registry):
    two_agents(ecs, agents)
    good = register(ecs, registry)
    ecs.create_service(
        serviceName="web", taskDefinition="web", desiredCount=2,
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    good_deployment = stable(ecs, "web")["deployments"][0]["id"]
    broken = ecs.register_task_definition(family="web", containerDefinitions=[
        {"name": "app", "image": registry.image, "memory": 32, "command": ["sh", "-c", "exit 3"]}
    ])["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(service="web", taskDefinition=broken)

    def rolled_back():
        svc = service(ecs, "web")
        p = svc["deployments"][0]
        return svc if p["taskDefinition"] == good and p["id"] != good_deployment else None
    svc = wait_for("the circuit breaker to roll back", rolled_back, timeout=90)
    # The broken deployment's tasks all exited on their own: at least the threshold (3) of them.
    stopped = ecs.list_tasks(serviceName="web", desiredStatus="STOPPED")["taskArns"]
    broken_tasks = [t for t in ecs.describe_tasks(tasks=stopped)["tasks"] if t["taskDefinitionArn"] == broken]
    codes = [t["stopCode"] for t in broken_tasks]
    assert codes.count("EssentialContainerExited") >= 3, codes
    # One still starting when the rollback came is stopped by the scheduler, as ECS does.
    assert set(codes) <= {"EssentialContainerExited", "ServiceSchedulerInitiated"}, codes
    primary = svc["deployments"][0]
    assert primary["rolloutStateReason"] == \
        f"ECS deployment circuit breaker: rolling back to deploymentId {good_deployment}."
    assert any("deployment failed: tasks failed to start." in m for m in messages(svc))
    svc = stable(ecs, "web")
    assert svc["taskDefinition"] == good
    assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
    assert {t["taskDefinitionArn"] for t in running_tasks(ecs, "web")} == {good}
    ecs.delete_service(service="web", force=True)


@pytest.mark.server_args("--instance-timeout", "3")
def test_lost_host_is_healed_and_leaves_no_duplicate(ecs, agents, registry):
    a = connected(ecs, agents("agent1", zone="us-east-1a"))["containerInstanceArn"]
    agent2 = agents("agent2", zone="us-east-1b")
    b = connected(ecs, agent2)["containerInstanceArn"]
    register(ecs, registry)
    ecs.create_service(serviceName="web", taskDefinition="web", desiredCount=2)
    stable(ecs, "web")
    lost = next(t for t in running_tasks(ecs, "web") if t["containerInstanceArn"] == b)
    # kill -9 the agent; its container keeps running, as on a partitioned host.
    agent2.kill9()
    assert any(c[2] == "running" for c in containers_of(b))

    def healed():
        t = ecs.describe_tasks(tasks=[lost["taskArn"]])["tasks"][0]
        now = running_tasks(ecs, "web")
        return t if t["lastStatus"] == "STOPPED" and len(now) == 2 else None
    t = wait_for("the lost host's task to be replaced", healed, timeout=30)
    assert t["stopCode"] == "InfrastructureHealth"
    assert "was lost" in t["stoppedReason"]
    assert {x["containerInstanceArn"] for x in running_tasks(ecs, "web")} == {a}
    ci = ecs.describe_container_instances(containerInstances=[b])["containerInstances"][0]
    assert ci["agentConnected"] is False

    # The agent comes back: it stops the replaced task's container, never two copies.
    agent2.start()
    wait_for("the replaced container to be stopped",
             lambda: all(c[2] != "running" for c in containers_of(b)), timeout=40)
    assert len(running_tasks(ecs, "web")) == 2
    assert service(ecs, "web")["runningCount"] == 2
    ecs.delete_service(service="web", force=True)


def test_daemon_service_follows_instances_and_draining_moves_tasks(ecs, agents, registry):
    a = connected(ecs, agents("agent1", zone="us-east-1a"))["containerInstanceArn"]
    register(ecs, registry, family="daemon")
    svc = ecs.create_service(serviceName="d", taskDefinition="daemon", schedulingStrategy="DAEMON")["service"]
    assert svc["schedulingStrategy"] == "DAEMON"
    assert svc["deploymentConfiguration"]["maximumPercent"] == 100
    svc = stable(ecs, "d")
    assert svc["desiredCount"] == 1
    b = connected(ecs, agents("agent2", zone="us-east-1b"))["containerInstanceArn"]
    wait_for("a daemon copy on the new instance",
             lambda: sorted(t["containerInstanceArn"] for t in running_tasks(ecs, "d")) == sorted([a, b]),
             timeout=60)
    assert stable(ecs, "d")["desiredCount"] == 2

    register(ecs, registry, family="web")
    ecs.create_service(serviceName="web", taskDefinition="web", desiredCount=2)
    stable(ecs, "web")
    ecs.update_container_instances_state(containerInstances=[b], status="DRAINING")
    wait_for("service tasks to leave the draining instance",
             lambda: [t["containerInstanceArn"] for t in running_tasks(ecs, "web")] == [a, a], timeout=60)
    wait_for("the daemon copy to leave the draining instance",
             lambda: [t["containerInstanceArn"] for t in running_tasks(ecs, "d")] == [a], timeout=60)
    assert stable(ecs, "web")["runningCount"] == 2
    assert stable(ecs, "d")["desiredCount"] == 1
    assert ecs.list_tasks(containerInstance=b)["taskArns"] == []
    for name in ("web", "d"):
        ecs.delete_service(service=name, force=True)


def test_delete_service_and_the_aws_cli_waiters(server, ecs, agents, registry):
    a = connected(ecs, agents("agent1"))["containerInstanceArn"]
    register(ecs, registry)
    ecs.create_service(serviceName="web", taskDefinition="web", desiredCount=2)
    server.cli("ecs", "wait", "services-stable", "--services", "web")
    assert len([c for c in containers_of(a) if c[2] == "running"]) == 2
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.delete_service(service="web")
    assert "scaled above 0" in str(e.value)
    svc = ecs.delete_service(service="web", force=True)["service"]
    assert svc["status"] == "DRAINING"
    assert svc["desiredCount"] == 0
    server.cli("ecs", "wait", "services-inactive", "--services", "web")
    assert service(ecs, "web")["status"] == "INACTIVE"
    assert ecs.list_services()["serviceArns"] == []
    wait_for("the service's containers to stop",
             lambda: all(c[2] != "running" for c in containers_of(a)), timeout=30)
    assert ecs.list_tasks(serviceName="web")["taskArns"] == []
    # The name is free again once INACTIVE.
    again = ecs.create_service(serviceName="web", taskDefinition="web", desiredCount=0)["service"]
    assert again["status"] == "ACTIVE"
    ecs.delete_service(service="web")


def test_service_api_errors_and_listing(ecs):
    ecs.create_cluster(clusterName="empty")
    ecs.register_task_definition(family="web", containerDefinitions=[
        {"name": "app", "image": "berth-test/busybox:latest", "memory": 32}])
    arn = ecs.create_service(cluster="empty", serviceName="s1", taskDefinition="web", desiredCount=0,
                             tags=[{"key": "team", "value": "a"}], propagateTags="SERVICE")["service"]["serviceArn"]
    assert arn == "arn:aws:ecs:us-east-1:111111111111:service/empty/s1"
    with pytest.raises(ecs.exceptions.InvalidParameterException) as e:
        ecs.create_service(cluster="empty", serviceName="s1", taskDefinition="web", desiredCount=0)
    assert "not idempotent" in str(e.value)
    with pytest.raises(ecs.exceptions.ClientException):
        ecs.create_service(cluster="empty", serviceName="s2", taskDefinition="nope", desiredCount=1)
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.create_service(cluster="empty", serviceName="bad name", taskDefinition="web", desiredCount=1)
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.create_service(cluster="empty", serviceName="s3", taskDefinition="web", desiredCount=-1)
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.create_service(cluster="empty", serviceName="s3", taskDefinition="web",
                           schedulingStrategy="DAEMON", placementStrategy=[{"type": "random"}])
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.create_service(cluster="empty", serviceName="s3", taskDefinition="web", desiredCount=1,
                           placementConstraints=[{"type": "memberOf", "expression": "nonsense =="}])
    with pytest.raises(ecs.exceptions.ServiceNotFoundException):
        ecs.update_service(cluster="empty", service="nope", desiredCount=1)
    with pytest.raises(ecs.exceptions.ServiceNotFoundException):
        ecs.delete_service(cluster="empty", service="nope")
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.create_service(cluster="nope", serviceName="s1", taskDefinition="web", desiredCount=0)
    out = ecs.describe_services(cluster="empty", services=["s1", "nope"], include=["TAGS"])
    assert out["services"][0]["tags"] == [{"key": "team", "value": "a"}]
    assert out["failures"] == [{"arn": "arn:aws:ecs:us-east-1:111111111111:service/nope",
                                "reason": "MISSING"}]
    assert "tags" not in ecs.describe_services(cluster="empty", services=[arn])["services"][0]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "dev"}])
    assert len(ecs.list_tags_for_resource(resourceArn=arn)["tags"]) == 2

    # A cluster holding an active service cannot be deleted.
    with pytest.raises(ecs.exceptions.ClusterContainsServicesException):
        ecs.delete_cluster(cluster="empty")
    assert ecs.describe_clusters(clusters=["empty"])["clusters"][0]["activeServicesCount"] == 1

    for i in range(2, 5):
        ecs.create_service(cluster="empty", serviceName=f"s{i}", taskDefinition="web", desiredCount=0)
    page1 = ecs.list_services(cluster="empty", maxResults=3)
    page2 = ecs.list_services(cluster="empty", maxResults=3, nextToken=page1["nextToken"])
    names = [a.rsplit("/", 1)[1] for a in page1["serviceArns"] + page2["serviceArns"]]
    assert names == ["s1", "s2", "s3", "s4"]
    assert "nextToken" not in page2
    assert ecs.list_services(cluster="empty", schedulingStrategy="DAEMON")["serviceArns"] == []
    for i in range(1, 5):
        ecs.delete_service(cluster="empty", service=f"s{i}")
    ecs.get_waiter("services_inactive").wait(cluster="empty", services=["s1", "s4"], WaiterConfig=FAST)
    ecs.delete_cluster(cluster="empty")


def test_health_checks_gate_steady_state_and_unhealthy_tasks_are_replaced(ecs, agents, registry):
    connected(ecs, agents("agent1"))
    check = {"interval": 5, "timeout": 2, "retries": 1, "startPeriod": 0}
    ecs.register_task_definition(family="ok", containerDefinitions=[sleeper(
        registry.image, stopTimeout=1, healthCheck={"command": ["CMD-SHELL", "true"], **check})])
    ecs.create_service(serviceName="ok", taskDefinition="ok", desiredCount=1)
    # The deployment completes only once the task is HEALTHY, not merely RUNNING.
    seen = set()

    def completed():
        rollout = service(ecs, "ok")["deployments"][0]["rolloutState"]
        health = [t["healthStatus"] for t in running_tasks(ecs, "ok")]
        seen.add((rollout, tuple(health)))
        if rollout == "COMPLETED":
            assert health == ["HEALTHY"]
            return True
        return False
    wait_for("the deployment to complete", completed, timeout=60)
    assert ("IN_PROGRESS", ("UNKNOWN",)) in seen
    svc = stable(ecs, "ok")
    assert "(service ok) has reached a steady state." in messages(svc)

    ecs.register_task_definition(family="sick", containerDefinitions=[sleeper(
        registry.image, stopTimeout=1, healthCheck={"command": ["CMD-SHELL", "exit 1"], **check})])
    ecs.create_service(serviceName="sick", taskDefinition="sick", desiredCount=1,
                       healthCheckGracePeriodSeconds=0)

    def replaced():
        arns = ecs.list_tasks(serviceName="sick", desiredStatus="STOPPED")["taskArns"]
        return ecs.describe_tasks(tasks=arns)["tasks"] if arns else None
    stopped = wait_for("an unhealthy task to be replaced", replaced, timeout=60)
    assert stopped[0]["stopCode"] == "ServiceSchedulerInitiated"
    assert stopped[0]["stoppedReason"] == "Task failed container health checks in container app"
    svc = service(ecs, "sick")
    assert svc["deployments"][0]["rolloutState"] == "IN_PROGRESS"
    wait_for("the failure to be counted", lambda: service(ecs, "sick")["deployments"][0]["failedTasks"] >= 1,
             timeout=30)
    for name in ("ok", "sick"):
        ecs.delete_service(service=name, force=True)


def test_protected_tasks_outlive_scale_in_and_deployments_until_unprotected(ecs, agents, registry):
    connected(ecs, agents("agent1"))
    register(ecs, registry)
    ecs.create_service(serviceName="web", taskDefinition="web", desiredCount=2)
    stable(ecs, "web")
    kept, other = sorted(t["taskArn"] for t in running_tasks(ecs, "web"))
    before = ecs.describe_services(services=["web"])["services"][0]["createdAt"]

    out = ecs.update_task_protection(cluster="default", tasks=[kept, "0123456789abcdef0123456789abcdef"],
                                     protectionEnabled=True, expiresInMinutes=60)
    assert [(p["taskArn"], p["protectionEnabled"]) for p in out["protectedTasks"]] == [(kept, True)]
    minutes = (out["protectedTasks"][0]["expirationDate"] - before).total_seconds() / 60
    assert 59 <= minutes <= 70, minutes
    assert [f["reason"] for f in out["failures"]] == ["MISSING"]
    got = ecs.get_task_protection(cluster="default", tasks=[kept, other])["protectedTasks"]
    assert [(p["taskArn"], p["protectionEnabled"]) for p in got] == [(kept, True), (other, False)]
    assert "expirationDate" not in got[1]
    assert [p["taskArn"] for p in ecs.get_task_protection(cluster="default")["protectedTasks"]] == [kept]

    # Scale in to none: the unprotected copy goes in the same pass that keeps the protected one.
    ecs.update_service(service="web", desiredCount=0)
    wait_for("the unprotected copy to be stopped",
             lambda: ecs.describe_tasks(tasks=[other])["tasks"][0]["desiredStatus"] == "STOPPED", timeout=30)
    assert ecs.describe_tasks(tasks=[kept])["tasks"][0]["desiredStatus"] == "RUNNING"

    # A deployment starts its copy beside the protected one and leaves it running.
    second = register(ecs, registry, environment=[{"name": "REV", "value": "2"}])
    ecs.update_service(service="web", taskDefinition="web", desiredCount=1)

    def new_copy():
        now = running_tasks(ecs, "web")
        return [t for t in now if t["taskDefinitionArn"] == second] or None
    wait_for("the new deployment's copy", new_copy, timeout=60)
    assert ecs.describe_tasks(tasks=[kept])["tasks"][0]["desiredStatus"] == "RUNNING"
    assert len(service(ecs, "web")["deployments"]) == 2

    # Taken off, the protection no longer holds: the old copy goes and the deployment completes.
    out = ecs.update_task_protection(cluster="default", tasks=[kept], protectionEnabled=False)
    assert out["protectedTasks"][0]["protectionEnabled"] is False
    wait_for("the unprotected old copy to stop",
             lambda: ecs.describe_tasks(tasks=[kept])["tasks"][0]["desiredStatus"] == "STOPPED", timeout=30)
    svc = stable(ecs, "web")
    assert len(svc["deployments"]) == 1

    # Standalone and stopped tasks take no protection; bad input is refused.
    alone = ecs.run_task(taskDefinition="web")["tasks"][0]["taskArn"]
    out = ecs.update_task_protection(cluster="default", tasks=[alone, other], protectionEnabled=True)
    assert [f["reason"] for f in out["failures"]] == ["TASK_NOT_VALID", "TASK_NOT_VALID"]
    assert out["protectedTasks"] == []
    for bad in ({"expiresInMinutes": 0}, {"expiresInMinutes": 2881}):
        with pytest.raises(ecs.exceptions.InvalidParameterException):
            ecs.update_task_protection(cluster="default", tasks=[alone], protectionEnabled=True, **bad)
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.update_task_protection(cluster="default", tasks=[], protectionEnabled=True)
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.get_task_protection(cluster="nope", tasks=[alone])
    ecs.stop_task(task=alone)
    ecs.delete_service(service="web", force=True)
