"""``panoramasdk.port`` and the port namespaces behind ``node.inputs`` / ``node.outputs``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from panoflow.core.ports import MediaInput, MediaOutput, ParameterInput
from panoramasdk._media import media

__all__ = ["MediaInputPort", "MediaOutputPort", "ParameterPort", "Ports", "port"]


class port:
    """A port of the node: ``get`` on input ports, ``put`` on output ports."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<panoramasdk.port {self.name!r} ({type(self).__name__})>"

    def get(self, timeout: float | None = None) -> Any:
        """Read an input port (raises ValueError on an output port)."""
        raise ValueError(f"port.get is supported only by input ports ({self.name!r} is an output port)")

    def put(self, data: Sequence[media]) -> None:
        """Write an output port (raises ValueError on an input port)."""
        raise ValueError(f"port.put is supported only by output ports ({self.name!r} is an input port)")


class MediaInputPort(port):
    """A media input: ``get`` returns one :class:`media` per camera, see :class:`panoflow.core.ports.MediaInput`."""

    __slots__ = ("_input",)

    def __init__(self, media_input: MediaInput):
        super().__init__(media_input.name)
        self._input = media_input

    def get(self, timeout: float | None = None) -> list[media]:
        """Block until a camera has a new frame; raises ``panoramasdk.TimeoutException`` after ``timeout`` s."""
        return [media(frame) for frame in self._input.get(timeout)]


class ParameterPort(port):
    """A parameter input: ``get`` returns its value, the same on every call."""

    __slots__ = ("_input",)

    def __init__(self, parameter: ParameterInput):
        super().__init__(parameter.name)
        self._input = parameter

    def get(self, timeout: float | None = None) -> Any:
        return self._input.get(timeout)


class MediaOutputPort(port):
    """A media output: ``put`` sends media (with their overlays) downstream, without copying pixels."""

    __slots__ = ("_output",)

    def __init__(self, output: MediaOutput):
        super().__init__(output.name)
        self._output = output

    def put(self, data: Sequence[media]) -> None:
        if isinstance(data, media):
            data = [data]
        if not isinstance(data, (list, tuple)):
            raise TypeError(f"port.put needs a list of panoramasdk.media, got {type(data).__name__}")
        if not data:
            raise ValueError(f"port.put on {self.name!r} needs at least one media object, got an empty list")
        frames = []
        for item in data:
            if not isinstance(item, media):
                raise TypeError(f"port.put needs panoramasdk.media objects, got {type(item).__name__}")
            frames.append(item.to_frame())
        self._output.put(frames)


class Ports:
    """``node.inputs`` / ``node.outputs``: one attribute per port."""

    def __init__(self, kind: str, ports: Mapping[str, port]):
        self.__dict__["_kind"] = kind
        self.__dict__.update(ports)

    def __getattr__(self, name: str) -> port:
        known = sorted(k for k in self.__dict__ if not k.startswith("_"))
        listing = ", ".join(known) if known else "none"
        raise AttributeError(
            f"this node has no {self._kind} port {name!r}; its {self._kind} ports: {listing}"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"node {self._kind} ports are read-only")

    def __dir__(self) -> list[str]:
        return sorted(k for k in self.__dict__ if not k.startswith("_"))

    def __iter__(self) -> Any:
        return iter(self.__dir__())

    def __repr__(self) -> str:
        return f"<panoramasdk {self._kind} ports: {', '.join(self.__dir__())}>"
