"""Source URIs and their options: ``file:///clip.mp4?realtime=1&loop=1``, plain paths, ``http(s)://`` URLs and
``testsrc://?size=1280x720&fps=30``.

Options come from the URI query and from a caller's dict (command-line flags); the dict wins. Every option is
declared in a table (:class:`Option`), so unknown names fail early with a :class:`ValueError` that lists the
valid ones. Messages go through :func:`~panoflow.core.redact.redact_url`: they never contain a password.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from panoflow.core.redact import redact_url, uri_scheme

__all__ = [
    "DECODE_BUDGET_OPTIONS",
    "FILE_OPTIONS",
    "OPTION_TABLES",
    "TESTSRC_OPTIONS",
    "Option",
    "SourceURI",
    "format_source_uri",
    "parse_bool",
    "parse_convert_mode",
    "parse_decode_mode",
    "parse_decoder_name",
    "parse_fraction",
    "parse_host_port",
    "parse_options",
    "parse_size",
    "parse_source_uri",
]

_TRUE = frozenset({"1", "true", "yes", ""})
_FALSE = frozenset({"0", "false", "no"})
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*):")


def parse_bool(value: Any) -> bool:
    """``1/0/true/false/yes/no`` (any case; a bare ``?loop`` counts as true) or a real bool."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected 1/0/true/false/yes/no, got {value!r}")


def parse_positive_int(value: Any) -> int:
    """An integer >= 1 (a bool is not one)."""
    number = 0
    if not isinstance(value, bool):
        try:
            number = value if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            number = 0
    if number < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return number


def parse_positive_float(value: Any) -> float:
    """A finite number > 0 (a bool is not one)."""
    number = math.nan
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"expected a positive number, got {value!r}")
    return number


