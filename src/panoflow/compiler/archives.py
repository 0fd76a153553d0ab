"""A model package's files to a compiled model: what ``panoflow compile-model``, the model store and the
control plane share.

- :func:`request_for` turns a descriptor and an extracted archive into a :class:`CompileRequest` (inputs named
  and shaped as the descriptor says).
- :func:`compile_archive` checks and extracts an archive file (``add-raw-model``'s ``assets/<sha256>.tar.gz``)
  into a cache folder, reads its descriptor file and compiles it.
- :func:`generated_asset_name` is the file name under which a control plane stores a compiled model beside the
  package's assets; a device finds it by the archive's and the descriptor's SHA-256 and skips compiling.
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from panoflow.archives import safe_extract
from panoflow.compiler.convert import CompiledModel, CompileRequest, InputSpec, ModelCompiler, publish
from panoflow.core.manifest import ModelDescriptor, parse_descriptor
from panoflow.core.manifest.packages import file_sha256
from panoflow.exceptions import ManifestError, ModelError

__all__ = ["compile_archive", "descriptor_digest", "generated_asset_name", "read_descriptor", "request_for"]

_SHA_NAME = re.compile(r"^([0-9a-f]{64})\.")
_DONE = ".complete"


def generated_asset_name(archive_sha256: str, descriptor_sha256: str) -> str:
    """``compiled-<archive sha256>-<descriptor sha256, 16 digits>.onnx``."""
    return f"compiled-{archive_sha256}-{descriptor_sha256[:16]}.onnx"


def descriptor_digest(descriptor_uri: str) -> str:
    """The SHA-256 in a descriptor file name such as ``<sha256>.json`` ("" when it has none)."""
    m = _SHA_NAME.match(Path(descriptor_uri).name)
    return m.group(1) if m else ""


def request_for(model_dir: Path, digest: str, descriptor: ModelDescriptor, archive_name: str,
                descriptor_name: str) -> CompileRequest:
    inputs = tuple(InputSpec(t.name, tuple(t.shape), t.type or "") for t in descriptor.inputs)
    return CompileRequest(model_dir, digest, descriptor.framework.upper(), inputs, archive_name,
                          descriptor_name)


def read_descriptor(path: Path) -> ModelDescriptor:
    """The mlModelDescriptor in ``path``; :class:`ModelError` naming the file when it is not one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the descriptor {path}: {exc.strerror or exc}") from None
    try:
        desc = parse_descriptor(data, str(path)).unwrap()
    except ManifestError as exc:
        raise ModelError(f"the descriptor {path} is not valid: {exc}") from None
    if not isinstance(desc, ModelDescriptor):
        raise ModelError(f"{path} is a runtime descriptor; compiling a model needs its mlModelDescriptor")
    return desc


def _extract(archive: Path, digest: str, cache_dir: Path, label: str) -> Path:
    final = cache_dir / digest
    if (final / _DONE).is_file():
        return final / "model"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=cache_dir))
    try:
        (tmp / "model").mkdir()
        try:
            safe_extract(archive, tmp / "model")
        except (ValueError, tarfile.TarError, OSError, EOFError) as exc:
            why = " ".join(str(exc).split())  # one line: tarfile's messages have several
            raise ModelError(f"{label}: not a readable model archive (.tar.gz): {why}") from None
        publish(tmp, final, archive.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final / "model"


def compile_archive(archive: Path, descriptor_path: Path, compiler: ModelCompiler, cache_dir: Path, *,
                    archive_name: str | None = None, descriptor_name: str | None = None) -> CompiledModel:
    """Compile the model archive ``archive`` as ``descriptor_path`` describes it, extracting and compiling
    under ``cache_dir`` (``<sha256>/model/`` and ``<sha256>/compiled/<key>/``). Errors name both files (as
    ``archive_name`` and ``descriptor_name`` when given)."""
    desc_label = descriptor_name or str(descriptor_path)
    arc_label = archive_name or str(archive)
    label = f"model archive {arc_label} (descriptor {desc_label})"
    descriptor = read_descriptor(descriptor_path)
    if descriptor.framework.upper() == "ONNX":
        raise ModelError(f"{label}: the descriptor's framework is ONNX already; there is nothing to compile "
                         "(set it to PYTORCH, MXNET or TENSORFLOW for a model in one of those)")
    if not archive.is_file():
        raise ModelError(f"{label}: no such file")
    digest = file_sha256(archive)
    claimed = _SHA_NAME.match(archive.name)
    if claimed and claimed.group(1) != digest:
        raise ModelError(f"{label}: the file does not match the SHA-256 in its name (it hashes to {digest}); "
                         "re-add the model or restore the file")
    model_dir = _extract(archive, digest, cache_dir, label)
    request = request_for(model_dir, digest, descriptor, arc_label, desc_label)
    return compiler.compile(request, cache_dir / digest / "compiled")
