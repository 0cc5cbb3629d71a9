"""The console's heaviest pages, loaded again and again in headless Chromium
(bench/console.sh sets up the store). For each load: the server's time for every
API call the page made (Server-Timing, summed) and the time from navigation
until the page shows all its rows. The baseline: the same calls, signed by
boto3, timed from the client. Prints a markdown table."""
import subprocess
import sys
import time

import boto3
from botocore.config import Config
from playwright.sync_api import sync_playwright

berth, work, key, secret, revisions, loads = sys.argv[1:7]
revisions, loads = int(revisions), int(loads)
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


proc = subprocess.Popen([berth, "server", "--listen", "127.0.0.1:0", "--data-dir", f"{work}/data",
                         "--config", f"{work}/config.toml", "--instance-timeout", "86400"],
                        stdout=subprocess.PIPE, stderr=open(f"{work}/server.log", "wb"))
endpoint = None
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    line = proc.stdout.readline().decode()
    if line.startswith("listening on "):
        endpoint = "http://" + line.split()[-1]
        break
assert endpoint, open(f"{work}/server.log").read()
try:
    ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key,
                       aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))
    container = ecs.describe_task_definition(taskDefinition="web:1")["taskDefinition"]["containerDefinitions"]
    for _ in range(revisions - 1):
        ecs.register_task_definition(family="web", containerDefinitions=container)

    def signed_tasks_page():
        ecs.describe_clusters(clusters=["default"], include=["STATISTICS"])
        arns, token = [], None
        for _ in range(100):
            page = ecs.list_tasks(cluster="default", desiredStatus="RUNNING", **({"nextToken": token} if token else {}))
            arns += page["taskArns"]
            token = page.get("nextToken")
            if not token:
                break
        for i in range(0, len(arns), 100):
            ecs.describe_tasks(cluster="default", tasks=arns[i:i + 100], include=["TAGS"])
        return len(arns)

    def signed_revisions_page():
        n = 0
        for status in ("ACTIVE", "INACTIVE"):
            token = None
            for _ in range(100):
                page = ecs.list_task_definitions(familyPrefix="web", status=status, sort="DESC",
                                                 **({"nextToken": token} if token else {}))
                n += len(page["taskDefinitionArns"])
                token = page.get("nextToken")
                if not token:
                    break
        return n

    pages = {
        f"cluster page, tasks tab ({{n}} tasks)": ("#/clusters/default/tasks", "{n} tasks", signed_tasks_page),
        f"task definition family ({{n}} revisions)": ("#/task-definitions/web", "{n} revisions", signed_revisions_page),
    }
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(endpoint + "/console")
        page.get_by_label("Access key ID").fill(key)
        page.get_by_label("Secret access key").fill(secret)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("Account 777777777777").wait_for()
        for title, (hash_, done, signed) in pages.items():
            n = signed()
            marker = done.format(n=n)
            server, usable, calls, baseline = [], [], [], []
            for i in range(loads + 2):
                page.goto("about:blank")
                page.goto(endpoint + "/console" + hash_)
                page.get_by_text(marker, exact=True).wait_for(timeout=30_000)
                ms = page.evaluate("performance.now()")
                entries = page.evaluate("performance.getEntriesByType('resource')"
                                        ".filter(e => e.name.endsWith('/console/api'))"
                                        ".map(e => e.serverTiming.reduce((a, t) => a + t.duration, 0))")
                t = time.perf_counter()
                signed()
                b = (time.perf_counter() - t) * 1000
                if i >= 2:  # the first loads warm the browser's and the server's caches
                    usable.append(ms)
                    server.append(sum(entries))
                    calls.append(len(entries))
                    baseline.append(b)
            rows.append((title.format(n=n), calls[0], server, usable, baseline))
        browser.close()
    print(f"{loads} loads of each page, after 2 warm-up loads\n")
    print("| page | API calls | server time p50 / p99 (ms) | usable in Chromium p50 / p99 (ms) | same calls signed by boto3 p50 / p99 (ms) | goals |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for title, ncalls, server, usable, baseline in rows:
        print(f"| {title} | {ncalls} | {pct(server, 50):.1f} / {pct(server, 99):.1f} | "
              f"{pct(usable, 50):.0f} / {pct(usable, 99):.0f} | {pct(baseline, 50):.1f} / {pct(baseline, 99):.1f} "
              f"| server p99 < 50, usable < 1000 |")
finally:
    proc.terminate()
    proc.wait(timeout=10)
