"""panoflow: run AWS Panorama applications unmodified on your own hardware.

This module is the public facade for plugin authors: everything a plugin needs is importable from here.
"""

from __future__ import annotations

from panoflow.core.bases import (
    CloudConnector,
    CodeRunner,
    Emit,
    MediaSink,
    MediaSource,
    ModelBackend,
    ParameterType,
)
from panoflow.core.frame import Frame, Label, Overlay, Rect
from panoflow.core.hookspecs import hookimpl, hookspec
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

__version__ = "0.1.0"

__all__ = [
    "CloudConnector",
    "CloudError",
    "CodeRunner",
    "Emit",
    "Frame",
    "Label",
    "ManifestError",
    "MediaSink",
    "MediaSource",
    "ModelBackend",
    "ModelError",
    "NodeError",
    "Overlay",
    "PanoflowError",
    "ParameterType",
    "PluginError",
    "Problem",
    "Rect",
    "SandboxError",
    "SourceError",
    "__version__",
    "hookimpl",
    "hookspec",
]
