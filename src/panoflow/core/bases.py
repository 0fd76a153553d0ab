"""The plugin contract's types: the base classes plugins subclass, and what the host hands them.

Hooks return these classes (see :mod:`panoflow.core.hookspecs`); the runtime instantiates and drives them.
Nothing here is called per frame through pluggy.

- :class:`MediaSource`, :class:`MediaSink`: cameras and files in, displays and recordings out;
- :class:`ModelBackend` (built from a :class:`ModelFiles`, describing its tensors with :class:`TensorInfo`):
  the one model contract the batcher drives;
- :class:`ParameterType`, :class:`CodeRunner` (run with a :class:`panoflow.core.runtime.CodeNodeContext`);
- :class:`CloudConnector`, run with a :class:`DeviceContext` (the daemon's side of the device).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:  # these modules import this one: named for type checkers only
    from panoflow.core.bus import Inbox
    from panoflow.core.frame import Frame
    from panoflow.core.runtime import CodeNodeContext

__all__ = [
    "CloudConnector",
    "CodeRunner",
    "DeviceContext",
    "Emit",
    "MediaSink",
    "MediaSource",
    "ModelBackend",
    "ModelFiles",
    "ParameterType",
    "TensorInfo",
]

#: Hands one frame to the bus. Thread-safe; may block (``block`` policy) and returns False once the run is
#: stopping.
Emit = Callable[["Frame"], bool]


class MediaSource(ABC):
    """A camera or file. One instance per stream.

    ``scheme`` is the URI scheme it serves (``file``, ``testsrc``, ``rtsp``...). ``default_policy`` is the bus
    policy used when the user gives none: ``block`` (lossless) for files, ``latest`` for live cameras.
    """

    scheme: ClassVar[str]
    default_policy: ClassVar[str] = "latest"
    #: the policy this stream asks for once its options are known (a file read in real time: ``latest``), or
    #: None for :attr:`default_policy`; the runtime reads it after construction
    policy: str | None = None

    def __init__(self, uri: str, *, stream_id: str, options: Mapping[str, str]):
        self.uri = uri
        self.stream_id = stream_id
        self.options = dict(options)

    @classmethod
    def accepts_option(cls, name: str) -> bool:
        """Whether this source understands the run-wide option ``name`` (``realtime``, ``loop``,
        ``frames``...). Run-wide options a source does not understand are not passed to it."""
        return True

    @abstractmethod
    async def run(self, emit: Emit) -> None:
        """Produce frames until the stream ends (return) or the task is cancelled.

        Blocking work (decoding) must run in a worker thread. Raise :class:`panoflow.SourceError` for failures
        that retrying cannot fix (the message must not contain credentials).
        """

    def describe(self) -> str:
        """A one-line, credential-free description for logs and status output."""
        from panoflow.core.redact import redact_url

        return redact_url(self.uri)

    def stats(self) -> Mapping[str, Any]:
        """The source's own counters, read any time from any thread. Keys ``dropped_<reason>``
        (``dropped_late``, ``dropped_queue_full``...) become
        ``panoflow_source_dropped_frames_total{reason=...}``; ``decoder`` (the video decoder in use) becomes
        ``panoflow_source_decoder_info{decoder=...}`` and, with ``decoder_reason``, ``decode`` and
        ``effective_fps``, part of the stream's status. None by default."""
        return {}


class MediaSink(ABC):
    """Where output frames go (the HDMI display, a recording, nothing...). ``name`` selects it."""

    name: ClassVar[str]

    def __init__(self, *, node_id: str, options: Mapping[str, Any]):
        self.node_id = node_id
        self.options = dict(options)

    @abstractmethod
    async def run(self, inbox: Inbox[Frame]) -> None:
        """Consume frames from ``inbox`` until it is closed and drained, then flush and return."""


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: ``shape`` holds ``None`` for a dynamic axis; ``dtype`` is a numpy dtype
    name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelFiles:
    """A model node ready to load: its ``.onnx`` file, the archive's SHA-256 (cache key), what its descriptor
    says (``framework``, ``precision`` ``FP16``/``FP32``, ``inputs`` with the compiled shapes) and a cache
    folder where a backend may keep what it builds (TensorRT engines)."""

    node_id: str
    path: Path
    digest: str
    framework: str = "ONNX"
    precision: str = "FP32"
    inputs: tuple[TensorInfo, ...] = ()
    cache_dir: Path | None = None


