# mypy: disable-error-code="empty-body"
# (hook specifications are declarations: pluggy calls the plugins' implementations, never these bodies)
"""The plugin contract: every hook panoflow calls.

Hooks register and configure; they never run per frame. Each registration hook returns the classes (or
:class:`~panoflow.core.bases.ParameterType` values) a plugin provides; the runtime calls methods on those on
the hot path. Names must be unique across plugins: duplicates fail at start-up (:mod:`panoflow.core.plugins`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

from panoflow.core.bases import (
    CloudConnector,
    CodeRunner,
    MediaSink,
    MediaSource,
    ModelBackend,
    ParameterType,
)

if TYPE_CHECKING:  # the runtime imports the plugin manager, which imports this module
    from panoflow.core.runtime import Runtime

PROJECT = "panoflow"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "hookimpl", "hookspec"]


@hookspec
def panoflow_media_sources() -> Sequence[type[MediaSource]]:
    """Called once when a plugin manager is built. Return the media source classes this plugin provides, each
    keyed by its ``scheme`` (``file``, ``rtsp``...)."""


@hookspec
def panoflow_media_sinks() -> Sequence[type[MediaSink]]:
    """Called once when a plugin manager is built. Return the media sink classes this plugin provides, each
    keyed by its ``name`` (``display``, ``record``, ``null``...)."""


@hookspec
def panoflow_model_backends() -> Sequence[type[ModelBackend]]:
    """Called once when a plugin manager is built. Return the model backend classes this plugin provides, each
    keyed by its ``name`` (``onnxruntime``, ``tensorrt``...). Return them even when they cannot work on this
    machine: :meth:`ModelBackend.available` says why."""


@hookspec
def panoflow_parameter_types() -> Sequence[ParameterType]:
    """Called once when a plugin manager is built. Return the parameter node types this plugin provides, each
    keyed by its ``name`` (``int32``...)."""


@hookspec
def panoflow_code_runners() -> Sequence[type[CodeRunner]]:
    """Called once when a plugin manager is built. Return the code-node runner classes this plugin provides,
    each keyed by its ``name`` (``panoramasdk``, ``native``)."""


@hookspec
def panoflow_cloud_connectors() -> Sequence[type[CloudConnector]]:
    """Called once when a plugin manager is built. Return the cloud connector classes this plugin provides,
    each keyed by its ``name`` (``http``...)."""


@hookspec
def panoflow_startup(runtime: Runtime) -> None:
    """Called once after a runtime has resolved its graph and before any node starts. ``runtime`` is the
    :class:`panoflow.core.runtime.Runtime`; plugins may read its ``graph`` (the resolved application) and
    ``options`` (:class:`panoflow.core.runtime.RunOptions`), and acquire what they need for the run."""


@hookspec
def panoflow_shutdown(runtime: Runtime) -> None:
    """Called once after every node of ``runtime`` has stopped (also after a failure). Release what
    :func:`panoflow_startup` acquired."""
