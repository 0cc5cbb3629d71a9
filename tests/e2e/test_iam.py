"""IAM and STS through boto3 and the aws CLI: roles, users, policies, access
keys, AssumeRole, and policies enforced on ECS, EC2, IAM and STS calls."""
import json
import os
import shutil
import subprocess

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import ACCOUNTS, REGION

A = ACCOUNTS["a"][0]
B = ACCOUNTS["b"][0]
TRUST_ECS_TASKS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
}


def trust_account(account):
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                           "Action": "sts:AssumeRole"}]}


def describe_only(cluster):
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ecs:Describe*",
                           "Resource": f"arn:aws:ecs:*:*:cluster/{cluster}"}]}


def client(server, service, key, secret, token=None):
    return boto3.client(
        service, endpoint_url=server.endpoint, region_name=REGION,
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
    )


def cli(server, *args, key, secret, token=None):
    """The real aws CLI with the given credentials; answers the finished process."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
               AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=server.endpoint,
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
               AWS_MAX_ATTEMPTS="1")
    env.pop("AWS_SESSION_TOKEN", None)
    if token:
        env["AWS_SESSION_TOKEN"] = token
    return subprocess.run([shutil.which("aws"), *args, "--output", "json"], env=env,
                          capture_output=True, timeout=60)


def error_code(e):
    return e.value.response["Error"]["Code"]


def new_user_key(iam, name, policy=None):
    iam.create_user(UserName=name)
    if policy:
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    k = iam.create_access_key(UserName=name)["AccessKey"]
    return k["AccessKeyId"], k["SecretAccessKey"]


def test_roles_round_trip(server):
    iam = server.client("iam")
    r = iam.create_role(RoleName="web", Path="/ecs/", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS),
                        Description="web tasks", Tags=[{"Key": "env", "Value": "prod"}])["Role"]
    assert r["Arn"] == f"arn:aws:iam::{A}:role/ecs/web"
    assert r["RoleId"].startswith("AROA") and len(r["RoleId"]) == 20
    got = iam.get_role(RoleName="web")["Role"]
    assert got["AssumeRolePolicyDocument"] == TRUST_ECS_TASKS
    assert got["Description"] == "web tasks"
    assert got["MaxSessionDuration"] == 3600
    assert got["Tags"] == [{"Key": "env", "Value": "prod"}]
    assert [x["RoleName"] for x in iam.list_roles(PathPrefix="/ecs/")["Roles"]] == ["web"]
    assert iam.list_roles(PathPrefix="/other/")["Roles"] == []
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName="WEB", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS))
    assert error_code(e) == "EntityAlreadyExists"
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName="x", AssumeRolePolicyDocument='{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}')
    assert error_code(e) == "MalformedPolicyDocument"
    assert "Principal" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName="bad name", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS))
    assert error_code(e) == "ValidationError"

    doc = describe_only("prod")
    iam.put_role_policy(RoleName="web", PolicyName="read", PolicyDocument=json.dumps(doc))
    assert iam.get_role_policy(RoleName="web", PolicyName="read")["PolicyDocument"] == doc
    assert iam.list_role_policies(RoleName="web")["PolicyNames"] == ["read"]
    execution = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    iam.attach_role_policy(RoleName="web", PolicyArn=execution)
    assert iam.list_attached_role_policies(RoleName="web")["AttachedPolicies"] == [
        {"PolicyName": "AmazonECSTaskExecutionRolePolicy", "PolicyArn": execution}]
    with pytest.raises(ClientError) as e:
        iam.attach_role_policy(RoleName="web", PolicyArn=f"arn:aws:iam::{A}:policy/nope")
    assert error_code(e) == "NoSuchEntity"
    with pytest.raises(ClientError) as e:
        iam.delete_role(RoleName="web")
    assert error_code(e) == "DeleteConflict"
    iam.delete_role_policy(RoleName="web", PolicyName="read")
    with pytest.raises(ClientError) as e:
        iam.delete_role_policy(RoleName="web", PolicyName="read")
    assert error_code(e) == "NoSuchEntity"
    iam.detach_role_policy(RoleName="web", PolicyArn=execution)
    iam.untag_role(RoleName="web", TagKeys=["env"])
    assert iam.list_role_tags(RoleName="web")["Tags"] == []
    new_trust = trust_account(A)
    iam.update_assume_role_policy(RoleName="web", PolicyDocument=json.dumps(new_trust))
    assert iam.get_role(RoleName="web")["Role"]["AssumeRolePolicyDocument"] == new_trust
    iam.delete_role(RoleName="web")
    with pytest.raises(ClientError) as e:
        iam.get_role(RoleName="web")
    assert error_code(e) == "NoSuchEntity"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_managed_policies(server):
    iam = server.client("iam")
    aws = {p["PolicyName"] for p in iam.list_policies(Scope="AWS")["Policies"]}
    assert {"AmazonECSTaskExecutionRolePolicy", "AmazonECS_FullAccess", "ReadOnlyAccess",
            "AdministratorAccess", "PowerUserAccess"} <= aws
    execution = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    v = iam.get_policy_version(PolicyArn=execution, VersionId="v1")["PolicyVersion"]
    assert "ecr:GetAuthorizationToken" in v["Document"]["Statement"][0]["Action"]
    p = iam.create_policy(PolicyName="describe-prod", PolicyDocument=json.dumps(describe_only("prod")))["Policy"]
    assert p["Arn"] == f"arn:aws:iam::{A}:policy/describe-prod"
    with pytest.raises(ClientError) as e:
        iam.create_policy(PolicyName="describe-prod", PolicyDocument=json.dumps(describe_only("prod")))
    assert error_code(e) == "EntityAlreadyExists"
    iam.create_user(UserName="carol")
    iam.attach_user_policy(UserName="carol", PolicyArn=p["Arn"])
    assert iam.get_policy(PolicyArn=p["Arn"])["Policy"]["AttachmentCount"] == 1
    assert [x["PolicyName"] for x in iam.list_policies(Scope="Local", OnlyAttached=True)["Policies"]] == ["describe-prod"]
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=p["Arn"])
    assert error_code(e) == "DeleteConflict"
    iam.detach_user_policy(UserName="carol", PolicyArn=p["Arn"])
    iam.delete_policy(PolicyArn=p["Arn"])
    with pytest.raises(ClientError) as e:
        iam.get_policy(PolicyArn=p["Arn"])
    assert error_code(e) == "NoSuchEntity"


def test_a_user_limited_to_describe_on_one_cluster(server):
    """With the aws CLI: the user's key describes its cluster, nothing else, across a restart."""
    ecs, iam = server.client("ecs"), server.client("iam")
    ecs.create_cluster(clusterName="prod")
    ecs.create_cluster(clusterName="dev")
    key, secret = new_user_key(iam, "bob", describe_only("prod"))
    who = json.loads(cli(server, "sts", "get-caller-identity", key=key, secret=secret).stdout)
    assert who["Arn"] == f"arn:aws:iam::{A}:user/bob"
    assert who["UserId"] == iam.get_user(UserName="bob")["User"]["UserId"]

    def check():
        ok = cli(server, "ecs", "describe-clusters", "--clusters", "prod", key=key, secret=secret)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["clusters"][0]["clusterName"] == "prod"
        no = cli(server, "ecs", "describe-clusters", "--clusters", "dev", key=key, secret=secret)
        assert no.returncode != 0
        err = no.stderr.decode()
        assert "AccessDeniedException" in err
        assert (f"User: arn:aws:iam::{A}:user/bob is not authorized to perform: ecs:DescribeClusters "
                f"on resource: arn:aws:ecs:{REGION}:{A}:cluster/dev") in err
        run = cli(server, "ecs", "run-task", "--cluster", "prod", "--task-definition", "web", key=key, secret=secret)
        assert run.returncode != 0 and "AccessDeniedException" in run.stderr.decode()
        assert "ecs:RunTask" in run.stderr.decode()
        vpcs = cli(server, "ec2", "describe-vpcs", key=key, secret=secret)
        assert vpcs.returncode != 0 and "UnauthorizedOperation" in vpcs.stderr.decode()
        roles = cli(server, "iam", "list-roles", key=key, secret=secret)
        assert roles.returncode != 0 and "AccessDenied" in roles.stderr.decode()

    check()
    server.stop()
    server.start()
    check()


