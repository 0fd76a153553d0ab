"""The shipped examples run: hello_panorama on a generated clip, text_detector with the real PP-OCRv4
model."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_panoflow

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox needs Linux mount namespaces")


def _wheel() -> str | None:
    found = sorted(glob.glob(str(ROOT / ".cache" / "wheels" / "rapidocr_onnxruntime-1.4.4-*.whl")))
    return found[0] if found else None


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clip = tmp_path_factory.mktemp("demo") / "clip.mp4"
    subprocess.run([sys.executable, str(ROOT / "examples" / "make_demo_clip.py"), str(clip)], check=True,
                   capture_output=True)
    return clip


def test_hello_panorama_counts_every_frame(tmp_path: Path, demo_clip: Path) -> None:
    proc = run_panoflow("run", str(ROOT / "examples" / "hello_panorama"), "--camera",
                        f"camera_node={demo_clip}", "--frames", "40", "--state-dir", str(tmp_path / "s"))
    assert proc.returncode == 0, proc.stderr
    assert "frames per camera: {'camera_node': 40}" in proc.stdout


@pytest.mark.skipif(_wheel() is None, reason="scripts/test fetches rapidocr-onnxruntime's wheel into "
                                             ".cache/wheels")
def test_text_detector_finds_the_three_signs(tmp_path: Path, demo_clip: Path) -> None:
    app = tmp_path / "text_detector"
    shutil.copytree(ROOT / "examples" / "text_detector", app, ignore=shutil.ignore_patterns("*.tar.gz"))
    subprocess.run([sys.executable, str(app / "build_model.py"), str(_wheel())], check=True,
                   capture_output=True)
    proc = run_panoflow("run", str(app), "--camera", f"camera_node={demo_clip}", "--frames", "30",
                        "--state-dir", str(tmp_path / "s"), timeout=180)
    assert proc.returncode == 0, proc.stderr
    log = (tmp_path / "s" / "logs" / "code_node" / "app.log").read_text()
    assert "frame 30: 3 text regions" in log, log
