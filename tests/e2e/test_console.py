"""The console in real headless Chromium: the seed's walk-through step by step
with clicks and typing on `berth dev`, each step checked through the API with
boto3, screenshots into docs/console/, and axe-core on every page."""
import json
import re
import time
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import ROOT
from dev_support import Dev

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "docs" / "console"
AXE = ROOT / "tests" / "console" / "node_modules" / "axe-core" / "axe.min.js"


def browser_page(p):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    return browser, page


class Pages:
    """Screenshots and the accessibility check of each page the walk-through shows."""

    def __init__(self, page):
        self.page = page
        self.n = 0
        self.serious = []

    def shot(self, name):
        self.n += 1
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{self.n:02d}-{name}.png"), full_page=True)
        # Evaluated from outside the page: the console's CSP refuses injected script tags.
        self.page.evaluate(AXE.read_text() + "\n;0")
        result = self.page.evaluate("async () => (await axe.run(document)).violations"
                                    ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
                                    " nodes: v.nodes.map(n => n.target.join(' '))}))")
        self.serious += [dict(v, page=name) for v in result if v["impact"] in ("serious", "critical")]


def test_the_seeds_walk_through_in_a_browser(tmp_path, registry):
    with Dev(tmp_path) as dev, sync_playwright() as p:
        ecs, ec2, iam, logs = (dev.client(s) for s in ("ecs", "ec2", "iam", "logs"))
        browser, page = browser_page(p)
        pages = Pages(page)
        page.goto(dev.endpoint + "/console")
        pages.shot("sign-in")
        page.get_by_role("button", name="Sign in to the dev account").click()
        expect(page.get_by_text("Account 000000000000")).to_be_visible()
        expect(page.get_by_role("heading", name=re.compile(r"^Clusters \(\d+\)$"))).to_be_visible()
        pages.shot("clusters")

        # "Go to clusters on left and create cluster"
        page.get_by_role("link", name="Create cluster").click()
        page.get_by_label("Cluster name").fill("demo")
        expect(page.get_by_label("AWS Fargate (serverless): tasks run on the shared fleet")).to_be_checked()
        pages.shot("create-cluster")
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("heading", name="demo", exact=True)).to_be_visible()
        cluster = ecs.describe_clusters(clusters=["demo"])["clusters"][0]
        assert cluster["status"] == "ACTIVE" and "FARGATE" in cluster["capacityProviders"]
        pages.shot("cluster")

        # "Go to task definitions and create a new one": 0.5 vCPU, Linux/X86_64, log collection off.
        page.get_by_role("link", name="Task definitions").click()
        page.get_by_role("link", name="Create new task definition").click()
        page.get_by_label("Task definition family").fill("web")
        expect(page.get_by_label("Operating system/Architecture")).to_have_value("LINUX/X86_64")
        page.get_by_label("CPU", exact=True).select_option(label=".5 vCPU")
        page.get_by_label("Memory", exact=True).select_option(label="1 GB")
        page.get_by_label("Container name").fill("web")
        page.get_by_label("Image URI").fill(registry.image)
        page.get_by_label("Container port").fill("80")
        page.get_by_label("Command").fill("sh, -c, echo serving the test page; exec httpd -f -p 80 -h /www")
        page.get_by_label("Use log collection (awslogs to /ecs/FAMILY)").uncheck()
        page.get_by_label("Task execution role").select_option(label="None")
        pages.shot("create-task-definition")
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_role("heading", name="Review and create")).to_be_visible()
        pages.shot("review-task-definition")
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("heading", name="web:1")).to_be_visible()
        td = ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]
        assert (td["cpu"], td["memory"], td["networkMode"], td["requiresCompatibilities"]) == \
            ("512", "1024", "awsvpc", ["FARGATE"])
        assert td["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"}
        c = td["containerDefinitions"][0]
        assert (c["name"], c["image"], c["portMappings"][0]["containerPort"]) == ("web", registry.image, 80)
        assert "logConfiguration" not in c and "executionRoleArn" not in td
        pages.shot("task-definition")

        # A second revision with log collection on: the console makes the execution role it needs.
        page.get_by_role("link", name="Create new revision").click()
        page.get_by_label("Use log collection (awslogs to /ecs/FAMILY)").check()
        expect(page.get_by_label("Task execution role")).to_have_value("new:ecsTaskExecutionRole")
        page.get_by_role("button", name="Next").click()
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("heading", name="web:2")).to_be_visible()
        td2 = ecs.describe_task_definition(taskDefinition="web:2")["taskDefinition"]
        role = iam.get_role(RoleName="ecsTaskExecutionRole")["Role"]
        assert td2["executionRoleArn"] == role["Arn"]
        lc = td2["containerDefinitions"][0]["logConfiguration"]
        assert lc["logDriver"] == "awslogs" and lc["options"]["awslogs-group"] == "/ecs/web"

        # "Run new task": FARGATE, default subnets, a new security group allowing HTTP from anywhere, public IP.
        page.goto(dev.endpoint + "/console#/clusters/demo")
        page.get_by_role("link", name="Run new task").click()
        expect(page.get_by_label("Launch type")).to_have_value("FARGATE")
        expect(page.get_by_label("Family")).to_have_value("web")
        default_subnets = {s["SubnetId"] for s in ec2.describe_subnets(
            Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]}
        for s in default_subnets:
            expect(page.get_by_label(re.compile(s))).to_be_checked()
        page.get_by_label("Security group", exact=True).select_option(label="Create a new security group")
        page.get_by_label("Security group name").fill("web-http")
        expect(page.get_by_label("Type", exact=True)).to_have_value("HTTP")
        expect(page.get_by_label("Source", exact=True)).to_have_value("anywhere")
        expect(page.get_by_label("Public IP")).to_be_checked()
        pages.shot("run-task")
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("heading", name=re.compile(r"^Task [0-9a-f]{32}$"))).to_be_visible()
        expect(page.locator("#task-status")).to_have_text("RUNNING", timeout=90_000)
        task_id = page.get_by_role("heading", name=re.compile("^Task ")).inner_text().split()[-1]
        task = ecs.describe_tasks(cluster="demo", tasks=[task_id])["tasks"][0]
        assert (task["lastStatus"], task["launchType"]) == ("RUNNING", "FARGATE")
        assert task["taskDefinitionArn"].endswith(":task-definition/web:2")
        group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["web-http"]}])
        perms = group["SecurityGroups"][0]["IpPermissions"]
        assert [(x["FromPort"], x["IpRanges"][0]["CidrIp"]) for x in perms] == [(80, "0.0.0.0/0")]
        eni = next(d["value"] for d in task["attachments"][0]["details"] if d["name"] == "networkInterfaceId")
        public = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
        ip = public["Association"]["PublicIp"]
        assert public["SubnetId"] in default_subnets
        link = page.locator("#public-ip")
        expect(link).to_have_text(ip, timeout=10_000)
        expect(page.get_by_label("Log lines")).to_contain_text("serving the test page", timeout=30_000)
        events = logs.get_log_events(logGroupName="/ecs/web", logStreamName=f"ecs/web/{task_id}")["events"]
        assert [e["message"] for e in events] == ["serving the test page"]
        pages.shot("task-running")

        # Follow the public IP link and find the served page.
        with page.context.expect_page() as opened:
            link.click()
        app = opened.value
        app.wait_for_load_state()
        assert app.url == f"http://{ip}/"
        assert app.content().count("berth test page") == 1
        app.close()

        # "To remove stop the container"
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("#task-status")).to_have_text("STOPPED", timeout=60_000)
        stopped = ecs.describe_tasks(cluster="demo", tasks=[task_id])["tasks"][0]
        assert stopped["stoppedReason"] == "Stopped in the berth console"
        pages.shot("task-stopped")

        # "deregister": both revisions, from the actions menu.
        page.get_by_role("link", name="Task definitions").click()
        page.get_by_role("link", name="web", exact=True).click()
        for rev in (2, 1):
            page.get_by_label(f"Actions for revision {rev}").click()
            page.get_by_role("button", name="Deregister").click()
            expect(page.get_by_role("row", name=re.compile(f"web:{rev} INACTIVE"))).to_be_visible()
        assert ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]["status"] == "INACTIVE"
        assert ecs.describe_task_definition(taskDefinition="web:2")["taskDefinition"]["status"] == "INACTIVE"
        pages.shot("deregistered")

        # "delete": the cluster, with its name typed to confirm.
        page.goto(dev.endpoint + "/console#/clusters/demo")
        page.get_by_text("Delete cluster").click()
        confirm = page.get_by_role("button", name="Delete", exact=True)
        expect(confirm).to_be_disabled()
        page.get_by_label("Type demo to confirm").fill("demo")
        pages.shot("delete-cluster")
        confirm.click()
        expect(page.get_by_role("heading", name=re.compile(r"^Clusters \("))).to_be_visible()
        assert ecs.describe_clusters(clusters=["demo"])["clusters"][0]["status"] == "INACTIVE"
        browser.close()
        assert pages.serious == [], json.dumps(pages.serious, indent=1)


