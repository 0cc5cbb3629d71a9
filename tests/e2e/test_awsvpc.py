"""awsvpc tasks end to end: a real `berth agent` gives each task its own
namespace and ENI in a VPC subnet, enforces its security groups with
nftables, and takes it all away when the task stops. Test traffic goes from
one task's namespace to another's, inside the namespaces the agent made."""
import ipaddress
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from docker_support import docker, wait_for
from test_tasks_ec2 import connected, describe, wait_status

PAGE = "hello from awsvpc"


def web_definition(image):
    # Port 80 and port 8080 serve the same page; the security group decides who gets in.
    script = (f"mkdir -p /srv && echo '{PAGE}' > /srv/index.html && "
              "httpd -p 8080 -h /srv && exec httpd -f -p 80 -h /srv")
    return dict(family="eni-web", networkMode="awsvpc", containerDefinitions=[
        {"name": "web", "image": image, "memory": 64, "command": ["sh", "-c", script],
         "portMappings": [{"containerPort": 80}, {"containerPort": 8080}]}])


def client_definition(image):
    return dict(family="eni-client", networkMode="awsvpc", containerDefinitions=[
        {"name": "client", "image": image, "memory": 32, "command": ["sleep", "600"],
         "stopTimeout": 2}])


def network(subnet, groups=()):
    return {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": list(groups)}}


def container_id(task_arn, name):
    out = docker("ps", "-q", "--filter", f"label=com.amazonaws.ecs.task-arn={task_arn}",
                 "--filter", f"label=com.amazonaws.ecs.container-name={name}")
    return out.stdout.strip()


def fetch(client_container, ip, port):
    """The page at ip:port as seen from inside the client task, or None when it cannot connect."""
    p = subprocess.run(
        ["docker", "exec", client_container, "timeout", "2", "wget", "-q", "-O", "-",
         f"http://{ip}:{port}/index.html"],
        capture_output=True, timeout=20)
    return p.stdout.decode().strip() if p.returncode == 0 else None


def eni_details(task):
    [a] = task["attachments"]
    assert a["type"] == "ElasticNetworkInterface"
    return a, {d["name"]: d["value"] for d in a["details"]}


def error_code(e):
    return e.value.response["Error"]["Code"]


def test_awsvpc_tasks_get_their_own_interface_and_security_groups(server, ecs, agents, registry):
    ec2 = server.client("ec2")
    agent = agents()
    connected(ecs, agent)
    [subnet] = ec2.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}])["Subnets"]
    subnet_id, vpc_id = subnet["SubnetId"], subnet["VpcId"]
    cidr = ipaddress.ip_network(subnet["CidrBlock"])
    default_group = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    web_group = ec2.create_security_group(GroupName="web", Description="http", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=web_group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ecs.register_task_definition(**web_definition(registry.image))
    ecs.register_task_definition(**client_definition(registry.image))

    web = ecs.run_task(taskDefinition="eni-web", networkConfiguration=network(subnet_id, [web_group]))
    assert web["failures"] == []
    web_arn = web["tasks"][0]["taskArn"]
    attachment, _ = eni_details(web["tasks"][0])
    assert attachment["status"] == "PRECREATED"
    # No groups given: the VPC's default group, as EC2 does.
    client_arn = ecs.run_task(taskDefinition="eni-client",
                              networkConfiguration=network(subnet_id))["tasks"][0]["taskArn"]
    web_task = wait_status(ecs, web_arn, "RUNNING")
    client_task = wait_status(ecs, client_arn, "RUNNING")

    enis = {}
    for task, groups in ((web_task, [web_group]), (client_task, [default_group])):
        attachment, details = eni_details(task)
        assert attachment["status"] == "ATTACHED"
        assert details["subnetId"] == subnet_id
        ip = details["privateIPv4Address"]
        assert ipaddress.ip_address(ip) in cidr
        for c in task["containers"]:
            assert c["networkInterfaces"] == [
                {"attachmentId": attachment["id"], "privateIpv4Address": ip}]
        [eni] = ec2.describe_network_interfaces(
            NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"]
        assert eni["PrivateIpAddress"] == ip
        assert eni["MacAddress"] == details["macAddress"]
        assert (eni["SubnetId"], eni["VpcId"], eni["Status"]) == (subnet_id, vpc_id, "in-use")
        assert [g["GroupId"] for g in eni["Groups"]] == groups
        assert eni["Description"].endswith(f":attachment/{attachment['id']}")
        enis[task["taskArn"]] = (ip, details["networkInterfaceId"])
    web_ip, client_ip = enis[web_arn][0], enis[client_arn][0]
    assert web_ip != client_ip
    # The two lowest addresses AWS lets an ENI have in the subnet.
    first = cidr.network_address + 4
    assert {web_ip, client_ip} == {str(first), str(first + 1)}
    by_filter = ec2.describe_network_interfaces(
        Filters=[{"Name": "group-id", "Values": [web_group]}])["NetworkInterfaces"]
    assert [e["NetworkInterfaceId"] for e in by_filter] == [enis[web_arn][1]]
    free = {s["SubnetId"]: s["AvailableIpAddressCount"] for s in ec2.describe_subnets()["Subnets"]}
    assert free[subnet_id] == cidr.num_addresses - 5 - 2

    # The web task's interface is shared by its container: both ports answer inside it.
    client = container_id(client_arn, "client")
    inside = subprocess.run(["docker", "exec", client, "sh", "-c",
                             "cat /sys/class/net/eth0/address; ip -4 -o addr show dev eth0"],
                            capture_output=True, text=True, timeout=20).stdout
    assert inside.splitlines()[0] == eni_details(client_task)[1]["macAddress"]
    assert f"inet {client_ip}/{cidr.prefixlen}" in inside
    assert fetch(client, web_ip, 80) == PAGE
    assert fetch(client, web_ip, 8080) is None, "8080 is open though no rule allows it"
    # A rule from the client's group opens 8080 on the running task, then revoking closes it.
    pair = {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
            "UserIdGroupPairs": [{"GroupId": default_group}]}
    router = "berth-" + vpc_id.split("-")[1][-17:]

    def rule_on_host():
        return f"ip saddr {client_ip} tcp dport 8080-8080" in subprocess.run(
            ["ip", "netns", "exec", router, "nft", "list", "ruleset"],
            capture_output=True, text=True).stdout
    assert not rule_on_host()
    ec2.authorize_security_group_ingress(GroupId=web_group, IpPermissions=[pair])
    # A rule change reaches the running task's host within a second or two.
    wait_for("the rule to reach the host", rule_on_host, timeout=2, interval=0.05)
    wait_for("8080 to open", lambda: fetch(client, web_ip, 8080) == PAGE, timeout=3)
    ec2.revoke_security_group_ingress(GroupId=web_group, IpPermissions=[pair])
    wait_for("8080 to close", lambda: fetch(client, web_ip, 8080) is None, timeout=5)
    # The default group lets its members in, and nobody else: the web task cannot reach the client.
    assert fetch(container_id(web_arn, "web"), client_ip, 80) is None

    # What holds an address cannot be deleted.
    with pytest.raises(ClientError) as e:
        ec2.delete_subnet(SubnetId=subnet_id)
    assert error_code(e) == "DependencyViolation"
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=web_group)
    assert error_code(e) == "DependencyViolation"

    for arn in (web_arn, client_arn):
        ecs.stop_task(task=arn)
    for arn in (web_arn, client_arn):
        stopped = wait_status(ecs, arn, "STOPPED")
        attachment, _ = eni_details(stopped)
        assert attachment["status"] == "DELETED"
    wait_for("the ENIs to be released",
             lambda: ec2.describe_network_interfaces()["NetworkInterfaces"] == [], timeout=10)
    # Nothing of the tasks' networking is left on the host.
    wait_for("the router namespace to go",
             lambda: router not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                  text=True).stdout, timeout=25)
    assert "berthv" not in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for arn in (web_arn, client_arn):
        task_id = arn.rsplit("/", 1)[1]
        assert docker("ps", "-aq", "--filter", f"name=berth-{task_id}.pause").stdout.strip() == ""
    ec2.delete_security_group(GroupId=web_group)

    # A released address is given out again: the lowest free one.
    again = ecs.run_task(taskDefinition="eni-client", networkConfiguration=network(subnet_id))
    _, details = eni_details(again["tasks"][0])
    assert details["privateIPv4Address"] == str(first)
    ecs.stop_task(task=again["tasks"][0]["taskArn"])
    wait_status(ecs, again["tasks"][0]["taskArn"], "STOPPED")


def test_a_service_of_awsvpc_tasks_gives_each_its_own_address(server, ecs, agents, registry):
    from test_services import running_tasks, stable

    ec2 = server.client("ec2")
    connected(ecs, agents())
    [subnet] = ec2.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": ["us-east-1a"]}])["Subnets"]
    ecs.register_task_definition(**client_definition(registry.image))
    ecs.create_service(serviceName="eni", taskDefinition="eni-client", desiredCount=3,
                       networkConfiguration=network(subnet["SubnetId"]))
    stable(ecs, "eni")
    tasks = running_tasks(ecs, "eni")
    ips = sorted(eni_details(t)[1]["privateIPv4Address"] for t in tasks)
    assert len(set(ips)) == 3
    listed = ec2.describe_network_interfaces(
        Filters=[{"Name": "subnet-id", "Values": [subnet["SubnetId"]]}])["NetworkInterfaces"]
    assert sorted(e["PrivateIpAddress"] for e in listed) == ips
    # Scaled in, the service's tasks stop and give their addresses back.
    ecs.update_service(service="eni", desiredCount=0)
    stable(ecs, "eni")
    wait_for("the ENIs to be released",
             lambda: ec2.describe_network_interfaces()["NetworkInterfaces"] == [], timeout=15)
