"""Model nodes at run time: the backend protocol, dynamic batching, and the per-application set of models.

``node.call(inputs, "model_node")`` ends up in :meth:`ModelSet.call`. Each model node has one
:class:`~panoflow.core.batching.Batcher` (in :mod:`panoflow.core.batching`): requests from any number of
threads (streams, code nodes, applications in one process) are batched and run by one worker thread.

Nothing here imports an ML library: backends (``onnxruntime``, ``tensorrt``) are plugins, subclasses of
:class:`~panoflow.core.bases.ModelBackend` built from a :class:`~panoflow.core.bases.ModelFiles` (both defined
in
:mod:`panoflow.core.bases`, the plugin contract, and re-exported here). What turns a model package into
:class:`ModelFiles` is a :class:`ModelResolver` the runtime is handed (``RunOptions.models``):
:class:`panoflow.modelstore.ModelStore`, which core never imports.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import numpy as np
import structlog

from panoflow.core.bases import ModelBackend, ModelFiles, TensorInfo
from panoflow.core.batching import Batcher
from panoflow.exceptions import ModelError

if TYPE_CHECKING:
    from panoflow.core.graph import ModelSpec

__all__ = [
    "InferenceSettings",
    "InferenceTimeout",
    "LoadedModel",
    "ModelFiles",
    "ModelPool",
    "ModelResolver",
    "ModelSet",
    "TensorInfo",
    "choose_backend",
    "split_backend",
]

log = structlog.get_logger(__name__)


class ModelResolver(Protocol):
    """Turns a model node into files a backend can load: what the runtime is handed as ``RunOptions.models``
    (:class:`panoflow.modelstore.ModelStore` verifies, extracts and if need be compiles a Panorama model
    package)."""

    def prepare(self, spec: ModelSpec) -> ModelFiles:
        """The files of model node ``spec``; raises :class:`panoflow.ModelError` naming the node when it
        cannot."""
        ...


class InferenceTimeout(ModelError, TimeoutError):
    """``node.call(..., time_out=S)`` got no result within ``S`` seconds."""


#: the model contract the batcher drives is :class:`~panoflow.core.bases.ModelBackend` (one contract, not
#: two); this name stays for code that typed a loaded model with it
LoadedModel = ModelBackend


@dataclass(frozen=True)
class InferenceSettings:
    """How models run. ``max_batch`` caps a dynamic batch axis, ``max_wait_ms`` is how long the batcher waits
    for more requests after the first one. ``backend`` picks one backend for every model node,
    ``node_backends`` one per node (``{"model_node": "tensorrt"}``), otherwise the best available wins.
    ``backend_options`` maps a backend name to its options
    (``{"onnxruntime": {"intra_op_num_threads": 2}}``)."""

    max_batch: int = 16
    max_wait_ms: float = 2.0
    backend: str | None = None
    node_backends: Mapping[str, str] = field(default_factory=dict)
    backend_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@functools.cache
def _availability(cls: type[ModelBackend]) -> tuple[bool, str]:
    ok, why = cls.available()
    if not ok:
        log.info("model_backend_unavailable", backend=cls.name, reason=why)
    return bool(ok), str(why)


def choose_backend(node_id: str, backends: Mapping[str, type[ModelBackend]],
                   wanted: str | None = None) -> type[ModelBackend]:
    """The backend class for ``node_id``: ``wanted`` when given (it must be installed and work here), else the
    available one with the highest ``priority``. Raises :class:`ModelError` saying why none fits."""
    if wanted:
        cls = backends.get(wanted)
        if cls is None:
            known = ", ".join(sorted(backends)) or "none"
            raise ModelError(f"no model backend named {wanted!r} is installed (installed: {known})",
                             node_id=node_id)
        ok, why = _availability(cls)
        if not ok:
            raise ModelError(f"model backend {wanted!r} cannot run here: {why}", node_id=node_id)
        return cls
    ranked = sorted(backends.values(), key=lambda c: (-int(getattr(c, "priority", 0)), c.name))
    reasons = []
    for cls in ranked:
        ok, why = _availability(cls)
        if ok:
            return cls
        reasons.append(f"{cls.name}: {why}")
    detail = "; ".join(reasons) if reasons else "no model backend plugin is installed"
    raise ModelError(f"no model backend can run this model ({detail})", node_id=node_id)


async def _await_future(future: Future[Any]) -> Any:
    """Await a worker's future: on asyncio without a thread (the worker wakes the loop), elsewhere in one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
    return await asyncio.wrap_future(future)


