"""Dynamic batching for one loaded model (see :mod:`panoflow.core.inference` for where it sits).

Requests from any number of threads queue up; one worker thread takes up to the model's batch limit of
compatible requests, or whatever has arrived ``max_wait_ms`` after the first one, concatenates them along axis
0, runs the backend once and hands each caller its own slice of every output.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from panoflow.core.bases import ModelBackend
from panoflow.exceptions import ModelError

__all__ = ["PEAK_WINDOW_S", "Batcher"]

log = structlog.get_logger(__name__)

#: how long the batcher remembers the most requests it saw in flight at once (what it waits to gather)
PEAK_WINDOW_S = 1.0


@dataclass
class _Request:
    arrays: dict[str, np.ndarray]
    n: int
    key: tuple[Any, ...]
    future: Future[tuple[np.ndarray, ...]]
    t_submit: float


class Batcher:
    """Dynamic batching for one loaded model: thread-safe :meth:`submit`, one worker thread that runs
    batches."""

    def __init__(self, node_id: str, model: ModelBackend, *, max_batch: int = 16, max_wait_ms: float = 2.0,
                 aliases: Mapping[str, str] | None = None,
                 fill: Mapping[str, tuple[int | None, ...]] | None = None):
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

        ``inline``: when nothing else is queued, running or was in flight lately (one stream calling in a
        loop), run the model on the calling thread and return a completed future, sparing two thread
        switches."""
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
                # wake the worker for a first request or a full batch; between the two it waits on its own
                # deadline
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
        # GPU arrays (CuPy, anything with __cuda_array_interface__) pass through for GPU backends to use in
        # place
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
        """The next batch: compatible requests in arrival order, up to the limit or the first one's
        deadline."""
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
        except Exception as exc:  # noqa: BLE001 (the model failed: every caller in the batch learns why)
            error = exc if isinstance(exc, ModelError) else ModelError(
                f"inference failed: {type(exc).__name__}: {exc}", node_id=self.node_id)
            if not getattr(exc, "reported", False):  # a backend that logs its own outages says so
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


def _merge_shape(model: tuple[int | None, ...], descriptor: tuple[int | None,
                                                                  ...] | None) -> tuple[int | None, ...]:
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
    stacked: np.ndarray = xp.concatenate(arrays, axis=0)  # numpy or CuPy: the module is found at run time
    return stacked
