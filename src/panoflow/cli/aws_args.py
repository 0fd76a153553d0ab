"""The ``--aws-*`` flags of ``run``, ``deploy`` and ``serve`` (a device default there), and the typed
:class:`~panoflow.aws.AwsSettings` they come to. See docs/aws.md."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from panoflow.aws.settings import DEFAULT_S3_CAP, AwsError, AwsSettings, parse_endpoint, parse_local

__all__ = ["add_aws_arguments", "aws_settings_from_args", "parse_size"]

T = TypeVar("T")

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``512M``, ``2G``, ``1048576`` -> bytes (binary units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size such as 512M or 2G, got {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _argtype(parse: Callable[[str], T]) -> Callable[[str], T]:
    def wrapped(text: str) -> T:
        try:
            return parse(text)
        except AwsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    wrapped.__name__ = parse.__name__
    return wrapped


def add_aws_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the AWS flags to ``parser`` (a subcommand's)."""
    group = parser.add_argument_group("AWS access for the application's own SDK calls (docs/aws.md)")
    group.add_argument("--aws-profile", metavar="NAME",
                       help="the device's AWS profile whose credentials the app gets (or uses to assume "
                            "--aws-role-arn)")
    group.add_argument("--aws-credentials", type=Path, metavar="FILE",
                       help="an AWS credentials file (INI) to read instead of ~/.aws/credentials")
    group.add_argument("--aws-role-arn", metavar="ARN",
                       help="a role to assume with STS for the app (the application instance's runtime role)")
    group.add_argument("--aws-endpoint", action="append", default=[], type=_argtype(parse_endpoint),
                       metavar="SERVICE=URL", help="send the app's calls to SERVICE to URL instead "
                                                   "(repeatable)")
    group.add_argument("--aws-local", type=_argtype(parse_local), metavar="LIST",
                       help="services served on the device: cloudwatch,s3 or none (default: cloudwatch,s3 "
                            "when no credentials are configured, else none)")
    group.add_argument("--aws-s3-cap", type=parse_size, default=DEFAULT_S3_CAP, metavar="SIZE",
                       help="size cap of the local S3 folder (default: 1G)")


def aws_settings_from_args(args: argparse.Namespace, region: str, *,
                           session_name: str = "panoflow") -> AwsSettings:
    """The settings the parsed flags ask for, validated. Raises :class:`~panoflow.aws.AwsError` (a
    PanoflowError: print it, no traceback) naming the flag to change."""
    endpoints: dict[str, str] = {}
    for name, url in args.aws_endpoint:
        if name in endpoints and endpoints[name] != url:
            raise AwsError(f"--aws-endpoint {name} is given twice ({endpoints[name]} and {url})")
        endpoints[name] = url
    return AwsSettings(profile=args.aws_profile, credentials_file=args.aws_credentials,
                       role_arn=args.aws_role_arn,
                       region=region, endpoints=endpoints, local=args.aws_local, s3_cap_bytes=args.aws_s3_cap,
                       role_session_name=session_name).validate()
