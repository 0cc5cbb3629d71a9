"""The EC2 networking subset (VPCs, subnets, security groups, zones) with the
real aws CLI and boto3, signed for service `ec2` on berth's one endpoint."""
import pytest
from botocore.exceptions import ClientError


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def test_every_account_has_a_default_vpc_with_a_subnet_per_zone(server):
    vpcs = server.cli("ec2", "describe-vpcs", "--filters", "Name=is-default,Values=true")["Vpcs"]
    assert len(vpcs) == 1
    vpc = vpcs[0]
    assert vpc["CidrBlock"] == "172.31.0.0/16"
    assert vpc["IsDefault"] is True and vpc["State"] == "available"
    assert vpc["OwnerId"] == "111111111111"
    assert vpc["VpcId"].startswith("vpc-")

    subnets = server.cli("ec2", "describe-subnets", "--filters",
                         f"Name=vpc-id,Values={vpc['VpcId']}")["Subnets"]
    by_zone = {s["AvailabilityZone"]: s for s in subnets}
    assert sorted(by_zone) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert sorted(s["CidrBlock"] for s in subnets) == ["172.31.0.0/20", "172.31.16.0/20", "172.31.32.0/20"]
    assert all(s["DefaultForAz"] and s["MapPublicIpOnLaunch"] for s in subnets)
    assert by_zone["us-east-1b"]["AvailabilityZoneId"] == "use1-az2"
    assert by_zone["us-east-1a"]["AvailableIpAddressCount"] == 4091

    zones = server.cli("ec2", "describe-availability-zones")["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert all(z["State"] == "available" and z["RegionName"] == "us-east-1" for z in zones)

    groups = server.cli("ec2", "describe-security-groups", "--filters", "Name=group-name,Values=default",
                        f"Name=vpc-id,Values={vpc['VpcId']}")["SecurityGroups"]
    assert len(groups) == 1
    default = groups[0]
    # Members of the default group reach each other; everything may leave.
    assert default["IpPermissions"] == [{
        "IpProtocol": "-1", "UserIdGroupPairs": [{"UserId": "111111111111", "GroupId": default["GroupId"]}],
        "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": []}]
    assert default["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]

    # Another region is another default VPC; another account sees none of these.
    ec2_west = server.client("ec2", region="eu-west-1")
    west = ec2_west.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    assert len(west) == 1 and west[0]["VpcId"] != vpc["VpcId"]
    other = server.client("ec2", account="b").describe_vpcs()["Vpcs"]
    assert [v["OwnerId"] for v in other] == ["222222222222"]
    with pytest.raises(ClientError) as e:
        server.client("ec2", account="b").describe_vpcs(VpcIds=[vpc["VpcId"]])
    assert error_code(e) == "InvalidVpcID.NotFound"


def test_vpcs_and_subnets_keep_ec2s_rules(server):
    ec2 = server.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "app"}]}])["Vpc"]
    assert vpc["CidrBlock"] == "10.0.0.0/16" and vpc["IsDefault"] is False
    assert vpc["Tags"] == [{"Key": "Name", "Value": "app"}]
    found = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["ap*"]}])["Vpcs"]
    assert [v["VpcId"] for v in found] == [vpc["VpcId"]]

    subnet = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.0.1.0/24",
                               AvailabilityZone="us-east-1b")["Subnet"]
    assert subnet["AvailabilityZone"] == "us-east-1b" and subnet["AvailableIpAddressCount"] == 251
    assert subnet["DefaultForAz"] is False and subnet["MapPublicIpOnLaunch"] is False

    cases = [
        (dict(VpcId=vpc["VpcId"], CidrBlock="10.0.1.128/25"), "InvalidSubnet.Conflict"),
        (dict(VpcId=vpc["VpcId"], CidrBlock="192.168.0.0/24"), "InvalidSubnet.Range"),
        (dict(VpcId=vpc["VpcId"], CidrBlock="10.0.2.1/24"), "InvalidParameterValue"),
        (dict(VpcId=vpc["VpcId"], CidrBlock="10.0.2.0/24", AvailabilityZone="eu-west-1a"), "InvalidParameterValue"),
        (dict(VpcId="vpc-0000000000000dead", CidrBlock="10.0.2.0/24"), "InvalidVpcID.NotFound"),
        (dict(VpcId="nonsense", CidrBlock="10.0.2.0/24"), "InvalidVpcID.Malformed"),
    ]
    for kwargs, code in cases:
        with pytest.raises(ClientError) as e:
            ec2.create_subnet(**kwargs)
        assert error_code(e) == code, kwargs
    with pytest.raises(ClientError) as e:
        ec2.create_vpc(CidrBlock="10.0.0.0/8")
    assert error_code(e) == "InvalidVpc.Range"

    with pytest.raises(ClientError) as e:
        ec2.delete_vpc(VpcId=vpc["VpcId"])
    assert error_code(e) == "DependencyViolation"
    ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    with pytest.raises(ClientError) as e:
        ec2.describe_subnets(SubnetIds=[subnet["SubnetId"]])
    assert error_code(e) == "InvalidSubnetID.NotFound"
    ec2.delete_vpc(VpcId=vpc["VpcId"])
    with pytest.raises(ClientError) as e:
        ec2.describe_vpcs(VpcIds=[vpc["VpcId"]])
    assert error_code(e) == "InvalidVpcID.NotFound"
    # Its default security group went with it.
    left = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    assert left["SecurityGroups"] == []


