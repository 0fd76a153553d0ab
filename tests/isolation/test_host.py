"""host_problems: what the host lacks, each with its fix, and start() refusing with the same text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from panoflow.exceptions import SandboxError
from panoflow.isolation import DEFAULT_SANDBOX_UID, Mount, SandboxSpec, host_problems, start
from tests.isolation.probes import interpreter, require, require_root


def test_missing_helpers_name_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no bwrap, no pasta
    spec = SandboxSpec(argv=["/usr/bin/true"])
    problems = host_problems(spec)
    assert "bubblewrap (bwrap) is not installed: apt-get install bubblewrap passt" in problems
    assert any(
        p.startswith("pasta is not installed") and "apt-get install bubblewrap passt" in p for p in problems
    )
    with pytest.raises(
        SandboxError, match="(?s)cannot start sandbox 'app' on this host:.*apt-get install bubblewrap"
    ):
        start(spec)


def test_pasta_is_only_needed_for_nat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bwrap = "/usr/bin/bwrap"
    if not os.access(bwrap, os.X_OK):
        pytest.skip("bubblewrap is not installed at /usr/bin/bwrap")
    (tmp_path / "bwrap").symlink_to(bwrap)
    monkeypatch.setenv("PATH", str(tmp_path))
    problems = host_problems(SandboxSpec(argv=["/usr/bin/true"], network="none"))
    assert not any("pasta" in p for p in problems), problems


def test_mount_source_behind_a_closed_directory_names_it(scratch: Path) -> None:
    require_root()
    blocked = scratch / "private"
    inner = blocked / "venv"
    inner.mkdir(parents=True)
    blocked.chmod(0o700)  # like /root on Debian: the sandbox's uid cannot pass through
    python, mounts = interpreter()
    spec = SandboxSpec(argv=[python, "-c", "pass"], mounts=[*mounts, Mount(inner, "/opt/venv")])
    problems = host_problems(spec)
    expected = (
        f"mount source {inner} (for /opt/venv) cannot be reached by the sandbox's uid {DEFAULT_SANDBOX_UID}"
    )
    assert any(
        p.startswith(expected) and f"{blocked} does not let it through (chmod o+x {blocked}" in p
        for p in problems
    )
    require(SandboxSpec(argv=[python, "-c", "pass"], mounts=mounts))
    with pytest.raises(SandboxError, match=f"chmod o\\+x {blocked}"):
        start(spec)


def test_unreadable_file_and_unwritable_mount(scratch: Path) -> None:
    require_root()
    secret = scratch / "secret.txt"
    secret.write_text("x")
    secret.chmod(0o600)
    storage = scratch / "storage"
    storage.mkdir()  # root's, 0755: readable by the sandbox, not writable
    spec = SandboxSpec(
        argv=["/usr/bin/true"],
        mounts=[Mount(secret, "/opt/secret.txt"), Mount(storage, "/opt/aws/panorama/storage", writable=True)],
    )
    problems = host_problems(spec)
    assert (
        f"mount source {secret} (for /opt/secret.txt) is not readable by the sandbox's uid 64000: chmod o+r "
        f"{secret}"
        in problems
    )
    assert (
        f"mount source {storage} (for /opt/aws/panorama/storage) is not writable by the sandbox's uid 64000: "
        f"chown 64000:64000 {storage}"
    ) in problems


def test_missing_mount_source(scratch: Path) -> None:
    spec = SandboxSpec(argv=["/usr/bin/true"], mounts=[Mount(scratch / "nope", "/panorama")])
    assert f"mount source {scratch / 'nope'} (for /panorama) does not exist: create it" in host_problems(spec)


def test_a_good_spec_has_no_problems(scratch: Path) -> None:
    python, mounts = interpreter()
    spec = SandboxSpec(argv=[python, "-c", "pass"], mounts=[*mounts, Mount(scratch, "/panorama")])
    require(spec)
    assert host_problems(spec) == []
