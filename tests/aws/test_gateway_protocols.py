"""Each CloudWatch wire protocol end to end over HTTP: requests serialized by botocore's own serializers for
query, JSON and rpc-v2-cbor are accepted by the gateway, and its answers (success, a bad request, an operation
it does not serve) parse with botocore's own parsers for that protocol into what an SDK returns or raises. S3
through --aws-endpoint s3=moto keeps HEAD's Content-Length."""

from __future__ import annotations

import http.client
from pathlib import Path

import boto3
import botocore.session
import pytest
from botocore.parsers import create_parser
from botocore.serialize import create_serializer
from botocore.utils import percent_encode_sequence

from panoflow.aws import AwsGateway, AwsSettings
from tests.aws.runner import running

MODEL = botocore.session.get_session().get_service_model("cloudwatch")
PROTOCOLS = ("query", "json", "smithy-rpc-v2-cbor")


def _call(port: int, protocol: str, operation: str, params: dict) -> dict:
    op = MODEL.operation_model(operation)
    request = create_serializer(protocol).serialize_to_request(params, op)
    body = request["body"]
    if isinstance(body, dict):
        body = percent_encode_sequence(body).encode()
    headers = {**request["headers"], "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/"
               "monitoring/aws4_request, SignedHeaders=host, Signature=00"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", request["url_path"], body=body, headers=headers)
        answer = conn.getresponse()
        raw = {"status_code": answer.status, "headers": dict(answer.getheaders()), "body": answer.read()}
    finally:
        conn.close()
    parsed = create_parser(protocol).parse(raw, op.output_shape)
    parsed["status"] = raw["status_code"]
    return parsed


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_protocols_round_trip_through_botocore(tmp_path: Path, protocol: str) -> None:
    with running(AwsGateway(AwsSettings(), instance_id="p", state_dir=tmp_path, tls=False)) as gw:
        ok = _call(gw.http_port, protocol, "PutMetricData", {"Namespace": "N", "MetricData": [
            {"MetricName": "Latency", "Value": 3.5, "Unit": "Seconds",
             "Dimensions": [{"Name": "Device ID", "Value": "d"}]}]})
        bad = _call(gw.http_port, protocol, "PutMetricData", {"Namespace": "N", "MetricData": [
            {"MetricName": "NoValue"}]})
        other = _call(gw.http_port, protocol, "ListMetrics", {"Namespace": "N"})
    assert ok["status"] == 200 and "Error" not in ok
    assert bad["status"] == 400 and bad["Error"]["Code"] == "MissingParameter"
    assert "Value, Values or StatisticValues" in bad["Error"]["Message"]
    assert other["status"] == 501 and other["Error"]["Code"] == "NotImplemented"
    assert "PutMetricData only" in other["Error"]["Message"]
    gauge, _ = gw.families()
    assert gauge.samples == [({"namespace": "N", "metric": "Latency", "unit": "Seconds", "device_id": "d"},
                              3.5)]


def test_s3_forwarded_to_moto_keeps_head_length(tmp_path: Path, moto_url: str) -> None:
    gw = AwsGateway(AwsSettings(local=frozenset(), endpoints={"s3": moto_url}), instance_id="f",
                    state_dir=tmp_path, tls=False)
    with running(gw):
        s3 = boto3.client("s3", endpoint_url=gw.endpoint_url, region_name="us-east-1", aws_access_key_id="a",
                          aws_secret_access_key="b")
        s3.create_bucket(Bucket="fwd")
        s3.put_object(Bucket="fwd", Key="k/1.bin", Body=b"z" * 1000)
        assert s3.head_object(Bucket="fwd", Key="k/1.bin")["ContentLength"] == 1000
        assert s3.get_object(Bucket="fwd", Key="k/1.bin")["Body"].read() == b"z" * 1000
    direct = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="a",
                          aws_secret_access_key="b")
    assert [o["Key"] for o in direct.list_objects_v2(Bucket="fwd")["Contents"]] == ["k/1.bin"]
    assert not (tmp_path / "aws" / "s3").exists()  # nothing stored locally


def test_unreachable_endpoint_is_an_sdk_error(tmp_path: Path) -> None:
    gw = AwsGateway(AwsSettings(local=frozenset(), endpoints={"cloudwatch": "http://127.0.0.1:9"}),
                    instance_id="u", state_dir=tmp_path, tls=False)
    with running(gw):
        answer = _call(gw.http_port, "query", "PutMetricData", {"Namespace": "N", "MetricData": [
            {"MetricName": "M", "Value": 1.0}]})
    assert answer["status"] == 502 and answer["Error"]["Code"] == "EndpointUnreachable"


def test_s3_virtual_hosted_and_path_style_reach_the_same_object(tmp_path: Path) -> None:
    """A virtual-hosted address (the bucket in the Host name, as old SDKs send to BUCKET.s3.amazonaws.com) and
    a path-style one name the same object; a path escaping the bucket in the raw request target is refused."""
    with running(AwsGateway(AwsSettings(), instance_id="v", state_dir=tmp_path, tls=False)) as gw:
        def send(method: str, target: str, host: str, body: bytes | None = None) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", gw.http_port, timeout=30)
            try:
                conn.request(method, target, body=body, headers={"Host": host})
                answer = conn.getresponse()
                return answer.status, answer.read()
            finally:
                conn.close()

        assert send("PUT", "/shots/a.jpg", "snaps.s3.us-east-1.amazonaws.com", b"jpeg")[0] == 200
        assert send("GET", "/snaps/shots/a.jpg", "s3.amazonaws.com") == (200, b"jpeg")
        status, body = send("PUT", "/snaps/shots/%2E%2E/%2E%2E/x", "s3.amazonaws.com", b"x")
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body
        status, body = send("GET", "/", "s3.amazonaws.com")
        assert status == 501 and b"<Code>NotImplemented</Code>" in body
    assert (tmp_path / "aws" / "s3" / "snaps" / "shots" / "a.jpg").read_bytes() == b"jpeg"
    assert not (tmp_path / "aws" / "s3" / "x").exists()
