import json
import pytest
from botocore.exceptions import ClientError

TD = "arn:aws:ecs:us-east-1:111111111111:task-definition/"


def code(e):
    return e.value.response["Error"]["Code"]


def message(e):
    return e.value.response["Error"]["Message"]


WEB = [{
    "name": "web", "image": "127.0.0.1:5000/busybox:latest", "memory": 128, "memoryReservation": 64,
    "command": ["httpd", "-f", "-p", "80"], "entryPoint": ["/bin/sh", "-c"],
    "environment": [{"name": "A", "value": "1"}], "workingDirectory": "/srv", "user": "nobody",
    "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
    "healthCheck": {"command": ["CMD-SHELL", "wget -q -O- localhost"], "interval": 5, "timeout": 2, "retries": 3},
    "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
    "dockerLabels": {"tier": "front"}, "readonlyRootFilesystem": False, "stopTimeout": 10,
    "linuxParameters": {"initProcessEnabled": True, "capabilities": {"add": ["NET_ADMIN"]}},
    "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": True}],
    "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "1m"}},
}, {
    "name": "sidecar", "image": "busybox", "memory": 32, "essential": False,
    "dependsOn": [{"containerName": "web", "condition": "HEALTHY"}], "volumesFrom": [{"sourceContainer": "web"}],
}]


def test_register_returns_everything_registered(ecs, server):
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}
    server.client("iam").create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(trust))
    r = ecs.register_task_definition(
        family="web", containerDefinitions=WEB, volumes=[{"name": "data", "host": {"sourcePath": "/tmp"}}],
        taskRoleArn="arn:aws:iam::111111111111:role/app", tags=[{"key": "k", "value": "v"}], pidMode="task",
    )
    td = r["taskDefinition"]
    assert td["taskDefinitionArn"] == TD + "web:1"
    assert td["revision"] == 1 and td["status"] == "ACTIVE" and td["family"] == "web"
    assert r["tags"] == [{"key": "k", "value": "v"}]
    web = td["containerDefinitions"][0]
    for k, v in WEB[0].items():
        assert web[k] == v, k
    assert td["containerDefinitions"][1]["dependsOn"] == WEB[1]["dependsOn"]
    assert td["volumes"] == [{"name": "data", "host": {"sourcePath": "/tmp"}}]
    assert td["registeredBy"] == "arn:aws:iam::111111111111:root"
    assert isinstance(td["registeredAt"].timestamp(), float)
    attrs = {a["name"] for a in td["requiresAttributes"]}
    assert "ecs.capability.container-health-check" in attrs and "ecs.capability.container-ordering" in attrs
    # Revisions count up per family.
    assert ecs.register_task_definition(family="web", containerDefinitions=WEB[:1], volumes=[{"name": "data"}])[
        "taskDefinition"]["revision"] == 2
    assert ecs.register_task_definition(family="other", containerDefinitions=WEB[1:2] and [
        {"name": "a", "image": "i", "memory": 8}])["taskDefinition"]["revision"] == 1


def test_describe_by_family_revision_and_arn(ecs):
    for _ in range(3):
        ecs.register_task_definition(family="api", containerDefinitions=[{"name": "a", "image": "i", "memory": 8}],
                                     tags=[{"key": "t", "value": "1"}])
    assert ecs.describe_task_definition(taskDefinition="api")["taskDefinition"]["revision"] == 3
    assert ecs.describe_task_definition(taskDefinition="api:2")["taskDefinition"]["revision"] == 2
    d = ecs.describe_task_definition(taskDefinition=TD + "api:1", include=["TAGS"])
    assert d["taskDefinition"]["revision"] == 1 and d["tags"] == [{"key": "t", "value": "1"}]
    assert "tags" not in ecs.describe_task_definition(taskDefinition="api:1")
    ecs.deregister_task_definition(taskDefinition="api:3")
    # The family alone names the latest ACTIVE revision.
    assert ecs.describe_task_definition(taskDefinition="api")["taskDefinition"]["revision"] == 2
    for missing in ["api:9", "nope", "arn:aws:ecs:us-east-1:222222222222:task-definition/api:1"]:
        with pytest.raises(ClientError) as e:
            ecs.describe_task_definition(taskDefinition=missing)
        assert code(e) == "ClientException" and message(e) == "Unable to describe task definition."


