"""No import cycle in src/: the import graph of every module, walked with :mod:`ast` (module-level and
function-local imports alike), has no strongly connected component of more than one module; nor has the graph
of the parts of the package (``panoflow.core``, ``panoflow.daemon``, ``panoflow.cloud_client``..., each
built-in plugin module on its own, as each is a plugin of its own).

Imports under ``if TYPE_CHECKING:`` never run; they are left out of the graph (they are how a typed contract
may name a class of a module that imports it, e.g. :class:`panoflow.core.bases.CodeRunner` naming
:class:`panoflow.core.runtime.CodeNodeContext`) and only printed. An edge to a package means its ``__init__``;
importing ``a.b.c`` is an edge to ``a.b.c`` only (not to the packages above it, which every submodule import
runs first).

:data:`KNOWN` (module edges) and :data:`KNOWN_PARTS` (edges between parts) are empty: nothing is excused.
Should a cycle ever have to be tolerated while files are rewritten, it goes there with its reason: the cycle
tests leave those edges out and print them, and one strict xfail per edge fails once the edge no longer closes
a cycle, so the lists only shrink.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: (importer, imported) module edges that close a cycle being removed in other work, with the reason (empty:
#: every cycle of issue 18 is gone; an entry here must name the work removing it)
KNOWN: dict[tuple[str, str], str] = {}


def known_edges() -> dict[tuple[str, str], str]:
    """:data:`KNOWN`, sorted."""
    return dict(sorted(KNOWN.items()))


#: (part, part) edges between parts of the package that close a cycle being removed in other work, with the
#: reason
KNOWN_PARTS: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``tree`` with whether it only runs for a type checker."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, typing_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]), typing_only)
        else:
            yield from _imports(node, typing_only)


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    base = node.module or ""
    if node.level:
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    out = set()
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in known:
            out.add(sub)
        elif base in known:
            out.add(base)
    return out


@functools.cache
def import_graph(*, typing_only: bool = False) -> dict[str, set[str]]:
    """module -> the src modules it imports (``typing_only``: the ``TYPE_CHECKING`` imports instead). Cached:
    callers must not change it."""
    modules = _modules()
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, only_typing in _imports(tree):
            if only_typing == typing_only:
                graph[name] |= _targets(name, path.name == "__init__.py", node, known) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative, so deep graphs cannot hit the recursion limit
        nonlocal counter
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found, key=lambda c: (-len(c), c))


def part_of(module: str) -> str:
    """The part of the package a module belongs to: ``panoflow`` (the facade), ``panoflow.X`` for a subpackage
    or top-level module, ``panoflow.plugins.X`` for each built-in plugin, ``panoramasdk``."""
    parts = module.split(".")
    if parts[0] != "panoflow" or len(parts) == 1:
        return parts[0]
    if parts[1] == "plugins" and len(parts) > 2:
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def part_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        parts.setdefault(part_of(module), set()).update(part_of(t) for t in targets)
    return {part: targets - {part} for part, targets in parts.items()}


def _without(graph: dict[str, set[str]], edges: dict[tuple[str, str], str]) -> dict[str, set[str]]:
    return {m: {t for t in targets if (m, t) not in edges} for m, targets in graph.items()}


def _on_a_cycle(graph: dict[str, set[str]], edge: tuple[str, str]) -> bool:
    """Whether ``edge`` (a -> b) closes a cycle: a can be reached from b."""
    a, b = edge
    seen, todo = {b}, [b]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt == a:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def _report(found: list[list[str]], graph: dict[str, set[str]]) -> str:
    return "\n".join(" <-> ".join(c) + "\n    edges: " + ", ".join(f"{a} -> {b}" for a,
                                                                   b in _edges_within(graph, c))
                     for c in found)


def _edges_within(graph: dict[str, set[str]], component: list[str]) -> list[tuple[str, str]]:
    members = set(component)
    return sorted((a, b) for a in component for b in graph[a] if b in members)


def test_the_walker_sees_function_local_and_relative_imports(tmp_path: Path) -> None:
    code = ("from __future__ import annotations\nfrom typing import TYPE_CHECKING\nimport "
            "panoflow.exceptions\nif TYPE_CHECKING:\n    from panoflow.core import runtime\ndef f():\n    "
            "from .bus import Inbox\n    from panoflow.core import graph\n")
    tree = ast.parse(code)
    known = {"panoflow.exceptions", "panoflow.core", "panoflow.core.bus", "panoflow.core.runtime",
             "panoflow.core.graph", "panoflow.core.x"}
    run: set[str] = set()
    typing: set[str] = set()
    for node, only_typing in _imports(tree):
        (typing if only_typing else run).update(_targets("panoflow.core.x", False, node, known))
    assert run == {"panoflow.exceptions", "panoflow.core.bus", "panoflow.core.graph"}
    assert typing == {"panoflow.core.runtime"}


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert _edges_within(graph, ["d", "e"]) == [("d", "e"), ("e", "d")]
    assert _on_a_cycle(graph, ("c", "a")) and not _on_a_cycle(graph, ("d", "a"))
    assert cycles({m: set() for m in graph}) == []


def test_parts() -> None:
    assert part_of("panoflow") == "panoflow"
    assert part_of("panoflow.core.manifest.schema") == "panoflow.core"
    assert part_of("panoflow.plugins.rtsp.source") == "panoflow.plugins.rtsp"
    assert part_of("panoflow.plugins") == "panoflow.plugins"
    assert part_of("panoramasdk._node") == "panoramasdk"
    assert part_graph({"panoflow.a.x": {"panoflow.a.y", "panoflow.b"}, "panoflow.a.y": set(),
                       "panoflow.b": set()}) \
        == {"panoflow.a": {"panoflow.b"}, "panoflow.b": set()}


def test_no_import_cycle_in_src() -> None:
    graph = import_graph()
    assert len(graph) > 100  # the walk found the package
    known = known_edges()
    for (a, b), reason in known.items():
        print(f"known cycle edge, left out: {a} -> {b}: {reason}")
    pruned = _without(graph, known)
    found = cycles(pruned)
    assert not found, "import cycles in src/:\n" + _report(found, pruned)


def test_no_cycle_between_the_parts_of_the_package() -> None:
    graph = part_graph(_without(import_graph(), known_edges()))
    assert {"panoflow", "panoflow.core", "panoflow.daemon", "panoflow.cloud_client",
            "panoflow.plugins.http_connector"} <= set(graph)
    for (a, b), reason in KNOWN_PARTS.items():
        print(f"known cycle edge between parts, left out: {a} -> {b}: {reason}")
    pruned = _without(graph, KNOWN_PARTS)
    found = cycles(pruned)
    assert not found, "import cycles between the parts of src/:\n" + _report(found, pruned)


def test_the_layers_point_one_way() -> None:
    """Named in the issue: core never imports the facade nor the model store (it is handed a resolver); the
    daemon never imports the cloud client; nothing reaches the safe tar extractor through the model store."""
    graph = import_graph()
    parts = part_graph(graph)
    assert "panoflow" not in parts["panoflow.core"]
    assert "panoflow.modelstore" not in parts["panoflow.core"]
    assert "panoflow.modelstore" not in parts["panoflow.compiler"]
    assert "panoflow.cloud_client" not in parts["panoflow.daemon"]
    assert "panoflow.core.inference" not in graph["panoflow.core.batching"]


@pytest.mark.parametrize("edge", sorted(known_edges()), ids=lambda e: f"{e[0]}->{e[1]}")
@pytest.mark.xfail(strict=True, reason="a known cycle edge being removed in other work (see KNOWN)")
def test_known_module_edge_no_longer_closes_a_cycle(edge: tuple[str, str]) -> None:
    """Passes (and so fails, being strict) once the edge is gone or closes no cycle: then drop it from
    KNOWN."""
    assert not _on_a_cycle(import_graph(), edge), known_edges()[edge]


@pytest.mark.parametrize("edge", sorted(KNOWN_PARTS), ids=lambda e: f"{e[0]}->{e[1]}")
@pytest.mark.xfail(strict=True, reason="a known cycle edge between parts being removed in other work")
def test_known_part_edge_no_longer_closes_a_cycle(edge: tuple[str, str]) -> None:
    assert not _on_a_cycle(part_graph(import_graph()), edge), KNOWN_PARTS[edge]


def test_typing_only_cycles_are_reported() -> None:
    """Type-checking imports may close a loop (that is what they are for); print them so they stay visible."""
    runtime = import_graph()
    typing = import_graph(typing_only=True)
    both = {m: runtime[m] | typing[m] for m in runtime}
    for component in cycles(_without(both, known_edges())):
        print("typing-only cycle:", " <-> ".join(component))
