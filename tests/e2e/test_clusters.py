import pytest
from botocore.exceptions import ClientError

ARN_A = "arn:aws:ecs:us-east-1:111111111111:cluster/"


def code(e):
    return e.value.response["Error"]["Code"]


def test_cluster_lifecycle(ecs):
    c = ecs.create_cluster(clusterName="web", tags=[{"key": "team", "value": "x"}])["cluster"]
    assert c["clusterArn"] == ARN_A + "web"
    assert c["status"] == "ACTIVE"
    assert c["settings"] == [{"name": "containerInsights", "value": "disabled"}]
    # CreateCluster of an existing name answers the existing cluster.
    again = ecs.create_cluster(clusterName="web")["cluster"]
    assert again["clusterArn"] == c["clusterArn"]
    assert again["tags"] == [{"key": "team", "value": "x"}]

    assert ecs.list_clusters()["clusterArns"] == [ARN_A + "web"]
    d = ecs.describe_clusters(clusters=["web", ARN_A + "nope"], include=["TAGS", "SETTINGS", "STATISTICS"])
    assert [x["clusterName"] for x in d["clusters"]] == ["web"]
    assert d["clusters"][0]["tags"] == [{"key": "team", "value": "x"}]
    stats = {s["name"]: s["value"] for s in d["clusters"][0]["statistics"]}
    assert stats["runningEC2TasksCount"] == "0"
    assert d["failures"] == [{"arn": ARN_A + "nope", "reason": "MISSING"}]
    plain = ecs.describe_clusters(clusters=["web"])["clusters"][0]
    assert "tags" not in plain and "settings" not in plain

    u = ecs.update_cluster_settings(cluster="web", settings=[{"name": "containerInsights", "value": "enabled"}])
    assert u["cluster"]["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    u = ecs.update_cluster(cluster=ARN_A + "web", configuration={"executeCommandConfiguration": {"logging": "NONE"}})
    assert u["cluster"]["configuration"]["executeCommandConfiguration"]["logging"] == "NONE"
    assert u["cluster"]["settings"][0]["value"] == "enabled"

    gone = ecs.delete_cluster(cluster="web")["cluster"]
    assert gone["status"] == "INACTIVE"
    assert ecs.list_clusters()["clusterArns"] == []
    assert ecs.describe_clusters(clusters=["web"])["clusters"][0]["status"] == "INACTIVE"
    with pytest.raises(ClientError) as e:
        ecs.delete_cluster(cluster="web")
    assert code(e) == "ClusterNotFoundException"
    with pytest.raises(ClientError) as e:
        ecs.update_cluster_settings(cluster="web", settings=[{"name": "containerInsights", "value": "enabled"}])
    assert code(e) == "ClusterNotFoundException"
    # A deleted name can be created again, fresh.
    back = ecs.create_cluster(clusterName="web")["cluster"]
    assert back["status"] == "ACTIVE" and back["tags"] == []


def test_default_cluster(ecs):
    d = ecs.describe_clusters()
    assert d["clusters"] == [] and d["failures"][0]["arn"] == ARN_A + "default"
    c = ecs.create_cluster()["cluster"]
    assert c["clusterName"] == "default"
    assert ecs.describe_clusters()["clusters"][0]["clusterName"] == "default"


def test_cluster_errors(ecs):
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(clusterName="bad name!")
    assert code(e) == "InvalidParameterException"
    assert "Cluster name is invalid" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(clusterName="x" * 256)
    assert code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(clusterName="t", settings=[{"name": "containerInsights", "value": "maybe"}])
    assert code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.create_cluster(clusterName="t", tags=[{"key": f"k{i}", "value": "v"} for i in range(51)])
    assert code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.describe_clusters(clusters=[f"c{i}" for i in range(101)])
    assert code(e) == "InvalidParameterException"
    # Nothing was half-created by the refused calls.
    assert ecs.list_clusters()["clusterArns"] == []


def test_list_clusters_pagination(ecs):
    names = [f"c{i:02d}" for i in range(25)]
    for n in names:
        ecs.create_cluster(clusterName=n)
    p1 = ecs.list_clusters(maxResults=10)
    assert len(p1["clusterArns"]) == 10 and "nextToken" in p1
    p2 = ecs.list_clusters(maxResults=10, nextToken=p1["nextToken"])
    p3 = ecs.list_clusters(maxResults=10, nextToken=p2["nextToken"])
    assert "nextToken" not in p3
    got = p1["clusterArns"] + p2["clusterArns"] + p3["clusterArns"]
    assert got == [ARN_A + n for n in names]
    all_arns = [a for page in ecs.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 7})
                for a in page["clusterArns"]]
    assert all_arns == [ARN_A + n for n in names]
    with pytest.raises(ClientError) as e:
        ecs.list_clusters(maxResults=101)
    assert code(e) == "InvalidParameterException"
    with pytest.raises(ClientError) as e:
        ecs.list_clusters(nextToken="garbage")
    assert code(e) == "InvalidParameterException"


def test_accounts_cannot_see_each_other(server, ecs, ecs_b):
    ecs.create_cluster(clusterName="private")
    assert ecs_b.list_clusters()["clusterArns"] == []
    d = ecs_b.describe_clusters(clusters=[ARN_A + "private"])
    assert d["clusters"] == [] and d["failures"][0]["reason"] == "MISSING"
    with pytest.raises(ClientError) as e:
        ecs_b.delete_cluster(cluster=ARN_A + "private")
    assert code(e) == "ClusterNotFoundException"
    with pytest.raises(ClientError) as e:
        ecs_b.tag_resource(resourceArn=ARN_A + "private", tags=[{"key": "k", "value": "v"}])
    assert code(e) == "ClusterNotFoundException"
    # B's cluster of the same name is its own.
    b = ecs_b.create_cluster(clusterName="private")["cluster"]
    assert b["clusterArn"] == "arn:aws:ecs:us-east-1:222222222222:cluster/private"
    assert ecs.describe_clusters(clusters=["private"])["clusters"][0]["clusterArn"] == ARN_A + "private"


def test_regions_are_separate(server, ecs):
    west = server.client("ecs", region="eu-west-3")
    c = west.create_cluster(clusterName="paris")["cluster"]
    assert c["clusterArn"] == "arn:aws:ecs:eu-west-3:111111111111:cluster/paris"
    assert ecs.list_clusters()["clusterArns"] == []
    assert west.list_clusters()["clusterArns"] == [c["clusterArn"]]
