"""Graph resolution on the reference applications: overrides, several cameras, parameters, routing, models."""

from __future__ import annotations

from pathlib import Path

import pytest

from panoflow.core.graph import ResolveError, resolve
from panoflow.core.manifest import load_application

APPS = Path(__file__).resolve().parents[1] / "fixtures" / "panorama-apps"
SAMPLE = APPS / "aws-panorama-sample"
DEBUG = APPS / "debug-server"


def test_sample_with_a_bound_camera() -> None:
    app = load_application(SAMPLE)
    g = resolve(app, cameras={"camera_node": ["/x.mp4"]}, params={"detection_threshold": "42.5"})
    (code,) = g.code_nodes.values()
    assert code.media_inputs == {"video_in": ("camera_node",)}
    assert code.outputs == {"video_out": ("output_node",)}
    assert code.parameters["threshold"] == 42.5 and isinstance(code.parameters["threshold"], float)
    assert g.cameras["camera_node"].streams[0].stream_id == "camera_node"
    assert set(g.models) == {"model_node"}
    assert g.models["model_node"].archive is None  # the sample ships no model archive


def test_several_streams_on_one_node_get_distinct_ids() -> None:
    app = load_application(SAMPLE)
    g = resolve(app, cameras={"camera_node": ["a.mp4", "b.mp4", "c.mp4"]})
    assert [s.stream_id for s in g.streams_of(["camera_node"])] == ["camera_node_0", "camera_node_1",
                                                                    "camera_node_2"]


def test_multicam_override_replaces_the_abstract_camera_with_two() -> None:
    app = load_application(SAMPLE, overrides=SAMPLE / "graphs/my-app/override-multicam.json")
    g = resolve(app, cameras={"CAMERA_A": ["a.mp4"], "CAMERA_B": ["b.mp4"]})
    (code,) = g.code_nodes.values()
    assert code.media_inputs == {"video_in": ("CAMERA_A", "CAMERA_B")}
    assert g.cameras["CAMERA_B"].launch == "onSignal"
    # parameter overrides keep the node the edges name, with the override's value
    assert code.parameters["region"] == "MY_REGION"


def test_routing_rules_are_confirmed_per_code_node() -> None:
    app = load_application(DEBUG, overrides=DEBUG / "graphs/my-app/override.json")
    g = resolve(app, cameras={"camera_node_override": ["a.mp4"]})
    assert g.code_nodes["code_node"].inbound_ports == ((80, 8080),)


def test_camera_package_defaults_give_the_stream_url() -> None:
    app = load_application(APPS / "car_tracker" / "car_tracker_app")
    g = resolve(app)
    (stream,) = g.cameras["camera_node"].streams
    assert stream.uri == "rtsp://admin:123456@10.0.0.212:554/stream0"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "camera node 'camera_node' has no stream: bind one with --camera camera_node=URI"),
        ({"cameras": {"camera_node": ["a"], "nope": ["b"]}}, "--camera names unknown camera node(s) nope"),
        ({"cameras": {"camera_node": ["a"]}, "params": {"detection_threshold": "high"}},
         "not a valid float32"),
        ({"cameras": {"camera_node": ["a"]}, "params": {"camera_node": "1"}},
         "no parameter node 'camera_node'"),
    ],
)
def test_binding_errors_are_clear(kwargs: dict, message: str) -> None:
    with pytest.raises(ResolveError) as info:
        resolve(load_application(SAMPLE), **kwargs)
    assert message in str(info.value)
