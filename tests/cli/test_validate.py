"""``panoflow validate``: exit codes, human and JSON output, --strict, and never a traceback."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panoflow.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "panorama-apps"
EXAMPLES = int(os.environ.get("PANOFLOW_HYPOTHESIS_EXAMPLES", "200"))

#: every reference application with each of its non-template overrides
ACCEPTED = [
    ("aws-panorama-sample", None, 0),
    ("aws-panorama-sample", "graphs/my-app/override.json", 1),
    ("aws-panorama-sample", "graphs/my-app/override-multicam.json", 2),
    ("debug-server", None, 0),
    ("debug-server", "graphs/my-app/override.json", 1),
    ("car_tracker/car_tracker_app", None, 1),
    ("people_counter/people_counter_app", None, 0),
    ("people_counter/people_counter_app", "deployment_overrides/override_camera.json", 1),
    ("pose_estimation/pose_estimation_app", None, 0),
    ("mot_analysis/mot_analysis_app", None, 1),
    ("inbound_network/inbound_network_app", None, 0),
    ("inbound_network/inbound_network_app", "graphs/inbound_network_app/override.json", 0),
    ("kinesis_video_streams/kinesis_video_streams_app", None, 0),
]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main()`` configures logging onto the captured stderr; undo it so later tests do not write to a closed
    capture stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["validate", *argv])
    except SystemExit as exc:  # argparse usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("app", "overrides", "warnings"), ACCEPTED, ids=[f"{a}+{o}" for a, o, _ in ACCEPTED])
def test_every_reference_application_is_accepted(
    capsys: pytest.CaptureFixture[str], app: str, overrides: str | None, warnings: int
) -> None:
    args = [str(FIXTURES / app)] + (["--overrides", str(FIXTURES / app / overrides)] if overrides else [])
    code, out, err = _run(capsys, *args)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[-1].startswith("valid: ") and lines[-1].endswith(f"{warnings} "
                                                                  f"warning{'' if warnings == 1 else 's'}")
    assert sum(": warning: " in line for line in lines) == warnings
    assert "Traceback" not in out + err


def test_summary_counts_nodes_and_edges(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(FIXTURES / "aws-panorama-sample"))
    assert (code, out) == (0, "valid: 8 nodes, 6 edges, 0 warnings\n")


def test_warning_lines_and_strict(capsys: pytest.CaptureFixture[str]) -> None:
    app = FIXTURES / "debug-server"
    args = [str(app), "--overrides", str(app / "graphs/my-app/override.json")]
    code, out, _ = _run(capsys, *args)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].startswith("graphs/my-app/override.json:/nodeGraphOverrides/packages/0: warning: camera "
                               "package")
    assert lines[1].startswith("    hint: ") and "--camera camera_node_override=URI" in lines[1]
    assert lines[2] == "valid: 12 nodes, 10 edges, 1 warning"
    code, out, _ = _run(capsys, *args, "--strict")
    assert code == 1
    assert ": error: camera package" in out and out.splitlines()[-1] == "invalid: 1 error, 0 warnings"


@pytest.fixture
def broken_app(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    shutil.copytree(FIXTURES / "debug-server", app)
    graph = app / "graphs/my-app/graph.json"
    doc = json.loads(graph.read_text())
    doc["nodeGraph"]["edges"][0]["producer"] = "ghost.video_out"
    doc["nodeGraph"]["networkRoutingRules"][0]["hostPort"] = 80
    graph.write_text(json.dumps(doc))
    return app


def test_invalid_application_exits_1_with_every_problem(capsys: pytest.CaptureFixture[str],
                                                        broken_app: Path) -> None:
    code, out, err = _run(capsys, str(broken_app))
    assert code == 1 and err == ""
    assert out.splitlines() == [
        ("graphs/my-app/graph.json:/nodeGraph/edges/0/producer: error: edge producer names node 'ghost', "
         "which the graph does not have"),
        "    hint: use the name of a node in nodeGraph.nodes",
        ("graphs/my-app/graph.json:/nodeGraph/networkRoutingRules/0/hostPort: error: hostPort 80 is outside "
         "8000-9000"),
        "    hint: Panorama appliances open ports 8000 to 9000 to applications",
        "invalid: 2 errors, 0 warnings",
    ]


def test_json_output(capsys: pytest.CaptureFixture[str], broken_app: Path) -> None:
    code, out, _ = _run(capsys, str(broken_app), "--json")
    report = json.loads(out)
    assert code == 1 and report["valid"] is False and report["errors"] == 2 and report["warnings"] == 0
    assert [p["pointer"] for p in report["problems"]] == ["/nodeGraph/edges/0/producer",
                                                          "/nodeGraph/networkRoutingRules/0/hostPort"]
    assert set(report["problems"][0]) == {"file", "pointer", "severity", "message", "hint"}
    code, out, _ = _run(capsys, str(FIXTURES / "debug-server"), "--json")
    report = json.loads(out)
    assert (code, report["valid"], report["nodes"], report["edges"],
            report["problems"]) == (0, True, 12, 10, [])


@pytest.mark.parametrize("argv", [["missing-dir"], [".", "--graph", "missing.json"],
                                  [".", "--overrides", "nope.json"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str],
                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == "" and "no such" in err and "Traceback" not in err


def test_missing_app_dir_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys)
    assert code == 2 and "APP_DIR" in err


def test_help_lists_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for flag in ("APP_DIR", "--graph", "--overrides", "--strict", "--json"):
        assert flag in out


# --- never a traceback
# -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    app = tmp_path_factory.mktemp("cli") / "app"
    shutil.copytree(FIXTURES / "aws-panorama-sample", app)
    yield app


TARGETS = ["graphs/my-app/graph.json", "graphs/my-app/override.json",
           "packages/123456789012-SAMPLE_CODE-1.0/package.json",
           "packages/123456789012-SAMPLE_CODE-1.0/descriptor.json"]
junk = st.one_of(
    st.binary(max_size=40),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                 lambda kids: (st.lists(kids, max_size=3)
                               | st.dictionaries(st.text(max_size=12), kids, max_size=3)),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(target=st.sampled_from(TARGETS), content=junk, flags=st.lists(st.sampled_from(["--strict", "--json"]),
       max_size=2, unique=True), with_overrides=st.booleans(),
       extra=st.sampled_from([[], ["--graph"], ["--bogus"]]))
def test_cli_never_prints_a_traceback(
    capsys: pytest.CaptureFixture[str], scratch: Path, target: str, content: bytes, flags: list[str],
    with_overrides: bool, extra: list[str],
) -> None:
    path = scratch / target
    original = path.read_bytes()
    path.write_bytes(content)
    try:
        argv = [str(scratch), *flags, *extra]
        if with_overrides:
            argv += ["--overrides", str(scratch / TARGETS[1])]
        code, out, err = _run(capsys, *argv)
    finally:
        path.write_bytes(original)
    assert "Traceback" not in out + err and "internal error" not in err
    assert code in (0, 1, 2)
    if "--json" in flags and code != 2:
        assert json.loads(out)["valid"] is (code == 0)