def test_an_explicit_deny_wins(server):
    ecs, iam = server.client("ecs"), server.client("iam")
    ecs.create_cluster(clusterName="prod")
    key, secret = new_user_key(iam, "dave", {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecs:*", "Resource": "*"},
                      {"Effect": "Deny", "Action": "ecs:DeleteCluster", "Resource": "*"}]})
    dave = client(server, "ecs", key, secret)
    assert dave.describe_clusters(clusters=["prod"])["clusters"][0]["status"] == "ACTIVE"
    with pytest.raises(ClientError) as e:
        dave.delete_cluster(cluster="prod")
    assert error_code(e) == "AccessDeniedException"
    assert "with an explicit deny in an identity-based policy" in e.value.response["Error"]["Message"]
    assert ecs.describe_clusters(clusters=["prod"])["clusters"][0]["status"] == "ACTIVE"


def test_the_same_limits_through_an_assumed_role(server):
    ecs, iam = server.client("ecs"), server.client("iam")
    ecs.create_cluster(clusterName="prod")
    ecs.create_cluster(clusterName="dev")
    iam.create_role(RoleName="reader", AssumeRolePolicyDocument=json.dumps(trust_account(A)))
    iam.put_role_policy(RoleName="reader", PolicyName="p", PolicyDocument=json.dumps(describe_only("prod")))
    role_arn = f"arn:aws:iam::{A}:role/reader"
    # A user may assume the role only if its own policies allow sts:AssumeRole (the trust names the account).
    key, secret = new_user_key(iam, "erin")
    refused = cli(server, "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "s0", key=key, secret=secret)
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr.decode()
    iam.put_user_policy(UserName="erin", PolicyName="assume", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role_arn}]}))
    out = cli(server, "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "erin-s", key=key, secret=secret)
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA")
    s = dict(key=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"])
    who = json.loads(cli(server, "sts", "get-caller-identity", **s).stdout)
    assert who["Arn"] == f"arn:aws:sts::{A}:assumed-role/reader/erin-s"
    assert who["UserId"] == iam.get_role(RoleName="reader")["Role"]["RoleId"] + ":erin-s"
    ok = cli(server, "ecs", "describe-clusters", "--clusters", "prod", **s)
    assert ok.returncode == 0, ok.stderr
    no = cli(server, "ecs", "describe-clusters", "--clusters", "dev", **s)
    assert no.returncode != 0
    assert f"User: arn:aws:sts::{A}:assumed-role/reader/erin-s is not authorized" in no.stderr.decode()
    run = cli(server, "ecs", "run-task", "--cluster", "prod", "--task-definition", "web", **s)
    assert run.returncode != 0 and "AccessDeniedException" in run.stderr.decode()
    # A session token that was tampered with is not accepted.
    bad = cli(server, "sts", "get-caller-identity", key=s["key"], secret=s["secret"], token=s["token"][:-2] + "AA")
    assert bad.returncode != 0 and "InvalidClientTokenId" in bad.stderr.decode()
    # Sessions outlive a restart: the token is checked with the key kept in the store.
    server.stop()
    server.start()
    again = cli(server, "ecs", "describe-clusters", "--clusters", "prod", **s)
    assert again.returncode == 0, again.stderr
    # Deleting the role leaves its sessions able to do nothing.
    iam.delete_role_policy(RoleName="reader", PolicyName="p")
    iam.delete_role(RoleName="reader")
    gone = cli(server, "ecs", "describe-clusters", "--clusters", "prod", **s)
    assert gone.returncode != 0 and "AccessDeniedException" in gone.stderr.decode()


def test_session_policies_bound_what_an_assumed_role_may_do(server):
    ecs, iam, sts_b = server.client("ecs"), server.client("iam"), server.client("sts", account="b")
    ecs.create_cluster(clusterName="prod")
    iam.create_role(RoleName="admin", AssumeRolePolicyDocument=json.dumps(trust_account(B)))
    iam.put_role_policy(RoleName="admin", PolicyName="all", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecs:*", "iam:*"], "Resource": "*"}]}))
    role_arn = f"arn:aws:iam::{A}:role/admin"
    # The aws CLI's --policy: the session may do what both the role and the session policy allow.
    b_key, b_secret = ACCOUNTS["b"][1], ACCOUNTS["b"][2]
    out = cli(server, "sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "narrow",
              "--policy", json.dumps(describe_only("prod")), key=b_key, secret=b_secret)
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)["Credentials"]
    s = dict(key=c["AccessKeyId"], secret=c["SecretAccessKey"], token=c["SessionToken"])
    ok = cli(server, "ecs", "describe-clusters", "--clusters", "prod", **s)
    assert ok.returncode == 0 and json.loads(ok.stdout)["clusters"][0]["clusterName"] == "prod", ok.stderr
    no = cli(server, "ecs", "list-clusters", **s)
    assert no.returncode != 0 and "AccessDeniedException" in no.stderr.decode()
    assert "because no session policy allows the ecs:ListClusters action" in no.stderr.decode()
    # Managed session policies by ARN (boto3's PolicyArns): AWS's read-only one allows List*, not Create*.
    r = sts_b.assume_role(RoleArn=role_arn, RoleSessionName="ro",
                          PolicyArns=[{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}])["Credentials"]
    ro = client(server, "ecs", r["AccessKeyId"], r["SecretAccessKey"], r["SessionToken"])
    assert ro.list_clusters()["clusterArns"] == [f"arn:aws:ecs:{REGION}:{A}:cluster/prod"]
    with pytest.raises(ClientError) as e:
        ro.create_cluster(clusterName="more")
    assert error_code(e) == "AccessDeniedException"
    # Without session policies the same role may do everything it allows.
    r = sts_b.assume_role(RoleArn=role_arn, RoleSessionName="wide")["Credentials"]
    wide = client(server, "ecs", r["AccessKeyId"], r["SecretAccessKey"], r["SessionToken"])
    assert wide.create_cluster(clusterName="more")["cluster"]["clusterName"] == "more"
    with pytest.raises(ClientError) as e:
        sts_b.assume_role(RoleArn=role_arn, RoleSessionName="bad", Policy='{"Statement": {"Effect": "Maybe"}}')
    assert error_code(e) == "MalformedPolicyDocument"


def test_trust_policies_decide_who_may_assume(server):
    iam, sts_b = server.client("iam"), server.client("sts", account="b")
    iam.create_role(RoleName="tasks", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS))
    iam.create_role(RoleName="for-b", AssumeRolePolicyDocument=json.dumps(trust_account(B)))
    with pytest.raises(ClientError) as e:
        server.client("sts").assume_role(RoleArn=f"arn:aws:iam::{A}:role/tasks", RoleSessionName="xx")
    assert error_code(e) == "AccessDenied"
    with pytest.raises(ClientError) as e:
        sts_b.assume_role(RoleArn=f"arn:aws:iam::{A}:role/tasks", RoleSessionName="xx")
    assert error_code(e) == "AccessDenied"
    r = sts_b.assume_role(RoleArn=f"arn:aws:iam::{A}:role/for-b", RoleSessionName="from-b", DurationSeconds=900)
    assert r["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{A}:assumed-role/for-b/from-b"
    with pytest.raises(ClientError) as e:
        sts_b.assume_role(RoleArn=f"arn:aws:iam::{A}:role/for-b", RoleSessionName="xx", DurationSeconds=7200)
    assert error_code(e) == "ValidationError"
    with pytest.raises(ClientError) as e:
        sts_b.assume_role(RoleArn=f"arn:aws:iam::{A}:role/nope", RoleSessionName="xx")
    assert error_code(e) == "AccessDenied"


def test_a_trust_policy_may_require_an_external_id(server):
    iam, sts_b = server.client("iam"), server.client("sts", account="b")
    trust = trust_account(B)
    trust["Statement"][0]["Condition"] = {"StringEquals": {"sts:ExternalId": "shared-secret"}}
    iam.create_role(RoleName="vendor", AssumeRolePolicyDocument=json.dumps(trust))
    arn = f"arn:aws:iam::{A}:role/vendor"
    for given in ({}, {"ExternalId": "guess"}):
        with pytest.raises(ClientError) as e:
            sts_b.assume_role(RoleArn=arn, RoleSessionName="vendor", **given)
        assert error_code(e) == "AccessDenied"
    r = sts_b.assume_role(RoleArn=arn, RoleSessionName="vendor", ExternalId="shared-secret")
    assert r["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{A}:assumed-role/vendor/vendor"


def test_accounts_see_only_their_own_iam(server):
    iam, iam_b = server.client("iam"), server.client("iam", account="b")
    iam.create_role(RoleName="web", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS))
    iam.create_user(UserName="bob")
    assert iam_b.list_roles()["Roles"] == []
    assert iam_b.list_users()["Users"] == []
    with pytest.raises(ClientError) as e:
        iam_b.get_role(RoleName="web")
    assert error_code(e) == "NoSuchEntity"
    iam_b.create_role(RoleName="web", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS))
    assert iam_b.get_role(RoleName="web")["Role"]["Arn"] == f"arn:aws:iam::{B}:role/web"


def test_access_keys(server):
    iam = server.client("iam")
    key, secret = new_user_key(iam, "frank")
    iam.create_access_key(UserName="frank")
    with pytest.raises(ClientError) as e:
        iam.create_access_key(UserName="frank")
    assert error_code(e) == "LimitExceeded"
    listed = iam.list_access_keys(UserName="frank")["AccessKeyMetadata"]
    assert key in [k["AccessKeyId"] for k in listed] and len(listed) == 2
    frank = client(server, "sts", key, secret)
    assert frank.get_caller_identity()["Arn"] == f"arn:aws:iam::{A}:user/frank"
    iam.update_access_key(UserName="frank", AccessKeyId=key, Status="Inactive")
    with pytest.raises(ClientError) as e:
        frank.get_caller_identity()
    assert error_code(e) == "InvalidClientTokenId"
    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName="frank")
    assert error_code(e) == "DeleteConflict"
    for k in iam.list_access_keys(UserName="frank")["AccessKeyMetadata"]:
        iam.delete_access_key(UserName="frank", AccessKeyId=k["AccessKeyId"])
    iam.delete_user(UserName="frank")
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName="frank")
    assert error_code(e) == "NoSuchEntity"


