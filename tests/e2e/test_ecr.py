"""berth's ECR: repositories made with the aws CLI, `docker login` with
get-login-password, `docker push` to the repositoryUri, and tasks whose task
definitions name the image in ECR's own form (ACCOUNT.dkr.ecr.REGION.amazonaws.com/…)
pulled from berth's registry; Docker is never given an amazonaws.com name."""
import json
import os
import subprocess
import tempfile
import time

import pytest

from conftest import ACCOUNTS
from docker_support import TEST_IMAGE, docker, wait_for

A = ACCOUNTS["a"][0]
REGISTRY = pytest.mark.server_args("--registry-listen", "127.0.0.1:0")
pytestmark = REGISTRY


@pytest.fixture
def docker_cli(tmp_path):
    """The docker CLI with a login store of its own, so tests' logins stay in the test."""
    d = tmp_path / "docker-config"
    d.mkdir()

    def run(*args, stdin=None, check=True):
        p = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True,
                           timeout=180, env=dict(os.environ, DOCKER_CONFIG=d))
        if check:
            assert p.returncode == 0, p.stderr
        return p
    return run


def login(server, docker_cli, account="a"):
    password = server.cli("ecr", "get-login-password", account=account, check=False)
    assert password.returncode == 0, password.stderr
    out = docker_cli("login", "--username", "AWS", "--password-stdin", server.registry,
                     stdin=password.stdout.decode())
    assert "Login Succeeded" in out.stdout


def push(docker_cli, local, ref):
    docker_cli("tag", local, ref)
    out = docker_cli("push", ref, check=False)
    # The agent's pull must fetch it from the registry, not find this tag cached.
    docker_cli("rmi", ref, check=False)
    return out


def ecr_name(repo, tag="v1"):
    return f"{A}.dkr.ecr.us-east-1.amazonaws.com/{repo}:{tag}"


def start_agent(ecs, agents):
    agent = agents(name="agent1", cluster="prod", pull="always")
    arn = agent.instance_arn()

    def connected():
        ci = ecs.describe_container_instances(cluster="prod", containerInstances=[arn])["containerInstances"]
        return ci and ci[0]["agentConnected"]
    wait_for("the agent to connect", connected, timeout=20)
    return arn


def run(ecs, family, image, execution_role=None):
    td = {"family": family, "containerDefinitions": [
        {"name": "app", "image": image, "memory": 64, "command": ["sleep", "3600"]}]}
    if execution_role:
        td["executionRoleArn"] = execution_role
    ecs.register_task_definition(**td)
    return ecs.run_task(cluster="prod", taskDefinition=family)["tasks"][0]["taskArn"]


def settled(ecs, arn, timeout=60):
    def check():
        t = ecs.describe_tasks(cluster="prod", tasks=[arn])["tasks"][0]
        return t if t["lastStatus"] in ("RUNNING", "STOPPED") else None
    return wait_for("the task to run or stop", check, timeout=timeout)


