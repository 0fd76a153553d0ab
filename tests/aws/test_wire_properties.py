"""Property tests for the gateway's parsers: CBOR round trips and never fails but with CborError;
PutMetricData as botocore itself serializes it in each of CloudWatch's wire protocols (query, JSON,
rpc-v2-cbor) parses to the data put; garbage gives CloudWatch errors only; dimension labels are valid
Prometheus names; S3 keys either stay inside their bucket folder or are refused; aws-chunked bodies decode to
their payload."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from urllib.parse import parse_qsl

import botocore.session
import pytest
from botocore.serialize import create_serializer
from botocore.utils import percent_encode_sequence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panoflow.aws import cbor
from panoflow.aws.cloudwatch import (
    CloudWatchError,
    Datum,
    MetricStore,
    label_name,
    parse_document,
    parse_query,
)
from panoflow.aws.s3 import LocalS3, S3Error, decode_aws_chunked
from panoflow.aws.wire import s3_bucket_from_host, service_of

OPERATION = botocore.session.get_session().get_service_model("cloudwatch").operation_model("PutMetricData")
PROTOCOLS = ("query", "json", "smithy-rpc-v2-cbor")

scalars = st.none() | st.booleans() | st.integers(-(2**64) + 1, 2**64 - 1) | \
    st.floats(allow_nan=False) | st.text(max_size=20) | st.binary(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) |
                      st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


@given(values)
def test_cbor_round_trip(value: object) -> None:
    assert cbor.decode(cbor.encode(value)) == value


@given(st.binary(max_size=64))
def test_cbor_garbage_raises_only_cbor_error(data: bytes) -> None:
    try:
        cbor.decode(data)
    except cbor.CborError:
        pass


def test_cbor_indefinite_lengths_halves_and_tags() -> None:
    # {_ "a": [_ 1, 2], "t": 1(1.5)} with an indefinite text key, a half float and a tagged epoch time
    data = bytes([0xBF, 0x7F, 0x61, 0x61, 0xFF, 0x9F, 0x01, 0x02, 0xFF, 0x61, 0x74, 0xC1, 0xF9, 0x3E, 0x00,
                  0xFF])
    assert cbor.decode(data) == {"a": [1, 2], "t": 1.5}


names = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=24).filter(str.strip)
finite = st.floats(-1e12, 1e12, allow_nan=False)
dimension_lists = st.lists(st.fixed_dictionaries({"Name": names, "Value": names}), max_size=4,
                           unique_by=lambda d: d["Name"])
datum = st.fixed_dictionaries(
    {"MetricName": names, "Dimensions": dimension_lists},
    optional={"Unit": st.sampled_from(["Seconds", "Milliseconds", "Count", "Percent", "None"]),
              "Timestamp": st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2030, 1, 1))}) | \
    st.tuples(st.fixed_dictionaries({"MetricName": names}), st.integers(0, 2), finite,
              st.lists(finite, min_size=1, max_size=5))
inputs = st.fixed_dictionaries({"Namespace": names, "MetricData": st.lists(datum, min_size=1, max_size=5)})


def _shape(raw: object) -> dict:
    """A generated datum in one of its three forms: Value, Values/Counts or StatisticValues."""
    if isinstance(raw, dict):
        return {**raw, "Value": 1.25}
    base, form, number, many = raw  # type: ignore[misc]
    if form == 0:
        return {**base, "Value": number}
    if form == 1:
        return {**base, "Values": many, "Counts": [float(i + 1) for i in range(len(many))]}
    return {**base, "StatisticValues": {"SampleCount": 4.0, "Sum": number, "Minimum": number,
                                        "Maximum": number}}


def _expected(params: dict) -> list[Datum]:
    out = []
    for d in params["MetricData"]:
        dims = tuple(sorted((x["Name"], x["Value"]) for x in d.get("Dimensions", [])))
        if "Value" in d:
            value, count = d["Value"], 1.0
        elif "Values" in d:
            value, count = d["Values"][-1], sum(d["Counts"])
        else:
            value, count = d["StatisticValues"]["Sum"] / 4.0, 4.0
        out.append(Datum(params["Namespace"], d["MetricName"], d.get("Unit", "None"), dims, value, count))
    return out


def _parse_wire(protocol: str, params: dict) -> list[Datum]:
    request = create_serializer(protocol).serialize_to_request(params, OPERATION)
    if protocol == "query":
        return parse_query(parse_qsl(percent_encode_sequence(request["body"]), keep_blank_values=True))
    body = request["body"]
    return parse_document(cbor.decode(body) if protocol.endswith("cbor") else json.loads(body))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(inputs)
def test_put_metric_data_as_botocore_sends_it(protocol: str, generated: dict) -> None:
    params = {"Namespace": generated["Namespace"], "MetricData": [_shape(d) for d in generated["MetricData"]]}
    got = _parse_wire(protocol, params)
    want = _expected(params)
    assert [(d.namespace, d.name, d.unit, d.dimensions, d.count) for d in got] == \
        [(d.namespace, d.name, d.unit, d.dimensions, d.count) for d in want]
    assert all(math.isclose(a.value, b.value, rel_tol=1e-12, abs_tol=1e-12) for a, b in zip(got, want))


@given(st.lists(st.tuples(st.text(max_size=40), st.text(max_size=10)), max_size=12))
def test_query_garbage_gives_cloudwatch_errors_only(pairs: list[tuple[str, str]]) -> None:
    try:
        parse_query(pairs)
    except CloudWatchError:
        pass


@given(values)
def test_document_garbage_gives_cloudwatch_errors_only(doc: object) -> None:
    try:
        parse_document(doc)
    except CloudWatchError:
        pass


@given(st.text(max_size=30))
def test_dimension_labels_are_prometheus_names(name: str) -> None:
    label = label_name(name)
    assert label and (label[0].isalpha() or label[0] == "_") and all(c.isalnum() or c == "_" for c in label)
    assert label.isascii() and label not in ("namespace", "metric", "unit")


def test_label_examples_and_families() -> None:
    assert label_name("Application Name") == "application_name"
    assert label_name("Device ID") == "device_id"
    assert label_name("DeviceId") == "device_id"
    assert label_name("HTTPStatus") == "http_status"
    store = MetricStore(max_series=1)
    store.add([Datum("N", "M", "Count", (("Device ID", "d"),), 2.0, 1.0)] * 2)
    store.add([Datum("N", "Other", "Count", (), 1.0, 1.0)])  # over the series limit: dropped
    gauge, samples = store.families()
    assert gauge.samples == [({"namespace": "N", "metric": "M", "unit": "Count", "device_id": "d"}, 2.0)]
    assert samples.samples[0][1] == 2.0


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.lists(st.sampled_from(["a", ".", "/", "..", "\\", "\x00", "é", "b/", "%2e"]),
                    max_size=10).map("".join))
def test_s3_keys_stay_in_their_bucket(tmp_path: Path, key: str) -> None:
    store = LocalS3(tmp_path / "s3", cap_bytes=1 << 20)
    try:
        store.put_object("bucket", key, b"x")
    except S3Error as exc:
        assert exc.status in (400, 409)
        return
    written = [Path(folder) / f for folder, _, files in os.walk(tmp_path) for f in files]
    assert all(str(p).startswith(str(tmp_path / "s3" / "bucket") + os.sep) for p in written)
    assert store.get_object("bucket", key).body == b"x"


@given(st.lists(st.binary(min_size=1, max_size=50), max_size=5), st.booleans())
def test_aws_chunked_bodies_decode_to_their_payload(chunks: list[bytes], signed: bool) -> None:
    extension = b";chunk-signature=" + b"0" * 64 if signed else b""
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(c), extension, c) for c in chunks)
    body += b"0" + extension + b"\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
    assert decode_aws_chunked(body) == b"".join(chunks)


@pytest.mark.parametrize(("host", "service", "bucket"), [
    ("monitoring.us-east-1.amazonaws.com", "monitoring", None),
    ("s3.amazonaws.com", "s3", None),
    ("my.bucket.s3.us-east-1.amazonaws.com:443", "s3", "my.bucket"),
    ("snaps.s3-us-west-2.amazonaws.com", "s3", "snaps"),
    ("queue.amazonaws.com", "queue", None),
    ("127.0.0.1:5000", None, None),
])
def test_service_and_bucket_from_host(host: str, service: str | None, bucket: str | None) -> None:
    assert service_of({}, {}, host) == service
    assert s3_bucket_from_host(host) == bucket


def test_service_from_signature_scope_wins() -> None:
    auth = ("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sqs/aws4_request, SignedHeaders=host, "
            "Signature=0")
    assert service_of({"Authorization": auth}, {}, "s3.amazonaws.com") == "sqs"
    assert service_of({}, {"X-Amz-Credential": "AKID/20240101/us-east-1/s3/aws4_request"},
                      "127.0.0.1") == "s3"
