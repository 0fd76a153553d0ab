"""Tags on devices, packages and application instances: TagResource, UntagResource, ListTagsForResource."""

from __future__ import annotations

from typing import Any

from panoflow.controlplane.errors import not_found, validation
from panoflow.controlplane.service.base import Context, operation

__all__: list[str] = []

#: ARN resource type -> table holding that kind of resource
_TABLES = {"device": "devices", "package": "packages", "applicationInstance": "application_instances"}
_MAX_TAGS = 50


def _check(ctx: Context, arn: str) -> None:
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "panorama" or "/" not in parts[5]:
        raise validation(f"Invalid resource ARN {arn[:128]!r}", "ResourceArn")
    kind, _, resource_id = parts[5].partition("/")
    table = _TABLES.get(kind)
    if table is None or parts[3] != ctx.region or parts[4] != ctx.account_id:
        raise not_found("resource", arn)
    row = ctx.tx.get(table, resource_id)
    if row is None or row.doc.get("Arn") != arn:
        raise not_found(kind, arn)


@operation("TagResource")
def tag_resource(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    arn = p["ResourceArn"]
    _check(ctx, arn)
    row = ctx.tx.get("tags", arn)
    tags = {**(row.doc if row else {}), **p["Tags"]}
    if len(tags) > _MAX_TAGS:
        raise validation(f"A resource can have at most {_MAX_TAGS} tags", "Tags")
    if row is None:
        ctx.tx.insert("tags", arn, tags)
    else:
        ctx.tx.update("tags", arn, tags)
    return {}


@operation("UntagResource")
def untag_resource(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    arn = p["ResourceArn"]
    _check(ctx, arn)
    row = ctx.tx.get("tags", arn)
    if row is not None:
        ctx.tx.update("tags", arn, {k: v for k, v in row.doc.items() if k not in set(p["TagKeys"])})
    return {}


@operation("ListTagsForResource")
def list_tags_for_resource(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    arn = p["ResourceArn"]
    _check(ctx, arn)
    row = ctx.tx.get("tags", arn)
    return {"Tags": dict(row.doc) if row else {}}
