"""Where package assets live: a folder (:class:`LocalAssetStore`) or S3-compatible storage
(:class:`S3AssetStore`).

Keys follow Panorama's StorageLocation layout
(``<account>/nodePackages/<packageId>/binaries/<sha256>.tar.gz``). Every write streams: :meth:`AssetStore.put`
reads its source in chunks while computing SHA-256 and size, and an object whose bytes do not match the digest
the caller claimed is never kept. Each store records an object's SHA-256 (a sidecar file, S3 object metadata)
so RegisterPackageVersion can check assets without reading them again; a missing or stale record is
recomputed.

    store = open_assets("./cp-assets")  # or "s3://bucket/prefix" (endpoint: AWS_ENDPOINT_URL_S3)
    info = store.put("acct/nodePackages/p/binaries/x.json", stream, sha256=claimed)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast, runtime_checkable

import structlog

from panoflow.exceptions import PanoflowError

__all__ = [
    "CHUNK",
    "DEFAULT_MAX_ASSET_SIZE",
    "FOLDER_BUCKET",
    "AssetDigestMismatch",
    "AssetError",
    "AssetInfo",
    "AssetKeyError",
    "AssetNotFound",
    "AssetStore",
    "AssetTooLarge",
    "LocalAssetStore",
    "S3AssetStore",
    "check_key",
    "open_assets",
]

log = structlog.get_logger("panoflow.controlplane.assets")

#: bytes per read when streaming an object in or out
CHUNK = 1024 * 1024
#: the largest object a PUT may upload unless the control plane is configured otherwise
DEFAULT_MAX_ASSET_SIZE = 4 * 1024 ** 3
#: the bucket name StorageLocation reports when assets live in a folder
FOLDER_BUCKET = "panoflow-assets"
#: the first key segment a folder store keeps for itself (digest records, partial uploads)
_RESERVED = ".panoflow"
_KEY = re.compile(r"^[A-Za-z0-9._/-]+$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_KEY = 1024


class AssetError(PanoflowError):
    """An asset store refused an operation; the message says what to do."""


class AssetKeyError(AssetError, ValueError):
    """A key outside the allowed alphabet or layout (``..``, empty segments, a leading ``/``)."""


class AssetNotFound(AssetError, KeyError):
    """No object under that key."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class AssetDigestMismatch(AssetError, ValueError):
    """The uploaded bytes do not have the SHA-256 the uploader claimed; nothing was kept."""


class AssetTooLarge(AssetError, ValueError):
    """The upload is larger than the store accepts; nothing was kept."""


@dataclass(frozen=True)
class AssetInfo:
    """An object's key, size and SHA-256 (hex; ``None`` from :meth:`AssetStore.stat` when no record
    exists)."""

    key: str
    size: int
    sha256: str | None = None


def check_key(key: str) -> str:
    """``key`` if it is a valid asset key, else :class:`AssetKeyError` saying why."""
    if not key or len(key) > _MAX_KEY:
        raise AssetKeyError(f"asset key must be 1 to {_MAX_KEY} characters long")
    if not _KEY.match(key):
        raise AssetKeyError(f"asset key {key[:200]!r} may only hold letters, digits, '.', '_', '-' and '/'")
    if key.startswith("/"):
        raise AssetKeyError(f"asset key {key[:200]!r} must not start with '/'")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise AssetKeyError(f"asset key {key[:200]!r} must not hold empty, '.' or '..' segments")
    if parts[0] == _RESERVED:
        raise AssetKeyError(f"asset keys under {_RESERVED}/ are reserved for the store itself")
    return key


def _check_sha(sha256: str | None) -> None:
    if sha256 is not None and not _HEX64.match(sha256):
        raise AssetError(f"expected SHA-256 {sha256[:80]!r} is not 64 lowercase hex digits")


