"""Secrets: Secrets Manager and Parameter Store on berth's endpoint, container
`secrets` resolved as the task's execution role into the container's
environment (and nowhere else), private images pulled with the login their
`repositoryCredentials` name, values sealed at rest."""
import json
import subprocess
import uuid

import pytest

from conftest import ACCOUNTS, REGION
from docker_support import TEST_IMAGE, Registry, docker, wait_for
from test_logs import EXEC_ROLE, console_block, exec_role, messages, run, start_agent, stopped, task

A = ACCOUNTS["a"][0]


def allow_exec(server, actions, resources="*"):
    """Lets the execution role read secrets, as a user adds to ecsTaskExecutionRole."""
    server.client("iam").put_role_policy(RoleName="exec", PolicyName="secrets", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": resources}]}))


def register(ecs, family, command, secrets=(), group=None, **container):
    c = {"name": "app", "image": TEST_IMAGE, "memory": 64, "command": ["sh", "-c", command],
         "secrets": list(secrets)}
    if group:
        c["logConfiguration"] = console_block(group)
    c.update(container)
    return ecs.register_task_definition(family=family, executionRoleArn=EXEC_ROLE,
                                        containerDefinitions=[c])["taskDefinition"]


def container_env(arn):
    name = f"berth-{arn.rsplit('/', 1)[1]}-app"
    return json.loads(docker("inspect", "-f", "{{json .Config.Env}}", name).stdout)


def no_container(arn):
    out = docker("ps", "-a", "--filter", f"name=berth-{arn.rsplit('/', 1)[1]}", "--format", "{{.Names}}")
    return out.stdout.strip() == ""


def test_a_tasks_secrets_reach_its_environment_and_nothing_else(server, agents, data_dir):
    exec_role(server)
    sm, ssm, ecs, logs = (server.client(s) for s in ("secretsmanager", "ssm", "ecs", "logs"))
    needle = f"pw-{uuid.uuid4().hex}"
    plain = sm.create_secret(Name="prod/api-key", SecretString=f"key-{needle}")
    db = sm.create_secret(Name="prod/db", SecretString=json.dumps({"username": "app", "password": needle}))
    ssm.put_parameter(Name="/prod/token", Value=f"tok-{needle}", Type="SecureString")
    allow_exec(server, ["secretsmanager:GetSecretValue", "ssm:GetParameters"])
    start_agent(ecs, agents)
    secrets = [{"name": "API_KEY", "valueFrom": plain["ARN"]},
               {"name": "DB_USER", "valueFrom": f"{db['ARN']}:username::"},
               {"name": "DB_PASS", "valueFrom": f"{db['ARN']}:password::"},
               {"name": "TOKEN", "valueFrom": "/prod/token"}]
    td = register(ecs, "app", 'echo "$API_KEY|$DB_USER|$DB_PASS|$TOKEN"; sleep 3600', secrets, group="/ecs/app")
    names = {a["name"] for a in td["requiresAttributes"]}
    assert {"ecs.capability.secrets.asm.environment-variables",
            "ecs.capability.secrets.ssm.environment-variables"} <= names
    arn = run(ecs, "app")
    stream = f"ecs/app/{arn.rsplit('/', 1)[1]}"
    printed = wait_for("the container to print its environment",
                       lambda: messages(logs, "/ecs/app", stream), timeout=60)
    assert printed == [f"key-{needle}|app|{needle}|tok-{needle}"]
    # ECS's own records name where the values come from, never the values.
    assert needle not in json.dumps(ecs.describe_tasks(tasks=[arn]), default=str)
    assert needle not in json.dumps(ecs.describe_task_definition(taskDefinition="app"), default=str)
    name = f"berth-{arn.rsplit('/', 1)[1]}-app"
    labels = docker("inspect", "-f", "{{json .Config.Labels}}", name).stdout
    assert needle not in labels
    assert f"DB_PASS={needle}" in container_env(arn)
    # Nothing berth wrote (store, log event store aside, agents' state, logs) holds a value in clear.
    hits = subprocess.run(["grep", "-rl", "--exclude=logs.redb", needle, str(data_dir)],
                          capture_output=True, text=True)
    assert hits.stdout == "", hits.stdout

    # A rotated value is seen by the next task, not by the running one.
    sm.put_secret_value(SecretId="prod/api-key", SecretString="rotated")
    second = run(ecs, "app")
    stream2 = f"ecs/app/{second.rsplit('/', 1)[1]}"
    printed = wait_for("the second task to print", lambda: messages(logs, "/ecs/app", stream2), timeout=60)
    assert printed[0].startswith("rotated|app|")
    assert f"API_KEY=key-{needle}" in container_env(arn)


def test_a_missing_or_denied_secret_stops_the_task_before_any_container(server, agents):
    exec_role(server)
    sm, ecs = server.client("secretsmanager"), server.client("ecs")
    allowed = sm.create_secret(Name="allowed", SecretString="a")
    denied = sm.create_secret(Name="denied", SecretString="d")
    missing = f"arn:aws:secretsmanager:{REGION}:{A}:secret:gone-AbCdEf"
    allow_exec(server, ["secretsmanager:GetSecretValue", "ssm:GetParameters"],
               [allowed["ARN"], missing, f"arn:aws:ssm:{REGION}:{A}:parameter/*"])
    start_agent(ecs, agents)
    register(ecs, "missing", "sleep 3600", [{"name": "X", "valueFrom": missing}])
    t = stopped(ecs, run(ecs, "missing"))
    reason = t["stoppedReason"]
    assert reason.startswith("ResourceInitializationError: unable to pull secrets or registry auth: "), reason
    assert missing in reason and "ResourceNotFoundException" in reason, reason
    assert t["stopCode"] == "TaskFailedToStart"
    assert no_container(t["taskArn"])

    register(ecs, "denied", "sleep 3600", [{"name": "X", "valueFrom": denied["ARN"]}])
    t = stopped(ecs, run(ecs, "denied"))
    assert "AccessDeniedException" in t["stoppedReason"], t["stoppedReason"]
    assert "secretsmanager:GetSecretValue" in t["stoppedReason"]
    assert no_container(t["taskArn"])

    register(ecs, "param", "sleep 3600", [{"name": "X", "valueFrom": "/not/there"}])
    t = stopped(ecs, run(ecs, "param"))
    assert t["stoppedReason"].endswith("invalid parameters: /not/there"), t["stoppedReason"]

    # environmentFiles register as ECS takes them; berth has no object storage to fetch them from.
    register(ecs, "envfile", "sleep 3600",
             environmentFiles=[{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}])
    t = stopped(ecs, run(ecs, "envfile"))
    assert t["stoppedReason"].startswith("ResourceInitializationError: failed to download env files"), t
    assert "arn:aws:s3:::bucket/app.env" in t["stoppedReason"]
    assert no_container(t["taskArn"])
    # Registering secrets without an execution role is refused as ECS refuses it.
    with pytest.raises(ecs.exceptions.ClientException) as e:
        ecs.register_task_definition(family="noexec", containerDefinitions=[
            {"name": "app", "image": TEST_IMAGE, "memory": 64, "secrets": [{"name": "X", "valueFrom": "/p"}]}])
    assert "executionRoleArn" in str(e.value)


def test_a_private_image_is_pulled_with_its_repository_credentials(server, agents):
    registry = Registry(users={"puller": "right-pw"})
    try:
        image = registry.push(TEST_IMAGE, "private/app:1", login=("puller", "right-pw"))
        exec_role(server)
        good = server.cli("secretsmanager", "create-secret", "--name", "hub",
                          "--secret-string", json.dumps({"username": "puller", "password": "right-pw"}))
        bad = server.cli("secretsmanager", "create-secret", "--name", "hub-wrong",
                         "--secret-string", json.dumps({"username": "puller", "password": "wrong"}))
        allow_exec(server, ["secretsmanager:GetSecretValue"])
        ecs = server.client("ecs")
        agent = agents(name="agent1", pull="always")
        wait_for("the agent to connect", lambda: ecs.describe_container_instances(
            containerInstances=[agent.instance_arn()])["containerInstances"][0]["agentConnected"])
        common = {"memory": 64, "command": ["sleep", "3600"], "image": image}

        def family(name, **extra):
            ecs.register_task_definition(family=name, executionRoleArn=EXEC_ROLE,
                                         containerDefinitions=[{"name": "app", **common, **extra}])
            return name

        t = stopped(ecs, run(ecs, family("anon")))
        assert t["stoppedReason"].startswith("CannotPullContainerError"), t["stoppedReason"]
        assert "no basic auth credentials" in t["stoppedReason"], t["stoppedReason"]
        t = stopped(ecs, run(ecs, family("wrong", repositoryCredentials={"credentialsParameter": bad["ARN"]})))
        assert t["stoppedReason"].startswith("CannotPullContainerError"), t["stoppedReason"]
        assert "unauthorized" in t["stoppedReason"].lower(), t["stoppedReason"]
        arn = run(ecs, family("right", repositoryCredentials={"credentialsParameter": good["ARN"]}))
        running = wait_for("the private image's task to run",
                           lambda: (x := task(ecs, arn))["lastStatus"] in ("RUNNING", "STOPPED") and x, timeout=60)
        assert running["lastStatus"] == "RUNNING", running.get("stoppedReason")
        td = ecs.describe_task_definition(taskDefinition="right")["taskDefinition"]
        assert {"name": "com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager"} in \
            td["requiresAttributes"]
    finally:
        registry.stop()
        docker("rmi", f"{registry.host}/private/app:1", check=False)


def test_secrets_read_back_after_kill9_and_are_sealed_on_disk(server, data_dir):
    sm, ssm = server.client("secretsmanager"), server.client("ssm")
    needle = f"needle-{uuid.uuid4().hex}"
    sm.create_secret(Name="durable", SecretString=needle)
    ssm.put_parameter(Name="/durable", Value=needle, Type="SecureString")
    ssm.put_parameter(Name="/visible", Value="plain-value", Type="String")
    server.kill9()
    hits = subprocess.run(["grep", "-rl", needle, str(data_dir)], capture_output=True, text=True)
    assert hits.stdout == "", hits.stdout
    server.start()
    sm, ssm = server.client("secretsmanager"), server.client("ssm")
    assert sm.get_secret_value(SecretId="durable")["SecretString"] == needle
    assert ssm.get_parameter(Name="/durable", WithDecryption=True)["Parameter"]["Value"] == needle
    assert ssm.get_parameter(Name="/durable")["Parameter"]["Value"] != needle
    # The aws CLI reads them the same way; another account does not see them.
    assert server.cli("secretsmanager", "get-secret-value", "--secret-id", "durable")["SecretString"] == needle
    other = server.client("secretsmanager", account="b")
    with pytest.raises(other.exceptions.ResourceNotFoundException):
        other.get_secret_value(SecretId="durable")
    with pytest.raises(server.client("ssm", account="b").exceptions.ParameterNotFound):
        server.client("ssm", account="b").get_parameter(Name="/durable")


def test_iam_policies_apply_to_secrets_and_parameters(server):
    import boto3
    iam = server.client("iam")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "ssm:GetParameter"],
             "Resource": [f"arn:aws:secretsmanager:{REGION}:{A}:secret:team/*",
                          f"arn:aws:ssm:{REGION}:{A}:parameter/team/*"]}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    sm, ssm = server.client("secretsmanager"), server.client("ssm")
    sm.create_secret(Name="team/db", SecretString="ok")
    sm.create_secret(Name="other/db", SecretString="no")
    ssm.put_parameter(Name="/team/p", Value="ok", Type="String")
    ssm.put_parameter(Name="/other/p", Value="no", Type="String")

    def as_user(service):
        return boto3.client(service, endpoint_url=server.endpoint, region_name=REGION,
                            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    usm, ussm = as_user("secretsmanager"), as_user("ssm")
    assert usm.get_secret_value(SecretId="team/db")["SecretString"] == "ok"
    assert ussm.get_parameter(Name="/team/p")["Parameter"]["Value"] == "ok"
    for call in (lambda: usm.get_secret_value(SecretId="other/db"),
                 lambda: ussm.get_parameter(Name="/other/p"),
                 lambda: usm.put_secret_value(SecretId="team/db", SecretString="x")):
        with pytest.raises(usm.exceptions.ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_fargate_task_on_the_fleet_gets_its_secrets(server, ecs, agents, registry):
    from test_fargate import fleet_host, run_fargate, subnet_in, task_container, wait_task
    exec_role(server)
    sm, ssm = server.client("secretsmanager"), server.client("ssm")
    db = sm.create_secret(Name="fargate/db", SecretString=json.dumps({"password": "fg-pw"}))
    ssm.put_parameter(Name="/fargate/token", Value="fg-token", Type="SecureString")
    allow_exec(server, ["secretsmanager:GetSecretValue", "ssm:GetParameters"])
    fleet_host(agents)
    ecs.create_cluster(clusterName="web")
    ecs.register_task_definition(
        family="fsecret", requiresCompatibilities=["FARGATE"], networkMode="awsvpc", cpu="256", memory="512",
        executionRoleArn=EXEC_ROLE, containerDefinitions=[
            {"name": "app", "image": registry.image, "command": ["sleep", "600"], "stopTimeout": 2,
             "secrets": [{"name": "DB_PASSWORD", "valueFrom": f"{db['ARN']}:password::"},
                         {"name": "TOKEN", "valueFrom": f"arn:aws:ssm:{REGION}:{A}:parameter/fargate/token"}]}])
    subnet = subnet_in(server.client("ec2"), "us-east-1a")["SubnetId"]
    arn = run_fargate(ecs, "web", "fsecret", subnet, launchType="FARGATE")["taskArn"]
    wait_task(ecs, arn, "RUNNING")
    env = json.loads(docker("inspect", "-f", "{{json .Config.Env}}", task_container(arn, "app")).stdout)
    assert "DB_PASSWORD=fg-pw" in env and "TOKEN=fg-token" in env
    ecs.stop_task(cluster="web", task=arn)
    wait_task(ecs, arn, "STOPPED")
