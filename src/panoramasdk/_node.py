"""``panoramasdk.node``: the application's handle on its code node (ports and model calls)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from panoflow.core.ports import MediaInput, ParameterInput
from panoramasdk._binding import current
from panoramasdk._media import media
from panoramasdk._ports import MediaInputPort, MediaOutputPort, ParameterPort, Ports, port

__all__ = ["node"]

_MISSING: Any = object()


class node:
    """The code node this application runs as. Works three ways, as on the device:

    - subclassed without calling ``super().__init__()``: ``inputs``/``outputs`` are set in ``__new__``, before
      the subclass's ``__init__`` runs;
    - subclassed and calling ``super().__init__()`` (no arguments; idempotent);
    - by composition: ``panoramasdk.node()``.

    Outside the panoflow runtime construction raises RuntimeError saying how to run the application.
    """

    inputs: Ports
    outputs: Ports

    def __new__(cls, *args: Any, **kwargs: Any) -> node:
        io = current()
        self = super().__new__(cls)
        inputs: dict[str, port] = {}
        for name, source in io.inputs.items():
            if isinstance(source, MediaInput):
                inputs[name] = MediaInputPort(source)
            elif isinstance(source, ParameterInput):
                inputs[name] = ParameterPort(source)
            else:
                raise TypeError(f"input {name!r} of node {io.node_id!r} is neither media nor a parameter")
        outputs: dict[str, port] = {name: MediaOutputPort(out) for name, out in io.outputs.items()}
        object.__setattr__(self, "_panoflow_io", io)
        self.inputs = Ports("input", inputs)
        self.outputs = Ports("output", outputs)
        return self

    def __init__(self) -> None:
        """Nothing to do: ``__new__`` already set the ports, so calling this is optional and repeatable."""

    def call(self, *args: Any, time_out: float | None = None, **kwargs: Any) -> tuple[Any, ...] | None:
        """Run the model node ``name`` on ``input``; returns a tuple of arrays (model output order).

        Both argument orders work: ``call(input, name)`` (what the samples use) and ``call(name, input)`` (what the
        reference documents), also as keywords (``input=``/``inputs=``, ``name=``). ``input`` is a dict of model
        input name to array, a :class:`media` (its image is used) or a bare array. ``time_out`` is in seconds
        (``timeout=`` works too). Raises KeyError for a name that is not a model node of this application.
        """
        name, data, timeout = _call_arguments(args, kwargs, time_out)
        if isinstance(data, media):
            data = data.image
        elif isinstance(data, Mapping) and any(isinstance(v, media) for v in data.values()):
            data = {k: v.image if isinstance(v, media) else v for k, v in data.items()}
        io = self._panoflow_io  # type: ignore[attr-defined]
        result = io.call(name, data, timeout)
        if result is None or isinstance(result, tuple):
            return result
        return tuple(result)


def _call_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], time_out: float | None
) -> tuple[str, Any, float | None]:
    """Sort ``call``'s arguments into (model node name, input, timeout), whatever order they came in."""
    kwargs = dict(kwargs)
    name = kwargs.pop("name", _MISSING)
    data = kwargs.pop("input", _MISSING)
    if "inputs" in kwargs:
        if data is not _MISSING:
            raise TypeError("call() got both input= and inputs=")
        data = kwargs.pop("inputs")
    if "timeout" in kwargs:
        time_out = kwargs.pop("timeout")
    if kwargs:
        raise TypeError(f"call() got unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
    positional = list(args)
    if len(positional) == 3 and time_out is None:
        time_out = positional.pop()
    if len(positional) > 2:
        raise TypeError(f"call() takes an input and a model node name, got {len(args)} positional arguments")
    if name is _MISSING:
        strings = [i for i, a in enumerate(positional) if isinstance(a, str)]
        if not strings:
            raise TypeError(
                "call() needs the model node name (a str), e.g. node.call({'data': array}, 'model_node')"
            )
        name = positional.pop(strings[0])
    if data is _MISSING:
        if not positional:
            raise TypeError(f"call() needs the input for model node {name!r}")
        data = positional.pop(0)
    if positional:
        raise TypeError("call() got too many positional arguments")
    if not isinstance(name, str):
        raise TypeError(f"call() model node name must be a str, got {type(name).__name__}")
    return name, data, time_out
