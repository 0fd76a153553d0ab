"""Credential redaction for URLs and free text. Used by logs, status output, ``stream_uri`` and error messages."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["redact_text", "redact_url", "uri_scheme", "with_credentials"]

_FILE_LIKE = ("file", "http", "https")


def uri_scheme(uri: str) -> str:
    """The source registry key for ``uri``: ``file`` for plain paths and ``file``/``http(s)`` URLs, else the URI's
    scheme in lower case (``testsrc``, ``rtsp``...)."""
    if "://" not in uri:
        return "file"
    scheme = uri.split("://", 1)[0].lower()
    return "file" if scheme in _FILE_LIKE else scheme

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^/@\s:]*)(?::[^/@\s]*)?@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|passwd|pwd|token|secret|key|signature)=)[^&\s#]*")


def redact_url(url: str) -> str:
    """``rtsp://user:pw@host/x`` -> ``rtsp://user:***@host/x``; secret-looking query values become ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = _SECRET_QUERY.sub(r"\1***", "?" + parts.query)[1:] if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Redact every URL-embedded password and secret query value found anywhere in ``text``."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@" if ":" in m.group(0)[len(m['scheme']):] else m.group(0), text)
    return _SECRET_QUERY.sub(r"\1***", text)


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``url`` with ``username[:password]@`` (percent-encoded) in front of its host: what a camera client needs.
    The result holds a secret: never log it (log :func:`redact_url` of it)."""
    if username is None:
        return url
    auth = quote(username, safe="")
    if password is not None:
        auth += ":" + quote(password, safe="")
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, f"{auth}@{parts.netloc}", parts.path, parts.query, parts.fragment))
