"""Strict JSON reading for manifests, and the small path/pointer helpers every manifest module shares.

Python's :func:`json.loads` is lenient where a manifest must not be: it keeps the last of two equal keys,
accepts ``NaN``/``Infinity``, turns ``1e400`` into ``inf`` and lets ``\\ud800`` escapes through as lone
surrogates (which later fail to print). :func:`loads_strict` rejects all of these, and reports undecodable
UTF-8 and syntax errors with their line and column. Every failure is a
:class:`~panoflow.exceptions.ManifestError` holding
:class:`~panoflow.exceptions.Problem` values; nothing else escapes, whatever the bytes.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from panoflow.exceptions import ManifestError, Problem

__all__ = [
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "display_path",
    "join_pointer",
    "loads_strict",
    "read_manifest_bytes",
]

#: manifests are small; anything bigger is not one (and would only slow validation down)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
#: the deepest real manifest nests 8 levels; deeper documents are rejected before schema validation
MAX_DEPTH = 32


def join_pointer(parts: Iterable[str | int]) -> str:
    """An RFC 6901 JSON pointer from path parts (``~`` -> ``~0``, ``/`` -> ``~1``); ``""`` for the root."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def display_path(path: Path | str, app_dir: Path | str | None) -> str:
    """``path`` relative to ``app_dir`` when it lies inside it (POSIX separators), else as given."""
    text = os.fspath(path)
    if app_dir is None:
        return text
    try:
        rel = Path(os.path.abspath(text)).relative_to(os.path.abspath(os.fspath(app_dir)))
    except (ValueError, OSError):
        return text
    return rel.as_posix() if rel.parts else text


def read_manifest_bytes(path: Path, file: str) -> bytes:
    """The bytes of a manifest file, or a :class:`ManifestError` saying why they cannot be read."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(mode):  # a FIFO or device would block or never end
            raise OSError(0, "not a regular file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError([Problem(file, "", "file not found", "check the path")]) from None
    except IsADirectoryError:
        raise ManifestError([Problem(file, "", "is a directory, not a JSON file",
                                     "name the JSON file")]) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        hint = (
            "name a regular JSON file"
            if isinstance(exc, OSError) and exc.errno == 0
            else "check its permissions"
        )
        raise ManifestError([Problem(file, "", f"cannot read the file: {reason}", hint)]) from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            [Problem(file, "", f"file is larger than {MAX_MANIFEST_BYTES} bytes",
                     "is this really a manifest?")]
        )
    return data


def _line_col(text: str | bytes, pos: int) -> tuple[int, int]:
    newline = "\n" if isinstance(text, str) else b"\n"
    line = text.count(newline, 0, pos) + 1  # type: ignore[arg-type]
    col = pos - (text.rfind(newline, 0, pos) + 1) + 1  # type: ignore[arg-type]
    return line, col


class _Duplicates:
    """Collects objects that had a key twice while :func:`json.loads` builds them (keeping them alive, so the
    identity check in :func:`_scan` cannot be fooled by a recycled ``id``)."""

    def __init__(self) -> None:
        self.found: list[tuple[dict[str, Any], list[str]]] = []

    def hook(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        dups: list[str] = []
        for key, value in pairs:
            if key in obj and key not in dups:
                dups.append(key)
            obj[key] = value
        if dups:
            self.found.append((obj, dups))
        return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _scan(doc: Any, file: str, dups: _Duplicates) -> list[Problem]:
    """Walk the parsed document once (iteratively) for what :func:`json.loads` let through."""
    problems: list[Problem] = []
    dup_of = {id(obj): keys for obj, keys in dups.found}
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(doc, ())]
    too_deep = False
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            if not too_deep:  # once is enough
                problems.append(
                    Problem(file, join_pointer(path), f"nested more than {MAX_DEPTH} levels deep",
                            "no manifest is")
                )
            too_deep = True
            continue
        if isinstance(value, dict):
            for key in dup_of.get(id(value), ()):
                if _has_surrogate(key):
                    continue  # reported below, as an invalid escape
                problems.append(
                    Problem(file, join_pointer((*path, key)), f"duplicate key {key!r}",
                            "keep only one of them")
                )
            for key, item in value.items():
                if _has_surrogate(key):
                    problems.append(Problem(file, join_pointer(path), "key contains an invalid \\u escape",
                                            "lone surrogates (\\ud800-\\udfff) are not text"))
                    continue
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
        elif isinstance(value, str) and _has_surrogate(value):
            problems.append(Problem(file, join_pointer(path), "string contains an invalid \\u escape",
                                    "lone surrogates (\\ud800-\\udfff) are not text"))
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(Problem(file, join_pointer(path), "number is too large to represent",
                                    "use a smaller number"))
    return sorted(problems)


def loads_strict(data: bytes | str, file: str) -> Any:
    """Parse one JSON document strictly; ``file`` names it in problems. Raises only :class:`ManifestError`."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line, col = _line_col(data, exc.start)
            raise ManifestError(
                [Problem(file, "", f"not valid UTF-8 at line {line} column {col}", "save the file as UTF-8")]
            ) from None
    else:
        text = data
    dups = _Duplicates()
    try:
        doc = json.loads(text, object_pairs_hook=dups.hook, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ManifestError(
            [Problem(file, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                     "fix the JSON syntax (a JSON linter shows the exact spot)")]
        ) from None
    except RecursionError:
        raise ManifestError([Problem(file, "", "JSON nested too deeply", "no manifest is")]) from None
    except ValueError as exc:  # NaN/Infinity, integers with too many digits
        raise ManifestError([Problem(file, "", f"invalid JSON: {exc}",
                                     "use plain, finite JSON numbers")]) from None
    problems = _scan(doc, file, dups)
    if problems:
        raise ManifestError(problems)
    return doc
