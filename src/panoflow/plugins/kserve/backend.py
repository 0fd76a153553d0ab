"""The ``kserve`` model backend: a model node run by a remote KServe V2 server (Triton, KServe, MLServer,
OpenVINO Model Server) over gRPC or HTTP/REST.

At load it reads the server model's metadata (retrying until ``connect_timeout``) and checks it against the
model package's own ONNX file: the same input and output names, dtypes and compatible shapes, so that the app
gets what the local ``onnxruntime`` backend would give it, or the node fails at start-up with both sides
named. Each (batched) call is one request with binary tensors; a request the server answers UNAVAILABLE is
retried with back-off while the server is thought up. During an outage calls fail at once with
:class:`~panoflow.ModelError` (the app can catch it and keep going), one log line marks its start and one its
end, and the first request that gets through ends it. The caller's ``time_out`` is honoured by the model set;
``timeout`` caps each request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from panoflow.core.bases import ModelBackend
from panoflow.core.inference import ModelFiles, TensorInfo
from panoflow.core.metrics import MetricFamily
from panoflow.exceptions import ModelError
from panoflow.plugins.kserve.endpoint import EXAMPLE, Endpoint, EndpointError, parse_endpoint
from panoflow.plugins.kserve.health import RemoteHealth
from panoflow.plugins.kserve.transport import (
    EventLoopThread,
    RemoteCallError,
    RemoteTensor,
    Transport,
    open_transport,
)

__all__ = ["KServeBackend", "onnx_signature"]

log = structlog.get_logger("panoflow.plugins.kserve")

_FIRST_BACKOFF_S, _MAX_BACKOFF_S = 0.05, 1.0


def _np_dtype(datatype: str) -> str:
    from tritonclient.utils import triton_to_np_dtype

    dtype = triton_to_np_dtype(datatype)
    if dtype is None or dtype is np.object_:
        raise ValueError(f"tensor type {datatype} is not supported by panoflow")
    return np.dtype(dtype).name


def _show(tensors: Any) -> str:
    return (
        "["
        + ", ".join(
            f"{t.name} {t.dtype} [" + ",".join("N" if d is None else str(d) for d in t.shape) + "]"
            for t in tensors
        )
        + "]"
    )


def _fits(a: TensorInfo, b: TensorInfo) -> bool:
    return a.dtype == b.dtype and len(a.shape) == len(b.shape) and all(
        x is None or y is None or x == y for x, y in zip(a.shape, b.shape))


def onnx_signature(path: Path) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """An ONNX file's inputs and outputs (ONNX Runtime reads them, optimisations off)."""
    import onnxruntime as ort

    from panoflow.plugins.onnxruntime_backend import _dims, ort_dtype

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return (tuple(TensorInfo(i.name, _dims(i.shape), ort_dtype(i.type)) for i in session.get_inputs()),
            tuple(TensorInfo(o.name, _dims(o.shape or ()), ort_dtype(o.type)) for o in session.get_outputs()))


def _local_signature(files: ModelFiles) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]] | None:
    """The model package's own ONNX signature, or None when it cannot be read (the descriptor check
    applies)."""
    try:
        return onnx_signature(files.path)
    except Exception as exc:  # noqa: BLE001 (not ONNX, or unreadable)
        log.warning("kserve_local_model_unreadable", node_id=files.node_id, model=files.path.name,
                    error=f"{type(exc).__name__}: {exc}")
        return None


