"""Structural validation: Panorama's schemas (offline), readable messages, exact pointers, panoflow
extensions."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from panoflow.core.manifest import parse_descriptor, parse_graph, parse_overrides, parse_package
from panoflow.core.manifest import schema as schema_module
from panoflow.exceptions import Problem

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "panorama-apps"
SAMPLE_GRAPH = FIXTURES / "aws-panorama-sample/graphs/my-app/graph.json"
SAMPLE_CODE = FIXTURES / "aws-panorama-sample/packages/123456789012-SAMPLE_CODE-1.0/package.json"


def _graph() -> dict[str, Any]:
    return json.loads(SAMPLE_GRAPH.read_text())


def _problems(doc: Any, parse: Any = parse_graph) -> tuple[Problem, ...]:
    parsed = parse(json.dumps(doc).encode(), "doc.json")
    assert parsed.model is None
    return parsed.problems


def _only(doc: Any, parse: Any = parse_graph) -> Problem:
    (problem,) = _problems(doc, parse)
    assert problem.file == "doc.json" and problem.severity == "error" and problem.hint
    return problem


def test_every_bundled_schema_is_in_the_offline_registry() -> None:
    root = Path(schema_module.__file__).resolve().parents[2] / "schemas"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.schema.json"))
    assert len(files) == 50  # 49 Panorama schemas + panoflow's extension
    registry = schema_module._registry()
    for rel in files:
        assert registry.contents(schema_module.SCHEMA_BASE_URI + rel)


def test_validation_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access during validation")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    schema_module._registry.cache_clear()
    schema_module._validator.cache_clear()
    schema_module._extension.cache_clear()
    doc = _graph()
    doc["nodeGraph"]["nodes"][0]["launch"] = "never"
    assert _only(doc).pointer == "/nodeGraph/nodes/0/launch"
    for path in FIXTURES.rglob("package.json"):
        schema_module.schema_problems(json.loads(path.read_text()), "package", "package.json")


def test_missing_required_key() -> None:
    doc = _graph()
    del doc["nodeGraph"]["envelopeVersion"]
    problem = _only(doc)
    assert (problem.pointer, problem.message) == ("/nodeGraph", "missing required key 'envelopeVersion'")


def test_wrong_type_inside_a_node_picks_the_node_kind_meant() -> None:
    doc = _graph()
    doc["nodeGraph"]["nodes"][2]["overridable"] = "yes"
    problem = _only(doc)
    assert problem.pointer == "/nodeGraph/nodes/2/overridable"
    assert problem.message == "node 'camera_node' (nodes/2) overridable: must be true or false, not 'yes'"


def test_parameter_value_of_the_wrong_type() -> None:
    doc = _graph()
    doc["nodeGraph"]["nodes"][4]["value"] = "high"
    problem = _only(doc)
    assert problem.pointer == "/nodeGraph/nodes/4/value"
    assert problem.message == "node 'detection_threshold' (nodes/4) value: must be a number, not 'high'"


def test_unknown_interface_lists_what_is_allowed() -> None:
    doc = _graph()
    doc["nodeGraph"]["nodes"][1]["interface"] = "bogus"
    problem = _only(doc)
    assert problem.pointer == "/nodeGraph/nodes/1/interface"
    assert problem.message == "'bogus' is not a valid interface"
    assert (
        "'boolean', 'float32', 'int32', 'string'" in problem.hint
        and "ACCOUNT::PACKAGE.INTERFACE" in problem.hint
    )


def test_node_that_is_not_an_object() -> None:
    doc = _graph()
    doc["nodeGraph"]["nodes"][0] = 5
    problem = _only(doc)
    assert problem.pointer == "/nodeGraph/nodes/0" and problem.message == "expected an object, got 5"


def test_unknown_key_suggests_the_close_one() -> None:
    doc = _graph()
    doc["nodeGraph"]["nodes"][2]["overrideMandatry"] = True
    problem = _only(doc)
    assert problem.pointer == "/nodeGraph/nodes/2/overrideMandatry"
    assert problem.hint == "did you mean 'overrideMandatory'?"


def test_pointer_escapes_tilde_and_slash() -> None:
    doc = _graph()
    doc["nodeGraph"]["a/b~c"] = 1
    assert _only(doc).pointer == "/nodeGraph/a~1b~0c"


def test_enum_and_min_items() -> None:
    doc = _graph()
    doc["nodeGraph"]["nodes"][0]["launch"] = "sometimes"
    doc["nodeGraph"]["packages"] = []
    problems = {p.pointer: p for p in _problems(doc)}
    assert "'onDemand', 'onAppStart', 'onSignal'" in problems["/nodeGraph/nodes/0/launch"].message
    assert problems["/nodeGraph/packages"].message == "'packages' needs at least 1 entry"


def test_pattern_messages_say_the_character_rule() -> None:
    doc = _graph()
    doc["nodeGraph"]["packages"][0]["version"] = "v1"
    problem = _only(doc)
    assert problem.pointer == "/nodeGraph/packages/0/version"
    assert problem.hint == 'write it as <major>.<minor>, e.g. "1.0"'


def test_port_type_error_inside_a_package() -> None:
    doc = json.loads(SAMPLE_CODE.read_text())
    doc["nodePackage"]["interfaces"][0]["inputs"][0]["type"] = "video"
    problem = _only(doc, parse_package)
    assert problem.pointer == "/nodePackage/interfaces/0/inputs/0/type"
    assert "'media'" in problem.hint


def test_requirement_error_inside_the_hardware_branch() -> None:
    doc = json.loads(SAMPLE_CODE.read_text())
    doc["nodePackage"]["assets"] = [{"name": "code", "implementations": [{
        "type": "container", "assetUri": "x.tar.gz",
        "requirements": [{"type": "hardware_access", "inferenceAccelerators": [
            {"deviceType": "gpu", "sharedResourcePolicy": {"policy": "allow_all"}}]}]}]}]
    doc["nodePackage"]["interfaces"][0]["asset"] = "code"
    problem = _only(doc, parse_package)
    assert (
        problem.pointer
        == "/nodePackage/assets/0/implementations/0/requirements/0/inferenceAccelerators/0/deviceType"
    )


def test_nv_accelerators_is_a_warning_and_its_content_is_still_checked() -> None:
    doc = json.loads(SAMPLE_CODE.read_text())
    doc["nodePackage"]["assets"] = [{"name": "code_asset", "implementations": [{
        "type": "container", "assetUri": "x.tar.gz",
        "requirements": [{"type": "hardware_access", "nvAccelerators": [{"deviceType": "cpu"}]}]}]}]
    requirement = "/nodePackage/assets/0/implementations/0/requirements/0"
    assert {(p.severity, p.pointer) for p in _problems(doc, parse_package)} == {
        ("warning", f"{requirement}/nvAccelerators"),
        ("error", f"{requirement}/nvAccelerators/0"),  # sharedResourcePolicy missing
        ("error", f"{requirement}/nvAccelerators/0/deviceType"),
    }


def _descriptor(framework: str) -> dict[str, Any]:
    return {"mlModelDescriptor": {"envelopeVersion": "2021-01-01", "framework": framework,
                                  "inputs": [{"name": "input", "shape": [1, 3, 224, 224]}]}}


def test_onnx_framework_is_panoflows_extension() -> None:
    parsed = parse_descriptor(json.dumps(_descriptor("ONNX")).encode(), "descriptor.json")
    assert parsed.problems == () and parsed.model is not None and parsed.model.framework == "ONNX"


def test_unknown_framework_is_still_rejected_with_panoramas_list() -> None:
    problem = _only(_descriptor("CAFFE"), parse_descriptor)
    assert problem.pointer == "/mlModelDescriptor/framework"
    assert "'TENSORFLOW', 'PYTORCH', 'MXNET'" in problem.message


def test_extension_only_forgives_its_own_property() -> None:
    doc = _descriptor("ONNX")
    doc["mlModelDescriptor"]["precisionMode"] = "ONNX"
    assert _only(doc, parse_descriptor).pointer == "/mlModelDescriptor/precisionMode"


def test_descriptor_dependencies_and_envelope() -> None:
    entry_only_path = {"runtimeDescriptor": {"envelopeVersion": "2021-01-01", "entry": {"path": "python3"}}}
    problem = _only(entry_only_path, parse_descriptor)
    assert (problem.pointer, problem.message) == ("/runtimeDescriptor/entry", "'path' needs 'name' too")
    both = {**_descriptor("ONNX"), "runtimeDescriptor": {"envelopeVersion": "2021-01-01"}}
    assert "both" in _only(both, parse_descriptor).message
    assert "missing the top-level key" in _only({}, parse_descriptor).message


def test_empty_or_foreign_documents() -> None:
    assert _only({}).message == "missing the top-level key 'nodeGraph'"
    problem = _only([])
    assert (problem.pointer, problem.message) == ("", "the document must be an object, not an array")
    package_as_graph = json.loads(SAMPLE_CODE.read_text())
    assert {p.pointer for p in _problems(package_as_graph)} == {"/nodePackage"}


def test_edges_in_overrides_are_schema_valid_but_warned_about() -> None:
    doc = {"nodeGraphOverrides": {"envelopeVersion": "2021-01-01",
                                  "edges": [{"producer": "a.b", "consumer": "c.d"}]}}
    parsed = parse_overrides(json.dumps(doc).encode(), "override.json")
    assert parsed.model is not None
    assert [(p.severity, p.pointer) for p in parsed.problems] == [("warning", "/nodeGraphOverrides/edges")]
