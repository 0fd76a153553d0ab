"""A boto3 ``panorama`` client that works with current botocore (which no longer ships the Panorama model).

    from panoflow.controlplane.boto import client
    pano = client(endpoint_url="http://127.0.0.1:8443", region_name="us-east-1",
                  aws_access_key_id=..., aws_secret_access_key=...)

The vendored model is put first on the session's data-loader search path, so the client speaks exactly the API
the server implements. Outside Python, ``AWS_DATA_PATH=$(python -c 'import panoflow.controlplane.model as m;
print(m.MODEL_ROOT)')`` does the same for the AWS CLI.
"""

from __future__ import annotations

from typing import Any

from panoflow.controlplane.model import MODEL_ROOT

__all__ = ["client", "session"]


def session(**kwargs: Any) -> Any:
    """A ``boto3.Session`` whose loader knows the vendored Panorama model (kwargs go to ``boto3.Session``)."""
    import boto3
    import botocore.session

    core = botocore.session.get_session()
    loader = core.get_component("data_loader")
    if str(MODEL_ROOT) not in loader.search_paths:
        loader.search_paths.insert(0, str(MODEL_ROOT))
    return boto3.Session(botocore_session=core, **kwargs)


def client(**kwargs: Any) -> Any:
    """``boto3.client("panorama", **kwargs)`` with the vendored model available."""
    return session().client("panorama", **kwargs)
