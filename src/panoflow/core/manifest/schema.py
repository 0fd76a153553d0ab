"""Structural validation of manifests against Panorama's own JSON schemas (draft-07), offline.

The schemas ship with panoflow (``panoflow/schemas/panorama/``, verbatim copies) and are served to
:mod:`jsonschema` through a :class:`referencing.Registry` holding every file under a fixed, never-fetched base
URI, so their relative ``$ref``\\ s resolve without a network. Documents are checked against the versioned
schemas (``ver_2021-01-01/...``): the top-level files only wrap those in a one-branch ``oneOf``, which would
bury every error one level deeper.

Two deliberate departures from Panorama's schemas, both explicit:

* **Extensions** (``panoflow/schemas/panoflow/mlModelDescriptor.schema.json``): a descriptor is validated
  against Panorama's schema, then an error on a property that the extension schema lists is forgiven when the
  value is valid under the extension's schema for that property. That is how ``"framework": "ONNX"`` passes
  while ``"framework": "CAFFE"`` still fails with Panorama's own enum message. (Draft-07 cannot widen an enum
  through ``$ref``/``allOf``, and editing the copies would hide what panoflow adds.)
* **Known real-world deviation**: published GPU samples spell the ``hardware_access`` requirement's list
  ``nvAccelerators`` instead of ``inferenceAccelerators``. Such a requirement loads with a *warning*; the list
  is validated (and parsed) under its schema name.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import jsonschema
from jsonschema import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from panoflow.core.manifest.jsonio import join_pointer
from panoflow.core.manifest.schema_errors import problems_from_errors
from panoflow.exceptions import Problem

if TYPE_CHECKING:
    from importlib.abc import Traversable

__all__ = ["MAX_PATTERN_INPUT", "SCHEMA_BASE_URI", "DocumentKind", "schema_problems"]

DocumentKind = Literal["graph", "overrides", "package", "descriptor"]

#: longest string a ``pattern`` is run on (Panorama names are at most 255 characters)
MAX_PATTERN_INPUT = 1024
#: schema problems reported per document; the rest are summarised in one line
MAX_SCHEMA_PROBLEMS = 100
#: base URI of the bundled schemas (``.invalid`` is reserved: it never resolves, nothing is ever fetched)
SCHEMA_BASE_URI = "https://panoflow.invalid/schemas/"

_ENTRY: dict[str, str] = {
    "graph": "panorama/ver_2021-01-01/nodeGraph.schema.json",
    "overrides": "panorama/ver_2021-01-01/nodeGraphOverrides.schema.json",
    "package": "panorama/ver_2021-01-01/nodePackage.schema.json",
    "descriptor": "panorama/ver_2021-01-01/assetDescriptor.schema.json",
}
_EXTENSIONS: dict[str, tuple[str, str]] = {
    # kind -> (extension schema, the object it extends inside the document)
    "descriptor": ("panoflow/mlModelDescriptor.schema.json", "mlModelDescriptor"),
}


def _schema_files(folder: Traversable, prefix: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for entry in folder.iterdir():
        if entry.is_dir():
            found.extend(_schema_files(entry, f"{prefix}{entry.name}/"))
        elif entry.name.endswith(".schema.json"):
            found.append((prefix + entry.name, json.loads(entry.read_text(encoding="utf-8"))))
    return found


@lru_cache(maxsize=1)
def _registry() -> Registry:
    """Every bundled schema, keyed by ``SCHEMA_BASE_URI + <path under panoflow/schemas/>``.

    All of them are draft-07; their ``$schema`` key is left out of the in-memory copies because jsonschema
    picks the validator class from ``$schema`` at every ``$ref``, which would swap panoflow's
    bounded-``pattern`` Draft-07 validator back for the stock one."""
    root = resources.files("panoflow") / "schemas"
    pairs = []
    for rel, contents in _schema_files(root):
        if isinstance(contents, dict):
            contents = {k: v for k, v in contents.items() if k != "$schema"}
        pairs.append((SCHEMA_BASE_URI + rel, Resource.from_contents(contents, default_specification=DRAFT7)))
    return Registry().with_resources(pairs)


def _bounded_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """Draft-07 ``pattern``, except that over-long strings fail without running the regular expression: the
    edge pattern (``^[...]+\\.?[...]+$``) backtracks quadratically, and no Panorama name comes near the
    limit."""
    if not validator.is_type(instance, "string"):
        return
    if len(instance) > MAX_PATTERN_INPUT:
        yield ValidationError(f"longer than {MAX_PATTERN_INPUT} characters")
    elif not re.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


#: Draft-07 with the bounded ``pattern`` keyword
# types-jsonschema leaves extend() unannotated
_Draft7 = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft7Validator, validators={"pattern": _bounded_pattern})


@cache
def _validator(kind: str) -> Any:
    return _Draft7({"$ref": SCHEMA_BASE_URI + _ENTRY[kind]}, registry=_registry())


@cache
def _extension(kind: str) -> tuple[str, dict[str, jsonschema.Draft7Validator]]:
    """(extended object key, property -> validator of the extension's schema for it); empty when none."""
    if kind not in _EXTENSIONS:
        return "", {}
    rel, key = _EXTENSIONS[kind]
    schema = _registry().contents(SCHEMA_BASE_URI + rel)
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return key, {name: jsonschema.Draft7Validator(sub) for name, sub in props.items()}


def _forgiven(kind: str, error: jsonschema.ValidationError) -> bool:
    key, props = _extension(kind)
    path = list(error.absolute_path)
    if not key or len(path) != 2 or path[0] != key or path[1] not in props:
        return False
    return bool(props[str(path[1])].is_valid(error.instance))


def _accept_nv_accelerators(doc: Any, file: str) -> tuple[Any, list[Problem]]:
    """Rename ``nvAccelerators`` to ``inferenceAccelerators`` in hardware requirements, warning each time."""
    warnings: list[Problem] = []
    package = doc.get("nodePackage") if isinstance(doc, dict) else None
    assets = package.get("assets") if isinstance(package, dict) else None
    if not isinstance(assets, list):
        return doc, warnings
    fixed = doc
    for a, asset in enumerate(assets):
        impls = asset.get("implementations") if isinstance(asset, dict) else None
        for i, impl in enumerate(impls if isinstance(impls, list) else ()):
            reqs = impl.get("requirements") if isinstance(impl, dict) else None
            for r, req in enumerate(reqs if isinstance(reqs, list) else ()):
                if not (isinstance(req, dict) and req.get("type") == "hardware_access"):
                    continue
                if "nvAccelerators" not in req or "inferenceAccelerators" in req:
                    continue
                if fixed is doc:
                    fixed = copy.deepcopy(doc)
                target = fixed["nodePackage"]["assets"][a]["implementations"][i]["requirements"][r]
                target["inferenceAccelerators"] = target.pop("nvAccelerators")
                where = ("nodePackage", "assets", a, "implementations", i, "requirements", r,
                         "nvAccelerators")
                warnings.append(
                    Problem(
                        file,
                        join_pointer(where),
                        "'nvAccelerators' is not in Panorama's schema; read as 'inferenceAccelerators'",
                        "rename the key to 'inferenceAccelerators' (some published GPU samples use the old "
                        "name)",
                        "warning",
                    )
                )
    return fixed, warnings


def schema_problems(doc: Any, kind: DocumentKind, file: str) -> tuple[Any, list[Problem]]:
    """Validate a parsed document of ``kind``; returns the document to parse (with known deviations
    normalised) and every problem found (warnings included), each pointing at the offending value in
    ``file``."""
    warnings: list[Problem] = []
    if kind == "package":
        doc, warnings = _accept_nv_accelerators(doc, file)
    errors = (e for e in _validator(kind).iter_errors(doc) if not _forgiven(kind, e))
    problems = problems_from_errors(errors, file, limit=MAX_SCHEMA_PROBLEMS, document=doc)
    for warning in warnings:  # point into the file as written, not at the renamed key
        written = warning.pointer
        renamed = written.removesuffix("/nvAccelerators") + "/inferenceAccelerators"
        problems = [
            dataclasses.replace(p, pointer=written + p.pointer[len(renamed):])
            if p.pointer == renamed or p.pointer.startswith(renamed + "/") else p
            for p in problems
        ]
    return doc, warnings + problems
