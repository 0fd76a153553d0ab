"""The one binding between this process's ``panoramasdk`` and the code node it runs.

Unmodified Panorama code calls ``panoramasdk.node()`` with no arguments, so the SDK cannot be told which node it
is: the contract is one bound :class:`~panoflow.core.ports.CodeNodeIO` per process. The panoflow runtime calls
:func:`bind` before it runs the application's code and :func:`unbind` after.
"""

from __future__ import annotations

import threading

from panoflow.core.ports import CodeNodeIO

__all__ = ["bind", "current", "unbind"]

UNBOUND_MESSAGE = (
    "panoramasdk.node() needs the panoflow runtime: run this application with `panoflow run APP_DIR`"
)

_lock = threading.Lock()
_current: CodeNodeIO | None = None


def bind(io: CodeNodeIO) -> None:
    """Make ``io`` the node that ``panoramasdk.node()`` returns. Rebinding the same object is a no-op; binding
    another one while bound raises RuntimeError (call :func:`unbind` first)."""
    global _current
    with _lock:
        if _current is not None and _current is not io:
            raise RuntimeError(
                f"panoramasdk is already bound to node {_current.node_id!r}; unbind() before binding {io.node_id!r}"
            )
        _current = io


def unbind() -> None:
    """Forget the bound node (idempotent)."""
    global _current
    with _lock:
        _current = None


def current() -> CodeNodeIO:
    """The bound node; RuntimeError with instructions when the code runs outside panoflow."""
    io = _current
    if io is None:
        raise RuntimeError(UNBOUND_MESSAGE)
    return io
