"""schemathesis against a live daemon's /openapi.json: whatever it sends (with the token), never a 5xx.

Every other check of schemathesis runs too (documented status codes and content types, response schemas,
schema-violating input rejected), except "schema-valid input accepted": an archive upload is any bytes as far
as OpenAPI can say, and only a tar.gz of an application folder is accepted.

The number of examples per operation is bounded (``PANOFLOW_SCHEMATHESIS_EXAMPLES``, default 25). The two
endless MJPEG streams are left out (they take no input; real clients read them in test_nodes_and_outputs), and
``follow`` is forced off so that a log request returns.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.errors import FailureGroup

from panoflow.daemon.openapi import openapi_document
from tests.support.daemons import Daemon

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs Linux namespaces")

EXAMPLES = int(os.environ.get("PANOFLOW_SCHEMATHESIS_EXAMPLES", "25"))
schemathesis.serializer.alias("application/gzip", "application/octet-stream")  # archives: random bytes


@pytest.fixture(scope="module")
def live_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    daemon = Daemon(Path(tmp_path_factory.mktemp("schemathesis")) / "state").start()
    yield daemon
    assert daemon.stop() == 0


# The document the daemon serves is built in-process here (the live one is checked to be the same), so that
# the operations are known at collection time.
schema = schemathesis.openapi.from_dict(openapi_document()).exclude(path_regex=r"\.mjpg$")


def test_served_document_is_the_one_tested(live_daemon: Daemon) -> None:
    assert live_daemon.get("/openapi.json") == openapi_document()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case: Any, live_daemon: Daemon) -> None:
    if case.query and "follow" in case.query:
        case.query["follow"] = "false"
    try:
        case.call_and_validate(base_url=live_daemon.url,
                               headers={"Authorization": f"Bearer {live_daemon.token}"},
                               timeout=15, excluded_checks=[positive_data_acceptance])
    except FailureGroup as group:
        if not all(_a_rejection_or_made_valid_here(f) for f in group.exceptions):
            raise


def _a_rejection_or_made_valid_here(failure: Exception) -> bool:
    """ST201 ("schema-violating request accepted") where the request was not schema-violating when sent, or
    was rejected after all: this test adds the token and turns ``follow`` off, which makes a case whose only
    violations are a missing Authorization header or a bad ``follow`` a valid request; and a body over the
    daemon's request size limit is refused with 413 before it is read, a rejection schemathesis does not list.
    Its generator makes such cases only now and then, so without this the test passed or failed by chance."""
    if getattr(failure, "code", "") != "ST201":
        return False
    if getattr(failure, "status_code", None) == 413:
        return True
    violations = [line.strip() for line in str(failure).splitlines() if "violates" in line]
    ours = ("(was Authorization)", "/properties/follow ")
    return bool(violations) and all(any(part in v for part in ours) for v in violations)
