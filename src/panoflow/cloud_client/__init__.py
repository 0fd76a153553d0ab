"""The device side of panoflow's device protocol (docs/device-protocol.md): a ``panoflow serve`` that joins a
panoflow control plane.

* :mod:`.credentials` - the provisioning bundle, the one-time claim, ``STATE_DIR/cloud.json``;
* :mod:`.client` - the HTTP client (claim, sync, logs, metrics, verified asset downloads), offline vs refused;
* :mod:`.assemble` - a desired application instance -> an application folder the daemon deploys;
* :mod:`.telemetry` - log lines tailed from the daemon's files and buffered while offline, metrics text;
* :mod:`.jobs` - REBOOT and OTA;
* :mod:`.preview` - the live previews a console user watches on the control plane, posted frame by frame;
* :mod:`.sync` - the loop: report the full state, reconcile with the desired state.

The ``http`` cloud connector (:mod:`panoflow.plugins.http_connector`) runs :func:`.sync.run_device` with the
:class:`DeviceContext` the daemon hands it (defined in :mod:`panoflow.daemon.device`: the cloud client
depends on the daemon, never the other way round).
"""

from __future__ import annotations

from panoflow.daemon.device import DeviceContext

__all__ = ["DeviceContext"]
