"""A bad value inside a graph node names the node, not only its index:
``node 'every_param' (nodes/5) value: ...``, whether the schema (a value of the wrong JSON type) or the
semantic check (an int32 out of range) finds it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from panoflow.core.manifest import load_application
from panoflow.exceptions import ManifestError

SAMPLE = "aws-panorama-sample"
GRAPH = "graphs/my-app/graph.json"


def _add_param(value: Any, interface: str = "int32") -> Callable[[Any], None]:
    def change(doc: Any) -> None:
        nodes = doc["nodeGraph"]["nodes"]
        while len(nodes) < 5:  # the parameter lands at index 5, as in the example
            nodes.append({"name": f"pad_{len(nodes)}", "interface": "string", "value": "x"})
        nodes.insert(5, {"name": "every_param", "interface": interface, "value": value})

    return change


@pytest.mark.parametrize(("interface", "value", "message"), [
    ("int32", "abc", "node 'every_param' (nodes/5) value: must be an integer, not 'abc'"),
    ("boolean", 1, "node 'every_param' (nodes/5) value: must be true or false, not 1"),
    ("int32", 2**40, "node 'every_param' (nodes/5) value: 1099511627776 is outside the int32 range"),
])
def test_a_bad_parameter_value_names_the_node(app_copy: Callable[[str], Path], edit_json: Callable[..., None],
                                              interface: str, value: Any, message: str) -> None:
    app = app_copy(SAMPLE)
    edit_json(app / GRAPH, _add_param(value, interface))
    with pytest.raises(ManifestError) as info:
        load_application(app)
    (problem,) = info.value.errors
    assert (problem.file, problem.pointer) == (GRAPH, "/nodeGraph/nodes/5/value")
    assert problem.message.startswith(message), str(problem)
    assert problem.hint
    assert f"{GRAPH}:/nodeGraph/nodes/5/value: error: node 'every_param' (nodes/5) value: " in str(info.value)


def test_a_bad_node_name_is_not_labelled_with_itself(app_copy: Callable[[str], Path],
                                                     edit_json: Callable[..., None]) -> None:
    app = app_copy(SAMPLE)
    edit_json(app / GRAPH, lambda d: d["nodeGraph"]["nodes"].append({"name": "bad name!",
                                                                     "interface": "int32",
                                                                      "value": 1}))
    with pytest.raises(ManifestError) as info:
        load_application(app)
    messages = [p.message for p in info.value.errors]
    assert any(m.startswith("'bad name!' is not a valid node name") for m in messages), messages
    assert not any(m.startswith("node 'bad name!'") for m in messages), messages


def test_a_node_without_a_name_falls_back_to_the_pointer(app_copy: Callable[[str], Path],
                                                         edit_json: Callable[..., None]) -> None:
    app = app_copy(SAMPLE)
    edit_json(app / GRAPH, lambda d: d["nodeGraph"]["nodes"].append({"interface": "int32", "value": "x"}))
    with pytest.raises(ManifestError) as info:
        load_application(app)
    assert any(p.message == "missing required key 'name'" for p in info.value.errors), \
        [str(p) for p in info.value.errors]
