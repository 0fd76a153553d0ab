"""The ``tensorrt`` model backend: a TensorRT engine built from the model's ONNX file, run on CuPy device
buffers.

Needs an NVIDIA GPU, TensorRT 10's Python package and CuPy (``pip install 'panoflow[gpu]'``). Importing this
module never imports them; :meth:`TensorRtBackend.available` says what is missing. The engine is built once
(FP16 when the descriptor's ``precisionMode`` is ``FP16``, else FP32; a dynamic batch axis gets one
optimisation profile from 1 to ``max_batch``) and cached under the model's cache folder, keyed by the model
archive's digest, the GPU, its compute capability, the TensorRT version, the precision and the profile shapes.
``options``: ``device`` (GPU index, 0), ``workspace_mb`` (1024), ``max_batch`` (from the inference settings),
``cache_dir`` (overrides the model's).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from panoflow.core.bases import ModelBackend
from panoflow.core.hookspecs import hookimpl
from panoflow.core.inference import ModelFiles, TensorInfo
from panoflow.exceptions import ModelError

__all__ = ["TensorRtBackend"]

log = structlog.get_logger(__name__)

_BUILD_LOCK = threading.Lock()  # one engine build at a time: each uses most of the GPU and the host's memory


def _gpu_facts(cp: Any, device: int) -> tuple[str, str]:
    props = cp.cuda.runtime.getDeviceProperties(device)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return name, f"sm{props['major']}{props['minor']}"


class TensorRtBackend(ModelBackend):
    """One TensorRT engine and execution context per model node; inputs and outputs pass through CuPy
    arrays."""

    name = "tensorrt"
    priority = 100

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import tensorrt  # noqa: F401
        except Exception as exc:  # noqa: BLE001 (ImportError, or a broken install failing to load its libraries)
            return False, f"TensorRT is not installed or does not load ({exc}); pip install 'panoflow[gpu]'"
        try:
            import cupy
        except Exception as exc:  # noqa: BLE001 (as for tensorrt)
            return False, f"CuPy is not installed or does not load ({exc}); pip install 'panoflow[gpu]'"
        try:
            count = int(cupy.cuda.runtime.getDeviceCount())
        except Exception as exc:  # noqa: BLE001 (CUDARuntimeError: no driver, no device)
            return False, f"no usable NVIDIA GPU ({exc})"
        return (True, "") if count > 0 else (False, "no NVIDIA GPU found")

    def __init__(self, files: ModelFiles, options: Mapping[str, Any]):
        import cupy as cp
        import tensorrt as trt

        self.files, self._cp, self._trt = files, cp, trt
        self.device = int(options.get("device", 0))
        self._logger = trt.Logger(trt.Logger.WARNING)
        with cp.cuda.Device(self.device):
            gpu, cc = _gpu_facts(cp, self.device)
            max_batch = max(1, int(options.get("max_batch", 16)))
            engine_path, profile = self._engine_path(files, options, gpu, cc, max_batch)
            if not engine_path.is_file():
                with _BUILD_LOCK:
                    if not engine_path.is_file():
                        self._build(files, engine_path, profile, options)
            runtime = trt.Runtime(self._logger)
            self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if self.engine is None:
                raise ModelError(f"TensorRT could not load the cached engine {engine_path}; delete it to "
                                 "rebuild",
                                 node_id=files.node_id)
            self.context = self.engine.create_execution_context()
            self.stream = cp.cuda.Stream(non_blocking=True)
        self._runtime = runtime
        inputs: list[TensorInfo] = []
        outputs: list[TensorInfo] = []
        for i in range(self.engine.num_io_tensors):
            tname = self.engine.get_tensor_name(i)
            dims = tuple(None if d < 0 else int(d) for d in self.engine.get_tensor_shape(tname))
            info = TensorInfo(tname, dims, np.dtype(trt.nptype(self.engine.get_tensor_dtype(tname))).name)
            (inputs if self.engine.get_tensor_mode(tname) == trt.TensorIOMode.INPUT else outputs).append(info)
        order = json.loads(engine_path.with_suffix(".json").read_text()).get("outputs", [])
        outputs.sort(key=lambda t: order.index(t.name) if t.name in order else len(order))
        self.inputs, self.outputs = tuple(inputs), tuple(outputs)
        dynamic = any(t.shape and t.shape[0] is None for t in self.inputs)
        self.batch_limit: int | None = max_batch if dynamic else None
        log.info("tensorrt_engine_ready", node_id=files.node_id, gpu=gpu, precision=files.precision,
                 engine=engine_path.name, batch_limit=self.batch_limit)

    # ------------------------------------------------------------------ building
    def _engine_path(self, files: ModelFiles, options: Mapping[str, Any], gpu: str, cc: str,
                     max_batch: int) -> tuple[Path, dict[str, Any]]:
        declared = {t.name: t.shape for t in files.inputs}
        profile = {"max_batch": max_batch, "declared": {k: list(v) for k, v in declared.items()}}
        key = "|".join([files.digest, gpu, cc, self._trt.__version__, files.precision, json.dumps(profile)])
        cache = Path(options.get("cache_dir") or files.cache_dir or files.path.parent)
        name = f"tensorrt-{hashlib.sha256(key.encode()).hexdigest()[:24]}.engine"
        return cache / name, profile

    def _build(self, files: ModelFiles, engine_path: Path, profile: Mapping[str, Any],
               options: Mapping[str, Any]) -> None:
        trt, node = self._trt, files.node_id
        log.info("tensorrt_engine_building", node_id=node, model=files.path.name, precision=files.precision)
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(files.path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ModelError(f"TensorRT cannot parse {files.path.name}: {errors}", node_id=node)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                     int(options.get("workspace_mb", 1024)) << 20)
        if files.precision == "FP16":
            config.set_flag(trt.BuilderFlag.FP16)
        opt = builder.create_optimization_profile()
        declared: Mapping[str, list[int]] = profile["declared"]
        max_batch = int(profile["max_batch"])
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            dims = list(tensor.shape)
            only = next(iter(declared.values())) if len(declared) == 1 and network.num_inputs == 1 else []
            fill = declared.get(tensor.name) or only
            for axis in range(1, len(dims)):
                if dims[axis] < 0:
                    if len(fill) != len(dims):
                        raise ModelError(f"input {tensor.name!r} has a dynamic axis {axis}; the descriptor "
                                         "must give its size "
                                         "(mlModelDescriptor.inputs[].shape)", node_id=node)
                    dims[axis] = int(fill[axis])
            if dims[0] < 0:
                low, high = [1, *dims[1:]], [max_batch, *dims[1:]]
                opt.set_shape(tensor.name, low, high, high)
            else:
                opt.set_shape(tensor.name, dims, dims, dims)
        config.add_optimization_profile(opt)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelError(f"TensorRT could not build an engine for {files.path.name} (see its log above)",
                             node_id=node)
        engine_path.parent.mkdir(parents=True, exist_ok=True)
        outputs = [network.get_output(i).name for i in range(network.num_outputs)]
        tmp = engine_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(bytes(serialized))
        engine_path.with_suffix(".json").write_text(json.dumps({"outputs": outputs, **profile}))
        os.replace(tmp, engine_path)
        log.info("tensorrt_engine_built", node_id=node, engine=str(engine_path))

    # ------------------------------------------------------------------ running
    def run(self, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
        """Copy the inputs to the GPU (CuPy arrays are used in place), run the engine, copy the outputs
        back."""
        cp, ctx = self._cp, self.context
        with cp.cuda.Device(self.device), self.stream:
            keep = []
            for info in self.inputs:
                array = cp.ascontiguousarray(cp.asarray(inputs[info.name], dtype=info.dtype))
                keep.append(array)
                if not ctx.set_input_shape(info.name, tuple(array.shape)):
                    raise ModelError(f"TensorRT refused input {info.name!r} of shape {list(array.shape)}",
                                     node_id=self.files.node_id)
                ctx.set_tensor_address(info.name, array.data.ptr)
            results = []
            for info in self.outputs:
                out = cp.empty(tuple(ctx.get_tensor_shape(info.name)), dtype=info.dtype)
                results.append(out)
                ctx.set_tensor_address(info.name, out.data.ptr)
            if not ctx.execute_async_v3(self.stream.ptr):
                raise ModelError("TensorRT execution failed (see its log above)", node_id=self.files.node_id)
            host = tuple(out.get(stream=self.stream) for out in results)
            self.stream.synchronize()
            del keep
        return host

    def close(self) -> None:
        self.context = None
        self.engine = None


@hookimpl
def panoflow_model_backends() -> list[type[ModelBackend]]:
    return [TensorRtBackend]
