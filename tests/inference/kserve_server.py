"""A real KServe V2 inference server for the remote-backend tests: KServe's own Python ``ModelServer`` (from
PyPI) serving ONNX models through ONNX Runtime, over REST (binary tensor extension) and gRPC.

Run as a script (the tests start it in a child process, see :mod:`tests.inference.kserve_harness`)::

    python -m tests.inference.kserve_server --model NAME=PATH.onnx [--model ...] --http-port P --grpc-port Q
        [--ssl-certfile CERT --ssl-keyfile KEY] [--token-file FILE] [--threads N]

``--token-file``: every inference must carry ``Authorization: Bearer <the file's content>``, as a gateway in
front of a shared server would demand. ``--threads``: ONNX Runtime's intra-op threads (default 1, the tests
share two cores; 0: ONNX Runtime's own choice, as the local backend makes it). The model's metadata comes from
the ONNX file (dynamic axes as ``-1``).
"""

from __future__ import annotations

import argparse
import hmac
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from kserve import InferRequest, InferResponse, Model, ModelServer
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput
from kserve.utils.utils import from_np_dtype

__all__ = ["OnnxModel", "main"]

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(int32)": np.int32,
              "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


def _tensor(arg: Any) -> dict[str, Any]:
    shape = [d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or [])]
    return {"name": arg.name, "datatype": from_np_dtype(np.dtype(_ORT_TYPES[arg.type])), "shape": shape}


class OnnxModel(Model):  # type: ignore[misc]
    """One ONNX file behind ONNX Runtime on the CPU."""

    def __init__(self, name: str, path: Path, token: str | None, threads: int = 1):
        super().__init__(name)
        self.path = path
        self.token = token
        self.threads = threads
        self.session: ort.InferenceSession | None = None

    def load(self) -> bool:
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        self.ready = True
        return True

    def get_input_types(self) -> list[dict[str, Any]]:
        assert self.session is not None
        return [_tensor(i) for i in self.session.get_inputs()]

    def get_output_types(self) -> list[dict[str, Any]]:
        assert self.session is not None
        return [_tensor(o) for o in self.session.get_outputs()]

    def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
        assert self.session is not None
        if self.token is not None:
            given = (headers or {}).get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                raise InvalidInput("missing or wrong bearer token")
        feeds = {t.name: t.as_numpy() for t in payload.inputs}
        names = [o.name for o in self.session.get_outputs()]
        results = self.session.run(names, feeds)
        outputs = []
        for name, array in zip(names, results):
            out = InferOutput(name=name, shape=list(array.shape), datatype=from_np_dtype(array.dtype))
            out.set_data_from_numpy(np.ascontiguousarray(array), binary_data=True)
            outputs.append(out)
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=outputs,
                             use_binary_outputs=payload.use_binary_outputs,
                             requested_outputs=payload.request_outputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--ssl-certfile")
    parser.add_argument("--ssl-keyfile")
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    token = args.token_file.read_text().strip() if args.token_file else None
    models = []
    for spec in args.model:
        name, _, path = spec.partition("=")
        model = OnnxModel(name, Path(path), token, args.threads)
        model.load()
        models.append(model)
    ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=True, workers=1,
                enable_latency_logging=False, grace_period=1,
                ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile).start(models)


if __name__ == "__main__":
    main()
