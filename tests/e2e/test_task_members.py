"""Task definition members that either work or stop the task saying why:
a container's restart policy starts it again (and its awslogs lines keep
coming); a member berth cannot honour (an EFS volume) stops the task before
any container starts."""
from docker_support import TEST_IMAGE, docker, wait_for
from test_logs import EXEC_ROLE, console_block, exec_role, messages, run, start_agent, stopped, task


def test_a_restart_policy_starts_an_exited_container_again(server, agents):
    exec_role(server)
    ecs, logs = server.client("ecs"), server.client("logs")
    start_agent(ecs, agents)
    ecs.register_task_definition(family="restarts", executionRoleArn=EXEC_ROLE, containerDefinitions=[
        {"name": "app", "image": TEST_IMAGE, "memory": 64, "command": ["sh", "-c", "echo started; sleep 61; exit 3"],
         "restartPolicy": {"enabled": True, "restartAttemptPeriod": 60, "ignoredExitCodes": [0]},
         "logConfiguration": console_block("/ecs/restarts")}])
    arn = run(ecs, "restarts")
    stream = f"ecs/app/{arn.rsplit('/', 1)[1]}"
    twice = wait_for("the container to start a second time",
                     lambda: (m := messages(logs, "/ecs/restarts", stream)) == ["started", "started"] and m,
                     timeout=100, interval=1)
    assert twice == ["started", "started"]
    t = task(ecs, arn)
    assert t["lastStatus"] == "RUNNING" and t["containers"][0]["lastStatus"] == "RUNNING"
    # The same container, started again.
    name = f"berth-{arn.rsplit('/', 1)[1]}-app"
    assert docker("ps", "-q", "--filter", f"name={name}").stdout.strip()
    ecs.stop_task(task=arn)
    assert stopped(ecs, arn)["lastStatus"] == "STOPPED"


def test_a_member_berth_cannot_honour_stops_the_task_before_any_container(server, agents):
    ecs = server.client("ecs")
    start_agent(ecs, agents)
    ecs.register_task_definition(
        family="efs", volumes=[{"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-12345678"}}],
        containerDefinitions=[{"name": "app", "image": TEST_IMAGE, "memory": 64, "command": ["sleep", "3600"],
                               "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]}])
    t = stopped(ecs, run(ecs, "efs"))
    assert t["stoppedReason"] == ("ResourceInitializationError: berth cannot honour volume data: "
                                  "efsVolumeConfiguration needs a file system berth does not serve"), t["stoppedReason"]
    assert t["stopCode"] == "TaskFailedToStart"
    out = docker("ps", "-a", "--filter", f"name=berth-{t['taskArn'].rsplit('/', 1)[1]}", "--format", "{{.Names}}")
    assert out.stdout.strip() == ""