class Session:
    """The console's door as a browser uses it: a cookie, and the form token it was given."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.cookie = None
        self.csrf = None

    def request(self, method, path, body=None, headers=None, cookie=True, csrf=True):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        h = {"content-type": "application/json"} if body is not None else {}
        if cookie and self.cookie:
            h["cookie"] = self.cookie
        if csrf and self.csrf:
            h["x-berth-csrf"] = self.csrf
        h.update(headers or {})
        req = urllib.request.Request(self.endpoint + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def sign_in(self, key, secret, region="us-east-1"):
        status, headers, body = self.request("POST", "/console/session",
                                             {"accessKeyId": key, "secretAccessKey": secret, "region": region})
        if status == 200:
            self.cookie = headers["set-cookie"].split(";")[0]
            self.csrf = json.loads(body)["csrf"]
        return status, headers, json.loads(body)

    def api(self, service, operation, input=None, **kw):
        status, _, body = self.request("POST", "/console/api",
                                       {"service": service, "operation": operation, "input": input or {}}, **kw)
        return status, body


def cluster_names(ecs):
    return {a.split("/")[-1] for a in ecs.list_clusters()["clusterArns"]}


@pytest.mark.server_args("--console-idle-timeout", "2")
def test_the_console_refuses_requests_without_a_live_session_of_the_callers_own(server, ecs, ecs_b):
    from conftest import ACCOUNTS
    _, key_a, secret_a = ACCOUNTS["a"]
    _, key_b, secret_b = ACCOUNTS["b"]
    s = Session(server.endpoint)
    # Without a session: nothing, and nothing changes.
    assert s.api("ecs", "CreateCluster", {"clusterName": "nosession"})[0] == 401
    status, _, body = s.request("GET", "/console/session")
    assert status == 401 and json.loads(body) == {"signedIn": False, "dev": False, "notice": None}
    # A wrong secret, an unknown key, the fleet's key: no session.
    assert s.sign_in(key_a, "wrong" + secret_a)[0] == 401
    assert s.sign_in("AKIANOTAKEYATALL0000", secret_a)[0] == 401
    from conftest import FLEET_KEY
    assert s.sign_in(*FLEET_KEY)[0] == 401
    assert s.cookie is None

    status, headers, me = s.sign_in(key_a, secret_a)
    assert status == 200 and me["account"] == "111111111111" and me["arn"] == "arn:aws:iam::111111111111:root"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    # A forged post: the cookie alone (another site cannot read the token), a wrong token,
    # another origin, a cross-site fetch, a form encoding.
    assert s.api("ecs", "CreateCluster", {"clusterName": "forged"}, csrf=False)[0] == 403
    assert s.api("ecs", "CreateCluster", {"clusterName": "forged"}, headers={"x-berth-csrf": "0" * 64})[0] == 403
    assert s.api("ecs", "CreateCluster", {"clusterName": "forged"}, headers={"origin": "http://evil.example"})[0] == 403
    assert s.api("ecs", "CreateCluster", {"clusterName": "forged"}, headers={"sec-fetch-site": "cross-site"})[0] == 403
    status, _, _ = s.request("POST", "/console/api", b"service=ecs&operation=CreateCluster",
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert status == 415
    assert cluster_names(ecs) == set()
    # With both, the call runs as a's root and answers what the API answers.
    status, body = s.api("ecs", "CreateCluster", {"clusterName": "mine"},
                         headers={"origin": server.endpoint, "sec-fetch-site": "same-origin"})
    assert status == 200 and json.loads(body)["cluster"]["clusterArn"].startswith("arn:aws:ecs:us-east-1:111111111111:")
    assert cluster_names(ecs) == {"mine"}
    status, body = s.api("ecs", "CreateCluster", {"clusterName": "bad name!"})
    assert status == 400 and json.loads(body)["__type"] == "InvalidParameterException"

    # b's session cannot reach a's cluster, nor use a's token.
    b = Session(server.endpoint)
    assert b.sign_in(key_b, secret_b)[0] == 200
    assert b.api("ecs", "DeleteCluster", {"cluster": "mine"}, headers={"x-berth-csrf": s.csrf})[0] == 403
    status, body = b.api("ecs", "DeleteCluster", {"cluster": "arn:aws:ecs:us-east-1:111111111111:cluster/mine"})
    assert status == 400, body
    assert cluster_names(ecs) == {"mine"} and cluster_names(ecs_b) == set()

    # Signing out ends a session.
    assert b.request("DELETE", "/console/session")[0] == 200
    assert b.api("ecs", "ListClusters")[0] == 401
    # Idle past the limit: the session is gone, and so is anything it would have done.
    # (Any request restarts the idle clock, so the test waits without asking.)
    time.sleep(3)
    assert s.request("GET", "/console/session")[0] == 401
    assert s.api("ecs", "DeleteCluster", {"cluster": "mine"})[0] == 401
    assert cluster_names(ecs) == {"mine"}


def test_the_console_runs_calls_as_the_signed_in_user_with_its_policies(server, ecs):
    iam = server.client("iam")
    iam.create_user(UserName="viewer")
    iam.put_user_policy(UserName="viewer", PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecs:List*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="viewer")["AccessKey"]
    s = Session(server.endpoint)
    status, _, me = s.sign_in(key["AccessKeyId"], key["SecretAccessKey"], region="eu-west-1")
    assert status == 200 and me["arn"] == "arn:aws:iam::111111111111:user/viewer" and me["region"] == "eu-west-1"
    status, body = s.api("ecs", "ListClusters")
    assert status == 200 and json.loads(body) == {"clusterArns": []}
    status, body = s.api("ecs", "CreateCluster", {"clusterName": "nope"})
    assert status == 400 and json.loads(body)["__type"] == "AccessDeniedException"
    # The query-protocol services answer in their own XML, as the same user.
    status, body = s.api("sts", "GetCallerIdentity")
    assert status == 200 and b"<Arn>arn:aws:iam::111111111111:user/viewer</Arn>" in body
    # The region is the session's: switching it moves the calls.
    assert s.request("POST", "/console/session/region", {"region": "us-east-1"})[0] == 200
    assert s.request("POST", "/console/session/region", {"region": "not a region"})[0] == 400
    ecs.create_cluster(clusterName="here")
    status, body = s.api("ecs", "ListClusters")
    assert json.loads(body)["clusterArns"] == ["arn:aws:ecs:us-east-1:111111111111:cluster/here"]
    # A deleted key ends what it signed in.
    iam.delete_access_key(UserName="viewer", AccessKeyId=key["AccessKeyId"])
    assert s.api("ecs", "ListClusters")[0] == 401
    # berth server offers no one-click sign-in.
    assert s.request("POST", "/console/session/dev", {})[0] == 403


def test_a_page_still_loading_does_not_draw_over_the_page_the_user_moved_to(tmp_path):
    with Dev(tmp_path) as dev, sync_playwright() as p:
        dev.client("ecs").create_cluster(clusterName="slow")
        browser, page = browser_page(p)
        page.goto(dev.endpoint + "/console")
        held = []

        def hold_list_clusters(route):
            body = route.request.post_data or ""
            if json.loads(body or "{}").get("operation") == "ListClusters":
                held.append(route)
            else:
                route.continue_()

        page.route("**/console/api", hold_list_clusters)
        page.get_by_role("button", name="Sign in to the dev account").click()
        expect(page.get_by_text("Account 000000000000")).to_be_visible()
        # The clusters page waits on ListClusters; the user goes on to the task definition form.
        page.wait_for_function("() => document.readyState === 'complete'")
        deadline = time.monotonic() + 15
        while not held and time.monotonic() < deadline:
            page.wait_for_timeout(50)
        assert len(held) == 1
        page.goto(dev.endpoint + "/console#/task-definitions/new")
        expect(page.get_by_label("Task definition family")).to_be_visible()
        held[0].continue_()
        # The clusters page's answer arrives and is drawn nowhere: the form stays, with what was typed.
        page.get_by_label("Task definition family").fill("typed")
        # Answered: ListRoles (the form's), then the held ListClusters and its DescribeClusters.
        page.wait_for_function("() => performance.getEntriesByType('resource')"
                               ".filter(e => e.name.endsWith('/console/api')).length >= 3")
        # The old page would draw in the tasks right after its last answer.
        page.evaluate("() => new Promise(r => setTimeout(r, 200))")
        expect(page.get_by_role("heading", name="Create new task definition")).to_be_visible()
        expect(page.get_by_label("Task definition family")).to_have_value("typed")
        assert page.title() == "Create task definition | berth console"
        browser.close()


def test_console_services_instances_validation_and_html_as_text(tmp_path, registry):
    with Dev(tmp_path) as dev, sync_playwright() as p:
        ecs = dev.client("ecs")
        browser, page = browser_page(p)
        page.goto(dev.endpoint + "/console")
        page.get_by_role("button", name="Sign in to the dev account").click()
        expect(page.get_by_text("Account 000000000000")).to_be_visible()

        # ECS's validation error appears next to the field it concerns.
        page.goto(dev.endpoint + "/console#/task-definitions/new")
        page.get_by_label("Task definition family").fill("bad name!")
        page.get_by_label("Container name").fill("web")
        page.get_by_label("Image URI").fill(registry.image)
        page.get_by_label("Use log collection (awslogs to /ecs/FAMILY)").uncheck()
        page.get_by_label("Task execution role").select_option(label="None")
        page.get_by_role("button", name="Next").click()
        page.get_by_role("button", name="Create", exact=True).click()
        family = page.get_by_label("Task definition family")
        expect(family).to_have_attribute("aria-invalid", "true")
        error = page.locator(f"#{family.get_attribute('id')}-error")
        expect(error).to_contain_text("ClientException")
        assert ecs.list_task_definition_families()["families"] == []

        # The JSON editor registers what it is given; HTML in values is shown as text, never run.
        hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
        page.get_by_role("button", name="JSON editor").click()
        td = {"family": "ec2web", "requiresCompatibilities": ["EC2"], "networkMode": "bridge",
              "containerDefinitions": [{"name": "web", "image": registry.image, "memory": 64, "stopTimeout": 2,
                                        "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
                                        "environment": [{"name": "GREETING", "value": hostile}],
                                        "portMappings": [{"containerPort": 80}]}]}
        page.get_by_label("Task definition JSON", exact=True).last.fill(json.dumps(td))
        page.get_by_role("button", name="Next").click()
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("heading", name="ec2web:1")).to_be_visible()
        expect(page.get_by_label("Task definition JSON")).to_contain_text(hostile.replace('"', '\\"'))
        assert page.evaluate("window.pwned") is None
        assert page.locator("main img").count() == 0
        registered = ecs.describe_task_definition(taskDefinition="ec2web:1")["taskDefinition"]
        assert registered["containerDefinitions"][0]["environment"] == [{"name": "GREETING", "value": hostile}]

        # A service in the dev cluster, from Run new task, kept at its desired count.
        page.goto(dev.endpoint + "/console#/clusters/default/run-task")
        page.get_by_label("Launch type").select_option("EC2")
        page.get_by_label("Application type").select_option(label="Service")
        page.get_by_label("Family").select_option("ec2web")
        page.get_by_label("Service name").fill("web")
        page.get_by_label("Desired tasks").last.fill("2")
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.get_by_role("heading", name="web", exact=True)).to_be_visible()
        expect(page.get_by_text("2 / 2 / 0").first).to_be_visible(timeout=60_000)
        service = ecs.describe_services(cluster="default", services=["web"])["services"][0]
        assert (service["desiredCount"], service["runningCount"], service["launchType"]) == (2, 2, "EC2")
        expect(page.get_by_role("row", name=re.compile("PRIMARY"))).to_contain_text("ec2web:1")
        expect(page.get_by_text("has reached a steady state")).to_be_visible(timeout=30_000)

        # Update: desired count and the circuit breaker.
        page.get_by_label("Desired tasks").fill("1")
        page.get_by_label("Use the deployment circuit breaker").check()
        page.get_by_role("button", name="Update").click()
        expect(page.get_by_text(re.compile(r"^1 / \d / \d$")).first).to_be_visible()
        service = ecs.describe_services(cluster="default", services=["web"])["services"][0]
        assert service["desiredCount"] == 1
        assert service["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": False}

        # The cluster's tabs: services, tasks filtered by family, container instances drained and activated.
        page.goto(dev.endpoint + "/console#/clusters/default/tasks")
        page.get_by_label("Family", exact=True).fill("ec2web")
        page.get_by_role("button", name="Filter").click()
        running = ecs.list_tasks(cluster="default", family="ec2web", desiredStatus="RUNNING")["taskArns"]
        expect(page.get_by_text(f"{len(running)} tasks")).to_be_visible(timeout=30_000)
        page.get_by_role("link", name="Infrastructure").click()
        page.get_by_role("button", name="Drain").click()
        expect(page.get_by_role("button", name="Activate")).to_be_visible()
        instance = ecs.describe_container_instances(
            cluster="default", containerInstances=ecs.list_container_instances()["containerInstanceArns"])
        assert instance["containerInstances"][0]["status"] == "DRAINING"
        page.get_by_role("button", name="Activate").click()
        expect(page.get_by_role("button", name="Drain")).to_be_visible()
        instance = ecs.describe_container_instances(
            cluster="default", containerInstances=ecs.list_container_instances()["containerInstanceArns"])
        assert instance["containerInstances"][0]["status"] == "ACTIVE"

        page.get_by_role("link", name="Events").click()
        expect(page.get_by_text("(service web) has reached a steady state.").first).to_be_visible()

        # Delete the service from its page.
        page.goto(dev.endpoint + "/console#/clusters/default/services/web")
        page.get_by_role("button", name="Delete service").click()
        expect(page.get_by_role("link", name="Services")).to_be_visible()
        assert ecs.describe_services(cluster="default", services=["web"])["services"][0]["status"] in ("DRAINING", "INACTIVE")

        # A capacity provider strategy reaches RunTask as one: cluster default has no FARGATE
        # provider associated, and the page shows ECS's answer.
        page.goto(dev.endpoint + "/console#/clusters/default/run-task")
        page.get_by_label("Compute options").select_option(label="Capacity provider strategy")
        expect(page.get_by_label("Launch type")).to_be_hidden()
        page.get_by_label("Capacity provider").select_option("FARGATE")
        page.get_by_label("Family").select_option("ec2web")
        page.get_by_role("button", name="Create", exact=True).click()
        refused = page.get_by_role("alert").filter(
            has_text="InvalidParameterException: The specified capacity provider strategy cannot contain a "
                     "capacity provider that is not associated with the cluster.")
        expect(refused).to_be_visible()
        for status in ("RUNNING", "STOPPED"):
            assert ecs.list_tasks(cluster="default", desiredStatus=status, launchType="FARGATE")["taskArns"] == []

        # A task with overrides, from Run new task.
        page.goto(dev.endpoint + "/console#/clusters/default")
        page.get_by_role("link", name="Run new task").click()
        page.get_by_label("Launch type").select_option("EC2")
        page.get_by_label("Family").select_option("ec2web")
        page.get_by_text("Task overrides").click()
        page.get_by_role("button", name="Add environment variable override").click()
        page.get_by_label("Key").fill("MODE")
        page.get_by_label("Value").fill("<i>console</i>")
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.locator("#task-status")).to_have_text("RUNNING", timeout=60_000)
        task_id = page.get_by_role("heading", name=re.compile("^Task ")).inner_text().split()[-1]
        task = ecs.describe_tasks(cluster="default", tasks=[task_id])["tasks"][0]
        assert task["overrides"]["containerOverrides"] == [
            {"name": "web", "environment": [{"name": "MODE", "value": "<i>console</i>"}]}]
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("#task-status")).to_have_text("STOPPED", timeout=60_000)

        # The cluster page shows its tags (ECS allows no markup in them); ECS's refusal to delete
        # a cluster that still holds an instance is shown as ECS words it.
        ecs.tag_resource(resourceArn=ecs.describe_clusters(clusters=["default"])["clusters"][0]["clusterArn"],
                         tags=[{"key": "team", "value": "web = ops"}])
        page.goto(dev.endpoint + "/console#/clusters/default")
        expect(page.get_by_text("team=web = ops")).to_be_visible()
        page.get_by_text("Delete cluster").click()
        page.get_by_label("Type default to confirm").fill("default")
        page.get_by_role("button", name="Delete", exact=True).click()
        expect(page.get_by_role("alert").filter(has_text="ClusterContainsContainerInstancesException")).to_be_visible()
        assert ecs.describe_clusters(clusters=["default"])["clusters"][0]["status"] == "ACTIVE"

        # Deregister, then delete, a revision from its actions menu.
        page.goto(dev.endpoint + "/console#/task-definitions/ec2web")
        page.get_by_label("Actions for revision 1").click()
        page.get_by_role("button", name="Deregister").click()
        expect(page.get_by_role("row", name=re.compile("ec2web:1 INACTIVE"))).to_be_visible()
        page.get_by_label("Actions for revision 1").click()
        page.get_by_role("button", name="Delete").click()
        expect(page.get_by_role("row", name=re.compile("ec2web:1"))).to_have_count(0)
        assert ecs.describe_task_definition(taskDefinition="ec2web:1")["taskDefinition"]["status"] == "DELETE_IN_PROGRESS"
        browser.close()
