"""Credential sources and the cache: a profile in a credentials file, a role assumed on a real moto STS, clear
errors (no profile, unreachable STS, botocore missing: names the extra), refresh before expiry and a failed
refresh that keeps serving still-valid credentials, a gateway that cannot get credentials at start (fails with
the reason, or serves an error until it can). ``repr`` never shows a secret."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from panoflow.aws import AwsError, AwsGateway, AwsSettings, CredentialCache, credential_source
from panoflow.aws.credentials import AssumeRoleSource, AwsCredentials, BotocoreSource, LocalSource
from tests.aws.runner import running

ROLE = "arn:aws:iam::123456789012:role/app"


@pytest.fixture
def creds_file(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    path.write_text("[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = default-secret\n"
                    "[edge]\naws_access_key_id = AKIAEDGE\naws_secret_access_key = edge-secret\n")
    return path


def test_profile_in_a_file(creds_file: Path) -> None:
    creds = BotocoreSource("edge", creds_file).fetch()
    assert creds.access_key_id == "AKIAEDGE" and creds.secret_access_key == "edge-secret"
    assert "edge-secret" not in repr(creds)
    assert creds.container_document()["Expiration"].endswith("Z")
    with pytest.raises(AwsError, match="no AWS credentials in profile nowhere"):
        BotocoreSource("nowhere", creds_file).fetch()


def test_role_assumed_on_moto(creds_file: Path, moto_url: str) -> None:
    source = credential_source(AwsSettings(credentials_file=creds_file, role_arn=ROLE,
                                           endpoints={"sts": moto_url}))
    assert isinstance(source, AssumeRoleSource)
    first, second = source.fetch(), source.fetch()
    assert first.access_key_id.startswith("ASIA") and first.session_token
    assert first.access_key_id != second.access_key_id
    assert first.expiration > dt.datetime.now(dt.timezone.utc)


def test_unreachable_sts_is_a_clear_error(creds_file: Path) -> None:
    source = AssumeRoleSource(ROLE, BotocoreSource(None, creds_file), region="us-east-1",
                              sts_endpoint="http://127.0.0.1:9")
    with pytest.raises(AwsError, match=f"cannot assume {ROLE}: EndpointConnectionError") as raised:
        source.fetch()
    assert "default-secret" not in str(raised.value)


def test_missing_botocore_names_the_extra(creds_file: Path) -> None:
    code = ("import sys; sys.modules['botocore'] = None\n"
            "from panoflow.aws import AwsSettings, credential_source, AwsError\n"
            f"try:\n    credential_source(AwsSettings(credentials_file={str(creds_file)!r}))\n"
            "except AwsError as exc:\n    print(exc)\n"
            "print(type(credential_source(AwsSettings())).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert "pip install 'panoflow[aws]'" in out
    assert out.strip().endswith("LocalSource")  # offline devices run without botocore


class _Clocked:
    """A source for the cache logic alone (no network): hands out numbered credentials, or fails when told."""

    description = "numbered test credentials"

    def __init__(self, clock: list[dt.datetime], lifetime: float):
        self.clock, self.lifetime, self.count, self.fail = clock, lifetime, 0, False

    def fetch(self) -> AwsCredentials:
        if self.fail:
            raise AwsError("the source is down")
        self.count += 1
        return AwsCredentials(f"AKID{self.count}", "s", "t",
                              self.clock[0] + dt.timedelta(seconds=self.lifetime))


def test_cache_refreshes_at_half_life_and_rides_out_a_failed_refresh() -> None:
    clock = [dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)]
    source = _Clocked(clock, 3600)
    cache = CredentialCache(source, clock=lambda: clock[0])
    assert cache.get()[0].access_key_id == "AKID1"
    clock[0] += dt.timedelta(minutes=29)
    assert cache.get()[0].access_key_id == "AKID1"
    clock[0] += dt.timedelta(minutes=2)
    assert cache.get()[0].access_key_id == "AKID2"
    source.fail = True
    clock[0] += dt.timedelta(minutes=40)  # stale, but AKID2 holds for 20 more minutes
    assert cache.get()[0].access_key_id == "AKID2"
    clock[0] += dt.timedelta(minutes=30)
    with pytest.raises(AwsError, match="the source is down"):
        cache.get()


def test_max_lifetime_caps_the_served_expiry() -> None:
    clock = [dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)]
    cache = CredentialCache(_Clocked(clock, 3600), max_lifetime=902, clock=lambda: clock[0])
    _, expires = cache.get()
    assert expires == clock[0] + dt.timedelta(seconds=902)


def test_local_credentials_are_random_per_instance() -> None:
    a, b = LocalSource().fetch(), LocalSource().fetch()
    assert a.access_key_id != b.access_key_id and a.secret_access_key != b.secret_access_key


def test_gateway_start_fails_with_the_reason_or_waits_for_credentials(tmp_path: Path,
                                                                      creds_file: Path) -> None:
    settings = AwsSettings(credentials_file=creds_file, role_arn=ROLE, endpoints={"sts": "http://127.0.0.1:9"})
    with pytest.raises(AwsError, match=f"cannot assume {ROLE}"):
        asyncio.run(AwsGateway(settings, instance_id="x", state_dir=tmp_path, tls=False).start())
    with running(AwsGateway(settings, instance_id="x", state_dir=tmp_path, tls=False,
                            require_credentials=False)) as gw:
        request = urllib.request.Request(gw.credentials_url, headers={"Authorization": gw.token})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=30)
        assert answer.value.code == 500 and b"CredentialsUnavailable" in answer.value.read()
        answer.value.close()
