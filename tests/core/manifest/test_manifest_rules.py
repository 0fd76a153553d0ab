"""One hand-broken application per rule: each must be reported at exactly the right file and JSON pointer.

Every case copies a reference application, edits its JSON, and checks the full set of errors (file, pointer)
plus a fragment of the message, so a rule that reports in the wrong place, or twice, fails.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from panoflow.core.manifest import load_application, validate_application
from panoflow.exceptions import ManifestError

SAMPLE = "aws-panorama-sample"
DEBUG = "debug-server"
GRAPH = "graphs/my-app/graph.json"
OVERRIDE = "graphs/my-app/override.json"
CODE_PKG = "packages/123456789012-SAMPLE_CODE-1.0/package.json"
DEBUG_PKG = "packages/123456789012-DEBUG_SERVER-1.0/package.json"
MODEL_PKG = "packages/123456789012-SQUEEZENET_PYTORCH-1.0/package.json"

Edit = Callable[[Path, Callable[[str, Callable[[Any], Any]], None]], None]


@dataclass(frozen=True)
class Case:
    app: str
    edit: Edit
    errors: set[tuple[str, str]]
    fragment: str
    overrides: str | None = None


def _graph(fn: Callable[[dict[str, Any]], Any]) -> Edit:
    return lambda app, edit: edit(GRAPH, lambda d: fn(d["nodeGraph"]))


def _override(fn: Callable[[dict[str, Any]], Any]) -> Edit:
    return lambda app, edit: edit(OVERRIDE, lambda d: fn(d["nodeGraphOverrides"]))


def _set(seq: list[Any], index: int, value: Any) -> None:
    seq[index] = value


def _node(d: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in d["nodes"] if n["name"] == name)


CASES: dict[str, Case] = {
    # packages
    "package_not_listed": Case(SAMPLE, _graph(lambda g: g["packages"].pop(0)),
                               {(GRAPH, "/nodeGraph/nodes/0/interface")}, "does not list"),
    "package_not_found": Case(SAMPLE, _graph(lambda g: g["packages"][0].update(version="2.0")),
                              {(GRAPH, "/nodeGraph/packages/0")}, "packages/123456789012-SAMPLE_CODE-2.0/"),
    "unknown_stock_package_version": Case(SAMPLE, _graph(lambda g: g["packages"][3].update(version="9.9")),
                                          {(GRAPH, "/nodeGraph/packages/3")}, "'output_node'"),
    "override_package_not_found": Case(
        SAMPLE,
        _override(lambda o: (o["packages"].append({"name": "123456789012::EXTRA", "version": "1.0"}),
                             o["nodes"].append({"name": "extra", "interface": "123456789012::EXTRA.x"}))),
        {(OVERRIDE, "/nodeGraphOverrides/packages/1")}, "needed by node 'extra'", OVERRIDE),
    "interface_not_in_package": Case(SAMPLE, _graph(lambda g: g["nodes"][0].update(
        interface="123456789012::SAMPLE_CODE.nope")), {(GRAPH, "/nodeGraph/nodes/0/interface")}, "'nope'"),
    "package_json_is_a_directory": Case(
        SAMPLE, lambda app, edit: ((app / CODE_PKG).unlink(), (app / CODE_PKG).mkdir()),
        {(CODE_PKG, "")}, "directory"),
    "package_folder_without_package_json": Case(
        SAMPLE, lambda app, edit: (app / CODE_PKG).unlink(), {(CODE_PKG, "")}, "file not found"),
    "package_name_mismatch": Case(SAMPLE, lambda app, edit: edit(CODE_PKG, lambda d: d["nodePackage"].update(
        name="OTHER")), {(CODE_PKG, "/nodePackage/name")}, "'OTHER'"),
    "interface_names_undefined_asset": Case(
        SAMPLE, lambda app, edit: edit(MODEL_PKG,
                                       lambda d: d["nodePackage"]["interfaces"][0].update(asset="nope")),
        {(MODEL_PKG, "/nodePackage/interfaces/0/asset")}, "'nope'"),
    "descriptor_of_the_wrong_kind": Case(
        SAMPLE, lambda app, edit: shutil.copy(
            app / "packages/123456789012-SQUEEZENET_PYTORCH-1.0/descriptor.json",
            app / "packages/123456789012-SAMPLE_CODE-1.0/descriptor.json"),
        {("packages/123456789012-SAMPLE_CODE-1.0/descriptor.json", "")}, "needs a runtimeDescriptor"),
    # edges
    "edge_unknown_producer_node": Case(
        SAMPLE, _graph(lambda g: g["edges"][0].update(producer="ghost.video_out")),
        {(GRAPH, "/nodeGraph/edges/0/producer")}, "'ghost'"),
    "edge_unknown_consumer_node": Case(
        SAMPLE, _graph(lambda g: g["edges"][1].update(consumer="ghost.video_in")),
        {(GRAPH, "/nodeGraph/edges/1/consumer")}, "'ghost'"),
    "edge_unknown_input_port": Case(SAMPLE, _graph(lambda g: g["edges"][0].update(consumer="code_node.nope")),
                                    {(GRAPH, "/nodeGraph/edges/0/consumer")}, "no input port 'nope'"),
    "edge_producer_is_an_input": Case(
        SAMPLE, _graph(lambda g: g["edges"][1].update(producer="code_node.video_in")),
        {(GRAPH, "/nodeGraph/edges/1/producer")}, "'video_in' is an input"),
    "edge_parameter_with_port": Case(SAMPLE, _graph(lambda g: g["edges"][2].update(
        producer="detection_threshold.value")), {(GRAPH, "/nodeGraph/edges/2/producer")}, "no output port"),
    "edge_consumer_without_port": Case(SAMPLE, _graph(lambda g: g["edges"][0].update(consumer="code_node")),
                                       {(GRAPH, "/nodeGraph/edges/0/consumer")}, "name its input port"),
    "edge_into_parameter_node": Case(SAMPLE, _graph(lambda g: g["edges"][0].update(consumer="region")),
                                     {(GRAPH, "/nodeGraph/edges/0/consumer")}, "has no inputs"),
    "edge_parameter_type_mismatch": Case(
        SAMPLE, _graph(lambda g: g["edges"][2].update(consumer="code_node.region")),
        {(GRAPH, "/nodeGraph/edges/2")},
        "gives float32 but code_node.region takes string"),
    "edge_media_into_scalar_port": Case(
        SAMPLE, _graph(lambda g: g["edges"][0].update(consumer="code_node.threshold")),
        {(GRAPH, "/nodeGraph/edges/0")}, "gives media"),
    # parameter values
    "int32_value_out_of_range": Case(
        DEBUG, _graph(lambda g: _node(g, "model_input_width").update(value=2**31)),
        {(GRAPH, "/nodeGraph/nodes/10/value")}, "int32 range"),
    "float32_value_out_of_range": Case(
        DEBUG, _graph(lambda g: _node(g, "detection_threshold").update(value=1e39)),
        {(GRAPH, "/nodeGraph/nodes/4/value")}, "float32 range"),
    "override_value_out_of_range": Case(
        SAMPLE, _override(lambda o: o["nodes"].__setitem__(1, {"name": "region_override",
                                                               "interface": "int32",
                                                              "value": -(2**31) - 1})),
        {(OVERRIDE, "/nodeGraphOverrides/nodes/1/value"),
         (OVERRIDE, "/nodeGraphOverrides/nodeOverrides/0/with/0/name")},
        "int32 range", OVERRIDE),
    "port_default_out_of_range": Case(
        SAMPLE, lambda app, edit: edit(
            CODE_PKG, lambda d: d["nodePackage"]["interfaces"][0]["inputs"][1].update(default=1e39)),
        {(CODE_PKG, "/nodePackage/interfaces/0/inputs/1/default")}, "float32 range"),
    # overrides
    "replace_not_overridable": Case(
        SAMPLE, _override(lambda o: o["nodeOverrides"].append({"replace": "code_node",
                                                               "with": [{"name": "region_override"}]})),
        {(OVERRIDE, "/nodeGraphOverrides/nodeOverrides/4/replace"),
         (OVERRIDE, "/nodeGraphOverrides/nodeOverrides/4/with/0/name")}, "not overridable", OVERRIDE),
    "replace_unknown_node": Case(
        SAMPLE, _override(lambda o: o["nodeOverrides"][0].update(replace="ghost")),
        {(OVERRIDE, "/nodeGraphOverrides/nodeOverrides/0/replace")}, "no node 'ghost'", OVERRIDE),
    "replace_twice": Case(
        SAMPLE, _override(lambda o: o["nodeOverrides"][1].update(replace="region")),
        {(OVERRIDE, "/nodeGraphOverrides/nodeOverrides/1/replace")}, "already replaced", OVERRIDE),
    # (a camera or parameter node may be bound at run time instead:
    # tests/core/test_graph_override_mandatory.py)
    "override_mandatory_not_overridden": Case(
        SAMPLE, _graph(lambda g: _node(g, "model_node").update(overridable=True, overrideMandatory=True)),
        {(OVERRIDE, "/nodeGraphOverrides")}, "'model_node' must be overridden", OVERRIDE),
    "with_names_undefined_node": Case(
        SAMPLE, _override(lambda o: o["nodeOverrides"][0]["with"][0].update(name="ghost")),
        {(OVERRIDE, "/nodeGraphOverrides/nodeOverrides/0/with/0/name")}, "'ghost' is not defined", OVERRIDE),
    "override_parameter_type_mismatch": Case(
        SAMPLE, _override(lambda o: _node(o, "region_override").update(interface="boolean", value=True)),
        {(OVERRIDE, "/nodeGraphOverrides/nodeOverrides/0/with/0/name")}, "'region' is string", OVERRIDE),
    "parameter_replaced_by_interface_node": Case(
        SAMPLE, _override(lambda o: o["nodeOverrides"][0]["with"][0].update(name="camera_node_override")),
        # ...and the console camera now stands in for a parameter, so its missing package is no camera's
        {(OVERRIDE, "/nodeGraphOverrides/nodeOverrides/0/with/0/name"),
         (OVERRIDE, "/nodeGraphOverrides/packages/0")},
        "is a parameter node", OVERRIDE),
    "parameter_replaced_by_two_nodes": Case(
        SAMPLE, _override(lambda o: o["nodeOverrides"][0]["with"].append({"name": "device_id_override"})),
        {(OVERRIDE, "/nodeGraphOverrides/nodeOverrides/0/with/0/name"),
         (OVERRIDE, "/nodeGraphOverrides/nodeOverrides/0/with/1/name")}, "replaced by 2 nodes", OVERRIDE),
    "camera_replaced_by_node_without_its_port": Case(
        SAMPLE, _override(lambda o: (o["packages"].append({"name": "panorama::hdmi_data_sink",
                                                           "version": "1.0"}),
                                     _node(o, "camera_node_override").update(
                                         interface="panorama::hdmi_data_sink.hdmi0"))),
        {(OVERRIDE, "/nodeGraphOverrides/nodeOverrides/3/with/0/name")}, "no output 'video_out'", OVERRIDE),
    "override_node_named_like_graph_node": Case(
        SAMPLE, _override(lambda o: (_node(o, "region_override").update(name="device_id"),
                                     o["nodeOverrides"][0]["with"][0].update(name="device_id"))),
        {(OVERRIDE, "/nodeGraphOverrides/nodes/1/name")}, "name of a graph node", OVERRIDE),
    # routing rules
    "routing_unknown_node": Case(DEBUG, _graph(lambda g: g["networkRoutingRules"][0].update(node="ghost")),
                                 {(GRAPH, "/nodeGraph/networkRoutingRules/0/node")}, "'ghost'"),
    "routing_parameter_node": Case(DEBUG, _graph(lambda g: g["networkRoutingRules"][0].update(node="region")),
                                   {(GRAPH, "/nodeGraph/networkRoutingRules/0/node")}, "parameter node"),
    "routing_undeclared_container_port": Case(
        DEBUG, _graph(lambda g: g["networkRoutingRules"][0].update(containerPort=81)),
        {(GRAPH, "/nodeGraph/networkRoutingRules/0/containerPort")}, "inbound port 81"),
    "routing_host_port_below_range": Case(
        DEBUG, _graph(lambda g: g["networkRoutingRules"][0].update(hostPort=7999)),
        {(GRAPH, "/nodeGraph/networkRoutingRules/0/hostPort")},
        "8000-9000"),
    "routing_host_port_above_range": Case(
        DEBUG, _graph(lambda g: g["networkRoutingRules"][0].update(hostPort=9001)),
        {(GRAPH, "/nodeGraph/networkRoutingRules/0/hostPort")},
        "8000-9000"),
    "routing_host_port_missing": Case(DEBUG, _graph(lambda g: g["networkRoutingRules"][0].pop("hostPort")),
                                      {(GRAPH, "/nodeGraph/networkRoutingRules/0")}, "hostPort is missing"),
    "routing_host_port_twice": Case(
        DEBUG, _graph(lambda g: g["networkRoutingRules"].append({"node": "code_node", "containerPort": 80,
                                                                 "hostPort": 8080})),
        {(GRAPH, "/nodeGraph/networkRoutingRules/1/hostPort")}, "already used"),
    "routing_host_port_in_graph_and_overrides": Case(
        DEBUG,
        lambda app, edit: (
            edit(DEBUG_PKG,
                 lambda d: d["nodePackage"]["interfaces"][0]["network"]["inboundPorts"].append({"port": 81})),
            edit(OVERRIDE,
                 lambda d: d["nodeGraphOverrides"]["networkRoutingRules"][0].update(containerPort=81)),
        ),
        {(OVERRIDE, "/nodeGraphOverrides/networkRoutingRules/0/hostPort")}, "also used", OVERRIDE),
    # names
    "duplicate_node_name": Case(SAMPLE, _graph(lambda g: g["nodes"][5].update(name="detection_threshold")),
                                {(GRAPH, "/nodeGraph/nodes/5/name"), (GRAPH, "/nodeGraph/edges/3/producer")},
                                "used twice"),
    "duplicate_package_listing": Case(SAMPLE, _graph(lambda g: g["packages"].append(dict(g["packages"][0]))),
                                      {(GRAPH, "/nodeGraph/packages/4/name")}, "used twice"),
    "node_name_characters": Case(SAMPLE, _graph(lambda g: g["nodes"][7].update(name="log level")),
                                 {(GRAPH, "/nodeGraph/nodes/7/name")}, "not a valid node name"),
    "port_name_characters": Case(
        SAMPLE, lambda app, edit: edit(
            CODE_PKG, lambda d: d["nodePackage"]["interfaces"][0]["outputs"][0].update(name="video-out")),
        {(CODE_PKG, "/nodePackage/interfaces/0/outputs/0/name")}, "not a valid port name"),
    "duplicate_port_name": Case(
        SAMPLE, lambda app, edit: edit(
            CODE_PKG, lambda d: d["nodePackage"]["interfaces"][0]["inputs"][2].update(name="device_id")),
        {(CODE_PKG, "/nodePackage/interfaces/0/inputs/3/name"), (GRAPH, "/nodeGraph/edges/3/consumer")},
        "used twice"),
    "edge_name_characters": Case(
        SAMPLE, _graph(lambda g: g["edges"][0].update(producer="camera node.video_out")),
        {(GRAPH, "/nodeGraph/edges/0/producer")}, "not a valid 'producer'"),
    # strict JSON
    "duplicate_key": Case(
        SAMPLE, lambda app, edit: (app / CODE_PKG).write_text(
            (app / CODE_PKG).read_text().replace('"name": "SAMPLE_CODE",',
                                                 '"name": "SAMPLE_CODE", "name": "X",')),
        {(CODE_PKG, "/nodePackage/name")}, "duplicate key 'name'"),
}


@pytest.mark.parametrize("case_id", list(CASES))
def test_rule_is_reported_at_the_exact_file_and_pointer(case_id: str, app_copy: Callable[[str], Path],
                                                         edit_json: Callable[..., None]) -> None:
    case = CASES[case_id]
    app = app_copy(case.app)
    case.edit(app, lambda rel, fn: edit_json(app / rel, fn))
    with pytest.raises(ManifestError) as info:
        load_application(app, overrides=app / case.overrides if case.overrides else None)
    errors = info.value.errors
    assert {(p.file, p.pointer) for p in errors} == case.errors, [str(p) for p in errors]
    assert any(case.fragment in p.message or case.fragment in p.hint for p in errors), [
        str(p) for p in errors
    ]
    assert all(p.hint for p in errors)
    assert list(info.value.problems) == sorted(info.value.problems)


def test_every_rule_case_starts_from_a_valid_application(app_copy: Callable[[str], Path]) -> None:
    for name in (SAMPLE, DEBUG):
        app = app_copy(name)
        load_application(app, overrides=app / OVERRIDE)


def _sha_named(app: Path, content: bytes, ext: str) -> Path:
    (app / "assets").mkdir(exist_ok=True)
    path = app / "assets" / f"{hashlib.sha256(content).hexdigest()}.{ext}"
    path.write_bytes(content)
    return path


def test_asset_with_the_wrong_sha256_is_an_error_naming_the_file(app_copy: Callable[[str], Path]) -> None:
    app = app_copy(SAMPLE)
    (app / "assets").mkdir()
    name = "fd1aef48acc3350a5c2673adacffab06af54c3f14da6fe4a8be24cac687a386e.tar.gz"  # SQUEEZENET's assetUri
    (app / "assets" / name).write_bytes(b"not the model")
    with pytest.raises(ManifestError) as info:
        load_application(app)
    assert [(p.file, p.pointer) for p in info.value.errors] == [(f"assets/{name}", "")]
    assert "SHA-256" in info.value.errors[0].message


def test_present_assets_and_descriptors_are_used(app_copy: Callable[[str], Path],
                                                 edit_json: Callable[..., None]) -> None:
    app = app_copy(SAMPLE)
    archive = _sha_named(app, b"model bytes", "tar.gz")
    descriptor = json.dumps({"mlModelDescriptor": {"envelopeVersion": "2021-01-01", "framework": "ONNX",
                                                   "inputs": [{"name": "x",
                                                               "shape": [1, 3, 8, 8]}]}}).encode()
    desc_path = _sha_named(app, descriptor, "json")
    edit_json(app / MODEL_PKG, lambda d: d["nodePackage"]["assets"][0]["implementations"][0].update(
        assetUri=archive.name, descriptorUri=desc_path.name))
    loaded = load_application(app).packages["123456789012::SQUEEZENET_PYTORCH"]
    assert loaded.files["model_asset"] == archive
    assert loaded.descriptors["model_asset"].framework == "ONNX"  # type: ignore[union-attr]


def test_several_graphs_need_graph_flag(app_copy: Callable[[str], Path]) -> None:
    app = app_copy(SAMPLE)
    shutil.copytree(app / "graphs/my-app", app / "graphs/other")
    (problem,) = validate_application(app)
    assert problem.file == "graphs" and "graphs/my-app/graph.json, graphs/other/graph.json" in problem.message
    assert "--graph" in problem.hint
    assert (
        load_application(app, graph=app / "graphs/other/graph.json").graph_file
        == app / "graphs/other/graph.json"
    )


def test_no_graph_is_an_error(tmp_path: Path) -> None:
    (problem,) = validate_application(tmp_path)
    assert problem.file == "graphs" and "--graph" in problem.hint
    (missing,) = validate_application(tmp_path / "nope")
    assert "not found" in missing.message


def test_graph_outside_the_app_is_reported_as_given(app_copy: Callable[[str], Path], tmp_path: Path) -> None:
    app = app_copy(SAMPLE)
    outside = tmp_path / "elsewhere.json"
    outside.write_text("{")
    (problem,) = validate_application(app, graph=outside)
    assert problem.file == str(outside) and "line 1" in problem.message


def test_all_problems_are_reported_together(app_copy: Callable[[str], Path],
                                            edit_json: Callable[..., None]) -> None:
    app = app_copy(DEBUG)
    edit_json(app / GRAPH, lambda d: (d["nodeGraph"]["edges"][0].update(producer="ghost.video_out"),
                                      d["nodeGraph"]["networkRoutingRules"][0].update(hostPort=1)))
    edit_json(app / OVERRIDE, lambda d: d["nodeGraphOverrides"]["nodeOverrides"][0].update(replace="ghost"))
    with pytest.raises(ManifestError) as info:
        load_application(app, overrides=app / OVERRIDE)
    assert {p.pointer for p in info.value.errors} == {
        "/nodeGraph/edges/0/producer", "/nodeGraph/networkRoutingRules/0/hostPort",
        "/nodeGraphOverrides/nodeOverrides/0/replace",
    }
