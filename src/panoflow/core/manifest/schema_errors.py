"""Turn :mod:`jsonschema` errors into :class:`~panoflow.exceptions.Problem` values a person can act on.

jsonschema's own messages repeat the whole offending instance (a full ``nodeGraph`` for a top-level error) and
say "is not valid under any of the given schemas" for every ``oneOf`` (node kinds, port types, requirements).
Here each error gets the JSON pointer of the offending value, a short message built from the failing keyword,
and a one-line hint. For ``oneOf``/``anyOf`` the branch the author evidently meant is chosen (the one whose
discriminator, ``interface`` or ``type``, matches) and its errors are reported instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

from jsonschema import ValidationError

from panoflow.core.manifest.jsonio import join_pointer
from panoflow.core.params import describe_value
from panoflow.exceptions import Problem

__all__ = ["describe_pattern", "problems_from_errors"]

#: the character rules of Panorama's schemas, in words
_PATTERNS: dict[str, str] = {
    r"^[$A-Z_a-z0-9\-]+$": "use only letters, digits, '_', '-' and '$'",
    r"^[$A-Z_a-z0-9]+$": "use only letters, digits, '_' and '$' (port names become Python identifiers)",
    r"^[a-z_A-Z0-9\-]+$": "use only letters, digits, '_' and '-'",
    r"^[0-9]+\.[0-9]+$": 'write it as <major>.<minor>, e.g. "1.0"',
    r"^[$A-Z_a-z0-9]+::[a-zA-Z_0-9\-]+$": 'write it as ACCOUNT::PACKAGE, e.g. "123456789012::MY_CODE"',
    r"^[$A-Z_a-z0-9\-]+::[A-Z_a-z0-9\-]+\.[A-Z_a-z0-9\-]+$": (
        'write it as ACCOUNT::PACKAGE.INTERFACE, e.g. "123456789012::MY_CODE.interface"'
    ),
    r"^[a-zA-Z0-9_\-]+\.?[a-z_A-Z0-9\-]+$": ('write it as NODE.PORT (e.g. "code_node.video_in") or a '
                                             'parameter name'),
    r"^[0-9]+\.[A-Za-z0-9.]+$": 'write it as a version like "1.8"',
}
_PARENT_LABEL = {
    "nodes": "node name",
    "packages": "package name",
    "inputs": "port name",
    "outputs": "port name",
    "interfaces": "interface name",
    "assets": "asset name",
    "with": "node name",
    "environment": "variable name",
}
_TYPE_WORDS = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}
_DISCRIMINATORS = ("interface", "type")


def describe_pattern(pattern: str) -> str:
    """How to satisfy one of the schemas' ``pattern`` rules, in words."""
    return _PATTERNS.get(pattern, f"it must match the regular expression {pattern}")


def _label(path: Sequence[Any]) -> str:
    keys = [p for p in path if isinstance(p, str)]
    if not keys:
        return "the document"
    last = keys[-1]
    if last == "name" and len(path) >= 3 and isinstance(path[-2], int) and isinstance(path[-3], str):
        return _PARENT_LABEL.get(path[-3], "name")
    return {"replace": "node name", "node": "node name"}.get(last, repr(last))


def _owner(path: Sequence[Any], document: Any) -> tuple[str, str]:
    """(``node 'NAME' (nodes/5)``, the field below the node such as ``value``) when ``path`` points inside a
    named node of ``document``, else ``("", "")``."""
    for i in range(len(path) - 2, 0, -1):
        if path[i - 1] == "nodes" and isinstance(path[i], int):
            node: Any = document
            for key in path[: i + 1]:
                try:
                    node = node[key]
                except (KeyError, IndexError, TypeError):
                    return "", ""
            name = node.get("name") if isinstance(node, dict) else None
            if isinstance(name, str) and name and path[i + 1] != "name":
                return f"node {name!r} (nodes/{path[i]})", "/".join(str(k) for k in path[i + 1:])
            return "", ""
    return "", ""


def _types(value: Any) -> str:
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []
    return " or ".join(_TYPE_WORDS.get(str(n), str(n)) for n in names) or "another type"


def _one_of(error: ValidationError, file: str, document: Any = None) -> list[Problem]:
    """Report the errors of the branch the author meant, or say which forms were expected."""
    base = list(error.absolute_path)
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        first = sub.relative_schema_path[0] if sub.relative_schema_path else 0
        branches.setdefault(first if isinstance(first, int) else 0, []).append(sub)
    expected: list[str] = []
    forms: list[str] = []
    type_rejects: list[Any] = []
    disc_key = ""
    candidates: list[list[ValidationError]] = []
    for _, subs in sorted(branches.items()):
        rejected = False
        for sub in subs:
            path = list(sub.absolute_path)
            if path == base and sub.validator == "type":
                type_rejects.append(sub.validator_value)
                rejected = True
            elif (len(path) == len(base) + 1 and path[:-1] == base and path[-1] in _DISCRIMINATORS
                  and sub.validator in ("const", "enum", "pattern")):
                disc_key = str(path[-1])
                value: Any = sub.validator_value  # always set on an error a validator yielded
                if sub.validator == "const":
                    expected.append(repr(value))
                elif sub.validator == "enum":
                    expected.extend(repr(v) for v in value)
                else:
                    forms.append(describe_pattern(str(value)).removeprefix("write it as "))
                rejected = True
        if not rejected:
            candidates.append(subs)
    if candidates:
        best = min(candidates, key=len)  # the first of the closest branches
        return [p for sub in best for p in _explain(sub, file, document)]
    ptr = join_pointer(base)
    if type_rejects and len(type_rejects) == len(branches):
        words = " or ".join(dict.fromkeys(_types(t) for t in type_rejects))
        return [Problem(file, ptr, f"expected {words}, got {describe_value(error.instance)}",
                        "fix the value's type")]
    if disc_key and isinstance(error.instance, dict):
        value = error.instance.get(disc_key)
        options = ", ".join(dict.fromkeys(expected))
        if forms:
            options = f"{options} or {' or '.join(forms)}" if options else " or ".join(forms)
        return [Problem(file, join_pointer((*base, disc_key)), f"{describe_value(value)} is not a valid "
                                                               f"{disc_key}",
                        f"use {options}")]
    return [Problem(file, ptr, "does not match any of the allowed forms", "compare it with the schema")]


