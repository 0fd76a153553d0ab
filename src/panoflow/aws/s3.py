"""Local S3 for offline devices: ``PutObject``, ``GetObject``, ``HeadObject``, ``DeleteObject`` and
``ListObjectsV2`` into a folder (``ROOT/BUCKET/KEY``, one file per object), with a size cap over the whole
folder.

Keys are validated before they touch the file system (no ``..``, no empty or dot segments, no NUL, at most
1024 bytes); every path is checked to stay under the root. Bodies sent ``aws-chunked`` (newer SDKs' streaming
checksums) are decoded. Anything else S3 offers answers ``NotImplemented`` (501, not retried by SDKs).
Synchronous: the gateway calls it in a thread.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import escape

__all__ = ["LocalS3", "S3Answer", "S3Error", "decode_aws_chunked", "validate_bucket", "validate_key"]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HIDDEN = ".panoflow"
_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


class S3Error(Exception):
    """An S3 error answer: HTTP status, S3 error code and a message that says what to change."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class S3Answer:
    status: int
    headers: dict[str, str]
    body: bytes = b""


def validate_bucket(bucket: str) -> str:
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise S3Error(400, "InvalidBucketName", f"{bucket!r} is not a valid S3 bucket name")
    return bucket


def validate_key(key: str) -> str:
    """``key`` if it is safe as a relative path under the bucket folder, else :class:`S3Error` saying why."""
    if not key:
        raise S3Error(400, "InvalidArgument", "an object key must not be empty")
    if len(key.encode("utf-8", "surrogatepass")) > 1024:
        raise S3Error(400, "KeyTooLongError", "an object key is at most 1024 bytes")
    if "\x00" in key or any(0xD800 <= ord(c) <= 0xDFFF for c in key):
        raise S3Error(400, "InvalidArgument", "an object key must not contain NUL or unpaired surrogates")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise S3Error(400, "InvalidArgument",
                          f"object key {key!r}: panoflow's local S3 keeps keys as file paths, so empty, '.' "
                          "and '..' segments (and leading, trailing or double slashes) are refused")
        if segment.startswith(_HIDDEN):
            raise S3Error(400, "InvalidArgument", f"object key {key!r}: segments starting {_HIDDEN} are "
                                                  "reserved")
        if len(segment.encode()) > 255:
            raise S3Error(400, "KeyTooLongError", f"object key {key!r}: a segment between slashes is at most "
                                                  "255 bytes")
    return key