class ModelPool:
    """Batchers shared between model sets: applications in one process whose model nodes run the same model
    (same archive digest, backend and settings) get one batcher, so their requests are batched together. Give
    every
    :meth:`ModelSet.open` the same pool; without one, each set has batchers of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: dict[tuple[Any, ...], tuple[Batcher, int]] = {}  # key -> (batcher, users)

    def get(self, key: tuple[Any, ...], make: Callable[[], Batcher]) -> Batcher:
        with self._lock:
            batcher, users = self._shared.get(key) or (make(), 0)
            self._shared[key] = (batcher, users + 1)
            return batcher

    def release(self, batcher: Batcher) -> None:
        """One user fewer; the last one closes the batcher."""
        with self._lock:
            key = next((k for k, (b, _) in self._shared.items() if b is batcher), None)
            if key is not None:
                users = self._shared[key][1] - 1
                if users:
                    self._shared[key] = (batcher, users)
                    return
                del self._shared[key]
        batcher.close()


class ModelSet:
    """The model nodes of one application: ``call`` by graph node name."""

    def __init__(self, batchers: Mapping[str, Batcher], pool: ModelPool | None = None):
        self._batchers = dict(batchers)
        self._pool = pool
        self._closed = False

    @classmethod
    def open(cls, models: Mapping[str, ModelFiles], backends: Mapping[str, type[ModelBackend]],
             settings: InferenceSettings | None = None, pool: ModelPool | None = None) -> ModelSet:
        """Load every model with its backend (see :func:`choose_backend`) and start its batcher (or share the
        ``pool``'s one for the same model)."""
        settings = settings or InferenceSettings()
        opened = cls({}, pool)
        try:
            for node_id, files in models.items():
                opened._batchers[node_id] = _open_one(node_id, files, backends, settings, pool)
        except BaseException:
            opened.close()
            raise
        return opened

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._batchers)

    def __getitem__(self, name: str) -> Batcher:
        batcher = self._batchers.get(name)
        if batcher is None:
            known = ", ".join(sorted(self._batchers)) or "none"
            raise KeyError(f"no model node named {name!r} (model nodes: {known})")
        if self._closed:
            raise ModelError("the model is closed (the application is stopping)", node_id=name)
        return batcher

    def call(self, name: str, inputs: Any, time_out: float | None = None) -> tuple[np.ndarray, ...]:
        """Run model node ``name`` on ``inputs`` (dict of input name to array, or one array); blocks this
        thread only. Returns one array per model output, in model order, each with its batch axis."""
        future = self[name].submit(inputs, inline=time_out is None)
        try:
            return future.result(time_out)
        except FutureTimeout:
            if future.done():
                return future.result()
            future.cancel()
            raise InferenceTimeout(f"no result within {time_out} s", node_id=name) from None

    async def acall(self, name: str, inputs: Any, time_out: float | None = None) -> tuple[np.ndarray, ...]:
        """:meth:`call` for async code: awaits without holding a thread, so one task can keep many in
        flight."""
        future = self[name].submit(inputs)
        try:
            with anyio.fail_after(time_out) if time_out is not None else nullcontext():
                result: tuple[np.ndarray, ...] = await _await_future(future)
                return result
        except TimeoutError:
            future.cancel()
            raise InferenceTimeout(f"no result within {time_out} s", node_id=name) from None

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: b.stats() for name, b in self._batchers.items()}

    def health(self) -> dict[str, dict[str, Any]]:
        """What the backends that watch a server say about it (a remote backend's ``status()``: ``up``,
        ``endpoint``, ``requests``, ``errors`` by code, ``last_error``), by model node; nodes whose backend
        has none are left out."""
        return {name: dict(status()) for name, b in self._batchers.items()
                if callable(status := getattr(b.model, "status", None))}

    def metric_families(self) -> list[Any]:
        """Metric families the backends keep themselves (a remote backend's latency histogram and errors),
        from each backend that has a ``metric_families(node_id)`` method."""
        merged: dict[str, Any] = {}  # one family per metric name, samples of every node
        for name, batcher in self._batchers.items():
            own = getattr(batcher.model, "metric_families", None)
            for family in own(name) if callable(own) else ():
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        return list(merged.values())

    def close(self) -> None:
        """Finish what is queued and release every model (idempotent); later calls raise ModelError."""
        if self._closed:
            return
        self._closed = True
        for batcher in self._batchers.values():
            if self._pool is not None:
                self._pool.release(batcher)
            else:
                batcher.close()


