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
    """Runs one model node's model. ``name`` selects it (``--model-backend``), ``priority`` orders the automatic
    choice (highest available wins). Built as ``cls(files, options)`` with a
    :class:`panoflow.core.inference.ModelFiles` (the ``.onnx`` file, archive digest, descriptor framework, precision
    and inputs, a cache folder) and the backend's options (``max_batch`` and what ``backend_options`` gives it);
    raise :class:`panoflow.ModelError` when the model cannot load. After construction it must offer:

    - ``inputs`` / ``outputs``: ``tuple[TensorInfo, ...]`` in model order; ``shape[0] is None`` marks a dynamic
      batch axis;
    - ``batch_limit``: the largest batch a dynamic axis accepts (``None``: no limit of its own).

    The batcher calls :meth:`run` from one thread at a time; it should release the GIL while the model runs.
    """

    name: ClassVar[str]
    priority: ClassVar[int] = 0
    inputs: tuple[Any, ...] = ()
    outputs: tuple[Any, ...] = ()
    batch_limit: int | None = None

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this backend can work on this machine, and if not, why (shown to the user). Must not fail when
        the backend's libraries are missing: importing the plugin never imports them."""
        return True, ""

    @abstractmethod
    def run(self, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
        """Run one (possibly batched) call on arrays whose first axis is the batch; returns host (numpy) arrays
        in model output order."""

    def close(self) -> None:
        """Release sessions, engines and device memory (called once, when the application stops)."""


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
