"""``panoramasdk.node``: the application's handle on its code node (ports and model calls)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple

import numpy as np

from panoramasdk._client import current
from panoramasdk._media import media
from panoramasdk._ports import MediaInputPort, MediaOutputPort, ParameterPort, Ports, port

if TYPE_CHECKING:
    from typing_extensions import Self

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

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        client = current()
        self = super().__new__(cls)
        described = client.node
        inputs: Dict[str, port] = {}
        for name, info in (described.get("inputs") or {}).items():
            if info.get("kind") == "media":
                inputs[name] = MediaInputPort(name, client)
            else:
                inputs[name] = ParameterPort(name, info.get("value"))
        outputs: Dict[str, port] = {
            name: MediaOutputPort(name, client) for name in described.get("outputs") or []
        }
        object.__setattr__(self, "_panoflow_client", client)
        self.inputs = Ports("input", inputs)
        self.outputs = Ports("output", outputs)
        return self

    def __init__(self) -> None:
        """Nothing to do: ``__new__`` already set the ports, so calling this is optional and repeatable."""

    def call(self, *args: Any, time_out: Optional[float] = None, **kwargs: Any) -> Optional[Tuple[Any, ...]]:
        """Run the model node ``name`` on ``input``; returns a tuple of arrays (model output order).

        Both argument orders work: ``call(input, name)`` (what the samples use) and ``call(name, input)``
        (what the reference documents), also as keywords (``input=``/``inputs=``, ``name=``). ``input`` is a
        dict of model input name to array, a :class:`media` (its image is used) or a bare array. ``time_out``
        is in seconds (``timeout=`` works too). Raises KeyError for a name that is not a model node of this
        application. The runtime batches calls from several streams and instances into one inference where the
        model allows it.
        """
        name, data, timeout = _call_arguments(args, kwargs, time_out)
        if isinstance(data, media):
            data = data.image
        if isinstance(data, Mapping):
            data = {str(k): np.asarray(v.image if isinstance(v, media) else v) for k, v in data.items()}
        else:
            data = np.asarray(data)
        client = self._panoflow_client  # type: ignore[attr-defined]
        reply = client.request({"op": "call", "model": name, "inputs": data, "timeout": timeout})
        return tuple(reply["outputs"])


def _call_arguments(
    args: Tuple[Any, ...], kwargs: Dict[str, Any], time_out: Optional[float]
) -> Tuple[str, Any, Optional[float]]:
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
