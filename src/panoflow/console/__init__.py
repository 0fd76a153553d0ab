"""The web console (docs/console.md): server-rendered pages with htmx, served at ``/console/``.

* :mod:`.web` - the shared layer: templates, static files, sign-in, sessions, CSRF, the read-only rule, and
  the pages both consoles have (instances, logs, pause/resume, preview);
* :mod:`.sessions` - the in-memory session table;
* :mod:`.plane` - the control-plane console (:func:`mount_plane_console`): devices, cameras, packages,
  metrics, the deploy wizard, all through ``ControlPlane.call``;
* :mod:`.device` - the device console of ``panoflow serve`` (:func:`mount_device_console`);
* :mod:`.wizard` - the deploy wizard's fields and overrides, checked with ``panoflow validate``'s rules;
* :mod:`.charts` - metrics history and server-side SVG charts; :mod:`.probe` - the cameras' "Test connection".
"""

from __future__ import annotations

from panoflow.console.sessions import DEFAULT_TTL_S, SessionStore
from panoflow.console.web import ROOT, Console, ConsoleError

__all__ = ["DEFAULT_TTL_S", "ROOT", "Console", "ConsoleError", "SessionStore", "mount_device_console",
           "mount_plane_console"]


def mount_plane_console(*args: object, **kwargs: object) -> Console:
    """See :func:`panoflow.console.plane.mount_plane_console` (imported on first use: it needs the control
    plane's dependencies, which a device does not install)."""
    from panoflow.console.plane import mount_plane_console as mount

    return mount(*args, **kwargs)  # type: ignore[arg-type]


def mount_device_console(*args: object, **kwargs: object) -> Console:
    """See :func:`panoflow.console.device.mount_device_console`."""
    from panoflow.console.device import mount_device_console as mount

    return mount(*args, **kwargs)  # type: ignore[arg-type]