def split_backend(wanted: str | None) -> tuple[str | None, str | None]:
    """A ``--model-backend`` value as (backend name, endpoint URI): ``onnxruntime`` -> (``onnxruntime``,
    None); a remote one, ``kserve+grpc://host:8001/model`` -> (``kserve``, the whole URI, which the backend
    gets as its ``uri`` option)."""
    if not wanted or "://" not in wanted:
        return wanted, None
    return wanted.split("://", 1)[0].split("+", 1)[0], wanted


def _open_one(node_id: str, files: ModelFiles, backends: Mapping[str, type[ModelBackend]],
              settings: InferenceSettings, pool: ModelPool | None) -> Batcher:
    wanted, uri = split_backend(settings.node_backends.get(node_id) or settings.backend)
    cls = choose_backend(node_id, backends, wanted)
    options = {"max_batch": settings.max_batch, **settings.backend_options.get(cls.name, {}),
               **({"uri": uri} if uri else {})}
    if pool is None:
        return _load(node_id, files, cls, options, settings, wanted)
    key = (files.digest, files.precision, files.inputs, cls.name, repr(sorted(options.items())),
           settings.max_batch, settings.max_wait_ms)
    return pool.get(key, lambda: _load(node_id, files, cls, options, settings, wanted))


def _load(node_id: str, files: ModelFiles, cls: type[ModelBackend], options: dict[str, Any],
          settings: InferenceSettings, wanted: str | None) -> Batcher:
    t0 = time.perf_counter()
    try:
        model = cls(files, options)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"backend {cls.name} could not load {files.path.name}: {type(exc).__name__}: {exc}",
                         node_id=node_id) from exc
    aliases, fill = _descriptor_binding(node_id, files, model)
    batcher = Batcher(node_id, model, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms,
                      aliases=aliases, fill=fill)
    log.info("model_loaded", node_id=node_id, backend=cls.name,
             reason="explicit" if wanted else "best available",
             model=files.path.name, digest=files.digest[:12], batch_limit=batcher.limit,
             seconds=round(time.perf_counter() - t0, 3))
    return batcher


def _descriptor_binding(node_id: str, files: ModelFiles, model: ModelBackend
                        ) -> tuple[dict[str, str], dict[str, tuple[int | None, ...]]]:
    """Descriptor input names that differ from the model's (matched by position), and the compiled shapes that
    fill the model's dynamic axes. Static axes that disagree with the descriptor fail here, at start-up."""
    declared = files.inputs
    names = [t.name for t in model.inputs]
    if not declared:
        return {}, {}
    aliases: dict[str, str] = {}
    if {t.name for t in declared} != set(names):
        if len(declared) != len(names):
            raise ModelError(f"the descriptor declares inputs {[t.name for t in declared]}, the model has "
                             f"{names}",
                             node_id=node_id)
        aliases = {d.name: m for d, m in zip(declared, names) if d.name != m}
        log.warning("model_inputs_renamed", node_id=node_id, aliases=aliases)
    fill: dict[str, tuple[int | None, ...]] = {}
    for spec in declared:
        name = aliases.get(spec.name, spec.name)
        actual = next(t for t in model.inputs if t.name == name)
        if len(spec.shape) != len(actual.shape) or any(
                m is not None and d is not None and m != d for m, d in zip(actual.shape[1:], spec.shape[1:])):
            raise ModelError(f"input {spec.name!r}: the descriptor says shape {list(spec.shape)}, the model "
                             f"file has {['N' if d is None else d for d in actual.shape]}", node_id=node_id)
        fill[name] = spec.shape
    return aliases, fill
