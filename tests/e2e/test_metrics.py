"""`/metrics` on the server and on an agent, read with Prometheus' own text
parser (prometheus_client): every value asserted comes from calls the test made."""
import urllib.request

import pytest
from botocore.exceptions import ClientError
from prometheus_client.parser import text_string_to_metric_families

from docker_support import TEST_IMAGE, free_port, wait_for


def scrape(url):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_the_server_counts_requests_by_operation_and_code_and_shows_its_view(server):
    ecs = server.client("ecs")
    for i in range(3):
        ecs.create_cluster(clusterName=f"m{i}")
    with pytest.raises(ClientError):
        ecs.delete_cluster(cluster="missing")
    server.client("sts").get_caller_identity()
    ecs.register_task_definition(family="f", containerDefinitions=[{"name": "a", "image": "x", "memory": 32}])
    m = scrape(server.endpoint)
    assert value(m, "berth_api_requests_total", service="ecs", operation="CreateCluster", code="Success") == 3
    assert value(m, "berth_api_requests_total", service="ecs", operation="DeleteCluster",
                 code="ClusterNotFoundException") == 1
    assert value(m, "berth_api_requests_total", service="sts", operation="GetCallerIdentity", code="Success") == 1
    assert value(m, "berth_api_request_duration_seconds_count", service="ecs", operation="CreateCluster") == 3
    assert value(m, "berth_index_resources", kind="clusters") == 3
    assert value(m, "berth_index_resources", kind="task_definitions") == 1
    assert value(m, "berth_leader") == 1
    # Three clusters and a revision (family and revision in one transaction): at least four commits.
    assert value(m, "berth_store_transaction_duration_seconds_count") >= 4
    assert value(m, "berth_store_transaction_conflicts_total") == 0
    # The controllers run on their own, about once a second.
    wait_for("a controller pass", lambda: value(
        scrape(server.endpoint), "berth_controller_pass_duration_seconds_count", controller="services") > 0,
        timeout=10)
    # A name made up by a client is not a label of its own.
    req = urllib.request.Request(server.endpoint + "/", data=b"{}", headers={
        "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.not a name", "Content-Type": "application/x-amz-json-1.1"})
    try:
        urllib.request.urlopen(req, timeout=10)
    except urllib.error.HTTPError:
        pass
    m = scrape(server.endpoint)
    assert not any(k[0] == "berth_api_requests_total" and ("operation", "not a name") in k[1] for k in m)
    assert sum(v for k, v in m.items() if k[0] == "berth_api_requests_total"
               and ("operation", "unknown") in k[1]) == 1


def test_tasks_agents_and_placement_failures_on_the_server_and_containers_on_the_agent(server, agents):
    port = free_port()
    agent = agents(metrics_listen=f"127.0.0.1:{port}", pull="prefer-cached")
    agent.instance_arn()
    ecs = server.client("ecs")
    ecs.register_task_definition(family="small", containerDefinitions=[{
        "name": "app", "image": TEST_IMAGE, "memory": 32, "command": ["sleep", "600"]}])
    ecs.register_task_definition(family="huge", containerDefinitions=[{
        "name": "app", "image": TEST_IMAGE, "memory": 10_000_000, "command": ["sleep", "600"]}])
    refused = ecs.run_task(taskDefinition="huge")
    assert [f["reason"] for f in refused["failures"]] == ["RESOURCE:MEMORY"]
    task = ecs.run_task(taskDefinition="small")["tasks"][0]["taskArn"]
    wait_for("the task to run", lambda: ecs.describe_tasks(tasks=[task])["tasks"][0]["lastStatus"] == "RUNNING",
             timeout=60)
    m = scrape(server.endpoint)
    assert value(m, "berth_placement_failures_total", reason="RESOURCE:MEMORY") == 1
    assert value(m, "berth_tasks", last_status="RUNNING") == 1
    assert value(m, "berth_agents_connected") == 1
    assert value(m, "berth_api_requests_total", service="agent", operation="Poll", code="Success") >= 1

    agent_url = f"http://127.0.0.1:{port}"
    wait_for("the agent to report the running container", lambda: value(
        scrape(agent_url), "berth_agent_containers", state="RUNNING") == 1, timeout=10)
    a = scrape(agent_url)
    assert value(a, "berth_agent_docker_request_duration_seconds_count", operation="container_start") == 1
    assert value(a, "berth_agent_docker_request_duration_seconds_count", operation="container_create") == 1
    assert value(a, "berth_agent_docker_request_errors_total", operation="container_start") == 0
    wait_for("every report acknowledged", lambda: value(scrape(agent_url), "berth_agent_reports_unsent") == 0,
             timeout=10)
    ecs.stop_task(task=task)
    # A stopped task's containers are counted until the server stops listing the task, then forgotten.
    wait_for("the agent to count no running container", lambda: value(
        scrape(agent_url), "berth_agent_containers", state="RUNNING") == 0, timeout=60)
    assert value(scrape(agent_url), "berth_agent_docker_request_duration_seconds_count",
                 operation="container_stop") == 1
