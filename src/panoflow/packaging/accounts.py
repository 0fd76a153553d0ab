"""``import-application``: an application written under other AWS accounts, moved to yours.

Every package folder ``<old>-<name>-<version>`` becomes ``<new>-<name>-<version>``, and in every application
manifest and overrides document of the project (``nodeGraph``/``nodeGraphOverrides`` JSON anywhere outside
``packages/`` and ``assets/``) the package names ``old::NAME`` and node interfaces ``old::NAME.interface``
become ``new::...``. Panorama's own ``panorama::`` packages are left alone. Unlike panorama-cli, names are
matched exactly (never as substrings), all graphs and overrides are updated, and everything is checked before
anything changes.

The JSON files are edited in place, textually, so their formatting is kept; the result is parsed back and
compared with the intended document (if they differ, the document is written out in full instead).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panoflow.exceptions import ManifestError
from panoflow.packaging.project import (
    BUILTIN_ACCOUNT,
    PackagingError,
    Project,
    check_name,
    dump_json,
    write_bytes_atomic,
)

__all__ = ["ImportResult", "import_application"]

_SKIP_DIRS = {"packages", "assets", ".git", "node_modules", "__pycache__", ".venv"}


@dataclass
class ImportResult:
    account: str
    old_accounts: list[str] = field(default_factory=list)
    folders: list[tuple[str, str]] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)


def _documents(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d for d in dirnames if not (not rel.parts and d in _SKIP_DIRS) and not d.startswith(".")
        )
        for name in sorted(filenames):
            if name.endswith(".json"):
                yield Path(dirpath, name)


def _rename(value: Any, renames: dict[str, str]) -> Any:
    if isinstance(value, str) and "::" in value:
        account, sep, rest = value.partition("::")
        if account in renames:
            return renames[account] + sep + rest
    return value


def _edit(doc: Any, renames: dict[str, str]) -> Any:
    """The document with the package names and node interfaces of the renamed accounts changed."""
    doc = json.loads(json.dumps(doc))
    for key in ("nodeGraph", "nodeGraphOverrides"):
        body = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(body, dict):
            continue
        for ref in body.get("packages", []) if isinstance(body.get("packages"), list) else ():
            if isinstance(ref, dict):
                ref["name"] = _rename(ref.get("name"), renames)
        for node in body.get("nodes", []) if isinstance(body.get("nodes"), list) else ():
            if isinstance(node, dict) and "interface" in node:
                node["interface"] = _rename(node["interface"], renames)
    return doc


def _accounts_in(doc: Any) -> set[str]:
    found: set[str] = set()
    for key in ("nodeGraph", "nodeGraphOverrides"):
        body = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(body, dict):
            continue
        values = [r.get("name") for r in body.get("packages", []) or [] if isinstance(r, dict)]
        values += [n.get("interface") for n in body.get("nodes", []) or [] if isinstance(n, dict)]
        for value in values:
            if isinstance(value, str) and "::" in value:
                found.add(value.partition("::")[0])
    found.discard(BUILTIN_ACCOUNT)
    return found


def _rewrite(text: str, renames: dict[str, str]) -> str:
    if not renames:
        return text
    pattern = re.compile('"(' + "|".join(re.escape(a) for a in sorted(renames, key=len,
                                                                      reverse=True)) + ')::')
    return pattern.sub(lambda m: f'"{renames[m.group(1)]}::', text)


def import_application(project: Project, account: str, only: Iterable[str] = ()) -> ImportResult:
    """Rename the accounts of ``project`` (all but ``panorama``, or only those in ``only``) to ``account``."""
    check_name("account", account, "--account")
    restrict = set(only)
    for old in restrict:
        check_name("account", old, "--from-account")
    docs: list[tuple[Path, str, Any]] = []
    olds: set[str] = set()
    for path in _documents(project.root):
        try:
            doc = project.read_json(path)
        except ManifestError:
            if path.parent.parent.name == "graphs" and path.name == "graph.json":
                raise
            continue  # not a manifest (or not readable as one): leave it alone
        found = _accounts_in(doc)
        if found:
            docs.append((path, path.read_text(encoding="utf-8-sig"), doc))
            olds |= found
    folders = project.package_folders()
    olds |= {f.account for f in folders}
    olds.discard(BUILTIN_ACCOUNT)
    if restrict:
        olds &= restrict
    olds.discard(account)
    renames = {old: account for old in sorted(olds)}
    result = ImportResult(account, sorted(olds))
    moves = []
    for folder in folders:
        if folder.account in renames:
            target = folder.path.with_name(f"{account}-{folder.name}-{folder.version}")
            if target.exists():
                raise PackagingError(f"cannot rename {project.display(folder.path)}: "
                                     f"{project.display(target)} already exists")
            moves.append((folder.path, target))
    targets = [t for _, t in moves]
    if len(set(targets)) != len(targets):
        dup = next(t for t in targets if targets.count(t) > 1)
        raise PackagingError(f"two packages would both become {project.display(dup)}; import them separately "
                             "with --from-account")
    writes = []
    for path, text, doc in docs:
        wanted = _edit(doc, renames)
        if wanted == doc:
            continue
        new_text = _rewrite(text, renames)
        try:
            same = json.loads(new_text) == wanted
        except ValueError:
            same = False
        writes.append((path, new_text.encode("utf-8") if same else dump_json(wanted)))
    for path, data in writes:
        write_bytes_atomic(path, data)
        result.documents.append(project.display(path))
    for source, target in moves:
        os.rename(source, target)
        result.folders.append((source.name, target.name))
    return result