def test_a_pushed_image_is_described_and_runs_from_its_ecr_name(server, agents, docker_cli):
    assert server.registry, "berth serves a registry"
    repo = server.cli("ecr", "create-repository", "--repository-name", "team/web")["repository"]
    assert repo["repositoryUri"] == f"{server.registry}/{A}/us-east-1/team/web"
    login(server, docker_cli)
    pushed = push(docker_cli, TEST_IMAGE, repo["repositoryUri"] + ":v1")
    assert pushed.returncode == 0, pushed.stderr
    digest = next(w for w in pushed.stdout.split() if w.startswith("sha256:"))

    ecr = server.client("ecr")
    detail = ecr.describe_images(repositoryName="team/web")["imageDetails"][0]
    assert detail["imageDigest"] == digest
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] > 100_000
    assert detail["imageManifestMediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert ecr.list_images(repositoryName="team/web")["imageIds"] == [{"imageDigest": digest, "imageTag": "v1"}]
    got = ecr.batch_get_image(repositoryName="team/web", imageIds=[{"imageTag": "v1"}])["images"][0]
    assert json.loads(got["imageManifest"])["schemaVersion"] == 2

    ecs = server.client("ecs")
    ecs.create_cluster(clusterName="prod")
    start_agent(ecs, agents)
    since = str(int(time.time()) - 1)
    t = settled(ecs, run(ecs, "web", ecr_name("team/web")))
    assert t["lastStatus"] == "RUNNING", t.get("stoppedReason")
    c = t["containers"][0]
    assert c["image"] == ecr_name("team/web")
    assert c["imageDigest"] == digest
    # Docker was given berth's registry, never ECR's host.
    inspected = json.loads(docker("inspect", c["runtimeId"]).stdout)[0]
    assert inspected["Config"]["Image"] == f"{repo['repositoryUri']}:v1"
    names = docker("images", "--format", "{{.Repository}}").stdout
    assert "amazonaws.com" not in names
    # Nor did Docker hear of it in any event: the pull and the container name berth's registry.
    events = docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                    "--format", "{{json .}}").stdout
    pulls = [json.loads(e) for e in events.splitlines() if '"pull"' in e]
    assert [p["Actor"]["ID"] for p in pulls] == [f"{repo['repositoryUri']}:v1"], pulls
    assert "amazonaws.com" not in events

    # An image deleted from the repository no longer starts.
    ecr.batch_delete_image(repositoryName="team/web", imageIds=[{"imageTag": "v1"}])
    assert ecr.list_images(repositoryName="team/web")["imageIds"] == []
    stopped = settled(ecs, run(ecs, "web2", ecr_name("team/web")))
    assert stopped["lastStatus"] == "STOPPED"
    assert stopped["stopCode"] == "TaskFailedToStart"
    reason = stopped["stoppedReason"]
    assert reason.startswith("CannotPullContainerError:"), reason
    assert ecr_name("team/web") in reason and server.registry not in reason, reason


def test_an_immutable_tag_refuses_a_second_push(server, docker_cli):
    repo = server.cli("ecr", "create-repository", "--repository-name", "pinned",
                      "--image-tag-mutability", "IMMUTABLE")["repository"]
    login(server, docker_cli)
    first = push(docker_cli, TEST_IMAGE, repo["repositoryUri"] + ":v1")
    assert first.returncode == 0, first.stderr
    again = push(docker_cli, "berth-test/boto3:latest", repo["repositoryUri"] + ":v1")
    assert again.returncode != 0
    assert "cannot be overwritten because the repository is immutable" in again.stderr, again.stderr
    ids = server.client("ecr").list_images(repositoryName="pinned")["imageIds"]
    assert len(ids) == 1 and ids[0]["imageTag"] == "v1"


def test_logins_are_the_callers_and_never_reach_another_account(server, docker_cli):
    repo = server.cli("ecr", "create-repository", "--repository-name", "private")["repository"]
    login(server, docker_cli)
    assert push(docker_cli, TEST_IMAGE, repo["repositoryUri"] + ":v1").returncode == 0
    # Account b's login is good for its own registry only.
    login(server, docker_cli, account="b")
    pulled = docker_cli("pull", repo["repositoryUri"] + ":v1", check=False)
    assert pulled.returncode != 0
    assert "denied" in pulled.stderr.lower(), pulled.stderr
    # Until account a's repository policy lets b pull.
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ACCOUNTS["b"][0]},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]}]}
    server.cli("ecr", "set-repository-policy", "--repository-name", "private",
               "--policy-text", json.dumps(policy))
    allowed = docker_cli("pull", repo["repositoryUri"] + ":v1", check=False)
    assert allowed.returncode == 0, allowed.stderr
    docker_cli("rmi", repo["repositoryUri"] + ":v1", check=False)
    # b may pull but not push there.
    pushed = push(docker_cli, TEST_IMAGE, repo["repositoryUri"] + ":b")
    assert pushed.returncode != 0 and "denied" in pushed.stderr.lower(), pushed.stderr
    # No login at all is asked for one.
    docker_cli("logout", server.registry)
    anonymous = docker_cli("pull", repo["repositoryUri"] + ":v1", check=False)
    assert anonymous.returncode != 0
    assert "no basic auth credentials" in anonymous.stderr or "unauthorized" in anonymous.stderr.lower(), \
        anonymous.stderr