def test_a_deleted_default_vpc_stays_deleted_until_asked_for_again(server):
    ec2 = server.client("ec2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]
    for s in ec2.describe_subnets()["Subnets"]:
        ec2.delete_subnet(SubnetId=s["SubnetId"])
    ec2.delete_vpc(VpcId=vpc["VpcId"])
    assert ec2.describe_vpcs()["Vpcs"] == []
    server.kill9()
    server.start()
    ec2 = server.client("ec2")
    assert ec2.describe_vpcs()["Vpcs"] == [], "not made again on restart"
    made = ec2.create_default_vpc()["Vpc"]
    assert made["IsDefault"] and made["CidrBlock"] == "172.31.0.0/16"
    assert len(ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]) == 3
    with pytest.raises(ClientError) as e:
        ec2.create_default_vpc()
    assert error_code(e) == "DefaultVpcAlreadyExists"


def test_security_groups_and_their_rules_with_the_cli(server):
    vpc_id = server.cli("ec2", "describe-vpcs")["Vpcs"][0]["VpcId"]
    web = server.cli("ec2", "create-security-group", "--group-name", "web",
                     "--description", "web servers", "--vpc-id", vpc_id)["GroupId"]
    app = server.cli("ec2", "create-security-group", "--group-name", "app",
                     "--description", "app servers")["GroupId"]
    rules = server.cli("ec2", "authorize-security-group-ingress", "--group-id", web,
                       "--protocol", "tcp", "--port", "80", "--cidr", "0.0.0.0/0")
    assert rules["Return"] is True
    (rule,) = rules["SecurityGroupRules"]
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"], rule["CidrIpv4"]) == ("tcp", 80, 80, "0.0.0.0/0")
    assert rule["IsEgress"] is False and rule["SecurityGroupRuleId"].startswith("sgr-")

    dup = server.cli("ec2", "authorize-security-group-ingress", "--group-id", web,
                     "--protocol", "tcp", "--port", "80", "--cidr", "0.0.0.0/0", check=False)
    assert dup.returncode != 0 and b"InvalidPermission.Duplicate" in dup.stderr

    # app accepts 8080 from members of web only.
    server.cli("ec2", "authorize-security-group-ingress", "--group-id", app, "--ip-permissions",
               f"IpProtocol=tcp,FromPort=8080,ToPort=8080,UserIdGroupPairs=[{{GroupId={web}}}]")
    (g,) = server.cli("ec2", "describe-security-groups", "--group-ids", app)["SecurityGroups"]
    assert g["GroupName"] == "app" and g["Description"] == "app servers" and g["VpcId"] == vpc_id
    assert g["IpPermissions"] == [{
        "IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080,
        "UserIdGroupPairs": [{"UserId": "111111111111", "GroupId": web}],
        "IpRanges": [], "Ipv6Ranges": [], "PrefixListIds": []}]
    listed = server.cli("ec2", "describe-security-group-rules", "--filters", f"Name=group-id,Values={web}")
    assert sorted((r["IsEgress"], r.get("CidrIpv4")) for r in listed["SecurityGroupRules"]) == [
        (False, "0.0.0.0/0"), (True, "0.0.0.0/0")]

    failed = server.cli("ec2", "delete-security-group", "--group-id", web, check=False)
    assert failed.returncode != 0 and b"DependencyViolation" in failed.stderr
    server.cli("ec2", "revoke-security-group-ingress", "--group-id", app, "--ip-permissions",
               f"IpProtocol=tcp,FromPort=8080,ToPort=8080,UserIdGroupPairs=[{{GroupId={web}}}]")
    again = server.cli("ec2", "revoke-security-group-ingress", "--group-id", app, "--protocol", "tcp",
                       "--port", "8080", "--source-group", web, check=False)
    assert again.returncode != 0 and b"InvalidPermission.NotFound" in again.stderr
    server.cli("ec2", "revoke-security-group-ingress", "--group-id", web,
               "--security-group-rule-ids", rule["SecurityGroupRuleId"])
    (g,) = server.cli("ec2", "describe-security-groups", "--group-ids", web)["SecurityGroups"]
    assert g["IpPermissions"] == []
    server.cli("ec2", "delete-security-group", "--group-id", web)

    ec2 = server.client("ec2")
    errors = [
        (lambda: ec2.create_security_group(GroupName="app", Description="again"), "InvalidGroup.Duplicate"),
        (lambda: ec2.create_security_group(GroupName="default", Description="x"), "InvalidGroup.Reserved"),
        (lambda: ec2.create_security_group(GroupName="x", Description="x", VpcId="vpc-00000000000000000"),
         "InvalidVpcID.NotFound"),
        (lambda: ec2.describe_security_groups(GroupIds=[web]), "InvalidGroup.NotFound"),
        (lambda: ec2.describe_security_groups(GroupIds=["web"]), "InvalidGroupId.Malformed"),
        (lambda: ec2.authorize_security_group_ingress(
            GroupId=app, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 90, "ToPort": 80,
                                         "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]), "InvalidParameterValue"),
        (lambda: ec2.authorize_security_group_ingress(
            GroupId=app, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
                                         "IpRanges": [{"CidrIp": "10.0.0.0/33"}]}]), "InvalidParameterValue"),
        (lambda: ec2.describe_vpcs(Filters=[{"Name": "colour", "Values": ["red"]}]), "InvalidParameterValue"),
    ]
    for call, code in errors:
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e) == code
    default = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    with pytest.raises(ClientError) as e:
        ec2.delete_security_group(GroupId=default["GroupId"])
    assert error_code(e) == "CannotDelete"
    assert ec2.describe_network_interfaces()["NetworkInterfaces"] == []


