"""`berth dev` as the README's first command starts it: server, store and an
agent in one process, then the README's task walk-through with the aws CLI."""
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

from conftest import BERTH
from dev_support import Dev
from docker_support import containers_of, docker, remove_containers_of, wait_for


def test_berth_dev_runs_a_task_end_to_end(tmp_path, registry):
    with Dev(tmp_path) as dev:
        env = dev.env
        assert {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_DEFAULT_REGION"} <= env.keys()

        def aws(*args):
            p = subprocess.run([shutil.which("aws"), *args, "--output", "json"], env=env,
                               capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr
            return json.loads(p.stdout or "{}")

        instances = wait_for("the built-in agent", lambda: aws("ecs", "list-container-instances")
                             .get("containerInstanceArns"), timeout=20)
        instance = instances[0]
        assert ":container-instance/default/" in instance and ":000000000000:" in instance
        aws("ecs", "register-task-definition", "--family", "web", "--container-definitions", json.dumps([{
            "name": "web", "image": registry.image, "memory": 64, "stopTimeout": 2,
            "command": ["httpd", "-f", "-p", "80", "-h", "/www"], "portMappings": [{"containerPort": 80}]}]))
        task = aws("ecs", "run-task", "--task-definition", "web")["tasks"][0]["taskArn"]
        aws("ecs", "wait", "tasks-running", "--tasks", task)
        described = aws("ecs", "describe-tasks", "--tasks", task)["tasks"][0]
        port = described["containers"][0]["networkBindings"][0]["hostPort"]
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read() == b"berth test page\n"
        aws("ecs", "stop-task", "--task", task, "--reason", "done")
        aws("ecs", "wait", "tasks-stopped", "--tasks", task)
        stopped = aws("ecs", "describe-tasks", "--tasks", task)["tasks"][0]
        assert stopped["lastStatus"] == "STOPPED" and stopped["stoppedReason"] == "done"
        assert [c for c in containers_of(instance) if c[2] == "running"] == []

        # The README's service steps: two copies, each serving the page on its own host port.
        aws("ecs", "create-service", "--service-name", "web", "--task-definition", "web", "--desired-count", "2")
        aws("ecs", "wait", "services-stable", "--services", "web")
        arns = aws("ecs", "list-tasks", "--service-name", "web")["taskArns"]
        tasks = aws("ecs", "describe-tasks", "--tasks", *arns)["tasks"]
        ports = sorted(t["containers"][0]["networkBindings"][0]["hostPort"] for t in tasks)
        assert len(set(ports)) == 2
        for p in ports:
            assert urllib.request.urlopen(f"http://127.0.0.1:{p}/", timeout=5).read() == b"berth test page\n"
        events = aws("ecs", "describe-services", "--services", "web")["services"][0]["events"]
        assert any(e["message"] == "(service web) has reached a steady state." for e in events)
        aws("ecs", "delete-service", "--service", "web", "--force")
        aws("ecs", "wait", "services-inactive", "--services", "web")
        wait_for("the service's containers to stop",
                 lambda: [c for c in containers_of(instance) if c[2] == "running"] == [], timeout=30)

        # The README's EC2 networking steps.
        subnets = aws("ec2", "describe-subnets", "--filters", "Name=default-for-az,Values=true")["Subnets"]
        assert sorted(s["AvailabilityZone"] for s in subnets) == [
            f"{env['AWS_DEFAULT_REGION']}{z}" for z in "abc"]
        sg = aws("ec2", "create-security-group", "--group-name", "web", "--description", "web")["GroupId"]
        aws("ec2", "authorize-security-group-ingress", "--group-id", sg, "--protocol", "tcp",
            "--port", "80", "--cidr", "0.0.0.0/0")
        rules = aws("ec2", "describe-security-group-rules", "--filters", f"Name=group-id,Values={sg}")
        assert {(r["IsEgress"], r.get("FromPort")) for r in rules["SecurityGroupRules"]} == {(False, 80), (True, -1)}

        # The README's Fargate steps: a task with a public address on berth dev's fleet host.
        subnet_ids = ",".join(s["SubnetId"] for s in subnets)
        aws("ecs", "register-task-definition", "--family", "fweb", "--requires-compatibilities", "FARGATE",
            "--network-mode", "awsvpc", "--cpu", "512", "--memory", "1024", "--container-definitions",
            json.dumps([{"name": "web", "image": registry.image, "stopTimeout": 2,
                         "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
                         "portMappings": [{"containerPort": 80}]}]))
        task = aws("ecs", "run-task", "--launch-type", "FARGATE", "--task-definition", "fweb",
                   "--network-configuration",
                   f"awsvpcConfiguration={{subnets=[{subnet_ids}],securityGroups=[{sg}],assignPublicIp=ENABLED}}"
                   )["tasks"][0]["taskArn"]
        aws("ecs", "wait", "tasks-running", "--tasks", task)
        eni = aws("ecs", "describe-tasks", "--tasks", task, "--query",
                  "tasks[0].attachments[0].details[?name=='networkInterfaceId'].value | [0]")
        ip = aws("ec2", "describe-network-interfaces", "--network-interface-ids", eni, "--query",
                 "NetworkInterfaces[0].Association.PublicIp")
        assert ip.startswith("127.0.100."), ip
        assert urllib.request.urlopen(f"http://{ip}/", timeout=5).read() == b"berth test page\n"
        aws("ecs", "stop-task", "--task", task)
        aws("ecs", "wait", "tasks-stopped", "--tasks", task)
        # The group is free once the task's ENI is released.
        wait_for("the security group to be deletable", lambda: subprocess.run(
            [shutil.which("aws"), "ec2", "delete-security-group", "--group-id", sg], env=env,
            capture_output=True, timeout=60).returncode == 0, timeout=10)


def test_berth_dev_without_docker_serves_says_how_to_fix_it_and_runs_tasks_once_docker_answers(tmp_path):
    socket = tmp_path / "docker.sock"
    data = tmp_path / "dev"
    proc = subprocess.Popen([str(BERTH), "dev", "--listen", "127.0.0.1:0", "--data-dir", str(data),
                             "--docker-socket", str(socket)],
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "dev.log", "wb"))
    try:
        env = dict(os.environ, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                   AWS_MAX_ATTEMPTS="1")
        said = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stdout.readline().decode()
            said.append(line)
            if line.startswith("export "):
                k, v = line[len("export "):].strip().split("=", 1)
                env[k] = v
            if line.startswith("listening on ") or not line:
                break
        text = "".join(said)
        assert f"Docker is not answering at {socket}: tasks cannot run until it does." in text, text
        assert "sudo ./scripts/docker-up" in text
        endpoint = env["AWS_ENDPOINT_URL"]
        assert f"The console: {endpoint}/console" in text

        def console_notice():
            try:
                urllib.request.urlopen(f"{endpoint}/console/session", timeout=5)
            except urllib.error.HTTPError as e:  # signed out: 401, with the notice every page shows
                return json.loads(e.read())["notice"]
        # The console says it too, on every page, signed in or not.
        assert console_notice() == (f"Docker is not answering at {socket}: tasks cannot run until it does. "
                                    "To install and start it: sudo ./scripts/docker-up")

        def aws(*args):
            p = subprocess.run([shutil.which("aws"), *args, "--output", "json"], env=env,
                               capture_output=True, text=True, timeout=60)
            assert p.returncode == 0, p.stderr
            return json.loads(p.stdout or "{}")
        # The API serves meanwhile; no agent has registered (so cluster default is not made yet).
        assert aws("ecs", "list-clusters")["clusterArns"] == []
        assert "Docker never answered" not in (tmp_path / "dev.log").read_text()
        assert aws("ecs", "list-clusters")["clusterArns"] == []
        # Docker appears where berth dev was told to look: its agents start without a restart.
        os.symlink("/var/run/docker.sock", socket)

        def instances():
            try:
                return aws("ecs", "list-container-instances", "--cluster", "default").get("containerInstanceArns")
            except AssertionError:
                return None
        registered = wait_for("the built-in agent once Docker answers", instances, timeout=30)
        assert len(registered) == 1
        assert console_notice() is None
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_berth_dev_on_sigterm_clears_its_spares_and_says_what_it_leaves_running(tmp_path, registry):
    with Dev(tmp_path) as dev:
        ecs, ec2 = dev.client("ecs"), dev.client("ec2")
        def instances():
            try:
                return ecs.list_container_instances()["containerInstanceArns"]
            except ecs.exceptions.ClusterNotFoundException:
                return None  # the agent has not made the default cluster yet
        wait_for("the built-in agent", instances, timeout=20)
        ecs.register_task_definition(family="keep", containerDefinitions=[
            {"name": "app", "image": registry.image, "memory": 32, "command": ["sleep", "300"]}])
        kept = ecs.run_task(taskDefinition="keep")["tasks"][0]
        # A Fargate task takes a pause container from the fleet host's pool, which refills with spares.
        subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"]]
        ecs.register_task_definition(family="f", requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                                     cpu="256", memory="512", containerDefinitions=[
                                         {"name": "app", "image": registry.image, "command": ["sleep", "300"]}])
        ecs.run_task(taskDefinition="f", launchType="FARGATE",
                     networkConfiguration={"awsvpcConfiguration": {"subnets": subnets}})
        # A task that has stopped: its container (and its volume) wait for the cleanup wait.
        ecs.register_task_definition(family="done", containerDefinitions=[
            {"name": "app", "image": registry.image, "memory": 32, "command": ["true"],
             "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/scratch"}]}],
            volumes=[{"name": "scratch", "host": {}}])
        done = ecs.run_task(taskDefinition="done")["tasks"][0]
        done_id = done["taskArn"].rsplit("/", 1)[1]
        fleet = "fleet-host/" + json.loads((dev.data / "fleet" / "agent-state.json").read_text())["ec2_instance_id"]

        def spares():
            return [c for c in containers_of(fleet) if c[1].startswith("berth-pool-")]
        wait_for("the pool's spares", spares, timeout=60)
        wait_for("the kept task to run", lambda: ecs.describe_tasks(tasks=[kept["taskArn"]])["tasks"][0]
                 ["lastStatus"] == "RUNNING", timeout=60)
        wait_for("the done task to stop", lambda: ecs.describe_tasks(tasks=[done["taskArn"]])["tasks"][0]
                 ["lastStatus"] == "STOPPED", timeout=60)
        assert [c for c in containers_of(done["containerInstanceArn"]) if done_id in c[1]]
        assert docker("volume", "ls", "-q", "--filter", f"name=berth-{done_id}-").stdout.split()

        dev.proc.send_signal(signal.SIGTERM)
        assert dev.proc.wait(timeout=30) == 0
        said = dev.proc.stdout.read().decode().strip().splitlines()
        assert said[-1].startswith("berth dev stopped: "), said
        running = int(said[-1].split()[3])
        assert "keep running, as an ECS agent leaves its tasks" in said[-1]
        # It says what it leaves, and leaves no more: the two tasks' containers (and the
        # Fargate task's pause container); the spares are gone.
        assert spares() == []
        # The stopped task's container and volume are gone, and the line counts them.
        assert " and 1 containers of stopped tasks removed" in said[-1], said[-1]
        assert [c for c in containers_of(done["containerInstanceArn"]) if done_id in c[1]] == []
        assert docker("volume", "ls", "-q", "--filter", f"name=berth-{done_id}-").stdout.split() == []
        on_host = [c for c in containers_of(kept["containerInstanceArn"]) + containers_of(fleet)
                   if c[2] == "running"]
        assert running == len(on_host) >= 2, (said[-1], on_host)
        # What berth dev left by design goes with the test (the server is gone, so the
        # fixture cannot list the instance).
        remove_containers_of(kept["containerInstanceArn"])
