"""Packages, their versions and nodes: CreatePackage, DescribePackage, ListPackages, DeletePackage,
RegisterPackageVersion, DeregisterPackageVersion, DescribePackageVersion, ListNodes, DescribeNode."""

from __future__ import annotations

from typing import Any

from panoflow.controlplane.errors import conflict, not_found
from panoflow.controlplane.service import Context, new_id, now, operation, paginate, ts
from panoflow.controlplane.store import Row

__all__ = ["ensure_package", "get_package", "latest_patch", "register_version"]

#: the bucket name StorageLocation reports; assets live under --assets DIR with the same layout (S3 is part 2)
BUCKET = "panoflow-assets"


def get_package(ctx: Context, package_id: str) -> Row:
    """The package row, or ResourceNotFoundException."""
    row = ctx.tx.get("packages", package_id)
    if row is None:
        raise not_found("package", package_id)
    return row


def _storage(ctx: Context, package_id: str) -> dict[str, str]:
    prefix = f"{ctx.account_id}/nodePackages/{package_id}"
    return {"Bucket": BUCKET, "RepoPrefixLocation": prefix, "GeneratedPrefixLocation": f"{prefix}/generated",
            "BinaryPrefixLocation": f"{prefix}/binaries", "ManifestPrefixLocation": f"{prefix}/manifests"}


def ensure_package(ctx: Context, name: str, tags: dict[str, str] | None = None) -> Row:
    """The account's package called ``name``, created if missing (CreatePackage is idempotent by name)."""
    existing = ctx.tx.select("packages", {"owner": ctx.account_id, "name": name})
    if existing:
        return existing[0]
    package_id = new_id("packageId-")
    arn = ctx.arn("package", package_id)
    doc = {"Arn": arn, "CreatedTime": now().isoformat(), "StorageLocation": _storage(ctx, package_id)}
    row = ctx.tx.insert("packages", package_id, doc, owner=ctx.account_id, name=name)
    if tags:
        ctx.tx.insert("tags", arn, tags)
    return row


def _tags(ctx: Context, arn: str) -> dict[str, str]:
    row = ctx.tx.get("tags", arn)
    return dict(row.doc) if row else {}


