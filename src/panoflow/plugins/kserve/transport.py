"""The wire side of the ``kserve`` backend: tritonclient's asyncio clients (gRPC and HTTP/REST with the binary
tensor extension) on an event loop of their own, and one error type with the V2/gRPC status code.

tritonclient is imported only here, and only when a backend is built: importing the plugin never needs it.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from panoflow.plugins.kserve.endpoint import Endpoint

__all__ = ["EventLoopThread", "RemoteCallError", "RemoteTensor", "Transport", "open_transport"]

T = TypeVar("T")

#: HTTP statuses as the gRPC codes the V2 protocol's gRPC side uses (one vocabulary for logs and metrics)
_HTTP_CODES = {"400": "INVALID_ARGUMENT", "401": "UNAUTHENTICATED", "403": "PERMISSION_DENIED",
               "404": "NOT_FOUND", "408": "DEADLINE_EXCEEDED", "429": "RESOURCE_EXHAUSTED", "500": "INTERNAL",
               "501": "UNIMPLEMENTED", "502": "UNAVAILABLE", "503": "UNAVAILABLE", "504": "DEADLINE_EXCEEDED"}


class RemoteCallError(Exception):
    """A request to the server failed; ``code`` is a gRPC status name (``UNAVAILABLE``, ``NOT_FOUND``...)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class RemoteTensor:
    """An input or output in the server's model metadata: ``shape`` has -1 for a variable axis."""

    name: str
    datatype: str
    shape: tuple[int, ...]


class Transport(Protocol):
    """What the backend needs from a V2 client (coroutines, run on an :class:`EventLoopThread`)."""

    async def metadata(self, timeout: float) -> tuple[list[RemoteTensor], list[RemoteTensor]]:
        """The model's inputs and outputs, as the server describes them."""

    async def infer(self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str],
                    timeout: float) -> list[np.ndarray]:
        """One inference request (binary tensors); the named outputs, in that order."""

    async def close(self) -> None:
        """Close connections."""


class EventLoopThread:
    """An asyncio event loop in a daemon thread: the backend's synchronous ``run`` hands it coroutines."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()


def _shape(values: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def _tensors(items: Sequence[Mapping[str, Any]]) -> list[RemoteTensor]:
    return [RemoteTensor(str(t["name"]), str(t["datatype"]), _shape(t.get("shape") or ())) for t in items]


def _np_to_triton(dtype: np.dtype[Any]) -> str:
    from tritonclient.utils import np_to_triton_dtype

    name = np_to_triton_dtype(dtype)
    if name is None:
        raise RemoteCallError("INVALID_ARGUMENT", f"the V2 protocol has no type for {dtype}")
    return str(name)


def _grpc_error(exc: Any) -> RemoteCallError:
    """tritonclient's InferenceServerException (status ``StatusCode.UNAVAILABLE``) as a RemoteCallError."""
    status = str(exc.status() or "")
    return RemoteCallError(status.removeprefix("StatusCode.") or "UNKNOWN", str(exc.message()))


