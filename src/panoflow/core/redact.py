"""The one credential redactor: URLs, free text and nested structures. Used by logs (``panoflow.log``), status
output, ``stream_uri``, error messages, uploaded device logs and the control plane's answers
(docs/security.md).

What is masked (``***``):

* the password of any ``scheme://user:password@host`` URL, whatever characters it holds (``@``, ``/``, ``?``,
  ``#``, ``:``): everything between the first ``:`` after the user and the *last* ``@`` of the URL. A URL
  whose path holds an ``@`` after a port (``http://h:8080/x@y``) loses a little more than its password; never
  less;
* secret query or ``name=value`` values (up to the next whitespace or ``&``, so a quote or ``#`` after one is
  masked too): :data:`SECRET_NAMES` (``X-Amz-Signature``, ``X-Amz-Security-Token``,
  ``X-Amz-Credential``, ``token``, ``access_token``, ``api_key``, ``password``...), in any case;
* the value of every application parameter on a command line (``--param NAME=VALUE``, ``--param=NAME=VALUE``):
  parameters are how Panorama apps receive API keys;
* in structures (:func:`redact_value`): the value under any key that names a secret (:data:`SECRET_KEYS`:
  ``Password``, ``SecretAccessKey``, ``Token``, ``ClaimToken``, ``Authorization``...), every string anywhere,
  to any depth.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["FILE_LIKE_SCHEMES", "MASK", "QUERY_ONLY_NAMES", "SECRET_KEYS", "SECRET_NAMES", "is_secret_key",
           "redact_text", "redact_url", "redact_value", "uri_scheme", "with_credentials"]

MASK = "***"
#: Schemes PyAV opens as a file-like resource (served by the ``file`` source).
FILE_LIKE_SCHEMES = frozenset({"file", "http", "https"})
_URI_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*)://")

#: query-string and ``name=value`` names whose values are secrets (compared in lower case, ``-`` as ``_``)
SECRET_NAMES = frozenset({
    "password", "passwd", "pwd", "pass", "secret", "client_secret", "token", "access_token", "refresh_token",
    "id_token", "auth_token", "session_token", "api_key", "apikey", "private_key", "signature", "sig",
    "x_amz_signature", "x_amz_security_token", "x_amz_credential", "authorization", "credential",
    "credentials",
})
#: names that are secrets only in a URL's query (``?key=...``, as Google API keys): elsewhere ``key`` is an
#: asset key
QUERY_ONLY_NAMES = frozenset({"key"})
#: structure keys whose values are secrets (compared in lower case without ``_``/``-``), besides
#: :data:`SECRET_NAMES`
SECRET_KEYS = frozenset({
    "password", "secretaccesskey", "awssecretaccesskey", "sessiontoken", "securitytoken", "token",
    "claimtoken",
    "authorization", "apikey", "secret", "clientsecret", "accesstoken", "refreshtoken", "privatekey",
    "keypem", "dbpassword", "pgpassword",
})
_MAX_DEPTH = 32


def uri_scheme(uri: str) -> str:
    """The source registry key for ``uri``: the URI's scheme in lower case (``testsrc``, ``rtsp``...) when
    it starts with ``scheme://``; ``file`` for plain paths (``clip:1.mp4`` is a relative path), ``file:``
    URIs and ``http(s)://`` URLs (:data:`FILE_LIKE_SCHEMES`). The one copy: the runtime picks a camera's
    source plugin with it, the built-in sources parse their URIs with it (:mod:`panoflow.plugins.uri`)."""
    match = _URI_SCHEME.match(uri)
    if not match:
        return "file"
    scheme = match["scheme"].lower()
    return "file" if scheme in FILE_LIKE_SCHEMES else scheme


def _norm(name: str) -> str:
    return name.lower().replace("-", "_")


def is_secret_key(name: str) -> bool:
    """Whether a structure key or parameter name holds a secret (``Password``, ``api_key``,
    ``X-Amz-Signature``)."""
    norm = _norm(name)
    return norm in SECRET_NAMES or norm.replace("_", "") in SECRET_KEYS


# a URL: scheme:// and everything up to whitespace (a password may hold any other character)
_URL = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<rest>[^\s]*)")
# name=value after the start, whitespace, a query/parameter separator or an opening bracket/quote
_PAIR = re.compile(r"(?P<lead>(?:^|[\s?&;,{(\[\"']))(?P<name>[A-Za-z][A-Za-z0-9_\-]*)=(?P<value>[^&\s]*)")
# an application parameter on a command line: --param NAME=VALUE or --param=NAME=VALUE
_PARAM = re.compile(r"(?P<lead>--param[= ](?:[^=\s]+)=)(?P<value>\S*)")


def _userinfo(scheme: str, rest: str) -> str:
    at = rest.rfind("@")
    if at < 0:
        return scheme + rest
    userinfo, tail = rest[:at], rest[at + 1:]
    colon = userinfo.find(":")
    if colon < 0:
        return scheme + rest  # a user name only (or an @ in a path): nothing secret
    user = userinfo[:colon]
    if any(c in user for c in "/?#"):
        return scheme + rest  # the ':' is in a path or query, not in a userinfo
    return f"{scheme}{user}:{MASK}@{tail}"


def _pairs(text: str) -> str:
    def mask(m: re.Match[str]) -> str:
        secret = is_secret_key(m["name"]) or (
            _norm(m["name"]) in QUERY_ONLY_NAMES and m["lead"] in ("?", "&")
        )
        if not secret or not m["value"] or m["value"] == MASK:
            return m.group(0)
        return f"{m['lead']}{m['name']}={MASK}"
    return _PAIR.sub(mask, text)


def redact_text(text: str) -> str:
    """``text`` with every URL password, secret ``name=value`` value and ``--param`` value masked."""
    if "://" not in text and "=" not in text:
        return text
    if "://" in text:
        text = _URL.sub(lambda m: _userinfo(m["scheme"], m["rest"]), text)
    if "--param" in text:
        text = _PARAM.sub(lambda m: m["lead"] + (MASK if m["value"] else ""), text)
    return _pairs(text)


def redact_url(url: str) -> str:
    """``rtsp://user:pw@host/x`` -> ``rtsp://user:***@host/x``; secret query values become ``***``."""
    return redact_text(url)


def redact_value(value: Any, _depth: int = 0) -> Any:
    """``value`` with secrets masked to any depth: strings through :func:`redact_text`, mappings' values under
    a secret key (:func:`is_secret_key`) replaced by ``***``, lists/tuples/sets element by element. Other
    objects are returned as they are (a log renderer calls ``repr``/``str`` on them: redact that text
    instead)."""
    if isinstance(value, str):
        return redact_text(value)
    if _depth >= _MAX_DEPTH:
        return MASK
    if isinstance(value, Mapping):
        return {k: (MASK if isinstance(k, str) and is_secret_key(k) and v not in (None, "")
                    else redact_value(v, _depth + 1)) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(redact_value(v, _depth + 1) for v in value)
    if isinstance(value, (list, set, frozenset)):
        return [redact_value(v, _depth + 1) for v in value]
    return value


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``url`` with ``username[:password]@`` (percent-encoded) in front of its host: what a camera client
    needs. The result holds a secret: never log it (log :func:`redact_url` of it)."""
    if username is None:
        return url
    auth = quote(username, safe="")
    if password is not None:
        auth += ":" + quote(password, safe="")
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{auth}@{parts.netloc}", parts.path, parts.query, parts.fragment))