def test_list_filters_sorting_and_pages(ecs):
    c = [{"name": "a", "image": "i", "memory": 8}]
    for fam in ["b", "a", "a-x", "a"]:
        ecs.register_task_definition(family=fam, containerDefinitions=c)
    arns = ecs.list_task_definitions()["taskDefinitionArns"]
    assert arns == [TD + "a:1", TD + "a:2", TD + "a-x:1", TD + "b:1"]
    assert ecs.list_task_definitions(sort="DESC")["taskDefinitionArns"] == list(reversed(arns))
    # familyPrefix names a whole family in ListTaskDefinitions.
    assert ecs.list_task_definitions(familyPrefix="a")["taskDefinitionArns"] == [TD + "a:1", TD + "a:2"]
    pages = list(ecs.get_paginator("list_task_definitions").paginate(sort="DESC", PaginationConfig={"PageSize": 3}))
    assert [a for p in pages for a in p["taskDefinitionArns"]] == list(reversed(arns))
    assert len(pages) == 2
    ecs.deregister_task_definition(taskDefinition="b:1")
    assert ecs.list_task_definitions(status="INACTIVE")["taskDefinitionArns"] == [TD + "b:1"]
    assert ecs.list_task_definition_families()["families"] == ["a", "a-x"]
    assert ecs.list_task_definition_families(familyPrefix="a")["families"] == ["a", "a-x"]
    assert ecs.list_task_definition_families(status="INACTIVE")["families"] == ["b"]
    assert ecs.list_task_definition_families(status="ALL")["families"] == ["a", "a-x", "b"]
    p = ecs.list_task_definition_families(status="ALL", maxResults=2)
    assert p["families"] == ["a", "a-x"]
    assert ecs.list_task_definition_families(status="ALL", nextToken=p["nextToken"])["families"] == ["b"]


def test_deregister_and_delete(ecs):
    c = [{"name": "a", "image": "i", "memory": 8}]
    ecs.register_task_definition(family="job", containerDefinitions=c)
    ecs.register_task_definition(family="job", containerDefinitions=c)
    d = ecs.deregister_task_definition(taskDefinition="job:1")["taskDefinition"]
    assert d["status"] == "INACTIVE" and "deregisteredAt" in d
    # As ECS words them: a bare family, a revision that is no number, one that is not there.
    for given, message in [("job", "Revision is missing."), ("job:foo", "Invalid revision number. Number: foo"),
                           ("job:7", "Unable to describe task definition.")]:
        with pytest.raises(ClientError) as e:
            ecs.deregister_task_definition(taskDefinition=given)
        assert (code(e), e.value.response["Error"]["Message"]) == ("ClientException", message)
    r = ecs.delete_task_definitions(taskDefinitions=["job:1", "job:2", "zzz:1"])
    assert [t["taskDefinitionArn"] for t in r["taskDefinitions"]] == [TD + "job:1"]
    assert r["taskDefinitions"][0]["status"] == "DELETE_IN_PROGRESS"
    assert {f["arn"]: f["reason"] for f in r["failures"]} == {
        "job:2": "The specified task definition is ACTIVE; deregister it before deleting it",
        "zzz:1": "Unable to describe task definition."}
    assert ecs.describe_task_definition(taskDefinition="job:1")["taskDefinition"]["status"] == "DELETE_IN_PROGRESS"
    assert ecs.list_task_definitions(status="DELETE_IN_PROGRESS")["taskDefinitionArns"] == [TD + "job:1"]
    # Revision numbers are never reused.
    assert ecs.register_task_definition(family="job", containerDefinitions=c)["taskDefinition"]["revision"] == 3


