import pytest
from botocore.exceptions import ClientError


def code(e):
    return e.value.response["Error"]["Code"]


def test_tags_on_clusters_and_task_definitions(ecs):
    c = ecs.create_cluster(clusterName="t")["cluster"]["clusterArn"]
    td = ecs.register_task_definition(family="f", containerDefinitions=[{"name": "a", "image": "i", "memory": 8}])[
        "taskDefinition"]["taskDefinitionArn"]
    for arn in (c, td):
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "3"}])
        assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [
            {"key": "a", "value": "3"}, {"key": "b", "value": "2"}]
        ecs.untag_resource(resourceArn=arn, tagKeys=["a", "zz"])
        assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "b", "value": "2"}]
    assert ecs.describe_clusters(clusters=["t"], include=["TAGS"])["clusters"][0]["tags"] == [{"key": "b", "value": "2"}]
    assert ecs.describe_task_definition(taskDefinition="f:1", include=["TAGS"])["tags"] == [{"key": "b", "value": "2"}]


def test_tag_errors(ecs):
    c = ecs.create_cluster(clusterName="t")["cluster"]["clusterArn"]
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=c, tags=[{"key": "aws:owner", "value": "x"}])
    assert code(e) == "InvalidParameterException"
    ecs.tag_resource(resourceArn=c, tags=[{"key": f"k{i}", "value": "v"} for i in range(40)])
    with pytest.raises(ClientError) as e:
        ecs.tag_resource(resourceArn=c, tags=[{"key": f"n{i}", "value": "v"} for i in range(11)])
    assert code(e) == "InvalidParameterException"
    assert len(ecs.list_tags_for_resource(resourceArn=c)["tags"]) == 40
    # A resource that is not there gets an error the operation's model lists, as ECS answers.
    base = "arn:aws:ecs:us-east-1:111111111111:"
    for arn, err in [("cluster/missing", "ClusterNotFoundException"), ("service/t/missing", "ServiceNotFoundException"),
                     ("task-definition/missing:1", "ClientException"), ("task/t/0123456789abcdef", "InvalidParameterException")]:
        with pytest.raises(ClientError) as e:
            ecs.list_tags_for_resource(resourceArn=base + arn)
        assert code(e) == err, arn
        listed = [s.name for s in ecs.meta.service_model.operation_model("ListTagsForResource").error_shapes]
        # ServiceNotFoundException is not listed there, but it is what ECS answers for a service.
        assert code(e) in listed or err == "ServiceNotFoundException", arn
    with pytest.raises(ClientError) as e:
        ecs.list_tags_for_resource(resourceArn="not-an-arn")
    assert code(e) == "InvalidParameterException"


def test_account_settings(ecs, server):
    eff = {s["name"]: s for s in ecs.list_account_settings(effectiveSettings=True, maxResults=10)["settings"]}
    assert eff["containerInsights"]["value"] == "disabled"
    assert eff["containerInsights"]["type"] == "aws_managed"
    assert ecs.list_account_settings()["settings"] == []

    s = ecs.put_account_setting_default(name="containerInsights", value="enabled")["setting"]
    assert s == {"name": "containerInsights", "value": "enabled",
                 "principalArn": "arn:aws:iam::111111111111:root", "type": "user"}
    # New clusters take the account's containerInsights.
    assert ecs.create_cluster(clusterName="ci")["cluster"]["settings"] == [{"name": "containerInsights", "value": "enabled"}]

    user = "arn:aws:iam::111111111111:user/alice"
    ecs.put_account_setting(name="awsvpcTrunking", value="enabled", principalArn=user)
    got = ecs.list_account_settings(principalArn=user, effectiveSettings=True, name="awsvpcTrunking")["settings"]
    assert got == [{"name": "awsvpcTrunking", "value": "enabled", "principalArn": user, "type": "user"}]
    got = ecs.list_account_settings(principalArn=user, effectiveSettings=True, name="containerInsights")["settings"]
    assert got[0]["value"] == "enabled" and got[0]["principalArn"].endswith(":root")
    assert ecs.list_account_settings(value="enabled")["settings"][0]["name"] == "containerInsights"

    d = ecs.delete_account_setting(name="awsvpcTrunking", principalArn=user)["setting"]
    assert d["value"] == "enabled"
    got = ecs.list_account_settings(principalArn=user, effectiveSettings=True, name="awsvpcTrunking")["settings"]
    assert got[0]["value"] == "disabled"

    for kwargs in (dict(name="containerInsights", value="sometimes"),
                   dict(name="awsvpcTrunking", value="enabled", principalArn="arn:aws:iam::222222222222:root")):
        with pytest.raises(ClientError) as e:
            ecs.put_account_setting(**kwargs)
        assert code(e) == "InvalidParameterException"
    # Settings are per account.
    b = server.client("ecs", account="b")
    assert b.list_account_settings()["settings"] == []


def test_account_settings_pages(ecs):
    first = ecs.list_account_settings(effectiveSettings=True, maxResults=4)
    assert len(first["settings"]) == 4
    rest = ecs.list_account_settings(effectiveSettings=True, maxResults=10, nextToken=first["nextToken"])
    names = [s["name"] for s in first["settings"] + rest["settings"]]
    assert names == sorted(names) and len(names) == len(set(names)) == 11
