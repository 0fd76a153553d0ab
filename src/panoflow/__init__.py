"""panoflow: run AWS Panorama applications unmodified on your own hardware.

This module is the public facade for plugin authors: everything a plugin needs is importable from here (the
base classes and hook markers, the frame and its overlays, the bus a sink reads, what runners, backends and
connectors are handed, the errors). ``CodeNodeContext`` and ``Runtime`` load on first use, so ``import
panoflow`` stays light. See docs/plugins.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from panoflow.core.bases import (
    CloudConnector,
    CodeRunner,
    DeviceContext,
    Emit,
    MediaSink,
    MediaSource,
    ModelBackend,
    ModelFiles,
    ParameterType,
    TensorInfo,
)
from panoflow.core.bus import BusClosed, Inbox, Policy
from panoflow.core.frame import Frame, Label, Overlay, Rect
from panoflow.core.hookspecs import hookimpl, hookspec
from panoflow.core.ports import StreamsExhausted
from panoflow.exceptions import (
    CloudError,
    ManifestError,
    ModelError,
    NodeError,
    PanoflowError,
    PluginError,
    Problem,
    SandboxError,
    SourceError,
)

if TYPE_CHECKING:
    from panoflow.core.plugins import Plugins, build_plugins
    from panoflow.core.runtime import CodeNodeContext, RunOptions, Runtime

__version__ = "0.1.0"

#: names loaded on first use (module, attribute): they pull in the runtime (anyio, numpy, the inference layer)
_LAZY = {
    "CodeNodeContext": "panoflow.core.runtime",
    "Plugins": "panoflow.core.plugins",
    "RunOptions": "panoflow.core.runtime",
    "Runtime": "panoflow.core.runtime",
    "build_plugins": "panoflow.core.plugins",
}

__all__ = [
    "BusClosed",
    "CloudConnector",
    "CloudError",
    "CodeNodeContext",
    "CodeRunner",
    "DeviceContext",
    "Emit",
    "Frame",
    "Inbox",
    "Label",
    "ManifestError",
    "MediaSink",
    "MediaSource",
    "ModelBackend",
    "ModelError",
    "ModelFiles",
    "NodeError",
    "Overlay",
    "PanoflowError",
    "ParameterType",
    "PluginError",
    "Plugins",
    "Policy",
    "Problem",
    "Rect",
    "RunOptions",
    "Runtime",
    "SandboxError",
    "SourceError",
    "StreamsExhausted",
    "TensorInfo",
    "__version__",
    "build_plugins",
    "hookimpl",
    "hookspec",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'panoflow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
