"""Lay out a code package's files as its container would see them, without Docker.

``stage_code`` copies what the package's Dockerfile copies (``COPY src /panorama``, ``WORKDIR /panorama`` +
``COPY . .``...) into a staging root owned by panoflow; the sandbox then shows ``<root>/panorama`` as
``/panorama``. A package without a Dockerfile is treated as ``COPY src /panorama`` when it has ``src/``, else
``COPY . /panorama``.
"""

from __future__ import annotations

import glob
import shutil
from pathlib import Path

import structlog

from panoflow.core.dockerfile import DockerfilePlan, parse_dockerfile
from panoflow.exceptions import NodeError

__all__ = ["StagedCode", "stage_code"]

log = structlog.get_logger(__name__)

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", "Dockerfile", ".DS_Store")


class StagedCode:
    def __init__(self, root: Path, plan: DockerfilePlan):
        self.root = root
        self.plan = plan

    @property
    def workdir(self) -> str:
        return self.plan.workdir if self.plan.workdir != "/" else "/panorama"

    def host_path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")


def _plan_for(package_dir: Path) -> DockerfilePlan:
    dockerfile = package_dir / "Dockerfile"
    if dockerfile.is_file():
        return parse_dockerfile(dockerfile.read_text(encoding="utf-8", errors="replace"))
    source = "src" if (package_dir / "src").is_dir() else "."
    return parse_dockerfile(f"COPY {source} /panorama\n")


def stage_code(package_dir: Path, root: Path, *, node_id: str = "") -> StagedCode:
    """Copy the package's files into ``root`` as the Dockerfile places them. Sources may not leave the
    package."""
    plan = _plan_for(package_dir)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / "panorama").mkdir()
    base = package_dir.resolve()
    for copy in plan.copies:
        matches: list[Path] = []
        for pattern in copy.sources:
            hits = [Path(p) for p in sorted(glob.glob(str(base / pattern)))] or []
            for hit in hits:
                if not hit.resolve().is_relative_to(base):
                    raise NodeError(f"Dockerfile line {copy.line} copies {pattern!r}, which is outside the "
                                    "package folder", node_id=node_id)
            if not hits:
                raise NodeError(
                    f"Dockerfile line {copy.line} copies {pattern!r}, which does not exist in {package_dir}",
                    node_id=node_id,
                )
            matches.extend(hits)
        dest = root / copy.dest.lstrip("/")
        for src in matches:
            if src.is_dir():
                shutil.copytree(src, dest, ignore=_IGNORE, dirs_exist_ok=True)
            else:
                target = dest / src.name if (copy.dest_is_dir or dest.is_dir()) else dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
    if plan.unsupported or plan.other_runs:
        log.info("dockerfile_steps_ignored", node_id=node_id, steps=plan.unsupported + plan.other_runs)
    return StagedCode(root, plan)