class KServeBackend(ModelBackend):
    """One model node on a remote KServe V2 server (``--model-backend NODE=kserve+grpc://HOST:8001/MODEL``)."""

    name = "kserve"
    priority = -100  # never the automatic choice: it needs an endpoint

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import tritonclient.grpc.aio
            import tritonclient.http.aio  # noqa: F401
        except ImportError as exc:
            return False, f"tritonclient is not installed ({exc}): pip install 'panoflow[kserve]'"
        return True, ""

    def __init__(self, files: ModelFiles, options: Mapping[str, Any]):
        self.node_id = files.node_id
        uri = options.get("uri")
        if not uri:
            raise ModelError(
                f"the kserve backend needs its server: --model-backend {files.node_id}={EXAMPLE}",
                node_id=files.node_id,
            )
        try:
            self.endpoint: Endpoint = parse_endpoint(str(uri))
        except EndpointError as exc:
            raise ModelError(f"--model-backend {files.node_id}=...: {exc}", node_id=files.node_id) from None
        headers = self._headers()
        self.health = RemoteHealth(files.node_id, self.endpoint.describe())
        self.batch_limit = self.endpoint.max_batch
        self._loop = EventLoopThread(f"kserve:{files.node_id}")
        try:
            self._transport: Transport = self._loop.run(self._open(headers))
            server_inputs, server_outputs = self._loop.run(self._metadata())
            self.inputs, self.outputs = self._bind(files, server_inputs, server_outputs)
        except BaseException:
            self.close()
            raise
        self._output_names = [o.name for o in self.outputs]
        log.info("kserve_model_ready", node_id=self.node_id, endpoint=self.endpoint.describe(),
                 inputs=_show(self.inputs), outputs=_show(self.outputs))

    # ------------------------------------------------------------------ loading
    def _headers(self) -> dict[str, str]:
        for label, path in (("ca", self.endpoint.ca_file), ("cert", self.endpoint.cert_file),
                            ("key", self.endpoint.key_file), ("token_file", self.endpoint.token_file)):
            if path is not None and not path.is_file():
                raise ModelError(f"the {label} file {path} given to the kserve endpoint does not exist",
                                 node_id=self.node_id)
        if self.endpoint.token_file is None:
            return {}
        try:
            token = self.endpoint.token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"cannot read the token file {self.endpoint.token_file}: {type(exc).__name__}",
                             node_id=self.node_id) from None
        if not token or any(c.isspace() for c in token):
            raise ModelError(f"the token file {self.endpoint.token_file} must hold one token (no spaces)",
                             node_id=self.node_id)
        return {"authorization": f"Bearer {token}"}

    async def _open(self, headers: Mapping[str, str]) -> Transport:
        return open_transport(self.endpoint, headers)

    async def _metadata(self) -> tuple[list[RemoteTensor], list[RemoteTensor]]:
        """The server model's metadata, retried while the server is unreachable, up to ``connect_timeout``."""
        deadline = time.monotonic() + self.endpoint.connect_timeout_s
        delay = _FIRST_BACKOFF_S
        while True:
            left = deadline - time.monotonic()
            try:
                return await self._transport.metadata(max(0.05, min(left, self.endpoint.timeout_s)))
            except RemoteCallError as exc:
                where = self.endpoint.describe()
                if exc.code == "NOT_FOUND":
                    raise ModelError(f"the server at {where} has no model {self.endpoint.model!r}"
                                     + (f" version {self.endpoint.version}" if self.endpoint.version else "")
                                     + f": {exc.message}", node_id=self.node_id) from None
                if exc.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED") or left <= delay:
                    raise ModelError(f"cannot read the model's metadata from {where} within "
                                     f"{self.endpoint.connect_timeout_s:g} s: {exc}",
                                     node_id=self.node_id) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)

    def _bind(self, files: ModelFiles, server_inputs: list[RemoteTensor], server_outputs: list[RemoteTensor]
              ) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
        """The server's tensors as TensorInfo, outputs in the model file's order; both sides must agree."""
        def info(tensors: list[RemoteTensor]) -> tuple[TensorInfo, ...]:
            try:
                return tuple(TensorInfo(t.name, tuple(None if d < 0 else d for d in t.shape),
                                        _np_dtype(t.datatype))
                             for t in tensors)
            except ValueError as exc:
                raise ModelError(f"the server's model at {self.endpoint.describe()}: {exc}",
                                 node_id=self.node_id) from None

        inputs, outputs = info(server_inputs), info(server_outputs)
        if not inputs or not outputs:
            raise ModelError(f"the server's model at {self.endpoint.describe()} describes no "
                             f"{'inputs' if not inputs else 'outputs'} in its metadata", node_id=self.node_id)
        local = _local_signature(files)
        if local is None:
            return inputs, outputs
        problems = []
        for kind, remote, mine in (("inputs", inputs, local[0]), ("outputs", outputs, local[1])):
            by_name = {t.name: t for t in remote}
            if set(by_name) != {t.name for t in mine} or not all(_fits(by_name[t.name], t) for t in mine):
                problems.append(
                    f"{kind}: the server has {_show(remote)}, {files.path.name} has {_show(mine)}"
                )
        if problems:
            raise ModelError(f"the server's model {self.endpoint.describe()} does not match the model "
                             f"package's {files.path.name}: " + "; ".join(problems), node_id=self.node_id)
        order = {t.name: i for i, t in enumerate(local[1])}
        return inputs, tuple(sorted(outputs, key=lambda t: order[t.name]))

    # ------------------------------------------------------------------ running
    def run(self, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
        arrays = {k: np.ascontiguousarray(v.get() if hasattr(v, "__cuda_array_interface__") else v)
                  for k, v in inputs.items()}
        try:
            return tuple(self._loop.run(self._infer(arrays)))
        except RemoteCallError as exc:
            error = ModelError(f"remote inference at {self.endpoint.describe()} failed: {exc}",
                               node_id=self.node_id)
            error.reported = True  # type: ignore[attr-defined]  # RemoteHealth logged it (once per outage)
            raise error from None

    async def _infer(self, arrays: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        t0 = time.monotonic()
        deadline = t0 + self.endpoint.timeout_s
        delay, attempt = _FIRST_BACKOFF_S, 0
        while True:
            try:
                outputs = await self._transport.infer(arrays, self._output_names,
                                                      max(0.001, deadline - time.monotonic()))
            except RemoteCallError as exc:
                # retry a refusal while the server is thought up; in an outage, fail at once (no pile-up)
                if exc.code == "UNAVAILABLE" and self.health.up and attempt < self.endpoint.retries \
                        and time.monotonic() + delay < deadline:
                    attempt += 1
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _MAX_BACKOFF_S)
                    continue
                self.health.failed(exc.code, exc.message)
                raise
            self.health.succeeded(time.monotonic() - t0)
            return outputs

    def status(self) -> dict[str, Any]:
        """The server's health as this node sees it (for status output)."""
        return self.health.status()

    def metric_families(self, node_id: str) -> list[MetricFamily]:
        """``panoflow_remote_inference_seconds`` (histogram), ``..._errors_total{code}``,
        ``panoflow_remote_model_up``."""
        return self.health.metric_families(node_id)

    def close(self) -> None:
        transport = getattr(self, "_transport", None)
        if transport is not None and not self._loop.loop.is_closed():
            try:
                self._loop.run(asyncio.wait_for(transport.close(), 2.0))
            except Exception as exc:  # noqa: BLE001 (closing a connection to a server that is gone)
                log.debug("kserve_close_failed", node_id=self.node_id, error=str(exc))
        self._loop.close()
