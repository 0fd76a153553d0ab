"""Where an application instance's AWS credentials come from, and the cache that keeps them fresh.

Sources (one per instance): the device's own credentials from a profile or a credentials file
(:class:`BotocoreSource`), a role assumed with STS from those (:class:`AssumeRoleSource`), or, offline, random
credentials that only panoflow's local services accept (:class:`LocalSource`). :class:`CredentialCache`
fetches from the source in a thread and again before expiry; the gateway serves what it holds.

botocore is needed only for the first two (the ``aws`` extra: ``pip install 'panoflow[aws]'``); a device that
serves CloudWatch and S3 locally, offline, runs without it. Secrets never reach ``repr``, logs or errors.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

from panoflow.aws.settings import AwsError, AwsSettings

__all__ = ["AssumeRoleSource", "AwsCredentials", "BotocoreSource", "CredentialCache", "CredentialSource",
           "LocalSource", "credential_source"]

log = structlog.get_logger(__name__)

_EXTRA_HINT = "install the aws extra: pip install 'panoflow[aws]'"
_STATIC_LIFETIME = dt.timedelta(hours=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True, repr=False)
class AwsCredentials:
    """One set of AWS credentials and when they expire (aware, UTC). ``repr`` shows the access key id only."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: dt.datetime

    def __repr__(self) -> str:
        return (f"AwsCredentials(access_key_id={self.access_key_id!r}, "
                f"expiration={self.expiration.isoformat()})")

    def container_document(self, expiration: dt.datetime | None = None) -> dict[str, str]:
        """The JSON body of the container-credentials protocol (what every SDK's container provider reads)."""
        when = (expiration or self.expiration).astimezone(dt.timezone.utc)
        return {"AccessKeyId": self.access_key_id, "SecretAccessKey": self.secret_access_key,
                "Token": self.session_token, "Expiration": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


class CredentialSource(Protocol):
    """Something that produces credentials. ``fetch`` blocks (network); the cache calls it in a thread."""

    description: str

    def fetch(self) -> AwsCredentials: ...


def _botocore() -> Any:
    try:
        import botocore.session
    except ImportError:  # pragma: no cover - the test environment has botocore
        raise AwsError("AWS credentials for applications need botocore, which is not installed: "
                       f"{_EXTRA_HINT}")
    return botocore.session


def _describe(exc: Exception) -> str:
    """botocore's message for ``exc`` (it names profiles and files, never secret values)."""
    return f"{type(exc).__name__}: {exc}"


class BotocoreSource:
    """The device's own credentials: a named profile and/or a credentials file, else botocore's default
    chain."""

    def __init__(self, profile: str | None = None, credentials_file: Path | None = None):
        self.profile, self.credentials_file = profile, credentials_file
        where = [f"profile {profile}"] if profile else []
        where += [f"file {credentials_file}"] if credentials_file else []
        self.description = ", ".join(where) or "the device's default AWS credentials"

    def _load(self) -> Any:
        botocore_session = _botocore()
        if self.credentials_file is not None:  # that file only: not the daemon's environment or ~/.aws
            from botocore.credentials import SharedCredentialProvider

            provider = SharedCredentialProvider(str(self.credentials_file), self.profile or "default")
            return provider.load()
        # an explicit profile leaves the environment's keys out of botocore's chain
        return botocore_session.Session(profile=self.profile).get_credentials()

    def fetch(self) -> AwsCredentials:
        try:
            creds = self._load()
        except Exception as exc:  # noqa: BLE001 (botocore raises ProfileNotFound, config parse errors...)
            raise AwsError(f"cannot read AWS credentials from {self.description}: {_describe(exc)}") from None
        if creds is None:
            raise AwsError(
                f"no AWS credentials in {self.description}: give --aws-profile NAME or "
                "--aws-credentials FILE (an INI file with aws_access_key_id/aws_secret_access_key)"
            )
        frozen = creds.get_frozen_credentials()
        expiry = getattr(creds, "_expiry_time", None)
        expiration = (
            expiry.astimezone(dt.timezone.utc)
            if isinstance(expiry, dt.datetime)
            else _now() + _STATIC_LIFETIME
        )
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token or "", expiration)