class _Hashing(io.RawIOBase):
    """Reads through ``source`` counting and hashing; fails (so nothing is stored) past ``max_size`` bytes,
    and at the end of the stream when the digest differs from ``expected``."""

    def __init__(self, source: BinaryIO, expected: str | None, max_size: int | None, key: str):
        super().__init__()
        self.source, self.expected, self.max_size, self.key = source, expected, max_size, key
        self.hash = hashlib.sha256()
        self.size = 0
        self.eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.source.read(len(view))
        if not data:
            self.eof = True
            self.verify()
            return 0
        self.size += len(data)
        if self.max_size is not None and self.size > self.max_size:
            raise AssetTooLarge(f"{self.key}: the upload is larger than the {self.max_size}-byte limit "
                                "(the server's --max-asset-size)")
        self.hash.update(data)
        view[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read to the end (stores may stop reading at the last byte, before seeing the end of the stream)."""
        while not self.eof:
            self.readinto(bytearray(CHUNK))

    def verify(self) -> None:
        if self.expected is not None and self.hash.hexdigest() != self.expected:
            raise AssetDigestMismatch(
                f"{self.key}: the body's SHA-256 is {self.hash.hexdigest()}, not {self.expected} as "
                "x-amz-content-sha256 claims; the upload was not kept (was the file changed while uploading?)"
            )

    def info(self) -> AssetInfo:
        return AssetInfo(self.key, self.size, self.hash.hexdigest())


@runtime_checkable
class AssetStore(Protocol):
    """Objects by key, streamed in and out."""

    #: what StorageLocation.Bucket reports
    bucket: str

    def stat(self, key: str) -> AssetInfo | None:
        """Size and recorded SHA-256 (``None`` when unrecorded) of ``key``, or ``None`` when absent."""
        ...

    def open(self, key: str) -> BinaryIO:
        """The object's bytes as a stream (close it); :class:`AssetNotFound` when absent."""
        ...

    def put(self, key: str, stream: BinaryIO, *, sha256: str | None = None,
            max_size: int | None = None) -> AssetInfo:
        """Store ``stream`` under ``key`` (replacing it), computing SHA-256 and size while reading; refuses
        (and keeps nothing) when the digest differs from ``sha256`` or the body exceeds ``max_size`` bytes."""
        ...

    def sha256(self, key: str) -> str | None:
        """The object's SHA-256 (recorded, else recomputed and recorded), or ``None`` when absent."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...


def _digest_of(store: AssetStore, key: str) -> str:
    """SHA-256 of a stored object, read through the store (for objects stored without a recorded digest)."""
    digest = hashlib.sha256()
    with store.open(key) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LocalAssetStore:
    """Objects as files under ``root`` (``root/<key>``); digests recorded under
    ``root/.panoflow/sha256/<key>``.

    Writes go to a temporary file in ``root/.panoflow/tmp`` that is fsynced and renamed into place, so a
    reader never sees a partial object. Files are 0644, folders this store creates 0755.
    """

    bucket = FOLDER_BUCKET

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalAssetStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _record(self, key: str) -> Path:
        return self.root / _RESERVED / "sha256" / key

    def stat(self, key: str) -> AssetInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        return AssetInfo(key, st.st_size, self._recorded(key, st))

    def _recorded(self, key: str, st: os.stat_result) -> str | None:
        try:
            doc = json.loads(self._record(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(doc, dict) and doc.get("size") == st.st_size and doc.get("mtime_ns") == st.st_mtime_ns \
                and isinstance(doc.get("sha256"), str) and _HEX64.match(doc["sha256"]):
            return str(doc["sha256"])
        return None

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise AssetNotFound(f"no asset {key!r}") from None

    def _mkdirs(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o755)

    def _write_atomic(self, target: Path, write: Any) -> None:
        tmp_dir = self.root / _RESERVED / "tmp"
        self._mkdirs(tmp_dir)
        self._mkdirs(target.parent)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put(self, key: str, stream: BinaryIO, *, sha256: str | None = None,
            max_size: int | None = None) -> AssetInfo:
        target = self._path(key)
        _check_sha(sha256)
        if target.is_dir():
            raise AssetKeyError(f"asset key {key!r} names a folder of other assets")
        reader = _Hashing(stream, sha256, max_size, key)

        def copy(out: BinaryIO) -> None:
            while chunk := reader.read(CHUNK):
                out.write(chunk)

        try:
            self._write_atomic(target, copy)
        except NotADirectoryError:
            raise AssetKeyError(f"asset key {key!r} lies under another asset") from None
        info = reader.info()
        self._write_record(key, info)
        log.info("asset_stored", store="folder", key=key, size=info.size, sha256=info.sha256)
        return info

    def _write_record(self, key: str, info: AssetInfo) -> None:
        st = self._path(key).stat()
        doc = json.dumps({"sha256": info.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}).encode()
        self._write_atomic(self._record(key), lambda out: out.write(doc))

    def sha256(self, key: str) -> str | None:
        info = self.stat(key)
        if info is None:
            return None
        if info.sha256 is not None:
            return info.sha256
        digest = _digest_of(self, key)
        size = self._path(key).stat().st_size
        self._write_record(key, AssetInfo(key, size, digest))
        return digest

    def delete(self, key: str) -> None:
        for path in (self._path(key), self._record(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class S3AssetStore:
    """Objects in ``s3://bucket/prefix/<key>`` through boto3 (endpoint from ``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL``, credentials and region as boto3 finds them). The SHA-256 is object metadata
    (``x-amz-meta-sha256``); uploads are multipart above 8 MiB (``upload_fileobj``)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            check_key(self.prefix)
        self.client = client or boto3.client("s3", region_name=_region())

    def __repr__(self) -> str:
        return f"S3AssetStore('s3://{self.bucket}/{self.prefix}')"

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.head_object(Bucket=self.bucket, Key=self._name(key)))
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise AssetError(f"s3://{self.bucket}/{self._name(key)}: {_s3_reason(exc)}") from None

    def stat(self, key: str) -> AssetInfo | None:
        head = self._head(key)
        if head is None:
            return None
        recorded = (head.get("Metadata") or {}).get("sha256")
        return AssetInfo(key, int(head["ContentLength"]),
                         recorded if isinstance(recorded, str) and _HEX64.match(recorded) else None)

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise AssetNotFound(f"no asset {key!r}") from None
            raise AssetError(f"s3://{self.bucket}/{self._name(key)}: {_s3_reason(exc)}") from None
        # a raw binary file (io.RawIOBase), which typing.BinaryIO does not describe
        return cast(BinaryIO, _BodyReader(body))

    def put(self, key: str, stream: BinaryIO, *, sha256: str | None = None,
            max_size: int | None = None) -> AssetInfo:
        from botocore.exceptions import BotoCoreError, ClientError

        name = self._name(key)
        _check_sha(sha256)
        # unknown digest: upload under a temporary name, then copy with the digest as metadata
        target = (
            name
            if sha256 is not None
            else f"{self.prefix + '/' if self.prefix else ''}{_RESERVED}/tmp/{uuid.uuid4().hex}"
        )
        reader = _Hashing(stream, sha256, max_size, key)
        extra = {"Metadata": {"sha256": sha256}} if sha256 is not None else {}
        uploaded = False
        try:
            try:
                self.client.upload_fileobj(io.BufferedReader(reader, CHUNK), self.bucket, target,
                                           ExtraArgs=extra)
                uploaded = True
                reader.drain()
            except AssetError:
                raise
            except Exception as exc:
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, AssetError):  # s3transfer may wrap what our reader raised
                    raise cause from None
                if isinstance(exc, (ClientError, BotoCoreError)):
                    raise AssetError(
                        f"cannot upload to s3://{self.bucket}/{name}: {_s3_reason(exc)}"
                    ) from None
                raise
        except AssetError:
            # a refused body replaced nothing unless the store already took all of it
            self._remove(target if uploaded or sha256 is None else None)
            raise
        info = reader.info()
        if sha256 is None:
            try:
                self.client.copy({"Bucket": self.bucket, "Key": target}, self.bucket, name,
                                 ExtraArgs={"Metadata": {"sha256": info.sha256},
                                            "MetadataDirective": "REPLACE"})
            finally:
                self._remove(target)
        log.info("asset_stored", store="s3", bucket=self.bucket, key=name, size=info.size, sha256=info.sha256)
        return info

    def _remove(self, name: str | None) -> None:
        if name is None:
            return
        with contextlib.suppress(Exception):
            self.client.delete_object(Bucket=self.bucket, Key=name)

    def sha256(self, key: str) -> str | None:
        info = self.stat(key)
        if info is None:
            return None
        if info.sha256 is not None:
            return info.sha256
        digest = _digest_of(self, key)
        name = self._name(key)
        with contextlib.suppress(Exception):  # record it for next time; the digest stands either way
            self.client.copy({"Bucket": self.bucket, "Key": name}, self.bucket, name,
                             ExtraArgs={"Metadata": {"sha256": digest}, "MetadataDirective": "REPLACE"})
        return digest

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))


class _BodyReader(io.RawIOBase):
    """A botocore StreamingBody as a closeable binary file."""

    def __init__(self, body: Any):
        super().__init__()
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.body.read(len(view))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.body.close()
        super().close()


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _s3_reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
    return str(exc)


def open_assets(spec: str | Path) -> AssetStore:
    """The store for ``--assets``: a folder path (created if needed) or ``s3://BUCKET[/PREFIX]``."""
    text = str(spec)
    if text.startswith("s3://"):
        bucket, _, prefix = text[5:].partition("/")
        if not bucket:
            raise AssetError(f"--assets {text!r}: expected s3://BUCKET[/PREFIX]")
        try:
            return S3AssetStore(bucket, prefix)
        except AssetKeyError as exc:
            raise AssetError(f"--assets {text!r}: the prefix is not valid: {exc}") from None
    if "://" in text:
        raise AssetError(f"--assets {text!r}: expected a folder or s3://BUCKET[/PREFIX]")
    root = Path(text).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AssetError(f"--assets {text!r}: cannot create the folder ({exc.strerror})") from None
    return LocalAssetStore(root.resolve())
