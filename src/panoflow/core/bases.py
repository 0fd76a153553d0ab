"""Base classes that plugins subclass. Hooks return these classes; the runtime instantiates and drives them.

Hooks only register (see :mod:`panoflow.core.hookspecs`); nothing here is called per frame through pluggy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from panoflow.core.bus import Inbox
    from panoflow.core.frame import Frame

__all__ = [
    "CloudConnector",
    "CodeRunner",
    "Emit",
    "MediaSink",
    "MediaSource",
    "ModelBackend",
    "ParameterType",
]

#: Hands one frame to the bus. Thread-safe; may block (``block`` policy) and returns False once the run is stopping.
Emit = Callable[["Frame"], bool]


class MediaSource(ABC):
    """A camera or file. One instance per stream.

    ``scheme`` is the URI scheme it serves (``file``, ``testsrc``, ``rtsp``...). ``default_policy`` is the bus policy
    used when the user gives none: ``block`` (lossless) for files, ``latest`` for live cameras.
    """

    scheme: ClassVar[str]
    default_policy: ClassVar[str] = "latest"

    def __init__(self, uri: str, *, stream_id: str, options: Mapping[str, str]):
        self.uri = uri
        self.stream_id = stream_id
        self.options = dict(options)

    @classmethod
    def accepts_option(cls, name: str) -> bool:
        """Whether this source understands the run-wide option ``name`` (``realtime``, ``loop``, ``frames``...).
        Run-wide options a source does not understand are not passed to it."""
        return True

    @abstractmethod
    async def run(self, emit: Emit) -> None:
        """Produce frames until the stream ends (return) or the task is cancelled.

        Blocking work (decoding) must run in a worker thread. Raise :class:`panoflow.SourceError` for failures that
        retrying cannot fix (the message must not contain credentials).
        """

    def describe(self) -> str:
        """A one-line, credential-free description for logs and status output."""
        from panoflow.core.redact import redact_url

        return redact_url(self.uri)


class MediaSink(ABC):
    """Where output frames go (the HDMI display, a recording, nothing...). ``name`` selects it."""

    name: ClassVar[str]

    def __init__(self, *, node_id: str, options: Mapping[str, Any]):
        self.node_id = node_id
        self.options = dict(options)

    @abstractmethod
    async def run(self, inbox: Inbox[Frame]) -> None:
        """Consume frames from ``inbox`` until it is closed and drained, then flush and return."""


class ModelBackend(ABC):
    """Runs one model (the inference issue fills this in). ``name`` selects it, ``priority`` orders the automatic
    choice (highest available wins)."""

    name: ClassVar[str]
    priority: ClassVar[int] = 0

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this backend can work on this machine, and if not, why (shown to the user)."""
        return True, ""

    @abstractmethod
    def run(self, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
        """Run one (possibly batched) call; returns outputs in model order."""


@dataclass(frozen=True)
class ParameterType:
    """A parameter node type (``int32``...). ``check`` returns an error message, or ``""`` when ``value`` fits;
    ``convert`` turns a command-line string into a value."""

    name: str
    python_type: type
    check: Callable[[Any], str]
    convert: Callable[[str], Any]


class CodeRunner(ABC):
    """Runs the code of a business-logic node (``panoramasdk`` for Panorama apps, ``native`` for async ones)."""

    name: ClassVar[str]

    @abstractmethod
    async def run(self, context: Any) -> None:
        """Run the node's code until it returns, fails, or the task is cancelled."""


class CloudConnector(ABC):
    """Connects a device to a control plane (the control-plane issue fills this in)."""

    name: ClassVar[str]

    @abstractmethod
    async def run(self, device: Any) -> None:
        """Sync desired state and report status until cancelled."""


def names_of(classes: Sequence[Any], attr: str = "name") -> list[str]:
    return [getattr(c, attr) for c in classes]