def decode_aws_chunked(body: bytes) -> bytes:
    """The payload of an ``aws-chunked`` body (``SIZE[;chunk-signature=..]\\r\\nDATA\\r\\n`` ... ``0\\r\\n``
    and optional trailers). Raises :class:`S3Error` when it is malformed."""
    out, pos = bytearray(), 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise S3Error(400, "IncompleteBody", "aws-chunked body: a chunk header has no CRLF")
        header = body[pos:end].split(b";", 1)[0].strip()
        try:
            size = int(header, 16)
        except ValueError:
            raise S3Error(400, "IncompleteBody",
                          "aws-chunked body: a chunk size is not hexadecimal") from None
        pos = end + 2
        if size == 0:
            return bytes(out)
        if size < 0 or pos + size > len(body):
            raise S3Error(400, "IncompleteBody", "aws-chunked body is shorter than its chunk sizes")
        out += body[pos:pos + size]
        pos += size
        if body[pos:pos + 2] != b"\r\n":
            raise S3Error(400, "IncompleteBody", "aws-chunked body: a chunk does not end with CRLF")
        pos += 2


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _etag(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


class LocalS3:
    """Buckets as folders under ``root``; at most ``cap_bytes`` of objects in all."""

    def __init__(self, root: Path, cap_bytes: int):
        self.root, self.cap_bytes = Path(root), cap_bytes
        self._lock = threading.Lock()
        self._usage: int | None = None

    # -- paths -----------------------------------------------------------------------------------------------
    def _path(self, bucket: str, key: str | None = None) -> Path:
        base = self.root / validate_bucket(bucket)
        if key is None:
            return base
        path = base / validate_key(key)
        root = os.path.realpath(self.root)
        if not os.path.realpath(path).startswith(root + os.sep):
            raise S3Error(400, "InvalidArgument", f"object key {key!r} leaves the bucket folder")
        return path

    def usage(self) -> int:
        """Bytes of objects stored now (walked once, then kept up to date)."""
        with self._lock:
            if self._usage is None:
                self._usage = (
                    sum(
                        p.stat().st_size
                        for p in self.root.rglob("*")
                        if p.is_file() and not p.name.startswith(_HIDDEN)
                    )
                    if self.root.exists()
                    else 0
                )
            return self._usage

    # -- operations ------------------------------------------------------------------------------------------
    def put_object(self, bucket: str, key: str, data: bytes) -> S3Answer:
        path = self._path(bucket, key)
        used = self.usage()
        with self._lock:
            old = path.stat().st_size if path.is_file() else 0
            after = (self._usage or 0) - old + len(data)
            if after > self.cap_bytes:
                raise S3Error(400, "QuotaExceeded",
                              f"panoflow's local S3 folder {self.root} would hold {after} bytes, over its "
                              f"cap of {self.cap_bytes} bytes (now {used}): delete objects there or raise "
                              "--aws-s3-cap")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise S3Error(409, "InvalidArgument", f"object key {key!r} runs through another object's key "
                              "in the local folder (keys are file paths there)") from None
            if path.is_dir():
                raise S3Error(409, "InvalidArgument", f"object key {key!r} is a prefix of other objects' "
                              "keys in the local folder (keys are file paths there)")
            fd, tmp = tempfile.mkstemp(prefix=_HIDDEN + "-", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            self._usage = after
        return S3Answer(200, {"ETag": _etag(data)})

    def _read(self, bucket: str, key: str) -> tuple[bytes, os.stat_result]:
        path = self._path(bucket, key)
        try:
            return path.read_bytes(), path.stat()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise S3Error(404, "NoSuchKey", f"no object {key!r} in bucket {bucket!r}") from None

    def get_object(self, bucket: str, key: str, *, head: bool = False) -> S3Answer:
        data, st = self._read(bucket, key)
        headers = {"ETag": _etag(data), "Content-Length": str(len(data)),
                   "Content-Type": "binary/octet-stream",
                   "Last-Modified": formatdate(st.st_mtime, usegmt=True), "Accept-Ranges": "bytes"}
        return S3Answer(200, headers, b"" if head else data)

    def delete_object(self, bucket: str, key: str) -> S3Answer:
        path = self._path(bucket, key)
        with self._lock:
            if path.is_file():
                size = path.stat().st_size
                path.unlink()
                if self._usage is not None:
                    self._usage -= size
        return S3Answer(204, {})

    def create_bucket(self, bucket: str) -> S3Answer:
        self._path(bucket).mkdir(parents=True, exist_ok=True)
        return S3Answer(200, {"Location": f"/{bucket}"})

    def _keys(self, bucket: str) -> list[str]:
        base = self._path(bucket)
        keys = []
        for folder, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(_HIDDEN)]
            rel = os.path.relpath(folder, base)
            for name in files:
                if not name.startswith(_HIDDEN):
                    keys.append(name if rel == "." else f"{rel}/{name}")
        return sorted(keys)

    def list_objects_v2(self, bucket: str, query: Mapping[str, str]) -> S3Answer:
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        try:
            max_keys = max(0, min(1000, int(query.get("max-keys", "1000"))))
        except ValueError:
            raise S3Error(400, "InvalidArgument", "max-keys must be an integer") from None
        token = query.get("continuation-token")
        after = token if token is not None else query.get("start-after", "")
        url = query.get("encoding-type") == "url"
        enc = (lambda s: quote(s, safe="/~")) if url else (lambda s: s)
        contents: list[str] = []
        prefixes: list[str] = []
        truncated, last = False, ""
        for key in self._keys(bucket):
            if not key.startswith(prefix) or key <= after:
                continue
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest.split(delimiter, 1)[0] + delimiter
                if common in prefixes or common <= after:
                    continue
                item_is_prefix = True
            else:
                item_is_prefix = False
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if item_is_prefix:
                prefixes.append(common)
                last = common  # keys under it compare after it but fold into it again, so they are skipped
            else:
                contents.append(key)
                last = key
        parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{_XMLNS}">',
                 f"<Name>{escape(bucket)}</Name><Prefix>{escape(enc(prefix))}</Prefix>",
                 f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
                 f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
        if delimiter:
            parts.append(f"<Delimiter>{escape(enc(delimiter))}</Delimiter>")
        if url:
            parts.append("<EncodingType>url</EncodingType>")
        if token is not None:
            parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        elif "start-after" in query:
            parts.append(f"<StartAfter>{escape(enc(query['start-after']))}</StartAfter>")
        if truncated:
            parts.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
        base = self._path(bucket)
        for key in contents:
            path = base / key
            data = path.read_bytes()
            parts.append(f"<Contents><Key>{escape(enc(key))}</Key><LastModified>{_iso(path.stat().st_mtime)}"
                         f"</LastModified><ETag>{escape(_etag(data))}</ETag><Size>{len(data)}</Size>"
                         "<StorageClass>STANDARD</StorageClass></Contents>")
        parts += [f"<CommonPrefixes><Prefix>{escape(enc(p))}</Prefix></CommonPrefixes>" for p in prefixes]
        parts.append("</ListBucketResult>")
        return S3Answer(200, {"Content-Type": "application/xml"}, "".join(parts).encode())
