"""SigV4 refusals, STS, protocol errors: raw HTTP where a real SDK would not misbehave."""
import datetime
import json
import urllib.request
from unittest import mock

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import shapes
from conftest import ACCOUNTS

TARGET = "AmazonEC2ContainerServiceV20141113."


def raw(endpoint, operation, body=b"{}", headers=None, account="a", secret=None, region="us-east-1",
        sign=True, when=None):
    """Sends one ECS call over plain HTTP, optionally SigV4-signed by botocore."""
    _, key, real_secret = ACCOUNTS[account]
    h = {"X-Amz-Target": TARGET + operation, "Content-Type": "application/x-amz-json-1.1"}
    h.update(headers or {})
    req = AWSRequest(method="POST", url=endpoint + "/", data=body, headers=h)
    if sign:
        creds = Credentials(key, secret or real_secret)
        if when is None:
            SigV4Auth(creds, "ecs", region).add_auth(req)
        else:
            with mock.patch("botocore.auth.get_current_datetime", return_value=when):
                SigV4Auth(creds, "ecs", region).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def err(body):
    return json.loads(body)


def test_signed_raw_request_works(server):
    status, body = raw(server.endpoint, "ListClusters")
    assert status == 200 and json.loads(body) == {"clusterArns": []}
    shapes.check_response("ListClusters", status, body)


def test_unsigned_request_is_refused(server):
    status, body = raw(server.endpoint, "ListClusters", sign=False)
    assert status == 403
    assert err(body) == {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}


def test_wrong_secret_is_refused(server):
    status, body = raw(server.endpoint, "ListClusters", secret="not-the-secret")
    assert status == 403
    assert err(body)["__type"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in err(body)["message"]


def test_unknown_key_is_refused(server):
    import boto3
    c = boto3.client("ecs", endpoint_url=server.endpoint, region_name="us-east-1",
                     aws_access_key_id="AKIAUNKNOWNUNKNOWN00", aws_secret_access_key="x")
    with pytest.raises(ClientError) as e:
        c.list_clusters()
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_stale_and_future_requests_are_refused(server):
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    status, body = raw(server.endpoint, "ListClusters", when=now - datetime.timedelta(minutes=20))
    assert status == 403 and err(body)["__type"] == "InvalidSignatureException"
    assert err(body)["message"].startswith("Signature expired: ")
    status, body = raw(server.endpoint, "ListClusters", when=now + datetime.timedelta(minutes=20))
    assert err(body)["message"].startswith("Signature not yet current: ")
    status, _ = raw(server.endpoint, "ListClusters", when=now - datetime.timedelta(minutes=10))
    assert status == 200


def test_tampered_body_is_refused(server):
    _, key, secret = ACCOUNTS["a"]
    req = AWSRequest(method="POST", url=server.endpoint + "/", data=b'{"clusterName":"a"}',
                     headers={"X-Amz-Target": TARGET + "CreateCluster", "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials(key, secret), "ecs", "us-east-1").add_auth(req)
    p = req.prepare()
    r = urllib.request.Request(p.url, data=b'{"clusterName":"b"}', headers=dict(p.headers), method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(r, timeout=10)
    assert json.loads(e.value.read())["__type"] == "InvalidSignatureException"


def test_query_string_signature_works(server):
    _, key, secret = ACCOUNTS["a"]
    req = AWSRequest(method="GET", url=server.endpoint + "/?Action=GetCallerIdentity&Version=2011-06-15")
    SigV4QueryAuth(Credentials(key, secret), "sts", "us-east-1", expires=60).add_auth(req)
    with urllib.request.urlopen(req.prepare().url, timeout=10) as resp:
        xml = resp.read().decode()
    assert "<Account>111111111111</Account>" in xml
    assert "<Arn>arn:aws:iam::111111111111:root</Arn>" in xml


def test_sts_get_caller_identity(server):
    for account in ("a", "b"):
        ident = server.client("sts", account=account).get_caller_identity()
        acct = ACCOUNTS[account][0]
        assert ident["Account"] == acct
        assert ident["Arn"] == f"arn:aws:iam::{acct}:root"
    out = server.cli("sts", "get-caller-identity")
    assert out["Account"] == "111111111111"


def test_sts_refuses_bad_keys_with_query_codes(server):
    import boto3
    c = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                     aws_access_key_id=ACCOUNTS["a"][1], aws_secret_access_key="wrong")
    with pytest.raises(ClientError) as e:
        c.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    c = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                     aws_access_key_id="AKIANOBODY0000000000", aws_secret_access_key="wrong")
    with pytest.raises(ClientError) as e:
        c.get_caller_identity()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"


def test_operations_not_yet_implemented_say_so(ecs, server):
    with pytest.raises(ClientError) as e:
        ecs.create_task_set(service="x", cluster="x", taskDefinition="x")
    assert e.value.response["Error"]["Code"] == "UnsupportedFeatureException"
    assert "CreateTaskSet" in e.value.response["Error"]["Message"]
    status, body = raw(server.endpoint, "NoSuchOperation")
    assert status == 400 and err(body)["__type"] == "UnknownOperationException"


def test_malformed_bodies(server):
    status, body = raw(server.endpoint, "CreateCluster", body=b"{not json")
    assert status == 400 and err(body)["__type"] == "SerializationException"
    status, body = raw(server.endpoint, "CreateCluster", body=b'{"clusterName": 7}')
    assert err(body)["__type"] == "SerializationException"
    status, body = raw(server.endpoint, "RegisterTaskDefinition", body=b'{"family": "x"}')
    assert err(body)["__type"] == "InvalidParameterException"
    assert "containerDefinitions" in err(body)["message"]


def test_oversized_body_is_refused(server):
    big = json.dumps({"clusterName": "x", "tags": [{"key": "k", "value": "v" * 200}] * 6000}).encode()
    assert len(big) > 1024 * 1024
    status, body = raw(server.endpoint, "CreateCluster", body=big)
    assert status == 413 and err(body)["__type"] == "RequestEntityTooLargeException"
    status, body = raw(server.endpoint, "ListClusters")
    assert json.loads(body) == {"clusterArns": []}
