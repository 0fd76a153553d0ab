"""Packages, their versions and nodes: CreatePackage, DescribePackage, ListPackages, DeletePackage,
RegisterPackageVersion, DeregisterPackageVersion, DescribePackageVersion, ListNodes, DescribeNode."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from panoflow.compiler.registration import compile_package_models
from panoflow.controlplane.assets import AssetKeyError, AssetNotFound, check_key
from panoflow.controlplane.errors import conflict, manifest_error, not_found, validation
from panoflow.controlplane.service.base import Context, new_id, now, operation, paginate, ts
from panoflow.controlplane.store import Row
from panoflow.core.manifest import PackageConfig, check_package, parse_package
from panoflow.exceptions import Problem

__all__ = ["ensure_package", "get_package", "latest_patch", "register_version"]

#: the largest package.json RegisterPackageVersion reads (manifests are a few kB)
MAX_MANIFEST = 1024 * 1024
_SHA_NAME = re.compile(r"^([0-9a-f]{64})\.")
_CATEGORIES = {"business_logic": "BUSINESS_LOGIC", "ml_model": "ML_MODEL", "media_source": "MEDIA_SOURCE",
               "media_sink": "MEDIA_SINK"}


def get_package(ctx: Context, package_id: str) -> Row:
    """The package row, or ResourceNotFoundException."""
    row = ctx.tx.get("packages", package_id)
    if row is None:
        raise not_found("package", package_id)
    return row


def _storage(ctx: Context, package_id: str) -> dict[str, str]:
    prefix = f"{ctx.account_id}/nodePackages/{package_id}"
    return {"Bucket": ctx.assets.bucket, "RepoPrefixLocation": prefix,
            "GeneratedPrefixLocation": f"{prefix}/generated", "BinaryPrefixLocation": f"{prefix}/binaries",
            "ManifestPrefixLocation": f"{prefix}/manifests"}


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
    if latest:
        return latest[0]
    return rows[-1] if rows else None


def register_version(ctx: Context, package: Row, version: str, patch: str, mark_latest: bool,
                     extra: dict[str, Any] | None = None) -> Row:
    """Register (or re-register) ``version``/``patch`` of ``package``; ``extra`` joins the row's document
    (``Manifest`` and ``Assets``, which the device API puts in desired state)."""
    vid = f"{package.id}/{version}/{patch}"
    if mark_latest:
        for other in ctx.tx.select("package_versions", {"package_id": package.id, "version": version}):
            ctx.tx.update("package_versions", other.id, is_latest=0)
    doc = {"RegisteredTime": now().isoformat(), "Status": "REGISTER_COMPLETED", **(extra or {})}
    existing = ctx.tx.get("package_versions", vid)
    if existing is not None:
        latest = int(mark_latest or existing.columns["is_latest"])
        ctx.tx.update("package_versions", vid, doc, is_latest=latest)
        return existing
    return ctx.tx.insert("package_versions", vid, doc, package_id=package.id, version=version, patch=patch,
                         is_latest=int(mark_latest))


def _read_manifest(ctx: Context, key: str, patch: str) -> bytes:
    """The package.json uploaded under ``key``, checked against the patch version (its SHA-256)."""
    upload = f"upload package.json there first (PUT /_panoflow/assets/{key}, as panoflow project " \
             "package-application does)"
    info = ctx.assets.stat(key)
    if info is None:
        raise validation(f"the package manifest {key} is not in the asset store: {upload}", "PatchVersion")
    if info.size > MAX_MANIFEST:
        raise validation(f"the package manifest {key} is {info.size} bytes; a package.json is at most "
                         f"{MAX_MANIFEST}", "PatchVersion")
    try:
        with ctx.assets.open(key) as f:
            data = f.read(MAX_MANIFEST + 1)
    except AssetNotFound:
        raise validation(f"the package manifest {key} is not in the asset store: {upload}", "PatchVersion") \
            from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != patch:
        raise validation(f"PatchVersion {patch} is not the SHA-256 of the package manifest {key} ({digest}); "
                         "the patch version is the SHA-256 of package.json", "PatchVersion")
    return data


def _check_assets(ctx: Context, binaries: str, key: str, config: PackageConfig) -> list[dict[str, Any]]:
    """Every non-system asset file and descriptor the manifest names, present under ``binaries`` with the
    SHA-256 its name claims: ``[{"Key", "FileName", "Sha256", "Size"}]``."""
    out: dict[str, dict[str, Any]] = {}
    for i, asset in enumerate(config.assets):
        for j, impl in enumerate(asset.implementations):
            if impl.type == "system":
                continue
            for member, uri in (("assetUri", impl.asset_uri), ("descriptorUri", impl.descriptor_uri)):
                if not uri:
                    continue
                pointer = f"/nodePackage/assets/{i}/implementations/{j}/{member}"
                try:
                    if "/" in uri:
                        raise AssetKeyError("a file name in assets/, without folders")
                    file_key = check_key(f"{binaries}/{uri}")
                except AssetKeyError as exc:
                    raise manifest_error(key, [Problem(key, pointer, f"{uri!r} is not a valid asset file "
                                                                         f"name: {exc}")]) from None
                info = ctx.assets.stat(file_key)
                if info is None:
                    raise manifest_error(key, [Problem(
                        key, pointer, f"asset {asset.name!r} names {uri}, which is not in the asset store at "
                        f"{file_key}", "upload the package's asset files before registering it")])
                digest = info.sha256 or ctx.assets.sha256(file_key) or ""
                claimed = _SHA_NAME.match(uri)
                if claimed and claimed.group(1) != digest:
                    raise manifest_error(key, [Problem(
                        key, pointer, f"{file_key} has SHA-256 {digest}, not the {claimed.group(1)} its name "
                        "claims", "upload the file again (it was changed or damaged)")])
                out.setdefault(file_key, {"Key": file_key, "FileName": uri, "Sha256": digest,
                                          "Size": info.size})
    return list(out.values())


def _port_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _create_nodes(ctx: Context, package: Row, version: str, patch: str, config: PackageConfig) -> None:
    """One node per interface of the manifest, replacing the nodes of a re-registered patch."""
    ctx.tx.delete("nodes", package_id=package.id, package_version=version, patch_version=patch)
    created = now().isoformat()
    for iface in config.interfaces:
        inputs = [{k: v for k, v in {"Name": port.name, "Type": port.type.upper(),
                                     "Description": port.description[:255] or None,
                                     "DefaultValue": _port_value(port.default)}.items() if v is not None}
                  for port in iface.inputs]
        outputs = [{k: v for k, v in {"Name": port.name, "Type": port.type.upper(),
                                      "Description": port.description[:255] or None}.items() if v is not None}
                   for port in iface.outputs]
        node_id = f"{package.columns['name']}-{version}-{patch[:8]}-{iface.name}"
        ctx.tx.insert("nodes", node_id, {"Name": iface.name, "Description": config.description[:255],
                                         "PackageArn": package.doc["Arn"], "CreatedTime": created,
                                         "NodeInterface": {"Inputs": inputs, "Outputs": outputs},
                                         "AssetName": iface.asset or None},
                      package_id=package.id, package_name=package.columns["name"], package_version=version,
                      patch_version=patch, owner=package.columns["owner"],
                      category=_CATEGORIES.get(iface.category, iface.category.upper()))


@operation("RegisterPackageVersion")
def register_package_version(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    package = get_package(ctx, p["PackageId"])
    version, patch = p["PackageVersion"], p["PatchVersion"]
    storage = package.doc["StorageLocation"]
    key = f"{storage['ManifestPrefixLocation']}/{patch}.json"
    data = _read_manifest(ctx, key, patch)
    parsed = parse_package(data, key)
    if parsed.model is None:
        raise manifest_error(key, parsed.problems)
    config = parsed.model
    problems = [pr for pr in check_package(config, key) if pr.severity == "error"]
    if config.version and config.version != version:
        problems.append(Problem(key, "/nodePackage/version", f"the manifest is version {config.version}, but "
                                f"PackageVersion is {version}", "register the version package.json names"))
    if config.name and config.name != package.columns["name"]:
        problems.append(Problem(key, "/nodePackage/name", f"the manifest is package {config.name!r}, but "
                                f"package {package.id} is {package.columns['name']!r}",
                                "register it under its own name"))
    if problems:
        raise manifest_error(key, problems)
    assets = _check_assets(ctx, storage["BinaryPrefixLocation"], key, config)
    generated, compiled = _compile_models(ctx, storage, config, assets)
    _create_nodes(ctx, package, version, patch, config)
    extra: dict[str, Any] = {"Manifest": json.loads(data), "Assets": assets + generated}
    if compiled:
        extra["CompiledModels"] = compiled
        failed = [c for c in compiled if c["Status"] == "FAILED"]
        if failed:
            extra["StatusDescription"] = "; ".join(
                f"model asset {c['AssetName']} was not compiled: {c['Reason']}" for c in failed)[:255]
    register_version(ctx, package, version, patch, bool(p.get("MarkLatest")), extra)
    return {}


def _compile_models(ctx: Context, storage: dict[str, str], config: PackageConfig,
                    assets: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Compile each PYTORCH, MXNET or TENSORFLOW model asset without an .onnx (what SageMaker Neo did at
    registration) and store it under ``GeneratedPrefixLocation`` as ``compiled-<archive>-<descriptor>.onnx``,
    a generated asset that devices download with the package's files (and then run instead of compiling). A
    model that cannot be compiled here (a broken archive, no converter environment) is recorded and left to
    the device, which reports the same problem: registration itself does not fail."""
    by_name = {a["FileName"]: a for a in assets}
    return compile_package_models(ctx.assets, storage["GeneratedPrefixLocation"], config, by_name)


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
            "RegisteredTime": ts(row.doc["RegisteredTime"]), "Status": row.doc["Status"],
            **({"StatusDescription": row.doc["StatusDescription"]}
               if row.doc.get("StatusDescription") else {})}


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
    columns = (("Category", "category"), ("OwnerAccount", "owner"), ("PackageName", "package_name"),
               ("PackageVersion", "package_version"), ("PatchVersion", "patch_version"))
    where = {col: p[key] for key, col in columns if p.get(key) is not None}
    page, token = paginate(ctx.tx.select("nodes", where), p, "nodes")
    return {"Nodes": [_node(r, full=False) for r in page], "NextToken": token}


@operation("DescribeNode")
def describe_node(ctx: Context, p: dict[str, Any]) -> dict[str, Any]:
    row = ctx.tx.get("nodes", p["NodeId"])
    if row is None:
        raise not_found("node", p["NodeId"])
    return _node(row, full=True)
