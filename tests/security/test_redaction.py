"""Redaction (issue #16): one redactor (``panoflow.core.redact``) for every log path, status, API answer and
upload.

The property: a generated secret (a URL password of any non-blank characters, ``@`` and ``/`` included; a
secret query value; a ``--param`` value; a value under a secret key, at any depth) never survives the JSON log
renderer, the console renderer, :func:`redact_value` (status documents and API answers) or :func:`redact_text`
(the lines the device uploads). The review's reproductions are pinned as examples."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import structlog
from hypothesis import example, given, settings
from hypothesis import strategies as st

from panoflow.core.redact import SECRET_NAMES, redact_text, redact_url, redact_value
from panoflow.log import configure_logging

# what a password may hold: any printable character but blanks
_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
PASSWORDS = st.text(_CHARS, min_size=1, max_size=24).map(lambda s: "Zq9" + s)
# a query value as it travels: no '&' (it would end the value) and no blanks
QUERY_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="&"),
                       min_size=1, max_size=24).map(lambda s: "Zq9" + s)
SCHEMES = st.sampled_from(["rtsp", "http", "https", "postgresql", "s3", "rtmp"])
USERS = st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=0, max_size=8)
HOSTS = st.sampled_from(["cam", "10.0.0.5:554", "db.example:5432", "[::1]:8554"])
PATHS = st.sampled_from(["", "/", "/stream1", "/a/b?channel=1", "/x#frag"])


def _rendered(fmt: str, **fields: Any) -> str:
    buffer = io.StringIO()
    configure_logging(fmt, "debug", stream=buffer)  # type: ignore[arg-type]
    try:
        structlog.get_logger("redaction-test").info("probe", **fields)
    finally:
        structlog.reset_defaults()
    return buffer.getvalue()


def _every_path(secret: str, text: str) -> None:
    """``text`` (holding ``secret``) through every path: none may keep the secret."""
    assert secret not in redact_text(text)
    assert secret not in json.dumps(redact_value({"a": [text, {"b": (text,)}], "c": {"d": {"e": text}}}))
    for fmt in ("json", "console"):
        out = _rendered(fmt, plain=text, nested={"deep": [{"deeper": text}]}, listed=[text, text])
        assert secret not in out, (fmt, out)


@settings(max_examples=300, deadline=None)
@given(SCHEMES, USERS, PASSWORDS, HOSTS, PATHS)
@example("rtsp", "admin", "Zq9p@ss", "cam", "/x")  # the review: the tail after '@' leaked
@example("rtsp", "admin", "Zq9pa/ss", "cam", "/x")  # the review: a '/' leaked it whole
@example("rtsp", "admin", "Zq9a:b?c#d@e", "cam", "/x")
def test_no_url_password_survives(scheme: str, user: str, password: str, host: str, path: str) -> None:
    url = f"{scheme}://{user}:{password}@{host}{path}"
    assert redact_url(url).endswith(f"@{host}{path}")  # the rest of the URL stays readable
    _every_path(password, url)
    _every_path(password, f"failed to open {url}: connection refused")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SECRET_NAMES)), QUERY_VALUES, st.booleans())
@example("X-Amz-Signature", "Zq9abcdef", False)
@example("X-Amz-Security-Token", "Zq9tok/en+", False)
@example("X-Amz-Credential", "Zq9AKIA%2F20261207", False)
@example("access_token", "Zq9x", False)
@example("api_key", "Zq9y", True)
def test_no_secret_query_value_survives(name: str, value: str, upper: bool) -> None:
    name = name.upper() if upper else name
    for text in (f"https://bucket.example/o?a=1&{name}={value}&b=2", f"https://h/p?{name}={value}",
                 f"retrying with {name}={value}"):
        _every_path(value, text)


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), QUERY_VALUES)
@example("api_key", "Zq9sk-live-123")  # the review: --param values were logged in instance_started
def test_no_parameter_value_survives(name: str, value: str) -> None:
    _every_path(value, f"/usr/bin/python -m panoflow run app --param={name}={value} --graph g.json")
    _every_path(value, f"panoflow run app --param {name}={value}")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["Password", "password", "SecretAccessKey", "Token", "ClaimToken", "Authorization",
                        "api_key", "X-Amz-Security-Token", "client_secret", "db_password"]), PASSWORDS)
def test_no_value_under_a_secret_key_survives(key: str, value: str) -> None:
    doc = {"outer": [{"inner": {key: value}}], key: value}
    assert value not in json.dumps(redact_value(doc))
    for fmt in ("json", "console"):
        assert value not in _rendered(fmt, doc=doc, **{key.replace("-", "_"): value})


def test_what_is_not_secret_stays() -> None:
    for text in ("sqlite:///var/lib/panoflow/cp.db", "key=123456789012/pkg/binaries/m.tar.gz",
                 "https://h/x?email=a@b.com", "http://h:8080/x", "rtsp://viewer@cam/x", "count=3"):
        assert redact_text(text) == text
    assert redact_value({"key": "asset/key", "n": 3, "ok": True}) == {"key": "asset/key", "n": 3, "ok": True}


@pytest.mark.parametrize("password", ["Zq9p@ss", "Zq9pa/ss", "Zq9a:b?c#d"])
def test_template_job_answers_hide_stream_url_credentials(pano: Any, password: str) -> None:
    """DescribeNodeFromTemplateJob masked Username/Password but returned them inside StreamUrl."""
    job = pano.create_node_from_template_job(
        TemplateType="RTSP_CAMERA_STREAM", OutputPackageName="CAM", OutputPackageVersion="1.0",
        NodeName="cam",
        TemplateParameters={"StreamUrl": f"rtsp://admin:{password}@10.0.0.5/s", "Username": "u",
                            "Password": password})
    described = pano.describe_node_from_template_job(JobId=job["JobId"])
    assert password not in json.dumps(described, default=str)
    assert described["TemplateParameters"]["StreamUrl"] == "rtsp://admin:***@10.0.0.5/s"
    listed = pano.list_node_from_template_jobs()
    assert password not in json.dumps(listed, default=str)
