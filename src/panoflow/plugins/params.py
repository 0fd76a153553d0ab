"""The four Panorama parameter types (``string``, ``int32``, ``float32``, ``boolean``) as a plugin."""

from __future__ import annotations

from panoflow.core.bases import ParameterType
from panoflow.core.hookspecs import hookimpl
from panoflow.core.params import BUILTIN_PARAMETER_TYPES


@hookimpl
def panoflow_parameter_types() -> list[ParameterType]:
    return list(BUILTIN_PARAMETER_TYPES.values())