class AssumeRoleSource:
    """A role assumed with STS (``AssumeRole``) using the device's own credentials (``base``)."""

    def __init__(self, role_arn: str, base: BotocoreSource, *, region: str, session_name: str = "panoflow",
                 sts_endpoint: str | None = None, duration_seconds: int = 3600):
        self.role_arn, self.base, self.region = role_arn, base, region
        self.session_name, self.sts_endpoint, self.duration_seconds = (
            session_name,
            sts_endpoint,
            duration_seconds,
        )
        self.description = f"role {role_arn} (assumed with {base.description})"

    def fetch(self) -> AwsCredentials:
        base = self.base.fetch()
        try:
            sts = _botocore().Session().create_client(
                "sts", region_name=self.region, endpoint_url=self.sts_endpoint,
                aws_access_key_id=base.access_key_id,
                aws_secret_access_key=base.secret_access_key, aws_session_token=base.session_token or None)
            answer = sts.assume_role(RoleArn=self.role_arn, RoleSessionName=self.session_name[:64],
                                     DurationSeconds=self.duration_seconds)
        except Exception as exc:  # noqa: BLE001 (NoCredentialsError, ClientError, EndpointConnectionError...)
            raise AwsError(f"cannot assume {self.role_arn}: {_describe(exc)}") from None
        c = answer["Credentials"]
        return AwsCredentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"],
                              c["Expiration"].astimezone(dt.timezone.utc))


class LocalSource:
    """Random credentials for an offline instance: the SDK can sign, and only the gateway's local services
    (which do not check signatures) answer. One set per instance, constant for its life."""

    description = "local (offline) credentials"

    def __init__(self) -> None:
        self._key = "ASIAPANOFLOW" + secrets.token_hex(4).upper()
        self._secret, self._token = secrets.token_urlsafe(30), secrets.token_urlsafe(48)

    def fetch(self) -> AwsCredentials:
        return AwsCredentials(self._key, self._secret, self._token, _now() + _STATIC_LIFETIME)


def credential_source(settings: AwsSettings) -> CredentialSource:
    """The source ``settings`` asks for: a role, a profile/file, or (nothing configured) local credentials."""
    if settings.role_arn:
        base = BotocoreSource(settings.profile, settings.credentials_file)
        return AssumeRoleSource(settings.role_arn, base, region=settings.region,
                                session_name=settings.role_session_name,
                                sts_endpoint=settings.endpoints.get("sts"))
    if settings.profile or settings.credentials_file:
        _botocore()
        return BotocoreSource(settings.profile, settings.credentials_file)
    return LocalSource()


class CredentialCache:
    """The current credentials of one instance, fetched again before they expire.

    ``refresh_margin`` (seconds): fetch anew when less than this is left (default: half the lifetime seen at
    the last fetch, so the SDK's own 15-minute advisory window finds fresh credentials). ``max_lifetime``
    (seconds) caps how long fetched credentials are treated (and served) as valid: tests use it to make the
    SDK refresh within seconds. Thread-safe; ``get`` blocks while a fetch runs.
    """

    def __init__(self, source: CredentialSource, *, refresh_margin: float | None = None,
                 max_lifetime: float | None = None, clock: Callable[[], dt.datetime] = _now):
        self.source, self.refresh_margin, self.max_lifetime, self._clock = (
            source,
            refresh_margin,
            max_lifetime,
            clock,
        )
        self._lock = threading.Lock()
        self._current: AwsCredentials | None = None
        self._expires: dt.datetime | None = None
        self._fetched: dt.datetime | None = None
        self.fetches = 0

    def _stale(self, now: dt.datetime) -> bool:
        if self._current is None or self._expires is None or self._fetched is None:
            return True
        margin = self.refresh_margin
        if margin is None:
            margin = (self._expires - self._fetched).total_seconds() / 2
        return (self._expires - now).total_seconds() < margin

    def get(self) -> tuple[AwsCredentials, dt.datetime]:
        """The credentials and the expiry to serve. Raises :class:`AwsError` when none can be had; a failed
        refresh while the old ones still hold keeps serving those (logged)."""
        with self._lock:
            now = self._clock()
            if self._stale(now):
                try:
                    fresh = self.source.fetch()
                except AwsError as exc:
                    if self._current is not None and self._expires is not None and self._expires > now:
                        log.warning("aws_credentials_refresh_failed", source=self.source.description,
                                    error=str(exc))
                    else:
                        raise
                else:
                    self.fetches += 1
                    expires = fresh.expiration
                    if self.max_lifetime is not None:
                        expires = min(expires, now + dt.timedelta(seconds=self.max_lifetime))
                    self._current, self._expires, self._fetched = fresh, expires, now
                    log.info("aws_credentials_fetched", source=self.source.description,
                             access_key_id=fresh.access_key_id, expires=expires.isoformat())
            assert self._current is not None and self._expires is not None
            return self._current, self._expires
