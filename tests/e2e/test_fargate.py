"""FARGATE end to end: a `berth agent --fleet` host of the platform runs
tasks of any account with their own ENI and task-level limits; RunTask and
services reach it by launch type or capacity provider strategy; ECS's Fargate
rules; and two accounts' tasks on one fleet host cannot reach each other."""
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import FLEET_KEY
from docker_support import containers_of, docker, wait_for
from test_awsvpc import eni_details, error_code, fetch, network

PAGE = "hello from fargate"


def fargate_web(image, family="fweb", **extra):
    script = f"mkdir -p /srv && echo '{PAGE}' > /srv/index.html && exec httpd -f -p 80 -h /srv"
    td = dict(family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
              cpu="512", memory="1024", containerDefinitions=[
                  {"name": "web", "image": image, "essential": True, "command": ["sh", "-c", script],
                   "portMappings": [{"containerPort": 80}], "stopTimeout": 2}])
    td.update(extra)
    return td


def fargate_client(image, family="fclient"):
    return dict(family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                cpu="256", memory="512", containerDefinitions=[
                    {"name": "client", "image": image, "command": ["sleep", "600"], "stopTimeout": 2}])


def subnet_in(ec2, zone):
    return ec2.describe_subnets(
        Filters=[{"Name": "availability-zone", "Values": [zone]}])["Subnets"][0]


def fleet_host(agents):
    host = agents("fleet1", fleet=True)
    host.owner()
    return host


def task_container(task_arn, name):
    return docker("ps", "-q", "--filter", f"label=com.amazonaws.ecs.task-arn={task_arn}",
                  "--filter", f"label=com.amazonaws.ecs.container-name={name}").stdout.strip()


def cgroup_limits(task_id):
    """(memory bytes, CPU quota per 100 ms period) of a task's cgroup, v1 or v2."""
    v2 = Path("/sys/fs/cgroup/berth") / task_id
    if (v2 / "memory.max").exists():
        quota = (v2 / "cpu.max").read_text().split()[0]
        return int((v2 / "memory.max").read_text()), int(quota)
    memory = Path("/sys/fs/cgroup/memory/berth") / task_id / "memory.limit_in_bytes"
    quota = Path("/sys/fs/cgroup/cpu/berth") / task_id / "cpu.cfs_quota_us"
    return int(memory.read_text()), int(quota.read_text())


def wait_task(ecs, arn, status, cluster="web"):
    def check():
        t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        return t if t["lastStatus"] == status else None
    return wait_for(f"task {arn} to be {status}", check, timeout=40)


def run_fargate(ecs, cluster, family, subnet, groups=(), **kw):
    out = ecs.run_task(cluster=cluster, taskDefinition=family,
                       networkConfiguration=network(subnet, groups), **kw)
    assert out["failures"] == [], out["failures"]
    return out["tasks"][0]


def test_fargate_tasks_run_on_the_fleet_with_their_own_eni_and_task_limits(server, ecs, agents, registry):
    ec2 = server.client("ec2")
    host = fleet_host(agents)
    ecs.create_cluster(clusterName="web")
    ecs.register_task_definition(**fargate_web(registry.image))
    subnet = subnet_in(ec2, "us-east-1b")
    started = run_fargate(ecs, "web", "fweb", subnet["SubnetId"], launchType="FARGATE")
    assert started["launchType"] == "FARGATE"
    assert "containerInstanceArn" not in started
    assert (started["platformVersion"], started["platformFamily"]) == ("1.4.0", "Linux")
    assert (started["cpu"], started["memory"]) == ("512", "1024")
    assert started["ephemeralStorage"] == {"sizeInGiB": 20}
    assert started["availabilityZone"] == "us-east-1b", "a Fargate task is where its subnet is"
    arn = started["taskArn"]
    task = wait_task(ecs, arn, "RUNNING")
    attachment, details = eni_details(task)
    assert attachment["status"] == "ATTACHED"
    assert details["subnetId"] == subnet["SubnetId"]
    # The fleet host is the platform's: no container instance of the user's cluster.
    assert ecs.list_container_instances(cluster="web")["containerInstanceArns"] == []
    container = task_container(arn, "web")
    labels = docker("inspect", container, "--format",
                    '{{index .Config.Labels "berth.container-instance"}} {{.HostConfig.CgroupParent}}'
                    ).stdout.split()
    task_id = arn.rsplit("/", 1)[1]
    assert labels == [host.owner(), f"/berth/{task_id}"]
    # Task-level CPU and memory are the task's cgroup's limits: 0.5 vCPU, 1 GiB.
    assert cgroup_limits(task_id) == (1024 * 1024 * 1024, 50_000)
    ecs.stop_task(cluster="web", task=arn)
    stopped = wait_task(ecs, arn, "STOPPED")
    assert eni_details(stopped)[0]["status"] == "DELETED"


