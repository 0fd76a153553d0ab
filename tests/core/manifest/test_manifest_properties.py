"""Property tests: whatever the manifests hold, loading raises nothing but ManifestError.

(a) arbitrary JSON values (and bytes) as graph / overrides / package / descriptor;
(b) mutations of the reference manifests: dropped and renamed keys, wrong-typed values, random strings,
    dangling edges.
Most examples parse from memory (and run the semantic checks against the reference packages); one in four goes
through the loader on disk, in an application copied once per test and restored after each example.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panoflow.core.manifest import (
    Application,
    check_package,
    check_semantics,
    load_application,
    parse_descriptor,
    parse_graph,
    parse_overrides,
    parse_package,
)
from panoflow.exceptions import ManifestError, Problem

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "panorama-apps"
EXAMPLES = int(os.environ.get("PANOFLOW_HYPOTHESIS_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

APP = "debug-server"  # parameters of every kind, routing rules, overrides: the richest sample
FILES = {
    "graph": "graphs/my-app/graph.json",
    "overrides": "graphs/my-app/override.json",
    "package": "packages/123456789012-DEBUG_SERVER-1.0/package.json",
    "descriptor": "packages/123456789012-SQUEEZENET_PYTORCH-1.0/descriptor.json",
}
PARSERS: dict[str, Callable[[bytes, str], Any]] = {
    "graph": parse_graph, "overrides": parse_overrides, "package": parse_package,
    "descriptor": parse_descriptor,
}
TOP = {"graph": "nodeGraph", "overrides": "nodeGraphOverrides", "package": "nodePackage",
       "descriptor": "mlModelDescriptor"}
VOCABULARY = [
    "nodeGraph", "nodeGraphOverrides", "nodePackage", "mlModelDescriptor", "runtimeDescriptor",
    "envelopeVersion",
    "packages", "nodes", "edges", "name", "version", "interface", "value", "producer", "consumer",
    "nodeOverrides",
    "replace", "with", "networkRoutingRules", "node", "containerPort", "hostPort", "interfaces", "assets",
    "inputs",
    "outputs", "type", "category", "asset", "implementations", "assetUri", "descriptorUri", "requirements",
    "framework", "shape", "entry", "path", "network", "inboundPorts", "port", "overridable", "decorator",
]
MEANINGFUL: list[Any] = [
    "2021-01-01", "1.0", "code_node", "camera_node", "camera_node.video_out", "code_node.video_in",
    "ghost.port", "region", "123456789012::DEBUG_SERVER.interface", "123456789012::NOPE.x",
    "panorama::hdmi_data_sink.hdmi0",
    "media", "int32", "float32", "string", "boolean", "ml_model", "model", "container", "ONNX", 80, 8080,
    2**31, -1, 1e39, True, None, [], {},
]

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12)
           | st.sampled_from(MEANINGFUL))
keys = st.sampled_from(VOCABULARY) | st.text(max_size=8)
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=5), max_leaves=24
)


def _reference(kind: str) -> Any:
    return json.loads((FIXTURES / APP / FILES[kind]).read_text())


@pytest.fixture(scope="module")
def reference_app() -> Application:
    app_dir = FIXTURES / APP
    return load_application(app_dir, overrides=app_dir / FILES["overrides"])


@pytest.fixture(scope="module")
def scratch_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One copy of the application for all examples of a test; each example restores what it wrote."""
    target = tmp_path_factory.mktemp("props") / APP
    shutil.copytree(FIXTURES / APP, target)
    yield target


def _check_in_memory(kind: str, data: bytes, app: Application) -> list[Problem]:
    parsed = PARSERS[kind](data, FILES[kind])
    problems = list(parsed.problems)
    if parsed.model is None:
        with pytest.raises(ManifestError):
            parsed.unwrap()
        return problems
    if kind == "graph":
        problems += check_semantics(parsed.model, app.packages, overrides=app.overrides)
    elif kind == "overrides":
        problems += check_semantics(app.graph, app.packages, overrides=parsed.model)
    elif kind == "package":
        problems += check_package(parsed.model, FILES[kind])
    return problems


def _check_on_disk(app_dir: Path, kind: str, data: bytes) -> None:
    path = app_dir / FILES[kind]
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        load_application(app_dir, overrides=app_dir / FILES["overrides"])
    except ManifestError as exc:
        assert exc.errors, "ManifestError without an error"
        assert all(isinstance(p, Problem) and p.file for p in exc.problems)
    finally:
        path.write_bytes(original)


def _check(kind: str, data: bytes, on_disk: bool, app: Application, app_dir: Path) -> None:
    if on_disk:
        _check_on_disk(app_dir, kind, data)
        return
    for problem in _check_in_memory(kind, data, app):
        assert problem.severity in ("error", "warning") and problem.message
        assert problem.pointer == "" or problem.pointer.startswith("/")
        str(problem).encode("utf-8")  # printable


documents = st.one_of(
    json_values,
    st.tuples(st.sampled_from(sorted(TOP.values())), json_values).map(lambda kv: {kv[0]: kv[1]}),
)


@SETTINGS
@given(kind=st.sampled_from(sorted(FILES)), doc=documents, on_disk=st.integers(0, 3).map(lambda n: n == 0))
def test_arbitrary_json_never_raises_anything_but_manifest_error(
    kind: str, doc: Any, on_disk: bool, reference_app: Application, scratch_app: Path
) -> None:
    _check(kind, json.dumps(doc).encode(), on_disk, reference_app, scratch_app)


@SETTINGS
@given(kind=st.sampled_from(sorted(FILES)), data=st.binary(max_size=64))
def test_arbitrary_bytes_never_raise(kind: str, data: bytes, reference_app: Application,
                                     scratch_app: Path) -> None:
    _check(kind, data, False, reference_app, scratch_app)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*prefix, i))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _mutate(doc: Any, data: st.DataObject) -> Any:
    path = data.draw(st.sampled_from(list(_paths(doc))[1:]), label="path")
    parent, last = _at(doc, path[:-1]), path[-1]
    action = data.draw(st.sampled_from(["drop", "rename", "replace", "string", "dangle", "duplicate"]),
                       label="op")
    if action == "drop":
        del parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[data.draw(keys, label="new key")] = parent.pop(last)
    elif action == "string":
        parent[last] = data.draw(
            st.text(max_size=16) | st.sampled_from([m for m in MEANINGFUL if isinstance(m, str)])
        )
    elif action == "dangle" and isinstance(doc.get("nodeGraph"),
                                           dict) and isinstance(doc["nodeGraph"].get("edges"), list):
        ends = st.sampled_from([m for m in MEANINGFUL if isinstance(m, str)]) | st.text(max_size=10)
        doc["nodeGraph"]["edges"].append({"producer": data.draw(ends), "consumer": data.draw(ends)})
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(json.loads(json.dumps(parent[last])))
    else:
        parent[last] = data.draw(json_values, label="value")
    return doc


@SETTINGS
@given(kind=st.sampled_from(sorted(FILES)), data=st.data(), on_disk=st.integers(0, 3).map(lambda n: n == 0))
def test_mutated_reference_manifests_never_raise_anything_but_manifest_error(
    kind: str, data: st.DataObject, on_disk: bool, reference_app: Application, scratch_app: Path
) -> None:
    doc = _reference(kind)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        if not isinstance(doc, (dict, list)) or not list(_paths(doc))[1:]:
            break
        doc = _mutate(doc, data)
    _check(kind, json.dumps(doc).encode(), on_disk, reference_app, scratch_app)
