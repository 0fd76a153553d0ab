"""Model nodes at run time: the backend protocol, dynamic batching, and the per-application set of models.

``node.call(inputs, "model_node")`` ends up in :meth:`ModelSet.call`. Each model node has one :class:`Batcher`:
requests from any number of threads (streams, code nodes, applications in one process) queue up; one worker thread
takes up to the model's batch limit of compatible requests, or whatever has arrived ``max_wait_ms`` after the first
one, concatenates them along axis 0, runs the backend once and hands each caller its own slice of every output.

Nothing here imports an ML library: backends (``onnxruntime``, ``tensorrt``) are plugins that load a
:class:`ModelFiles` into a :class:`LoadedModel`; :mod:`panoflow.modelstore` turns a model package into
:class:`ModelFiles`.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import anyio
import numpy as np
import structlog

from panoflow.core.bases import ModelBackend
from panoflow.exceptions import ModelError

__all__ = [
    "Batcher",
    "InferenceSettings",
    "InferenceTimeout",
    "LoadedModel",
    "ModelFiles",
    "ModelPool",
    "ModelSet",
    "TensorInfo",
    "choose_backend",
]

log = structlog.get_logger(__name__)


#: how long the batcher remembers the most requests it saw in flight at once (what it waits to gather)
PEAK_WINDOW_S = 1.0


class InferenceTimeout(ModelError, TimeoutError):
    """``node.call(..., time_out=S)`` got no result within ``S`` seconds."""


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: ``shape`` holds ``None`` for a dynamic axis; ``dtype`` is a numpy dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelFiles:
    """A model node ready to load: its ``.onnx`` file, the archive's SHA-256 (cache key), what its descriptor says
    (``framework``, ``precision`` ``FP16``/``FP32``, ``inputs`` with the compiled shapes) and a cache folder where
    a backend may keep what it builds (TensorRT engines)."""

    node_id: str
    path: Path
    digest: str
    framework: str = "ONNX"
    precision: str = "FP32"
    inputs: tuple[TensorInfo, ...] = ()
    cache_dir: Path | None = None


@runtime_checkable
class LoadedModel(Protocol):
    """What a model backend instance offers the batcher (``ModelBackend`` subclasses built as
    ``cls(files, options)``). ``inputs``/``outputs`` in model order; an input's ``shape[0]`` is ``None`` for a
    dynamic batch axis. ``batch_limit`` caps a dynamic batch (``None``: no limit of the backend's own)."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    batch_limit: int | None

    def run(self, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
        """Run once on arrays whose first axis is the batch; return host (numpy) arrays in output order."""

    def close(self) -> None:
        """Release what the model holds (sessions, engines, device memory)."""


@dataclass(frozen=True)
class InferenceSettings:
    """How models run. ``max_batch`` caps a dynamic batch axis, ``max_wait_ms`` is how long the batcher waits for
    more requests after the first one. ``backend`` picks one backend for every model node, ``node_backends`` one
    per node (``{"model_node": "tensorrt"}``), otherwise the best available wins. ``backend_options`` maps a
    backend name to its options (``{"onnxruntime": {"intra_op_num_threads": 2}}``)."""

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
            raise ModelError(f"no model backend named {wanted!r} is installed (installed: {known})", node_id=node_id)
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


@dataclass
class _Request:
    arrays: dict[str, np.ndarray]
    n: int
    key: tuple[Any, ...]
    future: Future[tuple[np.ndarray, ...]]
    t_submit: float


class Batcher:
    """Dynamic batching for one loaded model: thread-safe :meth:`submit`, one worker thread that runs batches."""

    def __init__(self, node_id: str, model: LoadedModel, *, max_batch: int = 16, max_wait_ms: float = 2.0,
                 aliases: Mapping[str, str] | None = None, fill: Mapping[str, tuple[int | None, ...]] | None = None):
        self.node_id = node_id
        self.model = model
        self.log = log.bind(node_id=node_id)
        self.max_wait = max(0.0, max_wait_ms) / 1e3
        batch_dims = {t.shape[0] if t.shape else None for t in model.inputs}
        fixed = [d for d in batch_dims if d is not None]
        self.fixed_batch: int | None = fixed[0] if fixed and len(batch_dims) == 1 else None
        if self.fixed_batch is not None:
            self.limit = self.fixed_batch
        elif fixed:  # inputs disagree on their batch axis: never combine requests
            self.limit = 1
        else:
            self.limit = max(1, min(max_batch, model.batch_limit or max_batch))
        self._aliases = dict(aliases or {})
        self._expected = {t.name: _merge_shape(t.shape, (fill or {}).get(t.name)) for t in model.inputs}
        self._dtypes = {t.name: np.dtype(t.dtype) for t in model.inputs}
        self._max_rows = self.fixed_batch or 1 << 62
        self._splittable = True
        self._queue: list[_Request] = []
        self._cond = threading.Condition()
        self._closed = False
        self._running = False  # a batch is being gathered or run (by the worker, or inline by a caller)
        self._queued = 0  # items waiting in the queue
        # how many items were in flight at once lately: a batch waits for that many, not for the full limit
        self._inflight = 0
        self._peak, self._peak_t = 1, 0.0
        self.calls = self.batches = self.items = 0
        self.run_seconds = 0.0  # time spent in the backend's run(), summed over batches
        self._thread = threading.Thread(target=self._work, name=f"model:{node_id}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ callers
    def submit(self, inputs: Any, *, inline: bool = False) -> Future[tuple[np.ndarray, ...]]:
        """Queue one request (its own batch of one or more items); the future holds the outputs.

        ``inline``: when nothing else is queued, running or was in flight lately (one stream calling in a loop),
        run the model on the calling thread and return a completed future, sparing two thread switches."""
        arrays = self._check(inputs)
        n = next(iter(arrays.values())).shape[0]
        key = tuple((k, a.shape[1:], a.dtype.str, type(a)) for k, a in arrays.items())
        future: Future[tuple[np.ndarray, ...]] = Future()
        request = _Request(arrays, n, key, future, time.monotonic())
        future.add_done_callback(functools.partial(self._finished, n))
        with self._cond:
            if self._closed:
                raise ModelError("the model is closed (the application is stopping)", node_id=self.node_id)
            self.calls += 1
            self._inflight += n
            if self._inflight >= self._peak or request.t_submit - self._peak_t > PEAK_WINDOW_S:
                self._peak, self._peak_t = self._inflight, request.t_submit
            inline = inline and not self._queue and not self._running and self._peak == n
            if inline:
                self._running = True
            else:
                self._queue.append(request)
                self._queued += n
                # wake the worker for a first request or a full batch; between the two it waits on its own deadline
                if len(self._queue) == 1 or self._queued >= min(self.limit, self._peak):
                    self._cond.notify()
        if inline:
            future.set_running_or_notify_cancel()
            self._run([request])
            self._idle()
        return future

    def _idle(self) -> None:
        with self._cond:
            self._running = False
            if self._queue or self._closed:
                self._cond.notify_all()

    def _finished(self, n: int, _future: Future[Any]) -> None:
        with self._cond:
            self._inflight -= n

    def _check(self, inputs: Any) -> dict[str, np.ndarray]:
        names = list(self._expected)
        if not isinstance(inputs, Mapping):
            if len(names) != 1:
                raise ModelError(f"the model takes {len(names)} inputs ({', '.join(names)}): pass a dict of "
                                 "input name to array", node_id=self.node_id)
            inputs = {names[0]: inputs}
        if self._aliases or inputs.keys() != self._expected.keys():
            given = {self._aliases.get(str(k), str(k)): v for k, v in inputs.items()}
        else:
            given = inputs
        missing = [n for n in names if n not in given]
        extra = sorted(set(given) - set(names))
        if missing or extra:
            raise ModelError(f"inputs {sorted(map(str, inputs))} do not match the model's inputs {names}"
                             + (f" (missing {missing})" if missing else "")
                             + (f" (unknown {extra})" if extra else ""), node_id=self.node_id)
        arrays: dict[str, np.ndarray] = {}
        batch: int | None = None
        for name in names:
            arrays[name] = array = self._conform(name, given[name])
            if batch is not None and array.shape[0] != batch:
                raise ModelError(f"input {name!r} has batch {array.shape[0]} but another input has {batch}",
                                 node_id=self.node_id)
            batch = array.shape[0]
        return arrays

    def _conform(self, name: str, value: Any) -> np.ndarray:
        want, dtype = self._expected[name], self._dtypes[name]
        if type(value) is np.ndarray and value.dtype == dtype and value.shape[1:] == want[1:] \
                and 0 < value.shape[0] <= self._max_rows:
            return value  # the usual case, checked in one comparison
        # GPU arrays (CuPy, anything with __cuda_array_interface__) pass through for GPU backends to use in place
        array = value if hasattr(value, "__cuda_array_interface__") else np.asarray(value)
        shown = "[" + ",".join("N" if d is None else str(d) for d in want) + "]"
        ok = array.ndim == len(want) and array.ndim > 0 and 0 < array.shape[0] <= self._max_rows \
            and all(d is None or d == s for d, s in zip(want[1:], array.shape[1:]))
        if not ok:
            raise ModelError(f"input {name!r} has shape {list(array.shape)}, the model expects {shown}",
                             node_id=self.node_id)
        if array.dtype != dtype:
            if not np.can_cast(array.dtype, dtype, "same_kind"):
                raise ModelError(f"input {name!r} is {array.dtype}, the model expects {dtype} {shown}",
                                 node_id=self.node_id)
            array = array.astype(dtype)
        return array

    # ------------------------------------------------------------------ worker
    def _take(self) -> list[_Request] | None:
        """The next batch: compatible requests in arrival order, up to the limit or the first one's deadline."""
        with self._cond:
            while not self._queue or self._running:
                if self._closed and not self._queue:
                    return None
                self._cond.wait()
            self._running = True
            first = self._queue.pop(0)
            self._queued -= first.n
            batch, total, scanned = [first], first.n, 0
            deadline = first.t_submit + self.max_wait
            while total < self.limit:
                keep = self._queue[:scanned]
                for req in self._queue[scanned:]:
                    if req.future.cancelled():
                        continue
                    if req.key == first.key and total + req.n <= self.limit:
                        batch.append(req)
                        total += req.n
                    else:
                        keep.append(req)
                self._queue[:] = keep
                self._queued = sum(r.n for r in keep)
                scanned = len(keep)
                remaining = deadline - time.monotonic()
                if total >= min(self.limit, self._peak) or self._closed:
                    break
                if remaining <= 0:  # fewer callers than lately: expect only as many as came
                    self._peak, self._peak_t = max(1, total), time.monotonic()
                    break
                self._cond.wait(remaining)
        return [r for r in batch if r.future.set_running_or_notify_cancel()]

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if batch:
                self._run(batch)
            self._idle()

    def _run(self, batch: list[_Request]) -> None:
        try:
            if len(batch) > 1 and not self._splittable:
                for req in batch:
                    self._run([req])
                return
            total = sum(r.n for r in batch)
            pad = (self.fixed_batch - total) if self.fixed_batch else 0
            feeds = {name: _stack([r.arrays[name] for r in batch], pad) for name in self._expected}
            t_run = time.perf_counter()
            outputs = tuple(self.model.run(feeds))
            self.run_seconds += time.perf_counter() - t_run
            self.batches += 1
            self.items += total
            if len(batch) == 1 and pad == 0:
                batch[0].future.set_result(outputs)
                return
            if not all(o.ndim > 0 and o.shape[0] == total + pad for o in outputs):
                self._splittable = False
                self.log.warning("model_outputs_not_batched", shapes=[list(o.shape) for o in outputs])
                for req in batch:
                    self._run([req])
                return
            start = 0
            for req in batch:
                req.future.set_result(tuple(o[start:start + req.n] for o in outputs))
                start += req.n
        except Exception as exc:  # the model failed: every caller in the batch learns why
            error = exc if isinstance(exc, ModelError) else ModelError(
                f"inference failed: {type(exc).__name__}: {exc}", node_id=self.node_id)
            self.log.error("model_run_failed", error=str(exc), requests=len(batch))
            for req in batch:
                if not req.future.done():
                    req.future.set_exception(error)

    def close(self, timeout: float = 5.0) -> None:
        """Finish the queued requests, stop the worker and close the model. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        self.model.close()

    def stats(self) -> dict[str, Any]:
        return {"calls": self.calls, "batches": self.batches, "items": self.items,
                "run_seconds": round(self.run_seconds, 6),
                "mean_batch": round(self.items / self.batches, 2) if self.batches else 0.0,
                "queued": len(self._queue), "limit": self.limit}


def _merge_shape(model: tuple[int | None, ...], descriptor: tuple[int | None, ...] | None) -> tuple[int | None, ...]:
    """The model's shape with its dynamic non-batch axes fixed to the descriptor's compiled shape."""
    if not descriptor or len(descriptor) != len(model):
        return model
    return (model[0], *(m if m is not None else d for m, d in zip(model[1:], descriptor[1:])))


def _array_module(array: Any) -> Any:
    """numpy, or the module of a GPU array (cupy), without importing the latter."""
    if isinstance(array, np.ndarray):
        return np
    return sys.modules.get(type(array).__module__.partition(".")[0], np)


def _stack(arrays: list[np.ndarray], pad: int) -> np.ndarray:
    if len(arrays) == 1 and pad == 0:
        return arrays[0]
    xp = _array_module(arrays[0])
    if pad:
        arrays = [*arrays, xp.zeros((pad, *arrays[0].shape[1:]), arrays[0].dtype)]
    return xp.concatenate(arrays, axis=0)


async def _await_future(future: Future[Any]) -> Any:
    """Await a worker's future: on asyncio without a thread (the worker wakes the loop), elsewhere in one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
    return await asyncio.wrap_future(future)


class ModelPool:
    """Batchers shared between model sets: applications in one process whose model nodes run the same model (same
    archive digest, backend and settings) get one batcher, so their requests are batched together. Give every
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
        """Run model node ``name`` on ``inputs`` (dict of input name to array, or one array); blocks this thread
        only. Returns one array per model output, in model order, each with its batch axis."""
        future = self[name].submit(inputs, inline=time_out is None)
        try:
            return future.result(time_out)
        except FutureTimeout:
            if future.done():
                return future.result()
            future.cancel()
            raise InferenceTimeout(f"no result within {time_out} s", node_id=name) from None

    async def acall(self, name: str, inputs: Any, time_out: float | None = None) -> tuple[np.ndarray, ...]:
        """:meth:`call` for async code: awaits without holding a thread, so one task can keep many in flight."""
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


def _open_one(node_id: str, files: ModelFiles, backends: Mapping[str, type[ModelBackend]],
              settings: InferenceSettings, pool: ModelPool | None) -> Batcher:
    wanted = settings.node_backends.get(node_id) or settings.backend
    cls = choose_backend(node_id, backends, wanted)
    options = {"max_batch": settings.max_batch, **settings.backend_options.get(cls.name, {})}
    if pool is None:
        return _load(node_id, files, cls, options, settings, wanted)
    key = (files.digest, files.precision, files.inputs, cls.name, repr(sorted(options.items())),
           settings.max_batch, settings.max_wait_ms)
    return pool.get(key, lambda: _load(node_id, files, cls, options, settings, wanted))


def _load(node_id: str, files: ModelFiles, cls: type[ModelBackend], options: dict[str, Any],
          settings: InferenceSettings, wanted: str | None) -> Batcher:
    t0 = time.perf_counter()
    try:
        factory: Any = cls  # backends are built as cls(files, options): see LoadedModel
        model: LoadedModel = factory(files, options)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"backend {cls.name} could not load {files.path.name}: {type(exc).__name__}: {exc}",
                         node_id=node_id) from exc
    aliases, fill = _descriptor_binding(node_id, files, model)
    batcher = Batcher(node_id, model, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms,
                      aliases=aliases, fill=fill)
    log.info("model_loaded", node_id=node_id, backend=cls.name, reason="explicit" if wanted else "best available",
             model=files.path.name, digest=files.digest[:12], batch_limit=batcher.limit,
             seconds=round(time.perf_counter() - t0, 3))
    return batcher


def _descriptor_binding(node_id: str, files: ModelFiles, model: LoadedModel
                        ) -> tuple[dict[str, str], dict[str, tuple[int | None, ...]]]:
    """Descriptor input names that differ from the model's (matched by position), and the compiled shapes that fill
    the model's dynamic axes. Static axes that disagree with the descriptor fail here, at start-up."""
    declared = files.inputs
    names = [t.name for t in model.inputs]
    if not declared:
        return {}, {}
    aliases: dict[str, str] = {}
    if {t.name for t in declared} != set(names):
        if len(declared) != len(names):
            raise ModelError(f"the descriptor declares inputs {[t.name for t in declared]}, the model has {names}",
                             node_id=node_id)
        aliases = {d.name: m for d, m in zip(declared, names) if d.name != m}
        log.warning("model_inputs_renamed", node_id=node_id, aliases=aliases)
    fill: dict[str, tuple[int | None, ...]] = {}
    for spec in declared:
        name = aliases.get(spec.name, spec.name)
        actual = next(t for t in model.inputs if t.name == name)
        if len(spec.shape) != len(actual.shape) or any(
                m is not None and d is not None and m != d for m, d in zip(actual.shape[1:], spec.shape[1:])):
            raise ModelError(f"input {spec.name!r}: the descriptor says shape {list(spec.shape)}, the model file "
                             f"has {['N' if d is None else d for d in actual.shape]}", node_id=node_id)
        fill[name] = spec.shape
    return aliases, fill