@pytest.mark.parametrize("kwargs,err,text", [
    (dict(family="f", containerDefinitions=[]), "ClientException", "Container list cannot be empty."),
    (dict(family="bad family", containerDefinitions=[{"name": "a", "image": "i", "memory": 8}]),
     "ClientException", "Family contains invalid characters"),
    (dict(family="f", containerDefinitions=[{"name": "a", "image": "i"}]), "ClientException",
     "At least one of 'memory' or 'memoryReservation' must be specified"),
    (dict(family="f", containerDefinitions=[{"name": "a", "image": "i", "memory": 8, "essential": False}]),
     "ClientException", "essential"),
    (dict(family="f", containerDefinitions=[{"name": "a", "image": "i", "memory": 8}] * 2), "ClientException",
     "Duplicate container name"),
    (dict(family="f", containerDefinitions=[{"name": "a", "image": "i", "memory": 8, "memoryReservation": 16}]),
     "ClientException", "memoryReservation"),
    (dict(family="f", networkMode="awsvpc", containerDefinitions=[
        {"name": "a", "image": "i", "memory": 8, "portMappings": [{"containerPort": 80, "hostPort": 81}]}]),
     "ClientException", "When networkMode=awsvpc, the host ports and container ports in port mappings must match."),
    (dict(family="f", networkMode="host", containerDefinitions=[
        {"name": "a", "image": "i", "memory": 8, "portMappings": [{"containerPort": 80, "hostPort": 81}]}]),
     "ClientException", "When networkMode=host"),
    (dict(family="f", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
          containerDefinitions=[{"name": "a", "image": "i"}]), "ClientException",
     "Fargate only supports network mode 'awsvpc'."),
    (dict(family="f", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="4096",
          containerDefinitions=[{"name": "a", "image": "i"}]), "ClientException", "No Fargate configuration exists"),
    (dict(family="f", networkMode="wifi", containerDefinitions=[{"name": "a", "image": "i", "memory": 8}]),
     "InvalidParameterException", "Member must satisfy enum value set"),
    (dict(family="f", containerDefinitions=[{"name": "a", "image": "i", "memory": 8}],
          tags=[{"key": "aws:x", "value": "1"}]), "InvalidParameterException", "aws:"),
])
def test_registration_errors(ecs, kwargs, err, text):
    with pytest.raises(ClientError) as e:
        ecs.register_task_definition(**kwargs)
    assert code(e) == err
    assert text in message(e)
    assert ecs.list_task_definitions()["taskDefinitionArns"] == []


def test_fargate_definition(ecs):
    td = ecs.register_task_definition(
        family="site", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="0.5 vCPU", memory="1 GB",
        runtimePlatform={"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
        containerDefinitions=[{"name": "web", "image": "i", "portMappings": [{"containerPort": 80}]}],
    )["taskDefinition"]
    assert (td["cpu"], td["memory"]) == ("512", "1024")
    assert "FARGATE" in td["compatibilities"]
    assert td["containerDefinitions"][0]["portMappings"][0]["hostPort"] == 80


def test_concurrent_registrations_of_one_family_all_succeed(server):
    import threading
    clients, each = 16, 15
    revisions, errors = [], []
    lock = threading.Lock()

    def register():
        ecs = server.client("ecs")
        for _ in range(each):
            try:
                r = ecs.register_task_definition(family="hot", containerDefinitions=[
                    {"name": "a", "image": "i", "memory": 8}])
                with lock:
                    revisions.append(r["taskDefinition"]["revision"])
            except Exception as e:  # every call must be answered with success
                with lock:
                    errors.append(e)

    threads = [threading.Thread(target=register) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert sorted(revisions) == list(range(1, clients * each + 1))


def test_concurrent_valid_and_invalid_registrations_of_one_family(server):
    """Registrations that share a commit still fail or succeed one by one."""
    import threading
    results, lock = [], threading.Lock()

    def register(valid):
        ecs = server.client("ecs")
        container = {"name": "a", "image": "i"} | ({"memory": 8} if valid else {})
        for _ in range(10):
            try:
                r = ecs.register_task_definition(family="mixed", containerDefinitions=[container])
                out = ("ok", r["taskDefinition"]["revision"], r["taskDefinition"]["containerDefinitions"][0]["memory"])
            except ClientError as e:
                out = ("err", e.response["Error"]["Code"], valid)
            with lock:
                results.append(out)

    threads = [threading.Thread(target=register, args=(i % 2 == 0,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    oks = sorted(r[1] for r in results if r[0] == "ok")
    errs = [r for r in results if r[0] == "err"]
    assert oks == list(range(1, 61))
    assert len(errs) == 60 and all(e[1] == "ClientException" and e[2] is False for e in errs)
    listed = [a for p in server.client("ecs").get_paginator("list_task_definitions").paginate(familyPrefix="mixed")
              for a in p["taskDefinitionArns"]]
    assert len(listed) == 60
