"""SandboxSpec validation, the generated /etc files and the command line (no process started here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from panoflow.isolation import Limits, Mount, SandboxSpec
from panoflow.isolation.layout import DNS_FORWARD_ADDRESS, Tools, command, etc_files, hidden_etc_entries


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"argv": []}, "argv must be a non-empty list"),
        ({"cwd": "relative"}, "cwd 'relative' must be an absolute path"),
        ({"cwd": "/a/../b"}, "must be a normalised path"),
        ({"network": "host"}, "network 'host' is not one of nat, none"),
        ({"inbound": [(80, 0)]}, "hostPort 0 must be a TCP port"),
        ({"inbound": [(80, 8080), (81, 8080)]}, "two inbound rules use the same hostPort"),
        ({"network": "none", "inbound": [(80, 8080)]}, "inbound ports need network 'nat'"),
        ({"network": "none", "loopback_ports": [9000]}, "loopback_ports need network 'nat'"),
        ({"uid": 0}, "uid 0 must be a positive host id"),
        ({"env": {"A=B": "x"}}, "environment variable 'A=B'"),
        ({"hosts": {"bad name": "1.2.3.4"}}, "not a valid host name"),
        ({"hosts": {"ok": "not-an-address"}}, "is not an IPv4 or IPv6 address"),
        ({"pass_fds": [1]}, "pass_fds must be file descriptor numbers above 2"),
        ({"name": "../escape"}, "sandbox name '../escape'"),
        ({"hostname": "a_b"}, "hostname 'a_b'"),
        ({"mounts": [Mount(Path("/a"), "/x"), Mount(Path("/b"), "/x")]}, "two mounts share the target '/x'"),
    ],
)
def test_bad_specs_say_what_and_how(fields: dict[str, Any], message: str) -> None:
    fields.setdefault("argv", ["/usr/bin/true"])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SandboxSpec(**fields)


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("relative", "/x", "must be an absolute host path"),
        ("/a", "/", "mount target '/' is not allowed"),
        ("/a", "/etc/app", "inside /etc, which the sandbox provides itself"),
        ("/a", "/proc", "inside /proc"),
        ("/a", "x", "must be an absolute path inside the sandbox"),
    ],
)
def test_bad_mounts(source: str, target: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Mount(Path(source), target)


def test_bad_limits() -> None:
    with pytest.raises(ValueError, match="at least 1 MiB"):
        Limits(memory_bytes=1000)
    with pytest.raises(ValueError, match="number of cores"):
        Limits(cpus=0)
    assert not Limits().any and Limits(cpus=0.5).any


@given(st.text(max_size=80))
def test_any_name_is_accepted_or_refused_clearly(name: str) -> None:
    try:
        spec = SandboxSpec(argv=["/usr/bin/true"], name=name)
    except ValueError as exc:
        assert "sandbox name" in str(exc)
    else:
        assert spec.name == name and "/" not in name and name not in (".", "..")


def _fake_etc(root: Path, resolv: str) -> Path:
    etc = root / "etc"
    etc.mkdir()
    (etc / "hosts").write_text("127.0.0.1 localhost\n")
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "resolv.conf").write_text(resolv)
    for name in ("shadow", "gshadow", "sudoers", "os-release"):
        (etc / name).write_text(name)
    (etc / "sudoers.d").mkdir()
    (etc / "private.conf").write_text("x")
    (etc / "private.conf").chmod(0o600)
    return etc


def test_etc_files_with_a_loopback_resolver(tmp_path: Path) -> None:
    etc = _fake_etc(tmp_path, "nameserver 127.0.0.53\noptions edns0\nsearch lan\n")
    spec = SandboxSpec(argv=["/usr/bin/true"], hosts={"camera.lan": "10.0.0.9"}, hostname="edge")
    files = etc_files(spec, 64000, 64000, etc=etc, dns_forward=True)
    assert files["resolv.conf"].decode() == f"nameserver {DNS_FORWARD_ADDRESS}\noptions edns0\nsearch lan\n"
    assert files["hosts"].decode() == "127.0.0.1 localhost\n127.0.1.1\tedge\n10.0.0.9\tcamera.lan\n"
    assert files["hostname"] == b"edge\n"
    assert (
        files["passwd"]
        .decode()
        .endswith("panorama:x:64000:64000:Panorama application:/tmp:/usr/sbin/nologin\n")
    )
    assert files["group"].decode().endswith("panorama:x:64000:\n")


def test_hidden_etc_entries(tmp_path: Path) -> None:
    etc = _fake_etc(tmp_path, "nameserver 10.0.0.1\n")
    hidden = hidden_etc_entries(etc, 64000, 64000)
    assert hidden == ["gshadow", "private.conf", "shadow", "sudoers", "sudoers.d"]


def test_command_line_policy(tmp_path: Path) -> None:
    spec = SandboxSpec(
        argv=["/usr/bin/python3", "-m", "app"],
        mounts=[
            Mount(Path("/srv/code"), "/panorama"),
            Mount(Path("/srv/logs"), "/opt/aws/panorama/logs", True),
        ],
        inbound=[(80, 8080), (9000, 9000)],
        loopback_ports=[7000],
        env={"SECRET": "never-on-a-command-line"},
    )
    tools = Tools("/usr/bin/bwrap", "/usr/bin/pasta", disable_userns=True)
    argv = command(spec, tools, uid=64000, gid=64000, data_fds={"hosts": 5})
    line = " ".join(argv)
    assert argv[0] == "/usr/bin/pasta" and "never-on-a-command-line" not in line
    assert "-t 8080:80,9000:9000" in line and "-T 7000,8080 " in line  # 9000 is the app's own port inside
    assert "--no-map-gw" in argv
    bwrap = argv[argv.index("/usr/bin/bwrap") :]
    for flag in ("--unshare-user", "--unshare-pid", "--disable-userns", "--new-session", "--die-with-parent"):
        assert flag in bwrap
    assert bwrap[bwrap.index("--cap-drop") + 1] == "ALL" and bwrap[bwrap.index("--uid") + 1] == "64000"
    assert "--ro-bind /srv/code /panorama" in line and "--bind /srv/logs /opt/aws/panorama/logs" in line
    assert "--ro-bind-data 5 /etc/hosts" in line and "/etc/shadow" not in line
    assert bwrap[-4:] == ["--", "/usr/bin/python3", "-m", "app"]
    none = command(SandboxSpec(argv=["/x"], network="none"), tools, uid=1, gid=1, data_fds={})
    assert none[0] == "/usr/bin/bwrap" and "--unshare-net" in none
    assert os.path.basename(tools.pasta or "") == "pasta"
