"""Strict JSON reading: every failure is a ManifestError with a precise problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from panoflow.core.manifest.jsonio import (
    MAX_MANIFEST_BYTES,
    display_path,
    join_pointer,
    loads_strict,
    read_manifest_bytes,
)
from panoflow.exceptions import ManifestError, Problem


def _only_problem(data: bytes | str, file: str = "graphs/app/graph.json") -> Problem:
    with pytest.raises(ManifestError) as info:
        loads_strict(data, file)
    assert len(info.value.problems) == 1
    return info.value.problems[0]


def test_valid_json_parses() -> None:
    assert loads_strict(b'{"a": [1, 2.5, "x", true, null]}', "f.json") == {"a": [1, 2.5, "x", True, None]}


def test_duplicate_key_is_an_error_at_its_pointer() -> None:
    problem = _only_problem(b'{"nodeGraph": {"nodes": [{"name": "a", "name": "b"}]}}')
    assert problem.file == "graphs/app/graph.json"
    assert problem.pointer == "/nodeGraph/nodes/0/name"
    assert "duplicate key 'name'" in problem.message
    assert problem.severity == "error"


def test_duplicate_top_level_key() -> None:
    with pytest.raises(ManifestError) as info:
        loads_strict(b'{"nodeGraph": {"a": 1, "a": 1}, "nodeGraph": {}}', "g.json")
    assert [p.pointer for p in info.value.problems] == ["/nodeGraph"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(literal: str) -> None:
    problem = _only_problem(f'{{"value": {literal}}}')
    assert problem.pointer == ""
    assert literal.lstrip("-") in problem.message


def test_overflowing_number_is_rejected_at_its_pointer() -> None:
    assert _only_problem('{"a": [1, 1e400]}').pointer == "/a/1"


def test_syntax_error_has_line_and_column() -> None:
    problem = _only_problem(b'{\n  "a": 1,\n  "b": ]\n}')
    assert problem.pointer == ""
    assert "line 3 column 8" in problem.message


def test_trailing_comma_is_a_syntax_error() -> None:
    assert "line 1" in _only_problem(b'{"a": 1,}').message


def test_bad_utf8_has_line_and_column() -> None:
    problem = _only_problem(b'{\n "a": "caf\xe9"\n}')
    assert problem.pointer == ""
    assert "not valid UTF-8 at line 2 column 11" in problem.message


def test_utf8_bom_is_accepted() -> None:
    assert loads_strict(b'\xef\xbb\xbf{"a": 1}', "f.json") == {"a": 1}


def test_lone_surrogate_escape_is_rejected() -> None:
    assert _only_problem(b'{"a": ["\\ud800"]}').pointer == "/a/0"


def test_too_deep_nesting_is_one_problem() -> None:
    assert "nested" in _only_problem("[" * 40 + "]" * 40).message
    assert "nested" in _only_problem("[" * 100_000 + "]" * 100_000).message


def test_huge_integer_is_a_problem_not_a_crash() -> None:
    assert _only_problem('{"a": ' + "9" * 5000 + "}").pointer == ""


def test_join_pointer_escapes_per_rfc6901() -> None:
    assert join_pointer([]) == ""
    assert join_pointer(["a/b", "m~n", 0, ""]) == "/a~1b/m~0n/0/"


def test_display_path_is_relative_inside_the_app(tmp_path: Path) -> None:
    assert display_path(tmp_path / "graphs" / "a" / "graph.json", tmp_path) == "graphs/a/graph.json"
    assert display_path("/elsewhere/override.json", tmp_path) == "/elsewhere/override.json"
    assert display_path("x.json", None) == "x.json"


def test_read_manifest_bytes_turns_os_errors_into_problems(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="file not found"):
        read_manifest_bytes(tmp_path / "missing.json", "missing.json")
    with pytest.raises(ManifestError, match="directory"):
        read_manifest_bytes(tmp_path, "dir")
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(ManifestError, match="larger than"):
        read_manifest_bytes(big, "big.json")
    with pytest.raises(ManifestError, match="cannot read"):
        read_manifest_bytes(tmp_path / "nul\x00.json", "nul.json")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(ManifestError, match="not a regular file"):
        read_manifest_bytes(fifo, "fifo.json")
