"""Which files of an extracted model archive are the model, per framework, as SageMaker Neo accepted them.

- ``PYTORCH``: one TorchScript file (``.pth`` or ``.pt``, traced or scripted).
- ``MXNET``: ``<prefix>-symbol.json`` and ``<prefix>-<epoch>.params`` (any epoch number; the highest wins).
- ``TENSORFLOW``: a SavedModel folder (``saved_model.pb``), else a frozen GraphDef ``.pb``, else a Keras
  ``.h5`` or ``.keras`` file.

Only file names are read here (and a symbol file's JSON), so a missing params file is reported before any
converter environment is created.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from panoflow.exceptions import ModelError

__all__ = ["FRAMEWORKS", "SourceModel", "locate"]

FRAMEWORKS = ("PYTORCH", "MXNET", "TENSORFLOW")
_PARAMS = re.compile(r"^(?P<prefix>.+)-(?P<epoch>\d+)\.params$")


@dataclass(frozen=True)
class SourceModel:
    """The model's files (by role: ``model``; ``symbol``/``params``; ``saved_model``/``frozen``/``keras``)."""

    framework: str
    files: dict[str, Path] = field(default_factory=dict)

    def describe(self, root: Path) -> str:
        return ", ".join(f"{role} {p.relative_to(root)}" for role, p in self.files.items())


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("._"))


def _listing(folder: Path) -> str:
    names = [str(p.relative_to(folder)) for p in _files(folder)]
    return (", ".join(names[:8]) + (" ..." if len(names) > 8 else "")) or "nothing"


def locate(folder: Path, framework: str, label: str) -> SourceModel:
    """The model files under ``folder`` for ``framework``; :class:`ModelError` starting with ``label`` (which
    names the archive and the descriptor) when they are missing or ambiguous."""
    fw = framework.upper()
    if fw == "PYTORCH":
        return _pytorch(folder, label)
    if fw == "MXNET":
        return _mxnet(folder, label)
    if fw == "TENSORFLOW":
        return _tensorflow(folder, label)
    raise ModelError(f"{label}: framework {framework!r} cannot be compiled; use ONNX, PYTORCH, MXNET or "
                     "TENSORFLOW")


def _pytorch(folder: Path, label: str) -> SourceModel:
    found = [p for p in _files(folder) if p.suffix.lower() in (".pth", ".pt")]
    if not found:
        raise ModelError(f"{label}: a PYTORCH model archive holds a TorchScript .pth or .pt file, and this "
                         f"one holds {_listing(folder)}")
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in found)
        raise ModelError(f"{label}: the archive holds several PyTorch files ({names}); keep the one to run")
    if not zipfile.is_zipfile(found[0]):
        raise ModelError(f"{label}: {found[0].relative_to(folder)} is not a TorchScript file "
                         "(torch.jit.trace or torch.jit.script, then .save(), writes a zip archive; "
                         "SageMaker Neo took the same)")
    return SourceModel("PYTORCH", {"model": found[0]})


def _mxnet(folder: Path, label: str) -> SourceModel:
    files = _files(folder)
    symbols = [p for p in files if p.name.endswith("-symbol.json")]
    if not symbols:
        raise ModelError(f"{label}: an MXNET model archive holds <name>-symbol.json and "
                         f"<name>-<epoch>.params, and this one holds {_listing(folder)}")
    if len(symbols) > 1:
        names = ", ".join(str(p.relative_to(folder)) for p in symbols)
        raise ModelError(f"{label}: the archive holds several MXNet symbol files ({names}); keep the one to "
                         "run")
    symbol = symbols[0]
    prefix = symbol.name[: -len("-symbol.json")]
    params = []
    for p in files:
        m = _PARAMS.match(p.name)
        if m and m.group("prefix") == prefix and p.parent == symbol.parent:
            params.append((int(m.group("epoch")), p))
    rel = symbol.relative_to(folder)
    if not params:
        raise ModelError(f"{label}: the params file of {rel} is missing: expected {prefix}-<epoch>.params "
                         f"(e.g. {prefix}-0000.params) beside it; the archive holds {_listing(folder)}")
    try:
        doc = json.loads(symbol.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{label}: {rel} is not an MXNet symbol file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nodes"), list):
        raise ModelError(f"{label}: {rel} is not an MXNet symbol file (it has no 'nodes' list)")
    return SourceModel("MXNET", {"symbol": symbol, "params": max(params)[1]})


def _tensorflow(folder: Path, label: str) -> SourceModel:
    files = _files(folder)
    saved = [p for p in files if p.name in ("saved_model.pb", "saved_model.pbtxt")]
    if len(saved) > 1:
        names = ", ".join(str(p.parent.relative_to(folder)) for p in saved)
        raise ModelError(f"{label}: the archive holds several SavedModels ({names}); keep the one to run")
    if saved:
        return SourceModel("TENSORFLOW", {"saved_model": saved[0].parent})
    frozen = [p for p in files if p.suffix == ".pb"]
    keras = [p for p in files if p.suffix in (".h5", ".keras")]
    for kind, found in (("frozen", frozen), ("keras", keras)):
        if len(found) > 1:
            names = ", ".join(str(p.relative_to(folder)) for p in found)
            raise ModelError(f"{label}: the archive holds several TensorFlow model files ({names}); keep the "
                             "one to run")
        if found:
            return SourceModel("TENSORFLOW", {kind: found[0]})
    raise ModelError(f"{label}: a TENSORFLOW model archive holds a SavedModel folder (saved_model.pb), a "
                     f"frozen graph (.pb) or a Keras file (.h5), and this one holds {_listing(folder)}")
