"""Source URI and option parsing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from panoflow.core.redact import uri_scheme
from panoflow.plugins.uri import (
    FILE_OPTIONS,
    TESTSRC_OPTIONS,
    format_source_uri,
    parse_bool,
    parse_host_port,
    parse_options,
    parse_source_uri,
)

EXAMPLES = int(os.environ.get("PANOFLOW_HYPOTHESIS_EXAMPLES", "200"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None)


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("/x/clip.mp4", "file"),
        ("clip.mp4", "file"),
        ("clip:1.mp4", "file"),
        ("file:///x/clip.mp4", "file"),
        ("file:/x/clip.mp4", "file"),
        ("/x/with://in/it.mp4", "file"),
        ("testsrc:?size=64x64", "file"),
        ("https://cdn.example/clip.mp4", "file"),
        ("HTTP://cdn.example/clip.mp4", "file"),
        ("testsrc://?size=64x64", "testsrc"),
        ("rtsp://cam/stream", "rtsp"),
    ],
)
def test_uri_scheme(uri: str, scheme: str) -> None:
    """The one scheme rule (core.redact.uri_scheme): the runtime picks the source with it, the sources
    parse with it."""
    assert uri_scheme(uri) == scheme


def test_file_uri_with_query() -> None:
    spec = parse_source_uri("file:///path/clip.mp4?realtime=1&loop=yes")
    assert spec.scheme == "file" and spec.location == "/path/clip.mp4"
    assert spec.options == {"realtime": True, "loop": True, "frames": None, "decoder": "auto",
                            "decode": "all", "auto_below": 0.5, "auto_window": 10.0, "convert": "demand"}


def test_plain_relative_path_is_resolved_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = parse_source_uri("clip.mp4?frames=5")
    assert spec.location == str(tmp_path / "clip.mp4")
    assert spec.options["frames"] == 5


def test_existing_file_with_question_mark_is_taken_literally(tmp_path: Path) -> None:
    odd = tmp_path / "what?.mp4"
    odd.write_bytes(b"")
    assert parse_source_uri(str(odd)).location == str(odd)


def test_percent_encoded_file_uri() -> None:
    assert parse_source_uri("file:///a%20b/c%3Fd.mp4").location == "/a b/c?d.mp4"


def test_caller_options_win_over_query() -> None:
    spec = parse_source_uri("file:///c.mp4?loop=1&frames=3", {"loop": "no", "frames": 7})
    assert spec.options["loop"] is False and spec.options["frames"] == 7


def test_http_keeps_foreign_query_and_takes_ours() -> None:
    spec = parse_source_uri("https://cdn.example/v.mp4?sig=abc&loop=1&X-Amz=1")
    assert spec.location == "https://cdn.example/v.mp4?sig=abc&X-Amz=1"
    assert spec.options["loop"] is True
    assert spec.is_network


def test_testsrc_defaults_and_options() -> None:
    assert parse_source_uri("testsrc://").options == {
        "size": (1280, 720),
        "fps": 30.0,
        "frames": None,
        "realtime": True,
    }
    spec = parse_source_uri("testsrc://?size=640x360&fps=12.5&frames=9&realtime=0")
    assert spec.options == {"size": (640, 360), "fps": 12.5, "frames": 9, "realtime": False}


@pytest.mark.parametrize("text", ["1", "true", "TRUE", "yes", "Yes", ""])
def test_bool_true(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "false", "False", "no", "NO"])
def test_bool_false(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize(
    ("uri", "options", "needle"),
    [
        ("file:///c.mp4?speed=2", {}, "unknown option 'speed'"),
        ("file:///c.mp4", {"colour": "red"},
         "valid options: auto_below, auto_window, convert, decode, decoder, frames, loop, realtime"),
        ("file:///c.mp4?loop=maybe", {}, "option 'loop'"),
        ("file:///c.mp4?frames=0", {}, "positive integer"),
        ("file:///c.mp4?loop=1&loop=0", {}, "given twice"),
        ("file://nas/c.mp4", {}, "names host"),
        ("testsrc://?size=big", {}, "WIDTHxHEIGHT"),
        ("testsrc://?fps=-1", {}, "positive number"),
        ("gopher://x/y", {}, "unsupported source scheme"),
    ],
)
def test_bad_options_raise_value_error(uri: str, options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_source_uri(uri, options)


def test_errors_never_contain_passwords() -> None:
    with pytest.raises(ValueError) as info:
        parse_source_uri("https://bob:hunter2@cdn.example/v.mp4?loop=perhaps")
    assert "hunter2" not in str(info.value) and "bob" in str(info.value)
    with pytest.raises(ValueError) as info:
        parse_source_uri("gopher://bob:hunter2@x/y")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (":0", ("127.0.0.1", 0)),
        ("[::1]:9", ("::1", 9)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", "host:99999", "a:b"])
def test_bad_host_port(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_host_port(text)


_paths = st.lists(
    st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=12).filter(
        lambda p: p not in (".", "..")
    ),
    min_size=1,
    max_size=3,
).map(lambda parts: "/" + "/".join(parts))
_file_opts = st.fixed_dictionaries(
    {}, optional={"realtime": st.booleans(), "loop": st.booleans(), "frames": st.integers(1, 10**9)}
)
_testsrc_opts = st.fixed_dictionaries(
    {},
    optional={
        "size": st.tuples(st.integers(1, 99999), st.integers(1, 99999)),
        "fps": st.floats(min_value=1e-3, max_value=1e4, allow_nan=False),
        "frames": st.integers(1, 10**9),
        "realtime": st.booleans(),
    },
)


@PROPERTY
@given(path=_paths, options=_file_opts)
def test_file_options_round_trip(path: str, options: dict[str, Any]) -> None:
    uri = format_source_uri("file", path, options)
    spec = parse_source_uri(uri)
    assert spec.location == str(Path(path).absolute())
    assert spec.options == {**{k: o.default for k, o in FILE_OPTIONS.items()}, **options}
    # the same options given as strings by a caller (command-line flags) parse the same
    as_text = {k: FILE_OPTIONS[k].format(v) for k, v in options.items()}
    assert parse_source_uri(format_source_uri("file", path, {}), as_text).options == spec.options


@PROPERTY
@given(options=_testsrc_opts)
def test_testsrc_options_round_trip(options: dict[str, Any]) -> None:
    spec = parse_source_uri(format_source_uri("testsrc", "", options))
    assert spec.options == {**{k: o.default for k, o in TESTSRC_OPTIONS.items()}, **options}


_names = st.text(st.characters(codec="ascii", categories=["L", "N", "P"]), min_size=1, max_size=10)


@PROPERTY
@given(name=_names, value=st.text(max_size=10), known=_file_opts)
def test_unknown_options_raise_value_error_only(name: str, value: str, known: dict[str, Any]) -> None:
    if name in FILE_OPTIONS:
        return
    with pytest.raises(ValueError, match="unknown option"):
        parse_source_uri("file:///c.mp4", {**known, name: value})


@PROPERTY
@given(raw=st.dictionaries(_names, st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none())))
def test_parse_options_fails_only_with_value_error(raw: dict[str, Any]) -> None:
    try:
        parse_options(raw, TESTSRC_OPTIONS, what="testsrc")
    except ValueError:
        pass