def test_task_definitions_name_only_roles_of_their_account(server):
    ecs, iam = server.client("ecs"), server.client("iam")
    containers = [{"name": "web", "image": "berth-test/busybox:latest", "memory": 64}]
    for bad in (f"arn:aws:iam::{A}:role/nope", f"arn:aws:iam::{B}:role/web", "web"):
        with pytest.raises(ClientError) as e:
            ecs.register_task_definition(family="web", containerDefinitions=containers, taskRoleArn=bad)
        assert error_code(e) == "ClientException"
        assert bad in e.value.response["Error"]["Message"]
    server.client("iam", account="b").create_role(RoleName="web", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS))
    with pytest.raises(ClientError) as e:
        ecs.register_task_definition(family="web", containerDefinitions=containers,
                                     executionRoleArn=f"arn:aws:iam::{B}:role/web")
    assert error_code(e) == "ClientException"
    iam.create_role(RoleName="web", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS))
    td = ecs.register_task_definition(family="web", containerDefinitions=containers,
                                      taskRoleArn=f"arn:aws:iam::{A}:role/web")["taskDefinition"]
    assert td["taskRoleArn"] == f"arn:aws:iam::{A}:role/web"


def test_running_a_task_with_a_role_needs_pass_role(server):
    ecs, iam = server.client("ecs"), server.client("iam")
    ecs.create_cluster(clusterName="prod")
    iam.create_role(RoleName="web", AssumeRolePolicyDocument=json.dumps(TRUST_ECS_TASKS))
    role = f"arn:aws:iam::{A}:role/web"
    ecs.register_task_definition(family="web", taskRoleArn=role,
                                 containerDefinitions=[{"name": "web", "image": "berth-test/busybox:latest", "memory": 64}])
    run_only = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecs:RunTask", "Resource": "*"}]}
    key, secret = new_user_key(iam, "gina", run_only)
    gina = client(server, "ecs", key, secret)
    with pytest.raises(ClientError) as e:
        gina.run_task(cluster="prod", taskDefinition="web")
    assert error_code(e) == "AccessDeniedException"
    assert f"iam:PassRole on resource: {role}" in e.value.response["Error"]["Message"]
    iam.put_user_policy(UserName="gina", PolicyName="pass", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": role,
                                                "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}}]}))
    # Allowed now: the call reaches ECS, which finds no container instance in the cluster.
    with pytest.raises(ClientError) as e:
        gina.run_task(cluster="prod", taskDefinition="web")
    assert error_code(e) == "InvalidParameterException"
    assert e.value.response["Error"]["Message"] == "No Container Instances were found in your cluster."


def test_ec2_actions_are_authorized_on_the_group_they_name(server):
    ec2 = server.client("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    web = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    db = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc)["GroupId"]
    key, secret = new_user_key(server.client("iam"), "netops", {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
                      {"Effect": "Allow", "Action": "ec2:AuthorizeSecurityGroupIngress",
                       "Resource": f"arn:aws:ec2:{REGION}:{A}:security-group/{web}"}]})
    netops = client(server, "ec2", key, secret)
    rule = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    assert netops.authorize_security_group_ingress(GroupId=web, IpPermissions=rule)["Return"] is True
    with pytest.raises(ClientError) as e:
        netops.authorize_security_group_ingress(GroupId=db, IpPermissions=rule)
    assert error_code(e) == "UnauthorizedOperation"
    assert (f"is not authorized to perform: ec2:AuthorizeSecurityGroupIngress on resource: "
            f"arn:aws:ec2:{REGION}:{A}:security-group/{db}") in e.value.response["Error"]["Message"]
    groups = {g["GroupId"]: g for g in netops.describe_security_groups(GroupIds=[web, db])["SecurityGroups"]}
    assert [p["FromPort"] for p in groups[web]["IpPermissions"]] == [443]
    assert groups[db]["IpPermissions"] == []
    with pytest.raises(ClientError) as e:
        netops.delete_security_group(GroupId=web)
    assert error_code(e) == "UnauthorizedOperation"
