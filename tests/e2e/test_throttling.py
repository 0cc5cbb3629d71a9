"""ECS's request throttling (`--throttling ecs`): per account and category of
operations, ThrottlingException past a bucket, other accounts and the agents unmoved."""
import socket
import statistics
import threading
import time
from urllib.parse import urlparse

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from conftest import ACCOUNTS, REGION
from docker_support import wait_for
from test_tasks_ec2 import connected

pytestmark = pytest.mark.server_args("--throttling", "ecs")


def client(server, account):
    """An ECS client that does not retry, so each throttled call is seen."""
    _, key, secret = ACCOUNTS[account]
    return botocore.session.get_session().create_client(
        "ecs", endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=key,
        aws_secret_access_key=secret, config=Config(retries={"total_max_attempts": 1}))


def signed(server, account, target="DescribeClusters", body=b"{}"):
    """The bytes of one signed ECS request, to send again and again on a socket."""
    _, key, secret = ACCOUNTS[account]
    creds = Credentials(key, secret)
    u = urlparse(server.endpoint)
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{target}",
        "Host": u.netloc})
    SigV4Auth(creds, "ecs", REGION).add_auth(req)
    head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return (u.hostname, u.port), head.encode() + body


def exchange(sock, request):
    """Sends one request on a keep-alive socket; its answer's status code."""
    sock.sendall(request)
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(65536)
        assert chunk, "closed"
        got += chunk
    head, _, rest = got.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split(b" ")[1]), rest


def latencies(address, requests, count, every=0.01):
    """Latencies of `count` requests cycling through `requests`, one every `every` s:
    below each category's sustained rate, so the caller itself is never throttled."""
    sock = socket.create_connection(address, timeout=10)
    out = []
    next_at = time.perf_counter()
    for i in range(count):
        next_at += every
        t = time.perf_counter()
        status, body = exchange(sock, requests[i % len(requests)])
        out.append(time.perf_counter() - t)
        assert status == 200, body
        time.sleep(max(0.0, next_at - time.perf_counter()))
    sock.close()
    return out


def p99(xs):
    return statistics.quantiles(xs, n=100)[98]


def test_an_account_past_its_bucket_is_throttled_and_no_one_else_is(server, agents):
    a, b = client(server, "a"), client(server, "b")
    began = time.monotonic()
    ok, throttled = 0, []
    for _ in range(80):
        try:
            a.describe_clusters()
            ok += 1
        except a.exceptions.ClientError as e:
            throttled.append(e.response)
    elapsed = time.monotonic() - began
    # The bucket holds 50 and refills 20 a second.
    assert 50 <= ok <= 50 + int(elapsed * 20) + 1, (ok, elapsed)
    assert throttled and all(r["Error"]["Code"] == "ThrottlingException" for r in throttled)
    assert throttled[0]["Error"]["Message"] == "Rate exceeded"
    assert throttled[0]["ResponseMetadata"]["HTTPStatusCode"] == 400
    # ListClusters shares the bucket; other categories, other accounts and the agent do not.
    with pytest.raises(a.exceptions.ClientError) as e:
        a.list_clusters()
    assert e.value.response["Error"]["Code"] == "ThrottlingException"
    assert b.describe_clusters()["clusters"] == []
    assert a.list_task_definitions()["taskDefinitionArns"] == []
    agent = agents("agent1")
    assert connected(a, agent)["agentConnected"] is True
    # The bucket refills: a second later there are tokens again.
    wait_for("the bucket to refill", lambda: a.describe_clusters() is not None, timeout=5)


def test_one_account_flooding_does_not_move_anothers_p99_past_twice_idle(server):
    b = client(server, "b")
    cluster = b.create_cluster()["cluster"]["clusterArn"]
    # One read of each of six categories, each kept under its 20 a second.
    address, _ = signed(server, "b")
    b_requests = [signed(server, "b", op, body)[1] for op, body in [
        ("DescribeClusters", b"{}"), ("ListTaskDefinitions", b"{}"), ("ListAccountSettings", b"{}"),
        ("ListServices", b"{}"), ("ListTasks", b"{}"),
        ("ListTagsForResource", ('{"resourceArn":"%s"}' % cluster).encode())]]
    _, a_request = signed(server, "a")
    latencies(address, b_requests, 60)  # warm up
    idle = latencies(address, b_requests, 500)
    stop = threading.Event()
    answered = {"throttled": 0, "ok": 0}

    def flood():
        sock = socket.create_connection(address, timeout=10)
        deadline = time.monotonic() + 60
        # Bounded in time and count: at most 200,000 requests, 60 s.
        for _ in range(200_000):
            if stop.is_set() or time.monotonic() > deadline:
                break
            status, _ = exchange(sock, a_request)
            answered["throttled" if status == 400 else "ok"] += 1
        sock.close()

    flooders = [threading.Thread(target=flood) for _ in range(2)]
    for f in flooders:
        f.start()
    try:
        wait_for("the flood to be throttled", lambda: answered["throttled"] > 100, timeout=10)
        loaded = latencies(address, b_requests, 500)
    finally:
        stop.set()
        for f in flooders:
            f.join(timeout=30)
    assert answered["throttled"] > 10 * answered["ok"], answered
    print(f"b's p99 idle {p99(idle) * 1e3:.3f} ms, under a's flood {p99(loaded) * 1e3:.3f} ms; "
          f"a answered {answered}")
    assert p99(loaded) <= 2 * p99(idle), (p99(idle), p99(loaded))
