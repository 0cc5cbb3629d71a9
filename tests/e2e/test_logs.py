"""Log collection: task definitions with the console's awslogs block run on
real Docker (which is never given awslogs), their lines reach berth's Logs API,
and the aws CLI (v1, and v2's `logs tail --follow` where installed) and boto3
read them back; nothing is lost or repeated across kill -9 of the agent or
the server."""
import json
import os
import subprocess
import time

import pytest

from conftest import ACCOUNTS, REGION
from docker_support import TEST_IMAGE, docker, wait_for

A = ACCOUNTS["a"][0]
TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                 "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]}
EXEC_ROLE = f"arn:aws:iam::{A}:role/exec"


def console_block(group, create="true", **extra):
    """What the ECS console writes with "Use log collection" on."""
    options = {"awslogs-group": group, "awslogs-region": REGION,
               "awslogs-stream-prefix": "ecs", "awslogs-create-group": create}
    options.update(extra)
    return {"logDriver": "awslogs", "options": options}


def exec_role(server, create_group=True):
    """The execution role the console makes, with logs:CreateLogGroup for awslogs-create-group."""
    iam = server.client("iam")
    iam.create_role(RoleName="exec", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.attach_role_policy(RoleName="exec",
                           PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
    if create_group:
        iam.put_role_policy(RoleName="exec", PolicyName="groups", PolicyDocument=json.dumps(
            {"Version": "2012-10-17",
             "Statement": [{"Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"}]}))


def start_agent(ecs, agents, name="agent1"):
    agent = agents(name=name, pull="prefer-cached")
    arn = agent.instance_arn()

    def connected():
        ci = ecs.describe_container_instances(containerInstances=[arn])["containerInstances"]
        return ci and ci[0]["agentConnected"]
    wait_for("the agent to connect", connected)
    return agent


def register(ecs, family, command, log_configuration, essential=True):
    ecs.register_task_definition(
        family=family, executionRoleArn=EXEC_ROLE,
        containerDefinitions=[{"name": "app", "image": TEST_IMAGE, "memory": 64, "essential": essential,
                               "command": ["sh", "-c", command],
                               "logConfiguration": log_configuration}])


def run(ecs, family):
    out = ecs.run_task(taskDefinition=family)
    assert not out["failures"], out["failures"]
    return out["tasks"][0]["taskArn"]


def task(ecs, arn):
    return ecs.describe_tasks(tasks=[arn])["tasks"][0]


def settled(ecs, arn, timeout=60):
    def check():
        t = task(ecs, arn)
        return t if t["lastStatus"] in ("RUNNING", "STOPPED") else None
    return wait_for("the task to settle", check, timeout=timeout)


def stopped(ecs, arn, timeout=60):
    return wait_for("the task to stop",
                    lambda: (t := task(ecs, arn))["lastStatus"] == "STOPPED" and t, timeout=timeout)


def messages(logs, group, stream):
    """Every message of a stream, walked forward from its head (none before it exists)."""
    try:
        return walk(logs, group, stream)
    except logs.exceptions.ResourceNotFoundException:
        return []


def walk(logs, group, stream):
    out, token = [], None
    for _ in range(1000):
        kw = {"nextToken": token} if token else {"startFromHead": True}
        page = logs.get_log_events(logGroupName=group, logStreamName=stream, **kw)
        out += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            return out
        token = page["nextForwardToken"]
    raise AssertionError("the stream never ended")


def test_the_consoles_awslogs_block_ships_lines_to_get_log_events(server, agents):
    exec_role(server)
    ecs, logs = server.client("ecs"), server.client("logs")
    start_agent(ecs, agents)
    register(ecs, "web", "for i in 1 2 3; do echo line $i; done; sleep 0.5; echo oops >&2; sleep 3600",
             console_block("/ecs/web"))
    arn = run(ecs, "web")
    assert settled(ecs, arn)["lastStatus"] == "RUNNING"
    stream = f"ecs/app/{arn.rsplit('/', 1)[1]}"
    shipped = wait_for("the lines to reach GetLogEvents",
                       lambda: len(m := messages(logs, "/ecs/web", stream)) == 4 and m, timeout=10)
    assert shipped == ["line 1", "line 2", "line 3", "oops"]
    # The aws CLI reads the same stream, and filters across streams.
    cli = server.cli("logs", "get-log-events", "--log-group-name", "/ecs/web",
                     "--log-stream-name", stream, "--start-from-head")
    assert [e["message"] for e in cli["events"]] == shipped
    assert all(abs(e["timestamp"] - time.time() * 1000) < 120_000 for e in cli["events"])
    filtered = server.cli("logs", "filter-log-events", "--log-group-name", "/ecs/web",
                          "--filter-pattern", "?oops ?\"line 2\"")
    assert [(e["message"], e["logStreamName"]) for e in filtered["events"]] == [("line 2", stream), ("oops", stream)]
    if v2_installed():
        # The aws CLI v2 reads the same.
        got = cli_v2(server, "logs", "get-log-events", "--log-group-name", "/ecs/web", "--log-stream-name",
                     stream, "--start-from-head", "--output", "json")
        assert [e["message"] for e in json.loads(got.communicate(timeout=60)[0])["events"]] == shipped
        got = cli_v2(server, "logs", "filter-log-events", "--log-group-name", "/ecs/web",
                     "--filter-pattern", "line", "--output", "json")
        assert [e["message"] for e in json.loads(got.communicate(timeout=60)[0])["events"]] == shipped[:3]
    streams = logs.describe_log_streams(logGroupName="/ecs/web")["logStreams"]
    assert [s["logStreamName"] for s in streams] == [stream]
    # Docker was given json-file, never awslogs.
    name = f"berth-{arn.rsplit('/', 1)[1]}-app"
    driver = docker("inspect", "-f", "{{.HostConfig.LogConfig.Type}}", name).stdout.strip()
    assert driver == "json-file"
    # Another account sees no such group.
    other = server.client("logs", account="b")
    with pytest.raises(other.exceptions.ResourceNotFoundException):
        walk(other, "/ecs/web", stream)


def test_a_missing_group_without_create_group_stops_the_task_as_ecs_does(server, agents):
    exec_role(server, create_group=False)
    ecs = server.client("ecs")
    start_agent(ecs, agents)
    register(ecs, "nogroup", "echo hi; sleep 3600", console_block("/ecs/absent", create="false"))
    t = stopped(ecs, run(ecs, "nogroup"))
    reason = t["stoppedReason"]
    assert reason.startswith("ResourceInitializationError:"), reason
    assert "ResourceNotFoundException" in reason and "log group does not exist" in reason, reason
    # No container of it ever started.
    assert t["containers"][0].get("exitCode") is None


def test_a_java_stack_trace_becomes_one_event(server, agents):
    exec_role(server)
    ecs, logs = server.client("ecs"), server.client("logs")
    start_agent(ecs, agents)
    trace = ("echo '2026-12-06 10:00:00 INFO start'; echo '2026-12-06 10:00:01 ERROR failed';"
             "echo 'java.lang.IllegalStateException: boom';"
             "printf '\\tat com.example.App.main(App.java:10)\\n';"
             "echo '2026-12-06 10:00:02 INFO done'")
    register(ecs, "java", trace,
             console_block("/ecs/java", **{"awslogs-multiline-pattern": r"^\d{4}-\d{2}-\d{2}"}))
    arn = run(ecs, "java")
    stopped(ecs, arn)
    stream = f"ecs/app/{arn.rsplit('/', 1)[1]}"
    got = wait_for("three events", lambda: len(m := messages(logs, "/ecs/java", stream)) == 3 and m, timeout=10)
    assert got[1] == ("2026-12-06 10:00:01 ERROR failed\njava.lang.IllegalStateException: boom\n"
                      "\tat com.example.App.main(App.java:10)\n")
    assert got[0] == "2026-12-06 10:00:00 INFO start\n"


def count_numbers(logs, group, stream):
    got = messages(logs, group, stream)
    return sorted(int(m) for m in got if m.isdigit()), len(got)


# A container printing a numbered sequence, a few hundred lines a second.
NUMBERS = "i=1; while [ $i -le {n} ]; do echo $i; i=$((i+1)); if [ $((i % 50)) = 0 ]; then sleep 0.1; fi; done"


def test_an_agent_killed_mid_stream_resumes_and_every_number_arrives_once(server, agents):
    exec_role(server)
    ecs, logs = server.client("ecs"), server.client("logs")
    agent = start_agent(ecs, agents)
    n = 4000
    register(ecs, "numbers", NUMBERS.format(n=n), console_block("/ecs/numbers"))
    arn = run(ecs, "numbers")
    stream = f"ecs/app/{arn.rsplit('/', 1)[1]}"
    wait_for("some numbers to arrive", lambda: count_numbers(logs, "/ecs/numbers", stream)[1] > 100, timeout=30)
    agent.kill9()
    before = count_numbers(logs, "/ecs/numbers", stream)[1]
    assert before < n, "the container finished before the agent was killed"
    agent.start()
    numbers, total = wait_for("every number", lambda: (c := count_numbers(logs, "/ecs/numbers", stream))[1] >= n and c,
                              timeout=60)
    assert numbers == list(range(1, n + 1)), f"{total} events; missing or repeated numbers"
    assert total == n


def test_a_server_killed_mid_stream_loses_and_repeats_nothing(server, agents):
    exec_role(server)
    ecs, logs = server.client("ecs"), server.client("logs")
    start_agent(ecs, agents)
    n = 4000
    register(ecs, "numbers", NUMBERS.format(n=n), console_block("/ecs/numbers"))
    arn = run(ecs, "numbers")
    stream = f"ecs/app/{arn.rsplit('/', 1)[1]}"
    wait_for("some numbers to arrive", lambda: count_numbers(logs, "/ecs/numbers", stream)[1] > 100, timeout=30)
    server.kill9()
    time.sleep(1.0)  # the container keeps printing while the server is down
    server.start()
    ecs, logs = server.client("ecs"), server.client("logs")
    numbers, total = wait_for("every number", lambda: (c := count_numbers(logs, "/ecs/numbers", stream))[1] >= n and c,
                              timeout=60)
    assert numbers == list(range(1, n + 1))
    assert total == n


def test_fifty_thousand_events_page_both_ways_without_loss_or_repeat(server):
    logs = server.client("logs")
    logs.create_log_group(logGroupName="/big")
    logs.create_log_stream(logGroupName="/big", logStreamName="s")
    now = int(time.time() * 1000) - 60_000
    total = 50_000
    for start in range(0, total, 10_000):
        logs.put_log_events(logGroupName="/big", logStreamName="s", logEvents=[
            {"timestamp": now + i // 10, "message": f"event {i:05d}"} for i in range(start, start + 10_000)])
    want = [f"event {i:05d}" for i in range(total)]
    assert messages(logs, "/big", "s") == want
    # Backwards from the newest page.
    back, token = [], None
    for _ in range(100):
        kw = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName="/big", logStreamName="s", limit=7000, **kw)
        back = [e["message"] for e in page["events"]] + back
        if page["nextBackwardToken"] == token:
            break
        token = page["nextBackwardToken"]
    assert back == want
    # boto3's FilterLogEvents paginator, with a pattern.
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName="/big", filterPattern='"event 4"', PaginationConfig={"PageSize": 3000})
    found = [e["message"] for p in pages for e in p["events"]]
    assert found == [m for m in want if "event 4" in m]
    groups = logs.get_paginator("describe_log_groups").paginate()
    assert [g["logGroupName"] for p in groups for g in p["logGroups"]] == ["/big"]


def test_retention_removes_old_events(server):
    logs = server.client("logs")
    logs.create_log_group(logGroupName="/kept")
    logs.create_log_stream(logGroupName="/kept", logStreamName="s")
    now = int(time.time() * 1000)
    day = 86_400_000
    logs.put_log_events(logGroupName="/kept", logStreamName="s", logEvents=[
        {"timestamp": now - 3 * day, "message": "three days old"},
        {"timestamp": now - 2 * day, "message": "two days old"}])
    logs.put_log_events(logGroupName="/kept", logStreamName="s", logEvents=[{"timestamp": now, "message": "new"}])
    server.cli("logs", "put-retention-policy", "--log-group-name", "/kept", "--retention-in-days", "1")
    got = wait_for("the old events to go", lambda: (m := messages(logs, "/kept", "s")) == ["new"] and m, timeout=20)
    assert got == ["new"]
    group = logs.describe_log_groups(logGroupNamePrefix="/kept")["logGroups"][0]
    assert group["retentionInDays"] == 1
    assert group["storedBytes"] == len("new")


def test_an_iam_user_without_logs_permissions_is_refused(server):
    iam = server.client("iam")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["logs:Describe*", "logs:Get*"],
                                                 "Resource": "*"}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    import boto3
    user = boto3.client("logs", endpoint_url=server.endpoint, region_name=REGION,
                        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    server.client("logs").create_log_group(logGroupName="/ro")
    assert [g["logGroupName"] for g in user.describe_log_groups()["logGroups"]] == ["/ro"]
    with pytest.raises(user.exceptions.ClientError) as e:
        user.create_log_group(logGroupName="/mine")
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "logs:CreateLogGroup" in e.value.response["Error"]["Message"]


AWS_V2 = "/usr/bin/aws"


def cli_v2(server, *args, **kw):
    _, key, secret = ACCOUNTS["a"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=REGION,
               AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_MAX_ATTEMPTS="1",
               AWS_PAGER="")
    return subprocess.Popen([AWS_V2, "--endpoint-url", server.endpoint, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, **kw)


def v2_installed():
    if not os.path.exists(AWS_V2):
        return False
    out = subprocess.run([AWS_V2, "--version"], capture_output=True, text=True)
    return out.stdout.startswith("aws-cli/2")


def test_logs_tail_follow_shows_new_lines(server, agents):
    """`aws logs tail --follow` (CLI v2) where it is installed, else an SDK loop reading the same way."""
    exec_role(server)
    ecs, logs = server.client("ecs"), server.client("logs")
    start_agent(ecs, agents)
    register(ecs, "ticker", "i=0; while [ $i -lt 40 ]; do echo tick $i; i=$((i+1)); sleep 0.25; done; sleep 3600",
             console_block("/ecs/ticker"))
    arn = run(ecs, "ticker")
    wait_for("the group", lambda: logs.describe_log_groups(logGroupNamePrefix="/ecs/ticker")["logGroups"], timeout=30)
    seen = []
    if v2_installed():
        tail = cli_v2(server, "logs", "tail", "/ecs/ticker", "--follow", "--format", "short", "--since", "5m")
        try:
            fd = tail.stdout.fileno()
            os.set_blocking(fd, False)
            deadline = time.monotonic() + 30
            buf = ""
            while time.monotonic() < deadline and not any("tick 30" in s for s in seen):
                try:
                    buf += os.read(fd, 65536).decode()
                except BlockingIOError:
                    pass
                *done, buf = buf.split("\n")
                seen += done
                time.sleep(0.2)
        finally:
            tail.kill()
            tail.wait(timeout=10)
    else:
        start, ids = int(time.time() * 1000) - 300_000, set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("tick 30" in s for s in seen):
            for e in logs.filter_log_events(logGroupName="/ecs/ticker", startTime=start)["events"]:
                if e["eventId"] not in ids:
                    ids.add(e["eventId"])
                    seen.append(e["message"])
            time.sleep(0.5)
    ticks = [int(s.rsplit("tick ", 1)[1]) for s in seen if "tick " in s]
    assert ticks[:31] == list(range(31)), seen
    ecs.stop_task(task=arn)


def test_a_log_driver_no_host_serves_is_refused_at_run_task(server, agents):
    ecs = server.client("ecs")
    agent = start_agent(ecs, agents)
    splunk = {"logDriver": "splunk", "options": {"splunk-url": "https://127.0.0.1:8088", "splunk-token": "t"}}
    ecs.register_task_definition(family="splunked", containerDefinitions=[
        {"name": "app", "image": TEST_IMAGE, "memory": 64, "command": ["sleep", "60"], "logConfiguration": splunk}])
    td = ecs.describe_task_definition(taskDefinition="splunked")["taskDefinition"]
    assert {"name": "com.amazonaws.ecs.capability.logging-driver.splunk"} in td["requiresAttributes"]
    out = ecs.run_task(taskDefinition="splunked")
    assert out["tasks"] == []
    assert out["failures"] == [{"arn": agent.instance_arn(), "reason": "ATTRIBUTE"}]
    # The instance says what it serves: awslogs among them.
    ci = ecs.describe_container_instances(containerInstances=[agent.instance_arn()])["containerInstances"][0]
    names = {a["name"] for a in ci["attributes"]}
    assert "com.amazonaws.ecs.capability.logging-driver.awslogs" in names
    assert "com.amazonaws.ecs.capability.logging-driver.splunk" not in names


def berth_logs(server, *args, timeout=60):
    from conftest import BERTH
    _, key, secret = ACCOUNTS["a"]
    env = dict(os.environ, AWS_ENDPOINT_URL=server.endpoint, AWS_ACCESS_KEY_ID=key,
               AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=REGION)
    return subprocess.run([str(BERTH), "logs", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_berth_logs_reads_a_tasks_lines_from_the_server(server, agents):
    exec_role(server)
    ecs = server.client("ecs")
    start_agent(ecs, agents)
    register(ecs, "said", "echo first; sleep 2; echo second", console_block("/ecs/said"))
    arn = run(ecs, "said")
    # --follow prints lines as they come and returns once the task has stopped.
    followed = berth_logs(server, arn, "--follow")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == ["first", "second"]
    assert task(ecs, arn)["lastStatus"] == "STOPPED"
    # Its container gone from Docker, the lines are still the server's.
    docker("rm", "-f", f"berth-{arn.rsplit('/', 1)[1]}-app", check=False)
    by_id = berth_logs(server, arn.rsplit("/", 1)[1], "--cluster", "default")
    assert by_id.returncode == 0, by_id.stderr
    assert by_id.stdout.splitlines() == ["first", "second"]
