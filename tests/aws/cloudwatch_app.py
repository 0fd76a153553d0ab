"""The CloudWatch call of aws-panorama-sample in our own words (:data:`PUT_METRIC`, pasted into the AWS tests'
apps) and how a test finds the metric it produced on a ``/metrics`` page (read from ``panoflow run``'s
control API with :func:`tests.support.cli.control_get`)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

# What aws-panorama-sample does every 150 frames (here every 10, to keep the test short): a CloudWatch metric
# with the "Application Name" and "Device ID" dimensions, catching only ClientError, as the sample does.
PUT_METRIC = """
def put_metric(cloudwatch):
    from botocore.exceptions import ClientError

    try:
        cloudwatch.put_metric_data(Namespace="AWSPanoramaApplication", MetricData=[{
            "MetricName": "AverageInferenceTime", "Value": 12.5, "Unit": "Milliseconds",
            "Dimensions": [{"Name": "Application Name", "Value": "sample"},
                           {"Name": "Device ID", "Value": "dev1"}],
        }])
    except ClientError as exc:
        print("cloudwatch refused:", exc, flush=True)
"""
METRIC = ('panoflow_cloudwatch_metric{', 'namespace="AWSPanoramaApplication"',
          'metric="AverageInferenceTime"', 'application_name="sample"', 'device_id="dev1"')


def metric_line(text: str) -> str | None:
    """The line of a ``/metrics`` page that holds the app's metric, or None."""
    return next((line for line in text.splitlines() if all(part in line for part in METRIC)), None)


def wait_for(what: str, probe: Callable[[], Any], proc: subprocess.Popen[str] | None = None,
             timeout: float = 60) -> Any:
    """``probe()``'s first truthy answer (OSError and ValueError count as none yet); fails with ``what`` after
    ``timeout`` seconds or as soon as ``proc`` ends."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = probe()
        except (OSError, ValueError):
            found = None
        if found:
            return found
        assert proc is None or proc.poll() is None, f"{what}: the run ended: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.3)
