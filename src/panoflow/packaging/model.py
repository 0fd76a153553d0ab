"""``add-raw-model``: a model archive and its descriptor into ``assets/``, named by SHA-256, recorded in
packages.

As panorama-cli: the model becomes ``assets/<sha256>.tar.gz`` and the descriptor ``assets/<sha256>.json`` (its
bytes unchanged), and each package given gets the asset (an asset of the same name is replaced; files no
package uses any more are deleted). panoflow also accepts a bare ``.onnx`` file or a folder, which it packs
into a deterministic archive first.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from panoflow.core.manifest import ModelDescriptor, parse_descriptor
from panoflow.packaging.archive import TreeArchive
from panoflow.packaging.manifests import add_to_graph, checked_package, set_asset
from panoflow.packaging.project import PackageFolder, PackagingError, Project, check_name, write_bytes_atomic

__all__ = ["ModelResult", "add_raw_model"]


@dataclass
class ModelResult:
    asset: dict[str, object]
    packages: list[str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _store_model(project: Project, path: Path, framework: str, progress: Callable[[str], None]) -> str:
    if path.is_dir():
        archive = TreeArchive()
        archive.add_tree("", path)
        progress(f"packing folder {path} ({len(archive)} files) into a model archive")
        return project.write_asset(archive.write, ".tar.gz")[0]
    if not path.is_file():
        raise PackagingError(f"--model-local-path {str(path)!r}: no such file or folder")
    if path.suffix.lower() == ".onnx":
        archive = TreeArchive()
        archive.add_file(path.name, path)
        progress(f"packing {path.name} into a model archive")
        return project.write_asset(archive.write, ".tar.gz")[0]
    try:
        with tarfile.open(path, "r:*") as tar:
            names = tar.getnames()
    except (tarfile.TarError, OSError) as exc:
        raise PackagingError(f"--model-local-path {path}: not a model archive (.tar.gz), .onnx file or "
                             f"folder ({exc})") from None
    if framework.upper() == "ONNX" and not any(n.lower().endswith(".onnx") for n in names):
        progress(f"warning: {path.name} holds no .onnx file, and its descriptor says framework ONNX")
    return project.add_asset_file(path, ".tar.gz")


def add_raw_model(project: Project, asset_name: str, model_path: Path, descriptor_path: Path,
                  packages: Sequence[PackageFolder], progress: Callable[[str], None]) -> ModelResult:
    check_name("asset", asset_name, "--model-asset-name")
    if not descriptor_path.is_file():
        raise PackagingError(f"--descriptor-path {str(descriptor_path)!r}: no such file")
    desc_bytes = descriptor_path.read_bytes()
    desc = parse_descriptor(desc_bytes, project.display(descriptor_path)).unwrap()
    if not isinstance(desc, ModelDescriptor):
        raise PackagingError(f"{project.display(descriptor_path)} is a runtime descriptor; a model needs an "
                             "mlModelDescriptor (framework, inputs)")
    asset_uri = _store_model(project, model_path, desc.framework, progress)
    descriptor_uri = project.add_asset_bytes(desc_bytes, ".json")
    impl = {"type": "model", "assetUri": asset_uri, "descriptorUri": descriptor_uri}
    result = ModelResult({"name": asset_name, "implementations": [impl]})
    superseded: list[str] = []
    for folder in packages:
        before = project.read_json(folder.package_json)
        after = json.loads(json.dumps(before))
        change = set_asset(after, asset_name, impl, "ml_model")
        write_bytes_atomic(folder.package_json, checked_package(before, after,
                                                                project.display(folder.package_json)))
        superseded += change.superseded
        result.packages.append(project.display(folder.path))
        if change.new_interface:
            node = add_to_graph(project, folder, change.new_interface, asset_name)
            if node:
                result.nodes.append(node)
    result.removed = project.remove_unreferenced(superseded)
    return result