class ModelBackend(ABC):
    """Runs one model node's model: the one model contract (the batcher drives nothing else). ``name`` selects
    it (``--model-backend``), ``priority`` orders the automatic choice (highest available wins).

    Built as ``cls(files, options)`` with a :class:`ModelFiles` and the backend's options (``max_batch`` and
    what ``backend_options`` gives it); raise :class:`panoflow.ModelError` when the model cannot load. After
    construction it offers ``inputs`` / ``outputs`` in model order (``shape[0] is None`` marks a dynamic batch
    axis) and ``batch_limit``, the largest batch a dynamic axis accepts (``None``: no limit of its own).

    The batcher calls :meth:`run` from one thread at a time; it should release the GIL while the model runs.
    """

    name: ClassVar[str]
    priority: ClassVar[int] = 0
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    batch_limit: int | None = None

    def __init__(self, files: ModelFiles, options: Mapping[str, Any]) -> None:
        """Load ``files`` (the signature every backend is built with; this base keeps nothing)."""

    @classmethod
    def available(cls) -> tuple[bool, str]:
        """Whether this backend can work on this machine, and if not, why (shown to the user). Must not fail
        when the backend's libraries are missing: importing the plugin never imports them."""
        return True, ""

    @abstractmethod
    def run(self, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
        """Run one (possibly batched) call on arrays whose first axis is the batch; returns host (numpy)
        arrays in model output order."""

    def close(self) -> None:
        """Release sessions, engines and device memory (called once, when the application stops)."""


@dataclass(frozen=True)
class ParameterType:
    """A parameter node type (``int32``...). ``check`` returns an error message, or ``""`` when ``value``
    fits; ``convert`` turns a command-line string into a value."""

    name: str
    python_type: type
    check: Callable[[Any], str]
    convert: Callable[[str], Any]


class CodeRunner(ABC):
    """Runs the code of a business-logic node (``panoramasdk`` for Panorama apps, ``native`` for async
    ones)."""

    name: ClassVar[str]

    @abstractmethod
    async def run(self, context: CodeNodeContext) -> None:
        """Run the node's code until it returns, fails, or the task is cancelled. ``context`` holds the node's
        spec, its ports (``context.io``), the run's options and where its logs and storage live."""


class DeviceContext(Protocol):
    """What the daemon (``panoflow serve``) hands its cloud connector: the device's side of the control plane.

    ``manager`` deploys, replaces, removes and signals application instances
    (:class:`panoflow.daemon.manager.Manager`) and ``paths`` is the daemon's state directory
    (:class:`panoflow.daemon.store.StatePaths`); they are the daemon's own objects, typed ``Any`` here because
    core does not import the daemon. ``restart(env)`` stops every instance and re-executes the daemon with
    ``env`` (``None``: the current one); ``metrics_text()`` is the daemon's ``/metrics``; ``insecure_http``
    says a plain-HTTP control plane was allowed (development only). The daemon's implementation is
    :class:`panoflow.daemon.device.DeviceContext`."""

    @property
    def manager(self) -> Any: ...
    @property
    def paths(self) -> Any: ...
    @property
    def control_plane(self) -> str: ...
    @property
    def provision(self) -> Path | None: ...
    @property
    def restart(self) -> Callable[[Mapping[str, str] | None], None]: ...
    @property
    def metrics_text(self) -> Callable[[], Awaitable[str]]: ...
    @property
    def cameras_file(self) -> Path: ...
    @property
    def insecure_http(self) -> bool: ...


class CloudConnector(ABC):
    """Connects a device to a control plane (``http``: panoflow's device protocol). One runs per daemon."""

    name: ClassVar[str]

    @abstractmethod
    async def run(self, device: DeviceContext) -> None:
        """Sync desired state and report status until cancelled; return when the control plane refuses the
        device for good (the daemon keeps running its instances). Raise :class:`panoflow.CloudError` for a
        problem the user must fix (no credentials): the daemon stops with that message."""