def parse_size(value: Any) -> tuple[int, int]:
    """``"1280x720"`` (or a ``(w, h)`` pair) -> ``(1280, 720)``."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        w, h = value
    else:
        match = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", str(value))
        if not match:
            raise ValueError(f"expected WIDTHxHEIGHT such as 1280x720, got {value!r}")
        w, h = match.groups()
    size = (parse_positive_int(w), parse_positive_int(h))
    return size


def parse_decoder_name(value: Any) -> str:
    """A video decoder name (``auto``, ``software``, ``nvdec``, ``vaapi``, ``v4l2`` or a plugin's); the source
    checks it against the registered decoders (:mod:`panoflow.plugins.decoders`)."""
    text = str(value).strip().lower()
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", text):
        raise ValueError("expected a decoder name such as auto, software, nvdec, vaapi or v4l2, got "
                         f"{value!r}")
    return text


def parse_decode_mode(value: Any) -> str:
    """``all`` (every picture), ``keyframes`` (only IDR/IRAP pictures are decoded; the rest are skipped) or
    ``auto`` (keyframes only while the consumers take few frames; :mod:`panoflow.plugins.decode_budget`)."""
    text = str(value).strip().lower()
    if text not in ("all", "keyframes", "auto"):
        raise ValueError(f"expected all, keyframes or auto, got {value!r}")
    return text


def parse_convert_mode(value: Any) -> str:
    """``demand`` (BGR conversion when a consumer reads the frame's image) or ``eager`` (every decoded
    picture)."""
    text = str(value).strip().lower()
    if text not in ("demand", "eager"):
        raise ValueError(f"expected demand or eager, got {value!r}")
    return text


def parse_fraction(value: Any) -> float:
    """A number in (0, 1]."""
    number = parse_positive_float(value)
    if number > 1:
        raise ValueError(f"expected a number in (0, 1], got {value!r}")
    return number


def format_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def parse_host_port(value: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``"[::1]:0"``, ``":8080"`` (localhost) -> ``(host, port)``. Port 0 picks a free
    one."""
    match = re.fullmatch(r"\s*(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\s]*)):(?P<port>\d{1,5})\s*", str(value))
    if not match or int(match["port"]) > 65535:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8080, got {value!r}")
    host = match["v6"] or match["host"] or "127.0.0.1"
    return host, int(match["port"])


@dataclass(frozen=True)
class Option:
    """One option a source or sink accepts: how to parse a string (or a value) and how to write it back."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    help: str
    format: Callable[[Any], str] = field(default=str)


def _format_bool(value: Any) -> str:
    return "1" if value else "0"


#: The decode budget's options, shared by the file and RTSP sources (panoflow.plugins.decode_budget).
DECODE_BUDGET_OPTIONS: tuple[Option, ...] = (
    Option("decode", parse_decode_mode, "all",
           "all pictures, keyframes only (IDR/IRAP; cheaper), or auto (keyframes only while consumers take "
           "few)"),
    Option("auto_below", parse_fraction, 0.5,
           "decode=auto: keyframes only when consumers took less than this share of the decoded pictures"),
    Option("auto_window", parse_positive_float, 10.0,
           "decode=auto: seconds of consumption each decision looks at", repr),
    Option("convert", parse_convert_mode, "demand",
           "BGR conversion on demand (only frames a consumer reads) or eager (every decoded picture)"),
)

FILE_OPTIONS: Mapping[str, Option] = {
    o.name: o
    for o in (
        Option(
            "realtime",
            parse_bool,
            False,
            "pace frames at the stream's frame rate (bus policy 'latest')",
            _format_bool,
        ),
        Option(
            "loop", parse_bool, False, "restart at the end of the file (seq keeps increasing)", _format_bool
        ),
        Option("frames", parse_positive_int, None, "stop after this many frames"),
        Option("decoder", parse_decoder_name, "auto",
               "video decoder: auto (first that works here), software, nvdec, vaapi, v4l2"),
        *DECODE_BUDGET_OPTIONS,
    )
}

TESTSRC_OPTIONS: Mapping[str, Option] = {
    o.name: o
    for o in (
        Option("size", parse_size, (1280, 720), "picture size WIDTHxHEIGHT", format_size),
        Option("fps", parse_positive_float, 30.0, "frame rate", repr),
        Option("frames", parse_positive_int, None, "stop after this many frames (default: never)"),
        Option(
            "realtime",
            parse_bool,
            True,
            "pace at fps (0: as fast as possible, bus policy 'block')",
            _format_bool,
        ),
    )
}

#: Option tables of the schemes this module knows, keyed by :func:`panoflow.core.redact.uri_scheme`.
OPTION_TABLES: Mapping[str, Mapping[str, Option]] = {"file": FILE_OPTIONS, "testsrc": TESTSRC_OPTIONS}


def parse_options(raw: Mapping[str, Any], table: Mapping[str, Option], *, what: str) -> dict[str, Any]:
    """Typed options: every name in ``table`` (defaults filled in), values parsed from ``raw``.

    Raises :class:`ValueError` naming ``what``, the offending option and the valid ones. ``None`` in ``raw``
    means "use the default".
    """
    valid = ", ".join(sorted(table)) or "none"
    out = {name: opt.default for name, opt in table.items()}
    for name, value in raw.items():
        opt = table.get(name)
        if opt is None:
            raise ValueError(f"unknown option {name!r} for {what}; valid options: {valid}")
        if value is None:
            continue
        try:
            out[name] = opt.parse(value)
        except ValueError as exc:
            raise ValueError(f"option {name!r} for {what}: {exc}") from None
    return out


@dataclass(frozen=True)
class SourceURI:
    """A parsed source: ``scheme`` is the registry key (``file`` for paths and http(s) URLs), ``location``
    what PyAV opens (an absolute path or a URL without our options), ``options`` typed with defaults filled
    in."""

    scheme: str
    location: str
    options: Mapping[str, Any]
    uri: str

    @property
    def is_network(self) -> bool:
        return "://" in self.location

    def redacted(self) -> str:
        """The URI as given, safe for logs and ``Frame.stream_uri``."""
        return redact_url(self.uri)


def _query_pairs(query: str, uri: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:  # pragma: no cover - parse_qsl is lenient unless strict
        raise ValueError(f"bad query in {redact_url(uri)}: {exc}") from None


def _collect(pairs: list[tuple[str, str]], uri: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in pairs:
        if name in found:
            raise ValueError(f"option {name!r} given twice in {redact_url(uri)}")
        found[name] = value
    return found


def _absolute(path: str) -> str:
    return str(Path(os.path.expanduser(path)).absolute())


def parse_source_uri(
    uri: str, options: Mapping[str, Any] | None = None, *, table: Mapping[str, Option] | None = None
) -> SourceURI:
    """Parse ``uri`` and merge ``options`` (which win over the query). ``table`` defaults to the scheme's
    table in
    :data:`OPTION_TABLES`; pass one for a scheme this module does not know.

    For ``http(s)`` only known option names are taken from the query; the rest stay in the URL (signed URLs
    keep working). Everywhere else an unknown option is a :class:`ValueError`.
    """
    scheme = uri_scheme(uri)
    if table is None:
        if scheme not in OPTION_TABLES:
            raise ValueError(f"unsupported source scheme {scheme!r} in {redact_url(uri)}")
        table = OPTION_TABLES[scheme]
    what = f"source {redact_url(uri)}"
    match = _SCHEME.match(uri)
    raw_scheme = match["scheme"].lower() if match else ""
    if raw_scheme in ("http", "https"):
        parts = urlsplit(uri)
        pairs = _query_pairs(parts.query, uri)
        ours = _collect([(k, v) for k, v in pairs if k in table], uri)
        rest = urlencode([(k, v) for k, v in pairs if k not in table])
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
    elif scheme == "file" and raw_scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"file URI {redact_url(uri)} names host {parts.netloc!r}; use file:///absolute/path or a "
                "plain path"
            )
        ours = _collect(_query_pairs(parts.query, uri), uri)
        location = _absolute(unquote(parts.path))
    elif scheme == "file":  # plain path; a literal existing file wins over "path?query"
        path, sep, query = uri.partition("?")
        if sep and os.path.exists(uri):
            path, query = uri, ""
        ours = _collect(_query_pairs(query, uri), uri)
        location = _absolute(path)
    else:
        parts = urlsplit(uri)
        ours = _collect(_query_pairs(parts.query, uri), uri)
        location = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    merged: dict[str, Any] = {**ours, **(options or {})}
    return SourceURI(scheme, location, parse_options(merged, table, what=what), uri)


def format_source_uri(
    scheme: str, location: str, options: Mapping[str, Any], *, table: Mapping[str, Option] | None = None
) -> str:
    """The inverse of :func:`parse_source_uri`: a URI that parses back to ``location`` and ``options``.
    ``None`` values are left out; for ``file`` a path becomes ``file:///...``."""
    table = OPTION_TABLES[scheme] if table is None else table
    query = urlencode([(k, table[k].format(v)) for k, v in options.items() if v is not None])
    if scheme == "file" and "://" not in location:
        base = "file://" + quote(_absolute(location))
    elif scheme == "file":
        base = location
        if query and urlsplit(location).query:
            return f"{location}&{query}"
    else:
        base = f"{scheme}://"
    return f"{base}?{query}" if query else base
