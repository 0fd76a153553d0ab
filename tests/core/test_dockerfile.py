"""Dockerfile understanding (what a code package puts under /panorama) and code staging."""

from __future__ import annotations

from pathlib import Path

import pytest

from panoflow.codefs import stage_code
from panoflow.core.dockerfile import parse_dockerfile
from panoflow.exceptions import NodeError


def test_copy_src_to_panorama() -> None:
    plan = parse_dockerfile("FROM public.ecr.aws/panorama/panorama-application\nCOPY src /panorama\n")
    assert plan.base_image == "public.ecr.aws/panorama/panorama-application"
    assert [(c.sources, c.dest) for c in plan.copies] == [(("src",), "/panorama")]


def test_workdir_copy_dot_and_pip() -> None:
    text = """FROM public.ecr.aws/panorama/panorama-application:1.2.0-py3.8
WORKDIR /panorama
COPY . .
RUN pip3 install --no-cache-dir -r requirements.txt && \\
    python3 -m pip install opencv-python-headless==4.5.5.64
RUN apt-get update
ENV A=1 B="two words"
"""
    plan = parse_dockerfile(text)
    assert plan.workdir == "/panorama"
    assert plan.copies[0].dest == "/panorama" and plan.copies[0].dest_is_dir
    assert plan.pip_installs == [["--no-cache-dir", "-r", "requirements.txt"],
                                 ["opencv-python-headless==4.5.5.64"]]
    assert plan.other_runs == ["line 6: apt-get update"]
    assert plan.env == {"A": "1", "B": "two words"}


def test_stage_code_styles(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "src" / "sub").mkdir(parents=True)
    (pkg / "src" / "app.py").write_text("x")
    (pkg / "src" / "sub" / "m.py").write_text("y")
    (pkg / "Dockerfile").write_text("COPY src /panorama\nCOPY src/app.py /opt/extra/\n")
    staged = stage_code(pkg, tmp_path / "root")
    assert staged.host_path("/panorama/app.py").read_text() == "x"
    assert staged.host_path("/panorama/sub/m.py").read_text() == "y"
    assert staged.host_path("/opt/extra/app.py").exists()
    assert staged.workdir == "/panorama"


def test_stage_code_refuses_paths_outside_the_package(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (tmp_path / "secret").write_text("s")
    (pkg / "Dockerfile").write_text("COPY ../secret /panorama/\n")
    with pytest.raises(NodeError, match="outside the package"):
        stage_code(pkg, tmp_path / "root")


def test_stage_code_missing_source_is_clear(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "Dockerfile").write_text("COPY src /panorama\n")
    with pytest.raises(NodeError, match="Dockerfile line 1 copies 'src', which does not exist"):
        stage_code(pkg, tmp_path / "root")


def test_no_dockerfile_falls_back_to_src(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "src").mkdir(parents=True)
    (pkg / "src" / "app.py").write_text("x")
    assert stage_code(pkg, tmp_path / "root").host_path("/panorama/app.py").exists()
