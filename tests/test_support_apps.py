"""The test apps of :mod:`tests.support.apps` are valid Panorama applications: each writer's output loads
through panoflow's own manifest checks (the same as ``panoflow validate``), so a test that deploys one fails
on what it tests, never on a broken fixture. :func:`broken_app` is the one meant to fail, and does."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from panoflow.core.manifest import load_application
from panoflow.exceptions import ManifestError
from tests.support.apps import (
    ACCOUNT,
    STYLES,
    attack_app,
    broken_app,
    counter_app,
    greeter_app,
    param_app,
    routing_overrides,
    server_app,
    status_app,
    write_app,
    write_model_app,
)

WRITERS: dict[str, Callable[[Path], Path]] = {
    **{f"write_app[{style}]": (lambda root, s=style: write_app(root, style=s)) for style in STYLES},
    "write_app[workdir]": lambda root: write_app(root, dockerfile="workdir"),
    "write_model_app": lambda root: write_model_app(root, "print('hello')\n"),
    "counter_app": counter_app,
    "counter_app[on_signal]": lambda root: counter_app(root, on_signal=True),
    "server_app": lambda root: server_app(root, "srv", 8080),
    "status_app": lambda root: status_app(root, 9000, "t0ken"),
    "attack_app": lambda root: attack_app(root, Path("/var/lib/panoflow"), 7000, "mark"),
    "param_app": param_app,
    "greeter_app": greeter_app,
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_writer_writes_a_valid_application(name: str, tmp_path: Path) -> None:
    root = WRITERS[name](tmp_path / "app")
    app = load_application(root)
    assert app.graph.nodes, name


def test_the_code_node_runs_the_code_it_was_given(tmp_path: Path) -> None:
    root = write_app(tmp_path / "app", code="print('mine')\n")
    code = (root / "packages" / f"{ACCOUNT}-TEST_CODE-1.0" / "src" / "app.py").read_text()
    assert code == "import panoramasdk\nprint('mine')\n"
    descriptor = json.loads((root / "packages" / f"{ACCOUNT}-TEST_CODE-1.0" / "descriptor.json").read_text())
    assert descriptor["runtimeDescriptor"]["entry"] == {"path": "python3", "name": "/panorama/app.py"}


def test_routing_overrides_check_against_the_server_app(tmp_path: Path) -> None:
    root = server_app(tmp_path / "app", "srv", 80)
    overrides = routing_overrides(tmp_path / "override.json", 80, 8080)
    load_application(root, overrides=overrides)


def test_the_broken_app_is_refused_naming_the_missing_port(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="nope_in"):
        load_application(broken_app(tmp_path / "app"))
