"""Every error panoflow raises on purpose.

One root, :class:`PanoflowError`, and a leaf per subsystem. Leaves also subclass the matching builtin where
one fits, so ``except ValueError`` in user code keeps working. Each carries enough context (file, JSON
pointer, node id) for the CLI to print one clear line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CloudError",
    "ManifestError",
    "ModelError",
    "NodeError",
    "PanoflowError",
    "PluginError",
    "Problem",
    "SandboxError",
    "SourceError",
]


class PanoflowError(Exception):
    """Root of every error panoflow raises deliberately."""


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong (or suspicious) in an application's files.

    ``file`` is the path as the user gave it (relative to the app directory where possible), ``pointer`` an
    RFC 6901 JSON pointer into that file ("" for the whole document), ``hint`` one line on how to fix it.
    """

    file: str
    pointer: str
    message: str
    hint: str = ""
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        text = f"{self.file}:{self.pointer or '/'}: {self.severity}: {self.message}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text

    def as_dict(self) -> dict[str, str]:
        return {
            "file": self.file,
            "pointer": self.pointer,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
        }


class ManifestError(PanoflowError, ValueError):
    """An application's manifests are invalid. ``problems`` lists every error (and warning) found, sorted."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: tuple[Problem, ...] = tuple(sorted(problems))
        errors = [p for p in self.problems if p.severity == "error"]
        head = f"{len(errors)} problem(s) in the application manifests"
        super().__init__("\n".join([head, *(str(p) for p in errors)]))

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")


class PluginError(PanoflowError, RuntimeError):
    """A plugin is missing, broken, or two plugins claim the same name."""


class NodeError(PanoflowError, RuntimeError):
    """A graph node failed to start or run. ``node_id`` names it."""

    def __init__(self, message: str, *, node_id: str | None = None):
        self.node_id = node_id
        super().__init__(f"node {node_id}: {message}" if node_id else message)


class ModelError(NodeError):
    """A model could not be loaded or run."""


class SourceError(NodeError):
    """A media source failed (cannot open, unsupported codec, ...). Messages never contain credentials."""


class SandboxError(PanoflowError, OSError):
    """The OS refused to give an application its private /panorama and /opt/aws/panorama view."""


class CloudError(PanoflowError, ConnectionError):
    """Talking to the control plane failed."""
