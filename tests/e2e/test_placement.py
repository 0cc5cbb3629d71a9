"""RunTask placement on real agents: strategies, constraints and their errors."""
import pytest

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