def test_fargate_launches_follow_ecs_rules(server, ecs):
    ec2 = server.client("ec2")
    subnet = subnet_in(ec2, "us-east-1a")["SubnetId"]
    ecs.create_cluster(clusterName="web")
    ecs.register_task_definition(**fargate_web("busybox"))
    ecs.register_task_definition(family="bridged", containerDefinitions=[
        {"name": "a", "image": "busybox", "memory": 32}])
    ecs.register_task_definition(**fargate_web("busybox", family="arm", runtimePlatform={
        "cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}))
    net = network(subnet)
    fargate_strategy = [{"capacityProvider": "FARGATE", "weight": 1}]
    cases = [
        (dict(taskDefinition="fweb", launchType="FARGATE"), "InvalidParameterException",
         "Network Configuration must be provided when networkMode 'awsvpc' is specified."),
        (dict(taskDefinition="bridged", launchType="FARGATE", networkConfiguration=net), "InvalidParameterException",
         "Task definition does not support launch_type FARGATE."),
        (dict(taskDefinition="fweb", launchType="FARGATE", networkConfiguration=net, platformVersion="1.0.0"),
         "InvalidParameterException", "platform version 1.0.0 does not exist"),
        (dict(taskDefinition="arm", launchType="FARGATE", networkConfiguration=net),
         "InvalidParameterException", "LINUX/X86_64"),
        (dict(taskDefinition="fweb", launchType="FARGATE", networkConfiguration=net,
              capacityProviderStrategy=fargate_strategy),
         "InvalidParameterException", "Specifying both a launch type and capacity provider strategy"),
        (dict(taskDefinition="fweb", networkConfiguration=net, capacityProviderStrategy=fargate_strategy),
         "InvalidParameterException", "not associated with the cluster"),
        (dict(taskDefinition="fweb", launchType="FARGATE", networkConfiguration=net,
              placementConstraints=[{"type": "distinctInstance"}]),
         "InvalidParameterException", "not supported for tasks with the FARGATE launch type"),
        (dict(taskDefinition="fweb", launchType="FARGATE", networkConfiguration=net,
              overrides={"ephemeralStorage": {"sizeInGiB": 5}}),
         "InvalidParameterException", "ephemeral storage size 5 GiB"),
    ]
    for kwargs, code, message in cases:
        with pytest.raises(ClientError) as e:
            ecs.run_task(cluster="web", **kwargs)
        assert error_code(e) == code, kwargs
        assert message in e.value.response["Error"]["Message"], kwargs
    # With no fleet host to run on, the task is a failure, as when Fargate has no capacity.
    out = ecs.run_task(cluster="web", taskDefinition="fweb", launchType="FARGATE", networkConfiguration=net)
    assert out["tasks"] == []
    assert out["failures"][0]["reason"].startswith("Capacity is unavailable at this time.")
    # A cluster's capacity providers are the platform's FARGATE and FARGATE_SPOT.
    with pytest.raises(ClientError) as e:
        ecs.put_cluster_capacity_providers(cluster="web", capacityProviders=["mine"],
                                           defaultCapacityProviderStrategy=[])
    assert "does not exist" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        ecs.put_cluster_capacity_providers(cluster="web", capacityProviders=["FARGATE"],
                                           defaultCapacityProviderStrategy=[
                                               {"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    assert "not associated with the cluster" in e.value.response["Error"]["Message"]
    # Fleet keys run fleet hosts and nothing else.
    fleet = server.client("ecs")
    fleet._request_signer._credentials.access_key, fleet._request_signer._credentials.secret_key = FLEET_KEY
    with pytest.raises(ClientError) as e:
        fleet.list_clusters()
    assert error_code(e) == "AccessDeniedException"


def test_capacity_provider_strategies_and_fargate_services(server, ecs, agents, registry):
    ec2 = server.client("ec2")
    fleet_host(agents)
    ecs.create_cluster(clusterName="web")
    ecs.register_task_definition(**fargate_client(registry.image))
    cluster = ecs.put_cluster_capacity_providers(
        cluster="web", capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])["cluster"]
    assert cluster["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    described = ecs.describe_clusters(clusters=["web"])["clusters"][0]
    assert described["defaultCapacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    subnet = subnet_in(ec2, "us-east-1a")["SubnetId"]
    # No launch type and no strategy: the cluster's default strategy.
    task = run_fargate(ecs, "web", "fclient", subnet)
    assert (task["launchType"], task["capacityProviderName"]) == ("FARGATE", "FARGATE_SPOT")
    ecs.stop_task(cluster="web", task=task["taskArn"])
    # A given strategy: its base first.
    out = ecs.run_task(cluster="web", taskDefinition="fclient", count=3, networkConfiguration=network(subnet),
                       capacityProviderStrategy=[{"capacityProvider": "FARGATE", "base": 1, "weight": 0},
                                                 {"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    assert sorted(t["capacityProviderName"] for t in out["tasks"]) == ["FARGATE", "FARGATE_SPOT", "FARGATE_SPOT"]
    for t in out["tasks"]:
        ecs.stop_task(cluster="web", task=t["taskArn"])
    # A service on Fargate by launch type.
    from test_services import running_tasks, stable
    svc = ecs.create_service(cluster="web", serviceName="f", taskDefinition="fclient", desiredCount=2,
                             launchType="FARGATE", networkConfiguration=network(subnet))["service"]
    assert (svc["launchType"], svc["platformVersion"]) == ("FARGATE", "LATEST")
    stable(ecs, "f", cluster="web")
    tasks = running_tasks(ecs, "f", cluster="web")
    assert len(tasks) == 2 and all(t["launchType"] == "FARGATE" for t in tasks)
    assert len({eni_details(t)[1]["privateIPv4Address"] for t in tasks}) == 2
    ecs.update_service(cluster="web", service="f", desiredCount=0)
    stable(ecs, "f", cluster="web")


def test_two_accounts_on_one_fleet_host_cannot_reach_each_other(server, agents, registry):
    fleet_host(agents)
    ecs_a, ecs_b = server.client("ecs"), server.client("ecs", account="b")
    ec2_a, ec2_b = server.client("ec2"), server.client("ec2", account="b")
    tasks = {}
    for name, ecs, ec2 in (("a", ecs_a, ec2_a), ("b", ecs_b, ec2_b)):
        ecs.create_cluster(clusterName="web")
        ecs.register_task_definition(**fargate_web(registry.image))
        ecs.register_task_definition(**fargate_client(registry.image))
        vpc = subnet_in(ec2, "us-east-1a")["VpcId"]
        group = ec2.create_security_group(GroupName="web", Description="http", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        web = run_fargate(ecs, "web", "fweb", subnet_in(ec2, "us-east-1b")["SubnetId"], [group],
                          launchType="FARGATE")
        client = run_fargate(ecs, "web", "fclient", subnet_in(ec2, "us-east-1a")["SubnetId"],
                             launchType="FARGATE")
        tasks[name] = (ecs, web["taskArn"], client["taskArn"])
    for name, (ecs, web, client) in tasks.items():
        for arn in (web, client):
            wait_task(ecs, arn, "RUNNING")
    ips = {name: eni_details(ecs.describe_tasks(cluster="web", tasks=[web])["tasks"][0])[1]["privateIPv4Address"]
           for name, (ecs, web, _) in tasks.items()}
    # Both default VPCs are 172.31.0.0/16: the two web tasks even share an address.
    assert ips["a"] == ips["b"] == "172.31.16.4"
    # Each account's client reaches its own web task...
    for name, (_, web, client) in tasks.items():
        assert fetch(task_container(client, "client"), ips[name], 80) == PAGE
    # ...and account a's web task, stopped, leaves nothing of b's within a's reach.
    ecs_a.stop_task(cluster="web", task=tasks["a"][1])
    wait_task(ecs_a, tasks["a"][1], "STOPPED")
    assert fetch(task_container(tasks["a"][2], "client"), ips["b"], 80) is None
    # Neither account sees the other's tasks; their containers share no namespace.
    missing = ecs_a.describe_tasks(cluster="web", tasks=[tasks["b"][1]])
    assert missing["tasks"] == [] and missing["failures"][0]["reason"] == "MISSING"
    a_pid, b_pid = (docker("inspect", task_container(t[2], "client"), "--format", "{{.State.Pid}}").stdout.strip()
                    for t in (tasks["a"], tasks["b"]))
    for ns in ("net", "pid", "mnt"):
        a_ns = subprocess.run(["readlink", f"/proc/{a_pid}/ns/{ns}"], capture_output=True, text=True).stdout
        b_ns = subprocess.run(["readlink", f"/proc/{b_pid}/ns/{ns}"], capture_output=True, text=True).stdout
        assert a_ns and a_ns != b_ns, ns


def public_ip(ecs, ec2, task_arn):
    task = ecs.describe_tasks(cluster="web", tasks=[task_arn])["tasks"][0]
    [eni] = ec2.describe_network_interfaces(
        NetworkInterfaceIds=[eni_details(task)[1]["networkInterfaceId"]])["NetworkInterfaces"]
    return eni["Association"]["PublicIp"]


def http_rule(cidr):
    return [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": cidr}]}]


# Not loopback: a task's own loopback holds 127.x. Every address the test
# sends to is mapped into a namespace of a task it runs.
@pytest.mark.public_ip_pool("198.18.214.0/24")
def test_two_accounts_meet_only_where_both_groups_allow_it_by_cidr(server, agents, registry):
    fleet_host(agents)
    ecs_a, ecs_b = server.client("ecs"), server.client("ecs", account="b")
    ec2_a, ec2_b = server.client("ec2"), server.client("ec2", account="b")
    for ecs in (ecs_a, ecs_b):
        ecs.create_cluster(clusterName="web")
    # b serves a page behind a group that allows tcp/80 from somewhere else.
    ecs_b.register_task_definition(**fargate_web(registry.image))
    vpc_b = subnet_in(ec2_b, "us-east-1a")["VpcId"]
    web_group = ec2_b.create_security_group(GroupName="web", Description="http", VpcId=vpc_b)["GroupId"]
    ec2_b.authorize_security_group_ingress(GroupId=web_group, IpPermissions=http_rule("10.99.0.0/16"))
    subnet_b = subnet_in(ec2_b, "us-east-1a")["SubnetId"]
    web = ecs_b.run_task(cluster="web", taskDefinition="fweb", launchType="FARGATE",
                         networkConfiguration={"awsvpcConfiguration": {
                             "subnets": [subnet_b], "securityGroups": [web_group],
                             "assignPublicIp": "ENABLED"}})["tasks"][0]
    # a runs two clients: one with a public address, one without.
    ecs_a.register_task_definition(**fargate_client(registry.image))
    subnet_a = subnet_in(ec2_a, "us-east-1a")["SubnetId"]
    client_group = ec2_a.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    clients = {}
    for name, assign in (("public", "ENABLED"), ("private", "DISABLED")):
        clients[name] = ecs_a.run_task(cluster="web", taskDefinition="fclient", launchType="FARGATE",
                                       networkConfiguration={"awsvpcConfiguration": {
                                           "subnets": [subnet_a], "securityGroups": [client_group],
                                           "assignPublicIp": assign}})["tasks"][0]["taskArn"]
    wait_task(ecs_b, web["taskArn"], "RUNNING")
    for arn in clients.values():
        wait_task(ecs_a, arn, "RUNNING")
    web_ip, client_ip = public_ip(ecs_b, ec2_b, web["taskArn"]), public_ip(ecs_a, ec2_a, clients["public"])
    public, private = (task_container(clients[n], "client") for n in ("public", "private"))
    # b's group does not allow a's public address: no path.
    assert fetch(public, web_ip, 80) is None
    # b allows exactly a's public address by CIDR: a reaches b's page on b's public address.
    ec2_b.authorize_security_group_ingress(GroupId=web_group, IpPermissions=http_rule(f"{client_ip}/32"))
    assert wait_for("b's group to let a in", lambda: fetch(public, web_ip, 80), timeout=3) == PAGE
    # A task without a public address never leaves its VPC, even where b allows everyone.
    ec2_b.authorize_security_group_ingress(GroupId=web_group, IpPermissions=http_rule("0.0.0.0/0"))
    assert fetch(private, web_ip, 80) is None
    # a's side counts too: without an egress rule for b, no path.
    ec2_a.revoke_security_group_egress(GroupId=client_group, IpPermissions=[
        {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    wait_for("a's egress to close", lambda: fetch(public, web_ip, 80) is None, timeout=3)
    ec2_a.authorize_security_group_egress(GroupId=client_group, IpPermissions=http_rule(f"{web_ip}/32"))
    assert wait_for("a's egress to b to open", lambda: fetch(public, web_ip, 80), timeout=3) == PAGE


@pytest.mark.server_args("--instance-timeout", "3")
def test_a_lost_fleet_host_has_its_tasks_replaced_and_stops_them_when_it_returns(server, ecs, agents, registry):
    from test_services import running_tasks, stable
    ec2 = server.client("ec2")
    first = fleet_host(agents)
    ecs.create_cluster(clusterName="web")
    ecs.register_task_definition(**fargate_client(registry.image))
    subnet = subnet_in(ec2, "us-east-1a")["SubnetId"]
    ecs.create_service(cluster="web", serviceName="f", taskDefinition="fclient", desiredCount=1,
                       launchType="FARGATE", networkConfiguration=network(subnet))
    stable(ecs, "f", cluster="web")
    [lost] = running_tasks(ecs, "f", cluster="web")
    # A second fleet host, then kill -9 the first: its container keeps running, as on a partitioned host.
    second = agents("fleet2", fleet=True)
    second.owner()
    first.kill9()
    owner = first.owner()
    assert any(c[2] == "running" for c in containers_of(owner))

    def healed():
        t = ecs.describe_tasks(cluster="web", tasks=[lost["taskArn"]])["tasks"][0]
        now = running_tasks(ecs, "f", cluster="web")
        return t if t["lastStatus"] == "STOPPED" and len(now) == 1 else None
    t = wait_for("the lost fleet host's task to be replaced", healed, timeout=30)
    assert t["stopCode"] == "InfrastructureHealth" and "was lost" in t["stoppedReason"]
    assert eni_details(t)[0]["status"] == "DELETED"
    # The host comes back: it stops the replaced task's containers, never two copies.
    first.start()
    wait_for("the replaced task's containers to stop",
             lambda: all(c[2] != "running" for c in containers_of(owner)), timeout=40)
    assert len(running_tasks(ecs, "f", cluster="web")) == 1
    ecs.update_service(cluster="web", service="f", desiredCount=0)
    stable(ecs, "f", cluster="web")


def router_namespaces():
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return {line.split()[0] for line in listed.splitlines() if line}


@pytest.mark.server_args("--instance-timeout", "5")
def test_a_fleet_host_killed_with_a_task_attached_removes_its_vpc_router_when_back(server, ecs, agents, registry):
    """kill -9 leaves the VPC's router namespace (the task's ENI is in it); the task is lost,
    the host comes back and stops its containers, and then takes the router away too."""
    ec2 = server.client("ec2")
    host = fleet_host(agents)
    ecs.create_cluster(clusterName="web")
    ecs.register_task_definition(**fargate_client(registry.image))
    subnet = subnet_in(ec2, "us-east-1a")
    arn = run_fargate(ecs, "web", "fclient", subnet["SubnetId"], launchType="FARGATE")["taskArn"]
    wait_task(ecs, arn, "RUNNING")
    router = "berth-" + subnet["VpcId"].split("-")[1][-17:]
    assert router in router_namespaces()
    owner = host.owner()
    host.kill9()
    lost = wait_task(ecs, arn, "STOPPED")
    assert "was lost" in lost["stoppedReason"]
    # Left as it was: the container runs on, its ENI still in the router.
    assert any(c[2] == "running" for c in containers_of(owner))
    assert router in router_namespaces()
    host.start()
    wait_for("the lost task's containers to stop",
             lambda: all(c[2] != "running" for c in containers_of(owner)), timeout=40)
    # Two sweeps 10 s apart find it with no ENI and only this host's own rules.
    # Sweeps run at polls, which wait up to 20 s when nothing changes.
    wait_for("the router namespace to go", lambda: router not in router_namespaces(), timeout=90)
