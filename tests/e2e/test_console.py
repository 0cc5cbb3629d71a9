"""The console in real headless Chromium: the seed's walk-through step by step
with clicks and typing on `berth dev`, each step checked through the API with
boto3, screenshots into docs/console/, and axe-core on every page."""
import json
import re
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import ROOT
from dev_support import Dev
from docker_support import wait_for

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
