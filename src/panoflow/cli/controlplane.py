"""``panoflow control-plane``: serve the Panorama-compatible API, and manage its access keys."""

from __future__ import annotations

import argparse
import json

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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.05 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds between 0.05 and 3600, got {text!r}")
    return value


def _account(text: str) -> str:
    if not (text.isdigit() and len(text) == 12):
        raise argparse.ArgumentTypeError(f"an account id is 12 digits, got {text!r}")
    return text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("control-plane", help="run the self-hosted Panorama-compatible control plane",
                       description="The Panorama API (boto3's `panorama` client) backed by SQLite.")
    cmds = p.add_subparsers(dest="control_plane_command", metavar="ACTION")
    cmds.required = True

    serve = cmds.add_parser("serve", help="serve the API over HTTP")
    serve.add_argument("--db", required=True, metavar="URL", help="database URL, e.g. sqlite:///panoflow-cp.db")
    serve.add_argument("--listen", type=_listen, default=("127.0.0.1", 8443), metavar="HOST:PORT",
                       help="address to listen on (default 127.0.0.1:8443)")
    serve.add_argument("--assets", required=True, metavar="DIR_OR_S3_URL",
                       help="where package assets live: a folder, or s3://BUCKET[/PREFIX] (S3-compatible storage; "
                            "endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL)")
    serve.add_argument("--max-asset-size", type=_size, default=None, metavar="BYTES",
                       help="the largest asset one upload may hold (default 4 GiB; suffixes K, M, G)")
    serve.add_argument("--account-id", type=_account, default="123456789012", metavar="ID",
                       help="the 12-digit account id in ARNs and package owners (default 123456789012)")
    serve.add_argument("--region", default="us-east-1", help="the region in ARNs (default us-east-1)")
    serve.add_argument("--heartbeat", type=_seconds, default=5.0, metavar="SECONDS",
                       help="how often devices sync; 3 missed heartbeats show a device OFFLINE (default 5)")
    serve.set_defaults(handler=serve_command)

    keys = cmds.add_parser("keys", help="manage the access keys clients sign requests with")
    key_cmds = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    key_cmds.required = True
    create = key_cmds.add_parser("create", help="create an access key and print it as JSON (shown once)")
    create.add_argument("--db", required=True, metavar="URL", help="database URL, e.g. sqlite:///panoflow-cp.db")
    create.set_defaults(handler=keys_create_command)


def serve_command(args: argparse.Namespace) -> int:
    import structlog
    from aiohttp import web

    from panoflow.controlplane import ControlPlane, make_app, open_store

    from panoflow.controlplane.assets import DEFAULT_MAX_ASSET_SIZE, open_assets
    from panoflow.core.redact import redact_url

    assets = open_assets(args.assets)
    store = open_store(args.db)
    plane = ControlPlane(store, account_id=args.account_id, region=args.region, assets=assets,
                         max_asset_size=args.max_asset_size or DEFAULT_MAX_ASSET_SIZE, heartbeat_s=args.heartbeat)
    host, port = args.listen
    structlog.get_logger("panoflow.controlplane").info(
        "control_plane_listening", host=host, port=port, db=redact_url(args.db), assets=repr(assets),
        account_id=args.account_id,
        schema_version=store.schema_version())
    try:
        web.run_app(make_app(plane), host=host, port=port, print=None, access_log=None)
    finally:
        store.close()
    return 0


def keys_create_command(args: argparse.Namespace) -> int:
    from panoflow.controlplane import create_access_key, open_store

    store = open_store(args.db)
    try:
        key = create_access_key(store)
    finally:
        store.close()
    print(json.dumps({"AccessKeyId": key.access_key_id, "SecretAccessKey": key.secret_access_key}))
    return 0
