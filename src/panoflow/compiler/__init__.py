"""The model compiler: PyTorch, MXNet and TensorFlow model packages to ONNX, as SageMaker Neo compiled them
for Panorama.

- :mod:`.sources`: which files of an archive are the model, per framework.
- :mod:`.environments`: the isolated, cached converter environments (created on demand with pip).
- :mod:`.convert`: :class:`ModelCompiler`, which converts in those environments, verifies and caches.
- :mod:`.verify`: the comparison with the source framework (ONNX Runtime on the same input).
- :mod:`.archives`: an archive on disk (plus its descriptor file) to a compiled model, for the CLI and the
  control plane.
- ``workers/``: the scripts that run inside the converter environments (they import no panoflow code).
"""

from __future__ import annotations

from panoflow.compiler.convert import (
                                       CompiledModel,
                                       CompileOptions,
                                       CompileRequest,
                                       InputSpec,
                                       ModelCompiler,
                                       cache_key,
)
from panoflow.compiler.environments import ENVIRONMENTS, ConverterEnvError, PipSource, default_cache_dir
from panoflow.compiler.sources import FRAMEWORKS

__all__ = [
    "ENVIRONMENTS",
    "FRAMEWORKS",
    "CompileOptions",
    "CompileRequest",
    "CompiledModel",
    "ConverterEnvError",
    "InputSpec",
    "ModelCompiler",
    "PipSource",
    "cache_key",
    "default_cache_dir",
]
