"""Property tests: arbitrary (signed) JSON bodies and query strings never make the server answer 5xx."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panoflow.controlplane import AccessKey, ControlPlane, serve_in_thread
from tests.support.control_plane import raw_request, signed_headers

EXAMPLES = min(int(os.environ.get("PANOFLOW_HYPOTHESIS_EXAMPLES", "100")), 300)
_SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
_manifest_text = st.one_of(st.text(max_size=200), _json.map(json.dumps),
                           st.fixed_dictionaries({"nodeGraph": _json}).map(json.dumps))
_bodies = st.one_of(
    _json,
    st.fixed_dictionaries(
        {
            "DefaultRuntimeContextDevice": st.one_of(st.text(max_size=20), _json),
            "ManifestPayload": st.one_of(_json, st.fixed_dictionaries({"PayloadData": _manifest_text})),
        },
        optional={
            "ManifestOverridesPayload": st.fixed_dictionaries({"PayloadData": _manifest_text}),
            "ApplicationInstanceIdToReplace": st.text(max_size=20),
            "Tags": _json,
            "Name": st.text(max_size=20),
        },
    ),
)


def test_create_application_instance_bodies_never_5xx(plane: ControlPlane, key: AccessKey) -> None:
    with serve_in_thread(plane) as url:
        device = None

        @_SETTINGS
        @given(body=_bodies, device_ok=st.booleans())
        def check(body: Any, device_ok: bool) -> None:
            if device_ok and isinstance(body, dict) and device:
                body["DefaultRuntimeContextDevice"] = device
            data = json.dumps(body).encode()
            headers = signed_headers(url, key, "POST", "/application-instances", body=data)
            status, _headers, answer = raw_request(url, "POST", "/application-instances", headers, data)
            assert status < 500, answer

        headers = signed_headers(url, key, "POST", "/devices", body=b'{"Name": "fuzz"}')
        device = raw_request(url, "POST", "/devices", headers, b'{"Name": "fuzz"}')[2]["DeviceId"]
        check()


_paths = st.sampled_from(["/devices", "/application-instances", "/packages", "/nodes", "/jobs",
                          "/packages/template-job", "/application-instances/x/node-instances",
                          "/tags/arn%3Ax"])
_names = st.sampled_from(["MaxResults", "maxResults", "NextToken", "nextToken", "statusFilter", "deviceId",
                          "SortBy", "SortOrder", "NameFilter", "category", "DeviceId",
                          "x"]) | st.text(max_size=8)


def test_query_strings_never_5xx(plane: ControlPlane, key: AccessKey) -> None:
    with serve_in_thread(plane) as url:

        @_SETTINGS
        @given(path=_paths, pairs=st.lists(st.tuples(_names, st.text(max_size=30)), max_size=5))
        def check(path: str, pairs: list[tuple[str, str]]) -> None:
            query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sorted(pairs))
            full = f"{path}?{query}" if query else path
            status, _headers, answer = raw_request(url, "GET", full, signed_headers(url, key, "GET", full))
            assert status < 500, answer

        check()
