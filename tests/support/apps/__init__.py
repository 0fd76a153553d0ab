"""Every writer of a small Panorama application for a test, in one place: the layout and the generic apps in
:mod:`tests.support.apps.layout`, apps whose code a test watches in :mod:`tests.support.apps.programs`."""

from __future__ import annotations

from tests.support.apps.layout import (
    ACCOUNT,
    PARAMS,
    SERVER,
    STYLES,
    routing_overrides,
    server_app,
    write_app,
    write_code_package,
    write_graph,
    write_model_app,
)
from tests.support.apps.programs import (
    COUNTER,
    PACKAGE,
    RECT,
    RECT_BGR,
    TEXT_ORIGIN,
    attack_app,
    broken_app,
    build_code_asset,
    built_counter_app,
    counter_app,
    greeter_app,
    param_app,
    pinned_app,
    read_json,
    status_app,
    wait_json,
)

__all__ = ["ACCOUNT", "COUNTER", "PACKAGE", "PARAMS", "RECT", "RECT_BGR", "SERVER", "STYLES", "TEXT_ORIGIN",
           "attack_app", "broken_app", "build_code_asset", "built_counter_app", "counter_app", "greeter_app",
           "param_app", "pinned_app", "read_json", "routing_overrides", "server_app", "status_app",
           "wait_json", "write_app", "write_code_package", "write_graph", "write_model_app"]
