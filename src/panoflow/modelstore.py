"""Model packages on disk -> files a backend can load.

A Panorama model package names its archive ``assets/<sha256>.tar.gz`` (what ``panorama-cli add-raw-model``
writes). :class:`ModelStore` checks the archive against the SHA-256 in its name, extracts it once per digest
into a cache folder (refusing absolute paths, ``..``, devices and links that leave the folder), finds the
``.onnx`` file in it and checks the descriptor's ``framework``: ``ONNX`` is panoflow's own value; a
``PYTORCH``, ``TENSORFLOW`` or ``MXNET`` archive runs its ``.onnx`` when it holds one, else the model a
control plane compiled for it (the generated asset ``assets/compiled-<sha256>-<descriptor>.onnx`` beside the
archive), else it is compiled here by
:mod:`panoflow.compiler` (once per archive, descriptor and converter version: ``<sha256>/compiled/<key>/``).
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
from pathlib import Path

import structlog

from panoflow.archives import safe_extract
from panoflow.compiler import CompileOptions, ModelCompiler
from panoflow.compiler.archives import descriptor_digest, generated_asset_name, request_for
from panoflow.compiler.convert import publish
from panoflow.core.graph import ModelSpec
from panoflow.core.inference import ModelFiles, TensorInfo
from panoflow.core.manifest.packages import file_sha256
from panoflow.exceptions import ModelError

__all__ = ["EXPORT_HINTS", "ModelStore"]

log = structlog.get_logger(__name__)

_SHA_NAME = re.compile(r"^([0-9a-f]{64})\.")
_DONE = ".complete"

#: how to get an ONNX file out of each framework Panorama accepts
EXPORT_HINTS = {
    "PYTORCH": "torch.onnx.export(model, torch.zeros(1, 3, H, W), 'model.onnx', input_names=['data'], "
               "dynamic_axes={'data': {0: 'batch'}})",
    "TENSORFLOW": "python -m tf2onnx.convert --saved-model SAVED_MODEL_DIR --output model.onnx "
                  "(or --graphdef frozen.pb --inputs ... --outputs ...)",
    "MXNET": "mx.onnx.export_model('model-symbol.json', 'model-0000.params', [(1, 3, H, W)], np.float32, "
             "'model.onnx', dynamic=True)",
}


class ModelStore:
    """Extracted model archives under ``cache_dir/<sha256>/``, shared by every application that uses them."""

    def __init__(self, cache_dir: Path, compiler: ModelCompiler | None = None):
        """``compiler`` compiles PYTORCH, MXNET and TENSORFLOW archives (default: the converter environments
        under the user's cache folder, see :func:`panoflow.compiler.default_cache_dir`)."""
        self.cache_dir = Path(cache_dir)
        self._compiler = compiler

    def prepare(self, spec: ModelSpec) -> ModelFiles:
        """Verify, extract (once) and inspect the archive of model node ``spec``; raises
        :class:`ModelError`."""
        node = spec.node_id
        desc = spec.descriptor
        if desc is None:
            raise ModelError(
                f"asset {spec.asset!r} of package {spec.package.ref.qualified} has no mlModelDescriptor; add "
                "its descriptor (assets/<sha256>.json named by descriptorUri, or descriptor.json in the "
                "package)",
                node_id=node)
        archive = spec.archive
        if archive is None:
            raise ModelError(
                f"the model archive of asset {spec.asset!r} ({self._asset_uri(spec) or 'no assetUri'}) is "
                "not in the application's assets/ folder; add it (panorama-cli add-raw-model does) to run "
                "the model",
                node_id=node)
        digest = self._verify(node, archive)
        try:
            folder = archive if archive.suffix == ".onnx" else self._extracted(node, archive, digest)
        except ModelError as exc:  # name the descriptor too: the two files a model package is
            # one line (tarfile's has several)
            text = " ".join(str(exc).removeprefix(f"node {node}: ").split())
            raise ModelError(f"{text} (descriptor {self._descriptor_name(spec)})", node_id=node) from None
        onnx = self._find_onnx(node, folder, desc.framework)
        cache = self.cache_dir / digest
        if onnx is None:
            onnx, cache = self._compiled(spec, archive, folder, digest)
        inputs = tuple(TensorInfo(t.name, tuple(t.shape), t.type or "float32") for t in desc.inputs)
        return ModelFiles(node, onnx, digest, desc.framework.upper(), (desc.precision_mode or "FP32").upper(),
                          inputs, cache)

    def _compiled(self, spec: ModelSpec, archive: Path, folder: Path, digest: str) -> tuple[Path, Path]:
        """The ONNX model of a PYTORCH/MXNET/TENSORFLOW archive, and the cache folder for what backends build
        from it: the control plane's generated asset when the application has it, else compiled here
        (cached)."""
        node, desc = spec.node_id, spec.descriptor
        assert desc is not None
        desc_uri = self._descriptor_uri(spec)
        desc_sha = descriptor_digest(desc_uri)
        if desc_sha:
            generated = archive.parent / generated_asset_name(digest, desc_sha)
            if generated.is_file():
                log.info("model_compiled_asset_used", node_id=node, file=generated.name)
                return generated, self.cache_dir / digest / "generated" / generated.stem
        if self._compiler is None:
            self._compiler = ModelCompiler(CompileOptions(), progress=lambda line: log.info(
                "model_compiler_progress", message=line))
        request = request_for(folder, digest, desc, archive.name, self._descriptor_name(spec))
        try:
            compiled = self._compiler.compile(request, self.cache_dir / digest / "compiled")
        except ModelError as exc:
            raise ModelError(str(exc), node_id=node) from None
        if not compiled.cached:
            log.info("model_compiled", node_id=node, framework=desc.framework.upper(),
                     max_abs_diff=compiled.report["max_abs_diff"],
                     max_rel_diff=compiled.report["max_rel_diff"])
        return compiled.path, compiled.path.parent

    @staticmethod
    def _descriptor_uri(spec: ModelSpec) -> str:
        asset = spec.package.config.asset(spec.asset)
        return next((i.descriptor_uri for i in asset.implementations if i.descriptor_uri),
                    "") if asset else ""

    def _descriptor_name(self, spec: ModelSpec) -> str:
        return self._descriptor_uri(spec) or (f"of asset {spec.asset!r} in package "
                                              f"{spec.package.ref.qualified}")

    @staticmethod
    def _asset_uri(spec: ModelSpec) -> str:
        asset = spec.package.config.asset(spec.asset)
        return next((i.asset_uri for i in asset.implementations if i.asset_uri), "") if asset else ""

    @staticmethod
    def _verify(node: str, archive: Path) -> str:
        try:
            digest = file_sha256(archive)
        except OSError as exc:
            raise ModelError(f"cannot read model archive {archive}: {exc.strerror or exc}",
                             node_id=node) from None
        named = _SHA_NAME.match(archive.name)
        if named and named.group(1) != digest:
            raise ModelError(f"model archive {archive.name} does not match the SHA-256 in its name (it "
                             f"hashes to {digest}); re-add the model or restore the file", node_id=node)
        return digest

    def _extracted(self, node: str, archive: Path, digest: str) -> Path:
        final = self.cache_dir / digest
        model_dir = final / "model"
        if (final / _DONE).is_file():
            log.debug("model_cache_hit", node_id=node, digest=digest[:12])
            return model_dir
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=self.cache_dir))
        try:
            (tmp / "model").mkdir()
            try:
                safe_extract(archive, tmp / "model")
            except (ValueError, tarfile.TarError, OSError) as exc:
                raise ModelError(f"model archive {archive.name}: {exc}", node_id=node) from None
            # one rename; an extraction another process finished first is kept (it may hold compiled models)
            publish(tmp, final, archive.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("model_extracted", node_id=node, digest=digest[:12], folder=str(final))
        return model_dir

    @staticmethod
    def _find_onnx(node: str, folder: Path, framework: str) -> Path | None:
        """The archive's ``.onnx`` file; None for a PYTORCH/MXNET/TENSORFLOW archive without one (compile
        it)."""
        if folder.is_file():
            return folder
        found = sorted(p for p in folder.rglob("*.onnx") if p.is_file() and not p.name.startswith("._"))
        if len(found) > 1:
            named = [p for p in found if p.name == "model.onnx"]
            if len(named) != 1:
                names = ", ".join(str(p.relative_to(folder)) for p in found)
                raise ModelError(f"the model archive holds several .onnx files ({names}); keep one, or name "
                                 "the one to run model.onnx", node_id=node)
            found = named
        fw = framework.upper()
        if found:
            if fw != "ONNX":
                log.info("model_onnx_used", node_id=node, framework=fw, file=found[0].name)
            return found[0]
        if fw in EXPORT_HINTS:
            return None
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        listing = ", ".join(files[:8]) + (" ..." if len(files) > 8 else "") or "nothing"
        what = (
            "framework ONNX needs an .onnx file"
            if fw == "ONNX"
            else f"framework {framework} is not one panoflow knows"
        )
        raise ModelError(f"{what}, and the archive holds {listing}. Put model.onnx in the archive (tar czf "
                         "model.tar.gz model.onnx) with framework ONNX, or give a PYTORCH, MXNET or "
                         "TENSORFLOW model with that framework (panoflow compiles it)", node_id=node)
