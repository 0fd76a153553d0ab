"""Checks of ``networkRoutingRules`` (in the graph and in overrides): inbound traffic to a code node.

* ``node`` exists (a graph node, or for rules in overrides also an override node) and is not a parameter;
* its interface declares ``containerPort`` in ``network.inboundPorts``;
* ``hostPort`` is given and within 8000-9000 (the range Panorama appliances open to applications);
* no host port is used twice: within one file, and after the overrides' rules replace the graph's rules for
  the same node and container port.
"""

from __future__ import annotations

from panoflow.core.manifest.context import GRAPH_ROOT, OVERRIDES_ROOT, Context, listing
from panoflow.core.manifest.models import RoutingRule

__all__ = ["HOST_PORT_RANGE", "check_routing"]

#: host ports an application may listen on
HOST_PORT_RANGE = range(8000, 9001)


def _check_rule(ctx: Context, rule: RoutingRule, file: str, at: str, in_overrides: bool) -> None:
    found = ctx.node(rule.node, with_overrides=in_overrides)
    if found is None:
        ctx.error(file, f"{at}/node", f"routing rule names node {rule.node!r}, which does not exist",
                  "name the code node that listens on the port")
    elif found.node.is_parameter:
        ctx.error(file, f"{at}/node", f"{rule.node!r} is a parameter node; it cannot receive network traffic",
                  "name the code node that listens on the port")
    else:
        iface = ctx.interface_of(found.node)
        declared = [p.port for p in iface.inbound_ports] if iface else None
        if declared is not None and rule.container_port not in declared:
            ctx.error(file, f"{at}/containerPort", f"interface {found.node.interface} does not declare "
                      "inbound port "
                      f"{rule.container_port}", "declare it in its package.json under network.inboundPorts "
                      f"(declared: {listing(declared)})")
    if not rule.host_port:
        ctx.error(file, at, "hostPort is missing", "give the device port to forward, between 8000 and 9000")
    elif rule.host_port not in HOST_PORT_RANGE:
        ctx.error(file, f"{at}/hostPort", f"hostPort {rule.host_port} is outside 8000-9000",
                  "Panorama appliances open ports 8000 to 9000 to applications")


def check_routing(ctx: Context) -> None:
    """Append every problem of the graph's and the overrides' routing rules."""
    sources = [(ctx.graph.routing_rules, ctx.graph_file, GRAPH_ROOT, False)]
    if ctx.overrides is not None:
        sources.append((ctx.overrides.routing_rules, ctx.overrides_file, OVERRIDES_ROOT, True))
    effective: dict[tuple[str, int], tuple[RoutingRule, str, str]] = {}
    for rules, file, root, in_overrides in sources:
        seen: dict[int, str] = {}
        for i, rule in enumerate(rules):
            at = f"{root}/networkRoutingRules/{i}"
            _check_rule(ctx, rule, file, at, in_overrides)
            if rule.host_port and rule.host_port in seen:
                ctx.error(file, f"{at}/hostPort", f"hostPort {rule.host_port} is already used at "
                                                  f"{seen[rule.host_port]}",
                          "forward each host port to one container port")
            elif rule.host_port:
                seen[rule.host_port] = at
            effective[(rule.node, rule.container_port)] = (rule, file, at)
    if ctx.overrides is None:
        return
    owner: dict[int, tuple[str, str]] = {}
    for rule, file, at in effective.values():
        if not rule.host_port:
            continue
        first = owner.setdefault(rule.host_port, (file, at))
        if first != (file, at) and first[0] != file:
            ctx.error(file, f"{at}/hostPort", f"hostPort {rule.host_port} is also used by {first[0]} "
                                              f"{first[1]}",
                      "forward each host port to one container port")
