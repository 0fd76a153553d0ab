"""``panoramasdk.port`` and the port namespaces behind ``node.inputs`` / ``node.outputs``."""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence

from panoramasdk._client import Client
from panoramasdk._media import media

__all__ = ["MediaInputPort", "MediaOutputPort", "ParameterPort", "Ports", "port"]


class port:
    """A port of the node: ``get`` on input ports, ``put`` on output ports."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<panoramasdk.port {self.name!r} ({type(self).__name__})>"

    def get(self, timeout: Any = None) -> Any:
        """Read an input port (raises ValueError on an output port)."""
        raise ValueError(f"port.get is supported only by input ports ({self.name!r} is an output port)")

    def put(self, data: Sequence[media]) -> None:
        """Write an output port (raises ValueError on an input port)."""
        raise ValueError(f"port.put is supported only by output ports ({self.name!r} is an input port)")


class MediaInputPort(port):
    """A media input: ``get`` blocks until a camera has a new frame and returns one :class:`media` per camera
    that has ever delivered, in camera order; a camera without a new frame repeats its last one with
    ``is_cached`` True. ``timeout`` (seconds) raises ``panoramasdk.TimeoutException``."""

    __slots__ = ("_client",)

    def __init__(self, name: str, client: Client):
        super().__init__(name)
        self._client = client

    def get(self, timeout: Any = None) -> List[media]:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise TypeError(f"port.get timeout must be a number of seconds, got {type(timeout).__name__}")
        reply = self._client.request({"op": "get", "port": self.name, "timeout": timeout})
        out = []
        for info in reply["frames"]:
            image = self._client.image(info["segment"], info["shape"], info["dtype"])
            out.append(media(image, {k: v for k, v in info.items() if k not in ("shape", "dtype")}))
        return out


class ParameterPort(port):
    """A parameter input: ``get`` returns its value, the same on every call."""

    __slots__ = ("_value",)

    def __init__(self, name: str, value: Any):
        super().__init__(name)
        self._value = value

    def get(self, timeout: Any = None) -> Any:
        return self._value


class MediaOutputPort(port):
    """A media output: ``put`` sends media (with their overlays) downstream, without copying pixels."""

    __slots__ = ("_client",)

    def __init__(self, name: str, client: Client):
        super().__init__(name)
        self._client = client

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
            frames.append(item.to_wire())
        # no round trip: the runtime takes the frames in order before the app's next request, and a failure is
        # raised by that request
        self._client.request({"op": "put", "port": self.name, "frames": frames}, answer=False)


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

    def __dir__(self) -> List[str]:
        return sorted(k for k in self.__dict__ if not k.startswith("_"))

    def __iter__(self) -> Any:
        return iter(self.__dir__())

    def __repr__(self) -> str:
        return f"<panoramasdk {self._kind} ports: {', '.join(self.__dir__())}>"
