"""The ``native`` code runner: business logic written as one ``async def main(node)`` on panoflow's event
loop.

A code package opts in through its runtime descriptor,
``{"entry": {"path": "native", "name": "/panorama/app.py"}}`` (``"name": "/panorama/app.py:run"`` names
another coroutine function). Unlike Panorama code, which blocks a thread per ``node.call``, a native node
awaits inference (:meth:`NativeNode.call`), so one node can keep many requests in flight and the batcher
combines them. Its code runs on the event loop: blocking work belongs in ``anyio.to_thread.run_sync``. See
docs/inference.md and examples/native_counter.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog

from panoflow.core.bases import CodeRunner
from panoflow.core.frame import DeferredImage, Frame, Label, Rect
from panoflow.core.hookspecs import hookimpl
from panoflow.core.ports import MediaInput, MediaOutput, ParameterInput, StreamsExhausted
from panoflow.exceptions import NodeError

__all__ = ["NativeNode", "NativeRunner", "with_label", "with_rect"]

log = structlog.get_logger(__name__)


def _convert(frames: list[Frame]) -> None:
    for frame in frames:
        _ = frame.image


def with_label(frame: Frame, text: str, x: float, y: float) -> Frame:
    """``frame`` with a text label at (x, y) in [0, 1] (the image is shared, not copied)."""
    return frame.replace(overlays=(*frame.overlays, Label(text, x, y)))


def with_rect(frame: Frame, left: float, top: float, right: float, bottom: float) -> Frame:
    """``frame`` with a rectangle (corners in [0, 1])."""
    return frame.replace(overlays=(*frame.overlays, Rect(left, top, right, bottom)))


class NativeNode:
    """What ``main(node)`` gets: the node's ports, parameters, model calls and folders.

    ``inputs``/``outputs`` are the runtime's port objects (``await inputs["video_in"].aget()``,
    ``await outputs["video_out"].aput(frames)``); :meth:`frames` iterates a media input until its streams end.
    """

    def __init__(self, context: Any):
        io = context.io
        self.node_id: str = io.node_id
        self.inputs: Mapping[str, MediaInput | ParameterInput] = io.inputs
        self.outputs: Mapping[str, MediaOutput] = io.outputs
        self.storage_dir: Path = Path(context.storage_dir)  # /opt/aws/panorama/storage inside the sandbox
        self.logs_dir: Path = Path(context.logs_dir)
        self.log = structlog.get_logger("panoflow.native").bind(node_id=self.node_id)
        self._io = io

    @property
    def stopping(self) -> bool:
        """True once the runtime wants the node to stop."""
        return bool(self._io.stop_event.is_set())

    def param(self, name: str) -> Any:
        """The value of parameter input ``name``."""
        port = self.inputs.get(name)
        if not isinstance(port, ParameterInput):
            known = ", ".join(sorted(k for k, v in self.inputs.items() if isinstance(v, ParameterInput)))
            raise KeyError(f"no parameter input named {name!r} (parameters: {known or 'none'})")
        return port.value

    async def frames(self, port: str = "video_in") -> AsyncIterator[list[Frame]]:
        """Each new set of frames of media input ``port`` (one per stream, cached ones flagged), until the
        streams end or the runtime stops."""
        source = self.inputs[port]
        if not isinstance(source, MediaInput):
            raise TypeError(f"input {port!r} of node {self.node_id!r} is not a media input")
        while True:
            try:
                batch = await source.aget()
            except StreamsExhausted:
                return
            # pictures a source left to convert on demand are converted in a worker thread, not on the loop
            pending = [f for f in batch if isinstance(f.pixels, DeferredImage) and not f.pixels.converted]
            if pending:
                await anyio.to_thread.run_sync(_convert, pending)
            yield batch

    async def call(self, first: Any, second: Any, time_out: float | None = None) -> tuple[Any, ...]:
        """``await node.call({"data": x}, "model_node")`` (or ``call("model_node", {...})``, as in Panorama
        both orders work): run the model node without blocking the event loop; returns a tuple of arrays in
        output order. Concurrent calls (from tasks of this node or any other) are batched together. Raises
        KeyError for an unknown model node, :class:`panoflow.ModelError` for inputs that do not fit,
        TimeoutError after ``time_out`` seconds."""
        name, inputs = (first, second) if isinstance(first, str) else (second, first)
        if not isinstance(name, str):
            raise TypeError("call() needs the model node name (a str), e.g. await node.call({'data': x}, "
                            "'model')")
        acall = getattr(self._io, "acall", None)
        if acall is not None:
            result: tuple[Any, ...] = await acall(name, inputs, time_out)
            return result
        return await anyio.to_thread.run_sync(self._io.call, name, inputs, time_out)

    async def put(self, frames: list[Frame], port: str = "video_out") -> None:
        """Send ``frames`` to output ``port``."""
        await self.outputs[port].aput(frames)


def _load_main(entry: str, node_id: str) -> Any:
    path, _, func = entry.partition(":")
    func = func or "main"
    if not os.path.isfile(path):
        raise NodeError(f"entry script {path} not found in the code package", node_id=node_id)
    spec = importlib.util.spec_from_file_location(f"panoflow_native_{node_id}", path)
    if spec is None or spec.loader is None:
        raise NodeError(f"cannot load {path} as a Python module", node_id=node_id)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise NodeError(f"importing {path} raised {type(exc).__name__}: {exc}", node_id=node_id) from exc
    main = getattr(module, func, None)
    if not inspect.iscoroutinefunction(main):
        raise NodeError(f"{path} must define 'async def {func}(node)' for a native node", node_id=node_id)
    return main


class NativeRunner(CodeRunner):
    """Runs ``main(node)`` as a task of the runtime's task group."""

    name = "native"

    async def run(self, context: Any) -> None:
        spec = context.spec
        if spec.runtime is None:
            raise NodeError("code package has no runtimeDescriptor (descriptor.json)", node_id=spec.node_id)
        for key, value in {**dict(spec.runtime.environment), **context.options.environment}.items():
            os.environ[key] = value
        # A native node is trusted code in panoflow's own process: its files are staged like an app's, and its
        # entry (a container path such as /panorama/node.py) is read from the staged folder.
        from panoflow.codefs import stage_code

        staged = await anyio.to_thread.run_sync(
            lambda: stage_code(spec.package.directory, context.options.state_dir / "code" / spec.node_id,
                               node_id=spec.node_id))
        path, sep, func = spec.runtime.entry_name.partition(":")
        in_package = staged.host_path(path)
        main = _load_main((str(in_package) if in_package.is_file() else path) + sep + func, spec.node_id)
        for folder in (context.storage_dir, context.logs_dir):
            Path(folder).mkdir(parents=True, exist_ok=True)
        context.io.ready.set()
        node = NativeNode(context)
        log.info("native_node_started", node_id=spec.node_id, entry=spec.runtime.entry_name)
        try:
            await main(node)
            log.info("native_node_returned", node_id=spec.node_id)
        except BaseException as exc:
            if _only_exhausted(exc):
                log.info("native_node_inputs_ended", node_id=spec.node_id)
                return
            if isinstance(exc, NodeError) or not isinstance(exc, Exception):  # cancellation and the like
                raise
            log.exception("native_node_failed", node_id=spec.node_id, error=str(exc))
            first = _first_leaf(exc)
            raise NodeError(f"native node raised {type(first).__name__}: {first}",
                            node_id=spec.node_id) from exc


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real exception inside (nested) exception groups: what the user needs to read."""
    while getattr(exc, "exceptions", None):
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    return exc


def _only_exhausted(exc: BaseException) -> bool:
    """True for StreamsExhausted, also when task groups wrapped it (alone) in exception groups."""
    if isinstance(exc, StreamsExhausted):
        return True
    inner: tuple[BaseException, ...] = tuple(getattr(exc, "exceptions", None) or ())
    return bool(inner) and all(_only_exhausted(e) for e in inner)


@hookimpl
def panoflow_code_runners() -> list[type[CodeRunner]]:
    return [NativeRunner]