@operation("CreatePackage")
def create_package(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = ensure_package(ctx, p["PackageName"], p.get("Tags"))
    return {"Arn": row.doc["Arn"], "PackageId": row.id, "StorageLocation": row.doc["StorageLocation"]}


@operation("DescribePackage")
def describe_package(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = get_package(ctx, p["PackageId"])
    return {"Arn": row.doc["Arn"], "PackageId": row.id, "PackageName": row.columns["name"],
            "CreatedTime": ts(row.doc["CreatedTime"]), "StorageLocation": row.doc["StorageLocation"],
            "ReadAccessPrincipalArns": [], "WriteAccessPrincipalArns": [], "Tags": _tags(ctx, row.doc["Arn"])}


@operation("ListPackages")
def list_packages(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    page, token = paginate(ctx.tx.select("packages"), p, "packages")
    return {"Packages": [{"Arn": r.doc["Arn"], "PackageId": r.id, "PackageName": r.columns["name"],
                          "CreatedTime": ts(r.doc["CreatedTime"]), "Tags": _tags(ctx, r.doc["Arn"])}
                         for r in page], "NextToken": token}


@operation("DeletePackage")
def delete_package(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = get_package(ctx, p["PackageId"])
    versions = ctx.tx.select("package_versions", {"package_id": row.id})
    if versions and not p.get("ForceDelete"):
        raise conflict(f"Package {row.id} has {len(versions)} registered version(s); deregister them or set "
                       "ForceDelete", "package", row.id)
    for table in ("package_versions", "nodes"):
        ctx.tx.delete(table, package_id=row.id)
    ctx.tx.delete("packages", id=row.id)
    ctx.tx.delete("tags", id=row.doc["Arn"])
    return {}


def latest_patch(ctx: Context, package_id: str, version: str) -> Row | None:
    """The version row marked latest (else the newest registered patch), or None."""
    rows = ctx.tx.select("package_versions", {"package_id": package_id, "version": version})
    latest = [r for r in rows if r.columns["is_latest"]]
    return (latest or rows[-1:] or [None])[0]


def register_version(ctx: Context, package: Row, version: str, patch: str, mark_latest: bool) -> Row:
    """Register (or re-register) ``version``/``patch`` of ``package``."""
    vid = f"{package.id}/{version}/{patch}"
    if mark_latest:
        for other in ctx.tx.select("package_versions", {"package_id": package.id, "version": version}):
            ctx.tx.update("package_versions", other.id, is_latest=0)
    doc = {"RegisteredTime": now().isoformat(), "Status": "REGISTER_COMPLETED"}
    existing = ctx.tx.get("package_versions", vid)
    if existing is not None:
        ctx.tx.update("package_versions", vid, doc, is_latest=int(mark_latest or existing.columns["is_latest"]))
        return existing
    return ctx.tx.insert("package_versions", vid, doc, package_id=package.id, version=version, patch=patch,
                         is_latest=int(mark_latest))


@operation("RegisterPackageVersion")
def register_package_version(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    package = get_package(ctx, p["PackageId"])
    register_version(ctx, package, p["PackageVersion"], p["PatchVersion"], bool(p.get("MarkLatest")))
    return {}


def _version(ctx: Context, p: dict[str, Any]) -> tuple[Row, Row]:
    package = get_package(ctx, p["PackageId"])
    if p.get("PatchVersion"):
        row = ctx.tx.get("package_versions", f"{package.id}/{p['PackageVersion']}/{p['PatchVersion']}")
    else:
        row = latest_patch(ctx, package.id, p["PackageVersion"])
    if row is None:
        raise not_found("packageVersion", f"{package.id}/{p['PackageVersion']}/{p.get('PatchVersion', '')}")
    return package, row


@operation("DescribePackageVersion")
def describe_package_version(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    package, row = _version(ctx, p)
    return {"IsLatestPatch": bool(row.columns["is_latest"]), "OwnerAccount": package.columns["owner"],
            "PackageArn": package.doc["Arn"], "PackageId": package.id, "PackageName": package.columns["name"],
            "PackageVersion": row.columns["version"], "PatchVersion": row.columns["patch"],
            "RegisteredTime": ts(row.doc["RegisteredTime"]), "Status": row.doc["Status"]}


@operation("DeregisterPackageVersion")
def deregister_package_version(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    package, row = _version(ctx, p)
    ctx.tx.delete("package_versions", id=row.id)
    ctx.tx.delete("nodes", package_id=package.id, package_version=row.columns["version"],
                  patch_version=row.columns["patch"])
    if p.get("UpdatedLatestPatchVersion"):
        successor = ctx.tx.get("package_versions",
                               f"{package.id}/{row.columns['version']}/{p['UpdatedLatestPatchVersion']}")
        if successor is None:
            raise not_found("packageVersion", f"{package.id}/{row.columns['version']}/"
                                              f"{p['UpdatedLatestPatchVersion']}")
        ctx.tx.update("package_versions", successor.id, is_latest=1)
    return {}


def _node(r: Row, full: bool) -> dict[str, Any]:
    out = {"NodeId": r.id, "Name": r.doc["Name"], "Category": r.columns["category"],
           "OwnerAccount": r.columns["owner"], "PackageName": r.columns["package_name"],
           "PackageId": r.columns["package_id"], "PackageArn": r.doc["PackageArn"],
           "PackageVersion": r.columns["package_version"], "PatchVersion": r.columns["patch_version"],
           "Description": r.doc.get("Description"), "CreatedTime": ts(r.doc["CreatedTime"])}
    if full:
        out.update({"NodeInterface": r.doc["NodeInterface"], "AssetName": r.doc.get("AssetName"),
                    "LastUpdatedTime": ts(r.doc["CreatedTime"])})
    return out


@operation("ListNodes")
def list_nodes(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    where = {col: p[key] for key, col in (("Category", "category"), ("OwnerAccount", "owner"),
                                          ("PackageName", "package_name"), ("PackageVersion", "package_version"),
                                          ("PatchVersion", "patch_version")) if p.get(key) is not None}
    page, token = paginate(ctx.tx.select("nodes", where), p, "nodes")
    return {"Nodes": [_node(r, full=False) for r in page], "NextToken": token}


@operation("DescribeNode")
def describe_node(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = ctx.tx.get("nodes", p["NodeId"])
    if row is None:
        raise not_found("node", p["NodeId"])
    return _node(row, full=True)
