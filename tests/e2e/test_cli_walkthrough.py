"""The README's walk-through, with the real aws CLI."""
import json


def test_readme_walkthrough(server, tmp_path):
    assert server.cli("sts", "get-caller-identity")["Account"] == "111111111111"
    c = server.cli("ecs", "create-cluster", "--cluster-name", "demo")["cluster"]
    assert c["status"] == "ACTIVE"
    assert server.cli("ecs", "list-clusters")["clusterArns"] == [c["clusterArn"]]
    td_file = tmp_path / "web.json"
    td_file.write_text(json.dumps({
        "family": "web",
        "containerDefinitions": [{
            "name": "web", "image": "busybox:latest", "memory": 64,
            "command": ["httpd", "-f", "-p", "80"], "portMappings": [{"containerPort": 80}],
        }],
    }))
    td = server.cli("ecs", "register-task-definition", "--cli-input-json", f"file://{td_file}")["taskDefinition"]
    assert td["taskDefinitionArn"].endswith(":task-definition/web:1")
    d = server.cli("ecs", "describe-task-definition", "--task-definition", "web")["taskDefinition"]
    assert d["containerDefinitions"][0]["command"] == ["httpd", "-f", "-p", "80"]
    assert server.cli("ecs", "list-task-definitions")["taskDefinitionArns"] == [td["taskDefinitionArn"]]
    server.cli("ecs", "tag-resource", "--resource-arn", c["clusterArn"], "--tags", "key=env,value=dev")
    assert server.cli("ecs", "list-tags-for-resource", "--resource-arn", c["clusterArn"])["tags"] == [
        {"key": "env", "value": "dev"}]
    assert server.cli("ecs", "deregister-task-definition", "--task-definition", "web:1")["taskDefinition"][
        "status"] == "INACTIVE"
    assert server.cli("ecs", "delete-cluster", "--cluster", "demo")["cluster"]["status"] == "INACTIVE"
    # Errors reach the CLI user with ECS's code and message.
    p = server.cli("ecs", "delete-cluster", "--cluster", "demo", check=False)
    assert p.returncode != 0
    assert b"ClusterNotFoundException" in p.stderr and b"Cluster not found." in p.stderr