def test_ec2_refuses_what_it_does_not_answer_by_name(server):
    ec2 = server.client("ec2")
    with pytest.raises(ClientError) as e:
        ec2.describe_instances()
    assert error_code(e) == "InvalidAction"
    assert "DescribeInstances" in e.value.response["Error"]["Message"]


def test_ec2_refuses_bad_credentials_in_its_own_words(server):
    import boto3
    from conftest import ACCOUNTS
    for key, secret in [(ACCOUNTS["a"][1], "not-the-secret"), ("AKIANOBODY0000000000", "x")]:
        c = boto3.client("ec2", endpoint_url=server.endpoint, region_name="us-east-1",
                         aws_access_key_id=key, aws_secret_access_key=secret)
        with pytest.raises(ClientError) as e:
            c.describe_vpcs()
        assert error_code(e) == "AuthFailure"
        assert e.value.response["Error"]["Message"] == "AWS was not able to validate the provided access credentials"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_run_task_checks_its_network_configuration_as_ecs_does(server):
    ecs, ec2 = server.client("ecs"), server.client("ec2")
    ecs.create_cluster(clusterName="default")
    bridge = {"family": "bridged", "containerDefinitions": [{"name": "a", "image": "x", "memory": 32}]}
    ecs.register_task_definition(**bridge)
    ecs.register_task_definition(family="own-eni", networkMode="awsvpc", containerDefinitions=[
        {"name": "a", "image": "x", "memory": 32}])
    subnets = ec2.describe_subnets()["Subnets"]
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]
    elsewhere = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.9.1.0/24")["Subnet"]
    other_group = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["SecurityGroups"][0]["GroupId"]

    def net(subnet_ids, groups=(), public=None):
        c = {"subnets": list(subnet_ids), "securityGroups": list(groups)}
        if public:
            c["assignPublicIp"] = public
        return {"awsvpcConfiguration": c}

    cases = [
        ("bridged", net([subnets[0]["SubnetId"]]),
         "Network Configuration is not valid for the given networkMode of this task definition."),
        ("own-eni", None, "Network Configuration must be provided when networkMode 'awsvpc' is specified."),
        ("own-eni", net([]), "subnets can not be empty."),
        ("own-eni", net(["subnet-00000000000000000"]), "The subnet ID 'subnet-00000000000000000' does not exist"),
        ("own-eni", net([subnets[0]["SubnetId"], elsewhere["SubnetId"]]), "Subnets must all belong to the same VPC."),
        ("own-eni", net([subnets[0]["SubnetId"]], [other_group]), "does not belong to the VPC"),
        ("own-eni", net([subnets[0]["SubnetId"]], public="ENABLED"),
         "Assign public IP is not supported for this launch type."),
    ]
    for family, network, message in cases:
        kwargs = {"taskDefinition": family}
        if network:
            kwargs["networkConfiguration"] = network
        with pytest.raises(ClientError) as e:
            ecs.run_task(**kwargs)
        assert error_code(e) == "InvalidParameterException", (family, network)
        assert message in e.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as e:
            ecs.create_service(serviceName="s", desiredCount=1, **kwargs)
        assert message in e.value.response["Error"]["Message"]
    # A valid request passes the network checks: here it finds no instance to run on.
    with pytest.raises(ClientError) as e:
        ecs.run_task(taskDefinition="own-eni", networkConfiguration=net([subnets[0]["SubnetId"]]))
    assert e.value.response["Error"]["Message"] == "No Container Instances were found in your cluster."
    # A service keeps its network configuration, and so does its deployment.
    network = net([subnets[0]["SubnetId"]])
    svc = ecs.create_service(serviceName="s", desiredCount=0, taskDefinition="own-eni",
                             networkConfiguration=network)["service"]
    assert svc["networkConfiguration"] == network
    assert svc["deployments"][0]["networkConfiguration"] == network