class _Grpc:
    def __init__(self, endpoint: Endpoint, headers: Mapping[str, str]):
        import tritonclient.grpc.aio as grpc_aio

        self.endpoint, self.headers = endpoint, dict(headers)
        # reconnect quickly after an outage (gRPC's own back-off grows to 2 minutes), no message size limit
        args = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1),
                ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 500), ("grpc.enable_retries", 0)]
        self.client = grpc_aio.InferenceServerClient(
            endpoint.address, ssl=endpoint.tls,
            root_certificates=str(endpoint.ca_file) if endpoint.ca_file else None,
            private_key=str(endpoint.key_file) if endpoint.key_file else None,
            certificate_chain=str(endpoint.cert_file) if endpoint.cert_file else None,
            channel_args=args)

    async def metadata(self, timeout: float) -> tuple[list[RemoteTensor], list[RemoteTensor]]:
        from tritonclient.utils import InferenceServerException

        try:
            md = await self.client.get_model_metadata(self.endpoint.model, self.endpoint.version,
                                                      headers=self.headers, as_json=True,
                                                      client_timeout=timeout)
        except InferenceServerException as exc:
            raise _grpc_error(exc) from None
        return _tensors(md.get("inputs", [])), _tensors(md.get("outputs", []))

    async def infer(self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str],
                    timeout: float) -> list[np.ndarray]:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        inputs = []
        for name, array in arrays.items():
            tensor = grpcclient.InferInput(name, list(array.shape), _np_to_triton(array.dtype))
            tensor.set_data_from_numpy(array)  # raw_input_contents: binary, never JSON
            inputs.append(tensor)
        try:
            result = await self.client.infer(
                self.endpoint.model, inputs, self.endpoint.version,
                outputs=[grpcclient.InferRequestedOutput(n) for n in outputs],
                client_timeout=timeout, headers=self.headers)
        except InferenceServerException as exc:
            raise _grpc_error(exc) from None
        return [_output(result, n) for n in outputs]

    async def close(self) -> None:
        await self.client.close()


class _Http:
    def __init__(self, endpoint: Endpoint, headers: Mapping[str, str]):
        import tritonclient.http.aio as http_aio

        self.endpoint, self.headers = endpoint, dict(headers)
        context = None
        if endpoint.tls:
            context = ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)
            if endpoint.cert_file and endpoint.key_file:
                context.load_cert_chain(str(endpoint.cert_file), str(endpoint.key_file))
        self.client = http_aio.InferenceServerClient(endpoint.address, ssl=endpoint.tls, ssl_context=context,
                                                     conn_timeout=endpoint.timeout_s + 1.0)

    async def _guard(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        import aiohttp
        from tritonclient.utils import InferenceServerException

        try:
            return await asyncio.wait_for(coro, timeout)
        except InferenceServerException as exc:
            status = str(exc.status() or "")
            raise RemoteCallError(_HTTP_CODES.get(status, "UNKNOWN" if not status else f"HTTP_{status}"),
                                  str(exc.message())) from None
        except (asyncio.TimeoutError, TimeoutError):
            raise RemoteCallError("DEADLINE_EXCEEDED", f"no answer within {timeout:g} s") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise RemoteCallError("UNAVAILABLE", f"{type(exc).__name__}: {exc}") from None

    async def metadata(self, timeout: float) -> tuple[list[RemoteTensor], list[RemoteTensor]]:
        md = await self._guard(self.client.get_model_metadata(self.endpoint.model, self.endpoint.version,
                                                              headers=self.headers), timeout)
        return _tensors(md.get("inputs", [])), _tensors(md.get("outputs", []))

    async def infer(self, arrays: Mapping[str, np.ndarray], outputs: Sequence[str],
                    timeout: float) -> list[np.ndarray]:
        import tritonclient.http as httpclient

        inputs = []
        for name, array in arrays.items():
            tensor = httpclient.InferInput(name, list(array.shape), _np_to_triton(array.dtype))
            tensor.set_data_from_numpy(array, binary_data=True)
            inputs.append(tensor)
        requested = [httpclient.InferRequestedOutput(n, binary_data=True) for n in outputs]
        result = await self._guard(self.client.infer(self.endpoint.model, inputs, self.endpoint.version,
                                                     outputs=requested, headers=self.headers), timeout)
        return [_output(result, n) for n in outputs]

    async def close(self) -> None:
        await self.client.close()


def _output(result: Any, name: str) -> np.ndarray:
    array = result.as_numpy(name)
    if array is None:
        raise RemoteCallError("INTERNAL", f"the server's answer has no output {name!r}")
    return np.asarray(array)


def open_transport(endpoint: Endpoint, headers: Mapping[str, str]) -> Transport:
    """A client for ``endpoint`` (call from the event loop's thread: the clients bind to the running loop)."""
    return _Grpc(endpoint, headers) if endpoint.transport == "grpc" else _Http(endpoint, headers)
