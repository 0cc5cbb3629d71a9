"""The Fargate walk-through from the ECS console, with the real aws CLI: the
default VPC's subnets, a security group open on HTTP, a Fargate task
definition that serves a page, run-task with a public IP, the page on that
address, a port the group does not allow, a rule that opens it, then stop,
deregister, delete, and nothing left on the host."""
import ipaddress
import json
import subprocess
import urllib.error
import urllib.request

from conftest import PUBLIC_IP_POOL
from docker_support import docker, host_network_artefacts, wait_for
from test_fargate import PAGE, fleet_host


def page(ip, port):
    """The page at ip:port, or None when nothing answers within two seconds."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/index.html", timeout=2) as r:
            return r.read().decode().strip()
    except (urllib.error.URLError, OSError):
        return None


def test_fargate_walkthrough_with_the_aws_cli(server, agents, registry, tmp_path):
    cli = server.cli
    fleet_host(agents)
    before = host_network_artefacts()
    subnets = cli("ec2", "describe-subnets", "--filters", "Name=default-for-az,Values=true")["Subnets"]
    assert len(subnets) == 3
    vpc = subnets[0]["VpcId"]
    group = cli("ec2", "create-security-group", "--group-name", "web", "--description", "HTTP from anywhere",
                "--vpc-id", vpc)["GroupId"]
    cli("ec2", "authorize-security-group-ingress", "--group-id", group, "--protocol", "tcp", "--port", "80",
        "--cidr", "0.0.0.0/0")
    cli("ecs", "create-cluster", "--cluster-name", "walk")
    script = (f"mkdir -p /srv && echo '{PAGE}' > /srv/index.html && "
              "httpd -p 8080 -h /srv && exec httpd -f -p 80 -h /srv")
    td_file = tmp_path / "web.json"
    td_file.write_text(json.dumps({
        "family": "web", "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": "512", "memory": "1024",
        "containerDefinitions": [{"name": "web", "image": registry.image, "essential": True,
                                  "command": ["sh", "-c", script], "stopTimeout": 2,
                                  "portMappings": [{"containerPort": 80}, {"containerPort": 8080}]}],
    }))
    cli("ecs", "register-task-definition", "--cli-input-json", f"file://{td_file}")
    subnet_ids = ",".join(s["SubnetId"] for s in subnets)
    run = cli("ecs", "run-task", "--cluster", "walk", "--launch-type", "FARGATE", "--task-definition", "web",
              "--network-configuration",
              f"awsvpcConfiguration={{subnets=[{subnet_ids}],securityGroups=[{group}],assignPublicIp=ENABLED}}")
    assert run["failures"] == []
    task_arn = run["tasks"][0]["taskArn"]
    cli("ecs", "wait", "tasks-running", "--cluster", "walk", "--tasks", task_arn)
    task = cli("ecs", "describe-tasks", "--cluster", "walk", "--tasks", task_arn)["tasks"][0]
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    [eni] = cli("ec2", "describe-network-interfaces", "--network-interface-ids",
                details["networkInterfaceId"])["NetworkInterfaces"]
    public_ip = eni["Association"]["PublicIp"]
    assert ipaddress.ip_address(public_ip) in ipaddress.ip_network(PUBLIC_IP_POOL)
    assert eni["PrivateIpAddress"] == details["privateIPv4Address"]

    # Open it: the page is served on the public address.
    assert wait_for("the page", lambda: page(public_ip, 80), timeout=5) == PAGE
    # The group does not allow 8080; a rule added now opens it on the running task.
    assert page(public_ip, 8080) is None
    cli("ec2", "authorize-security-group-ingress", "--group-id", group, "--protocol", "tcp", "--port", "8080",
        "--cidr", "0.0.0.0/0")
    assert wait_for("8080 to open", lambda: page(public_ip, 8080), timeout=3) == PAGE

    cli("ecs", "stop-task", "--cluster", "walk", "--task", task_arn)
    cli("ecs", "wait", "tasks-stopped", "--cluster", "walk", "--tasks", task_arn)
    assert cli("ecs", "deregister-task-definition", "--task-definition", "web:1")["taskDefinition"][
        "status"] == "INACTIVE"
    assert cli("ecs", "delete-cluster", "--cluster", "walk")["cluster"]["status"] == "INACTIVE"

    # Nothing of the task is left on the host.
    wait_for("the ENI to be released",
             lambda: cli("ec2", "describe-network-interfaces")["NetworkInterfaces"] == [], timeout=10)
    wait_for("the host to be as before", lambda: host_network_artefacts() == before, timeout=25)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert " berthv" not in links and " berthu" not in links
    assert "100.64." not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    task_id = task_arn.rsplit("/", 1)[1]
    assert docker("ps", "-aq", "--filter", f"name=berth-{task_id}.pause").stdout.strip() == ""
    assert page(public_ip, 80) is None