def test_the_execution_role_pulls_and_a_role_without_ecr_cannot(server, agents, docker_cli):
    repo = server.cli("ecr", "create-repository", "--repository-name", "app")["repository"]
    login(server, docker_cli)
    assert push(docker_cli, TEST_IMAGE, repo["repositoryUri"] + ":v1").returncode == 0
    iam = server.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                                "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]})
    for name in ("exec", "bare"):
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    iam.attach_role_policy(RoleName="exec", PolicyArn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
    ecs = server.client("ecs")
    ecs.create_cluster(clusterName="prod")
    start_agent(ecs, agents)
    ok = settled(ecs, run(ecs, "with-exec", ecr_name("app"), f"arn:aws:iam::{A}:role/exec"))
    assert ok["lastStatus"] == "RUNNING", ok.get("stoppedReason")
    refused = settled(ecs, run(ecs, "with-bare", ecr_name("app"), f"arn:aws:iam::{A}:role/bare"))
    assert refused["lastStatus"] == "STOPPED"
    reason = refused["stoppedReason"]
    assert reason.startswith("CannotPullContainerError:"), reason
    assert "ecr:GetAuthorizationToken" in reason, reason


def unique_image(name):
    """A one-file image of its own, so each push is a new digest."""
    with tempfile.TemporaryDirectory(prefix="berth-img-") as root:
        with open(os.path.join(root, "id"), "w") as f:
            f.write(name)
        tar = subprocess.run(["tar", "-C", root, "-c", "."], capture_output=True, check=True).stdout
    ref = f"berth-test/unique:{name}"
    subprocess.run(["docker", "import", "-", ref], input=tar, capture_output=True, check=True)
    return ref


def test_a_lifecycle_policy_expires_untagged_images(server, docker_cli):
    repo = server.cli("ecr", "create-repository", "--repository-name", "churn")["repository"]
    login(server, docker_cli)
    digests = []
    for n in range(3):
        # Each push moves the tag: the image before loses it.
        out = push(docker_cli, unique_image(f"churn{n}"), repo["repositoryUri"] + ":latest")
        assert out.returncode == 0, out.stderr
        digests.append(next(w for w in out.stdout.split() if w.startswith("sha256:")))
    ecr = server.client("ecr")
    untagged = ecr.list_images(repositoryName="churn", filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert sorted(i["imageDigest"] for i in untagged) == sorted(digests[:2])
    policy = {"rules": [{"rulePriority": 1, "description": "keep one untagged",
                         "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                         "action": {"type": "expire"}}]}
    server.cli("ecr", "put-lifecycle-policy", "--repository-name", "churn",
               "--lifecycle-policy-text", json.dumps(policy))
    def two_left():
        ids = ecr.list_images(repositoryName="churn")["imageIds"]
        return ids if len(ids) == 2 else None
    left = wait_for("the oldest untagged image to expire", two_left, timeout=30)
    assert sorted(i["imageDigest"] for i in left) == sorted(digests[1:])
    # The expired manifest is gone from the registry too.
    gone = docker_cli("pull", f"{repo['repositoryUri']}@{digests[0]}", check=False)
    assert gone.returncode != 0 and "not found" in gone.stderr, gone.stderr


def blob_file(server, digest, storage=None):
    """Where the registry keeps a blob: in the server's data dir, or in `storage` when given."""
    algo, hexa = digest.split(":")
    root = storage or os.path.join(server.data_dir, "registry", "data")
    return os.path.join(root, "docker", "registry", "v2", "blobs", algo, hexa[:2], hexa, "data")


def first_layer(ecr, repository, tag):
    image = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"][0]
    return json.loads(image["imageManifest"])["layers"][0]["digest"]


@pytest.mark.server_args("--registry-listen", "127.0.0.1:0", "--registry-gc-quiet-secs", "1")
def test_blobs_no_image_references_are_collected_after_a_delete(server, docker_cli):
    repo = server.cli("ecr", "create-repository", "--repository-name", "gc")["repository"]
    login(server, docker_cli)
    for tag in ("gone", "kept"):
        assert push(docker_cli, unique_image(f"gc-{tag}"), f"{repo['repositoryUri']}:{tag}").returncode == 0
    ecr = server.client("ecr")
    gone, kept = first_layer(ecr, "gc", "gone"), first_layer(ecr, "gc", "kept")
    assert os.path.exists(blob_file(server, gone)) and os.path.exists(blob_file(server, kept))
    ecr.batch_delete_image(repositoryName="gc", imageIds=[{"imageTag": "gone"}])
    wait_for("the deleted image's layer to be collected",
             lambda: not os.path.exists(blob_file(server, gone)), timeout=60)
    assert os.path.exists(blob_file(server, kept))
    pulled = docker_cli("pull", f"{repo['repositoryUri']}:kept", check=False)
    assert pulled.returncode == 0, pulled.stderr


def test_blobs_are_shared_within_an_account(server, docker_cli):
    first = server.cli("ecr", "create-repository", "--repository-name", "one")["repository"]
    second = server.cli("ecr", "create-repository", "--repository-name", "two")["repository"]
    login(server, docker_cli)
    image = unique_image("shared")
    assert push(docker_cli, image, first["repositoryUri"] + ":v1").returncode == 0
    again = push(docker_cli, image, second["repositoryUri"] + ":v1")
    assert again.returncode == 0, again.stderr
    # The layer is mounted from the first repository, not sent again.
    assert "Mounted from" in again.stdout, again.stdout


def test_a_multi_architecture_index_is_pushed_described_and_pulled(server, docker_cli):
    """The index and its manifests pushed with the registry protocol itself, as
    buildx would; docker pull picks this machine's platform from it."""
    import base64
    import hashlib
    import urllib.request
    repo = server.cli("ecr", "create-repository", "--repository-name", "multi")["repository"]
    token = server.cli("ecr", "get-authorization-token")["authorizationData"][0]["authorizationToken"]
    name = repo["repositoryUri"].split("/", 1)[1]
    base = f"http://{server.registry}/v2/{name}"

    def call(method, url, body=b"", ctype=None):
        req = urllib.request.Request(url, data=body if method != "GET" else None, method=method,
                                     headers={"Authorization": f"Basic {token}",
                                              **({"Content-Type": ctype} if ctype else {})})
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()

    def blob(data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        _, h, _ = call("POST", f"{base}/blobs/uploads/")
        location = h["Location"]
        sep = "&" if "?" in location else "?"
        url = location if location.startswith("http") else f"http://{server.registry}{location}"
        status, _, _ = call("PUT", f"{url}{sep}digest={digest}", data, "application/octet-stream")
        assert status == 201
        return {"digest": digest, "size": len(data)}

    # A real root filesystem layer (the test image's), so the pulled image runs.
    saved = subprocess.run(["docker", "save", TEST_IMAGE], capture_output=True, check=True).stdout
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(saved)) as t:
        manifest = json.load(t.extractfile("manifest.json"))[0]
        layer = t.extractfile(manifest["Layers"][0]).read()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(layer)}
    children = []
    for arch in ("amd64", "arm64"):
        config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["true"]},
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(config)},
                        "layers": [layer_desc]}).encode()
        digest = "sha256:" + hashlib.sha256(m).hexdigest()
        status, _, _ = call("PUT", f"{base}/manifests/{digest}", m, "application/vnd.oci.image.manifest.v1+json")
        assert status == 201
        children.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                         "size": len(m), "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": children}).encode()
    status, headers, _ = call("PUT", f"{base}/manifests/v1", index, "application/vnd.oci.image.index.v1+json")
    assert status == 201
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    assert headers["Docker-Content-Digest"] == index_digest

    ecr = server.client("ecr")
    details = {d["imageDigest"]: d for d in ecr.describe_images(repositoryName="multi")["imageDetails"]}
    assert details[index_digest]["imageManifestMediaType"] == "application/vnd.oci.image.index.v1+json"
    assert details[index_digest]["imageTags"] == ["v1"]
    assert all(c["digest"] in details and "imageTags" not in details[c["digest"]] for c in children)
    got = ecr.batch_get_image(repositoryName="multi", imageIds=[{"imageTag": "v1"}])["images"][0]
    assert json.loads(got["imageManifest"])["manifests"] == children
    login(server, docker_cli)
    pulled = docker_cli("pull", repo["repositoryUri"] + ":v1", check=False)
    assert pulled.returncode == 0, pulled.stderr
    inspected = json.loads(docker_cli("image", "inspect", repo["repositoryUri"] + ":v1").stdout)[0]
    assert inspected["Architecture"] == "amd64"
    docker_cli("rmi", repo["repositoryUri"] + ":v1", check=False)


