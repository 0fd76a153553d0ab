"""Typed AWS settings of one application instance, and the table of AWS services panoflow knows by name.

:class:`AwsSettings` is what ``--aws-profile``, ``--aws-credentials``, ``--aws-role-arn``, ``--aws-endpoint``
and ``--aws-local`` (or a control plane's ``RuntimeRoleArn``) come to; the CLI builds it with
:func:`panoflow.cli.aws_args.aws_settings_from_args`, the gateway consumes it. Pure data: no I/O here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from panoflow.exceptions import PanoflowError

__all__ = ["DEFAULT_LOCAL", "DEFAULT_S3_CAP", "LOCAL_SERVICES", "AwsError", "AwsSettings", "Service",
           "known_services", "parse_endpoint", "parse_local", "service"]


class AwsError(PanoflowError, RuntimeError):
    """AWS access for an application cannot be set up (bad flag, missing package, unreadable credentials)."""


@dataclass(frozen=True)
class Service:
    """One AWS service as the SDKs see it: the name users type (``cloudwatch``), the endpoint prefix and
    signing name (``monitoring``), and the suffix of its ``AWS_ENDPOINT_URL_<SUFFIX>`` variable
    (``CLOUDWATCH``)."""

    name: str
    prefix: str
    env_suffix: str


_KNOWN = (
    Service("cloudwatch", "monitoring", "CLOUDWATCH"),
    Service("s3", "s3", "S3"),
    Service("sts", "sts", "STS"),
    Service("sqs", "sqs", "SQS"),
    Service("sns", "sns", "SNS"),
    Service("firehose", "firehose", "FIREHOSE"),
    Service("kinesis", "kinesis", "KINESIS"),
    Service("secretsmanager", "secretsmanager", "SECRETS_MANAGER"),
    Service("dynamodb", "dynamodb", "DYNAMODB"),
    Service("logs", "logs", "CLOUDWATCH_LOGS"),
    Service("ssm", "ssm", "SSM"),
    Service("lambda", "lambda", "LAMBDA"),
    Service("events", "events", "EVENTBRIDGE"),
    Service("iot", "iot", "IOT"),
)
_BY_NAME = {s.name: s for s in _KNOWN} | {s.prefix: s for s in _KNOWN} | {"queue": _KNOWN[3]}
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

LOCAL_SERVICES = frozenset({"cloudwatch", "s3"})
DEFAULT_LOCAL = LOCAL_SERVICES
DEFAULT_S3_CAP = 1 << 30


def service(name: str) -> Service:
    """The service called ``name`` (user name or endpoint prefix, any case); an unknown but well-formed name
    is taken as its own prefix. Raises :class:`AwsError` for a malformed one."""
    key = name.strip().lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    if not _NAME.match(key):
        raise AwsError(f"{name!r} is not an AWS service name (expected something like cloudwatch, s3, sqs)")
    return Service(key, key, key.upper().replace("-", "_"))


def known_services() -> tuple[Service, ...]:
    """The services panoflow names in its tables (the hostnames an offline sandbox maps so calls fail
    fast)."""
    return _KNOWN


def parse_endpoint(text: str) -> tuple[str, str]:
    """``SERVICE=URL`` (``--aws-endpoint``) -> (service name, URL). Raises :class:`AwsError` with the fix."""
    name, sep, url = text.partition("=")
    if not sep or not name.strip() or not url.strip():
        raise AwsError("--aws-endpoint expects SERVICE=URL (e.g. cloudwatch=http://10.0.0.5:5000), got "
                       f"{text!r}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AwsError(f"--aws-endpoint {name}: {url!r} is not an http(s) URL with a host")
    if parts.username or parts.password:
        raise AwsError(f"--aws-endpoint {name}: the URL must not carry credentials")
    return service(name).name, url.strip().rstrip("/")


def parse_local(text: str) -> frozenset[str]:
    """``cloudwatch,s3`` (``--aws-local``; ``none`` for nothing) -> the set of locally served services."""
    if text.strip().lower() in ("", "none", "off"):
        return frozenset()
    names = {service(part).name for part in text.split(",") if part.strip()}
    unknown = names - LOCAL_SERVICES
    if unknown:
        raise AwsError(f"--aws-local: panoflow serves only {', '.join(sorted(LOCAL_SERVICES))} locally, "
                       f"not {', '.join(sorted(unknown))}")
    return frozenset(names)


@dataclass(frozen=True)
class AwsSettings:
    """How one application instance reaches AWS.

    ``profile``/``credentials_file`` name the device's credentials; ``role_arn`` is assumed with them (STS)
    and the app gets the role's credentials. ``endpoints`` maps a service name to the URL its calls are
    forwarded to. ``local`` is the set of services served on the device; ``None`` means the default:
    ``cloudwatch`` and ``s3`` when no credentials are configured, nothing otherwise (see
    :attr:`local_services`).
    """

    profile: str | None = None
    credentials_file: Path | None = None
    role_arn: str | None = None
    region: str = "us-east-1"
    endpoints: dict[str, str] = field(default_factory=dict)
    local: frozenset[str] | None = None
    s3_cap_bytes: int = DEFAULT_S3_CAP
    role_session_name: str = "panoflow"

    @property
    def has_credentials(self) -> bool:
        return bool(self.profile or self.credentials_file or self.role_arn)

    @property
    def local_services(self) -> frozenset[str]:
        if self.local is not None:
            return self.local
        return frozenset() if self.has_credentials else DEFAULT_LOCAL

    def validate(self) -> AwsSettings:
        """Check the combination; returns self. Raises :class:`AwsError` naming the flag to change."""
        if self.role_arn and not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$", self.role_arn):
            raise AwsError(f"--aws-role-arn {self.role_arn!r} is not an IAM role ARN "
                           "(arn:aws:iam::123456789012:role/NAME)")
        if self.credentials_file is not None and not self.credentials_file.is_file():
            raise AwsError(f"--aws-credentials {self.credentials_file}: no such file")
        overlap = self.local_services & set(self.endpoints)
        if overlap:
            raise AwsError(f"{', '.join(sorted(overlap))}: both --aws-local and --aws-endpoint; choose one")
        if self.s3_cap_bytes <= 0:
            raise AwsError("--aws-s3-cap must be a positive size")
        return self
