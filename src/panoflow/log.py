"""structlog set up once, by the outermost layer (CLI or daemon).

Console output on a terminal, JSON lines otherwise (or as ``--log-format`` says). Library code only ever calls
``structlog.get_logger(__name__)`` and binds ids; it never configures logging itself.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import structlog

from panoflow.core.redact import MASK, is_secret_key, redact_value

LogFormat = Literal["auto", "console", "json"]

__all__ = ["LogFormat", "configure_logging"]


def _redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: strip credentials from every field before it is rendered (``core.redact``):
    strings, nested dicts and lists to any depth, and the whole value of a field named like a secret
    (``password=``, ``token=``). Objects of other types are rendered through ``str()`` first when that text
    holds a URL."""
    for key, value in event.items():
        if is_secret_key(key) and value not in (None, ""):
            event[key] = MASK
        elif isinstance(value, (str, dict, list, tuple, set, frozenset)):
            event[key] = redact_value(value)
        elif value is not None and not isinstance(value, (int, float, bool)):
            text = str(value)
            if "://" in text or "=" in text:
                event[key] = redact_value(text)
    return event


def configure_logging(
    fmt: LogFormat = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for this process."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    renderer: Any
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # The stdlib root logger is left alone on purpose: Panorama apps call logging.basicConfig() themselves and
    # expect it to take effect (it is a no-op once the root logger has handlers).
