"""The control plane's side of compiling: at RegisterPackageVersion, each PYTORCH, MXNET or TENSORFLOW model
asset of the package is compiled (as SageMaker Neo did for Panorama) and stored as a generated asset,
``<GeneratedPrefixLocation>/compiled-<archive sha256>-<descriptor sha256[:16]>.onnx``. The version's
``Assets`` list it beside the package's own files, so a device downloads it with them and runs it instead of
compiling; the measured difference is kept in the version's ``CompiledModels``.

A model that cannot be compiled here (a broken archive, a converter environment that cannot be created) is
recorded as ``FAILED`` with the reason and left to the device, which then reports the same problem for its
node.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from panoflow.compiler.archives import compile_archive, generated_asset_name
from panoflow.compiler.convert import CompileOptions, ModelCompiler
from panoflow.compiler.environments import default_cache_dir
from panoflow.compiler.sources import FRAMEWORKS
from panoflow.core.manifest import ModelDescriptor, PackageConfig, parse_descriptor
from panoflow.exceptions import ModelError

if TYPE_CHECKING:
    from panoflow.controlplane.assets import AssetStore

__all__ = ["compile_package_models"]

log = structlog.get_logger("panoflow.controlplane")

#: the largest descriptor read (they are a few hundred bytes)
MAX_DESCRIPTOR = 1024 * 1024


def _descriptor(store: AssetStore, key: str) -> ModelDescriptor | None:
    with store.open(key) as fh:
        data = fh.read(MAX_DESCRIPTOR)
    parsed = parse_descriptor(data, key)
    return parsed.model if isinstance(parsed.model, ModelDescriptor) else None


def _holds_onnx(archive: Path) -> bool:
    try:
        with tarfile.open(archive, "r:*") as tar:
            return any(n.lower().endswith(".onnx") for n in tar.getnames())
    except (tarfile.TarError, OSError, EOFError):
        return False  # compile_archive says what is wrong with it


def compile_package_models(store: AssetStore, prefix: str, config: PackageConfig,
                           files: dict[str, dict[str, Any]],
                           compiler: ModelCompiler | None = None,
                           cache_dir: Path | None = None) -> tuple[list[dict[str, Any]],
                                                                   list[dict[str, Any]]]:
    """Compile the package's model assets; ``files`` are its checked asset files by file name (``Key``,
    ``Sha256``). Returns the generated assets (``{"Key", "FileName", "Sha256", "Size"}``) and one record per
    model considered (``{"AssetName", "Status": "COMPILED" | "FAILED", ...}``)."""
    generated: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for asset in config.assets:
        for impl in asset.implementations:
            archive, desc = files.get(impl.asset_uri or ""), files.get(impl.descriptor_uri or "")
            if impl.type != "model" or archive is None or desc is None:
                continue
            descriptor = _descriptor(store, desc["Key"])
            if descriptor is None or descriptor.framework.upper() not in FRAMEWORKS:
                continue
            name = generated_asset_name(archive["Sha256"], desc["Sha256"])
            key = f"{prefix}/{name}"
            compiler = compiler or ModelCompiler(CompileOptions(), progress=lambda line: log.info(
                "model_compiler_progress", message=line))
            with tempfile.TemporaryDirectory(prefix="panoflow-compile-") as tmp:
                local = Path(tmp) / archive["FileName"]
                with store.open(archive["Key"]) as src, open(local, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                if _holds_onnx(local):
                    continue  # the device runs the archive's own .onnx
                desc_path = Path(tmp) / desc["FileName"]
                with store.open(desc["Key"]) as src, open(desc_path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                try:
                    compiled = compile_archive(local, desc_path, compiler,
                                               cache_dir or default_cache_dir() / "controlplane-models",
                                               archive_name=archive["FileName"],
                                               descriptor_name=desc["FileName"])
                except ModelError as exc:
                    log.warning("model_not_compiled", asset=asset.name, reason=str(exc))
                    records.append({"AssetName": asset.name, "Status": "FAILED", "Reason": str(exc)})
                    continue
            with open(compiled.path, "rb") as fh:
                info = store.put(key, fh)
            report = compiled.report
            generated.append({"Key": key, "FileName": name, "Sha256": info.sha256, "Size": info.size})
            records.append({"AssetName": asset.name, "Status": "COMPILED", "FileName": name,
                            "Framework": report["framework"], "Converter": report["converter"],
                            "MaxAbsDiff": report["max_abs_diff"], "MaxRelDiff": report["max_rel_diff"],
                            "DynamicBatch": report["dynamic_batch"]})
            log.info("model_compiled_for_package", asset=asset.name, file=name,
                     max_abs_diff=report["max_abs_diff"])
    return generated, records
