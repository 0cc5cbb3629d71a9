"""Instructions per DescribeClusters call, as the account root and as an IAM
user holding 10 attached policies of 20 statements each (the same user as
bench/task_roles.py), counted by callgrind in a berth server: the same count
on every run of the same build, whatever else the machine is doing.
Argv: endpoint, key, secret, server pid, calls per block, blocks."""
import json
import subprocess
import sys

import bench_user
import boto3
from botocore.config import Config

ENDPOINT, KEY, SECRET, PID, OUT = sys.argv[1:6]
CALLS, BLOCKS = int(sys.argv[6]), int(sys.argv[7])
ACCOUNT = "777777777777"
cfg = Config(retries={"max_attempts": 1})


def client(service, key=KEY, secret=SECRET):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret, config=cfg)


ecs, iam = client("ecs"), client("iam")
ecs.create_cluster(clusterName="default")
user_key = bench_user.make(iam, ACCOUNT)
user = client("ecs", *user_key)
callers = {"root": ecs, "user": user}
for c in callers.values():  # warm: each caller's first call builds what later calls reuse
    assert c.describe_clusters(clusters=["default"])["clusters"][0]["clusterName"] == "default"


def control(*args):
    subprocess.run(["callgrind_control", *args, PID], check=True, capture_output=True)


per_call = {"root": [], "user": []}
n = 0
for _ in range(BLOCKS):
    for who, c in callers.items():
        control("-z")
        for _ in range(CALLS):
            c.describe_clusters(clusters=["default"])
        n += 1
        control("-d", f"{who}-{n}")
        dump = f"{OUT}.{n}"
        totals = [line for line in open(dump) if line.startswith("totals:")]
        per_call[who].append(int(totals[0].split()[1]) / CALLS)

root = sorted(per_call["root"])[BLOCKS // 2]
usr = sorted(per_call["user"])[BLOCKS // 2]
print("| measure | user with 10x20 statements | root | added |")
print("| --- | ---: | ---: | ---: |")
print(f"| instructions per DescribeClusters (median of {BLOCKS} blocks of {CALLS}) | {usr:,.0f} | {root:,.0f} | {100 * (usr - root) / root:+.1f} % |")
print(json.dumps(per_call), file=sys.stderr)
