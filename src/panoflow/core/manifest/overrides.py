"""Checks of deploy-time overrides (``nodeGraphOverrides.nodeOverrides``) against the graph they apply to.

* ``replace`` names a graph node marked ``overridable: true``, at most once;
* ``with`` names nodes the overrides define, at least one; a parameter node is replaced by exactly one
  parameter node of the same type, an interface node by interface nodes that offer the ports the graph's edges
  use;
* when overrides are given, every ``overrideMandatory: true`` node is replaced (without overrides that is left
  to deploy time, like Panorama does). A camera or parameter node may instead be bound when the application
  runs (``--camera NODE=URI``, a registered camera, ``--param NODE=VALUE``): for those an unreplaced node is a
  warning here, and :func:`panoflow.core.graph.resolve` requires the binding, with or without overrides alike.
"""

from __future__ import annotations

from panoflow.core.manifest.context import OVERRIDES_ROOT, Context, NodeAt, listing

__all__ = ["check_overrides", "replacements"]


def replacements(ctx: Context) -> dict[str, str]:
    """Override node name -> the graph node it stands in for (first rule wins)."""
    found: dict[str, str] = {}
    for rule in ctx.overrides.node_overrides if ctx.overrides else ():
        for name in rule.with_:
            found.setdefault(name, rule.replace)
    return found


def _used_ports(ctx: Context) -> dict[str, list[tuple[str, bool]]]:
    """Node name -> the (port, is_output) pairs of it that the graph's edges use."""
    used: dict[str, dict[tuple[str, bool], None]] = {}
    for edge in ctx.graph.edges:
        if edge.producer_port:
            used.setdefault(edge.producer_node, {})[(edge.producer_port, True)] = None
        if edge.consumer_port:
            used.setdefault(edge.consumer_node, {})[(edge.consumer_port, False)] = None
    return {name: list(ports) for name, ports in used.items()}


def _check_stand_in(ctx: Context, target: NodeAt, new: NodeAt, count: int, pointer: str,
                    used: dict[str, list[tuple[str, bool]]]) -> None:
    old_node, new_node = target.node, new.node
    if old_node.is_parameter != new_node.is_parameter:
        kind = "parameter" if old_node.is_parameter else "interface"
        ctx.error(ctx.overrides_file, pointer,
                  f"{old_node.name!r} is a {kind} node, {new_node.name!r} is not",
                  f"replace a {kind} node with a {kind} node")
        return
    if old_node.is_parameter:
        if old_node.interface != new_node.interface:
            ctx.error(ctx.overrides_file, pointer, f"{old_node.name!r} is {old_node.interface} but "
                      f"{new_node.name!r} is {new_node.interface}",
                      f"make {new_node.name!r} a {old_node.interface}")
        if count > 1:
            ctx.error(ctx.overrides_file, pointer, f"parameter node {old_node.name!r} is replaced by {count} "
                                                   "nodes",
                      "replace a parameter node with exactly one parameter node")
        return
    if ctx.interface_of(old_node) is None or ctx.interface_of(new_node) is None:
        return  # unknown interface (e.g. a console camera): nothing to compare
    for port, output in used.get(old_node.name, ()):
        if ctx.port_type(new_node, port, output=output) != ctx.port_type(old_node, port, output=output):
            side = "output" if output else "input"
            ctx.error(ctx.overrides_file, pointer, f"{new_node.name!r} ({new_node.interface}) has no {side} "
                      f"{port!r} like the {old_node.name!r} it replaces", "the graph's edges need that port")


def _check_rule(ctx: Context, j: int, replaced: dict[str, str],
                used: dict[str, list[tuple[str, bool]]]) -> None:
    rule = ctx.overrides.node_overrides[j]  # type: ignore[union-attr]
    at = f"{OVERRIDES_ROOT}/nodeOverrides/{j}"
    if rule.replace in replaced:
        ctx.error(ctx.overrides_file, f"{at}/replace", f"{rule.replace!r} is already replaced at "
                                                       f"{replaced[rule.replace]}",
                  "replace each node once, listing all its stand-ins in one 'with'")
        return
    replaced[rule.replace] = at
    target = ctx.graph_nodes.get(rule.replace)
    if target is None:
        ctx.error(ctx.overrides_file, f"{at}/replace", f"the graph has no node {rule.replace!r} to replace",
                  f"nodes in {ctx.graph_file}: {listing(ctx.graph_nodes)}")
    elif not target.node.overridable:
        ctx.error(ctx.overrides_file, f"{at}/replace", f"node {rule.replace!r} is not overridable",
                  f'set "overridable": true on it in {ctx.graph_file} ({target.pointer})')
    if not rule.with_:
        ctx.error(ctx.overrides_file, f"{at}/with", f"{rule.replace!r} is replaced with no node",
                  "name at least one override node in 'with' (an empty 'with' only appears in templates)")
    for k, name in enumerate(rule.with_):
        pointer = f"{at}/with/{k}/name"
        new = ctx.override_nodes.get(name)
        if new is None:
            ctx.error(ctx.overrides_file, pointer, f"override node {name!r} is not defined",
                      "define it in nodeGraphOverrides.nodes")
        elif target is not None:
            _check_stand_in(ctx, target, new, len(rule.with_), pointer, used)


def check_overrides(ctx: Context) -> None:
    """Append every problem of ``ctx.overrides`` (nothing when there are none)."""
    if ctx.overrides is None:
        return
    replaced: dict[str, str] = {}
    used = _used_ports(ctx)
    for j in range(len(ctx.overrides.node_overrides)):
        _check_rule(ctx, j, replaced, used)
    for name, at in ctx.graph_nodes.items():
        if not at.node.override_mandatory or name in replaced:
            continue
        message = (f"node {name!r} must be overridden ({ctx.graph_file} marks it overrideMandatory) but "
                   "these overrides do not replace it")
        fix = f'add {{"replace": "{name}", "with": [...]}} to nodeOverrides'
        iface = ctx.interface_of(at.node)
        if at.node.is_parameter:
            ctx.warn(ctx.overrides_file, OVERRIDES_ROOT, message, f"{fix}, or run it with --param "
                                                                  f"{name}=VALUE")
        elif iface is not None and iface.category == "media_source":
            ctx.warn(ctx.overrides_file, OVERRIDES_ROOT, message,
                     f"{fix}, or run it with --camera {name}=URI")
        else:
            ctx.error(ctx.overrides_file, OVERRIDES_ROOT, message, fix)
