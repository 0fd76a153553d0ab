"""The ``kserve`` model backend plugin: model nodes served by a remote KServe V2 inference server (Triton,
KServe, MLServer, OpenVINO Model Server) over gRPC or HTTP/REST, chosen per node with
``--model-backend NODE=kserve+grpc://HOST:8001/MODEL[/VERSION]``.

Modules: :mod:`.endpoint` parses the URI, :mod:`.transport` wraps tritonclient's asyncio clients,
:mod:`.health` keeps outages, latency and errors, :mod:`.backend` is the :class:`~panoflow.ModelBackend`.
tritonclient (the ``kserve`` extra) is imported only when a node uses the backend.
"""

from __future__ import annotations

from panoflow.core.bases import ModelBackend
from panoflow.core.hookspecs import hookimpl
from panoflow.plugins.kserve.backend import KServeBackend

__all__ = ["KServeBackend"]


@hookimpl
def panoflow_model_backends() -> list[type[ModelBackend]]:
    return [KServeBackend]
