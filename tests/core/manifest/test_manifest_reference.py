"""Every reference application (tests/fixtures/panorama-apps, copies of AWS samples) loads, and
round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from panoflow.core.manifest import (
    ModelDescriptor,
    RuntimeDescriptor,
    load_application,
    parse_descriptor,
    parse_graph,
    parse_overrides,
    parse_package,
    to_json,
    validate_application,
)
from panoflow.core.manifest.parse import Parsed
from panoflow.exceptions import ManifestError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "panorama-apps"
CAMERA = "/nodeGraphOverrides/packages/{}"

#: (application folder, overrides file or None) -> the warnings expected, as (file, pointer)
VALID: dict[tuple[str, str | None], set[tuple[str, str]]] = {
    ("aws-panorama-sample", None): set(),
    ("aws-panorama-sample", "graphs/my-app/override.json"):
        {("graphs/my-app/override.json", CAMERA.format(0))},
    ("aws-panorama-sample", "graphs/my-app/override-multicam.json"): {
        ("graphs/my-app/override-multicam.json", CAMERA.format(0)),
        ("graphs/my-app/override-multicam.json", CAMERA.format(1)),
    },
    ("debug-server", None): set(),
    ("debug-server", "graphs/my-app/override.json"): {("graphs/my-app/override.json", CAMERA.format(0))},
    # the sample leaves the model package's package.json out (its notebook writes it)
    ("car_tracker/car_tracker_app", None): {("packages/278046373397-CAR_SSD_TF_MODEL-1.0/package.json", "")},
    ("people_counter/people_counter_app", None): set(),
    ("people_counter/people_counter_app", "deployment_overrides/override_camera.json"): {
        ("deployment_overrides/override_camera.json", CAMERA.format(0))
    },
    ("pose_estimation/pose_estimation_app", None): set(),
    ("mot_analysis/mot_analysis_app", None): {("packages/123456789012-YOLOXM_MODEL-1.0/package.json", "")},
    ("inbound_network/inbound_network_app", None): set(),
    ("inbound_network/inbound_network_app", "graphs/inbound_network_app/override.json"): set(),
    ("kinesis_video_streams/kinesis_video_streams_app", None): set(),
}


@pytest.mark.parametrize(("app", "overrides"), list(VALID), ids=[f"{a}+{o}" for a, o in VALID])
def test_reference_application_is_valid(app: str, overrides: str | None) -> None:
    app_dir = FIXTURES / app
    loaded = load_application(app_dir, overrides=app_dir / overrides if overrides else None)
    assert {(w.file, w.pointer) for w in loaded.warnings} == VALID[(app, overrides)]
    assert all(w.severity == "warning" and w.hint for w in loaded.warnings)
    assert loaded.graph_file.parent.parent.name == "graphs"
    for node in loaded.graph.nodes:  # every graph node resolves to an interface or is a parameter
        assert node.is_parameter or loaded.interface_for(node) is not None, node.name


def test_camera_warning_says_how_to_bind_the_camera() -> None:
    app_dir = FIXTURES / "debug-server"
    (warning,) = load_application(app_dir, overrides=app_dir / "graphs/my-app/override.json").warnings
    assert "123456789012::MY_CAMERA" in warning.message
    assert "packages/123456789012-MY_CAMERA-1.0/" in warning.message
    assert "--camera camera_node_override=URI" in warning.hint


def test_stock_packages_are_built_in_and_nothing_is_fetched() -> None:
    app = load_application(FIXTURES / "aws-panorama-sample")
    rtsp = app.packages["panorama::abstract_rtsp_media_source"]
    hdmi = app.packages["panorama::hdmi_data_sink"]
    assert rtsp.builtin and hdmi.builtin and rtsp.directory is None
    assert rtsp.config.interface("rtsp_v1_interface").category == "media_source"  # type: ignore[union-attr]
    assert rtsp.config.interface("rtsp_v1_interface").output("video_out").type == "media"  # type: ignore[union-attr]
    assert rtsp.config.assets[0].implementations[0].type == "system"
    assert hdmi.config.interface("hdmi0").input("video_in").type == "media"  # type: ignore[union-attr]
    assert hdmi.config.interface("hdmi0").category == "media_sink"  # type: ignore[union-attr]


def test_descriptors_are_found_for_every_sample_layout() -> None:
    sample = load_application(FIXTURES / "aws-panorama-sample")
    code = sample.packages["123456789012::SAMPLE_CODE"]
    assert code.descriptors["code_asset"] == RuntimeDescriptor("2021-01-01", "python3",
                                                               "/panorama/application.py")
    model = sample.packages["123456789012::SQUEEZENET_PYTORCH"].descriptors["model_asset"]
    assert (
        isinstance(model, ModelDescriptor) and model.framework == "PYTORCH" and model.precision_mode == "FP16"
    )
    assert dict(sample.packages["123456789012::SQUEEZENET_PYTORCH"].files) == {}  # archives are not shipped

    pose = load_application(FIXTURES / "pose_estimation/pose_estimation_app")
    models = pose.packages["123456789012::pose_estimation_models"].descriptors
    shapes = {name: d.inputs[0].shape for name, d in models.items() if isinstance(d, ModelDescriptor)}
    assert shapes == {"people_detection_model": (1, 3, 480, 600), "pose_estimation_model_4": (4, 3, 256, 192)}
    # a container asset whose descriptor is neither in assets/ nor in the folder: recorded as absent
    assert dict(pose.packages["123456789012::pose_estimation_code"].descriptors) == {}

    car = load_application(FIXTURES / "car_tracker/car_tracker_app")
    assumed = car.packages["278046373397::CAR_SSD_TF_MODEL"]
    assert assumed.config.interface("interface").category == "ml_model"  # type: ignore[union-attr]
    assert assumed.descriptors["model_asset"].framework == "TENSORFLOW"  # type: ignore[union-attr]
    camera = car.packages["278046373397::RTSP_STREAM"].config.interfaces[0]
    assert camera.input("streamUrl").default == "rtsp://10.0.0.212:554/stream0"  # type: ignore[union-attr]


def test_routing_rules_and_inbound_ports_are_parsed() -> None:
    app_dir = FIXTURES / "inbound_network/inbound_network_app"
    app = load_application(app_dir, overrides=app_dir / "graphs/inbound_network_app/override.json")
    assert app.overrides is not None and app.overrides.routing_rules[0].host_port == 8081
    code = app.interface_for(app.graph.nodes[0])
    assert code is not None and [p.port for p in code.inbound_ports] == [8080]


def test_pose_estimation_override_template_is_rejected_for_its_placeholders() -> None:
    app_dir = FIXTURES / "pose_estimation/pose_estimation_app"
    template = app_dir / "graphs/pose_estimation_app/override_template_multi_cameras.json"
    with pytest.raises(ManifestError) as info:
        load_application(app_dir, overrides=template)
    pointers = {p.pointer for p in info.value.errors}
    assert "/nodeGraphOverrides/packages/0/name" in pointers
    assert "/nodeGraphOverrides/nodes/0/interface" in pointers
    assert all("{Your" in p.message for p in info.value.errors)


def test_kinesis_override_template_is_schema_valid_but_not_usable() -> None:
    """Decision: an empty ``with`` is valid per Panorama's schema (no minItems), but overrides that replace a
    node with nothing are rejected; the template also names override nodes it does not define."""
    app_dir = FIXTURES / "kinesis_video_streams/kinesis_video_streams_app"
    template = app_dir / "deployment_overrides/override_configuration_template.json"
    parsed = parse_overrides(template.read_bytes(), "template.json")
    assert parsed.problems == () and parsed.model is not None
    assert parsed.model.node_overrides[0].with_ == ()
    problems = validate_application(app_dir, overrides=template)
    assert {(p.file, p.pointer) for p in problems} == {
        ("deployment_overrides/override_configuration_template.json",
         "/nodeGraphOverrides/nodeOverrides/0/with"),
        *{
            ("deployment_overrides/override_configuration_template.json",
             f"/nodeGraphOverrides/nodeOverrides/{i}/with/0/name")
            for i in (1, 2, 3)
        },
    }


def test_people_counter_opengpu_package_gives_exactly_the_nv_accelerators_warning() -> None:
    file = (
        FIXTURES / "people_counter_opengpu/people_counter_app/packages/278046373397-PEOPLE_COUNTER_CODE-1.0"
    )
    parsed = parse_package((file / "package.json").read_bytes(), "package.json")
    assert parsed.model is not None
    (warning,) = parsed.problems
    assert warning.severity == "warning"
    assert warning.pointer == "/nodePackage/assets/0/implementations/0/requirements/0/nvAccelerators"
    assert "inferenceAccelerators" in warning.hint
    (requirement,) = parsed.model.assets[0].implementations[0].requirements
    assert requirement["inferenceAccelerators"][0]["deviceType"] == "nvhost_gpu"


def test_onnx_opengpu_package_and_descriptor_are_valid() -> None:
    folder = FIXTURES / "ONNX_opengpu/onnx_app/packages/028663699634-onnx_app-1.0"
    package = parse_package((folder / "package.json").read_bytes(), "package.json")
    descriptor = parse_descriptor((folder / "descriptor.json").read_bytes(), "descriptor.json")
    assert package.problems == () and descriptor.problems == ()
    assert package.model is not None and package.model.interface("onnx_app_interface") is not None
    assert descriptor.model == RuntimeDescriptor("2021-01-01", "python3.8", "/panorama/runonnx.py")


# --- round trips
# -------------------------------------------------------------------------------------------------

_PARSERS = {
    "nodeGraph": parse_graph,
    "nodeGraphOverrides": parse_overrides,
    "nodePackage": parse_package,
    "mlModelDescriptor": parse_descriptor,
    "runtimeDescriptor": parse_descriptor,
}
_TEMPLATES = {"override_template_multi_cameras.json"}
REFERENCE_FILES = sorted(p for p in FIXTURES.rglob("*.json") if p.name not in _TEMPLATES)


def test_every_reference_json_file_is_covered() -> None:
    assert len(REFERENCE_FILES) == 42


@pytest.mark.parametrize("path", REFERENCE_FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_load_dump_load_gives_an_equal_model(path: Path) -> None:
    data = path.read_bytes()
    (key,) = json.loads(data)
    parse = _PARSERS[key]
    first: Parsed = parse(data, path.name)  # type: ignore[type-arg]
    assert first.model is not None, first.problems
    dumped = json.dumps(to_json(first.model)).encode()
    second = parse(dumped, path.name)
    assert second.problems == tuple(p for p in first.problems if p.severity == "error"), (
        "dump is schema-valid"
    )
    assert second.model == first.model
    assert to_json(second.model) == to_json(first.model)
