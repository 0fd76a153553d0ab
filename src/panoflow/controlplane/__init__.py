"""The self-hostable panoflow control plane: the AWS Panorama API (botocore's ``panorama`` model) over HTTP.

* :mod:`.model` - the vendored service model and the routes derived from it;
* :mod:`.protocol` / :mod:`.validate` - rest-json requests, responses and errors; input validation;
* :mod:`.auth` - access keys and SigV4 verification (botocore's signer);
* :mod:`.store` - the repository interface and SQLite backend, schema as SQL migrations;
* :mod:`.service` - the operations (:class:`ControlPlane`), also the entry point of the device API;
* :mod:`.server` - the aiohttp application; :mod:`.boto` - a boto3 client that knows the model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from panoflow.controlplane.auth import AccessKey, create_access_key
    from panoflow.controlplane.errors import ApiError
    from panoflow.controlplane.model import MODEL_ROOT, load_model
    from panoflow.controlplane.server import make_app, serve_in_thread
    from panoflow.controlplane.service import ControlPlane
    from panoflow.controlplane.store import Store, StoreError, open_store

#: exported name -> the submodule that defines it. Loaded on first use, so that a device importing
#: ``panoflow.controlplane.provisioning`` (to read its bundle) pulls in neither botocore nor the aiohttp
#: server.
_EXPORTS = {
    "MODEL_ROOT": "model", "load_model": "model", "AccessKey": "auth", "create_access_key": "auth",
    "ApiError": "errors", "ControlPlane": "service", "make_app": "server", "serve_in_thread": "server",
    "Store": "store", "StoreError": "store", "open_store": "store",
}

# the names of _EXPORTS (a literal, so that tools see the re-exports)
__all__ = [
    "MODEL_ROOT",
    "AccessKey",
    "ApiError",
    "ControlPlane",
    "Store",
    "StoreError",
    "create_access_key",
    "load_model",
    "make_app",
    "open_store",
    "serve_in_thread",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