def _explain(error: ValidationError, file: str, document: Any = None) -> list[Problem]:
    kw, val, inst = str(error.validator), error.validator_value, error.instance
    path = list(error.absolute_path)
    ptr = join_pointer(path)
    label = _label(path)
    owner, field = _owner(path, document)
    if kw in ("oneOf", "anyOf") and error.context:
        return _one_of(error, file, document)
    if kw == "required" and isinstance(inst, dict) and isinstance(val, list):
        return [
            Problem(file, ptr, f"missing required key {k!r}", f"add {k!r} here")
            for k in val
            if isinstance(k, str) and k not in inst
        ]
    if kw == "additionalProperties" and isinstance(inst, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = sorted(schema.get("properties", {}))
        problems = []
        for key in inst:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1) if len(key) <= 64 else []
            hint = f"did you mean {close[0]!r}?" if close else ("allowed keys here: "
                                                                f"{', '.join(allowed) or 'none'}")
            problems.append(Problem(file, join_pointer((*path, key)), f"unknown key {key!r}", hint))
        return problems
    if kw == "dependencies" and isinstance(inst, dict) and isinstance(val, dict):
        return [
            Problem(file, ptr, f"{key!r} needs {dep!r} too", f"add {dep!r} or remove {key!r}")
            for key, deps in val.items()
            if key in inst and isinstance(deps, list)
            for dep in deps
            if dep not in inst
        ]
    message, hint = _message(kw, val, inst, label)
    if owner:  # a value inside a node: name the node, not only its index
        message = f"{owner} {field}: {message.removeprefix(label + ' ')}"
    return [Problem(file, ptr, message, hint)]


def _message(kw: str, val: Any, inst: Any, label: str) -> tuple[str, str]:
    """(message, hint) for a single-keyword error."""
    shown = describe_value(inst)
    if kw == "type":
        return f"{label} must be {_types(val)}, not {shown}", f"write {label} as {_types(val)}"
    if kw == "enum" and isinstance(val, list):
        options = ", ".join(describe_value(v) for v in val)
        return f"{shown} is not one of {options}", f"use one of {options}"
    if kw == "const":
        return f"expected {describe_value(val)}, got {shown}", f"use {describe_value(val)}"
    if kw == "pattern":
        if isinstance(inst, str) and inst and len(inst) > 255:
            return f"{label} is too long to be valid ({len(inst)} characters)", describe_pattern(str(val))
        return f"{shown} is not a valid {label}", describe_pattern(str(val))
    if kw == "minLength":
        return (f"{label} must not be empty", f"give {label} a value") if val == 1 else (
            f"{label} must be at least {val} characters long", f"lengthen {label}")
    if kw == "maxLength":
        return f"{label} is longer than {val} characters", f"shorten {label}"
    if kw == "minItems":
        return f"{label} needs at least {val} entr{'y' if val == 1 else 'ies'}", f"add entries to {label}"
    if kw == "maxItems":
        return f"{label} has more than {val} entries", f"remove entries from {label}"
    if kw in ("minimum", "exclusiveMinimum"):
        return f"{shown} is below the minimum {val}", f"use a value of at least {val}"
    if kw in ("maximum", "exclusiveMaximum"):
        return f"{shown} is above the maximum {val}", f"use a value of at most {val}"
    if kw == "oneOf":
        return f"{label} matches more than one of the allowed forms", "remove the keys that make it ambiguous"
    return f"{label} is invalid ({kw})", "compare it with the Panorama manifest schema"


def problems_from_errors(errors: Iterable[ValidationError], file: str, limit: int = 100,
                         document: Any = None) -> list[Problem]:
    """One problem (or a few, for several missing/unknown keys) per schema error, without duplicates; past
    ``limit`` problems, one last problem says how many more errors there are. With the validated ``document``,
    an error inside a graph node names the node (``node 'threshold' (nodes/5) value must be a number...``)."""
    found: dict[Problem, None] = {}
    more = 0
    for error in errors:
        if len(found) >= limit:
            more += 1
            continue
        found.update(dict.fromkeys(_explain(error, file, document)))
    problems = list(found)
    if more:
        problems.append(Problem(file, "", f"{more} more schema error(s) not shown",
                                "fix the ones above first"))
    return problems
