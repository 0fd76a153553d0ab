"""``panoflow control-plane``: serve the Panorama-compatible API (HTTPS by default), print its CA, and manage
its access keys."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["register"]


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _size(text: str) -> int:
    units = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    number, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
    if not number.isdigit() or int(number) == 0:
        raise argparse.ArgumentTypeError(f"expected a size in bytes such as 4G or 500M, got {text!r}")
    return int(number) * unit


def _between(low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse type: a number from ``low`` to ``high`` (``what`` names it in the refusal)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = 0.0
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what} between {low:g} and {high:g}, got {text!r}")
        return value
    return parse


_seconds = _between(0.05, 3600, "seconds")
_fps = _between(0.1, 5, "frames per second")


def _account(text: str) -> str:
    if not (text.isdigit() and len(text) == 12):
        raise argparse.ArgumentTypeError(f"an account id is 12 digits, got {text!r}")
    return text


_DB_HELP = ("database URL, e.g. sqlite:///panoflow-cp.db or postgresql://USER@HOST/DB (never put a password "
            "here: it would be on the command line; use PGPASSWORD or --db-password-file)")


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, metavar="URL", help=_DB_HELP)
    parser.add_argument("--db-password-file", type=Path, metavar="FILE",
                        help="read the PostgreSQL password from FILE (first line); PGPASSWORD works too")


def _db_url(args: argparse.Namespace) -> str:
    """``--db`` with the password of ``--db-password-file`` put in (in memory only, never on argv)."""
    url: str = args.db
    if getattr(args, "db_password_file", None) is None:
        return url
    from panoflow.exceptions import PanoflowError

    if not url.startswith(("postgres://", "postgresql://")):
        raise PanoflowError("--db-password-file is for a postgresql:// --db")
    try:
        password = args.db_password_file.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, IndexError, UnicodeDecodeError) as exc:
        raise PanoflowError(
            f"--db-password-file {args.db_password_file}: cannot read a password ({exc})"
        ) from None
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[Any]:
    """The store of ``--db`` (closed afterwards)."""
    from panoflow.controlplane import open_store

    store = open_store(_db_url(args))
    try:
        yield store
    finally:
        store.close()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("control-plane", help="run the self-hosted Panorama-compatible control plane",
                       description="The Panorama API (boto3's `panorama` client) backed by SQLite.")
    cmds = p.add_subparsers(dest="control_plane_command", metavar="ACTION")
    cmds.required = True

    serve = cmds.add_parser("serve", help="serve the API over HTTPS (docs/security.md)")
    _add_db(serve)
    serve.add_argument("--listen", type=_listen, default=("127.0.0.1", 8443), metavar="HOST:PORT",
                       help="address to listen on (default 127.0.0.1:8443)")
    serve.add_argument("--assets", required=True, metavar="DIR_OR_S3_URL",
                       help="where package assets live: a folder, or s3://BUCKET[/PREFIX] (S3-compatible "
                            "storage; endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)")
    serve.add_argument("--max-asset-size", type=_size, default=None, metavar="BYTES",
                       help="the largest asset one upload may hold (default 4 GiB; suffixes K, M, G)")
    serve.add_argument("--account-id", type=_account, default="123456789012", metavar="ID",
                       help="the 12-digit account id in ARNs and package owners (default 123456789012)")
    serve.add_argument("--region", default="us-east-1", help="the region in ARNs (default us-east-1)")
    serve.add_argument("--heartbeat", type=_seconds, default=5.0, metavar="SECONDS",
                       help="how often devices sync; 3 missed heartbeats show a device OFFLINE (default 5)")
    serve.add_argument("--preview-fps", type=_fps, default=None, metavar="FPS",
                       help="frames per second a device sends of a live preview watched on the console "
                            "(default 3; at most 5)")
    serve.add_argument("--device-rate", type=float, default=None, metavar="CALLS_PER_S",
                       help="device API calls one device may make per second on average (default 10; 429 "
                            "beyond)")
    serve.add_argument("--device-log-quota", type=_size, default=None, metavar="BYTES",
                       help="log bytes one device may upload per UTC day (default 256M; 429 beyond)")
    serve.add_argument("--device-token-ttl", type=float, default=None, metavar="SECONDS",
                       help="how long a device token lives unless the device renews it (default 604800: 7 "
                            "days)")
    serve.add_argument("--tls-cert", type=Path, metavar="PEM",
                       help="serve this certificate (chain) instead of one signed by the control plane's own "
                            "CA")
    serve.add_argument("--tls-key", type=Path, metavar="PEM", help="the private key of --tls-cert")
    serve.add_argument("--tls-ca", type=Path, metavar="PEM",
                       help="with --tls-cert: the CA devices pin (put in provisioning bundles; default: "
                            "--tls-cert)")
    serve.add_argument("--tls-san", action="append", default=[], metavar="NAME",
                       help="a DNS name or IP address devices and clients reach this server by (repeatable); "
                            "localhost and 127.0.0.1 are always included")
    serve.add_argument("--insecure-http", action="store_true",
                       help="serve plain HTTP (development only: tokens, camera passwords and assets cross "
                            "the network in clear, and devices must be started with --insecure-http too)")
    serve.set_defaults(handler=serve_command)

    devices = cmds.add_parser("devices", help="device credentials")
    device_cmds = devices.add_subparsers(dest="devices_command", metavar="ACTION")
    device_cmds.required = True
    revoke = device_cmds.add_parser("revoke-tokens", help="revoke every token of a device: it gets 403 at "
                                                          "its next call and stops syncing (provision it "
                                                          "again to readmit it)")
    _add_db(revoke)
    revoke.add_argument("device_id", metavar="DEVICE_ID")
    revoke.set_defaults(handler=devices_revoke_command)

    ca = cmds.add_parser("ca", help="print the CA certificate (PEM) that clients verify the server with",
                         description="Print the control plane's CA certificate, created on first use, e.g. "
                                     "`panoflow control-plane ca --db URL > ca.pem`, then "
                                     "`aws --ca-bundle ca.pem` or AWS_CA_BUNDLE=ca.pem for boto3.")
    _add_db(ca)
    ca.set_defaults(handler=ca_command)

    keys = cmds.add_parser("keys", help="manage the access keys clients sign requests with")
    key_cmds = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    key_cmds.required = True
    create = key_cmds.add_parser("create", help="create an access key and print it as JSON (shown once)")
    _add_db(create)
    create.add_argument(
        "--read-only",
        action="store_true",
        help="the key may only read (List*, Describe*, Get*, asset downloads): for dashboards",
    )
    create.set_defaults(handler=keys_create_command)
    listing = key_cmds.add_parser("list", help="list the access keys as JSON lines (never their secrets)")
    _add_db(listing)
    listing.set_defaults(handler=keys_list_command)
    for name, text in (("deactivate", "refuse a key from now on (it is kept; `activate` undoes it)"),
                       ("activate", "accept a deactivated key again"), ("delete", "delete a key for good")):
        action = key_cmds.add_parser(name, help=text)
        _add_db(action)
        action.add_argument("access_key_id", metavar="ACCESS_KEY_ID")
        action.set_defaults(handler=keys_change_command, keys_action=name)
    rotate = key_cmds.add_parser("rotate", help="create a new key with the same policy, print it as JSON, "
                                                "and deactivate the old one")
    _add_db(rotate)
    rotate.add_argument("access_key_id", metavar="ACCESS_KEY_ID")
    rotate.add_argument("--keep-old", action="store_true",
                        help="leave the old key active (a grace period: deactivate it once clients switched)")
    rotate.set_defaults(handler=keys_rotate_command)


def serve_command(args: argparse.Namespace) -> int:
    import structlog
    from aiohttp import web

    from panoflow.controlplane import ControlPlane, make_app, open_store
    from panoflow.controlplane.assets import DEFAULT_MAX_ASSET_SIZE, open_assets
    from panoflow.core.redact import redact_url
    from panoflow.exceptions import PanoflowError

    if (args.tls_cert is None) != (args.tls_key is None):
        raise PanoflowError("--tls-cert and --tls-key go together")
    if args.insecure_http and args.tls_cert is not None:
        raise PanoflowError("--insecure-http serves plain HTTP: leave out --tls-cert/--tls-key")
    assets = open_assets(args.assets)
    store = open_store(_db_url(args))
    host, port = args.listen
    ssl_context = None
    ca_pem: str | None = None
    try:
        if args.tls_cert is not None:
            from panoflow.controlplane.tls import server_context_from_files

            ssl_context, ca_pem = server_context_from_files(args.tls_cert, args.tls_key, args.tls_ca)
        elif not args.insecure_http:
            from panoflow.controlplane.tls import server_context

            ssl_context, ca_pem = server_context(store, [*args.tls_san, host])
    except BaseException:
        store.close()
        raise
    from panoflow.controlplane.limits import (
        DEFAULT_DEVICE_LOG_BYTES_PER_DAY,
        DEFAULT_DEVICE_RATE,
        DeviceLimits,
    )

    limits = DeviceLimits(rate=args.device_rate or DEFAULT_DEVICE_RATE,
                          log_bytes_per_day=args.device_log_quota or DEFAULT_DEVICE_LOG_BYTES_PER_DAY)
    plane = ControlPlane(store, account_id=args.account_id, region=args.region, assets=assets,
                         max_asset_size=args.max_asset_size or DEFAULT_MAX_ASSET_SIZE,
                         heartbeat_s=args.heartbeat,
                         ca_pem=ca_pem, limits=limits, token_ttl_s=args.device_token_ttl)
    log = structlog.get_logger("panoflow.controlplane")
    log.info("control_plane_listening", host=host, port=port,
             scheme="http" if ssl_context is None else "https",
             db=redact_url(args.db), assets=repr(assets), account_id=args.account_id,
             schema_version=store.schema_version())
    if ssl_context is None:
        log.warning("control_plane_insecure_http", what="plain HTTP: device tokens, camera passwords and "
                    "assets cross the network in clear; for development only")
    try:
        # the web console's sign-in lifetime (docs/console.md)
        ttl = os.environ.get("PANOFLOW_CONSOLE_SESSION_TTL_S")
        try:
            console_ttl = float(ttl) if ttl else None
            if console_ttl is not None and not console_ttl > 0:
                raise ValueError(ttl)
        except ValueError:
            raise PanoflowError(f"PANOFLOW_CONSOLE_SESSION_TTL_S={(ttl or '')[:20]!r}: expected a positive "
                                "number of seconds") from None
        from panoflow.console.plane import mount_plane_console
        from panoflow.controlplane.previews import relay_for

        app = make_app(plane, routes=lambda app: mount_plane_console(app, plane, session_ttl_s=console_ttl))
        if args.preview_fps:  # the console's relayed live previews (docs/console.md)
            relay_for(app).fps = args.preview_fps
        web.run_app(app, host=host, port=port, print=None, access_log=None, ssl_context=ssl_context)
    finally:
        store.close()
    return 0


def keys_create_command(args: argparse.Namespace) -> int:
    from panoflow.controlplane import create_access_key

    with _opened(args) as store:
        key = create_access_key(store, read_only=args.read_only)
    print(json.dumps({"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret_access_key}))
    return 0


def keys_list_command(args: argparse.Namespace) -> int:
    from panoflow.controlplane.keys import list_keys

    with _opened(args) as store:
        for key in list_keys(store):
            print(json.dumps(key.to_json()))
    return 0


def keys_change_command(args: argparse.Namespace) -> int:
    from panoflow.controlplane.keys import delete_key, set_status

    with _opened(args) as store:
        if args.keys_action == "delete":
            delete_key(store, args.access_key_id)
        else:
            set_status(store, args.access_key_id, active=args.keys_action == "activate")
    return 0


def keys_rotate_command(args: argparse.Namespace) -> int:
    from panoflow.controlplane.keys import rotate_key

    with _opened(args) as store:
        key = rotate_key(store, args.access_key_id, keep_old=args.keep_old)
    print(json.dumps({"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret_access_key,
                      "Replaces": args.access_key_id}))
    return 0


def devices_revoke_command(args: argparse.Namespace) -> int:
    from panoflow.controlplane.service.tokens import revoke_all
    from panoflow.exceptions import PanoflowError

    with _opened(args) as store, store.transaction() as tx:
        if tx.get("devices", args.device_id) is None:
            raise PanoflowError(f"no device {args.device_id!r}; `aws panorama list-devices` shows them")
        count = revoke_all(tx, args.device_id)
    print(json.dumps({"DeviceId": args.device_id, "RevokedTokens": count}))
    return 0


def ca_command(args: argparse.Namespace) -> int:
    from panoflow.controlplane.tls import ensure_ca

    with _opened(args) as store:
        ca = ensure_ca(store)
    print(ca.cert_pem, end="")
    return 0
