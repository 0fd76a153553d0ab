"""``overrideMandatory`` nodes are satisfied the same way with or without an overrides file: an overrides file
that replaces them, or a binding when the application runs (``--camera NODE=URI``, a registered camera,
``--param``).

Built on the reference sample (its ``camera_node`` is ``overrideMandatory``), with an overrides file that
replaces only the parameters, as a deployer who binds the camera on the command line writes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from panoflow.cli import main
from panoflow.core.graph import ResolveError, resolve
from panoflow.core.manifest import load_application
from panoflow.exceptions import ManifestError

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "panorama-apps" / "aws-panorama-sample"
OVERRIDE = "graphs/my-app/override.json"


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """The sample, plus ``params-only.json``: its overrides without the camera replacement."""
    target = tmp_path / "app"
    shutil.copytree(SAMPLE, target)
    doc = json.loads((target / OVERRIDE).read_text())
    body = doc["nodeGraphOverrides"]
    body["nodeOverrides"] = [r for r in body["nodeOverrides"] if r["replace"] != "camera_node"]
    body["nodes"] = [n for n in body["nodes"] if n["name"] != "camera_node_override"]
    body["packages"] = []
    (target / "graphs/my-app/params-only.json").write_text(json.dumps(doc))
    return target


def _load(app: Path, overrides: str | None) -> Any:
    return load_application(app, overrides=app / overrides if overrides else None)


@pytest.mark.parametrize("overrides", [None, "graphs/my-app/params-only.json"])
def test_camera_flag_satisfies_an_override_mandatory_camera(app: Path, overrides: str | None) -> None:
    loaded = _load(app, overrides)
    graph = resolve(loaded, cameras={"camera_node": ["/clip.mp4"]})
    assert [s.uri for s in graph.cameras["camera_node"].streams] == ["/clip.mp4"]
    registered = resolve(loaded, camera_lookup={"camera_node": "rtsp://cam/1"}.get)
    assert [s.uri for s in registered.cameras["camera_node"].streams] == ["rtsp://cam/1"]


@pytest.mark.parametrize("overrides", [None, "graphs/my-app/params-only.json"])
def test_an_unbound_override_mandatory_camera_is_refused_alike(app: Path, overrides: str | None) -> None:
    with pytest.raises(ResolveError) as info:
        resolve(_load(app, overrides))
    assert str(info.value).startswith("camera node 'camera_node' has no stream: bind one with --camera "
                                      "camera_node=URI")
    assert "overrideMandatory" in str(info.value)


def test_overrides_that_leave_the_camera_warn_and_say_how_to_bind_it(app: Path) -> None:
    loaded = _load(app, "graphs/my-app/params-only.json")
    (warning,) = [w for w in loaded.warnings if "must be overridden" in w.message]
    assert warning.severity == "warning"
    assert "--camera camera_node=URI" in warning.hint


def test_replacing_the_camera_in_the_overrides_still_satisfies_it(app: Path) -> None:
    graph = resolve(_load(app, OVERRIDE), cameras={"camera_node_override": ["/clip.mp4"]})
    assert set(graph.cameras) == {"camera_node_override"}


def _mark_mandatory(app: Path, name: str) -> None:
    path = app / "graphs/my-app/graph.json"
    doc = json.loads(path.read_text())
    node = next(n for n in doc["nodeGraph"]["nodes"] if n["name"] == name)
    node.update(overridable=True, overrideMandatory=True)
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("overrides", [None, "graphs/my-app/params-only.json"])
def test_an_override_mandatory_parameter_needs_param_alike(app: Path, overrides: str | None) -> None:
    _mark_mandatory(app, "detection_threshold")
    loaded = _load(app, overrides)
    with pytest.raises(ResolveError, match="parameter node 'detection_threshold' is overrideMandatory: give "
                                           "it with --param detection_threshold=VALUE"):
        resolve(loaded, cameras={"camera_node": ["/clip.mp4"]})
    graph = resolve(loaded, cameras={"camera_node": ["/clip.mp4"]}, params={"detection_threshold": "50"})
    assert graph.parameters["detection_threshold"] == 50.0


def test_a_node_that_cannot_be_bound_at_run_time_must_be_replaced(app: Path) -> None:
    _mark_mandatory(app, "model_node")
    with pytest.raises(ManifestError, match="'model_node' must be overridden"):
        _load(app, "graphs/my-app/params-only.json")


def test_validate_reports_the_warning_and_exits_0(app: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(app), "--overrides", str(app / "graphs/my-app/params-only.json")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "must be overridden" in captured.out + captured.err
