"""A command whose optional dependencies are missing names the extra to install instead of an internal error.

botocore and boto3 stay installed (other tests need them): a ``sitecustomize`` in the child's ``PYTHONPATH``
puts a meta-path finder first that refuses to import them, as a machine without ``panoflow[controlplane]``
would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from panoflow.cli import EXTRAS, missing_extra

BLOCKER = '''
import importlib.abc
import sys

BLOCKED = {blocked!r}


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Blocker())
'''


def _panoflow(tmp_path: Path, blocked: tuple[str, ...], *args: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=blocked))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "panoflow", "--log-format", "json", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("args", [
    ("control-plane", "keys", "create", "--db", "sqlite:///cp.db"),
    ("control-plane", "serve", "--db", "sqlite:///cp.db", "--assets", "assets", "--listen", "127.0.0.1:0"),
])
def test_control_plane_without_its_extra_names_the_pip_install(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = _panoflow(tmp_path, ("botocore", "boto3"), *args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.strip().splitlines()[-1] == (
        "panoflow: error: botocore is not installed; this command needs panoflow's controlplane extra: "
        "pip install 'panoflow[controlplane]'"), r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr


def test_the_blocker_blocks_only_what_it_names(tmp_path: Path) -> None:
    """Without the blocked modules, the same command runs (so the test above tests the extra, not the
    blocker)."""
    r = _panoflow(tmp_path, ("not_a_module",), "control-plane", "keys", "create", "--db", "sqlite:///cp.db")
    assert r.returncode == 0, r.stderr
    assert '"AccessKeyId"' in r.stdout


def test_other_missing_modules_are_not_blamed_on_an_extra() -> None:
    assert missing_extra(ModuleNotFoundError("No module named 'foo'", name="foo")) == ""
    assert "panoflow[gpu]" in missing_extra(ModuleNotFoundError("x", name="cupy.cuda"))
    assert set(EXTRAS.values()) == {"controlplane", "gpu"}


def test_extras_match_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for module, extra in EXTRAS.items():
        names = " ".join(extras[extra]).replace("-", "_").lower()
        assert module.lower() in names, f"{module} is not in pyproject's {extra} extra"
