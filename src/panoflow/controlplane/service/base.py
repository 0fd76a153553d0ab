"""What every operation handler shares: the :class:`Context` it runs in, the operation registry
(:func:`operation`, :func:`handlers`) and the small helpers (:func:`new_id`, :func:`now`, :func:`ts`,
:func:`paginate`).

The handler modules (``devices``, ``packages``, ``applications``, ``cameras``, ``jobs``, ``tags``) import this
module; the package's ``__init__`` imports them, so importing :mod:`panoflow.controlplane.service` fills the
registry before :class:`~panoflow.controlplane.service.ControlPlane` reads it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from panoflow.controlplane.assets import AssetStore
from panoflow.controlplane.errors import validation
from panoflow.controlplane.store import Transaction

__all__ = ["DEFAULT_PAGE", "Context", "Handler", "handlers", "new_id", "now", "operation", "paginate", "ts"]

Handler = Callable[["Context", dict[str, Any]], dict[str, Any]]
_HANDLERS: dict[str, Handler] = {}
F = TypeVar("F", bound=Handler)
R = TypeVar("R")  # what is paged: store rows, or documents built from them

#: the page size when a list call sends no (or a zero) MaxResults
DEFAULT_PAGE = 25
_ID_ALPHABET = string.ascii_lowercase + string.digits


def operation(name: str) -> Callable[[F], F]:
    """Register a handler for the model operation ``name``."""
    def register(fn: F) -> F:
        _HANDLERS[name] = fn
        return fn
    return register


def handlers() -> Mapping[str, Handler]:
    """The registered handlers by operation name (read-only; filled as the handler modules are imported)."""
    return MappingProxyType(_HANDLERS)


@dataclass
class Context:
    """What a handler sees: the open transaction and the control plane's identity."""

    tx: Transaction
    account_id: str
    region: str
    assets: AssetStore
    ca_pem: str | None = None  # the TLS CA provisioning bundles carry (None: plain HTTP, development only)

    def arn(self, kind: str, id: str) -> str:
        """``arn:aws:panorama:<region>:<account>:<kind>/<id>``."""
        return f"arn:aws:panorama:{self.region}:{self.account_id}:{kind}/{id}"


def new_id(prefix: str) -> str:
    """A fresh resource id such as ``device-3k9...`` (26 random lowercase letters and digits)."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))


def now() -> dt.datetime:
    """The current UTC time (timestamps are stored as ISO strings in documents)."""
    return dt.datetime.now(dt.timezone.utc)


def ts(text: str | None) -> dt.datetime | None:
    """A stored ISO timestamp back to a datetime."""
    return None if text is None else dt.datetime.fromisoformat(text)


def paginate(rows: Sequence[R], params: dict[str, Any], scope: str) -> tuple[list[R], str | None]:
    """One page of ``rows`` and the NextToken for the next (None on the last page).

    Tokens are opaque (base64 JSON of the offset and the list they belong to); a token from another list or a
    malformed one is a ValidationException, not a 500.
    """
    size = params.get("MaxResults") or DEFAULT_PAGE
    start = 0
    token = params.get("NextToken")
    if token is not None:
        try:
            doc = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
            if doc["s"] != scope or not isinstance(doc["o"], int) or doc["o"] < 0:
                raise ValueError(token)
            start = doc["o"]
        except (ValueError, KeyError, TypeError, UnicodeError):
            raise validation("Invalid NextToken", "NextToken") from None
    page = list(rows[start:start + size])
    end = start + size
    if end >= len(rows):
        return page, None
    nxt = base64.urlsafe_b64encode(json.dumps({"s": scope, "o": end}).encode()).decode("ascii")
    return page, nxt
