"""Fixtures for the packaging tests: the commands in-process, tiny wheels, a fake Docker, a video clip."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import panoflow.cli
from tests.packaging.commands import FAKE_DOCKER, FakeDocker, Result
from tests.packaging.wheelfactory import make_wheel


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli("create-package", "--name", "X", cwd=dir)``: ``panoflow ...`` in this process, in ``cwd``; the
    packaging commands are registered even before the lead adds them to ``panoflow.cli.COMMANDS``."""
    if "project" not in panoflow.cli.COMMANDS:
        monkeypatch.setattr(panoflow.cli, "COMMANDS", (*panoflow.cli.COMMANDS, "project"))

    def run(*args: str | os.PathLike[str], cwd: Path | None = None) -> Result:
        capsys.readouterr()
        if cwd is not None:
            monkeypatch.chdir(cwd)
        try:
            code = panoflow.cli.main(["--log-format", "json", *map(str, args)])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of wheels: ``pf-test-greeting`` 1.0 (module ``pf_greeting``) requiring ``pf-test-dep`` (module
    ``pf_test_dep``), and a stray ``pf-test-unused``."""
    d = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(d, "pf-test-greeting", "1.0",
               {"pf_greeting/__init__.py": "from pf_test_dep import WORD\n\nGREETING = 'hello ' + WORD\n"},
               requires=["pf-test-dep>=0.1"])
    make_wheel(d, "pf-test-dep", "0.2", {"pf_test_dep.py": "WORD = 'from a wheel'\n"})
    make_wheel(d, "pf-test-unused", "3.0", {"pf_test_unused.py": ""})
    return d


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    """A ``docker`` first on PATH that records its calls; no engine answers unless FAKE_DOCKER_ENGINE=1."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    exe = bin_dir / "docker"
    exe.write_text(textwrap.dedent(FAKE_DOCKER.format(python=sys.executable)))
    exe.chmod(0o755)
    log = tmp_path / "docker-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.delenv("FAKE_DOCKER_ENGINE", raising=False)
    return FakeDocker(log)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.media import make_clip

    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=12, size=(320, 240), seed=3)
