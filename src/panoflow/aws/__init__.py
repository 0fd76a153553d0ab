"""AWS access for application instances: credentials served to the app's own SDK, local CloudWatch and S3 for
offline devices, and endpoint redirection. See docs/aws.md; the CLI flags are in :mod:`panoflow.cli.aws_args`.

One :class:`AwsGateway` per instance (``async with AwsGateway(settings, instance_id=..., state_dir=...)``);
:meth:`AwsGateway.sandbox` says which ports, hostnames, files and environment variables the sandbox maps.
"""

from __future__ import annotations

from panoflow.aws.cloudwatch import MetricStore
from panoflow.aws.credentials import AwsCredentials, CredentialCache, credential_source
from panoflow.aws.gateway import (
    CREDENTIALS_PATH,
    AwsGateway,
    SandboxAws,
    app_config_text,
    app_environment,
    sandbox_hostnames,
)
from panoflow.aws.s3 import LocalS3
from panoflow.aws.settings import AwsError, AwsSettings

__all__ = ["CREDENTIALS_PATH", "AwsCredentials", "AwsError", "AwsGateway", "AwsSettings", "CredentialCache",
           "LocalS3", "MetricStore", "SandboxAws", "app_config_text", "app_environment", "credential_source",
           "sandbox_hostnames"]