def test_an_iam_user_may_pull_but_not_push_where_its_policy_says(server, docker_cli):
    repo = server.cli("ecr", "create-repository", "--repository-name", "readonly")["repository"]
    login(server, docker_cli)
    assert push(docker_cli, TEST_IMAGE, repo["repositoryUri"] + ":v1").returncode == 0
    iam = server.client("iam")
    iam.create_user(UserName="reader")
    iam.put_user_policy(UserName="reader", PolicyName="pull", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Effect": "Allow", "Resource": f"arn:aws:ecr:us-east-1:{A}:repository/readonly",
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]}]}))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    import base64
    import boto3
    ecr = boto3.client("ecr", endpoint_url=server.endpoint, region_name="us-east-1",
                       aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    docker_cli("login", "--username", "AWS", "--password-stdin", server.registry, stdin=password)
    pulled = docker_cli("pull", repo["repositoryUri"] + ":v1", check=False)
    assert pulled.returncode == 0, pulled.stderr
    docker_cli("rmi", repo["repositoryUri"] + ":v1", check=False)
    pushed = push(docker_cli, unique_image("reader"), repo["repositoryUri"] + ":v2")
    assert pushed.returncode != 0 and "denied" in pushed.stderr.lower(), pushed.stderr
    # The API says the same: the user may not list what it may pull.
    try:
        ecr.list_images(repositoryName="readonly")
        raise AssertionError("ListImages was allowed")
    except ecr.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == "AccessDeniedException"
        assert "reader is not authorized to perform: ecr:ListImages" in e.response["Error"]["Message"]


def test_pushed_images_survive_a_kill_9(data_dir, docker_cli):
    """berth killed with -9 (its engine goes with it) and started again on the
    same data: the repository, its tags and its blobs are all there."""
    from conftest import CONFIG, Berth
    from docker_support import free_port
    cfg = data_dir / "config.toml"
    cfg.write_text(CONFIG)
    port = free_port()
    server = Berth(data_dir / "data", cfg, args=("--registry-listen", f"127.0.0.1:{port}")).start()
    try:
        repo = server.cli("ecr", "create-repository", "--repository-name", "durable")["repository"]
        login(server, docker_cli)
        pushed = push(docker_cli, unique_image("durable"), repo["repositoryUri"] + ":v1")
        assert pushed.returncode == 0, pushed.stderr
        digest = next(w for w in pushed.stdout.split() if w.startswith("sha256:"))
        server.kill9()
        server.start()
        ids = server.client("ecr").list_images(repositoryName="durable")["imageIds"]
        assert ids == [{"imageDigest": digest, "imageTag": "v1"}]
        # The login made before the restart still opens.
        pulled = docker_cli("pull", repo["repositoryUri"] + ":v1", check=False)
        assert pulled.returncode == 0, pulled.stderr
        assert digest in pulled.stdout
    finally:
        server.stop()
